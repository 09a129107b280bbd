// SPDX-License-Identifier: GPL-2.0
//! The volume table's slots: an open-addressed hash of volume ids, so a
//! request finds its volume in O(1) with thousands of volumes.
//!
//! Volume `id` lives in the first slot of the probe sequence `home(id)`,
//! `home(id) + 1`, ... (wrapping) that was free when it was created. A
//! lookup follows the same sequence and stops at a slot that was never used:
//! a deleted volume leaves a tombstone ([`VolEntry::tomb`]) so the chains
//! through its slot stay intact. Ids are given out in increasing order, so
//! most volumes sit in their home slot. Slots never move while a volume
//! exists: a slot number stays valid from creation to deletion.
//!
//! Tombstones are cleared when the table is rebuilt (assembly): a table
//! whose every slot is a tombstone or taken still answers, by probing all
//! slots once.

use super::VolEntry;

/// Most volumes (including snapshots and clones) per pool: the size of the
/// volume table the kernel and `zvpoolctl pool check` give the engine. At
/// about 120 bytes a slot the table costs about 2 MiB of memory per pool.
pub const MAX_VOLUMES: usize = 16384;

/// The home slot of volume `id` in a table of `len` slots (`len > 0`).
fn home(id: u32, len: usize) -> usize {
    (id as usize) % len
}

/// The probe sequence of `id`: every slot once, from its home.
fn probe(id: u32, len: usize) -> impl Iterator<Item = usize> {
    let h = if len == 0 { 0 } else { home(id, len) };
    (0..len).map(move |k| {
        let i = h.saturating_add(k);
        if i >= len {
            i - len
        } else {
            i
        }
    })
}

/// The slot of volume `id`, if it exists.
pub(crate) fn find(vols: &[VolEntry], id: u32) -> Option<usize> {
    for i in probe(id, vols.len()) {
        let v = vols.get(i)?;
        match v.table {
            Some(_) if v.id == id => return Some(i),
            None if !v.tomb => return None,
            _ => {}
        }
    }
    None
}

/// One past the last slot holding a table (0: none): walks over all the
/// tables need not look further.
pub(crate) fn used_end(vols: &[VolEntry]) -> usize {
    vols.iter()
        .rposition(|v| v.table.is_some())
        .map_or(0, |i| i.saturating_add(1))
}

/// The slot a new volume `id` takes: the first free one of its probe
/// sequence (the caller checked that `id` does not exist).
pub(crate) fn free_for(vols: &[VolEntry], id: u32) -> Option<usize> {
    probe(id, vols.len()).find(|&i| vols.get(i).is_some_and(|v| v.table.is_none()))
}

/// Frees slot `i` (its volume is deleted), leaving a tombstone.
pub(crate) fn release(vols: &mut [VolEntry], i: usize) {
    if let Some(v) = vols.get_mut(i) {
        *v = VolEntry {
            tomb: true,
            ..VolEntry::default()
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::format::VolName;
    use crate::map::BlockTable;
    use std::vec;

    fn put(vols: &mut [VolEntry], id: u32) -> usize {
        assert_eq!(find(vols, id), None);
        let i = free_for(vols, id).expect("a free slot");
        vols[i] = VolEntry {
            id,
            name: VolName::new(b"v").unwrap(),
            table: Some(BlockTable::new(id, 1).unwrap()),
            ..VolEntry::default()
        };
        i
    }

    #[test]
    fn ids_find_their_slots_through_collisions_and_tombstones() {
        let mut vols = vec![VolEntry::default(); 8];
        // 1, 9 and 17 share home slot 1; 2 is pushed along by them.
        let a = put(&mut vols, 1);
        let b = put(&mut vols, 9);
        let c = put(&mut vols, 17);
        let d = put(&mut vols, 2);
        assert_eq!((a, b, c, d), (1, 2, 3, 4));
        release(&mut vols, b);
        assert_eq!(find(&vols, 9), None);
        // The chain through the tombstone still leads to 17 and 2.
        assert_eq!(find(&vols, 17), Some(3));
        assert_eq!(find(&vols, 2), Some(4));
        // A new id reuses the tombstone; the others do not move.
        assert_eq!(put(&mut vols, 25), 2);
        assert_eq!(find(&vols, 17), Some(3));
        // Full table (wrapping past the end): every id found, none free.
        for id in [5, 6, 7, 8] {
            put(&mut vols, id);
        }
        assert_eq!(free_for(&vols, 100), None);
        assert_eq!(find(&vols, 100), None);
        for id in [1, 25, 17, 2, 5, 6, 7, 8] {
            let i = find(&vols, id).unwrap();
            assert_eq!(vols[i].id, id);
        }
        // All tombstones: a missing id probes every slot once and stops.
        for i in 0..vols.len() {
            release(&mut vols, i);
        }
        assert_eq!(find(&vols, 1), None);
        assert_eq!(free_for(&vols, 1), Some(1));
        assert_eq!(find(&[], 1), None);
        assert_eq!(free_for(&[], 1), None);
    }

    #[test]
    fn ten_thousand_ids_mostly_in_their_home_slot() {
        let mut vols = vec![VolEntry::default(); MAX_VOLUMES];
        for id in 1..=12_000u32 {
            put(&mut vols, id);
        }
        // Delete every third, then create as many again with new ids.
        for id in (1..=12_000u32).step_by(3) {
            let i = find(&vols, id).unwrap();
            release(&mut vols, i);
        }
        for id in 20_000..24_000u32 {
            put(&mut vols, id);
        }
        let mut away = 0;
        for (i, v) in vols.iter().enumerate() {
            if v.table.is_some() {
                assert_eq!(find(&vols, v.id), Some(i));
                away += usize::from(i != v.id as usize % MAX_VOLUMES);
            }
        }
        assert!(away < 4000, "{away} volumes away from their home slot");
    }
}

// SPDX-License-Identifier: GPL-2.0
//! Sequential writers: a write that continues the last one of a volume
//! inside the same 2 MiB range goes on in the zone that write went to.
//!
//! The allocator spreads a pool's writes over its members (the member
//! with the most free zones, ties round robin). A VM writing a file
//! sequentially sends requests of a few hundred KiB; spread one by one, a
//! 2 MiB range of the volume lands in pieces on several members, so the
//! block table needs a 4 KiB leaf for it (8 bytes a block) instead of one
//! run entry (`map`: 1/64 byte a block). Keeping the pieces of a range
//! together keeps sequential data at the cost of run entries on pools of
//! several members too; ranges still go to different members, so a large
//! sequential stream is still spread, 2 MiB at a time.
//!
//! A few writers at a time are remembered (like readahead's stream
//! detection): allocation-free, a fixed table of 16-byte entries (it is
//! part of the engine, which format builds on the stack), least recently
//! used out.

use super::super::map::FANOUT;

/// Sequential writers remembered at a time.
const WRITERS: usize = 4;

/// Blocks of a run entry's range (a leaf's span).
const RANGE: u64 = FANOUT as u64;

#[derive(Clone, Copy, Default)]
struct Writer {
    /// The block after the writer's last write.
    end: u64,
    vol: u32,
    /// The member its last piece went to.
    dev: u16,
    /// When it last wrote (the table's clock, wrapping); 0: an empty slot.
    used: u16,
}

/// The last writes of a few volumes: where each ended, on which member.
#[derive(Default)]
pub(super) struct SeqWriters {
    ents: [Writer; WRITERS],
    clock: u16,
}

impl SeqWriters {
    /// The member a write of `vol` at `lba` should continue on: the one
    /// the volume's last write went to, if this write follows it inside
    /// the same 2 MiB range (at a range's start any member will do).
    pub(super) fn member_for(&self, vol: u32, lba: u64) -> Option<u16> {
        if lba.is_multiple_of(RANGE) {
            return None;
        }
        self.ents
            .iter()
            .find(|e| e.used != 0 && e.vol == vol && e.end == lba)
            .map(|e| e.dev)
    }

    /// A write of `vol` at `lba` ending before `end` was planned, its last
    /// piece on member `dev`.
    pub(super) fn note(&mut self, vol: u32, lba: u64, end: u64, dev: u16) {
        self.clock = self.clock.wrapping_add(1).max(1);
        let now = self.clock;
        // The writer it continues, else the least recently used slot.
        let slot = match self
            .ents
            .iter()
            .position(|e| e.used != 0 && e.vol == vol && e.end == lba)
        {
            Some(i) => i,
            None => self
                .ents
                .iter()
                .enumerate()
                // An empty slot first, else the one unused the longest.
                .max_by_key(|(_, e)| {
                    if e.used == 0 {
                        u16::MAX
                    } else {
                        now.wrapping_sub(e.used)
                    }
                })
                .map_or(0, |(i, _)| i),
        };
        if let Some(e) = self.ents.get_mut(slot) {
            *e = Writer {
                vol,
                end,
                dev,
                used: now,
            };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_write_that_follows_continues_inside_its_range() {
        let mut s = SeqWriters::default();
        assert_eq!(s.member_for(1, 64), None);
        s.note(1, 0, 64, 3);
        assert_eq!(s.member_for(1, 64), Some(3));
        // Not where it ended, another volume, a range's start: no.
        assert_eq!(s.member_for(1, 65), None);
        assert_eq!(s.member_for(2, 64), None);
        s.note(1, 64, RANGE, 3);
        assert_eq!(s.member_for(1, RANGE), None);
    }

    #[test]
    fn the_least_recently_used_writer_goes() {
        let mut s = SeqWriters::default();
        for v in 0..WRITERS as u32 {
            s.note(v, 0, 8, v as u16);
        }
        // Writer 0 writes again (its slot kept), then a new one comes:
        // writer 1, the oldest now, is forgotten.
        s.note(0, 8, 16, 0);
        s.note(100, 0, 8, 5);
        assert_eq!(s.member_for(0, 16), Some(0));
        assert_eq!(s.member_for(1, 8), None);
        assert_eq!(s.member_for(2, 8), Some(2));
        assert_eq!(s.member_for(100, 8), Some(5));
    }
}

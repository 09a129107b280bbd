// SPDX-License-Identifier: GPL-2.0
//! Ordered admission of paced writes ([`PaceQueue`]).
//!
//! Below the urgent level every block a user writes adds a debt of GC work
//! (`gc::pace_permille` times the victim's relocation cost) and every block
//! GC relocates pays one back; a write that finds writers too far ahead of
//! GC waits. A single shared debt counter admits waiters in no order: after
//! each GC batch every waiter wakes and may go, while a newcomer whose debt
//! fits goes at once, so an unlucky write can wait batch after batch (the
//! sustained-overwrite benchmark saw writes held for seconds). Here debt is
//! two monotonic counters, as a ticket lock is: a write takes a *ticket*,
//! the total debt issued including its own, and goes once GC has paid up
//! to `ticket - slack`. Tickets are admitted in the order they were taken,
//! so no write waits for more than the debt queued before it.
//!
//! Counts are in thousandths of a block. Lock-free: writers and GC touch
//! only the two atomics.
//!
//! Who pays ([`WriteShares`]): GC's work comes from the volumes that write,
//! in proportion to what they write. A volume that writes less than half
//! its fair share of the recent user writes (the VM with a few writes next
//! to one overwriting at full speed) is *light*: its writes take no ticket,
//! so they never queue behind the heavy volume's debt. The heavy volumes
//! pay for all, which is what they cause: without them GC would not be
//! behind.

use core::sync::atomic::{AtomicU64, Ordering};

/// Debt counters of a pool's paced writes.
#[derive(Debug, Default)]
pub struct PaceQueue {
    /// Debt issued to writers since the pool started.
    issued: AtomicU64,
    /// Debt paid by GC (or forgiven) since the pool started; at most
    /// `slack` ahead of `issued` (the credit GC may build up).
    paid: AtomicU64,
}

impl PaceQueue {
    /// Empty counters.
    pub const fn new() -> Self {
        PaceQueue {
            issued: AtomicU64::new(0),
            paid: AtomicU64::new(0),
        }
    }

    /// A write adds `debt`: returns its ticket (the total issued so far,
    /// its own included).
    pub fn issue(&self, debt: u64) -> u64 {
        self.issued
            .fetch_add(debt, Ordering::AcqRel)
            .saturating_add(debt)
    }

    /// Whether the write holding `ticket` may go: GC has paid all the debt
    /// issued before and with it but `slack`.
    pub fn admitted(&self, ticket: u64, slack: u64) -> bool {
        ticket <= self.paid.load(Ordering::Acquire).saturating_add(slack)
    }

    /// GC relocated blocks worth `amount`: pays the oldest debt. GC may get
    /// at most `slack` ahead of writers (credit for the writes to come).
    pub fn pay(&self, amount: u64, slack: u64) {
        let _ = self
            .paid
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |p| {
                let cap = self.issued.load(Ordering::Acquire).saturating_add(slack);
                Some(p.saturating_add(amount).min(cap.max(p)))
            });
    }

    /// The debt issued so far is void (space came back without GC work, or
    /// pacing ended): every ticket taken so far is admitted. Credit is kept.
    pub fn forgive(&self) {
        let issued = self.issued.load(Ordering::Acquire);
        self.paid.fetch_max(issued, Ordering::AcqRel);
    }

    /// Debt not paid yet (negative: credit).
    pub fn debt(&self) -> i64 {
        let issued = self.issued.load(Ordering::Acquire);
        let paid = self.paid.load(Ordering::Acquire);
        if issued >= paid {
            i64::try_from(issued - paid).unwrap_or(i64::MAX)
        } else {
            i64::try_from(paid - issued).map_or(i64::MIN, |c| -c)
        }
    }
}

/// Buckets of [`WriteShares`] (volumes share one by id modulo this).
pub const SHARE_BUCKETS: usize = 16;

/// Blocks written recently, in all buckets, past which the counts are
/// halved: the shares follow about the last this many blocks (16 MiB: a
/// fraction of a second of a pool's writes on real devices, a second or
/// two under TCG; 4,096 samples of 4 KiB writes).
pub const SHARE_WINDOW: u64 = 1 << 12;

/// Recent user writes per volume (by bucket), to tell light volumes
/// (module docs). Lock-free and approximate: volumes whose ids fall in one
/// bucket count as one.
#[derive(Debug)]
pub struct WriteShares {
    b: [AtomicU64; SHARE_BUCKETS],
}

impl Default for WriteShares {
    fn default() -> Self {
        Self::new()
    }
}

impl WriteShares {
    /// No writes yet.
    pub const fn new() -> Self {
        WriteShares {
            b: [const { AtomicU64::new(0) }; SHARE_BUCKETS],
        }
    }

    fn bucket(&self, vol: u32) -> Option<&AtomicU64> {
        self.b.get(vol as usize % SHARE_BUCKETS)
    }

    /// Volume `vol` writes `blocks` blocks; past [`SHARE_WINDOW`] every
    /// count is halved.
    pub fn note(&self, vol: u32, blocks: u64) {
        if let Some(b) = self.bucket(vol) {
            b.fetch_add(blocks, Ordering::Relaxed);
        }
        if self.total() > SHARE_WINDOW {
            for b in &self.b {
                let _ = b.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |v| Some(v / 2));
            }
        }
    }

    fn total(&self) -> u64 {
        self.b
            .iter()
            .map(|b| b.load(Ordering::Relaxed))
            .fold(0, u64::saturating_add)
    }

    /// Whether volume `vol` writes less than half its fair share of the
    /// recent writes: `mine < total / (2 * writers)`, where the writers are
    /// the buckets with at least 1/64 of the writes, and `vol` itself (it
    /// is writing now). A lone writer is never light; a volume that has
    /// barely written next to others is.
    pub fn light(&self, vol: u32) -> bool {
        let total = self.total();
        let mine = self.bucket(vol).map_or(0, |b| b.load(Ordering::Relaxed));
        let floor = (total / 64).max(1);
        let others = self
            .b
            .iter()
            .filter(|b| b.load(Ordering::Relaxed) >= floor)
            .count() as u64;
        let writers = if mine >= floor { others } else { others + 1 };
        writers >= 2 && mine.saturating_mul(2).saturating_mul(writers) < total
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SLACK: u64 = 2_000;

    #[test]
    fn tickets_are_admitted_in_the_order_they_were_taken() {
        let q = PaceQueue::new();
        // Within the slack: admitted at once.
        let t0 = q.issue(1_500);
        assert!(q.admitted(t0, SLACK));
        // Beyond it: these wait, in order.
        let t1 = q.issue(1_000);
        let t2 = q.issue(1_000);
        assert!(!q.admitted(t1, SLACK) && !q.admitted(t2, SLACK));
        q.pay(500, SLACK);
        assert!(q.admitted(t1, SLACK));
        assert!(!q.admitted(t2, SLACK));
        // A newcomer never goes before a waiter taken earlier.
        let t3 = q.issue(1);
        assert!(t3 > t2 && !q.admitted(t3, SLACK));
        q.pay(1_000, SLACK);
        assert!(q.admitted(t2, SLACK) && !q.admitted(t3, SLACK));
        q.pay(1, SLACK);
        assert!(q.admitted(t3, SLACK));
        assert_eq!(q.debt(), 3_501 - 1_501);
    }

    #[test]
    fn light_volumes_write_under_half_their_fair_share() {
        // (All within one window.)
        const _: () = assert!(2_000 + 220 + 1_800 < SHARE_WINDOW);
        let s = WriteShares::new();
        // Nobody, then a lone writer: never light; the first writes of
        // another volume next to it are.
        assert!(!s.light(1));
        s.note(1, 2_000);
        assert!(!s.light(1) && s.light(2));
        // 90/10 between two volumes: the 10 % one is light (under 25 %).
        s.note(2, 220);
        assert!(s.light(2) && !s.light(1));
        // Equal shares: neither.
        s.note(2, 1_800);
        assert!(!s.light(1) && !s.light(2));
        // Three writers at 60/30/10: fair is 33 %; only the 10 % one is
        // light.
        let s = WriteShares::new();
        s.note(1, 1_200);
        s.note(2, 600);
        s.note(3, 200);
        assert!(!s.light(1) && !s.light(2) && s.light(3));
        // A trickle (under 1/64) next to a heavy writer is light, and does
        // not make the heavy one light.
        let s = WriteShares::new();
        s.note(1, 2_000);
        s.note(5, 20);
        assert!(s.light(5) && !s.light(1));
        assert!(s.light(9), "no writes at all");
    }

    #[test]
    fn shares_follow_the_recent_window() {
        let s = WriteShares::new();
        s.note(1, SHARE_WINDOW);
        // Volume 2 takes over: once its writes are most of the window, the
        // old heavy writer is the light one.
        for _ in 0..(4 * SHARE_WINDOW / 1024) {
            s.note(2, 1024);
        }
        assert!(s.total() <= SHARE_WINDOW + 1024);
        assert!(s.light(1) && !s.light(2));
        // Volumes in the same bucket count as one.
        assert!(!s.light(2 + SHARE_BUCKETS as u32));
    }

    #[test]
    fn credit_is_capped_and_forgiveness_admits_every_ticket() {
        let q = PaceQueue::new();
        // GC ahead of writers: at most `slack` of credit.
        q.pay(10_000, SLACK);
        assert_eq!(q.debt(), -(SLACK as i64));
        let t = q.issue(3_000);
        assert!(q.admitted(t, SLACK));
        let t = q.issue(2_500);
        assert!(!q.admitted(t, SLACK));
        let late = q.issue(7_000);
        q.forgive();
        assert!(q.admitted(t, 0) && q.admitted(late, 0));
        assert_eq!(q.debt(), 0);
        // Forgiving keeps credit.
        q.pay(1_000, SLACK);
        q.forgive();
        assert_eq!(q.debt(), -1_000);
    }
}

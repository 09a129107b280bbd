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

//! The timer table: every per-transaction deadline of the PBX in one heap
//! keyed by `(Instant, Timer)`, so arming or firing one costs O(log n)
//! whatever the number of live transactions, and a new kind of timer is
//! one more [`Timer`] variant (and its arm where the front dispatches).
//!
//! Like quinn-proto's `TimerTable`, the table knows deadlines, not what
//! they mean: the owner of a timer arms it with its current deadline after
//! anything that may move it, and is handed the [`Timer`] back when it is
//! due. An entry goes stale when its deadline moves (it is not looked for
//! and removed); the owner checks, when a timer pops, that its deadline
//! really is due, and ignores it otherwise.

use std::cmp::Reverse;
use std::collections::BinaryHeap;
use std::time::Instant;

/// What a deadline belongs to. Ties at one instant fire in this order.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Timer {
    /// A server transaction's timer (G, H, I, J or L), by its key.
    Server(String),
    /// A forwarded INVITE, by our branch: timer A or B of its client
    /// transaction, or the end of its mapping.
    Forward(String),
}

/// Deadlines, earliest first.
#[derive(Debug, Default)]
pub(crate) struct TimerTable {
    heap: BinaryHeap<Reverse<(Instant, Timer)>>,
}

impl TimerTable {
    /// Arms `timer` at `at`; `None` (nothing left to time) arms nothing.
    pub(crate) fn set(&mut self, timer: Timer, at: Option<Instant>) {
        if let Some(at) = at {
            self.heap.push(Reverse((at, timer)));
        }
    }

    /// The earliest deadline armed.
    pub(crate) fn next_timeout(&self) -> Option<Instant> {
        self.heap.peek().map(|Reverse((at, _))| *at)
    }

    /// The earliest timer due at `now`, taken off the table.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<Timer> {
        if self.next_timeout()? > now {
            return None;
        }
        self.heap.pop().map(|Reverse((_, timer))| timer)
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn timers_pop_in_deadline_order_then_kind_order() {
        let t0 = Instant::now();
        let mut t = TimerTable::default();
        t.set(
            Timer::Forward("b".into()),
            Some(t0 + Duration::from_secs(2)),
        );
        t.set(Timer::Forward("a".into()), Some(t0));
        t.set(Timer::Server("k".into()), Some(t0));
        t.set(Timer::Server("never".into()), None);
        assert_eq!(t.next_timeout(), Some(t0));
        assert_eq!(t.pop_expired(t0), Some(Timer::Server("k".into())));
        assert_eq!(t.pop_expired(t0), Some(Timer::Forward("a".into())));
        assert_eq!(t.pop_expired(t0), None);
        assert_eq!(
            t.pop_expired(t0 + Duration::from_secs(3)),
            Some(Timer::Forward("b".into()))
        );
        assert_eq!(t.next_timeout(), None);
    }
}

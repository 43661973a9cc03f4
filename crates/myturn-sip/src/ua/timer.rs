//! Every timer of the agent, as one table of deadlines keyed by a timer
//! enum (as quinn-proto's `TimerTable`): [`Timer`] for the agent's own,
//! [`CallTimer`] for each call's. The table sets, stops and finds the next
//! deadline; what a timer does when it fires is its owner's. A new timer is
//! one variant here (and its owner's handling of it): `poll_timeout`
//! finds it without being told.
//!
//! The client and server transactions keep their RFC 3261 §17 timers in
//! [`crate::transaction`]; `poll_timeout` takes those too.

use std::marker::PhantomData;
use web_time::Instant;

/// A fieldless enum naming every timer of one owner.
pub(super) trait TimerKind: Copy + 'static {
    /// Every variant, in the order they fire when due together.
    const ALL: &'static [Self];
    /// The variant's slot in a table.
    fn index(self) -> usize;
}

/// Declares a timer enum: its variants, [`TimerKind::ALL`] in declaration
/// order and `COUNT`, so a new timer is one variant.
macro_rules! timers {
    ($(#[$doc:meta])* $name:ident { $($(#[$vdoc:meta])* $variant:ident,)+ }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(super) enum $name {
            $($(#[$vdoc])* $variant,)+
        }

        impl $name {
            /// How many there are.
            pub(super) const COUNT: usize = [$($name::$variant),+].len();
        }

        impl TimerKind for $name {
            const ALL: &'static [Self] = &[$($name::$variant),+];
            fn index(self) -> usize {
                self as usize
            }
        }
    };
}

timers! {
    /// The agent's own timers.
    Timer {
        /// The next NAT keep-alive OPTIONS, while registered.
        KeepAlive,
        /// The registration refresh (or, after a failure, its retry).
        RegisterRefresh,
    }
}

timers! {
    /// A call's timers.
    CallTimer {
        /// The next retransmission of our 2xx, until the ACK (§13.3.1.4).
        Retransmit2xx,
        /// No ACK for our 2xx after 64·T1: the call is hung up.
        AckTimeout,
        /// Session timer (RFC 4028): hang up if the refresher has not
        /// refreshed by then (the signalling path or the PBX is gone).
        SessionExpires,
        /// An ended call is forgotten (late retransmissions are absorbed
        /// until then).
        Forget,
    }
}

/// A deadline, or none, for each timer of kind `T` (`N` of them).
#[derive(Debug, Clone, Copy)]
pub(super) struct TimerTable<T, const N: usize> {
    at: [Option<Instant>; N],
    kind: PhantomData<T>,
}

/// The agent's timer table.
pub(super) type Timers = TimerTable<Timer, { Timer::COUNT }>;
/// A call's timer table.
pub(super) type CallTimers = TimerTable<CallTimer, { CallTimer::COUNT }>;

impl<T, const N: usize> Default for TimerTable<T, N> {
    fn default() -> Self {
        TimerTable {
            at: [None; N],
            kind: PhantomData,
        }
    }
}

impl<T: TimerKind, const N: usize> TimerTable<T, N> {
    /// Arms `timer` for `at` (re-arms it if it was set).
    pub(super) fn set(&mut self, timer: T, at: Instant) {
        self.at[timer.index()] = Some(at);
    }

    /// Arms `timer` for `at`, or stops it for `None`.
    pub(super) fn set_or_stop(&mut self, timer: T, at: Option<Instant>) {
        self.at[timer.index()] = at;
    }

    /// Disarms `timer`.
    pub(super) fn stop(&mut self, timer: T) {
        self.at[timer.index()] = None;
    }

    /// When `timer` fires, if it is armed.
    pub(super) fn get(&self, timer: T) -> Option<Instant> {
        self.at[timer.index()]
    }

    /// Whether `timer` is armed and due at `now`.
    pub(super) fn is_expired(&self, timer: T, now: Instant) -> bool {
        self.get(timer).is_some_and(|at| at <= now)
    }

    /// The timers due at `now`, in [`TimerKind::ALL`] order: a snapshot,
    /// so their handlers may set and stop timers while it is walked.
    pub(super) fn expired(&self, now: Instant) -> impl Iterator<Item = T> {
        let table = *self;
        T::ALL
            .iter()
            .copied()
            .filter(move |&t| table.is_expired(t, now))
    }

    /// The earliest armed deadline.
    pub(super) fn next_timeout(&self) -> Option<Instant> {
        self.at.iter().flatten().min().copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn the_table_finds_the_earliest_and_the_due() {
        let t0 = Instant::now();
        let mut t = CallTimers::default();
        assert_eq!(t.next_timeout(), None);
        t.set(CallTimer::Forget, t0 + Duration::from_secs(3));
        t.set(CallTimer::Retransmit2xx, t0 + Duration::from_secs(1));
        assert_eq!(t.next_timeout(), Some(t0 + Duration::from_secs(1)));
        assert_eq!(t.get(CallTimer::AckTimeout), None);
        let due: Vec<_> = t.expired(t0 + Duration::from_secs(3)).collect();
        assert_eq!(due, [CallTimer::Retransmit2xx, CallTimer::Forget]);
        assert!(!t.is_expired(CallTimer::Forget, t0));
        t.stop(CallTimer::Retransmit2xx);
        t.set_or_stop(CallTimer::Forget, None);
        assert_eq!(t.next_timeout(), None);
    }

    #[test]
    fn every_variant_has_its_own_slot() {
        for (i, t) in Timer::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
        }
        for (i, t) in CallTimer::ALL.iter().enumerate() {
            assert_eq!(t.index(), i);
        }
        assert_eq!(Timer::ALL.len(), Timer::COUNT);
        assert_eq!(CallTimer::ALL.len(), CallTimer::COUNT);
    }
}

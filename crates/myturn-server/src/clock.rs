//! The one clock of the server (quinn-proto's `TimeSource`, in spirit).
//!
//! Every use case of the [`Core`](crate::core::Core) takes one [`At`], read
//! once per request or timer tick from a [`Clock`]. The rules keep
//! wall-clock milliseconds in their records (leases, grace periods, rate
//! limits, token expiry, ban ends, chat timestamps), so a state shared by
//! machines means the same on each; the monotonic instant is the node's,
//! for its own timers (sockets, the sweeper). The core itself never reads
//! a clock, so tests drive it with any time they like.

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// A moment, as the core takes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct At {
    /// Monotonic time: liveness, deadlines, rate limits.
    pub mono: Instant,
    /// Milliseconds since the Unix epoch: what clients and admins see.
    pub unix_ms: u64,
}

impl At {
    /// `mono`, at `unix_ms` wall-clock milliseconds.
    pub fn new(mono: Instant, unix_ms: u64) -> Self {
        At { mono, unix_ms }
    }

    /// Seconds since the Unix epoch.
    pub fn unix(&self) -> u64 {
        self.unix_ms / 1000
    }

    /// The wall-clock milliseconds of an earlier (or later) monotonic
    /// instant, as seen from this moment.
    pub fn unix_ms_of(&self, mono: Instant) -> u64 {
        if mono <= self.mono {
            let back = u64::try_from((self.mono - mono).as_millis()).unwrap_or(u64::MAX);
            self.unix_ms.saturating_sub(back)
        } else {
            let ahead = u64::try_from((mono - self.mono).as_millis()).unwrap_or(u64::MAX);
            self.unix_ms.saturating_add(ahead)
        }
    }

    /// The monotonic instant of a wall-clock moment, as seen from this
    /// moment.
    pub fn mono_of(&self, unix_ms: u64) -> Instant {
        if unix_ms >= self.unix_ms {
            self.mono + Duration::from_millis(unix_ms - self.unix_ms)
        } else {
            self.mono
                .checked_sub(Duration::from_millis(self.unix_ms - unix_ms))
                .unwrap_or(self.mono)
        }
    }

    /// The same moment `d` later.
    pub fn after(&self, d: Duration) -> Self {
        At {
            mono: self.mono + d,
            unix_ms: self.unix_ms.saturating_add(d.as_millis() as u64),
        }
    }
}

/// Where the server's time comes from.
pub trait Clock: Send + Sync + std::fmt::Debug {
    /// Now.
    fn now(&self) -> At;
}

/// The system's clocks: [`Instant::now`] and [`SystemTime::now`], read
/// together.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> At {
        At {
            mono: Instant::now(),
            unix_ms: SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis() as u64),
        }
    }
}

/// Seconds since the Unix epoch, from the system clock (for tests and
/// tools that compare against what the server says).
pub fn unix_now() -> u64 {
    SystemClock.now().unix()
}

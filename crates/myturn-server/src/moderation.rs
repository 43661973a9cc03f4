//! Bans, reports and rate limits. Plain data, `now` passed in.

use std::collections::{HashMap, VecDeque};
use std::hash::Hash;
use std::net::IpAddr;
use std::time::{Duration, Instant};

use myturn_wire::{Ban, Report};

use crate::registry::UserId;

/// Longest ban, in seconds (a year).
pub(crate) const MAX_BAN_SECS: u64 = 365 * 24 * 3600;
/// Reports kept in memory; the oldest go first.
pub(crate) const MAX_REPORTS: usize = 10_000;

/// Banned names (lower-cased) and when their bans end.
#[derive(Debug, Default)]
pub(crate) struct Bans {
    until: HashMap<String, u64>,
}

impl Bans {
    /// Bans `name` until `until_unix`.
    pub(crate) fn ban(&mut self, name: &str, until_unix: u64) {
        self.until.insert(name.to_ascii_lowercase(), until_unix);
    }

    /// Lifts a ban; `false` if there was none.
    pub(crate) fn lift(&mut self, name: &str) -> bool {
        self.until.remove(&name.to_ascii_lowercase()).is_some()
    }

    /// When the ban on `name` ends, if it is banned at `now_unix`.
    pub(crate) fn banned_until(&self, name: &str, now_unix: u64) -> Option<u64> {
        self.until
            .get(&name.to_ascii_lowercase())
            .copied()
            .filter(|&u| u > now_unix)
    }

    /// Active bans, by name; drops expired ones.
    pub(crate) fn active(&mut self, now_unix: u64) -> Vec<Ban> {
        self.until.retain(|_, &mut u| u > now_unix);
        let mut v: Vec<Ban> = self
            .until
            .iter()
            .map(|(n, &u)| Ban {
                name: n.clone(),
                until: u,
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }
}

/// Reports, newest last, at most [`MAX_REPORTS`].
#[derive(Debug, Default)]
pub(crate) struct Reports {
    list: VecDeque<Report>,
}

impl Reports {
    /// Files a report.
    pub(crate) fn add(&mut self, r: Report) {
        if self.list.len() >= MAX_REPORTS {
            self.list.pop_front();
        }
        self.list.push_back(r);
    }

    /// All reports, oldest first.
    pub(crate) fn all(&self) -> Vec<Report> {
        self.list.iter().cloned().collect()
    }
}

/// What is being limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum LimitKey {
    /// `POST /v1/users` per client IP.
    Register(IpAddr),
    /// `POST /v1/session/refresh` per client IP.
    Refresh(IpAddr),
    /// Lobby chat lines per user.
    Lobby(UserId),
    /// Reports per user.
    Report(UserId),
    /// Lobby typing indicators per user.
    Typing(UserId),
}

/// A token bucket's shape: `burst` at once, then one per `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// Bucket size.
    pub burst: u32,
    /// Refill period of one token.
    pub every: Duration,
}

impl LimitKey {
    /// The budget for this kind of key.
    pub(crate) fn budget(&self) -> Budget {
        let (burst, secs) = match self {
            LimitKey::Register(_) => (10, 6.0), // 10 at once, then 10/min
            LimitKey::Refresh(_) => (20, 3.0),  // 20 at once, then 20/min
            LimitKey::Lobby(_) => (5, 2.0),     // 5 lines at once, then 1 per 2 s
            LimitKey::Report(_) => (3, 60.0),   // 3 at once, then 1/min
            LimitKey::Typing(_) => (2, 1.0),    // at most ~1 indicator a second
        };
        Budget {
            burst,
            every: Duration::from_secs_f64(secs),
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

/// Token buckets keyed by [`LimitKey`].
#[derive(Debug)]
pub(crate) struct RateLimiter<K = LimitKey> {
    enabled: bool,
    buckets: HashMap<K, Bucket>,
}

impl<K: Eq + Hash + Copy> RateLimiter<K> {
    /// A limiter; `enabled: false` lets everything through.
    pub(crate) fn new(enabled: bool) -> Self {
        RateLimiter {
            enabled,
            buckets: HashMap::new(),
        }
    }

    /// Takes one token for `key`, or says how long until one is available.
    pub(crate) fn check(&mut self, key: K, budget: Budget, now: Instant) -> Result<(), Duration> {
        if !self.enabled {
            return Ok(());
        }
        let per_sec = 1.0 / budget.every.as_secs_f64();
        let b = self.buckets.entry(key).or_insert(Bucket {
            tokens: f64::from(budget.burst),
            at: now,
        });
        let elapsed = now.saturating_duration_since(b.at).as_secs_f64();
        b.tokens = (b.tokens + elapsed * per_sec).min(f64::from(budget.burst));
        b.at = now;
        if b.tokens >= 1.0 {
            b.tokens -= 1.0;
            Ok(())
        } else {
            Err(Duration::from_secs_f64((1.0 - b.tokens) / per_sec))
        }
    }

    /// Forgets buckets that have refilled completely (they behave exactly
    /// like absent ones), so memory follows active clients only.
    pub(crate) fn prune(&mut self, now: Instant, budget_of: impl Fn(&K) -> Budget) {
        self.buckets.retain(|k, b| {
            let budget = budget_of(k);
            let full_after = budget.every.mul_f64(f64::from(budget.burst));
            now.saturating_duration_since(b.at) < full_after
        });
    }

    /// Buckets held.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.buckets.len()
    }

    /// `true` when no bucket is held.
    #[cfg(test)]
    pub(crate) fn is_empty(&self) -> bool {
        self.buckets.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_expire_and_ignore_case() {
        let mut b = Bans::default();
        b.ban("Alice", 100);
        assert_eq!(b.banned_until("ALICE", 50), Some(100));
        assert_eq!(b.banned_until("alice", 100), None);
        assert_eq!(b.active(50).len(), 1);
        assert!(b.active(100).is_empty());
        b.ban("bob", 100);
        assert!(b.lift("BOB"));
        assert!(!b.lift("bob"));
    }

    #[test]
    fn reports_are_capped() {
        let mut r = Reports::default();
        for i in 0..MAX_REPORTS + 5 {
            r.add(Report {
                reporter: format!("r{i}"),
                reported: "x".into(),
                reason: "y".into(),
                at: i as u64,
            });
        }
        let all = r.all();
        assert_eq!(all.len(), MAX_REPORTS);
        assert_eq!(all[0].reporter, "r5");
    }

    #[test]
    fn token_bucket_bursts_then_refills() {
        let mut l = RateLimiter::new(true);
        let t0 = Instant::now();
        let key = LimitKey::Lobby(1);
        let budget = key.budget();
        for _ in 0..5 {
            l.check(key, budget, t0).unwrap();
        }
        let wait = l.check(key, budget, t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(1900) && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
        // Another user is unaffected.
        l.check(LimitKey::Lobby(2), budget, t0).unwrap();
        // After 2 s one more token.
        let t1 = t0 + Duration::from_secs(2);
        l.check(key, budget, t1).unwrap();
        assert!(l.check(key, budget, t1).is_err());
        // Pruning keeps buckets that have not refilled.
        l.prune(t1, |k| k.budget());
        assert_eq!(l.len(), 2);
        l.prune(t1 + Duration::from_secs(60), |k| k.budget());
        assert!(l.is_empty());
    }

    #[test]
    fn disabled_limiter_lets_everything_through() {
        let mut l = RateLimiter::new(false);
        let key = LimitKey::Report(1);
        for _ in 0..100 {
            l.check(key, key.budget(), Instant::now()).unwrap();
        }
    }
}

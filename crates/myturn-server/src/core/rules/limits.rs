//! Rate limits: a token bucket per [`LimitKey`], kept in the state (so a
//! shared state shares them), `now` passed in.

use std::time::Duration;

use crate::core::state::{elapsed, Bucket, LimitKey, Millis, State};

/// A token bucket's shape: `burst` at once, then one per `every`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Budget {
    /// Bucket size.
    pub(crate) burst: u32,
    /// Refill period of one token.
    pub(crate) every: Duration,
}

/// The budget for a kind of key.
pub(crate) fn budget(key: &LimitKey) -> Budget {
    let (burst, secs) = match key {
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

/// Takes one token for `key`, or says how long until one is available.
/// `enabled: false` lets everything through.
pub(crate) fn check(
    st: &mut dyn State,
    enabled: bool,
    key: LimitKey,
    now: Millis,
) -> Result<(), Duration> {
    if !enabled {
        return Ok(());
    }
    let budget = budget(&key);
    let per_sec = 1.0 / budget.every.as_secs_f64();
    let mut b = st.bucket(&key).unwrap_or(Bucket {
        tokens: f64::from(budget.burst),
        at: now,
    });
    let waited = elapsed(now, b.at).as_secs_f64();
    b.tokens = (b.tokens + waited * per_sec).min(f64::from(budget.burst));
    b.at = now;
    let verdict = if b.tokens >= 1.0 {
        b.tokens -= 1.0;
        Ok(())
    } else {
        Err(Duration::from_secs_f64((1.0 - b.tokens) / per_sec))
    };
    st.put_bucket(key, b);
    verdict
}

/// Forgets buckets that have refilled completely (they behave exactly
/// like absent ones), so memory follows active clients only.
pub(crate) fn prune(st: &mut dyn State, now: Millis) {
    st.retain_buckets(&mut |k, b| {
        let budget = budget(k);
        let full_after = budget.every.mul_f64(f64::from(budget.burst));
        elapsed(now, b.at) < full_after
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::MemState;

    #[test]
    fn token_bucket_bursts_then_refills() {
        let mut st = MemState::default();
        let t0: Millis = 1_800_000_000_000;
        let key = LimitKey::Lobby(1);
        for _ in 0..5 {
            check(&mut st, true, key, t0).unwrap();
        }
        let wait = check(&mut st, true, key, t0).unwrap_err();
        assert!(
            wait > Duration::from_millis(1900) && wait <= Duration::from_secs(2),
            "{wait:?}"
        );
        // Another user is unaffected.
        check(&mut st, true, LimitKey::Lobby(2), t0).unwrap();
        // After 2 s one more token.
        let t1 = t0 + 2_000;
        check(&mut st, true, key, t1).unwrap();
        assert!(check(&mut st, true, key, t1).is_err());
        // Pruning keeps buckets that have not refilled.
        prune(&mut st, t1);
        assert_eq!(st.bucket_count(), 2);
        prune(&mut st, t1 + 60_000);
        assert_eq!(st.bucket_count(), 0);
    }

    #[test]
    fn disabled_limiter_lets_everything_through() {
        let mut st = MemState::default();
        let key = LimitKey::Report(1);
        for _ in 0..100 {
            check(&mut st, false, key, 0).unwrap();
        }
    }
}

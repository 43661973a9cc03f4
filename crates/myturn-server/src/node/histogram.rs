//! A Prometheus histogram of seconds: fixed buckets, lock-free counts.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Upper bounds of the wait-time buckets, seconds (the interest wait's
/// default, 8 s, is one of them).
pub(crate) const WAIT_BUCKETS: [f64; 11] =
    [0.1, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 12.0, 20.0, 30.0, 60.0];

/// Counts of observations at or below each bound, their sum and count.
#[derive(Debug, Default)]
pub(crate) struct Histogram {
    buckets: [AtomicU64; WAIT_BUCKETS.len()],
    sum_micros: AtomicU64,
    count: AtomicU64,
}

impl Histogram {
    /// Counts one observation.
    pub(crate) fn observe(&self, d: Duration) {
        let secs = d.as_secs_f64();
        for (b, le) in self.buckets.iter().zip(WAIT_BUCKETS) {
            if secs <= le {
                b.fetch_add(1, Relaxed);
            }
        }
        self.sum_micros
            .fetch_add(u64::try_from(d.as_micros()).unwrap_or(u64::MAX), Relaxed);
        self.count.fetch_add(1, Relaxed);
    }

    /// Writes the series of `name` with `labels` (`kind="shared"`).
    pub(crate) fn render(&self, out: &mut String, name: &str, labels: &str) {
        for (b, le) in self.buckets.iter().zip(WAIT_BUCKETS) {
            let _ = writeln!(
                out,
                "{name}_bucket{{{labels},le=\"{le}\"}} {}",
                b.load(Relaxed)
            );
        }
        let count = self.count.load(Relaxed);
        let _ = writeln!(out, "{name}_bucket{{{labels},le=\"+Inf\"}} {count}");
        let sum = self.sum_micros.load(Relaxed) as f64 / 1e6;
        let _ = writeln!(out, "{name}_sum{{{labels}}} {sum}");
        let _ = writeln!(out, "{name}_count{{{labels}}} {count}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_are_cumulative() {
        let h = Histogram::default();
        h.observe(Duration::from_millis(300));
        h.observe(Duration::from_secs(9));
        let mut out = String::new();
        h.render(&mut out, "w", "kind=\"x\"");
        assert!(out.contains("w_bucket{kind=\"x\",le=\"0.25\"} 0"), "{out}");
        assert!(out.contains("w_bucket{kind=\"x\",le=\"0.5\"} 1"), "{out}");
        assert!(out.contains("w_bucket{kind=\"x\",le=\"12\"} 2"), "{out}");
        assert!(out.contains("w_bucket{kind=\"x\",le=\"+Inf\"} 2"), "{out}");
        assert!(out.contains("w_count{kind=\"x\"} 2"), "{out}");
        assert!(out.contains("w_sum{kind=\"x\"} 9.3"), "{out}");
    }
}

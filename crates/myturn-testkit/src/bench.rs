//! Timing for the benchmarks (`harness = false`): the median of several
//! rounds, after a warm-up.

use std::time::Instant;

/// Median of `rounds` timings of `iters` calls of `f`, in ns per call,
/// after `iters / 4` calls of warm-up.
pub fn median_ns(mut f: impl FnMut(), iters: u32, rounds: usize) -> f64 {
    for _ in 0..iters / 4 {
        f();
    }
    let mut v: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            for _ in 0..iters {
                f();
            }
            t.elapsed().as_nanos() as f64 / f64::from(iters)
        })
        .collect();
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

//! Prometheus text exposition helpers, shared by every part that writes
//! `GET /metrics` lines.

use std::fmt::Write as _;

/// Writes one counter with its help line.
pub(crate) fn counter(out: &mut String, name: &str, help: &str, v: u64) {
    let _ = writeln!(
        out,
        "# HELP {name} {help}\n# TYPE {name} counter\n{name} {v}"
    );
}

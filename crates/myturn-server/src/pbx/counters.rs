//! What the sync task counts: files written, reloads, failures.

use std::sync::atomic::AtomicU64;

/// Counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct PbxCounters {
    /// Generated files written.
    pub config_writes: AtomicU64,
    /// Failed file writes.
    pub write_failures: AtomicU64,
    /// Successful reloads.
    pub reloads: AtomicU64,
    /// Failed reloads.
    pub reload_failures: AtomicU64,
}

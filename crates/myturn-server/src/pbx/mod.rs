//! The PBX backends and the task that keeps the PBX in step with the
//! users: the built-in registrar/proxy (`myturn-pbx`, fed the account
//! directory in memory), Asterisk (generated files + reload), or
//! Kamailio (the accounts in Redis, changes only).
//!
//! The pairing logic never talks to a PBX directly, nor knows which one
//! runs: a use case that changes the accounts says so in its
//! [`Effects`](crate::core::Effects), the store pokes
//! [`PbxSync::mark_dirty`], and the [`Backend`] does the rest; the
//! [`sync`] task then renders the whole generated config from a snapshot,
//! writes only the files whose text changed (atomically), and asks the PBX
//! to reload. Pokes that arrive while a write is pending are coalesced, so
//! a burst of 10,000 registrations costs a handful of writes and reloads.
//! [`setup`] picks the backend from the flags.

pub mod asterisk;
pub mod backend;
pub mod builtin;
mod counters;
mod error;
mod files;
pub mod kamailio;
pub mod reload;
pub mod setup;
pub mod sync;

pub use backend::{AsteriskFiles, Backend, LiveSummary, NoPbx, SyncError};
pub use builtin::Builtin;
pub use counters::PbxCounters;
pub use kamailio::{Kamailio, KamailioError};
pub use sync::{PbxStatus, PbxSync};

/// Which PBX the server drives (the `--pbx` flag's values).
pub use crate::config::PbxKind;

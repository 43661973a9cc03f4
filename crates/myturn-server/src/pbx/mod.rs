//! The PBX backends and the task that keeps the PBX in step with the
//! registry: the built-in registrar/proxy (`myturn-pbx`, fed the account
//! directory in memory) or Asterisk (generated files + reload).
//!
//! The pairing logic never talks to a PBX directly, nor knows which one
//! runs: a use case that changes the accounts says so in its
//! [`Effects`](crate::core::Effects), the store pokes
//! [`PbxSync::mark_dirty`], and the [`Backend`] does the rest;
//! the [`sync`] task then renders the whole generated config from a snapshot,
//! writes only the files whose text changed (atomically), and asks the PBX to
//! reload. Pokes that arrive while a write is pending are coalesced, so a
//! burst of 10,000 registrations costs a handful of writes and reloads.

pub mod asterisk;
pub mod backend;
mod files;
pub mod reload;
pub mod sync;

pub use backend::{AsteriskFiles, Backend, Builtin, NoPbx};
pub use sync::{PbxStatus, PbxSync};

/// Which PBX the server drives.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum PbxKind {
    /// The built-in SIP registrar and proxy on `--sip-listen` (the
    /// default): the whole system on one machine, nothing else installed.
    Builtin,
    /// No PBX: pairing only (tests, load benchmarks, or a PBX provisioned
    /// some other way).
    None,
    /// Asterisk up to 20 with chan_sip: `myturn_sip.conf` +
    /// `myturn_extensions.conf`, reloaded with `sip reload` and
    /// `dialplan reload`.
    Asterisk,
    /// Asterisk 21+ with PJSIP: `myturn_pjsip.conf` +
    /// `myturn_extensions.conf`, reloaded with `module reload res_pjsip.so`
    /// and `dialplan reload`.
    AsteriskPjsip,
}

impl PbxKind {
    /// The spelling used on the command line and in `/healthz`.
    pub fn as_str(self) -> &'static str {
        match self {
            PbxKind::Builtin => "builtin",
            PbxKind::None => "none",
            PbxKind::Asterisk => "asterisk",
            PbxKind::AsteriskPjsip => "asterisk-pjsip",
        }
    }

    /// Asterisk, either channel driver.
    pub fn is_asterisk(self) -> bool {
        matches!(self, PbxKind::Asterisk | PbxKind::AsteriskPjsip)
    }

    /// The Asterisk CLI commands that load the generated files.
    pub fn reload_commands(self) -> &'static [&'static str] {
        match self {
            PbxKind::None | PbxKind::Builtin => &[],
            PbxKind::Asterisk => &["sip reload", "dialplan reload"],
            PbxKind::AsteriskPjsip => &["module reload res_pjsip.so", "dialplan reload"],
        }
    }
}

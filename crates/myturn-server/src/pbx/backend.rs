//! The PBX backends behind one trait. The sync task
//! ([`PbxSync`](super::PbxSync)) and the API only ever see a
//! [`Backend`]: nothing outside this module branches on which PBX runs.
//!
//! * [`NoPbx`]: `--pbx none`, pairing only.
//! * [`AsteriskFiles`]: Asterisk 20 (chan_sip) or 21+ (PJSIP): generated
//!   files, written atomically when their text changed, then a reload.
//! * [`Builtin`](super::builtin::Builtin): the built-in registrar/proxy,
//!   fed its account directory in memory; it also reports its SIP and
//!   media figures (`super::builtin`).
//! * [`Kamailio`](super::kamailio::Kamailio): the accounts in Redis, for
//!   Kamailio nodes' db_redis (`super::kamailio`).

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::Ordering;

use myturn_pbx::core::Account;
use myturn_wire::AdminMedia;

use super::asterisk::{reload_commands, render, RenderOptions, Rendered};
use super::counters::PbxCounters;
use super::files::{write_atomic, WriteError};
use super::reload::{ReloadError, Reloader};
use crate::config::PbxKind;
use crate::core::PbxUser;

/// Why a PBX update failed.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// A generated file could not be written.
    #[error(transparent)]
    Write(#[from] WriteError),
    /// The PBX did not reload.
    #[error("reload failed: {0}")]
    Reload(#[from] ReloadError),
    /// A backend's account store (Kamailio's Redis) did not take the
    /// accounts. Boxed, so this module names no backend.
    #[error(transparent)]
    Accounts(Box<dyn std::error::Error + Send + Sync>),
}

/// One sync pass's inputs: the users the PBX must hold, what is on
/// disk, the counters to bump.
#[derive(Debug)]
pub struct Pass<'a> {
    /// Every user, by extension.
    pub users: &'a [PbxUser],
    /// What earlier passes wrote.
    pub st: &'a mut SyncState,
    /// Writes and reloads, counted.
    pub counters: &'a PbxCounters,
}

/// A PBX update under way.
pub type Applying<'a> = Pin<Box<dyn Future<Output = Result<(), SyncError>> + Send + 'a>>;

/// The few live figures the console's history samples (zero when no PBX
/// runs in this process).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveSummary {
    /// Calls whose media is anchored now.
    pub relayed_calls: u64,
    /// Media datagrams relayed since start.
    pub relay_packets_total: u64,
    /// Users registered over SIP.
    pub sip_bindings: u64,
}

/// `GET /v1/admin/media` when no media runs through this process.
pub(crate) fn no_media() -> AdminMedia {
    AdminMedia {
        mode: "none".into(),
        ports_free: 0,
        ports_capacity: 0,
        packets: 0,
        bytes: 0,
        dropped: 0,
        exhausted: 0,
        calls: Vec::new(),
    }
}

/// Remembers what is on disk, so unchanged files are not rewritten.
#[derive(Debug, Default)]
pub struct SyncState {
    written: HashMap<&'static str, String>,
    reload_pending: bool,
}

/// One PBX the server keeps in step with its users.
pub trait Backend: Send + Sync + std::fmt::Debug {
    /// As `--pbx` spells it (shown in `/healthz` and the admin API).
    fn name(&self) -> &'static str;
    /// `false` when there is no PBX to keep in step.
    fn active(&self) -> bool {
        true
    }
    /// `true` when a change takes effect in memory at once (nothing to
    /// write or reload, so nothing can be out of step or worth
    /// coalescing).
    fn in_memory(&self) -> bool;
    /// Makes the PBX hold exactly `pass.users`.
    fn apply<'a>(&'a self, pass: Pass<'a>) -> Applying<'a>;
    /// What the PBX holds for `users`, secrets redacted, as an operator
    /// would read it (generated files, or the built-in directory with its
    /// live bindings).
    fn render_redacted(&self, users: &[PbxUser]) -> Vec<Rendered>;
    /// `/metrics` lines for a PBX that runs in this process (none by
    /// default).
    fn render_metrics(&self, _out: &mut String) {}
    /// What the console's history samples.
    fn summary(&self) -> LiveSummary {
        LiveSummary::default()
    }
    /// `GET /v1/admin/media`: the media anchored by this process.
    fn media(&self) -> AdminMedia {
        no_media()
    }
    /// Tests only: the accounts an in-process PBX holds now.
    #[doc(hidden)]
    fn directory(&self) -> Option<Vec<Account>> {
        None
    }
    /// The SIP edge of a PBX that runs in this process (its blocked
    /// sources, and unblocking them), if any.
    fn sip_edge(&self) -> Option<myturn_pbx::driver::PbxHandle> {
        None
    }
}

/// `--pbx none`.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoPbx;

impl Backend for NoPbx {
    fn name(&self) -> &'static str {
        PbxKind::None.as_str()
    }
    fn active(&self) -> bool {
        false
    }
    fn in_memory(&self) -> bool {
        true
    }
    fn apply<'a>(&'a self, _: Pass<'a>) -> Applying<'a> {
        Box::pin(std::future::ready(Ok(())))
    }
    fn render_redacted(&self, _: &[PbxUser]) -> Vec<Rendered> {
        Vec::new()
    }
}

/// Asterisk, through generated files and a reload.
#[derive(Debug)]
pub struct AsteriskFiles {
    /// chan_sip or PJSIP.
    pub kind: PbxKind,
    /// Asterisk's config directory.
    pub dir: PathBuf,
    /// Rendering options.
    pub opts: RenderOptions,
    /// How to make Asterisk load the files.
    pub reloader: Reloader,
}

impl AsteriskFiles {
    async fn write_and_reload(&self, pass: Pass<'_>) -> Result<(), SyncError> {
        let Pass {
            users,
            st,
            counters: c,
        } = pass;
        for f in render(self.kind, users, &self.opts, false) {
            if st.written.get(f.name) == Some(&f.content) {
                continue;
            }
            if let Err(e) = write_atomic(&self.dir, f.name, f.content.as_bytes()) {
                c.write_failures.fetch_add(1, Ordering::Relaxed);
                return Err(e.into());
            }
            c.config_writes.fetch_add(1, Ordering::Relaxed);
            st.written.insert(f.name, f.content);
            st.reload_pending = true;
        }
        if st.reload_pending {
            if let Err(e) = self.reloader.reload(reload_commands(self.kind)).await {
                c.reload_failures.fetch_add(1, Ordering::Relaxed);
                return Err(e.into());
            }
            c.reloads.fetch_add(1, Ordering::Relaxed);
            st.reload_pending = false;
        }
        Ok(())
    }
}

impl Backend for AsteriskFiles {
    fn name(&self) -> &'static str {
        self.kind.as_str()
    }
    fn in_memory(&self) -> bool {
        false
    }
    fn apply<'a>(&'a self, pass: Pass<'a>) -> Applying<'a> {
        Box::pin(self.write_and_reload(pass))
    }
    fn render_redacted(&self, users: &[PbxUser]) -> Vec<Rendered> {
        render(self.kind, users, &self.opts, true)
    }
}

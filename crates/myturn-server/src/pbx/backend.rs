//! The PBX backends behind one trait. The sync task
//! ([`PbxSync`](super::PbxSync)) and the API only ever see a
//! [`Backend`]: nothing outside this module branches on which PBX runs.
//!
//! * [`NoPbx`]: `--pbx none`, pairing only.
//! * [`AsteriskFiles`]: Asterisk 20 (chan_sip) or 21+ (PJSIP): generated
//!   files, written atomically when their text changed, then a reload.
//! * [`Builtin`]: the built-in registrar/proxy, fed its account directory
//!   in memory; it also reports its SIP and media figures.

use std::collections::HashMap;
use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::atomic::Ordering;

use myturn_pbx::core::{Account, Stats};
use myturn_pbx::driver::{MediaSnapshot, PbxHandle};
use tokio::sync::watch;

use super::asterisk::{render, RenderOptions, Rendered, REDACTED};
use super::files::write_atomic;
use super::reload::Reloader;
use super::sync::PbxCounters;
use super::PbxKind;
use crate::registry::PbxUser;

/// A PBX update under way.
pub type Applying<'a> = Pin<Box<dyn Future<Output = Result<(), String>> + Send + 'a>>;

/// What a running PBX reports of itself (the built-in one only).
#[derive(Debug, Clone, Default)]
pub struct LiveFigures {
    /// SIP counters, registered bindings, blocked sources.
    pub sip: Option<(Stats, usize, usize)>,
    /// The media relay.
    pub media: Option<MediaSnapshot>,
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
    /// Makes the PBX hold exactly `users`.
    fn apply<'a>(
        &'a self,
        users: &'a [PbxUser],
        st: &'a mut SyncState,
        counters: &'a PbxCounters,
    ) -> Applying<'a>;
    /// What the PBX holds for `users`, secrets redacted, as an operator
    /// would read it (generated files, or the built-in directory with its
    /// live bindings).
    fn render_redacted(&self, users: &[PbxUser]) -> Vec<Rendered>;
    /// Live figures, if the PBX runs in this process.
    fn live(&self) -> LiveFigures {
        LiveFigures::default()
    }
    /// Tests only: the accounts an in-process PBX holds now.
    #[doc(hidden)]
    fn directory(&self) -> Option<Vec<Account>> {
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
    fn apply<'a>(
        &'a self,
        _: &'a [PbxUser],
        _: &'a mut SyncState,
        _: &'a PbxCounters,
    ) -> Applying<'a> {
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
    async fn write_and_reload(
        &self,
        users: &[PbxUser],
        st: &mut SyncState,
        c: &PbxCounters,
    ) -> Result<(), String> {
        for f in render(self.kind, users, &self.opts, false) {
            if st.written.get(f.name) == Some(&f.content) {
                continue;
            }
            if let Err(e) = write_atomic(&self.dir, f.name, f.content.as_bytes()) {
                c.write_failures.fetch_add(1, Ordering::Relaxed);
                return Err(e.to_string());
            }
            c.config_writes.fetch_add(1, Ordering::Relaxed);
            st.written.insert(f.name, f.content);
            st.reload_pending = true;
        }
        if st.reload_pending {
            if let Err(e) = self.reloader.reload(self.kind.reload_commands()).await {
                c.reload_failures.fetch_add(1, Ordering::Relaxed);
                return Err(format!("reload failed: {e}"));
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
    fn apply<'a>(
        &'a self,
        users: &'a [PbxUser],
        st: &'a mut SyncState,
        counters: &'a PbxCounters,
    ) -> Applying<'a> {
        Box::pin(self.write_and_reload(users, st, counters))
    }
    fn render_redacted(&self, users: &[PbxUser]) -> Vec<Rendered> {
        render(self.kind, users, &self.opts, true)
    }
}

/// The built-in registrar/proxy: its account directory and its figures.
#[derive(Debug)]
pub struct Builtin {
    /// Every sync pass publishes the whole directory here.
    pub directory: watch::Sender<Vec<Account>>,
    /// Bindings, counters, blocked sources, media.
    pub handle: PbxHandle,
}

/// The built-in PBX's accounts for `users`.
pub fn accounts(users: &[PbxUser]) -> Vec<Account> {
    users
        .iter()
        .map(|u| Account {
            username: u.name.clone(),
            extension: u.extension.to_string(),
            password: u.secret.clone(),
        })
        .collect()
}

impl Backend for Builtin {
    fn name(&self) -> &'static str {
        PbxKind::Builtin.as_str()
    }
    fn in_memory(&self) -> bool {
        true
    }
    fn apply<'a>(
        &'a self,
        users: &'a [PbxUser],
        _: &'a mut SyncState,
        _: &'a PbxCounters,
    ) -> Applying<'a> {
        // In memory: the PBX applies it at once (users that left lose
        // their binding immediately).
        self.directory.send_replace(accounts(users));
        Box::pin(std::future::ready(Ok(())))
    }
    fn render_redacted(&self, users: &[PbxUser]) -> Vec<Rendered> {
        vec![Rendered {
            name: "builtin",
            content: render_builtin(users, &self.handle),
        }]
    }
    fn live(&self) -> LiveFigures {
        let h = &self.handle;
        LiveFigures {
            sip: Some((h.stats(), h.binding_count(), h.blocked_ips())),
            media: Some(h.media()),
        }
    }
    fn directory(&self) -> Option<Vec<Account>> {
        Some(self.directory.borrow().clone())
    }
}

/// The admin view of the built-in PBX, shaped like a `sip.conf`.
fn render_builtin(users: &[PbxUser], handle: &PbxHandle) -> String {
    use std::fmt::Write as _;
    let bindings = handle.bindings();
    let mut out = String::new();
    let _ = writeln!(
        out,
        "; Built-in PBX on {}: {} account(s), {} registered, {} source(s) blocked",
        handle.local,
        users.len(),
        bindings.len(),
        handle.blocked_ips()
    );
    for u in users {
        let b = bindings.iter().find(|(name, _, _)| *name == u.name);
        let _ = writeln!(out, "\n[{}]", u.name);
        let _ = writeln!(out, "extension={}", u.extension);
        let _ = writeln!(out, "secret={REDACTED}");
        match b {
            Some((_, contact, source)) => {
                let _ = writeln!(out, "contact={contact}");
                let _ = writeln!(out, "source={source}");
            }
            None => {
                let _ = writeln!(out, "contact=(not registered)");
            }
        }
    }
    out
}

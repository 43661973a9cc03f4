//! The built-in registrar/proxy (`myturn-pbx`) as a [`Backend`]: it is
//! fed its account directory in memory, and reports its SIP and media
//! figures. `run` builds and starts it from the server's flags.

pub(crate) mod run;
mod view;

use myturn_pbx::core::Account;
use myturn_pbx::driver::PbxHandle;
use myturn_wire::AdminMedia;
use tokio::sync::watch;

use super::asterisk::{Rendered, REDACTED};
use super::backend::{Applying, Backend, LiveSummary, Pass};
use crate::config::PbxKind;
use crate::core::PbxUser;

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
    fn apply<'a>(&'a self, pass: Pass<'a>) -> Applying<'a> {
        // In memory: the PBX applies it at once (users that left lose
        // their binding immediately).
        self.directory.send_replace(accounts(pass.users));
        Box::pin(std::future::ready(Ok(())))
    }
    fn render_redacted(&self, users: &[PbxUser]) -> Vec<Rendered> {
        vec![Rendered {
            name: "builtin",
            content: render_builtin(users, &self.handle),
        }]
    }
    fn render_metrics(&self, out: &mut String) {
        let sip = self.handle.figures();
        view::render_sip(out, &sip);
        view::render_media(out, &self.handle.media(), &sip.stats);
    }
    fn summary(&self) -> LiveSummary {
        let m = self.handle.media();
        LiveSummary {
            relayed_calls: m.calls.len() as u64,
            relay_packets_total: m.totals.packets,
            sip_bindings: self.handle.binding_count() as u64,
        }
    }
    fn media(&self) -> AdminMedia {
        view::admin_media(&self.handle.media(), &self.handle.stats())
    }
    fn directory(&self) -> Option<Vec<Account>> {
        Some(self.directory.borrow().clone())
    }
    fn sip_edge(&self) -> Option<PbxHandle> {
        Some(self.handle.clone())
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

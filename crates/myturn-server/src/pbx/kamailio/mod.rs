//! `--pbx kamailio`: the SIP accounts in Redis, where N Kamailio nodes
//! (`deploy/kamailio/kamailio.cfg`) read them through `db_redis`.
//!
//! Each user's account is a row of auth_db's `subscriber` table and its
//! extension a row of alias_db's `dbaliases` table, in the layout
//! [`layout`] describes; a sync pass writes only what changed since the
//! last one ([`writer`]), and the rows go when the user logs out, is
//! kicked or expires (with the user's registrations, so a name taken
//! again gets no calls meant for the one who left). The nodes share
//! usrloc through the same Redis; the server never reads it but to clean
//! up after a removed user.

pub mod layout;
pub mod writer;

use std::fmt::Write as _;
use std::sync::atomic::Ordering;

use super::asterisk::{Rendered, REDACTED};
use super::backend::{Applying, Backend, Pass, SyncError};
use crate::config::PbxKind;
use crate::core::PbxUser;
use crate::prom::counter;
pub use writer::{KamailioError, Writer};

/// The Kamailio backend.
#[derive(Debug)]
pub struct Kamailio {
    writer: Writer,
}

impl Kamailio {
    /// The backend writing into the Redis at `url`, its rows in the SIP
    /// domain `domain`; connects on the first pass (a Redis that is down
    /// is retried, `/healthz` says so).
    pub fn new(url: &str, domain: &str) -> Result<Kamailio, redis::RedisError> {
        Ok(Kamailio {
            writer: Writer::new(url, domain)?,
        })
    }

    /// The writer's counters.
    pub fn figures(&self) -> &writer::Figures {
        &self.writer.figures
    }
}

impl Backend for Kamailio {
    fn name(&self) -> &'static str {
        PbxKind::Kamailio.as_str()
    }
    fn in_memory(&self) -> bool {
        false
    }
    fn apply<'a>(&'a self, pass: Pass<'a>) -> Applying<'a> {
        Box::pin(async move {
            let c = pass.counters;
            match self.writer.apply(pass.users).await {
                Ok(()) => Ok(()),
                Err(e) => {
                    c.write_failures.fetch_add(1, Ordering::Relaxed);
                    Err(SyncError::Accounts(Box::new(e)))
                }
            }
        })
    }
    fn render_redacted(&self, users: &[PbxUser]) -> Vec<Rendered> {
        vec![Rendered {
            name: "kamailio",
            content: render(&self.writer.url, users),
        }]
    }
    fn render_metrics(&self, out: &mut String) {
        let f = &self.writer.figures;
        let ld = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP myturn_kamailio_accounts SIP accounts the server holds in Kamailio's Redis.\n# TYPE myturn_kamailio_accounts gauge\nmyturn_kamailio_accounts {}",
            ld(&f.accounts)
        );
        for (name, help, v) in [
            (
                "myturn_kamailio_transactions_total",
                "Sync passes that changed Kamailio's Redis (one MULTI/EXEC each).",
                &f.transactions,
            ),
            (
                "myturn_kamailio_accounts_written_total",
                "SIP accounts written into Kamailio's Redis.",
                &f.accounts_written,
            ),
            (
                "myturn_kamailio_accounts_removed_total",
                "SIP accounts removed from Kamailio's Redis.",
                &f.accounts_removed,
            ),
            (
                "myturn_kamailio_bindings_removed_total",
                "Registrations of removed users deleted from usrloc.",
                &f.bindings_removed,
            ),
            (
                "myturn_kamailio_reconciles_total",
                "Full read-backs of the accounts Kamailio's Redis holds.",
                &f.reconciles,
            ),
            (
                "myturn_kamailio_failures_total",
                "Sync passes Kamailio's Redis did not take.",
                &f.failures,
            ),
        ] {
            counter(out, name, help, ld(v));
        }
    }
}

/// The admin view: each user's rows, the password redacted.
fn render(url: &str, users: &[PbxUser]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "; Kamailio (db_redis) at {url}: {} account(s)",
        users.len()
    );
    for u in users {
        let _ = writeln!(out, "\n[{}]", u.name);
        let _ = writeln!(
            out,
            "{} password={REDACTED}",
            layout::subscriber_key(&u.name)
        );
        let _ = writeln!(
            out,
            "{} username={}",
            layout::alias_key(u.extension),
            u.name
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_admin_view_names_the_rows_and_hides_the_password() {
        let k = Kamailio::new("redis://:pw@127.0.0.1:6379/3", "sip.example.org").unwrap();
        let users = [PbxUser {
            name: "alice".into(),
            extension: 111_000,
            secret: "topsecret".into(),
        }];
        let r = k.render_redacted(&users);
        let text = &r[0].content;
        assert!(
            text.contains("subscriber:entry::alice password=<redacted>"),
            "{text}"
        );
        assert!(
            text.contains("dbaliases:entry::111000 username=alice"),
            "{text}"
        );
        assert!(
            !text.contains("topsecret") && !text.contains(":pw@"),
            "{text}"
        );
        assert_eq!(k.name(), "kamailio");
    }
}

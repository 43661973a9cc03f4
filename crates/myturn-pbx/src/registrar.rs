//! The registrar (RFC 3261 §10.3): the directory of accounts, who may
//! pass (digest challenges through [`crate::auth`], failures and passes
//! told to the flood guard, [`crate::guard`]), and the bindings REGISTER makes — each with its
//! expiry, 423 with Min-Expires below the shortest accepted, `Expires: 0`
//! and `*` removal, and a query answered with the binding.
//!
//! It answers statelessly, as Kamailio's `sl` does: a retransmitted
//! REGISTER is simply processed again, which is idempotent (same binding,
//! or a fresh challenge), and no transaction is kept for 32 s per request
//! under load. The proxy asks it who may call ([`Registrar::admit`]) and
//! where an extension's user is ([`Registrar::locate`]).

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use myturn_sip::build::Reply;
use myturn_sip::msg::Message;
use rsip::headers::{self as h, UntypedHeader};

use crate::auth::{claimed_user, Auth, Check, Role};
use crate::bindings::{Binding, Bindings};
use crate::config::{Account, Config};
use crate::ctx::{Ctx, Shared};
use crate::nonce::Nonces;
use crate::report::Event;

/// Where an extension leads.
#[derive(Debug)]
pub(crate) enum Located {
    /// Its user, and the user's binding.
    At(String, Binding),
    /// No account has it (404).
    Unknown,
    /// Its user is not registered (480).
    Offline,
}

/// The accounts the pairing server pushed: by username, and their
/// usernames by extension.
#[derive(Debug, Default)]
struct Directory {
    accounts: HashMap<String, Account>,
    by_extension: HashMap<String, String>,
}

impl Directory {
    fn new(accounts: impl IntoIterator<Item = Account>) -> Self {
        let accounts: HashMap<String, Account> = accounts
            .into_iter()
            .map(|a| (a.username.clone(), a))
            .collect();
        let by_extension = accounts
            .values()
            .map(|a| (a.extension.clone(), a.username.clone()))
            .collect();
        Directory {
            accounts,
            by_extension,
        }
    }
}

/// Accounts and bindings.
#[derive(Debug)]
pub(crate) struct Registrar {
    auth: Auth,
    directory: Directory,
    bindings: Bindings,
}

impl Registrar {
    /// No accounts yet; nonces made with `key`, from `now`.
    pub(crate) fn new(cfg: &Config, key: [u8; 32], now: Instant) -> Self {
        Registrar {
            auth: Auth::new(Nonces::new(key, now, cfg.nonce_lifetime)),
            directory: Directory::default(),
            bindings: Bindings::default(),
        }
    }

    /// Changes whenever the set of bindings changes.
    pub(crate) fn generation(&self) -> u64 {
        self.bindings.generation()
    }

    /// Number of accounts in the directory.
    pub(crate) fn account_count(&self) -> usize {
        self.directory.accounts.len()
    }

    /// Number of live bindings.
    pub(crate) fn binding_count(&self) -> usize {
        self.bindings.len()
    }

    /// Live bindings: (username, contact, source), sorted.
    pub(crate) fn bindings(&self) -> Vec<(String, String, SocketAddr)> {
        self.bindings.list()
    }

    /// Replaces the directory. Users no longer in it lose their binding at
    /// once.
    pub(crate) fn set_accounts(
        &mut self,
        sh: &mut Shared,
        accounts: impl IntoIterator<Item = Account>,
    ) {
        self.directory = Directory::new(accounts);
        let gone: Vec<String> = self
            .bindings
            .users()
            .filter(|u| !self.directory.accounts.contains_key(*u))
            .cloned()
            .collect();
        for u in gone {
            self.remove_binding(sh, &u, "account removed");
        }
    }

    fn remove_binding(&mut self, sh: &mut Shared, user: &str, why: &'static str) {
        if self.bindings.remove(user) {
            sh.stats.unregistrations += 1;
            sh.events.push_back(Event::Unregistered {
                username: user.to_owned(),
                why,
            });
        }
    }

    /// The user whose credentials `req` carries for `role`, or `None` when
    /// they prove nothing: then the source has been challenged (401 or
    /// 407, `stale` when only the nonce was old), or was just blocked and
    /// is told nothing more.
    pub(crate) fn admit(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Instant,
        req: &Message,
        src: SocketAddr,
        role: Role,
    ) -> Option<String> {
        let stale = match self
            .auth
            .check(cx.cfg, &self.directory.accounts, now, req, role)
        {
            Check::Pass(user) => {
                cx.proved(now, src.ip());
                return Some(user);
            }
            Check::Missing => false,
            Check::Stale => true,
            Check::Failed(who) => {
                cx.failed(now, src.ip(), &who);
                false
            }
        };
        if cx.is_blocked(now, src.ip()) {
            return None; // just blocked: say nothing more
        }
        let ch = self.auth.challenges(cx.cfg, now, role, stale);
        cx.respond(now, req, src, role.reply().headers(ch));
        None
    }

    /// Where the user with extension `ext` is.
    pub(crate) fn locate(&self, ext: &str) -> Located {
        let Some(user) = self.directory.by_extension.get(ext) else {
            return Located::Unknown;
        };
        match self.bindings.get(user) {
            Some(b) => Located::At(user.clone(), b.clone()),
            None => Located::Offline,
        }
    }

    /// Where a request to `uri` goes: where the binding with that contact
    /// came from (NAT-safe), or to the URI itself.
    pub(crate) fn source_of_contact(&self, uri: &str) -> Option<SocketAddr> {
        self.bindings.source_of_contact(uri)
    }

    /// A REGISTER from `src`.
    pub(crate) fn on_register(
        &mut self,
        cx: &mut Ctx<'_>,
        now: Instant,
        src: SocketAddr,
        req: &Message,
    ) {
        let Some(user) = self.admit(cx, now, req, src, Role::Registrar) else {
            return;
        };
        if claimed_user(req.to()) != user {
            // Credentials of one user for another's address of record.
            cx.failed(now, src.ip(), &user);
            return cx.respond(now, req, src, Reply::new(403, "Forbidden"));
        }
        let contacts = req.name_addrs("Contact");
        let header_expires = req.expires();
        if contacts.iter().any(|c| c.uri == "*") {
            if header_expires != Some(0) || contacts.len() != 1 {
                return cx.respond(
                    now,
                    req,
                    src,
                    Reply::new(400, "Bad Request (* needs Expires: 0)"),
                );
            }
            self.remove_binding(cx.sh, &user, "unregistered");
            return cx.respond(now, req, src, Reply::new(200, "OK"));
        }
        let Some(contact) = contacts.into_iter().last() else {
            // A query: the current binding.
            let extra = self.bindings.contact_headers(&user, now);
            return cx.respond(now, req, src, Reply::new(200, "OK").headers(extra));
        };
        let wanted = contact
            .param("expires")
            .and_then(|e| e.parse::<u64>().ok())
            .or(header_expires.map(u64::from))
            .unwrap_or(u64::from(cx.cfg.default_expires));
        if wanted == 0 {
            self.remove_binding(cx.sh, &user, "unregistered");
            return cx.respond(now, req, src, Reply::new(200, "OK"));
        }
        if wanted < u64::from(cx.cfg.min_expires) {
            let extra = vec![h::MinExpires::new(cx.cfg.min_expires.to_string()).into()];
            return cx.respond(
                now,
                req,
                src,
                Reply::new(423, "Interval Too Brief").headers(extra),
            );
        }
        let granted = wanted.min(u64::from(cx.cfg.max_expires)) as u32;
        let lifetime = Duration::from_secs(u64::from(granted));
        let bound = contact.uri.clone();
        self.bindings.bind(now, &user, bound, src, lifetime);
        cx.sh.stats.registrations += 1;
        cx.sh.events.push_back(Event::Registered {
            username: user.clone(),
            contact: contact.uri,
            source: src,
            expires: granted,
        });
        let extra = self.bindings.contact_headers(&user, now);
        cx.respond(now, req, src, Reply::new(200, "OK").headers(extra));
    }

    /// When [`Registrar::handle_timeout`] must next run: the first binding
    /// to expire.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.bindings.next_expiry()
    }

    /// Removes the bindings whose lifetime ran out.
    pub(crate) fn handle_timeout(&mut self, cx: &mut Ctx<'_>, now: Instant) {
        while let Some(user) = self.bindings.pop_expired(now) {
            cx.sh.stats.unregistrations += 1;
            cx.sh.events.push_back(Event::Unregistered {
                username: user,
                why: "expired",
            });
        }
    }
}

//! Digest authentication (RFC 3261 §22, RFC 8760): the challenges the
//! registrar (401) and the proxy (407) send, with the stateless HMAC
//! nonces of [`crate::nonce`], and the check of the credentials that come
//! back against each account's own password. An unknown user fails
//! exactly as a wrong password does.

use std::collections::HashMap;
use std::time::Instant;

use myturn_sip::build::{uri_user, Reply};
use myturn_sip::digest::{self, Challenge, Credentials};
use myturn_sip::msg::{Message, NameAddr};
use rsip::headers::{self as h, UntypedHeader};
use rsip::Header;

use crate::config::{Account, Config};
use crate::nonce::{NonceCheck, Nonces};

/// Who challenges: the registrar or the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Role {
    /// 401 with `WWW-Authenticate`, answered in `Authorization`.
    Registrar,
    /// 407 with `Proxy-Authenticate`, answered in `Proxy-Authorization`.
    Proxy,
}

impl Role {
    fn credentials_header(self) -> &'static str {
        match self {
            Role::Registrar => "Authorization",
            Role::Proxy => "Proxy-Authorization",
        }
    }

    /// The challenge response, before its challenge headers.
    pub(crate) fn reply(self) -> Reply<'static> {
        match self {
            Role::Registrar => Reply::new(401, "Unauthorized"),
            Role::Proxy => Reply::new(407, "Proxy Authentication Required"),
        }
    }
}

/// What the credentials of a request prove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Check {
    /// The account's password: the username.
    Pass(String),
    /// No credentials for our realm: a plain challenge.
    Missing,
    /// Good, but on a nonce too old: challenge again with `stale=true`.
    Stale,
    /// Nothing (wrong password, unknown user, forged nonce, an algorithm
    /// we did not offer): a failure counted against the source, claiming
    /// to be this username.
    Failed(String),
}

/// The user a From or To names: who a request claims to be from or for,
/// to hold against who its credentials prove.
pub(crate) fn claimed_user(addr: Option<&NameAddr>) -> &str {
    addr.map(|a| uri_user(&a.uri)).unwrap_or_default()
}

/// Makes challenges and checks their answers.
#[derive(Debug)]
pub(crate) struct Auth {
    nonces: Nonces,
}

impl Auth {
    pub(crate) fn new(nonces: Nonces) -> Self {
        Auth { nonces }
    }

    /// One challenge header per configured algorithm, all on one fresh
    /// nonce.
    pub(crate) fn challenges(
        &self,
        cfg: &Config,
        now: Instant,
        role: Role,
        stale: bool,
    ) -> Vec<Header> {
        let nonce = self.nonces.issue(now);
        cfg.algorithms
            .iter()
            .map(|alg| {
                let v = Challenge {
                    realm: cfg.realm.clone(),
                    nonce: nonce.clone(),
                    opaque: None,
                    algorithm: *alg,
                    qop_auth: true,
                    stale,
                }
                .to_header_value();
                match role {
                    Role::Proxy => h::ProxyAuthenticate::new(v).into(),
                    Role::Registrar => h::WwwAuthenticate::new(v).into(),
                }
            })
            .collect()
    }

    /// Checks the credentials `req` carries for `role` against `accounts`.
    pub(crate) fn check(
        &self,
        cfg: &Config,
        accounts: &HashMap<String, Account>,
        now: Instant,
        req: &Message,
        role: Role,
    ) -> Check {
        let creds: Vec<Credentials> = req
            .headers(role.credentials_header())
            .filter_map(|v| Credentials::parse(v).ok())
            .filter(|c| c.realm == cfg.realm)
            .collect();
        let Some(c) = creds.into_iter().next() else {
            return Check::Missing;
        };
        if !cfg.algorithms.contains(&c.algorithm) {
            return Check::Failed(c.username);
        }
        match self.nonces.check(&c.nonce, now) {
            NonceCheck::Fresh => {}
            NonceCheck::Stale => return Check::Stale,
            NonceCheck::Forged => return Check::Failed(c.username),
        }
        let ok = accounts
            .get(&c.username)
            .is_some_and(|a| digest::verify(&c, &a.password, &req.method().to_string()));
        if ok {
            Check::Pass(c.username)
        } else {
            Check::Failed(c.username)
        }
    }
}

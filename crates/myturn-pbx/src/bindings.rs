//! The registrar's binding table: one binding per user (the Contact and
//! the address the REGISTER came from), each with its expiry, kept in
//! order of expiry so the next one to lapse costs O(log n) to find, and a
//! generation that moves whenever the set changes.

use std::collections::{BTreeSet, HashMap};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use myturn_sip::build::uri_addr;
use rsip::headers::{self as h, UntypedHeader};
use rsip::Header;

/// Where requests for a user go.
#[derive(Debug, Clone)]
pub(crate) struct Binding {
    /// The Contact bound (the Request-URI of requests to the user).
    pub(crate) contact: String,
    /// Where the REGISTER came from: where requests go (NAT-safe).
    pub(crate) source: SocketAddr,
    expires_at: Instant,
}

/// Live bindings by username.
#[derive(Debug, Default)]
pub(crate) struct Bindings {
    by_user: HashMap<String, Binding>,
    expiries: BTreeSet<(Instant, String)>,
    /// Bumped whenever a binding is added, refreshed or removed.
    generation: u64,
}

impl Bindings {
    /// Changes whenever the set of bindings changes.
    pub(crate) fn generation(&self) -> u64 {
        self.generation
    }

    pub(crate) fn len(&self) -> usize {
        self.by_user.len()
    }

    pub(crate) fn get(&self, user: &str) -> Option<&Binding> {
        self.by_user.get(user)
    }

    /// Usernames with a binding.
    pub(crate) fn users(&self) -> impl Iterator<Item = &String> {
        self.by_user.keys()
    }

    /// Live bindings: (username, contact, source), sorted.
    pub(crate) fn list(&self) -> Vec<(String, String, SocketAddr)> {
        let mut v: Vec<_> = self
            .by_user
            .iter()
            .map(|(u, b)| (u.clone(), b.contact.clone(), b.source))
            .collect();
        v.sort();
        v
    }

    /// Binds `user` to `contact` at `source` for `lifetime` from `now`,
    /// replacing what it had.
    pub(crate) fn bind(
        &mut self,
        now: Instant,
        user: &str,
        contact: String,
        source: SocketAddr,
        lifetime: Duration,
    ) {
        if let Some(old) = self.by_user.remove(user) {
            self.expiries.remove(&(old.expires_at, user.to_owned()));
        }
        let expires_at = now + lifetime;
        self.by_user.insert(
            user.to_owned(),
            Binding {
                contact,
                source,
                expires_at,
            },
        );
        self.expiries.insert((expires_at, user.to_owned()));
        self.generation += 1;
    }

    /// Removes `user`'s binding; `true` if there was one.
    pub(crate) fn remove(&mut self, user: &str) -> bool {
        let Some(b) = self.by_user.remove(user) else {
            return false;
        };
        self.generation += 1;
        self.expiries.remove(&(b.expires_at, user.to_owned()));
        true
    }

    /// The first binding to lapse, when.
    pub(crate) fn next_expiry(&self) -> Option<Instant> {
        self.expiries.first().map(|(at, _)| *at)
    }

    /// Removes the next binding lapsed by `now`, and says whose it was.
    pub(crate) fn pop_expired(&mut self, now: Instant) -> Option<String> {
        while let Some((at, user)) = self.expiries.first().cloned() {
            if at > now {
                return None;
            }
            self.expiries.remove(&(at, user.clone()));
            if self.by_user.get(&user).is_some_and(|b| b.expires_at == at) {
                self.by_user.remove(&user);
                self.generation += 1;
                return Some(user);
            }
        }
        None
    }

    /// The Contact header a REGISTER's 200 carries for `user`: the binding
    /// and the seconds it has left.
    pub(crate) fn contact_headers(&self, user: &str, now: Instant) -> Vec<Header> {
        match self.by_user.get(user) {
            Some(b) => {
                let left = b.expires_at.saturating_duration_since(now).as_secs();
                vec![h::Contact::new(format!("<{}>;expires={left}", b.contact)).into()]
            }
            None => Vec::new(),
        }
    }

    /// Where a request to `uri` goes: where the binding with that contact
    /// came from (NAT-safe), or to the URI itself.
    pub(crate) fn source_of_contact(&self, uri: &str) -> Option<SocketAddr> {
        self.by_user
            .values()
            .find(|b| b.contact == uri)
            .map(|b| b.source)
            .or_else(|| uri_addr(uri))
    }
}

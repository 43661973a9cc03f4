//! The state behind an interface: [`Store`] is every use case of the
//! [`Core`], each one atomic, and [`MemoryStore`] is the in-memory
//! implementation every server runs today.
//!
//! The interface is shaped for a networked implementation (Redis, for
//! several nodes) as much as for memory:
//!
//! * one method per use case, taking owned, plain data (the moment
//!   included, read once by the caller) and answering owned data: nothing
//!   borrows the state, so each method can be one server-side script;
//! * methods answer futures: a networked store waits on the network
//!   without blocking the node;
//! * what other parties must hear ([`Delivery`]) is handed to a
//!   [`Deliver`] sink *inside* the atomic step, so every user hears about
//!   changes in the order they happened (memory: under the lock; Redis:
//!   published from the same script);
//! * PBX changes are announced to a [`PbxNotify`] after the step.
//!
//! The rate limits live in the core too, so a networked store shares them
//! across nodes.

use std::future::Future;
use std::net::IpAddr;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

use myturn_wire::{
    AdminPairs, AdminUsers, Ban, Bans, CreateUserResponse, MeResponse, PeerResponse, Reports,
    RequestedStatus, TokenPair,
};

use crate::auth::{Claims, Jwt};
use crate::clock::At;
use crate::core::{Admit, Core, CoreError, Counts, Delivery, Effects, Session, Speaker, Swept};
use crate::registry::{PbxUser, UserId};

/// A use case under way.
pub type Pending<'a, T> = Pin<Box<dyn Future<Output = Result<T, CoreError>> + Send + 'a>>;

/// Where deliveries go: the node's sockets and long-polls. Returns how
/// many sockets a lobby delivery reached.
pub trait Deliver: Send + Sync + std::fmt::Debug {
    /// Carries out `deliveries`, in order.
    fn deliver(&self, deliveries: Vec<Delivery>) -> usize;
}

/// Told when the PBX's account directory changed.
pub trait PbxNotify: Send + Sync + std::fmt::Debug {
    /// The directory changed; returns the change's generation.
    fn changed(&self) -> u64;
}

/// Every use case of the pairing service, each atomic. See the module
/// docs; the methods are [`Core`]'s, which documents each.
#[allow(missing_docs)]
pub trait Store: Send + Sync + std::fmt::Debug {
    fn register(&self, name: String, ip: IpAddr, now: At) -> Pending<'_, CreateUserResponse>;
    fn authenticate(&self, token: String, now: At) -> Pending<'_, Session>;
    fn reauth(&self, uid: UserId, token: String, now: At) -> Pending<'_, u64>;
    fn refresh(&self, token: String, ip: IpAddr, now: At) -> Pending<'_, TokenPair>;
    fn me(&self, uid: UserId) -> Pending<'_, MeResponse>;
    fn logout(&self, uid: UserId) -> Pending<'_, String>;
    fn set_status(
        &self,
        uid: UserId,
        status: RequestedStatus,
        media_key: Option<String>,
        now: At,
    ) -> Pending<'_, MeResponse>;
    fn peer_of(&self, uid: UserId) -> Pending<'_, Option<PeerResponse>>;
    fn heard(&self, uid: UserId, now: At) -> Pending<'_, ()>;
    fn watch(&self, uid: UserId, open: bool, now: At) -> Pending<'_, ()>;
    fn stream_opened(&self, uid: UserId, now: At) -> Pending<'_, ()>;
    fn stream_closed(
        &self,
        uid: UserId,
        now: At,
        last_heard: std::time::Instant,
    ) -> Pending<'_, ()>;
    fn sweep(&self, now: At) -> Pending<'_, Swept>;
    /// Returns how many sockets heard the line.
    fn lobby_say(&self, speaker: Speaker, text: String, now: At) -> Pending<'_, usize>;
    fn typing(&self, uid: UserId, now: At) -> Pending<'_, ()>;
    fn report(&self, uid: UserId, reason: String, now: At) -> Pending<'_, String>;
    fn admit(&self, who: Admit, now: At) -> Pending<'_, Vec<String>>;
    fn kick(&self, name: String) -> Pending<'_, String>;
    fn ban(&self, name: String, seconds: u64, now: At) -> Pending<'_, (Ban, bool)>;
    fn unban(&self, name: String) -> Pending<'_, ()>;
    fn users(&self) -> Pending<'_, AdminUsers>;
    fn pairs(&self) -> Pending<'_, AdminPairs>;
    fn reports(&self) -> Pending<'_, Reports>;
    fn bans(&self, now: At) -> Pending<'_, Bans>;
    fn pbx_users(&self) -> Pending<'_, Vec<PbxUser>>;
    fn user_count(&self) -> Pending<'_, usize>;
    fn counts(&self) -> Pending<'_, Counts>;
    /// Tests only: runs `f` on the in-memory core, if this is one.
    #[doc(hidden)]
    fn inspect(&self, _f: &mut dyn FnMut(&mut Core)) {}
}

/// The in-memory [`Store`]: one [`Core`] behind one mutex. Every use case
/// runs to completion under the lock, deliveries included, which is what
/// makes pairing race-free and event order true.
#[derive(Debug)]
pub struct MemoryStore {
    core: Mutex<Core>,
    /// The core's signer: tokens are verified before taking the lock.
    jwt: Arc<Jwt>,
    sink: Arc<dyn Deliver>,
    pbx: Arc<dyn PbxNotify>,
}

fn ready<'a, T: Send + 'a>(r: Result<T, CoreError>) -> Pending<'a, T> {
    Box::pin(std::future::ready(r))
}

impl MemoryStore {
    /// A store over `core`, delivering to `sink` and telling `pbx`.
    pub fn new(core: Core, sink: Arc<dyn Deliver>, pbx: Arc<dyn PbxNotify>) -> Self {
        MemoryStore {
            jwt: core.signer(),
            core: Mutex::new(core),
            sink,
            pbx,
        }
    }

    /// Locks the core. A poisoned lock is recovered: every use case leaves
    /// the core consistent before it could panic.
    fn lock(&self) -> MutexGuard<'_, Core> {
        self.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs one use case and carries out its effects: deliveries under
    /// the lock, the PBX after it. Returns the reply and the sockets the
    /// deliveries reached.
    fn apply<T>(
        &self,
        f: impl FnOnce(&mut Core, &mut Effects) -> Result<T, CoreError>,
    ) -> Result<(T, usize), CoreError> {
        let mut fx = Effects::default();
        let (result, reached) = {
            let mut core = self.lock();
            let result = f(&mut core, &mut fx);
            // Also on failure: a reused refresh token revokes its family.
            let reached = if fx.deliveries.is_empty() {
                0
            } else {
                self.sink.deliver(std::mem::take(&mut fx.deliveries))
            };
            (result, reached)
        };
        if fx.pbx_changed {
            self.pbx.changed();
        }
        result.map(|r| (r, reached))
    }

    /// Checks a token's signature and expiry: no state, so no lock.
    fn verify(&self, token: &str, now: At) -> Result<Claims, CoreError> {
        Ok(self.jwt.verify(token, now.unix())?)
    }

    fn run<'a, T: Send + 'a>(
        &self,
        f: impl FnOnce(&mut Core, &mut Effects) -> Result<T, CoreError>,
    ) -> Pending<'a, T> {
        ready(self.apply(f).map(|(r, _)| r))
    }

    fn read<'a, T: Send + 'a>(&self, f: impl FnOnce(&mut Core) -> T) -> Pending<'a, T> {
        ready(Ok(f(&mut self.lock())))
    }
}

impl Store for MemoryStore {
    fn register(&self, name: String, ip: IpAddr, now: At) -> Pending<'_, CreateUserResponse> {
        self.run(|c, fx| c.register(&name, ip, now, fx))
    }
    fn authenticate(&self, token: String, now: At) -> Pending<'_, Session> {
        ready(
            self.verify(&token, now)
                .and_then(|claims| self.lock().session(claims, now)),
        )
    }
    fn reauth(&self, uid: UserId, token: String, now: At) -> Pending<'_, u64> {
        ready(
            self.verify(&token, now)
                .and_then(|claims| self.lock().renew(uid, claims, now)),
        )
    }
    fn refresh(&self, token: String, ip: IpAddr, now: At) -> Pending<'_, TokenPair> {
        self.run(|c, fx| c.refresh(&token, ip, now, fx))
    }
    fn me(&self, uid: UserId) -> Pending<'_, MeResponse> {
        ready(self.lock().me(uid))
    }
    fn logout(&self, uid: UserId) -> Pending<'_, String> {
        self.run(|c, fx| c.logout(uid, fx))
    }
    fn set_status(
        &self,
        uid: UserId,
        status: RequestedStatus,
        media_key: Option<String>,
        now: At,
    ) -> Pending<'_, MeResponse> {
        self.run(|c, fx| c.set_status(uid, status, media_key, now, fx))
    }
    fn peer_of(&self, uid: UserId) -> Pending<'_, Option<PeerResponse>> {
        ready(self.lock().peer_of(uid))
    }
    fn heard(&self, uid: UserId, now: At) -> Pending<'_, ()> {
        ready(self.lock().heard(uid, now))
    }
    fn watch(&self, uid: UserId, open: bool, now: At) -> Pending<'_, ()> {
        self.read(|c| c.watch(uid, open, now))
    }
    fn stream_opened(&self, uid: UserId, now: At) -> Pending<'_, ()> {
        self.read(|c| c.stream_opened(uid, now))
    }
    fn stream_closed(
        &self,
        uid: UserId,
        now: At,
        last_heard: std::time::Instant,
    ) -> Pending<'_, ()> {
        self.read(|c| c.stream_closed(uid, now, last_heard))
    }
    fn sweep(&self, now: At) -> Pending<'_, Swept> {
        self.run(|c, fx| Ok(c.sweep(now, fx)))
    }
    fn lobby_say(&self, speaker: Speaker, text: String, now: At) -> Pending<'_, usize> {
        ready(
            self.apply(|c, fx| c.lobby_say(speaker, text, now, fx))
                .map(|((), reached)| reached),
        )
    }
    fn typing(&self, uid: UserId, now: At) -> Pending<'_, ()> {
        self.run(|c, fx| {
            c.typing(uid, now, fx);
            Ok(())
        })
    }
    fn report(&self, uid: UserId, reason: String, now: At) -> Pending<'_, String> {
        ready(self.lock().report(uid, reason, now))
    }
    fn admit(&self, who: Admit, now: At) -> Pending<'_, Vec<String>> {
        self.run(|c, fx| c.admit(who, now, fx))
    }
    fn kick(&self, name: String) -> Pending<'_, String> {
        self.run(|c, fx| c.kick(&name, fx))
    }
    fn ban(&self, name: String, seconds: u64, now: At) -> Pending<'_, (Ban, bool)> {
        self.run(|c, fx| c.ban(&name, seconds, now, fx))
    }
    fn unban(&self, name: String) -> Pending<'_, ()> {
        ready(self.lock().unban(&name))
    }
    fn users(&self) -> Pending<'_, AdminUsers> {
        self.read(|c| c.users())
    }
    fn pairs(&self) -> Pending<'_, AdminPairs> {
        self.read(|c| c.pairs())
    }
    fn reports(&self) -> Pending<'_, Reports> {
        self.read(|c| c.reports())
    }
    fn bans(&self, now: At) -> Pending<'_, Bans> {
        self.read(|c| c.bans(now))
    }
    fn pbx_users(&self) -> Pending<'_, Vec<PbxUser>> {
        self.read(|c| c.pbx_users())
    }
    fn user_count(&self) -> Pending<'_, usize> {
        self.read(|c| c.user_count())
    }
    fn counts(&self) -> Pending<'_, Counts> {
        self.read(|c| c.counts())
    }
    fn inspect(&self, f: &mut dyn FnMut(&mut Core)) {
        f(&mut self.lock());
    }
}

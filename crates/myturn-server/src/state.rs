//! The shared application state: the registry and sessions behind one lock,
//! per-user wake-ups for long-polls, the token signer, the PBX handle and
//! the metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use myturn_wire::{LeaveReason, PeerResponse, ServerEvent, Status};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::{mpsc, watch};

use crate::auth::{AdminToken, Jwt, Sessions};
use crate::metrics::{Gauges, Metrics, PbxFigures};
use crate::moderation::{Bans, RateLimiter, Reports};
use crate::pbx::PbxSync;
use crate::registry::{Notice, Registry, RegistryError, User, UserId};

/// Seconds since the Unix epoch.
/// Now, as the registry takes it.
pub fn at_now() -> crate::registry::At {
    crate::registry::At {
        mono: Instant::now(),
        unix: unix_now(),
    }
}

pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// What the server sends down one WebSocket.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// An event, as JSON text.
    Event(ServerEvent),
    /// Close with this code and reason.
    Close(u16, &'static str),
}

/// WebSocket close codes (4000-4999 are the application's).
pub mod close {
    /// Normal closure (logout).
    pub const NORMAL: u16 = 1000;
    /// The access token expired or the session was revoked.
    pub const SESSION: u16 = 4001;
    /// Kicked or banned by an admin.
    pub const REMOVED: u16 = 4003;
    /// The client does not read its events fast enough.
    pub const TOO_SLOW: u16 = 4008;
    /// No pong within the liveness window.
    pub const DEAD: u16 = 4009;
}

/// Events queued per socket before it counts as too slow and is closed.
pub const SOCKET_QUEUE: usize = 64;

#[derive(Debug)]
struct Socket {
    id: u64,
    family: u64,
    tx: mpsc::Sender<Outbound>,
}

/// One user's wake-ups: a generation counter for long-polls and the
/// senders of their open WebSockets.
#[derive(Debug)]
struct Hub {
    gen: watch::Sender<u64>,
    sockets: Vec<Socket>,
}

/// Everything under the one lock.
#[derive(Debug)]
pub struct Core {
    /// Users and pairs.
    pub reg: Registry,
    /// Refresh-token families.
    pub sessions: Sessions,
    /// Randomness for refresh tokens.
    pub rng: StdRng,
    /// Banned names.
    pub bans: Bans,
    /// User reports.
    pub reports: Reports,
    /// Rate limits.
    pub limits: RateLimiter,
    /// Per-user wake-ups. Dropping a hub (on removal) wakes every waiter
    /// and ends every socket of that user.
    hubs: HashMap<UserId, Hub>,
    /// Admin sockets (lobby chat, moderation).
    admins: Vec<Socket>,
    next_socket: u64,
    sockets_open: usize,
}

fn push(sockets: &mut Vec<Socket>, msg: &Outbound) {
    // A socket whose queue is full is dropped: its task sees the channel
    // close and ends the connection with TOO_SLOW.
    sockets.retain(|s| s.tx.try_send(msg.clone()).is_ok());
}

impl Core {
    /// Delivers notices: wakes each addressee's long-polls and pushes the
    /// event to their sockets.
    pub fn deliver(&mut self, notices: &[Notice]) {
        for n in notices {
            self.send_to(n.user, n.event.clone());
        }
    }

    /// Sends one event to one user.
    pub fn send_to(&mut self, user: UserId, event: ServerEvent) {
        if let Some(h) = self.hubs.get_mut(&user) {
            h.gen.send_modify(|g| *g = g.wrapping_add(1));
            push(&mut h.sockets, &Outbound::Event(event));
        }
    }

    /// Sends an event to everyone in the lobby (but `except`) and to the
    /// admins. Returns how many sockets it was queued on.
    pub fn lobby_broadcast(&mut self, event: &ServerEvent, except: Option<UserId>) -> usize {
        let msg = Outbound::Event(event.clone());
        let members: Vec<UserId> = self.reg.lobby().filter(|&u| Some(u) != except).collect();
        let mut n = 0;
        for u in members {
            if let Some(h) = self.hubs.get_mut(&u) {
                push(&mut h.sockets, &msg);
                n += h.sockets.len();
            }
        }
        push(&mut self.admins, &msg);
        n + self.admins.len()
    }

    /// Opens the wake-up hub of a new user.
    pub fn open_hub(&mut self, id: UserId) {
        self.hubs.insert(
            id,
            Hub {
                gen: watch::channel(0).0,
                sockets: Vec::new(),
            },
        );
    }

    /// Subscribes to a user's wake-ups.
    pub fn subscribe(&self, id: UserId) -> Option<watch::Receiver<u64>> {
        self.hubs.get(&id).map(|h| h.gen.subscribe())
    }

    /// Open sockets of a user.
    pub fn sockets_of(&self, id: UserId) -> usize {
        self.hubs.get(&id).map_or(0, |h| h.sockets.len())
    }

    /// Open sockets in all (users and admins).
    pub fn sockets_open(&self) -> usize {
        self.sockets_open
    }

    /// Registers a user's socket; returns its id and receiver.
    pub fn attach(&mut self, user: UserId, family: u64) -> Option<(u64, mpsc::Receiver<Outbound>)> {
        let (tx, rx) = mpsc::channel(SOCKET_QUEUE);
        let id = self.next_socket;
        let hub = self.hubs.get_mut(&user)?;
        hub.sockets.push(Socket { id, family, tx });
        self.next_socket += 1;
        self.sockets_open += 1;
        Some((id, rx))
    }

    /// Registers an admin socket.
    pub fn attach_admin(&mut self) -> (u64, mpsc::Receiver<Outbound>) {
        let (tx, rx) = mpsc::channel(SOCKET_QUEUE);
        let id = self.next_socket;
        self.next_socket += 1;
        self.sockets_open += 1;
        self.admins.push(Socket { id, family: 0, tx });
        (id, rx)
    }

    /// Forgets a socket when its task ends.
    pub fn detach(&mut self, user: Option<UserId>, socket: u64) {
        self.sockets_open = self.sockets_open.saturating_sub(1);
        match user {
            Some(u) => {
                if let Some(h) = self.hubs.get_mut(&u) {
                    h.sockets.retain(|s| s.id != socket);
                }
            }
            None => self.admins.retain(|s| s.id != socket),
        }
    }

    /// Revokes a session family: its sockets get `session_expired` and
    /// close.
    pub fn revoke_family(&mut self, family: u64) {
        self.sessions.revoke(family);
        for h in self.hubs.values_mut() {
            h.sockets.retain(|s| {
                if s.family != family {
                    return true;
                }
                let _ = s.tx.try_send(Outbound::Event(ServerEvent::SessionExpired));
                let _ =
                    s.tx.try_send(Outbound::Close(close::SESSION, "session revoked"));
                false
            });
        }
    }

    /// Removes a user everywhere: registry, sessions, wake-ups. `farewell`
    /// (kicked, banned) is sent to the user's sockets before they close.
    pub fn remove_user(
        &mut self,
        id: UserId,
        reason: LeaveReason,
        farewell: Option<ServerEvent>,
    ) -> Result<User, RegistryError> {
        let (user, notices) = self.reg.remove(id, reason)?;
        self.sessions.revoke_user(id);
        if let Some(hub) = self.hubs.remove(&id) {
            let (code, why) = match reason {
                LeaveReason::Kicked | LeaveReason::Banned => {
                    (close::REMOVED, "removed by a moderator")
                }
                LeaveReason::Expired => (close::SESSION, "lease expired"),
                LeaveReason::LoggedOut
                | LeaveReason::HungUp
                | LeaveReason::Disconnected
                | LeaveReason::NoAnswer => (close::NORMAL, "logged out"),
            };
            for s in &hub.sockets {
                if let Some(ev) = &farewell {
                    let _ = s.tx.try_send(Outbound::Event(ev.clone()));
                }
                let _ = s.tx.try_send(Outbound::Close(code, why));
            }
        }
        self.deliver(&notices);
        Ok(user)
    }
}

/// Tunables the handlers need.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Handed to clients in their SIP credentials.
    pub sip_domain: String,
    /// Silence after which a user is removed.
    pub lease: Duration,
    /// Longest long-poll.
    pub max_wait: Duration,
    /// Most WebSockets per user.
    pub max_sockets_per_user: usize,
    /// Most WebSockets in all.
    pub max_sockets: usize,
    /// Server → client WebSocket ping period.
    pub ping_every: Duration,
    /// How long a user whose event stream closed may take to reconnect
    /// before leaving the pool (or its pair).
    pub stream_grace: Duration,
    /// A pair whose call has not started by then is ended
    /// (`--answer-timeout`).
    pub answer_timeout: Duration,
    /// Whether this server terminates TLS itself.
    pub tls: bool,
    /// Shown in `/healthz` and logged at start: a setup to fix.
    pub warning: Option<String>,
    /// Peers whose `Forwarded` / `X-Forwarded-For` are believed.
    pub trusted_proxies: Vec<crate::proxy::Cidr>,
}

/// Cheap to clone; shared by every handler and background task.
#[derive(Debug, Clone)]
pub struct AppState(Arc<Inner>);

/// See [`AppState`].
#[derive(Debug)]
pub struct Inner {
    core: Mutex<Core>,
    /// Access-token signer.
    pub jwt: Jwt,
    /// Admin token, if configured.
    pub admin: Option<AdminToken>,
    /// PBX handle.
    pub pbx: Arc<PbxSync>,
    /// Counters.
    pub metrics: Metrics,
    /// Tunables.
    pub settings: Settings,
}

impl std::ops::Deref for AppState {
    type Target = Inner;
    fn deref(&self) -> &Inner {
        &self.0
    }
}

impl AppState {
    /// Builds the state. `seed` fixes every random choice (tests);
    /// `None` seeds from the OS.
    pub fn new(
        reg: Registry,
        jwt: Jwt,
        admin: Option<AdminToken>,
        pbx: Arc<PbxSync>,
        settings: Settings,
        seed: Option<u64>,
        rate_limits: bool,
    ) -> Self {
        let rng = match seed {
            Some(s) => StdRng::seed_from_u64(s ^ 0x5eed_0f70_6be5),
            None => StdRng::from_entropy(),
        };
        AppState(Arc::new(Inner {
            core: Mutex::new(Core {
                reg,
                sessions: Sessions::default(),
                rng,
                bans: Bans::default(),
                reports: Reports::default(),
                limits: RateLimiter::new(rate_limits),
                hubs: HashMap::new(),
                admins: Vec::new(),
                next_socket: 1,
                sockets_open: 0,
            }),
            jwt,
            admin,
            pbx,
            metrics: Metrics::default(),
            settings,
        }))
    }

    /// Locks the core. A poisoned lock is recovered: every operation on
    /// the core leaves it consistent before it can panic.
    pub fn core(&self) -> MutexGuard<'_, Core> {
        self.0.core.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Removes a user everywhere (see [`Core::remove_user`]), the PBX
    /// config included: every way out (logout, kick, ban, lease) goes
    /// through here, so none can forget the PBX.
    pub fn remove_user(
        &self,
        id: UserId,
        reason: LeaveReason,
        farewell: Option<ServerEvent>,
    ) -> Result<User, RegistryError> {
        let user = self.core().remove_user(id, reason, farewell)?;
        self.pbx.mark_dirty();
        Ok(user)
    }

    /// [`AppState::remove_user`] by name (case-insensitive); `None` if
    /// nobody has it.
    pub fn remove_named(
        &self,
        name: &str,
        reason: LeaveReason,
        farewell: Option<ServerEvent>,
    ) -> Option<User> {
        let id = self.core().reg.find(name).map(|u| u.id)?;
        self.remove_user(id, reason, farewell).ok()
    }

    /// Takes users whose event stream closed more than the grace ago out
    /// of the pool and out of their pairs (the partner hears `peer_left`
    /// `disconnected`). They keep their account and the HTTP lease.
    /// Returns their names.
    pub fn drop_ghosts(&self, now: Instant) -> Vec<String> {
        let mut core = self.core();
        let ids = core.reg.ghosts(now, self.settings.stream_grace);
        let mut names = Vec::new();
        for id in ids {
            let notices = core.reg.drop_ghost(id, unix_now());
            if let Some(u) = core.reg.get(id) {
                names.push(u.name.clone());
            }
            core.deliver(&notices);
        }
        names
    }

    /// Ends pairs whose call did not start within the answer timeout; the
    /// side holding it up goes `busy` (out of the pool), both hear
    /// `peer_left` `no_answer`. Returns the names of those held to blame.
    pub fn drop_unanswered(&self, now: Instant) -> Vec<String> {
        let mut core = self.core();
        let ids = core.reg.unanswered(now, self.settings.answer_timeout);
        let mut names = Vec::new();
        for id in ids {
            let notices = core.reg.drop_unanswered(id);
            if let Some(u) = core.reg.get(id) {
                names.push(u.name.clone());
            }
            core.deliver(&notices);
        }
        names
    }

    /// Pairs waiting users passed over while a candidate's liveness was in
    /// doubt (see [`crate::registry::Registry::rematch`]).
    pub fn rematch(&self) {
        let mut core = self.core();
        let notices = core.reg.rematch(at_now());
        core.deliver(&notices);
    }

    /// Removes users silent for longer than the lease. Returns their names.
    pub fn expire_silent(&self, now: Instant) -> Vec<String> {
        let ids = {
            let mut core = self.core();
            core.limits.prune(now, |k| k.budget());
            core.reg.silent_since(now, self.settings.lease)
        };
        let gone: Vec<String> = ids
            .into_iter()
            .filter_map(|id| self.remove_user(id, LeaveReason::Expired, None).ok())
            .map(|u| u.name)
            .collect();
        self.metrics
            .expiries
            .fetch_add(gone.len() as u64, std::sync::atomic::Ordering::Relaxed);
        gone
    }

    /// Waits up to `wait` for `id` to be paired. `Ok(None)`: still waiting.
    pub async fn wait_for_peer(
        &self,
        id: UserId,
        wait: Duration,
    ) -> Result<Option<PeerResponse>, RegistryError> {
        let deadline = tokio::time::Instant::now() + wait;
        let mut rx = {
            let mut core = self.core();
            let found = core.reg.peer_of(id)?;
            if found.is_some() || wait.is_zero() {
                return Ok(found);
            }
            core.reg.watch(id, true, Instant::now());
            core.subscribe(id).ok_or(RegistryError::NoSuchUser)?
        };
        // Closes the watch when this future ends, also when the client
        // hangs up mid-wait and the future is dropped.
        struct Unwatch<'a>(&'a AppState, UserId);
        impl Drop for Unwatch<'_> {
            fn drop(&mut self) {
                self.0.core().reg.watch(self.1, false, Instant::now());
            }
        }
        let _guard = Unwatch(self, id);
        loop {
            let woke = tokio::time::timeout_at(deadline, rx.changed()).await;
            let found = self.core().reg.peer_of(id)?;
            match woke {
                _ if found.is_some() => return Ok(found),
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(RegistryError::NoSuchUser),
                Err(_) => return Ok(None),
            }
        }
    }

    /// Registry gauges for `/metrics`.
    pub fn gauges(&self) -> Gauges {
        let core = self.core();
        let mut counts: HashMap<Status, u64> = HashMap::new();
        for u in core.reg.users() {
            *counts.entry(u.status).or_insert(0) += 1;
        }
        Gauges {
            by_status: Status::ALL
                .iter()
                .map(|s| (*s, counts.get(s).copied().unwrap_or(0)))
                .collect(),
            waiting: core.reg.waiting() as u64,
            pairings_total: core.reg.pairings_total(),
            websockets: core.sockets_open() as u64,
        }
    }

    /// Samples the key figures into the console's hour of history.
    pub fn sample_history(&self) {
        let g = self.gauges();
        let pbx = self.pbx_figures();
        self.metrics.record(myturn_wire::MetricsSample {
            at: unix_now(),
            users: g.by_status.iter().map(|(_, n)| n).sum(),
            waiting: g.waiting,
            pairings_total: g.pairings_total,
            streams: g.websockets,
            relayed_calls: pbx.media.as_ref().map_or(0, |m| m.calls.len() as u64),
            relay_packets_total: pbx.media.as_ref().map_or(0, |m| m.totals.0),
            sip_bindings: pbx.sip.as_ref().map_or(0, |s| s.1 as u64),
        });
    }

    /// PBX figures for `/metrics`.
    pub fn pbx_figures(&self) -> PbxFigures {
        use std::sync::atomic::Ordering::Relaxed;
        let c = &self.pbx.counters;
        PbxFigures {
            config_writes: c.config_writes.load(Relaxed),
            write_failures: c.write_failures.load(Relaxed),
            reloads: c.reloads.load(Relaxed),
            reload_failures: c.reload_failures.load(Relaxed),
            in_sync: self.pbx.status().in_sync,
            sip: self.pbx.builtin.as_ref().map(|b| {
                let h = &b.handle;
                (h.stats(), h.binding_count(), h.blocked_ips())
            }),
            media: self.pbx.builtin.as_ref().map(|b| b.handle.media()),
        }
    }
}

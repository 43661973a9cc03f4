//! The shared application state: the registry and sessions behind one lock,
//! per-user wake-ups for long-polls, the token signer, the PBX handle and
//! the metrics.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use myturn_wire::{LeaveReason, PeerInfo, Role, Status};
use rand::rngs::StdRng;
use rand::SeedableRng;
use tokio::sync::watch;

use crate::auth::{AdminToken, Jwt, Sessions};
use crate::metrics::{Gauges, Metrics, PbxFigures};
use crate::pbx::PbxSync;
use crate::registry::{Notice, Registry, RegistryError, User, UserId};

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
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
    /// Per-user wake-up: bumped on every notice for that user. Dropping the
    /// sender (on removal) wakes every waiter too.
    hubs: HashMap<UserId, watch::Sender<u64>>,
}

impl Core {
    /// Delivers notices: wakes each addressee's waiters.
    pub fn deliver(&mut self, notices: &[Notice]) {
        for n in notices {
            if let Some(h) = self.hubs.get(&n.user) {
                h.send_modify(|g| *g = g.wrapping_add(1));
            }
        }
    }

    /// Opens the wake-up channel of a new user.
    pub fn open_hub(&mut self, id: UserId) {
        self.hubs.insert(id, watch::channel(0).0);
    }

    /// Subscribes to a user's wake-ups.
    pub fn subscribe(&self, id: UserId) -> Option<watch::Receiver<u64>> {
        self.hubs.get(&id).map(|h| h.subscribe())
    }

    /// Removes a user everywhere: registry, sessions, wake-ups.
    pub fn remove_user(&mut self, id: UserId, reason: LeaveReason) -> Result<User, RegistryError> {
        let (user, notices) = self.reg.remove(id, reason)?;
        self.sessions.revoke_user(id);
        self.hubs.remove(&id);
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
                hubs: HashMap::new(),
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

    /// Removes users silent for longer than the lease. Returns their names.
    pub fn expire_silent(&self, now: Instant) -> Vec<String> {
        let mut core = self.core();
        let ids = core.reg.silent_since(now, self.settings.lease);
        let mut gone = Vec::with_capacity(ids.len());
        for id in ids {
            if let Ok(u) = core.remove_user(id, LeaveReason::Expired) {
                gone.push(u.name);
            }
        }
        drop(core);
        if !gone.is_empty() {
            self.metrics
                .expiries
                .fetch_add(gone.len() as u64, std::sync::atomic::Ordering::Relaxed);
            self.pbx.mark_dirty();
        }
        gone
    }

    /// Waits up to `wait` for `id` to be paired. `Ok(None)`: still waiting.
    pub async fn wait_for_peer(
        &self,
        id: UserId,
        wait: Duration,
    ) -> Result<Option<(PeerInfo, Role, Status)>, RegistryError> {
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
        }
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
        }
    }
}

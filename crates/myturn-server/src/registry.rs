//! The pairing state machine: users, extensions, SIP secrets, statuses and
//! pairs.
//!
//! [`Registry`] is plain synchronous data with no I/O, no clock reads and no
//! global randomness: the caller passes `now` in and the RNG is injected, so
//! tests can seed it. The server keeps exactly one `Registry` behind one
//! mutex; every operation runs to completion under that lock, which is what
//! makes pairing race-free (a user can never be in two pairs, and both sides
//! of a pair always agree on it).
//!
//! Each mutating call returns the [`Notice`]s it produced (who must be told
//! what), which the async layer delivers to waiting long-polls and event
//! streams.

use myturn_wire::{LeaveReason, PeerInfo, PeerResponse, Role, ServerEvent, Status};
use rand::{distributions::Alphanumeric, Rng, RngCore};
use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// The first extension handed out, as in the original design.
pub const FIRST_EXTENSION: u32 = 111_000;
/// The last extension handed out before wrapping around.
pub const LAST_EXTENSION: u32 = 999_999;
/// Length of a generated SIP password: 24 alphanumeric characters carry
/// 24 × log2(62) ≈ 142 bits.
pub const SIP_PASSWORD_LEN: usize = 24;

pub use crate::clock::At;

/// A stable per-registration identifier. A name that logs out and registers
/// again gets a new `UserId`, so old tokens cannot act on the new user.
pub type UserId = u64;

/// Why an operation was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RegistryError {
    /// The name is in use (compared case-insensitively).
    #[error("the name {0:?} is taken; pick another one")]
    NameTaken(String),
    /// No such user (logged out, kicked or expired).
    #[error("no such user")]
    NoSuchUser,
    /// The server holds `max_users` users already.
    #[error("the server is full ({0} users); try again later")]
    Full(usize),
    /// Every extension in the range is in use.
    #[error("no free extension left")]
    NoExtension,
    /// `GET /v1/me/peer` by a user who is not looking for a partner.
    #[error("you are not ready: set your status to \"ready\" first")]
    NotReady,
    /// `ready_to_talk` by a user who is not paired.
    #[error("you are not paired: \"ready_to_talk\" is only allowed once paired")]
    NotPaired,
}

/// Someone to tell something.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice {
    /// Who.
    pub user: UserId,
    /// What.
    pub event: ServerEvent,
}

/// What the PBX needs to know of a user.
#[derive(Clone, PartialEq, Eq)]
pub struct PbxUser {
    /// The validated nickname (safe to write verbatim).
    pub name: String,
    /// The extension.
    pub extension: u32,
    /// The SIP secret.
    pub secret: String,
}

impl std::fmt::Debug for PbxUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PbxUser")
            .field("name", &self.name)
            .field("extension", &self.extension)
            .finish_non_exhaustive()
    }
}

/// One user, as the registry holds it.
#[derive(Clone)]
pub struct User {
    /// Stable id of this registration.
    pub id: UserId,
    /// Nickname, as registered (case kept).
    pub name: String,
    /// Extension.
    pub extension: u32,
    /// SIP secret.
    pub sip_password: String,
    /// Current status.
    pub status: Status,
    /// Registration time, seconds since the Unix epoch (for admins).
    pub since_unix: u64,
    /// Last authenticated activity (for the lease).
    pub last_seen: Instant,
    /// Current partner and role.
    pub pair: Option<PairSide>,
    /// The last partner, so the same two are not paired twice in a row
    /// while someone else is waiting.
    pub last_partner: Option<UserId>,
    /// Name of the last partner (for reports, also after they left).
    pub last_partner_name: Option<String>,
    /// Let out of the waiting room into the pairing pool.
    pub admitted: bool,
    /// Fingerprint of the media key for the next call (sent with `ready`).
    pub media_key: Option<String>,
    /// Open long-polls / event streams: a user with one is not silent.
    pub watchers: u32,
    /// Open event streams, and when the last one closed: a user whose
    /// stream stays closed past the grace is gone from the pool.
    pub streams: u32,
    pub stream_lost_at: Option<Instant>,
}

impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("extension", &self.extension)
            .field("status", &self.status)
            .field("pair", &self.pair)
            .finish_non_exhaustive()
    }
}

/// A pair id's wire form: 32 lowercase hex digits.
fn hex(id: &[u8; 16]) -> String {
    id.iter().map(|b| format!("{b:02x}")).collect()
}

/// One side's view of its pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PairSide {
    /// The partner.
    pub peer: UserId,
    /// This side's role.
    pub role: Role,
    /// When the pair was made, seconds since the Unix epoch.
    pub since_unix: u64,
    /// When the pair was made (the answer timeout counts from here).
    pub since: Instant,
    /// The pair's random 128-bit id, the same on both sides; the clients'
    /// media keys bind it (`docs/protocol.md`).
    pub pair_id: [u8; 16],
}

/// Tunables.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// Most users at once.
    pub max_users: usize,
    /// Moderated admission: ready users wait in the waiting room until an
    /// admin admits them into the pairing pool.
    pub moderated: bool,
    /// A user with an event stream is paired only if it was heard within
    /// this long (its pongs, every third of it), and not while its stream
    /// is closed: nobody is handed a partner that may be gone.
    pub liveness: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        RegistryConfig {
            max_users: 100_000,
            moderated: false,
            liveness: Duration::from_secs(3),
        }
    }
}

/// The pairing state. See the module docs.
pub struct Registry {
    cfg: RegistryConfig,
    rng: Box<dyn RngCore + Send>,
    users: HashMap<UserId, User>,
    by_name: HashMap<String, UserId>,
    by_ext: HashMap<u32, UserId>,
    /// Ready, unpaired, admitted users. Order is irrelevant: a pick is
    /// uniform.
    pool: Vec<UserId>,
    /// Everyone whose status is `ready`: the pool plus the waiting room.
    /// They share the lobby chat.
    lobby: HashSet<UserId>,
    next_id: UserId,
    next_ext: u32,
    pairings_total: u64,
}

impl std::fmt::Debug for Registry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Registry")
            .field("users", &self.users.len())
            .field("pool", &self.pool.len())
            .finish_non_exhaustive()
    }
}

fn key(name: &str) -> String {
    name.to_ascii_lowercase()
}

impl Registry {
    /// A registry drawing all its randomness (secrets, pair picks, roles)
    /// from `rng`. Production passes a CSPRNG seeded from the OS; tests pass
    /// a seeded one.
    pub fn new(cfg: RegistryConfig, rng: Box<dyn RngCore + Send>) -> Self {
        Registry {
            cfg,
            rng,
            users: HashMap::new(),
            by_name: HashMap::new(),
            by_ext: HashMap::new(),
            pool: Vec::new(),
            lobby: HashSet::new(),
            next_id: 1,
            next_ext: FIRST_EXTENSION,
            pairings_total: 0,
        }
    }

    /// Adds a user with a fresh extension and SIP secret. The name must
    /// already be valid (see [`myturn_wire::validate_name`]).
    pub fn register(&mut self, name: &str, at: At) -> Result<&User, RegistryError> {
        let k = key(name);
        if self.by_name.contains_key(&k) {
            return Err(RegistryError::NameTaken(name.to_owned()));
        }
        if self.users.len() >= self.cfg.max_users {
            return Err(RegistryError::Full(self.cfg.max_users));
        }
        let extension = self.alloc_extension()?;
        let sip_password: String = (&mut self.rng)
            .sample_iter(&Alphanumeric)
            .take(SIP_PASSWORD_LEN)
            .map(char::from)
            .collect();
        let id = self.next_id;
        self.next_id += 1;
        self.by_name.insert(k, id);
        self.by_ext.insert(extension, id);
        let user = self.users.entry(id).or_insert(User {
            id,
            name: name.to_owned(),
            extension,
            sip_password,
            status: Status::Busy,
            since_unix: at.unix(),
            last_seen: at.mono,
            pair: None,
            last_partner: None,
            last_partner_name: None,
            admitted: !self.cfg.moderated,
            media_key: None,
            watchers: 0,
            streams: 0,
            stream_lost_at: None,
        });
        Ok(user)
    }

    fn alloc_extension(&mut self) -> Result<u32, RegistryError> {
        let span = (LAST_EXTENSION - FIRST_EXTENSION + 1) as usize;
        if self.by_ext.len() >= span {
            return Err(RegistryError::NoExtension);
        }
        loop {
            let ext = self.next_ext;
            self.next_ext = if ext >= LAST_EXTENSION {
                FIRST_EXTENSION
            } else {
                ext + 1
            };
            if !self.by_ext.contains_key(&ext) {
                return Ok(ext);
            }
        }
    }

    /// A user by id.
    pub fn get(&self, id: UserId) -> Option<&User> {
        self.users.get(&id)
    }

    /// A user by name (case-insensitive).
    pub fn find(&self, name: &str) -> Option<&User> {
        self.by_name
            .get(&key(name))
            .and_then(|id| self.users.get(id))
    }

    /// A user by extension.
    pub fn by_extension(&self, ext: u32) -> Option<&User> {
        self.by_ext.get(&ext).and_then(|id| self.users.get(id))
    }

    /// Number of users.
    pub fn len(&self) -> usize {
        self.users.len()
    }

    /// `true` when nobody is registered.
    pub fn is_empty(&self) -> bool {
        self.users.is_empty()
    }

    /// Pairs made since start.
    pub fn pairings_total(&self) -> u64 {
        self.pairings_total
    }

    /// Users waiting in the pool.
    pub fn waiting(&self) -> usize {
        self.pool.len()
    }

    /// Users in the lobby (status `ready`: pool and waiting room).
    pub fn lobby(&self) -> impl Iterator<Item = UserId> + '_ {
        self.lobby.iter().copied()
    }

    /// `true` if the user is in the lobby.
    pub fn in_lobby(&self, id: UserId) -> bool {
        self.lobby.contains(&id)
    }

    /// Whether admission is moderated.
    pub fn moderated(&self) -> bool {
        self.cfg.moderated
    }

    /// Who a report by `id` is about: the current partner, else the last.
    pub fn report_target(&self, id: UserId) -> Option<String> {
        let u = self.users.get(&id)?;
        match u.pair {
            Some(p) => self.users.get(&p.peer).map(|p| p.name.clone()),
            None => u.last_partner_name.clone(),
        }
    }

    /// Lets a user out of the waiting room. If they are `ready`, they enter
    /// the pool at once (and may be paired). Admission lasts until logout.
    pub fn admit(&mut self, id: UserId, at: At) -> Result<Vec<Notice>, RegistryError> {
        let u = self.users.get_mut(&id).ok_or(RegistryError::NoSuchUser)?;
        let mut notices = Vec::new();
        if u.admitted {
            return Ok(notices);
        }
        u.admitted = true;
        let ready = u.status == Status::Ready;
        notices.push(Notice {
            user: id,
            event: ServerEvent::Admitted,
        });
        if ready {
            self.enter_pool(id, at, &mut notices);
        }
        Ok(notices)
    }

    /// Admits everyone in the waiting room, in random order (so who gets
    /// paired with whom stays uniform). Returns who was admitted.
    pub fn admit_all(&mut self, at: At) -> (Vec<UserId>, Vec<Notice>) {
        let mut waiting: Vec<UserId> = self
            .lobby
            .iter()
            .copied()
            .filter(|id| self.users.get(id).is_some_and(|u| !u.admitted))
            .collect();
        waiting.sort_unstable();
        rand::seq::SliceRandom::shuffle(waiting.as_mut_slice(), &mut self.rng);
        let mut notices = Vec::new();
        for &id in &waiting {
            if let Ok(n) = self.admit(id, at) {
                notices.extend(n);
            }
        }
        (waiting, notices)
    }

    /// Every user (unordered).
    pub fn users(&self) -> impl Iterator<Item = &User> {
        self.users.values()
    }

    /// Sets the media key fingerprint announced with `ready` (validated
    /// by the caller).
    pub fn set_media_key(&mut self, id: UserId, key: Option<String>) -> Result<(), RegistryError> {
        self.users
            .get_mut(&id)
            .ok_or(RegistryError::NoSuchUser)?
            .media_key = key;
        Ok(())
    }

    /// Records activity for the lease.
    pub fn touch(&mut self, id: UserId, now: Instant) -> Result<(), RegistryError> {
        let u = self.users.get_mut(&id).ok_or(RegistryError::NoSuchUser)?;
        u.last_seen = now;
        Ok(())
    }

    /// Counts an open long-poll or event stream (a user with one is alive).
    pub fn watch(&mut self, id: UserId, open: bool, now: Instant) {
        if let Some(u) = self.users.get_mut(&id) {
            u.last_seen = now;
            if open {
                u.watchers += 1;
            } else {
                u.watchers = u.watchers.saturating_sub(1);
            }
        }
    }

    /// An event stream of `id` opened (a reconnect ends the grace).
    pub fn stream_opened(&mut self, id: UserId) {
        if let Some(u) = self.users.get_mut(&id) {
            u.streams += 1;
            u.stream_lost_at = None;
        }
    }

    /// An event stream of `id` closed; the last one starts the grace.
    pub fn stream_closed(&mut self, id: UserId, now: Instant) {
        if let Some(u) = self.users.get_mut(&id) {
            u.streams = u.streams.saturating_sub(1);
            if u.streams == 0 {
                u.stream_lost_at = Some(now);
            }
        }
    }

    /// Users looking for or in a call whose event stream closed more than
    /// `grace` ago and did not come back. Users who never opened a stream
    /// (HTTP only) are never ghosts: the lease covers them.
    pub fn ghosts(&self, now: Instant, grace: Duration) -> Vec<UserId> {
        let mut out: Vec<UserId> = self
            .users
            .values()
            .filter(|u| {
                u.status != Status::Busy
                    && u.streams == 0
                    && u.stream_lost_at
                        .is_some_and(|t| now.saturating_duration_since(t) > grace)
            })
            .map(|u| u.id)
            .collect();
        out.sort_unstable();
        out
    }

    /// Takes a ghost out of the pool, or out of its pair (the partner hears
    /// `peer_left` `disconnected`), and sets it `busy`.
    pub fn drop_ghost(&mut self, id: UserId) -> Vec<Notice> {
        let mut notices = Vec::new();
        self.leave_pool(id);
        self.dissolve(id, LeaveReason::Disconnected, &mut notices);
        if self
            .users
            .get(&id)
            .is_some_and(|u| u.status != Status::Busy)
        {
            self.set(id, Status::Busy, &mut notices);
        }
        if let Some(u) = self.users.get_mut(&id) {
            u.stream_lost_at = None;
        }
        notices
    }

    /// Whether `u` may be handed out as a partner: users with an event
    /// stream must have been heard within the liveness window and have it
    /// open; users who never opened one (HTTP only) rely on the lease.
    fn is_live(&self, u: &User, now: Instant) -> bool {
        if u.streams > 0 {
            return now.saturating_duration_since(u.last_seen) <= self.cfg.liveness;
        }
        u.stream_lost_at.is_none()
    }

    /// Pairs users left waiting side by side in the pool: one was passed
    /// over while the other's liveness was in doubt (a stream reconnecting,
    /// late pongs) and has since come back. Run periodically; returns what
    /// to tell whom.
    pub fn rematch(&mut self, at: At) -> Vec<Notice> {
        let mut notices = Vec::new();
        let mut waiting: Vec<UserId> = self
            .pool
            .iter()
            .copied()
            .filter(|id| self.users.get(id).is_some_and(|u| self.is_live(u, at.mono)))
            .collect();
        waiting.sort_unstable();
        for id in waiting {
            let still_waiting = self.pool.contains(&id);
            if still_waiting {
                self.leave_pool(id);
                self.enter_pool(id, at, &mut notices);
            }
        }
        notices
    }

    /// Pairs older than `timeout` whose call has not started (not both
    /// `ready_to_talk`), each named once by the side holding it up: the
    /// callee if it never said `ready_to_talk`, else the caller.
    pub fn unanswered(&self, now: Instant, timeout: Duration) -> Vec<UserId> {
        let mut out: Vec<UserId> = self
            .users
            .values()
            .filter_map(|u| {
                let pair = u.pair?;
                if u.status == Status::InCall
                    || now.saturating_duration_since(pair.since) <= timeout
                {
                    return None;
                }
                let peer = self.users.get(&pair.peer)?;
                let (callee, caller) = match pair.role {
                    Role::Callee => (u, peer),
                    Role::Caller => (peer, u),
                };
                let laggard = if callee.status == Status::Paired {
                    callee
                } else {
                    caller
                };
                (laggard.id == u.id).then_some(u.id)
            })
            .collect();
        out.sort_unstable();
        out
    }

    /// Ends the pair `id` holds up (see [`Registry::unanswered`]): both
    /// sides hear `peer_left` `no_answer` and go `busy`; a live client
    /// draws again.
    pub fn drop_unanswered(&mut self, id: UserId) -> Vec<Notice> {
        let mut notices = Vec::new();
        if self.users.get(&id).and_then(|u| u.pair).is_none() {
            return notices;
        }
        self.dissolve(id, LeaveReason::NoAnswer, &mut notices);
        notices.push(Notice {
            user: id,
            event: ServerEvent::PeerLeft {
                reason: LeaveReason::NoAnswer,
            },
        });
        self.set(id, Status::Busy, &mut notices);
        notices
    }

    /// Changes a user's status; see `docs/api.md` for the flow.
    ///
    /// * `ready` ends a current pair (if any) and enters the pool; the user
    ///   is paired at once if someone is waiting.
    /// * `busy` leaves the pool or ends the pair.
    /// * `ready_to_talk` needs a pair; when both sides are `ready_to_talk`
    ///   both become `in_call`.
    pub fn set_status(
        &mut self,
        id: UserId,
        wanted: Status,
        at: At,
    ) -> Result<Vec<Notice>, RegistryError> {
        let current = self.users.get(&id).ok_or(RegistryError::NoSuchUser)?.status;
        let mut notices = Vec::new();
        match wanted {
            Status::Busy => {
                self.leave_pool(id);
                self.dissolve(id, LeaveReason::HungUp, &mut notices);
                self.set(id, Status::Busy, &mut notices);
            }
            Status::Ready => {
                if current == Status::Ready {
                    return Ok(notices);
                }
                self.dissolve(id, LeaveReason::HungUp, &mut notices);
                self.set(id, Status::Ready, &mut notices);
                if self.users.get(&id).is_some_and(|u| u.admitted) {
                    self.enter_pool(id, at, &mut notices);
                }
            }
            Status::ReadyToTalk => {
                let pair = self
                    .users
                    .get(&id)
                    .and_then(|u| u.pair)
                    .ok_or(RegistryError::NotPaired)?;
                if matches!(current, Status::ReadyToTalk | Status::InCall) {
                    return Ok(notices);
                }
                self.set(id, Status::ReadyToTalk, &mut notices);
                notices.push(Notice {
                    user: pair.peer,
                    event: ServerEvent::PeerReadyToTalk,
                });
                let peer_status = self.users.get(&pair.peer).map(|u| u.status);
                if peer_status == Some(Status::ReadyToTalk) {
                    self.set(id, Status::InCall, &mut notices);
                    self.set(pair.peer, Status::InCall, &mut notices);
                }
            }
            Status::Paired | Status::InCall => {
                // Server-set states; the wire type does not let clients ask.
                return Ok(notices);
            }
        }
        Ok(notices)
    }

    /// The partner and role of a user, for `GET /v1/me/peer`:
    /// `Ok(Some)` once paired, `Ok(None)` while waiting, `NotReady` if the
    /// user is not looking.
    pub fn peer_of(&self, id: UserId) -> Result<Option<PeerResponse>, RegistryError> {
        let u = self.users.get(&id).ok_or(RegistryError::NoSuchUser)?;
        match (u.status, u.pair) {
            (Status::Ready, _) => Ok(None),
            (Status::Busy, _) => Err(RegistryError::NotReady),
            (_, Some(p)) => {
                let peer = self.users.get(&p.peer).ok_or(RegistryError::NoSuchUser)?;
                Ok(Some(PeerResponse {
                    peer: PeerInfo {
                        name: peer.name.clone(),
                        extension: peer.extension.to_string(),
                        media_key: peer.media_key.clone(),
                    },
                    role: p.role,
                    peer_status: peer.status,
                    pair_id: hex(&p.pair_id),
                }))
            }
            (_, None) => Err(RegistryError::NotReady),
        }
    }

    /// Removes a user everywhere (logout, kick, expiry). The partner, if
    /// any, is told why and goes back to `busy`.
    pub fn remove(
        &mut self,
        id: UserId,
        reason: LeaveReason,
    ) -> Result<(User, Vec<Notice>), RegistryError> {
        if !self.users.contains_key(&id) {
            return Err(RegistryError::NoSuchUser);
        }
        let mut notices = Vec::new();
        self.leave_pool(id);
        self.dissolve(id, reason, &mut notices);
        let user = self.users.remove(&id).ok_or(RegistryError::NoSuchUser)?;
        self.lobby.remove(&id);
        self.by_name.remove(&key(&user.name));
        self.by_ext.remove(&user.extension);
        Ok((user, notices))
    }

    /// Users silent for longer than `lease` with nothing open (no
    /// long-poll, no event stream), oldest first.
    pub fn silent_since(&self, now: Instant, lease: Duration) -> Vec<UserId> {
        let mut v: Vec<(Instant, UserId)> = self
            .users
            .values()
            .filter(|u| u.watchers == 0 && now.saturating_duration_since(u.last_seen) > lease)
            .map(|u| (u.last_seen, u.id))
            .collect();
        v.sort();
        v.into_iter().map(|(_, id)| id).collect()
    }

    /// What the PBX config must hold now, ordered by extension.
    pub fn pbx_users(&self) -> Vec<PbxUser> {
        let mut v: Vec<PbxUser> = self
            .users
            .values()
            .map(|u| PbxUser {
                name: u.name.clone(),
                extension: u.extension,
                secret: u.sip_password.clone(),
            })
            .collect();
        v.sort_by_key(|u| u.extension);
        v
    }

    /// Every current pair once, as (caller, callee).
    pub fn pairs(&self) -> Vec<(&User, &User)> {
        let mut v: Vec<(&User, &User)> = self
            .users
            .values()
            .filter_map(|u| {
                let p = u.pair?;
                if p.role != Role::Caller {
                    return None;
                }
                Some((u, self.users.get(&p.peer)?))
            })
            .collect();
        v.sort_by_key(|(c, _)| c.id);
        v
    }

    fn set(&mut self, id: UserId, status: Status, notices: &mut Vec<Notice>) {
        if let Some(u) = self.users.get_mut(&id) {
            if u.status != status {
                u.status = status;
                if status == Status::Ready {
                    self.lobby.insert(id);
                } else {
                    self.lobby.remove(&id);
                }
                notices.push(Notice {
                    user: id,
                    event: ServerEvent::Status { status },
                });
            }
        }
    }

    fn leave_pool(&mut self, id: UserId) {
        if let Some(pos) = self.pool.iter().position(|&u| u == id) {
            self.pool.swap_remove(pos);
        }
    }

    /// Ends `id`'s pair: the partner goes back to `busy` and hears why.
    fn dissolve(&mut self, id: UserId, reason: LeaveReason, notices: &mut Vec<Notice>) {
        let Some(pair) = self.users.get_mut(&id).and_then(|u| u.pair.take()) else {
            return;
        };
        if let Some(peer) = self.users.get_mut(&pair.peer) {
            peer.pair = None;
        }
        notices.push(Notice {
            user: pair.peer,
            event: ServerEvent::PeerLeft { reason },
        });
        self.set(pair.peer, Status::Busy, notices);
    }

    /// Puts a ready user in the pool, or pairs it at once with a waiting
    /// user picked uniformly at random, avoiding the last partner (on either
    /// side) while anyone else is waiting.
    fn enter_pool(&mut self, id: UserId, at: At, notices: &mut Vec<Notice>) {
        let last = self.users.get(&id).and_then(|u| u.last_partner);
        let live: Vec<usize> = self
            .pool
            .iter()
            .enumerate()
            .filter(|(_, &c)| self.users.get(&c).is_some_and(|u| self.is_live(u, at.mono)))
            .map(|(i, _)| i)
            .collect();
        let fresh: Vec<usize> = live
            .iter()
            .copied()
            .filter(|&i| {
                self.pool.get(i).is_some_and(|&c| {
                    Some(c) != last && self.users.get(&c).and_then(|u| u.last_partner) != Some(id)
                })
            })
            .collect();
        let pick = if !fresh.is_empty() {
            fresh.get(self.rng.gen_range(0..fresh.len())).copied()
        } else if !live.is_empty() {
            live.get(self.rng.gen_range(0..live.len())).copied()
        } else {
            None
        };
        let Some(pos) = pick else {
            self.pool.push(id);
            return;
        };
        let other = self.pool.swap_remove(pos);
        let my_role = if self.rng.gen::<bool>() {
            Role::Caller
        } else {
            Role::Callee
        };
        self.pairings_total += 1;
        let mut pair_id = [0u8; 16];
        self.rng.fill_bytes(&mut pair_id);
        let names: Vec<String> = [id, other]
            .iter()
            .map(|x| {
                self.users
                    .get(x)
                    .map(|u| u.name.clone())
                    .unwrap_or_default()
            })
            .collect();
        for (me, them, role, them_name) in [
            (id, other, my_role, names.get(1)),
            (other, id, my_role.opposite(), names.first()),
        ] {
            if let Some(u) = self.users.get_mut(&me) {
                u.last_partner_name = them_name.cloned();
                u.pair = Some(PairSide {
                    peer: them,
                    role,
                    since_unix: at.unix(),
                    since: at.mono,
                    pair_id,
                });
                u.last_partner = Some(them);
            }
        }
        for (me, them, role) in [(id, other, my_role), (other, id, my_role.opposite())] {
            self.set(me, Status::Paired, notices);
            if let Some(peer) = self.users.get(&them) {
                notices.push(Notice {
                    user: me,
                    event: ServerEvent::Paired {
                        peer: PeerInfo {
                            name: peer.name.clone(),
                            extension: peer.extension.to_string(),
                            media_key: peer.media_key.clone(),
                        },
                        role,
                        pair_id: hex(&pair_id),
                    },
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    fn reg(seed: u64) -> Registry {
        Registry::new(
            RegistryConfig::default(),
            Box::new(StdRng::seed_from_u64(seed)),
        )
    }

    fn at() -> At {
        At::new(Instant::now(), 0)
    }

    fn add(r: &mut Registry, name: &str) -> UserId {
        r.register(name, at()).unwrap().id
    }

    #[test]
    fn extensions_count_up_and_are_unique() {
        let mut r = reg(1);
        let a = add(&mut r, "alice");
        let b = add(&mut r, "bob");
        assert_eq!(r.get(a).unwrap().extension, 111_000);
        assert_eq!(r.get(b).unwrap().extension, 111_001);
        r.remove(a, LeaveReason::LoggedOut).unwrap();
        let c = add(&mut r, "carol");
        assert_eq!(r.get(c).unwrap().extension, 111_002);
        assert_eq!(r.by_extension(111_001).unwrap().name, "bob");
    }

    #[test]
    fn extension_wraps_and_skips_those_in_use() {
        let mut r = reg(1);
        let a = add(&mut r, "alice");
        r.next_ext = LAST_EXTENSION;
        let b = add(&mut r, "bob");
        assert_eq!(r.get(b).unwrap().extension, LAST_EXTENSION);
        let c = add(&mut r, "carol");
        // 111000 is alice's: skipped.
        assert_eq!(r.get(c).unwrap().extension, 111_001);
        assert_eq!(r.get(a).unwrap().extension, 111_000);
    }

    #[test]
    fn names_are_unique_regardless_of_case() {
        let mut r = reg(1);
        add(&mut r, "Alice");
        assert_eq!(
            r.register("aLICE", at()).unwrap_err(),
            RegistryError::NameTaken("aLICE".into())
        );
        assert_eq!(r.find("ALICE").unwrap().name, "Alice");
    }

    #[test]
    fn sip_passwords_are_long_random_and_distinct() {
        let mut r = reg(7);
        let mut seen = std::collections::HashSet::new();
        for i in 0..200 {
            let id = add(&mut r, &format!("user{i}"));
            let pw = r.get(id).unwrap().sip_password.clone();
            assert_eq!(pw.len(), SIP_PASSWORD_LEN);
            assert!(pw.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(seen.insert(pw));
        }
    }

    #[test]
    fn max_users_is_enforced() {
        let mut r = Registry::new(
            RegistryConfig {
                max_users: 2,
                ..RegistryConfig::default()
            },
            Box::new(StdRng::seed_from_u64(1)),
        );
        add(&mut r, "aaa");
        add(&mut r, "bbb");
        assert_eq!(r.register("ccc", at()).unwrap_err(), RegistryError::Full(2));
    }

    #[test]
    fn two_ready_users_pair_with_opposite_roles() {
        let mut r = reg(3);
        let a = add(&mut r, "alice");
        let b = add(&mut r, "bob");
        assert_eq!(r.peer_of(a).unwrap_err(), RegistryError::NotReady);
        r.set_status(a, Status::Ready, at()).unwrap();
        assert_eq!(r.peer_of(a).unwrap(), None);
        let n = r.set_status(b, Status::Ready, at()).unwrap();
        let pa = r.peer_of(a).unwrap().unwrap();
        let pb = r.peer_of(b).unwrap().unwrap();
        assert_eq!(pa.peer.name, "bob");
        assert_eq!(pb.peer.name, "alice");
        assert_eq!(pa.role, pb.role.opposite());
        // One pair, one id on both sides, also in the pushed events.
        assert_eq!(pa.pair_id, pb.pair_id);
        for x in &n {
            if let ServerEvent::Paired { pair_id, .. } = &x.event {
                assert_eq!(pair_id, &pa.pair_id);
            }
        }
        assert_eq!(r.get(a).unwrap().status, Status::Paired);
        assert!(n
            .iter()
            .any(|x| x.user == a && matches!(x.event, ServerEvent::Paired { .. })));
        assert!(n
            .iter()
            .any(|x| x.user == b && matches!(x.event, ServerEvent::Paired { .. })));
        assert_eq!(r.pairings_total(), 1);
        assert_eq!(r.waiting(), 0);
    }

    #[test]
    fn ready_to_talk_on_both_sides_means_in_call() {
        let mut r = reg(3);
        let a = add(&mut r, "alice");
        let b = add(&mut r, "bob");
        assert_eq!(
            r.set_status(a, Status::ReadyToTalk, at()).unwrap_err(),
            RegistryError::NotPaired
        );
        r.set_status(a, Status::Ready, at()).unwrap();
        r.set_status(b, Status::Ready, at()).unwrap();
        let n = r.set_status(a, Status::ReadyToTalk, at()).unwrap();
        assert!(n.contains(&Notice {
            user: b,
            event: ServerEvent::PeerReadyToTalk
        }));
        assert_eq!(
            r.peer_of(b).unwrap().unwrap().peer_status,
            Status::ReadyToTalk
        );
        r.set_status(b, Status::ReadyToTalk, at()).unwrap();
        assert_eq!(r.get(a).unwrap().status, Status::InCall);
        assert_eq!(r.get(b).unwrap().status, Status::InCall);
        // Hang up: the partner goes back to busy and hears it.
        let n = r.set_status(a, Status::Busy, at()).unwrap();
        assert!(n.contains(&Notice {
            user: b,
            event: ServerEvent::PeerLeft {
                reason: LeaveReason::HungUp
            }
        }));
        assert_eq!(r.get(b).unwrap().status, Status::Busy);
        assert!(r.get(b).unwrap().pair.is_none());
        assert!(r.pairs().is_empty());
    }

    #[test]
    fn removing_a_paired_user_frees_the_partner() {
        let mut r = reg(3);
        let a = add(&mut r, "alice");
        let b = add(&mut r, "bob");
        r.set_status(a, Status::Ready, at()).unwrap();
        r.set_status(b, Status::Ready, at()).unwrap();
        let (_, n) = r.remove(a, LeaveReason::Kicked).unwrap();
        assert!(n.contains(&Notice {
            user: b,
            event: ServerEvent::PeerLeft {
                reason: LeaveReason::Kicked
            }
        }));
        assert_eq!(r.get(b).unwrap().status, Status::Busy);
        assert!(r.find("alice").is_none());
        assert!(r.by_extension(111_000).is_none());
        assert_eq!(r.pbx_users().len(), 1);
    }

    #[test]
    fn the_same_two_are_not_paired_twice_while_someone_else_waits() {
        for seed in 0..50 {
            let mut r = reg(seed);
            let a = add(&mut r, "alice");
            let b = add(&mut r, "bob");
            let c = add(&mut r, "carol");
            r.set_status(a, Status::Ready, at()).unwrap();
            r.set_status(b, Status::Ready, at()).unwrap();
            r.set_status(a, Status::Busy, at()).unwrap();
            // carol waits, then alice comes back: she must get carol, not bob...
            r.set_status(c, Status::Ready, at()).unwrap();
            r.set_status(b, Status::Ready, at()).unwrap();
            // ...bob arrived while carol waited, so bob got carol.
            assert_eq!(r.peer_of(b).unwrap().unwrap().peer.name, "carol");
            // With a pool of {alice's last partner, someone new} she takes the new one.
            let d = add(&mut r, "dave");
            r.set_status(b, Status::Busy, at()).unwrap();
            r.set_status(c, Status::Busy, at()).unwrap();
            r.pool.clear();
            r.pool.push(b);
            r.pool.push(d);
            r.users.get_mut(&b).unwrap().status = Status::Ready;
            r.users.get_mut(&d).unwrap().status = Status::Ready;
            r.users.get_mut(&b).unwrap().last_partner = Some(a);
            r.users.get_mut(&a).unwrap().last_partner = Some(b);
            r.set_status(a, Status::Ready, at()).unwrap();
            assert_eq!(
                r.peer_of(a).unwrap().unwrap().peer.name,
                "dave",
                "seed {seed}"
            );
        }
    }

    #[test]
    fn the_last_partner_is_taken_when_nobody_else_waits() {
        let mut r = reg(5);
        let a = add(&mut r, "alice");
        let b = add(&mut r, "bob");
        r.set_status(a, Status::Ready, at()).unwrap();
        r.set_status(b, Status::Ready, at()).unwrap();
        r.set_status(a, Status::Ready, at()).unwrap(); // "next": ends the pair, bob → busy
        r.set_status(b, Status::Ready, at()).unwrap();
        assert_eq!(r.peer_of(a).unwrap().unwrap().peer.name, "bob");
    }

    #[test]
    fn picks_are_uniform_over_waiting_users() {
        // Pool of 4 waiting users; a fifth arrives 4000 times.
        let mut counts = [0u32; 4];
        let mut r = reg(11);
        let waiting: Vec<UserId> = (0..4).map(|i| add(&mut r, &format!("wait{i}"))).collect();
        let x = add(&mut r, "newcomer");
        for _ in 0..4000 {
            r.pool = waiting.clone();
            for &w in &waiting {
                let u = r.users.get_mut(&w).unwrap();
                u.status = Status::Ready;
                u.pair = None;
                u.last_partner = None;
            }
            let u = r.users.get_mut(&x).unwrap();
            u.status = Status::Busy;
            u.pair = None;
            u.last_partner = None;
            r.set_status(x, Status::Ready, at()).unwrap();
            let peer = r.get(x).unwrap().pair.unwrap().peer;
            let i = waiting.iter().position(|&w| w == peer).unwrap();
            counts[i] += 1;
        }
        // Each expected 1000; a 5-sigma band for Binomial(4000, 1/4) is ±137.
        for c in counts {
            assert!((863..=1137).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn moderated_admission_holds_ready_users_until_admitted() {
        let mut r = Registry::new(
            RegistryConfig {
                moderated: true,
                ..RegistryConfig::default()
            },
            Box::new(StdRng::seed_from_u64(9)),
        );
        let a = add(&mut r, "alice");
        let b = add(&mut r, "bob");
        let c = add(&mut r, "carol");
        for id in [a, b, c] {
            r.set_status(id, Status::Ready, at()).unwrap();
        }
        assert_eq!(r.waiting(), 0, "nobody enters the pool unadmitted");
        assert_eq!(r.lobby().count(), 3);
        assert_eq!(r.peer_of(a).unwrap(), None);
        let n = r.admit(a, at()).unwrap();
        assert!(n.contains(&Notice {
            user: a,
            event: ServerEvent::Admitted
        }));
        assert_eq!(r.waiting(), 1);
        let n = r.admit(b, at()).unwrap();
        assert!(n
            .iter()
            .any(|x| x.user == a && matches!(x.event, ServerEvent::Paired { .. })));
        assert_eq!(r.peer_of(b).unwrap().unwrap().peer.name, "alice");
        assert_eq!(r.lobby().collect::<Vec<_>>(), vec![c]);
        // Admitting twice is a no-op; admission sticks after hanging up.
        assert!(r.admit(a, at()).unwrap().is_empty());
        r.set_status(a, Status::Ready, at()).unwrap();
        assert_eq!(r.waiting(), 1);
        let (admitted, _) = r.admit_all(at());
        assert_eq!(admitted, vec![c]);
        assert!(r.get(c).unwrap().pair.is_some());
    }

    #[test]
    fn reports_target_the_current_or_last_partner() {
        let mut r = reg(1);
        let a = add(&mut r, "alice");
        let b = add(&mut r, "bob");
        assert_eq!(r.report_target(a), None);
        r.set_status(a, Status::Ready, at()).unwrap();
        r.set_status(b, Status::Ready, at()).unwrap();
        assert_eq!(r.report_target(a).as_deref(), Some("bob"));
        r.remove(b, LeaveReason::LoggedOut).unwrap();
        assert_eq!(r.report_target(a).as_deref(), Some("bob"));
    }

    #[test]
    fn silent_users_are_found_unless_watching() {
        let mut r = reg(1);
        let t0 = Instant::now();
        let a = r.register("alice", At::new(t0, 0)).unwrap().id;
        let b = r.register("bob", At::new(t0, 0)).unwrap().id;
        r.watch(b, true, t0);
        let later = t0 + Duration::from_secs(31);
        assert_eq!(r.silent_since(later, Duration::from_secs(30)), vec![a]);
        r.touch(a, later).unwrap();
        assert!(r.silent_since(later, Duration::from_secs(30)).is_empty());
    }

    fn pair_of_two(r: &mut Registry, t: Instant) -> (UserId, UserId) {
        let a = add(r, "alice");
        let b = add(r, "bob");
        r.set_status(a, Status::Ready, At::new(t, 0)).unwrap();
        r.set_status(b, Status::Ready, At::new(t, 0)).unwrap();
        let callee = if r.get(a).unwrap().pair.unwrap().role == Role::Callee {
            a
        } else {
            b
        };
        let caller = if callee == a { b } else { a };
        (caller, callee)
    }

    #[test]
    fn an_unanswered_pair_blames_the_callee_that_never_got_ready() {
        let mut r = reg(3);
        let t = Instant::now();
        let (caller, callee) = pair_of_two(&mut r, t);
        let limit = Duration::from_secs(10);
        assert!(r.unanswered(t + Duration::from_secs(9), limit).is_empty());
        assert_eq!(
            r.unanswered(t + Duration::from_secs(11), limit),
            vec![callee]
        );
        let n = r.drop_unanswered(callee);
        for who in [caller, callee] {
            assert!(n.iter().any(|x| x.user == who
                && x.event
                    == ServerEvent::PeerLeft {
                        reason: LeaveReason::NoAnswer
                    }));
            assert_eq!(r.get(who).unwrap().status, Status::Busy);
            assert!(r.get(who).unwrap().pair.is_none());
        }
        assert_eq!(r.waiting(), 0);
        assert!(r.unanswered(t + Duration::from_secs(60), limit).is_empty());
    }

    #[test]
    fn an_unanswered_pair_blames_the_caller_once_the_callee_is_ready() {
        let mut r = reg(4);
        let t = Instant::now();
        let (caller, callee) = pair_of_two(&mut r, t);
        r.set_status(callee, Status::ReadyToTalk, at()).unwrap();
        let later = t + Duration::from_secs(11);
        assert_eq!(r.unanswered(later, Duration::from_secs(10)), vec![caller]);
        // Once both are ready to talk the call has started: no deadline.
        r.set_status(caller, Status::ReadyToTalk, at()).unwrap();
        assert!(r.unanswered(later, Duration::from_secs(10)).is_empty());
    }

    #[test]
    fn a_user_whose_stream_closed_or_went_quiet_is_not_handed_out() {
        let mut r = reg(5);
        let t = Instant::now();
        let at = |d: u64| At::new(t + Duration::from_secs(d), 0);
        let ghost = add(&mut r, "ghost");
        let quiet = add(&mut r, "quiet");
        let newcomer = add(&mut r, "newcomer");
        for id in [ghost, quiet] {
            r.watch(id, true, t);
            r.stream_opened(id);
            r.set_status(id, Status::Ready, at(0)).unwrap();
        }
        // The two were paired with each other at once: end that pair.
        r.set_status(ghost, Status::Busy, at(0)).unwrap();
        r.set_status(quiet, Status::Busy, at(0)).unwrap();
        r.set_status(ghost, Status::Ready, at(0)).unwrap();
        r.stream_closed(ghost, t + Duration::from_secs(1));
        r.set_status(quiet, Status::Ready, at(1)).unwrap();
        assert_eq!(r.get(quiet).unwrap().status, Status::Ready, "ghost skipped");
        // quiet's last pong was at t; at t+5 it is past the 3 s window.
        r.set_status(newcomer, Status::Ready, at(5)).unwrap();
        assert_eq!(r.get(newcomer).unwrap().status, Status::Ready);
        assert_eq!(r.waiting(), 3);
        // quiet answers pings again: the next rematch pairs it with the
        // newcomer, never with the ghost.
        r.touch(quiet, t + Duration::from_secs(6)).unwrap();
        let n = r.rematch(at(6));
        assert_eq!(r.get(quiet).unwrap().pair.unwrap().peer, newcomer);
        assert!(n.iter().all(|x| x.user != ghost));
        assert_eq!(r.get(ghost).unwrap().status, Status::Ready);
        // Nothing else to pair: rematch is then a no-op.
        assert!(r.rematch(at(7)).is_empty());
    }
}

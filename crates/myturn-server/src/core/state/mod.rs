//! The records the rules keep, and [`State`]: the one interface a state
//! backend provides to them.
//!
//! The rules of the service (`core::rules`, `core::cases`) never hold
//! data of their own: every user, pair, session family, ban, report and
//! rate-limit bucket is a record reached through `&mut dyn State`. A
//! backend implements only record access and the few indexes the rules
//! look things up by (a name, an extension, the pool, the lobby, the
//! refresh tokens), never a rule. [`MemState`] keeps them in this
//! process's memory; a networked backend keeps the same records
//! elsewhere and runs the same rules over them.
//!
//! Every method is plain and synchronous: a backend that reads its
//! records over a network fetches them before the rules run (see
//! `docs/scaling.md`).

mod memory;

pub use memory::MemState;

use std::net::IpAddr;
use std::time::Duration;

use myturn_wire::{Ban, Report, Role, Status};
use serde::{Deserialize, Serialize};

/// The first extension handed out, as in the original design.
pub const FIRST_EXTENSION: u32 = 111_000;
/// The last extension handed out before wrapping around.
pub const LAST_EXTENSION: u32 = 999_999;

/// A moment as the records keep it: milliseconds since the Unix epoch
/// (wall-clock, so a state shared by machines means the same on each).
pub type Millis = u64;

/// How long from `then` to `now` (zero if `then` is later).
pub fn elapsed(now: Millis, then: Millis) -> Duration {
    Duration::from_millis(now.saturating_sub(then))
}

/// The moment `d` after `at`.
pub fn later(at: Millis, d: Duration) -> Millis {
    at.saturating_add(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A server node, as it names itself (`--node-id`).
pub type NodeId = String;

/// What a sweep looks for among the users, each keyed by a moment: the
/// users "due" by a moment are those whose key is at or before it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Due {
    /// Looking or in a call with every stream closed: keyed by when the
    /// last one closed (a ghost past the grace).
    StreamLost,
    /// No stream open: keyed by the last activity (silent past the lease).
    Silent,
    /// In a pair whose call has not started: keyed by when the pair was
    /// made (unanswered past the answer timeout).
    Unanswered,
    /// Waiting with interests and a fallback to come: keyed by when the
    /// interest wait runs out.
    Fallback,
}

impl Due {
    /// Every kind.
    pub const ALL: [Due; 4] = [Due::StreamLost, Due::Silent, Due::Unanswered, Due::Fallback];
}

/// A stable per-registration identifier. A name that logs out and registers
/// again gets a new `UserId`, so old tokens cannot act on the new user.
pub type UserId = u64;

/// One user, as the rules keep them.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
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
    pub last_seen: Millis,
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
    /// Until when an open long-poll keeps this user from counting as
    /// silent (0: none).
    pub watching_until: Millis,
    /// Open event streams: a user whose streams all closed and stay
    /// closed past the grace is gone from the pool.
    pub streams: u32,
    /// The node holding the last stream opened (its death closes them).
    pub stream_node: Option<NodeId>,
    /// When the last open stream closed (`None` while one is open, or
    /// if none ever was).
    pub stream_lost_at: Option<Millis>,
    /// The interests this session is paired on (normalised; empty: none).
    pub interests: Vec<String>,
    /// How long to wait for a shared interest before the plain draw.
    #[serde(with = "millis")]
    pub interest_wait: Duration,
    /// Never fall back to the plain draw.
    pub only_interests: bool,
    /// When this user entered the pool (while waiting in it).
    pub waiting_since: Option<Millis>,
    /// In the plain draw (no interests, or their wait has run out).
    pub in_plain_draw: bool,
    /// Where the user is registered over SIP with a built-in PBX (the
    /// binding's contact), as the node whose PBX holds it said.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sip_contact: Option<String>,
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

/// One side's view of its pair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PairSide {
    /// The partner.
    pub peer: UserId,
    /// This side's role.
    pub role: Role,
    /// When the pair was made (the answer timeout counts from here).
    pub since: Millis,
    /// The pair's random id, the same on both sides; the clients' media
    /// keys bind it (`docs/protocol.md`).
    pub pair_id: PairId,
    /// The interests the two share (empty: the plain draw).
    pub shared: Vec<String>,
    /// When the call was set up (both `ready_to_talk`), if it was.
    #[serde(default)]
    pub call_since: Option<Millis>,
}

/// A draw the waiting users are in: everyone in the plain one, and each
/// interest a draw of its own.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DrawKey {
    /// Users with no interests, and those whose interest wait ran out.
    Plain,
    /// Users who gave this interest.
    Tag(String),
}

/// A pair's random 128-bit id.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PairId(pub [u8; 16]);

impl PairId {
    /// The wire form: 32 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        use std::fmt::Write as _;
        self.0.iter().fold(String::with_capacity(32), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
    }
}

/// A refresh token's record, kept under the SHA-256 of the token.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshEntry {
    /// The session family it belongs to.
    pub family: u64,
    /// Already exchanged once: presenting it again is theft.
    pub spent: bool,
}

/// What is being rate-limited.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum LimitKey {
    /// `POST /v1/users` per client IP.
    Register(IpAddr),
    /// `POST /v1/session/refresh` per client IP.
    Refresh(IpAddr),
    /// Lobby chat lines per user.
    Lobby(UserId),
    /// Reports per user.
    Report(UserId),
    /// Lobby typing indicators per user.
    Typing(UserId),
}

/// A token bucket: how full, as of when.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Bucket {
    /// Tokens left (fractions refill continuously).
    pub tokens: f64,
    /// When `tokens` was worked out.
    pub at: Millis,
}

/// What a PBX must know of a user.
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

/// Record access for the rules. See the module docs.
///
/// Names are looked up case-insensitively: a backend keys them by
/// [`name_key`]. Indexes (names, extensions) follow the user records by
/// themselves: [`State::insert_user`] and [`State::remove_user`] keep
/// them.
pub trait State: Send + std::fmt::Debug {
    /// Whether this state lacks records the command asked for: a shared
    /// store answers such reads as empty while it reads them in, and
    /// throws what the command decided away. Rules that look at records
    /// one by one (the matching policy's draws) stop deciding then.
    /// Never, in memory.
    fn reading(&self) -> bool {
        false
    }

    // ---- users ------------------------------------------------------
    /// A user by id.
    fn user(&self, id: UserId) -> Option<&User>;
    /// A user by id, to change.
    fn user_mut(&mut self, id: UserId) -> Option<&mut User>;
    /// Adds a user (its name and extension must be free).
    fn insert_user(&mut self, user: User);
    /// Removes a user and its index entries.
    fn remove_user(&mut self, id: UserId) -> Option<User>;
    /// Who holds a name (case-insensitive).
    fn user_by_name(&self, name: &str) -> Option<UserId>;
    /// Who holds an extension.
    fn user_by_extension(&self, extension: u32) -> Option<UserId>;
    /// Users registered.
    fn user_count(&self) -> usize;
    /// Users per status, in [`Status::ALL`] order. A shared store keeps
    /// these counts as it commits, so `/metrics` reads them instead of
    /// every user.
    fn status_counts(&self) -> Vec<(Status, u64)> {
        let mut by: Vec<(Status, u64)> = Status::ALL.iter().map(|s| (*s, 0)).collect();
        for u in self.users() {
            if let Some(slot) = by.iter_mut().find(|(s, _)| *s == u.status) {
                slot.1 += 1;
            }
        }
        by
    }
    /// Every user, in no order (the admin views; sweeps use [`State::due`]).
    fn users(&self) -> Box<dyn Iterator<Item = &User> + '_>;
    /// The users whose `key` for `due` is at or before `by` (a superset is
    /// fine: the rules check each one). `key` is the rules' own definition
    /// ([`due_key`](crate::core::due_key)); an implementation that keeps
    /// an index by it need not call it.
    fn due(&self, due: Due, by: Millis, key: &dyn Fn(&User) -> Option<Millis>) -> Vec<UserId>;
    /// The earliest `key` for `due` after `after`, among all users (an
    /// earlier answer than the truth is fine: it only wakes the sweeper
    /// for nothing). An index answers without reading the users.
    fn next_due(
        &self,
        due: Due,
        after: Millis,
        key: &dyn Fn(&User) -> Option<Millis>,
    ) -> Option<Millis>;
    /// The users whose last stream is held by `node`.
    fn users_on_node(&self, node: &str) -> Vec<UserId>;
    /// A fresh user id (never handed out before).
    fn next_user_id(&mut self) -> UserId;
    /// Where the search for a free extension resumes.
    fn extension_cursor(&mut self) -> &mut u32;

    // ---- the pool and the lobby ------------------------------------
    /// Ready, unpaired, admitted users, in no meaningful order.
    fn pool(&self) -> &[UserId];
    /// Whether `id` waits in the pool (a shared store asks about one
    /// member instead of reading the pool).
    fn in_pool(&self, id: UserId) -> bool {
        self.pool().contains(&id)
    }
    /// How many wait in the pool.
    fn pool_len(&self) -> usize {
        self.pool().len()
    }
    /// Adds to the pool.
    fn pool_insert(&mut self, id: UserId);
    /// Removes from the pool (absent: nothing).
    fn pool_remove(&mut self, id: UserId);
    /// The members of a draw (in no meaningful order).
    fn draw(&self, key: &DrawKey) -> &[UserId];
    /// Adds to a draw.
    fn draw_insert(&mut self, key: &DrawKey, id: UserId);
    /// Removes from a draw (absent: nothing).
    fn draw_remove(&mut self, key: &DrawKey, id: UserId);
    /// The draws holding two users or more, in key order.
    fn crowded_draws(&self) -> Vec<DrawKey>;
    /// Everyone whose status is `ready` (the pool and the waiting room).
    fn lobby(&self) -> Box<dyn Iterator<Item = UserId> + '_>;
    /// Whether `id` is in the lobby.
    fn in_lobby(&self, id: UserId) -> bool;
    /// Adds to or removes from the lobby.
    fn set_in_lobby(&mut self, id: UserId, member: bool);
    /// Counts a pair made.
    fn count_pairing(&mut self);
    /// Pairs made since start.
    fn pairings_total(&self) -> u64;

    // ---- sessions ------------------------------------------------------
    /// Opens a new session family for `uid`.
    fn open_family(&mut self, uid: UserId) -> u64;
    /// Who a live family belongs to (`None`: revoked or unknown).
    fn family_owner(&self, family: u64) -> Option<UserId>;
    /// Revokes a family and every refresh token of it.
    fn close_family(&mut self, family: u64);
    /// The live families of a user.
    fn families_of(&self, uid: UserId) -> Vec<u64>;
    /// A refresh token's record, by the SHA-256 of the token.
    fn refresh_token(&self, hash: &[u8; 32]) -> Option<RefreshEntry>;
    /// Stores a refresh token's record.
    fn put_refresh_token(&mut self, hash: [u8; 32], entry: RefreshEntry);

    // ---- moderation --------------------------------------------------
    /// When the ban on a name key ends, if there is one (expired or not).
    fn ban_until(&self, key: &str) -> Option<u64>;
    /// Bans a name key until `until_unix`.
    fn set_ban(&mut self, key: String, until_unix: u64);
    /// Lifts a ban; `false` if there was none.
    fn lift_ban(&mut self, key: &str) -> bool;
    /// Forgets bans that ended at or before `now_unix`; returns those in force.
    fn bans_in_force(&mut self, now_unix: u64) -> Vec<Ban>;
    /// Files a report, dropping the oldest beyond `cap`.
    fn add_report(&mut self, report: Report, cap: usize);
    /// Every report, oldest first.
    fn reports(&self) -> Vec<Report>;
    /// A rate-limit bucket.
    fn bucket(&self, key: &LimitKey) -> Option<Bucket>;
    /// Stores a rate-limit bucket.
    fn put_bucket(&mut self, key: LimitKey, bucket: Bucket);
    /// Keeps only the buckets `keep` says yes to.
    fn retain_buckets(&mut self, keep: &mut dyn FnMut(&LimitKey, &Bucket) -> bool);
}

/// A [`Duration`] as whole milliseconds, for records that cross a wire.
mod millis {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_u64(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        u64::deserialize(d).map(Duration::from_millis)
    }
}

/// How names are compared: case-insensitively (ASCII, which is all a
/// valid nickname holds).
pub fn name_key(name: &str) -> String {
    name.to_ascii_lowercase()
}

/// Lookups every rule needs, written once over any [`State`].
pub trait StateExt: State {
    /// A user by name (case-insensitive).
    fn find(&self, name: &str) -> Option<&User> {
        self.user_by_name(name).and_then(|id| self.user(id))
    }

    /// A user by extension.
    fn by_extension(&self, extension: u32) -> Option<&User> {
        self.user_by_extension(extension)
            .and_then(|id| self.user(id))
    }

    /// A user's name.
    fn name_of(&self, id: UserId) -> Option<String> {
        self.user(id).map(|u| u.name.clone())
    }
}

impl<S: State + ?Sized> StateExt for S {}

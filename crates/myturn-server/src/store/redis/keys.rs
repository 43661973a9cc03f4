//! Where each record lives in Redis. Every key starts with the hash tag
//! `{mt}`, so all of them sit in one hash slot: the commit's script touches
//! many keys at once, which Redis allows within one slot.

use crate::core::state::{DrawKey, Due, LimitKey, UserId};

/// The key prefix (a hash tag: one slot).
pub(super) const PREFIX: &str = "{mt}:";

/// Every key's version: field = key, value = the commit clock when it was
/// last written (absent: never written, or deleted).
pub(super) fn versions() -> String {
    format!("{PREFIX}ver")
}

/// The commit clock: incremented by every commit.
pub(super) fn clock() -> String {
    format!("{PREFIX}clock")
}

/// One user's record (JSON).
pub(super) fn user(id: UserId) -> String {
    format!("{PREFIX}u:{id}")
}

/// Last activity per user (a sorted set: score = Unix ms), moved forward
/// by pongs without a commit.
pub(super) fn seen() -> String {
    format!("{PREFIX}seen")
}

/// Who holds a name (lower-cased).
pub(super) fn name(key: &str) -> String {
    format!("{PREFIX}n:{key}")
}

/// Who holds an extension.
pub(super) fn extension(ext: u32) -> String {
    format!("{PREFIX}e:{ext}")
}

/// Users per status (a hash: field = status, value = how many), kept by
/// the commit; not versioned (only `/metrics` reads it).
pub(super) fn statuses() -> String {
    format!("{PREFIX}statuses")
}

/// Every user id (a set).
pub(super) fn users() -> String {
    format!("{PREFIX}users")
}

/// A counter or cursor by name.
pub(super) fn counter(what: &str) -> String {
    format!("{PREFIX}c:{what}")
}

/// The pool (a set of user ids).
pub(super) fn pool() -> String {
    format!("{PREFIX}pool")
}

/// The lobby (a set of user ids).
pub(super) fn lobby() -> String {
    format!("{PREFIX}lobby")
}

/// One draw's members (a set of user ids).
pub(super) fn draw(key: &DrawKey) -> String {
    match key {
        DrawKey::Plain => format!("{PREFIX}d:plain"),
        DrawKey::Tag(t) => format!("{PREFIX}d:t:{t}"),
    }
}

/// The draw a draw key string names.
pub(super) fn draw_of(key: &str) -> Option<DrawKey> {
    let rest = key.strip_prefix(PREFIX)?.strip_prefix("d:")?;
    if rest == "plain" {
        return Some(DrawKey::Plain);
    }
    rest.strip_prefix("t:").map(|t| DrawKey::Tag(t.to_owned()))
}

/// The draws' sizes (a sorted set: member = draw key, score = size).
pub(super) fn draw_sizes() -> String {
    format!("{PREFIX}draws")
}

/// A sweep index (a sorted set: score = the user's key for it).
pub(super) fn due(d: Due) -> String {
    let what = match d {
        Due::StreamLost => "lost",
        Due::Silent => "silent",
        Due::Unanswered => "unanswered",
        Due::Fallback => "fallback",
    };
    format!("{PREFIX}due:{what}")
}

/// The users whose last stream a node holds (a set).
pub(super) fn node_users(node: &str) -> String {
    format!("{PREFIX}nu:{node}")
}

/// A session family's owner.
pub(super) fn family(f: u64) -> String {
    format!("{PREFIX}f:{f}")
}

/// A user's live families (a set).
pub(super) fn user_families(uid: UserId) -> String {
    format!("{PREFIX}uf:{uid}")
}

/// A family's refresh tokens (a set of hashes, hex).
pub(super) fn family_tokens(f: u64) -> String {
    format!("{PREFIX}ft:{f}")
}

/// A refresh token's record, by the hex of its hash.
pub(super) fn refresh(hash_hex: &str) -> String {
    format!("{PREFIX}r:{hash_hex}")
}

/// A ban, by name key.
pub(super) fn ban(name_key: &str) -> String {
    format!("{PREFIX}b:{name_key}")
}

/// Every banned name key (a set).
pub(super) fn bans() -> String {
    format!("{PREFIX}bans")
}

/// The reports (a list, oldest first).
pub(super) fn reports() -> String {
    format!("{PREFIX}reports")
}

/// A rate-limit bucket.
pub(super) fn bucket(k: &LimitKey) -> String {
    let what = match k {
        LimitKey::Register(ip) => format!("reg:{ip}"),
        LimitKey::Refresh(ip) => format!("ref:{ip}"),
        LimitKey::Lobby(u) => format!("lob:{u}"),
        LimitKey::Report(u) => format!("rep:{u}"),
        LimitKey::Typing(u) => format!("typ:{u}"),
    };
    format!("{PREFIX}k:{what}")
}

/// The live nodes (a set of node ids).
pub(super) fn nodes() -> String {
    format!("{PREFIX}nodes")
}

/// A node's heartbeat (expires when the node stops).
pub(super) fn node(id: &str) -> String {
    format!("{PREFIX}node:{id}")
}

/// The node that runs the sweeps (a lease).
pub(super) fn sweeper() -> String {
    format!("{PREFIX}sweeper")
}

/// A named lease (for example the Asterisk files' writer).
pub(super) fn lease(what: &str) -> String {
    format!("{PREFIX}lease:{what}")
}

/// A node's event channel.
pub(super) fn channel(node: &str) -> String {
    format!("{PREFIX}ev:{node}")
}

/// Hex of a refresh token's hash.
pub(super) fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(64), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

//! The commit: what an attempt changed, as one server-side script's
//! operations. The script checks every key the attempt read is still at
//! the version it was read at, then applies the writes and publishes the
//! deliveries, all or nothing. It holds no rule of the service: only
//! compare, write, publish.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::keys;
use super::tx::{Loaded, TxState};
use crate::core::effects::Delivery;
use crate::core::state::{Due, User, UserId};
use crate::core::{due_key, Effects};

/// The commit script. KEYS: the versions hash, the clock, the draws'
/// sizes. ARGV: the number of checks, the (key, version) pairs, then the
/// operations (see [`Ops`]). Answers 0 on a conflict, else the commit's
/// clock.
pub(super) const SCRIPT: &str = r#"
local ver, clockkey, sizes = KEYS[1], KEYS[2], KEYS[3]
local n = tonumber(ARGV[1])
local i = 2
for _ = 1, n do
  local have = redis.call('HGET', ver, ARGV[i]) or '0'
  if have ~= ARGV[i + 1] then return 0 end
  i = i + 2
end
local clock = redis.call('INCR', clockkey)
local function bump(k) redis.call('HSET', ver, k, clock) end
local function drop(k) redis.call('HDEL', ver, k) end
while i <= #ARGV do
  local op, k = ARGV[i], ARGV[i + 1]
  if op == 'S' then
    redis.call('SET', k, ARGV[i + 2]); bump(k); i = i + 3
  elseif op == 'SX' then
    redis.call('SET', k, ARGV[i + 2], 'PX', ARGV[i + 3]); bump(k); i = i + 4
  elseif op == 'D' then
    redis.call('DEL', k); drop(k); i = i + 2
  elseif op == 'SA' or op == 'SR' or op == 'DA' or op == 'DR' then
    if op == 'SA' or op == 'DA' then redis.call('SADD', k, ARGV[i + 2])
    else redis.call('SREM', k, ARGV[i + 2]) end
    local size = redis.call('SCARD', k)
    if size == 0 then drop(k) else bump(k) end
    if op == 'DA' or op == 'DR' then
      if size == 0 then redis.call('ZREM', sizes, k) else redis.call('ZADD', sizes, size, k) end
    end
    i = i + 3
  elseif op == 'ZU' then
    redis.call('ZADD', k, ARGV[i + 2], ARGV[i + 3]); i = i + 4
  elseif op == 'ZG' then
    redis.call('ZADD', k, 'GT', ARGV[i + 2], ARGV[i + 3]); i = i + 4
  elseif op == 'ZD' then
    redis.call('ZREM', k, ARGV[i + 2]); i = i + 3
  elseif op == 'HI' then
    redis.call('HINCRBY', k, ARGV[i + 2], ARGV[i + 3]); i = i + 4
  elseif op == 'IB' then
    redis.call('INCRBY', k, ARGV[i + 2]); bump(k); i = i + 3
  elseif op == 'RP' then
    redis.call('RPUSH', k, ARGV[i + 2])
    redis.call('LTRIM', k, -tonumber(ARGV[i + 3]), -1); bump(k); i = i + 4
  elseif op == 'P' then
    redis.call('PUBLISH', k, clock .. '|' .. ARGV[i + 2]); i = i + 3
  else
    return redis.error_reply('myturn commit: unknown operation ' .. tostring(op))
  end
end
return clock
"#;

/// What one node hears from one commit: the deliveries meant for it, in
/// order, and whether the PBX's accounts changed.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub(super) struct Batch {
    /// The accounts changed: the node's PBX sync pass runs.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub(super) pbx: bool,
    /// Deliveries, in order.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub(super) d: Vec<Delivery>,
}

/// The script's arguments: checks, then operations.
#[derive(Debug, Default)]
pub(super) struct Ops {
    pub(super) checks: Vec<(String, String)>,
    pub(super) ops: Vec<String>,
    /// The nodes a batch goes to (this node included, if any).
    pub(super) published_to: Vec<String>,
}

impl Ops {
    fn op(&mut self, parts: &[&str]) {
        self.ops.extend(parts.iter().map(|s| (*s).to_owned()));
    }

    /// The script's ARGV.
    pub(super) fn argv(&self) -> Vec<String> {
        let mut v = Vec::with_capacity(1 + 2 * self.checks.len() + self.ops.len());
        v.push(self.checks.len().to_string());
        for (k, ver) in &self.checks {
            v.push(k.clone());
            v.push(ver.clone());
        }
        v.extend(self.ops.iter().cloned());
        v
    }
}

/// The operations of an attempt that ran on complete data. `nodes` are the
/// live nodes (deliveries not tied to one node go to each).
pub(super) fn build(tx: &TxState<'_>, loaded: &Loaded, fx: &Effects, nodes: &[String]) -> Ops {
    let mut o = Ops {
        checks: loaded
            .versions
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        ..Ops::default()
    };
    for &id in &tx.dirty_users {
        let old = loaded.users.get(&id).and_then(Option::as_ref);
        let new = tx.users.get(&id).and_then(Option::as_ref);
        user_ops(&mut o, id, old, new);
    }
    for (k, w) in &tx.strs {
        match (&w.value, w.ttl_ms) {
            (Some(v), Some(ttl)) => o.op(&["SX", k, v, &ttl.to_string()]),
            (Some(v), None) => o.op(&["S", k, v]),
            (None, _) => o.op(&["D", k]),
        }
    }
    if let Some(c) = tx.cursor_write() {
        o.op(&["S", &keys::counter("ext"), &c.to_string()]);
    }
    for (k, w) in &tx.ids {
        let (add, rem) = if keys::draw_of(k).is_some() {
            ("DA", "DR")
        } else {
            ("SA", "SR")
        };
        for m in &w.removed {
            o.op(&[rem, k, &m.to_string()]);
        }
        for m in &w.added {
            o.op(&[add, k, &m.to_string()]);
        }
    }
    for (k, w) in &tx.strsets {
        for m in &w.removed {
            o.op(&["SR", k, m]);
        }
        for m in &w.added {
            o.op(&["SA", k, m]);
        }
    }
    if tx.pairings > 0 {
        o.op(&["IB", &keys::counter("pairings"), &tx.pairings.to_string()]);
    }
    for r in &tx.reports {
        o.op(&["RP", &keys::reports(), r, &tx.report_cap.max(1).to_string()]);
    }
    publish(&mut o, tx, fx, nodes);
    o
}

/// One `ZADD key GT score member`: an index moved forward.
pub(super) type Forward = (String, u64, String);

/// When all an attempt changed is users' last activity (an authenticated
/// request counting as activity), the index entries that say so: the
/// activity index pongs also move, and the sweeps' `due` entries keyed on
/// it. Written on their own, with no check and no commit, as pongs are,
/// they move no record's version, so they conflict with no other
/// command. Anything else changed: `None`, and the attempt commits.
pub(super) fn seen_only(tx: &TxState<'_>, loaded: &Loaded, fx: &Effects) -> Option<Vec<Forward>> {
    let quiet = fx.deliveries.is_empty()
        && !fx.pbx_changed
        && fx.pairings.is_empty()
        && fx.story.is_empty()
        && fx.wake_at.is_none()
        && tx.strs.is_empty()
        && tx.cursor_write().is_none()
        && tx.pairings == 0
        && tx.reports.is_empty()
        && tx
            .ids
            .values()
            .all(|w| w.added.is_empty() && w.removed.is_empty())
        && tx
            .strsets
            .values()
            .all(|w| w.added.is_empty() && w.removed.is_empty());
    if !quiet {
        return None;
    }
    let mut out = Vec::new();
    for &id in &tx.dirty_users {
        let old = loaded.users.get(&id).and_then(Option::as_ref)?;
        let new = tx.users.get(&id).and_then(Option::as_ref)?;
        if new.last_seen < old.last_seen {
            return None;
        }
        let mut same = new.clone();
        same.last_seen = old.last_seen;
        if same != *old {
            return None;
        }
        if new.last_seen == old.last_seen {
            continue;
        }
        let sid = id.to_string();
        out.push((keys::seen(), new.last_seen, sid.clone()));
        for d in Due::ALL {
            match (due_key(d, old), due_key(d, new)) {
                (Some(a), Some(b)) if a != b => out.push((keys::due(d), b, sid.clone())),
                (a, b) if a != b => return None,
                _ => {}
            }
        }
    }
    Some(out)
}

/// A user record's writes and its index entries (the sweeps' `due`
/// indexes, the node holding its streams), from the old record to the
/// new.
fn user_ops(o: &mut Ops, id: UserId, old: Option<&User>, new: Option<&User>) {
    let sid = id.to_string();
    match new {
        Some(u) => {
            if let Ok(j) = serde_json::to_string(u) {
                o.op(&["S", &keys::user(id), &j]);
            }
            o.op(&["ZG", &keys::seen(), &u.last_seen.to_string(), &sid]);
        }
        None => {
            o.op(&["D", &keys::user(id)]);
            o.op(&["ZD", &keys::seen(), &sid]);
        }
    }
    for d in Due::ALL {
        let before = old.and_then(|u| due_key(d, u));
        let after = new.and_then(|u| due_key(d, u));
        match after {
            Some(t) if before != Some(t) => o.op(&["ZU", &keys::due(d), &t.to_string(), &sid]),
            None if before.is_some() => o.op(&["ZD", &keys::due(d), &sid]),
            _ => {}
        }
    }
    let (before, after) = (old.map(|u| u.status), new.map(|u| u.status));
    if before != after {
        if let Some(s) = before {
            o.op(&["HI", &keys::statuses(), s.as_str(), "-1"]);
        }
        if let Some(s) = after {
            o.op(&["HI", &keys::statuses(), s.as_str(), "1"]);
        }
    }
    let was = old.and_then(|u| u.stream_node.clone());
    let is = new.and_then(|u| u.stream_node.clone());
    if was != is {
        if let Some(n) = was {
            o.op(&["SR", &keys::node_users(&n), &sid]);
        }
        if let Some(n) = is {
            o.op(&["SA", &keys::node_users(&n), &sid]);
        }
    }
}

/// Each node's batch: the deliveries for users whose streams it holds,
/// and everything else (lobby lines, arrivals, departures, revoked
/// families, events for users with no stream) to every node. One channel
/// per node, published in commit order, keeps every user's events in
/// order.
fn publish(o: &mut Ops, tx: &TxState<'_>, fx: &Effects, nodes: &[String]) {
    if fx.deliveries.is_empty() && !fx.pbx_changed {
        return;
    }
    let mut batches: BTreeMap<&str, Batch> = nodes
        .iter()
        .map(|n| {
            (
                n.as_str(),
                Batch {
                    pbx: fx.pbx_changed,
                    d: Vec::new(),
                },
            )
        })
        .collect();
    for d in &fx.deliveries {
        // The node holding the user's stream, as its record says: known
        // to this node or not yet (a node started a moment ago is learnt
        // from its first heartbeat, but its streams are already there).
        let holder = match d {
            Delivery::Event(uid, _) => tx
                .users
                .get(uid)
                .and_then(Option::as_ref)
                .and_then(|u| u.stream_node.as_deref()),
            _ => None,
        };
        match holder {
            Some(n) => batches
                .entry(n)
                .or_insert_with(|| Batch {
                    pbx: fx.pbx_changed,
                    d: Vec::new(),
                })
                .d
                .push(d.clone()),
            None => {
                for b in batches.values_mut() {
                    b.d.push(d.clone());
                }
            }
        }
    }
    for (node, b) in batches {
        if b.d.is_empty() && !b.pbx {
            continue;
        }
        if let Ok(j) = serde_json::to_string(&b) {
            o.op(&["P", &keys::channel(node), &j]);
            o.published_to.push(node.to_owned());
        }
    }
}

//! Reading what an attempt lacked: one atomic pipeline (MULTI … EXEC) per
//! round, so each round is a consistent snapshot, with each key's version
//! for the commit to check.

use std::collections::BTreeSet;

use redis::Value;

use super::keys;
use super::tx::{Loaded, Need};
use crate::core::state::{User, UserId};

/// Reads `needs` into `loaded`.
pub(super) async fn fetch<C: redis::aio::ConnectionLike + Send>(
    conn: &mut C,
    loaded: &mut Loaded,
    needs: &BTreeSet<Need>,
) -> redis::RedisResult<()> {
    let ver = keys::versions();
    let mut p = redis::pipe();
    p.atomic();
    for n in needs {
        match n {
            Need::Str(k) => {
                p.cmd("GET").arg(k).cmd("HGET").arg(&ver).arg(k);
            }
            Need::Set(k) => {
                p.cmd("SMEMBERS").arg(k).cmd("HGET").arg(&ver).arg(k);
            }
            Need::List(k) => {
                p.cmd("LRANGE")
                    .arg(k)
                    .arg(0)
                    .arg(-1)
                    .cmd("HGET")
                    .arg(&ver)
                    .arg(k);
            }
            Need::Card(k) => {
                p.cmd("SCARD").arg(k).cmd("HGET").arg(&ver).arg(k);
            }
            Need::Member(k, id) => {
                p.cmd("SISMEMBER")
                    .arg(k)
                    .arg(*id)
                    .cmd("HGET")
                    .arg(&ver)
                    .arg(k);
            }
            Need::User(id) => {
                let k = keys::user(*id);
                p.cmd("GET")
                    .arg(&k)
                    .cmd("ZSCORE")
                    .arg(keys::seen())
                    .arg(*id)
                    .cmd("HGET")
                    .arg(&ver)
                    .arg(&k);
            }
            Need::Due(d, by) => {
                p.cmd("ZRANGEBYSCORE")
                    .arg(keys::due(*d))
                    .arg("-inf")
                    .arg(*by);
            }
            Need::NextDue(d, after) => {
                p.cmd("ZRANGEBYSCORE")
                    .arg(keys::due(*d))
                    .arg(format!("({after}"))
                    .arg("+inf")
                    .arg("WITHSCORES")
                    .arg("LIMIT")
                    .arg(0)
                    .arg(1);
            }
            Need::Crowded => {
                p.cmd("ZRANGEBYSCORE")
                    .arg(keys::draw_sizes())
                    .arg(2)
                    .arg("+inf");
            }
            Need::AllUsers => {
                p.cmd("SMEMBERS").arg(keys::users());
            }
            Need::Statuses => {
                p.cmd("HGETALL").arg(keys::statuses());
            }
        }
    }
    let values: Vec<Value> = p.query_async(conn).await?;
    let mut it = values.into_iter();
    let mut next = || it.next().unwrap_or(Value::Nil);
    for n in needs {
        match n {
            Need::Str(k) => {
                let v = string(next());
                keep(loaded, k.clone(), version(next()));
                loaded.strs.insert(k.clone(), v);
            }
            Need::Set(k) => {
                let v = strings(next());
                keep(loaded, k.clone(), version(next()));
                loaded.sets.insert(k.clone(), v);
            }
            Need::List(k) => {
                let v = strings(next());
                keep(loaded, k.clone(), version(next()));
                loaded.lists.insert(k.clone(), v);
            }
            Need::Card(k) => {
                let v = int(next());
                keep(loaded, k.clone(), version(next()));
                loaded.cards.insert(k.clone(), v);
            }
            Need::Member(k, id) => {
                let held = int(next()) == 1;
                keep(loaded, k.clone(), version(next()));
                loaded.members.insert((k.clone(), *id), held);
            }
            Need::User(id) => {
                let record = string(next());
                let seen = string(next()).and_then(|s| s.parse::<f64>().ok());
                keep(loaded, keys::user(*id), version(next()));
                loaded.users.insert(*id, decode_user(record, seen));
            }
            Need::Due(d, by) => {
                let ids = ids(next());
                loaded.dues.insert((*d, *by), ids);
            }
            Need::NextDue(d, after) => {
                // [member, score]: the score is the moment.
                let first = strings(next()).get(1).and_then(|s| s.parse::<u64>().ok());
                loaded.next_dues.insert((*d, *after), first);
            }
            Need::Crowded => loaded.crowded = Some(strings(next())),
            Need::AllUsers => loaded.all_users = Some(ids(next())),
            Need::Statuses => {
                // [field, value, field, value, …] (a map in RESP3).
                let flat: Vec<String> = match next() {
                    Value::Map(m) => m
                        .into_iter()
                        .flat_map(|(k, v)| [k, v])
                        .filter_map(string)
                        .collect(),
                    other => strings(other),
                };
                let by = flat
                    .chunks(2)
                    .filter_map(|kv| Some((kv.first()?.clone(), kv.get(1)?.parse().ok()?)))
                    .collect();
                loaded.statuses = Some(by);
            }
        }
    }
    Ok(())
}

/// Notes the version a key was read at. A key read again in a later
/// round keeps its first version: the commit then fails if the key moved
/// between the two reads, as it must, since the attempt used both.
fn keep(loaded: &mut Loaded, key: String, version: String) {
    loaded.versions.entry(key).or_insert(version);
}

/// A user's record, its last activity moved forward to what pongs said.
fn decode_user(record: Option<String>, seen: Option<f64>) -> Option<User> {
    let mut u: User = serde_json::from_str(&record?).ok()?;
    if let Some(s) = seen {
        u.last_seen = u.last_seen.max(s as u64);
    }
    Some(u)
}

/// A reply as an optional string.
pub(super) fn string(v: Value) -> Option<String> {
    match v {
        Value::BulkString(b) => String::from_utf8(b).ok(),
        Value::SimpleString(s) => Some(s),
        Value::Int(i) => Some(i.to_string()),
        Value::Double(d) => Some(d.to_string()),
        _ => None,
    }
}

/// A reply as a list of strings.
pub(super) fn strings(v: Value) -> Vec<String> {
    match v {
        Value::Array(a) | Value::Set(a) => a.into_iter().filter_map(string).collect(),
        _ => Vec::new(),
    }
}

fn ids(v: Value) -> Vec<UserId> {
    strings(v).iter().filter_map(|s| s.parse().ok()).collect()
}

/// A reply as a number (0 if none).
pub(super) fn int(v: Value) -> u64 {
    match v {
        Value::Int(i) => u64::try_from(i).unwrap_or(0),
        other => string(other).and_then(|s| s.parse().ok()).unwrap_or(0),
    }
}

/// A version as read ("0": never written).
fn version(v: Value) -> String {
    string(v).unwrap_or_else(|| "0".to_owned())
}

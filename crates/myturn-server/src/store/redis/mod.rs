//! [`RedisStore`]: the state in Redis, shared by every node that points
//! at it (`--state redis://HOST:PORT/DB`).
//!
//! The rules are not here. A command runs as in memory: `Command::apply`
//! over a [`State`](crate::core::State), here a buffer of the records it
//! read (`tx::TxState`). **Read, run, commit**:
//!
//! 1. the records the command needs are read in one atomic pipeline, with
//!    each key's version (`fetch`);
//! 2. the command runs on them; a record it lacked is noted, the attempt
//!    thrown away, the record read, and the command run again;
//! 3. the writes and the deliveries go to Redis in one script that first
//!    checks every key read is still at its version (`commit`); if one
//!    moved, the command runs again on fresh records.
//!
//! Deliveries are published, inside the same script, on each node's
//! channel (`listen`): a node delivers what it hears to its own
//! sockets, in commit order. A command waits for its own node to have
//! heard its deliveries before it answers, so a client that registers and
//! opens its stream at once finds itself known.
//!
//! Pongs (`Heard`) are the one command not committed: they only move a
//! user's last activity forward, so they are gathered and written in bulk
//! every 250 ms. Nodes say they live every second (`presence`); one of
//! them leads the sweeps, and closes the streams of a node that stopped.

mod commit;
mod fetch;
mod keys;
mod listen;
mod presence;
mod tx;

use std::collections::{BTreeSet, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use redis::aio::ConnectionManager;
use tokio::sync::watch;

use super::{Deliver, Outcome, PbxNotify, Pending, Store, StoreError};
use crate::clock::At;
use crate::core::effects::Delivery;
use crate::core::{Command, Ctx, Effects, Millis, NodeId, Reply, Rules, UserId};
use tx::{Loaded, Need, TxState};

/// How a node reaches the shared state.
#[derive(Debug, Clone)]
pub struct RedisConfig {
    /// `redis://HOST:PORT/DB`.
    pub url: String,
    /// This node's name.
    pub node: NodeId,
    /// How often this node says it lives.
    pub heartbeat: Duration,
    /// Silence after which a node counts as gone.
    pub node_ttl: Duration,
}

impl RedisConfig {
    /// `url`, for `node`, with the default heartbeat (1 s) and node
    /// lifetime (5 s).
    pub fn new(url: &str, node: &str) -> Self {
        RedisConfig {
            url: url.to_owned(),
            node: node.to_owned(),
            heartbeat: Duration::from_secs(1),
            node_ttl: Duration::from_secs(5),
        }
    }
}

/// Why the store could not start.
#[derive(Debug, thiserror::Error)]
#[error("cannot reach the state store at {url}: {source}")]
pub struct ConnectError {
    /// Where.
    pub url: String,
    /// Why.
    #[source]
    pub source: redis::RedisError,
}

/// The shared state in Redis. See the module docs.
#[derive(Debug, Clone)]
pub struct RedisStore {
    inner: Arc<Inner>,
}

struct Inner {
    cfg: RedisConfig,
    client: redis::Client,
    conn: ConnectionManager,
    script: redis::Script,
    rules: Rules,
    rng: Mutex<(StdRng, StdRng)>,
    sink: Arc<dyn Deliver>,
    pbx: Arc<dyn PbxNotify>,
    /// The clock of the last batch this node delivered.
    applied: watch::Sender<u64>,
    heard: Mutex<HashMap<UserId, Millis>>,
    error: Mutex<Option<String>>,
    leader: AtomicBool,
    /// The live nodes, as the last heartbeat saw them (this one included).
    nodes: Mutex<Vec<String>>,
    /// Named leases this node asks for, and whether it holds each.
    leases: Mutex<HashMap<String, bool>>,
    /// The commands that draw from the pool take turns on this node: they
    /// all read and write it, so at once they would only make each other
    /// run again. Across nodes, the commit's check settles it.
    pairing: tokio::sync::Mutex<()>,
    /// Flipped when the node leaves: the background tasks end.
    stop: watch::Sender<bool>,
    /// Since when every heartbeat went through (none since the last that
    /// failed). Nodes are judged, and sweeps run, only once this is a
    /// node lifetime old: after an outage, every node must first have
    /// had the time to say it lives and to write its pongs.
    healthy_since: Mutex<Option<std::time::Instant>>,
    /// The URL as logs and errors show it: no password.
    shown: String,
}

impl std::fmt::Debug for Inner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisStore")
            .field("url", &self.shown)
            .field("node", &self.cfg.node)
            .finish_non_exhaustive()
    }
}

/// `url` without its password, as `redis://HOST:PORT/DB`.
fn shown(url: &str) -> String {
    use redis::IntoConnectionInfo;
    match url.into_connection_info() {
        Ok(info) => format!("redis://{}/{}", info.addr(), info.redis_settings().db()),
        Err(_) => "redis (an unreadable URL)".into(),
    }
}

/// Attempts before a command gives up (missing records and conflicts),
/// unless it is still within [`CONFLICT_BUDGET`].
const MAX_ATTEMPTS: usize = 64;
/// How long a command keeps trying against other nodes' commits before it
/// answers 503: a burst of registrations over several nodes (they all
/// write the name index) can take many rounds, each short.
const CONFLICT_BUDGET: Duration = Duration::from_secs(5);
/// How long a command waits for its own node to hear its deliveries.
const OWN_DELIVERY_WAIT: Duration = Duration::from_secs(2);

impl RedisStore {
    /// Connects to `cfg.url` as node `cfg.node`, running `rules`; this
    /// node's deliveries go to `sink`, PBX changes to `pbx`. Starts the
    /// listener, the heartbeat and the pong writer. `seed` makes the
    /// random choices reproducible (tests).
    pub async fn connect(
        cfg: RedisConfig,
        rules: Rules,
        sink: Arc<dyn Deliver>,
        pbx: Arc<dyn PbxNotify>,
        seed: Option<u64>,
    ) -> Result<Self, ConnectError> {
        let url = shown(&cfg.url);
        let err = |source| ConnectError {
            url: url.clone(),
            source,
        };
        let client = redis::Client::open(cfg.url.as_str()).map_err(err)?;
        // A loaded Redis (AOF with fsync on every write) may take a while;
        // past these, the request answers 503 and the manager reconnects.
        let conn_cfg = redis::aio::ConnectionManagerConfig::new()
            .set_response_timeout(Some(Duration::from_secs(5)))
            .set_connection_timeout(Some(Duration::from_secs(2)));
        let conn = ConnectionManager::new_with_config(client.clone(), conn_cfg)
            .await
            .map_err(err)?;
        let seeded = |salt: u64| match seed {
            Some(s) => StdRng::seed_from_u64(s ^ salt),
            None => StdRng::from_entropy(),
        };
        let inner = Arc::new(Inner {
            client,
            conn,
            script: redis::Script::new(commit::SCRIPT),
            rules,
            rng: Mutex::new((seeded(0x0edd), seeded(0x5eed_0f70_6be5))),
            sink,
            pbx,
            applied: watch::channel(0).0,
            heard: Mutex::new(HashMap::new()),
            error: Mutex::new(None),
            leader: AtomicBool::new(false),
            nodes: Mutex::new(vec![cfg.node.clone()]),
            leases: Mutex::new(HashMap::new()),
            pairing: tokio::sync::Mutex::new(()),
            stop: watch::channel(false).0,
            healthy_since: Mutex::new(None),
            shown: url.clone(),
            cfg,
        });
        let store = RedisStore { inner };
        store.beat().await.map_err(err)?;
        let subscribed = listen::spawn(store.inner.clone());
        // Deliveries published before the subscription holds would be lost.
        let _ = tokio::time::timeout(Duration::from_secs(5), subscribed).await;
        presence::spawn(store.clone());
        store.arrive().await;
        Ok(store)
    }

    /// A node that starts under a name that ran before (a crash, then a
    /// restart) finds its earlier life's streams still counted as open:
    /// they are closed now, so their users' grace starts (they reconnect,
    /// here or elsewhere) instead of being held open forever.
    async fn arrive(&self) {
        if let Err(error) = self.close_streams_of(&self.inner.cfg.node, 0).await {
            tracing::warn!(%error, "starting: an earlier run's streams not closed");
        }
    }

    /// The other live nodes sharing this store.
    pub async fn other_nodes(&self) -> Result<Vec<String>, StoreError> {
        let live = self.live_nodes().await.map_err(|e| self.unavailable(e))?;
        Ok(live
            .into_iter()
            .filter(|n| *n != self.inner.cfg.node)
            .collect())
    }

    /// Asks for the named lease (one node at a time holds it; it moves
    /// when its holder dies). Answers whether this node holds it now; the
    /// heartbeat keeps asking.
    pub fn lease(&self, name: &str) -> bool {
        let mut l = self.inner.leases.lock().unwrap_or_else(|e| e.into_inner());
        *l.entry(name.to_owned()).or_insert(false)
    }

    /// Asks for the named lease at once (not at the next heartbeat), and
    /// answers whether this node holds it.
    pub async fn take_lease(&self, name: &str) -> Result<bool, StoreError> {
        self.lease(name);
        self.beat().await.map_err(|e| self.unavailable(e))?;
        Ok(self.lease(name))
    }

    /// Which node holds the named lease, if one does.
    pub async fn holder(&self, name: &str) -> Result<Option<String>, StoreError> {
        let mut conn = self.inner.conn.clone();
        redis::cmd("GET")
            .arg(keys::lease(name))
            .query_async(&mut conn)
            .await
            .map_err(|e| self.unavailable(e))
    }

    /// This node's name.
    pub fn node(&self) -> &str {
        &self.inner.cfg.node
    }

    fn unavailable(&self, e: redis::RedisError) -> StoreError {
        let msg = format!("redis at {}: {e}", self.inner.shown);
        let mut last = self.inner.error.lock().unwrap_or_else(|e| e.into_inner());
        if last.is_none() {
            tracing::warn!(error = %msg, "state store unreachable");
        }
        *last = Some(msg.clone());
        StoreError::Unavailable(msg)
    }

    fn served(&self) {
        let mut e = self.inner.error.lock().unwrap_or_else(|e| e.into_inner());
        if e.is_some() {
            tracing::info!(url = %self.inner.shown, "state store reachable again");
            *e = None;
        }
    }

    /// Runs one command: read, run, commit (see the module docs).
    async fn run(&self, cmd: Command, now: At) -> Result<Outcome, StoreError> {
        if let Command::Heard(h) = &cmd {
            self.inner
                .heard
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .insert(h.uid, now.unix_ms);
            return Ok(Outcome {
                reply: Reply::Heard(()),
                reached: 0,
                pairings: Vec::new(),
                story: Vec::new(),
                wake_at: None,
            });
        }
        let mut turn = if draws(&cmd) {
            Some(self.inner.pairing.lock().await)
        } else {
            None
        };
        let mut conn = self.inner.conn.clone();
        let mut loaded = Loaded::default();
        let mut needs: BTreeSet<Need> = hints(&cmd);
        let mut read: BTreeSet<Need> = BTreeSet::new();
        // Every attempt of this command draws the same: an attempt that
        // lacked records is run again once they are read, and must then
        // look at the same members (see `core::matching`), or each round
        // would ask for new ones. The seed is independent of the state,
        // so the picks stay uniform.
        let seed: <StdRng as SeedableRng>::Seed = {
            let mut rng = self.inner.rng.lock().unwrap_or_else(|e| e.into_inner());
            rng.0.gen()
        };
        let started = tokio::time::Instant::now();
        let mut round = 0;
        while round < MAX_ATTEMPTS || started.elapsed() < CONFLICT_BUDGET {
            round += 1;
            if !needs.is_empty() {
                fetch::fetch(&mut conn, &mut loaded, &needs)
                    .await
                    .map_err(|e| self.unavailable(e))?;
                read.extend(std::mem::take(&mut needs));
            }
            let mut fx = Effects::default();
            let nodes = self.nodes();
            let attempt = {
                let mut tx = TxState::new(&loaded);
                let result = {
                    let mut draws = StdRng::from_seed(seed);
                    let mut rng = self.inner.rng.lock().unwrap_or_else(|e| e.into_inner());
                    let (_, token_rng) = &mut *rng;
                    cmd.clone().apply(&mut Ctx {
                        st: &mut tx,
                        rules: &self.inner.rules,
                        rng: &mut draws,
                        token_rng,
                        now,
                        fx: &mut fx,
                    })
                };
                let misses = tx.misses();
                if misses.is_empty() {
                    let quick = commit::seen_only(&tx, &loaded, &fx);
                    Some((result, quick, commit::build(&tx, &loaded, &fx, &nodes)))
                } else {
                    needs = misses;
                    None
                }
            };
            let Some((result, quick, ops)) = attempt else {
                continue;
            };
            if let Some(forward) = quick {
                // Only activity moved: no commit (see `commit::seen_only`).
                if !forward.is_empty() {
                    let mut p = redis::pipe();
                    for (key, at, member) in &forward {
                        p.cmd("ZADD")
                            .arg(key)
                            .arg("GT")
                            .arg(*at)
                            .arg(member)
                            .ignore();
                    }
                    p.query_async::<()>(&mut conn)
                        .await
                        .map_err(|e| self.unavailable(e))?;
                }
                self.served();
                return result.map_err(StoreError::Refused).map(|reply| Outcome {
                    reply,
                    reached: 0,
                    pairings: fx.pairings,
                    story: fx.story,
                    wake_at: fx.wake_at,
                });
            }
            let clock: u64 = self
                .inner
                .script
                .key(keys::versions())
                .key(keys::clock())
                .key(keys::draw_sizes())
                .arg(ops.argv())
                .invoke_async(&mut conn)
                .await
                .map_err(|e| self.unavailable(e))?;
            if clock == 0 {
                // A key moved since it was read (another node's commit):
                // everything again, after a short, growing, random pause.
                loaded = Loaded::default();
                needs = std::mem::take(&mut read);
                tokio::time::sleep(backoff(round)).await;
                continue;
            }
            self.served();
            // Committed: the next command may take its turn while this one
            // waits to hear its own deliveries.
            drop(turn.take());
            if ops.published_to.contains(&self.inner.cfg.node) {
                let mut rx = self.inner.applied.subscribe();
                let _ = tokio::time::timeout(OWN_DELIVERY_WAIT, rx.wait_for(|&c| c >= clock)).await;
            }
            let reached = fx
                .deliveries
                .iter()
                .map(|d| match d {
                    Delivery::Lobby { members, .. } => members.len(),
                    _ => 0,
                })
                .sum();
            return result.map_err(StoreError::Refused).map(|reply| Outcome {
                reply,
                reached,
                pairings: fx.pairings,
                story: fx.story,
                wake_at: fx.wake_at,
            });
        }
        Err(StoreError::Unavailable(
            "the state store is too busy: this request kept conflicting with others; retry".into(),
        ))
    }

    fn nodes(&self) -> Vec<String> {
        self.inner
            .nodes
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// Whether a command may draw from the pool, or writes keys every
/// registration shares (the name index, the extensions), and so takes its
/// turn on this node: then only other nodes' commits can conflict with
/// it, instead of every concurrent request here.
fn draws(cmd: &Command) -> bool {
    use crate::core::Command as C;
    matches!(
        cmd,
        C::Register(_)
            | C::SetStatus(_)
            | C::Admit(_)
            | C::Sweep(_)
            | C::Logout(_)
            | C::Kick(_)
            | C::Ban(_)
            | C::NodeGone(_)
    )
}

/// The pause after the `attempt`th conflict: up to 1 ms, doubling to 64.
fn backoff(attempt: usize) -> Duration {
    let cap = 1u64 << attempt.min(6);
    Duration::from_micros(rand::random::<u64>() % (cap * 1000) + 100)
}

/// What a command will surely read first: its user's record.
fn hints(cmd: &Command) -> BTreeSet<Need> {
    use crate::core::Command as C;
    let uid = match cmd {
        C::Authenticate(c) => Some(c.claims.uid),
        C::Reauth(c) => Some(c.uid),
        C::Me(c) => Some(c.uid),
        C::Logout(c) => Some(c.uid),
        C::SetStatus(c) => Some(c.uid),
        C::PeerOf(c) => Some(c.uid),
        C::Watch(c) => Some(c.uid),
        C::StreamOpened(c) => Some(c.uid),
        C::StreamClosed(c) => Some(c.uid),
        C::Typing(c) => Some(c.uid),
        C::Report(c) => Some(c.uid),
        _ => None,
    };
    uid.map(Need::User).into_iter().collect()
}

impl Store for RedisStore {
    fn execute(&self, command: Command, now: At) -> Pending<'_> {
        Box::pin(self.run(command, now))
    }

    fn kind(&self) -> &'static str {
        "redis"
    }

    fn error(&self) -> Option<String> {
        self.inner
            .error
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn leads_sweep(&self) -> bool {
        self.inner.leader.load(Ordering::Acquire) && self.settled()
    }

    fn holds(&self, lease: &str) -> bool {
        self.lease(lease)
    }

    fn shared(&self) -> bool {
        true
    }

    fn leave(&self) -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send + '_>> {
        Box::pin(self.depart())
    }
}

#[cfg(test)]
mod tests {
    use super::shown;

    #[test]
    fn the_shown_url_keeps_no_password() {
        assert_eq!(
            shown("redis://:s3cret@10.0.0.5:6379/2"),
            "redis://10.0.0.5:6379/2"
        );
        assert_eq!(
            shown("redis://user:s3cret@db.example:6380"),
            "redis://db.example:6380/0"
        );
        assert!(!shown("redis://:s3cret@[::1").contains("s3cret"));
    }
}

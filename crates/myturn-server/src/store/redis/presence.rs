//! Who is there: every node writes its heartbeat each second; one node
//! holds the sweeper's lease (and runs the sweeps) and notices nodes that
//! stopped, closing their streams; named leases (the Asterisk files'
//! writer) move the same way. The pongs gathered since the last beat are
//! written here too, in one command.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::Value;

use super::fetch::{int, strings};
use super::{keys, RedisStore, StoreError};
use crate::clock::{Clock, SystemClock};
use crate::core::cases::streams::NodeGone;

/// How often the gathered pongs are written.
const HEARD_EVERY: Duration = Duration::from_millis(250);

pub(super) fn spawn(store: RedisStore) {
    let beat = store.clone();
    let mut stop = store.inner.stop.subscribe();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(beat.inner.cfg.heartbeat) => {}
                _ = stop.wait_for(|&s| s) => return,
            }
            if let Err(e) = beat.beat().await {
                *beat
                    .inner
                    .healthy_since
                    .lock()
                    .unwrap_or_else(|e| e.into_inner()) = None;
                let _ = beat.unavailable(e);
                continue;
            }
            if beat.inner.leader.load(Ordering::Acquire) && beat.settled() {
                beat.bury_the_dead().await;
            }
        }
    });
    let mut stop = store.inner.stop.subscribe();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = tokio::time::sleep(HEARD_EVERY) => {}
                _ = stop.wait_for(|&s| s) => return,
            }
            if let Err(e) = store.write_heard().await {
                let _ = store.unavailable(e);
            }
        }
    });
}

/// Deletes a lease only if this node holds it.
const GIVE_UP: &str = "if redis.call('GET', KEYS[1]) == ARGV[1] then \
    return redis.call('DEL', KEYS[1]) end return 0";

impl RedisStore {
    /// Leaves at shutdown: the pongs written, this node's streams closed
    /// (their users have the grace to reconnect elsewhere), its heartbeat
    /// and leases given up so they move at once; then the background
    /// tasks end. Best effort: with Redis away, the others find out when
    /// the heartbeat runs out.
    pub(super) async fn depart(&self) {
        let me = self.inner.cfg.node.clone();
        if let Err(e) = self.write_heard().await {
            tracing::warn!(error = %e, "leaving: pongs not written");
        }
        if let Err(error) = self.close_streams_of(&me, 0).await {
            tracing::warn!(%error, "leaving: this node's streams not closed; the others will");
        }
        let _ = self.inner.stop.send(true);
        let leases: Vec<String> = {
            let l = self.inner.leases.lock().unwrap_or_else(|e| e.into_inner());
            l.keys().map(|k| keys::lease(k)).collect()
        };
        let mut conn = self.inner.conn.clone();
        let give_up = redis::Script::new(GIVE_UP);
        for key in std::iter::once(keys::sweeper()).chain(leases) {
            let _ = give_up
                .key(key)
                .arg(&me)
                .invoke_async::<i64>(&mut conn)
                .await;
        }
        let _ = redis::pipe()
            .cmd("DEL")
            .arg(keys::node(&me))
            .ignore()
            .cmd("SREM")
            .arg(keys::nodes())
            .arg(&me)
            .ignore()
            .query_async::<()>(&mut conn)
            .await;
        tracing::info!(node = %me, "left the shared state");
    }

    /// Says this node lives, asks for the sweeper's lease and the named
    /// ones, and reads which nodes live.
    pub(super) async fn beat(&self) -> redis::RedisResult<()> {
        let me = &self.inner.cfg.node;
        let ttl = u64::try_from(self.inner.cfg.node_ttl.as_millis()).unwrap_or(5000);
        let now = SystemClock.now().unix_ms;
        let leases: Vec<String> = {
            let l = self.inner.leases.lock().unwrap_or_else(|e| e.into_inner());
            l.keys().cloned().collect()
        };
        let mut conn = self.inner.conn.clone();
        let mut p = redis::pipe();
        p.cmd("SET")
            .arg(keys::node(me))
            .arg(now)
            .arg("PX")
            .arg(ttl)
            .ignore()
            .cmd("SADD")
            .arg(keys::nodes())
            .arg(me)
            .ignore();
        for key in std::iter::once(keys::sweeper()).chain(leases.iter().map(|l| keys::lease(l))) {
            // Take it if free, keep it if ours.
            p.cmd("SET")
                .arg(&key)
                .arg(me)
                .arg("NX")
                .arg("PX")
                .arg(ttl)
                .ignore()
                .cmd("GET")
                .arg(&key);
        }
        let held: Vec<Value> = p.query_async(&mut conn).await?;
        let holders: Vec<Option<String>> = held.into_iter().map(super::fetch::string).collect();
        let mine = |h: &Option<String>| h.as_deref() == Some(me.as_str());
        let mut renew = redis::pipe();
        let mut renewing = false;
        for (key, h) in std::iter::once(keys::sweeper())
            .chain(leases.iter().map(|l| keys::lease(l)))
            .zip(&holders)
        {
            if mine(h) {
                renew.cmd("PEXPIRE").arg(key).arg(ttl).ignore();
                renewing = true;
            }
        }
        if renewing {
            renew.query_async::<()>(&mut conn).await?;
        }
        let lead = holders.first().is_some_and(mine);
        if self.inner.leader.swap(lead, Ordering::AcqRel) != lead {
            tracing::info!(node = %me, lead, "sweeper lease");
        }
        {
            let mut l = self.inner.leases.lock().unwrap_or_else(|e| e.into_inner());
            for (name, h) in leases.iter().zip(holders.iter().skip(1)) {
                l.insert(name.clone(), mine(h));
            }
        }
        let live = self.live_nodes().await?;
        *self.inner.nodes.lock().unwrap_or_else(|e| e.into_inner()) = live;
        self.inner
            .healthy_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get_or_insert_with(std::time::Instant::now);
        self.served();
        Ok(())
    }

    /// Whether the heartbeats have gone through for a node lifetime (see
    /// `Inner::healthy_since`).
    pub(super) fn settled(&self) -> bool {
        self.inner
            .healthy_since
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_some_and(|t| t.elapsed() >= self.inner.cfg.node_ttl)
    }

    /// The nodes whose heartbeat is current (this one included).
    pub(super) async fn live_nodes(&self) -> redis::RedisResult<Vec<String>> {
        let mut conn = self.inner.conn.clone();
        let all: Vec<String> = strings(
            redis::cmd("SMEMBERS")
                .arg(keys::nodes())
                .query_async(&mut conn)
                .await?,
        );
        let mut p = redis::pipe();
        for n in &all {
            p.cmd("EXISTS").arg(keys::node(n));
        }
        let alive: Vec<Value> = p.query_async(&mut conn).await?;
        let me = &self.inner.cfg.node;
        let mut live: Vec<String> = all
            .into_iter()
            .zip(alive)
            .filter(|(n, a)| n == me || int(a.clone()) > 0)
            .map(|(n, _)| n)
            .collect();
        if !live.contains(me) {
            live.push(me.clone());
        }
        live.sort();
        Ok(live)
    }

    /// The leader closes the streams of nodes whose heartbeat stopped, and
    /// forgets those nodes.
    async fn bury_the_dead(&self) {
        let mut conn = self.inner.conn.clone();
        let Ok(all) = redis::cmd("SMEMBERS")
            .arg(keys::nodes())
            .query_async::<Value>(&mut conn)
            .await
        else {
            return;
        };
        let live = self.nodes();
        let ttl = u64::try_from(self.inner.cfg.node_ttl.as_millis()).unwrap_or(5000);
        for node in strings(all) {
            if live.contains(&node) {
                continue;
            }
            match self.close_streams_of(&node, ttl).await {
                Ok(_) => {
                    tracing::warn!(%node, "node stopped: its streams are closed");
                    let _ = redis::cmd("SREM")
                        .arg(keys::nodes())
                        .arg(&node)
                        .query_async::<()>(&mut conn)
                        .await;
                }
                Err(error) => {
                    tracing::warn!(%node, %error, "cannot close a stopped node's streams yet")
                }
            }
        }
    }

    /// Closes the streams `node` held (`NodeGone`), as lost `ago_ms`
    /// before now: their users' grace starts, their partners hear when it
    /// runs out. For a node that stopped, one that leaves, and this node's
    /// earlier life when it starts again.
    pub(super) async fn close_streams_of(&self, node: &str, ago_ms: u64) -> Result<(), StoreError> {
        let now = SystemClock.now();
        let gone = NodeGone {
            node: node.to_owned(),
            at: now.unix_ms.saturating_sub(ago_ms),
        };
        self.run(gone.into(), now).await.map(|_| ())
    }

    /// Writes the pongs heard since the last time: each user's last
    /// activity, only ever moved forward.
    async fn write_heard(&self) -> redis::RedisResult<()> {
        let heard: Vec<(crate::core::UserId, u64)> = {
            let mut h = self.inner.heard.lock().unwrap_or_else(|e| e.into_inner());
            h.drain().collect()
        };
        if heard.is_empty() {
            return Ok(());
        }
        let mut cmd = redis::cmd("ZADD");
        cmd.arg(keys::seen()).arg("GT");
        for (uid, at) in &heard {
            cmd.arg(*at).arg(*uid);
        }
        let mut conn = self.inner.conn.clone();
        let written = cmd.query_async::<()>(&mut conn).await;
        if written.is_err() {
            // Kept for the next time: a pong heard is not forgotten.
            let mut h = self.inner.heard.lock().unwrap_or_else(|e| e.into_inner());
            for (uid, at) in heard {
                let e = h.entry(uid).or_insert(at);
                *e = (*e).max(at);
            }
        }
        written
    }
}

//! Who is there: every node writes its heartbeat each second; one node
//! holds the sweeper's lease (and runs the sweeps) and notices nodes that
//! stopped, closing their streams; named leases (the Asterisk files'
//! writer) move the same way. The pongs gathered since the last beat are
//! written here too, in one command.

use std::sync::atomic::Ordering;
use std::time::Duration;

use redis::Value;

use super::fetch::{int, strings};
use super::{keys, RedisStore};
use crate::clock::{Clock, SystemClock};
use crate::core::cases::streams::NodeGone;

/// How often the gathered pongs are written.
const HEARD_EVERY: Duration = Duration::from_millis(250);

pub(super) fn spawn(store: RedisStore) {
    let beat = store.clone();
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(beat.inner.cfg.heartbeat).await;
            if let Err(e) = beat.beat().await {
                let _ = beat.unavailable(e);
                continue;
            }
            if beat.inner.leader.load(Ordering::Acquire) {
                beat.bury_the_dead().await;
            }
        }
    });
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(HEARD_EVERY).await;
            if let Err(e) = store.write_heard().await {
                let _ = store.unavailable(e);
            }
        }
    });
}

impl RedisStore {
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
        for (key, h) in std::iter::once(keys::sweeper())
            .chain(leases.iter().map(|l| keys::lease(l)))
            .zip(&holders)
        {
            if mine(h) {
                renew.cmd("PEXPIRE").arg(key).arg(ttl).ignore();
            }
        }
        renew.query_async::<()>(&mut conn).await?;
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
        self.served();
        Ok(())
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
            let now = SystemClock.now();
            let gone = NodeGone {
                node: node.clone(),
                at: now.unix_ms.saturating_sub(ttl),
            };
            match self.run(gone.into(), now).await {
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
        cmd.query_async::<()>(&mut conn).await
    }
}

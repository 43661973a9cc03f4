//! `--state redis`: joining the nodes that share a Redis, and the PBX's
//! part in it. The built-in PBX keeps registrations in its process, so it
//! runs on one node only; the Asterisk files have one writer, chosen by a
//! lease; Kamailio's accounts are written by every node (each pass
//! compares with what Redis holds, so writers agree).

use std::sync::Arc;
use std::time::Duration;

use super::StartError;
use crate::config::{Config, PbxKind};
use crate::core::Rules;
use crate::pbx::sync::{PbxSync, Writer};
use crate::store::{Deliver, RedisConfig, RedisStore, Store, StoreError};

/// The lease of the node that writes the Asterisk files and reloads.
pub const ASTERISK_FILES: &str = "asterisk-files";
/// The lease of the one node running the built-in PBX on a shared state.
pub const BUILTIN_PBX: &str = "builtin-pbx";

impl From<StoreError> for StartError {
    fn from(e: StoreError) -> Self {
        StartError::StoreUnavailable(e.to_string())
    }
}

/// Connects to the shared state as node `node`, and settles the PBX's
/// part: refused if it would make a half-working cluster.
pub(super) async fn join(
    url: &str,
    node: &str,
    cfg: &Config,
    rules: Rules,
    sink: Arc<dyn Deliver>,
    sync: Arc<PbxSync>,
    seed: Option<u64>,
) -> Result<RedisStore, StartError> {
    let redis = RedisConfig::new(url, node);
    let wait = redis.node_ttl + redis.heartbeat;
    let store = RedisStore::connect(redis, rules, sink, sync.clone(), seed).await?;
    let settled = settle(&store, cfg.pbx, &sync, wait).await;
    if settled.is_err() {
        store.leave().await;
    }
    settled.map(|()| store)
}

async fn settle(
    store: &RedisStore,
    pbx: PbxKind,
    sync: &PbxSync,
    wait: Duration,
) -> Result<(), StartError> {
    if pbx == PbxKind::Builtin {
        return alone(store, wait).await;
    }
    if let Some(holder) = store.holder(BUILTIN_PBX).await? {
        if holder != store.node() {
            return Err(StartError::BuiltinShared { others: holder });
        }
    }
    if matches!(pbx, PbxKind::Asterisk | PbxKind::AsteriskPjsip) {
        let writes = store.take_lease(ASTERISK_FILES).await?;
        tracing::info!(writes, "the Asterisk files have one writer among the nodes");
        let s = store.clone();
        sync.share(Writer(Box::new(move || s.lease(ASTERISK_FILES))));
    } else {
        sync.share(Writer(Box::new(|| true)));
    }
    Ok(())
}

/// The built-in PBX's node must be the only one: a node that just died
/// still beats for `wait`, so that long is given for it to go.
async fn alone(store: &RedisStore, wait: Duration) -> Result<(), StartError> {
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        let others = store.other_nodes().await?;
        let held = store.take_lease(BUILTIN_PBX).await?;
        if others.is_empty() && held {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let others = match (others.is_empty(), store.holder(BUILTIN_PBX).await?) {
                (true, Some(holder)) => holder,
                _ => others.join(", "),
            };
            return Err(StartError::BuiltinShared { others });
        }
        tracing::info!(
            others = others.join(", "),
            "the built-in PBX waits for the other nodes on this state to go"
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

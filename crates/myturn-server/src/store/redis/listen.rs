//! This node's channel: the batches of deliveries commits publish for it,
//! handed to the node's sockets in commit order. The subscription comes
//! back by itself when Redis does (batches published meanwhile are lost:
//! clients then read the state again; the state itself is not).

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt as _;
use tokio::sync::oneshot;

use super::commit::Batch;
use super::{keys, Inner};

/// Starts listening; the answer resolves once the first subscription holds.
pub(super) fn spawn(inner: Arc<Inner>) -> oneshot::Receiver<()> {
    let (ready, subscribed) = oneshot::channel();
    tokio::spawn(run(inner, ready));
    subscribed
}

async fn run(inner: Arc<Inner>, ready: oneshot::Sender<()>) {
    let channel = keys::channel(&inner.cfg.node);
    let mut ready = Some(ready);
    let mut stop = inner.stop.subscribe();
    let listening = async {
        loop {
            listen_once(&inner, &channel, &mut ready).await;
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    };
    tokio::select! {
        () = listening => {}
        _ = stop.wait_for(|&s| s) => {}
    }
}

/// One subscription, until it is lost.
async fn listen_once(inner: &Inner, channel: &str, ready: &mut Option<oneshot::Sender<()>>) {
    {
        match inner.client.get_async_pubsub().await {
            Ok(mut ps) => match ps.subscribe(channel).await {
                Ok(()) => {
                    if let Some(r) = ready.take() {
                        let _ = r.send(());
                    }
                    let mut messages = ps.on_message();
                    while let Some(msg) = messages.next().await {
                        let payload: String = match msg.get_payload() {
                            Ok(p) => p,
                            Err(_) => continue,
                        };
                        deliver(inner, &payload);
                    }
                    tracing::warn!(%channel, "state store subscription lost; subscribing again");
                }
                Err(error) => {
                    tracing::warn!(%error, %channel, "cannot subscribe to the state store")
                }
            },
            Err(error) => tracing::debug!(%error, "state store unreachable for the subscription"),
        }
    }
}

/// One batch, `CLOCK|JSON`: delivered, the PBX poked, the clock noted.
fn deliver(inner: &Inner, payload: &str) {
    let Some((clock, json)) = payload.split_once('|') else {
        return;
    };
    let Ok(clock) = clock.parse::<u64>() else {
        return;
    };
    match serde_json::from_str::<Batch>(json) {
        Ok(b) => {
            if !b.d.is_empty() {
                inner.sink.deliver(b.d);
            }
            if b.pbx {
                inner.pbx.changed();
            }
        }
        Err(error) => tracing::warn!(%error, "an unreadable batch on the state store's channel"),
    }
    inner.applied.send_modify(|c| *c = (*c).max(clock));
}

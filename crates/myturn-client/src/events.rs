//! The server's event stream (`GET /v1/events`, WebSocket): pushed
//! `paired`, `peer_ready_to_talk`, `peer_left` and the lobby chat; the
//! client says `lobby_say`. An open stream also counts as a heartbeat.

use futures_util::{SinkExt, StreamExt};
use myturn_wire::{ClientEvent, ServerEvent};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

use crate::api::Api;
use crate::{ClientError, Transport};

/// The next server push from `events`, or never when there is no stream
/// (`None` once it closed). A free function over the field, so a `select!`
/// can wait on it beside other fields of the same client.
pub(crate) async fn next_push(events: &mut Option<Events>) -> Option<ServerEvent> {
    match events.as_mut() {
        Some(e) => e.incoming.recv().await,
        None => std::future::pending().await,
    }
}

/// A connected event stream.
#[derive(Debug)]
pub struct Events {
    out: mpsc::UnboundedSender<ClientEvent>,
    /// Events from the server, in order; closed when the stream ends.
    pub incoming: mpsc::UnboundedReceiver<ServerEvent>,
}

impl Events {
    /// Opens the stream with the session's current token.
    pub async fn connect(api: &Api) -> Result<Events, ClientError> {
        let url = api.ws_url("/v1/events");
        let mut req = url
            .as_str()
            .into_client_request()
            .map_err(|e| ClientError::Undecodable(e.into()))?;
        let auth = format!("Bearer {}", api.access_token())
            .parse()
            .map_err(|_| ClientError::Protocol("token not a header value".into()))?;
        req.headers_mut().insert("authorization", auth);
        let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(
            req,
            None,
            false,
            Some(api.trust().ws_connector()),
        )
        .await
        .map_err(|e| match e {
            // The server answered, and refused (a token it no longer
            // knows, say after a restart).
            tokio_tungstenite::tungstenite::Error::Http(resp) => ClientError::Server {
                what: "event stream",
                status: resp.status().as_u16(),
                code: "refused".into(),
                message: format!("{url} refused the upgrade"),
            },
            e => ClientError::connecting(url.clone(), e),
        })?;
        let (mut sink, mut stream) = ws.split();
        let (out_tx, mut out_rx) = mpsc::unbounded_channel::<ClientEvent>();
        let (in_tx, in_rx) = mpsc::unbounded_channel();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    m = stream.next() => match m {
                        Some(Ok(Message::Text(t))) => {
                            if let Ok(ev) = serde_json::from_str::<ServerEvent>(&t) {
                                if in_tx.send(ev).is_err() {
                                    return;
                                }
                            }
                        }
                        Some(Ok(Message::Ping(p))) => {
                            let _ = sink.send(Message::Pong(p)).await;
                        }
                        Some(Ok(_)) => {}
                        _ => return,
                    },
                    ev = out_rx.recv() => match ev {
                        Some(ev) => {
                            let Ok(text) = serde_json::to_string(&ev) else { continue };
                            if sink.send(Message::text(text)).await.is_err() {
                                return;
                            }
                        }
                        None => {
                            let _ = sink.close().await;
                            return;
                        }
                    },
                }
            }
        });
        Ok(Events {
            out: out_tx,
            incoming: in_rx,
        })
    }

    /// Says something in the lobby (only while waiting).
    pub fn lobby_say(&self, text: &str) -> Result<(), ClientError> {
        self.sender().lobby_say(text)
    }

    /// A handle that can speak in the lobby while someone else reads.
    pub fn sender(&self) -> LobbySender {
        LobbySender(self.out.clone())
    }
}

/// Says things in the lobby through an open event stream.
#[derive(Debug, Clone)]
pub struct LobbySender(mpsc::UnboundedSender<ClientEvent>);

impl LobbySender {
    /// Says something in the lobby (only while waiting).
    pub fn lobby_say(&self, text: &str) -> Result<(), ClientError> {
        self.0
            .send(ClientEvent::LobbySay {
                text: text.to_owned(),
            })
            .map_err(|_| ClientError::unreachable(Transport::Closed))
    }
}

//! The server's WebSocket event streams from the outside, with
//! tokio-tungstenite: opening one with a bearer token (or being refused),
//! and reading and sending its JSON events.

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{json, Value};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::handshake::client::Request;
use tokio_tungstenite::tungstenite::Message;

use super::Api;

pub type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

impl Api {
    /// The request that opens the stream at `path`, with `headers`.
    pub fn ws_request(&self, path: &str, headers: &[(&str, String)]) -> Request {
        let base = self.base.replacen("http", "ws", 1);
        let mut req = format!("{base}{path}").into_client_request().unwrap();
        for (k, v) in headers {
            let name =
                tokio_tungstenite::tungstenite::http::HeaderName::from_bytes(k.as_bytes()).unwrap();
            req.headers_mut().insert(name, v.parse().unwrap());
        }
        req
    }

    /// The user's event stream (`/v1/events`), past its `hello`.
    pub async fn ws(&self, token: &str) -> Ws {
        self.ws_at("/v1/events", token).await
    }

    /// The stream at `path`, with `token` in the `Authorization` header,
    /// past its `hello`.
    pub async fn ws_at(&self, path: &str, token: &str) -> Ws {
        let req = self.ws_request(path, &[("authorization", format!("Bearer {token}"))]);
        let (mut ws, _) = tokio_tungstenite::connect_async(req).await.unwrap();
        let hello = next(&mut ws).await;
        assert_eq!(hello["type"], "hello");
        ws
    }

    /// Opens `url_path` with `headers`, which the server must refuse: the
    /// refusal's status and JSON body.
    pub async fn ws_refused(&self, url_path: &str, headers: &[(&str, String)]) -> (u16, Value) {
        match tokio_tungstenite::connect_async(self.ws_request(url_path, headers)).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                let body = resp
                    .body()
                    .as_ref()
                    .map(|b| serde_json::from_slice(b).unwrap_or(Value::Null))
                    .unwrap_or(Value::Null);
                (resp.status().as_u16(), body)
            }
            Err(e) => panic!("unexpected error {e}"),
            Ok(_) => panic!("connection was accepted"),
        }
    }
}

/// The next JSON event (pings are skipped).
pub async fn next(ws: &mut Ws) -> Value {
    loop {
        let m = tokio::time::timeout(Duration::from_secs(5), ws.next())
            .await
            .expect("no event within 5 s")
            .expect("stream ended")
            .expect("ws error");
        match m {
            Message::Text(t) => return serde_json::from_str(t.as_str()).unwrap(),
            Message::Close(f) => {
                return json!({"type": "__close", "code": f.map(|f| u16::from(f.code))})
            }
            _ => continue,
        }
    }
}

/// Reads until an event of `kind`, skipping others; fails after 30 s
/// (pings alone would keep [`next`] waiting for ever).
pub async fn until(ws: &mut Ws, kind: &str) -> Value {
    let waited = tokio::time::timeout(Duration::from_secs(30), async {
        loop {
            let e = next(ws).await;
            if e["type"] == kind {
                return e;
            }
            assert_ne!(e["type"], "__close", "closed while waiting for {kind}: {e}");
        }
    })
    .await;
    waited.unwrap_or_else(|_| panic!("no `{kind}` event within 30 s"))
}

/// Asserts nothing of `kind` arrives within `d`.
pub async fn none_of(ws: &mut Ws, kind: &str, d: Duration) {
    let deadline = tokio::time::Instant::now() + d;
    while let Ok(Some(Ok(m))) = tokio::time::timeout_at(deadline, ws.next()).await {
        if let Message::Text(t) = m {
            let e: Value = serde_json::from_str(t.as_str()).unwrap();
            assert_ne!(e["type"], kind, "unexpected {e}");
        }
    }
}

/// Sends `v` as a text message.
pub async fn say(ws: &mut Ws, v: Value) {
    ws.send(Message::Text(v.to_string().into())).await.unwrap();
}

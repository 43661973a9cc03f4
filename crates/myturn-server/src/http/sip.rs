//! `GET /sip`: SIP over WebSocket (RFC 7118) to the built-in PBX, on the
//! HTTP(S) listener, for the browser client. A connection must ask for the
//! `sip` subprotocol; each WebSocket message then carries one SIP
//! message, which the PBX handles exactly as it handles a datagram or a
//! message on a TLS connection (flood guard first, digest auth, the same
//! routing): the client is known by its address and port, and whatever
//! the PBX sends there (answers, and INVITEs to a user registered over
//! this connection) goes down the socket. Kamailio and Asterisk take SIP
//! over WebSocket themselves (`docs/scaling.md`, `docs/asterisk.md`).

use std::net::SocketAddr;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{ConnectInfo, FromRequestParts, State};
use axum::http::request::Parts;
use axum::response::Response;
use myturn_pbx::driver::PbxHandle;

use super::error::ApiError;
use super::extract::ClientIp;
use crate::node::AppState;

/// RFC 7118's subprotocol.
const SUBPROTOCOL: &str = "sip";
/// The largest SIP message taken over WebSocket (as over UDP).
const MAX_MESSAGE: usize = 64 * 1024;

/// `GET /sip`
#[utoipa::path(
    get, path = "/sip", tag = "sip",
    responses(
        (status = 101, description = "WebSocket, subprotocol `sip` (RFC 7118): one SIP message per WebSocket message, both ways"),
        (status = 400, description = "the handshake does not ask for the `sip` subprotocol (`sip_subprotocol_required`)", body = myturn_wire::ErrorBody),
        (status = 404, description = "this server does not run the built-in PBX (`not_found`): with Kamailio or Asterisk, their own WebSocket listeners take SIP", body = myturn_wire::ErrorBody),
        (status = 426, description = "not a WebSocket upgrade (`websocket_required`)", body = myturn_wire::ErrorBody, headers(("Upgrade" = String, description = "`websocket`"), ("Sec-WebSocket-Version" = String, description = "`13`"))),
    )
)]
pub(crate) async fn sip_websocket(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    PeerPort(port): PeerPort,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    let Some(pbx) = state.pbx.sip_edge() else {
        return Err(ApiError::NotFound(
            "SIP over WebSocket is served with the built-in PBX only (--pbx builtin)".into(),
        ));
    };
    let ws = ws.map_err(|_| {
        ApiError::UpgradeRequired(
            "this is a SIP over WebSocket endpoint: open it with `Upgrade: websocket` and the `sip` subprotocol"
                .into(),
        )
    })?;
    let ws = ws
        .protocols([SUBPROTOCOL])
        .max_message_size(MAX_MESSAGE)
        .max_frame_size(MAX_MESSAGE);
    if ws.selected_protocol().and_then(|p| p.to_str().ok()) != Some(SUBPROTOCOL) {
        return Err(ApiError::bad_request(
            "sip_subprotocol_required",
            "SIP over WebSocket needs the `sip` subprotocol (Sec-WebSocket-Protocol: sip, RFC 7118)",
        ));
    }
    // The client as the PBX knows it: its address (the one a trusted proxy
    // names) and this connection's port, so two connections stay apart.
    let peer = SocketAddr::new(ip, port);
    Ok(ws.on_upgrade(move |socket| relay(socket, pbx, peer)))
}

/// The TCP peer's port (0 when not served over TCP, as in `oneshot`
/// tests).
pub(crate) struct PeerPort(u16);

impl<S: Send + Sync> FromRequestParts<S> for PeerPort {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        Ok(PeerPort(
            parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map_or(0, |c| c.0.port()),
        ))
    }
}

/// Carries SIP messages between the socket and the PBX until either ends.
async fn relay(mut socket: WebSocket, pbx: PbxHandle, peer: SocketAddr) {
    let Some(mut link) = pbx.open_stream(peer) else {
        tracing::warn!(%peer, "SIP over WebSocket: the built-in PBX is not running");
        return;
    };
    tracing::debug!(%peer, "SIP over WebSocket: connected");
    loop {
        tokio::select! {
            incoming = socket.recv() => match incoming {
                Some(Ok(Message::Text(t))) => {
                    if !link.send(t.as_bytes().to_vec()).await { break }
                }
                Some(Ok(Message::Binary(b))) => {
                    if !link.send(b.to_vec()).await { break }
                }
                Some(Ok(Message::Ping(_) | Message::Pong(_))) => {}
                Some(Ok(Message::Close(_)) | Err(_)) | None => break,
            },
            outgoing = link.recv() => match outgoing {
                Some(bytes) => {
                    let msg = match String::from_utf8(bytes) {
                        Ok(s) => Message::Text(s.into()),
                        Err(e) => Message::Binary(e.into_bytes().into()),
                    };
                    if socket.send(msg).await.is_err() { break }
                }
                None => break,
            },
        }
    }
    tracing::debug!(%peer, "SIP over WebSocket: closed");
}

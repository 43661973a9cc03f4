//! `GET /v1/events` and `GET /v1/admin/events`: the realtime WebSocket
//! streams.
//!
//! Authentication is the access token (admin token for the admin stream)
//! in the `Authorization: Bearer` header, or, for clients that cannot set
//! headers (browsers), in the subprotocol list:
//! `Sec-WebSocket-Protocol: myturn.v1, bearer.<token>`. A token in the URL
//! is refused: URLs end up in proxy logs.
//!
//! Each socket is one task ([`socket`]). It owns the socket and a
//! bounded queue that the node's fan-out fills from inside each use case;
//! a client that lets its queue fill up is disconnected rather than
//! slowing anyone else down. Client events are parsed there and become
//! one use case each.

mod socket;

use std::sync::atomic::Ordering::Relaxed;

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::HeaderMap;
use axum::response::Response;
use myturn_wire::{ServerEvent, WS_PROTOCOL};

use super::credentials::{check_admin, presented_token, Carrier};
use super::error::ApiError;
use crate::core::cases::streams::{StreamClosed, StreamOpened};
use crate::core::MODERATOR;
use crate::node::AppState;
use socket::{run, Who};

/// Largest client message accepted on a socket.
pub(crate) const MAX_CLIENT_MESSAGE: usize = 4096;

/// Socket buffer sizes: small, so an idle connection costs little memory.
const SOCKET_BUFFER: usize = 4096;

/// Query parameters that look like credentials.
const TOKEN_PARAMS: &[&str] = &["token", "access_token", "jwt", "auth", "bearer"];

fn refuse_token_in_url(query: Option<&str>) -> Result<(), ApiError> {
    let Some(q) = query else { return Ok(()) };
    for pair in q.split('&') {
        let key = pair.split('=').next().unwrap_or("");
        if TOKEN_PARAMS.iter().any(|p| p.eq_ignore_ascii_case(key)) {
            return Err(ApiError::bad_request(
                "token_in_url",
                "tokens are not accepted in the URL (they end up in logs); send `Authorization: Bearer <token>` or the `bearer.<token>` WebSocket subprotocol",
            ));
        }
    }
    Ok(())
}

/// Why a request to an event stream is not a WebSocket handshake: a
/// request that is no upgrade at all (a plain GET), or asks for another
/// WebSocket version, is told to upgrade (426, RFC 9110 15.5.22 and RFC
/// 6455 4.2.2); an upgrade without its `Sec-WebSocket-Key` is a malformed
/// handshake (400).
fn not_an_upgrade(r: WebSocketUpgradeRejection) -> ApiError {
    match r {
        WebSocketUpgradeRejection::WebSocketKeyHeaderMissing(_) => ApiError::bad_request(
            "invalid_handshake",
            "a WebSocket upgrade needs a `Sec-WebSocket-Key` header",
        ),
        WebSocketUpgradeRejection::InvalidWebSocketVersionHeader(_) => {
            ApiError::UpgradeRequired("this server speaks WebSocket version 13 only".into())
        }
        _ => ApiError::UpgradeRequired(
            "this is a WebSocket endpoint: open it with `Connection: Upgrade` and `Upgrade: websocket`"
                .into(),
        ),
    }
}

/// An event stream being opened: tokens in the URL are refused at once;
/// the credentials are checked before the upgrade itself, so a client
/// without them learns that first.
pub(crate) struct Opening {
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
}

impl FromRequestParts<AppState> for Opening {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        refuse_token_in_url(parts.uri.query())?;
        Ok(Opening {
            ws: WebSocketUpgrade::from_request_parts(parts, state).await,
            headers: std::mem::take(&mut parts.headers),
        })
    }
}

impl Opening {
    /// The token presented in the header or the subprotocol.
    fn token(&self) -> Result<String, ApiError> {
        presented_token(&self.headers, Carrier::HeaderOrSubprotocol)
    }

    /// The request's headers.
    pub(crate) fn headers(&self) -> &HeaderMap {
        &self.headers
    }

    /// The upgrade as asked, for an endpoint that sets its own protocol
    /// and sizes.
    pub(crate) fn into_upgrade(self) -> Result<WebSocketUpgrade, ApiError> {
        self.ws.map_err(not_an_upgrade)
    }

    /// The upgrade, with this server's subprotocol and small buffers.
    fn upgrade(self) -> Result<WebSocketUpgrade, ApiError> {
        let ws = self.ws.map_err(not_an_upgrade)?;
        Ok(ws
            .protocols([WS_PROTOCOL])
            .read_buffer_size(SOCKET_BUFFER)
            .write_buffer_size(SOCKET_BUFFER)
            .max_message_size(MAX_CLIENT_MESSAGE)
            .max_frame_size(MAX_CLIENT_MESSAGE))
    }
}

/// `GET /v1/events`
#[utoipa::path(
    get, path = "/v1/events", tag = "events", security(("bearer" = [])),
    responses(
        (status = 101, description = "WebSocket: ServerEvent JSON messages out, ClientEvent in", body = ServerEvent),
        (status = 400, description = "a token in the URL (`token_in_url`), or an upgrade without `Sec-WebSocket-Key` (`invalid_handshake`)", body = myturn_wire::ErrorBody),
        (status = 401, description = "no or bad token, in the header or the `bearer.<token>` subprotocol, never the URL (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 426, description = "not a WebSocket upgrade, or not WebSocket version 13 (`websocket_required`)", body = myturn_wire::ErrorBody, headers(("Upgrade" = String, description = "`websocket`"), ("Sec-WebSocket-Version" = String, description = "`13`"))),
        (status = 429, description = "this user has `--max-sockets-per-user` streams open (`too_many_connections`)", body = myturn_wire::ErrorBody),
        (status = 503, description = "the server holds `--max-sockets` streams (`unavailable`), or the state store cannot be reached (`state_unavailable`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn user_events(
    State(state): State<AppState>,
    opening: Opening,
) -> Result<Response, ApiError> {
    let session = state.authenticate(&opening.token()?).await?;
    let ws = opening.upgrade()?;
    if state.fanout.sockets_of(session.uid) >= state.settings.max_sockets_per_user {
        state.metrics.ws_rejected.fetch_add(1, Relaxed);
        return Err(ApiError::TooManyConnections(format!(
            "at most {} event streams per user",
            state.settings.max_sockets_per_user
        )));
    }
    if state.fanout.sockets_open() >= state.settings.max_sockets {
        state.metrics.ws_rejected.fetch_add(1, Relaxed);
        return Err(ApiError::Unavailable(
            "the server holds as many event streams as it can".into(),
        ));
    }
    let (uid, family, exp) = (session.uid, session.family, session.exp);
    Ok(ws.on_upgrade(move |socket| async move {
        let (conn, rx) = state.fanout.attach(uid, family);
        let node = state.settings.node_id.clone();
        let _ = state.run(StreamOpened { uid, node }).await;
        let hello = ServerEvent::Hello {
            name: session.name.clone(),
            status: session.status,
            expires_at: exp,
        };
        let who = Who::User { uid, exp };
        let last_heard = run(state.clone(), socket, who, hello, rx).await;
        state.fanout.detach(Some(uid), conn);
        // A stream that died silently (no pong) was lost when last heard:
        // the reconnect grace counts from then.
        let now = state.now();
        let last_heard = now.unix_ms_of(last_heard);
        let _ = state.run_at(StreamClosed { uid, last_heard }, now).await;
    }))
}

/// `GET /v1/admin/events`
#[utoipa::path(
    get, path = "/v1/admin/events", tag = "events", security(("admin" = [])),
    responses(
        (status = 101, description = "WebSocket: the lobby's events and every change to users, pairs, the waiting room and the PBX figures (AdminStreamEvent JSON)", body = myturn_wire::AdminStreamEvent),
        (status = 400, description = "a token in the URL (`token_in_url`), or an upgrade without `Sec-WebSocket-Key` (`invalid_handshake`)", body = myturn_wire::ErrorBody),
        (status = 401, description = "no or bad admin token, in the header or the `bearer.<token>` subprotocol (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 403, description = "the admin API is disabled: no admin token configured (`forbidden`)", body = myturn_wire::ErrorBody),
        (status = 426, description = "not a WebSocket upgrade, or not WebSocket version 13 (`websocket_required`)", body = myturn_wire::ErrorBody, headers(("Upgrade" = String, description = "`websocket`"), ("Sec-WebSocket-Version" = String, description = "`13`"))),
    )
)]
pub(crate) async fn admin_events(
    State(state): State<AppState>,
    opening: Opening,
) -> Result<Response, ApiError> {
    check_admin(
        state.admin.as_ref(),
        &opening.headers,
        Carrier::HeaderOrSubprotocol,
    )?;
    let ws = opening.upgrade()?;
    Ok(ws.on_upgrade(move |socket| async move {
        let (conn, rx) = state.fanout.attach_admin();
        let hello = ServerEvent::Hello {
            name: MODERATOR.into(),
            status: myturn_wire::Status::Busy,
            expires_at: 0,
        };
        run(state.clone(), socket, Who::Admin, hello, rx).await;
        state.fanout.detach(None, conn);
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_in_the_url_are_refused() {
        assert!(refuse_token_in_url(None).is_ok());
        assert!(refuse_token_in_url(Some("x=1")).is_ok());
        for q in ["token=abc", "a=1&access_token=x", "JWT=x", "bearer"] {
            assert!(refuse_token_in_url(Some(q)).is_err(), "{q}");
        }
    }
}

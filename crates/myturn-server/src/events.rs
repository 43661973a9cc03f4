//! `GET /v1/events` and `GET /v1/admin/events`: the realtime WebSocket
//! streams.
//!
//! Authentication is the access token (admin token for the admin stream)
//! in the `Authorization: Bearer` header, or, for clients that cannot set
//! headers (browsers), in the subprotocol list:
//! `Sec-WebSocket-Protocol: myturn.v1, bearer.<token>`. A token in the URL
//! is refused: URLs end up in proxy logs.
//!
//! Each socket is one task. It owns the socket and a bounded queue fed by
//! [`Core`](crate::state::Core) under the registry lock; a client that lets
//! its queue fill up is disconnected rather than slowing anyone else down.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// How admins sign lobby lines.
pub const MODERATOR: &str = "moderator";

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::{header, HeaderMap};
use axum::response::Response;
use myturn_wire::{
    validate_text, ClientEvent, ServerEvent, LOBBY_MAX_LEN, WS_BEARER_PREFIX, WS_PROTOCOL,
};
use tokio::sync::mpsc;

use crate::auth::bearer;
use crate::error::ApiError;
use crate::moderation::LimitKey;
use crate::registry::UserId;
use crate::state::{close, unix_now, AppState, Outbound};

/// Largest client message accepted on a socket.
pub const MAX_CLIENT_MESSAGE: usize = 4096;
/// Socket buffer sizes: small, so an idle connection costs little memory.
const SOCKET_BUFFER: usize = 4096;

/// "Never", in seconds, for timers that are off.
const FAR: u64 = 365 * 24 * 3600;

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

/// The token from the Authorization header or the subprotocol list.
fn presented_token(headers: &HeaderMap) -> Result<String, ApiError> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        return v
            .to_str()
            .ok()
            .and_then(bearer)
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            });
    }
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(WS_BEARER_PREFIX).map(str::to_owned))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| {
            ApiError::Unauthorized(
                "missing credentials: send `Authorization: Bearer <token>` or offer the `bearer.<token>` subprotocol".into(),
            )
        })
}

fn upgrade(
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<WebSocketUpgrade, ApiError> {
    let ws = ws.map_err(|r| ApiError::bad_request("websocket_required", r.body_text()))?;
    Ok(ws
        .protocols([WS_PROTOCOL])
        .read_buffer_size(SOCKET_BUFFER)
        .write_buffer_size(SOCKET_BUFFER)
        .max_message_size(MAX_CLIENT_MESSAGE)
        .max_frame_size(MAX_CLIENT_MESSAGE))
}

/// `GET /v1/events`
#[utoipa::path(get, path = "/v1/events", tag = "events", security(("bearer" = [])), responses((status = 101, description = "WebSocket: ServerEvent JSON messages out, ClientEvent in", body = ServerEvent), (status = 401, description = "no or bad token (header only; never in the URL)", body = myturn_wire::ErrorBody), (status = 426, description = "not a WebSocket upgrade", body = myturn_wire::ErrorBody)))]
pub async fn user_events(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    refuse_token_in_url(query.as_deref())?;
    let token = presented_token(&headers)?;
    let claims = match state.jwt.verify(&token) {
        Ok(c) => c,
        Err(e) => {
            state.metrics.auth_failures.fetch_add(1, Relaxed);
            return Err(ApiError::Unauthorized(e.to_string()));
        }
    };
    let ws = upgrade(ws)?;
    let (status, name) = {
        let core = state.core();
        if !core.sessions.is_live(claims.sid, claims.uid) {
            state.metrics.auth_failures.fetch_add(1, Relaxed);
            return Err(ApiError::Unauthorized(
                "this session has ended; register again".into(),
            ));
        }
        let user = core
            .reg
            .get(claims.uid)
            .ok_or(crate::registry::RegistryError::NoSuchUser)?;
        if core.sockets_of(claims.uid) >= state.settings.max_sockets_per_user {
            state.metrics.ws_rejected.fetch_add(1, Relaxed);
            return Err(ApiError::TooManyConnections(format!(
                "at most {} event streams per user",
                state.settings.max_sockets_per_user
            )));
        }
        if core.sockets_open() >= state.settings.max_sockets {
            state.metrics.ws_rejected.fetch_add(1, Relaxed);
            return Err(ApiError::Unavailable(
                "the server holds as many event streams as it can".into(),
            ));
        }
        (user.status, user.name.clone())
    };
    let (uid, family, exp) = (claims.uid, claims.sid, claims.exp);
    Ok(ws.on_upgrade(move |socket| async move {
        let attached = {
            let mut core = state.core();
            core.reg.watch(uid, true, Instant::now());
            core.reg.stream_opened(uid);
            core.attach(uid, family)
        };
        let Some((conn, rx)) = attached else { return };
        let hello = ServerEvent::Hello {
            name: name.clone(),
            status,
            expires_at: exp,
        };
        let who = Who::User { uid, name, exp };
        let last_heard = run(state.clone(), socket, who, hello, rx).await;
        let mut core = state.core();
        core.detach(Some(uid), conn);
        core.reg.watch(uid, false, Instant::now());
        // A stream that died silently (no pong) was lost when last heard:
        // the reconnect grace counts from then.
        core.reg.stream_closed(uid, last_heard);
    }))
}

/// `GET /v1/admin/events`
#[utoipa::path(get, path = "/v1/admin/events", tag = "events", security(("admin" = [])), responses((status = 101, description = "WebSocket: admin events (ServerEvent JSON)", body = ServerEvent), (status = 401, description = "no admin token", body = myturn_wire::ErrorBody)))]
pub async fn admin_events(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    refuse_token_in_url(query.as_deref())?;
    if state.admin.is_none() {
        crate::guard::verify_admin(&state, "")?;
    }
    crate::guard::verify_admin(&state, &presented_token(&headers)?)?;
    let ws = upgrade(ws)?;
    Ok(ws.on_upgrade(move |socket| async move {
        let (conn, rx) = state.core().attach_admin();
        let hello = ServerEvent::Hello {
            name: MODERATOR.into(),
            status: myturn_wire::Status::Busy,
            expires_at: 0,
        };
        run(state.clone(), socket, Who::Admin, hello, rx).await;
        state.core().detach(None, conn);
    }))
}

enum Who {
    User { uid: UserId, name: String, exp: u64 },
    Admin,
}

async fn send_event(socket: &mut WebSocket, ev: &ServerEvent) -> bool {
    match serde_json::to_string(ev) {
        Ok(text) => socket.send(Message::Text(text.into())).await.is_ok(),
        Err(_) => true,
    }
}

async fn close_with(socket: &mut WebSocket, code: u16, reason: &'static str) {
    let _ = socket
        .send(Message::Close(Some(CloseFrame {
            code,
            reason: reason.into(),
        })))
        .await;
}

/// How long before expiry `session_expiring` is sent.
fn warn_before(ttl: u64) -> u64 {
    (ttl / 4).clamp(1, 60)
}

async fn run(
    state: AppState,
    mut socket: WebSocket,
    mut who: Who,
    hello: ServerEvent,
    mut rx: mpsc::Receiver<Outbound>,
) -> Instant {
    if !send_event(&mut socket, &hello).await {
        return Instant::now();
    }
    let ping_every = state.settings.ping_every;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut last_heard = Instant::now();
    let mut warned = false;
    let warn = warn_before(state.jwt.ttl_secs);
    loop {
        let exp = match &who {
            Who::User { exp, .. } => Some(*exp),
            Who::Admin => None,
        };
        let now = unix_now();
        let until_exp = Duration::from_secs(exp.map_or(FAR, |e| e.saturating_sub(now)));
        let until_warn =
            Duration::from_secs(exp.map_or(FAR, |e| e.saturating_sub(warn).saturating_sub(now)));
        tokio::select! {
            msg = socket.recv() => {
                let Some(Ok(msg)) = msg else { break };
                last_heard = Instant::now();
                // Pongs and messages are the liveness that pairing checks.
                if let Who::User { uid, .. } = &who {
                    let _ = state.core().reg.touch(*uid, last_heard);
                }
                match msg {
                    Message::Text(t) => match on_client_event(&state, &mut who, t.as_str()) {
                        Reply::Nothing => {}
                        Reply::Rearm => warned = false,
                        Reply::Send(r) => {
                            if !send_event(&mut socket, &r).await { break; }
                        }
                    },
                    Message::Binary(_) => {
                        let e = error("invalid_event", "send JSON text frames");
                        if !send_event(&mut socket, &e).await { break; }
                    }
                    Message::Close(_) => break,
                    Message::Ping(_) | Message::Pong(_) => {}
                }
            }
            out = rx.recv() => match out {
                Some(Outbound::Event(ev)) => {
                    if !send_event(&mut socket, &ev).await { break; }
                }
                Some(Outbound::Close(code, reason)) => {
                    close_with(&mut socket, code, reason).await;
                    break;
                }
                None => {
                    state.metrics.ws_too_slow.fetch_add(1, Relaxed);
                    close_with(&mut socket, close::TOO_SLOW, "event queue overflow: read your events").await;
                    break;
                }
            },
            _ = ping.tick() => {
                if last_heard.elapsed() > ping_every * 3 {
                    close_with(&mut socket, close::DEAD, "no pong").await;
                    return last_heard;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() { break; }
            }
            _ = tokio::time::sleep(until_warn), if exp.is_some() && !warned => {
                warned = true;
                let ev = ServerEvent::SessionExpiring { expires_at: exp.unwrap_or(0) };
                if !send_event(&mut socket, &ev).await { break; }
            }
            _ = tokio::time::sleep(until_exp), if exp.is_some() => {
                send_event(&mut socket, &ServerEvent::SessionExpired).await;
                close_with(&mut socket, close::SESSION, "access token expired").await;
                break;
            }
        }
    }
    Instant::now()
}

fn error(code: &str, message: impl Into<String>) -> ServerEvent {
    ServerEvent::Error {
        code: code.into(),
        message: message.into(),
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// What to do after a client event.
enum Reply {
    Nothing,
    Send(ServerEvent),
    /// The token was swapped: arm the expiry warning again.
    Rearm,
}

impl From<Option<ServerEvent>> for Reply {
    fn from(e: Option<ServerEvent>) -> Self {
        e.map_or(Reply::Nothing, Reply::Send)
    }
}

/// Handles one client event.
fn on_client_event(state: &AppState, who: &mut Who, text: &str) -> Reply {
    let ev: ClientEvent = match serde_json::from_str(text) {
        Ok(ev) => ev,
        Err(e) => return Reply::Send(error("invalid_event", format!("not a client event: {e}"))),
    };
    match (ev, who) {
        (ClientEvent::Ping { id }, _) => Reply::Send(ServerEvent::Pong { id }),
        (ClientEvent::LobbySay { text }, Who::Admin) => {
            say_in_lobby(state, None, MODERATOR, true, text)
                .err()
                .into()
        }
        (ClientEvent::LobbySay { text }, Who::User { uid, name, .. }) => {
            say_in_lobby(state, Some(*uid), name, false, text)
                .err()
                .into()
        }
        (ClientEvent::Typing, Who::User { uid, name, .. }) => {
            let mut core = state.core();
            if core.reg.in_lobby(*uid)
                && core
                    .limits
                    .check(
                        LimitKey::Typing(*uid),
                        LimitKey::Typing(*uid).budget(),
                        Instant::now(),
                    )
                    .is_ok()
            {
                core.lobby_broadcast(&ServerEvent::LobbyTyping { from: name.clone() }, Some(*uid));
            }
            Reply::Nothing
        }
        (ClientEvent::Typing, Who::Admin) => Reply::Nothing,
        (ClientEvent::Reauth { token }, Who::User { uid, exp, .. }) => {
            let claims = match state.jwt.verify(&token) {
                Ok(c) => c,
                Err(e) => return Reply::Send(error("unauthorized", e.to_string())),
            };
            if claims.uid != *uid || !state.core().sessions.is_live(claims.sid, claims.uid) {
                return Reply::Send(error(
                    "unauthorized",
                    "that token belongs to another session",
                ));
            }
            *exp = claims.exp;
            Reply::Rearm
        }
        (ClientEvent::Reauth { .. }, Who::Admin) => {
            Reply::Send(error("invalid_event", "admins do not reauth"))
        }
    }
}

/// Says `text` in the lobby. `Err` carries the error event for the sender.
pub fn say_in_lobby(
    state: &AppState,
    uid: Option<UserId>,
    from: &str,
    admin: bool,
    text: String,
) -> Result<usize, ServerEvent> {
    validate_text(&text, LOBBY_MAX_LEN).map_err(|e| error("invalid_text", e.to_string()))?;
    let mut core = state.core();
    if let Some(uid) = uid {
        if !core.reg.in_lobby(uid) {
            return Err(error(
                "not_in_lobby",
                "the lobby chat is for users waiting for a partner (status \"ready\")",
            ));
        }
        let key = LimitKey::Lobby(uid);
        if let Err(wait) = core.limits.check(key, key.budget(), Instant::now()) {
            state.metrics.rate_limited.fetch_add(1, Relaxed);
            return Err(error(
                "rate_limited",
                format!("too many messages; wait {:.1} s", wait.as_secs_f64()),
            ));
        }
    }
    let ev = ServerEvent::LobbyMessage {
        from: from.to_owned(),
        admin,
        text,
        at: now_ms(),
    };
    let n = core.lobby_broadcast(&ev, None);
    drop(core);
    state.metrics.lobby_messages.fetch_add(1, Relaxed);
    state.metrics.lobby_deliveries.fetch_add(n as u64, Relaxed);
    Ok(n)
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

    #[test]
    fn token_from_header_or_subprotocol() {
        let mut h = HeaderMap::new();
        assert!(presented_token(&h).is_err());
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "myturn.v1, bearer.abc.def.ghi".parse().unwrap(),
        );
        assert_eq!(presented_token(&h).unwrap(), "abc.def.ghi");
        h.insert(header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(presented_token(&h).unwrap(), "xyz");
        h.insert(header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert!(presented_token(&h).is_err());
    }

    #[test]
    fn warning_lead_time() {
        assert_eq!(warn_before(900), 60);
        assert_eq!(warn_before(20), 5);
        assert_eq!(warn_before(2), 1);
    }
}

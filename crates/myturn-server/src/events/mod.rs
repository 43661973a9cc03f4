//! `GET /v1/events` and `GET /v1/admin/events`: the realtime WebSocket
//! streams.
//!
//! Authentication is the access token (admin token for the admin stream)
//! in the `Authorization: Bearer` header, or, for clients that cannot set
//! headers (browsers), in the subprotocol list:
//! `Sec-WebSocket-Protocol: myturn.v1, bearer.<token>`. A token in the URL
//! is refused: URLs end up in proxy logs.
//!
//! Each socket is one task. It owns the socket and a bounded queue that
//! [`fanout`] fills from inside each use case; a client that lets its queue
//! fill up is disconnected rather than slowing anyone else down. Client
//! events are parsed here and become one [`Store`](crate::store::Store)
//! call each.

pub(crate) mod fanout;

use std::future::Future;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, WebSocket, WebSocketUpgrade};
use axum::extract::{RawQuery, State};
use axum::http::HeaderMap;
use axum::response::Response;
use myturn_wire::{ClientEvent, PeerResponse, ServerEvent, WS_PROTOCOL};
use tokio::sync::mpsc;

use crate::auth::{check_admin, presented_token, Carrier};
pub(crate) use crate::core::MODERATOR;
use crate::core::{CoreError, Speaker};
use crate::error::ApiError;
use crate::registry::{RegistryError, UserId};
use crate::state::AppState;
use fanout::{close, Outbound};

/// Largest client message accepted on a socket.
pub(crate) const MAX_CLIENT_MESSAGE: usize = 4096;
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
pub(crate) async fn user_events(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    refuse_token_in_url(query.as_deref())?;
    let token = presented_token(&headers, Carrier::HeaderOrSubprotocol)?;
    let session = state.store.authenticate(token, state.now()).await?;
    let ws = upgrade(ws)?;
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
        let Some((conn, rx)) = state.fanout.attach(uid, family) else {
            return;
        };
        let _ = state.store.stream_opened(uid, state.now()).await;
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
        let _ = state
            .store
            .stream_closed(uid, state.now(), last_heard)
            .await;
    }))
}

/// `GET /v1/admin/events`
#[utoipa::path(get, path = "/v1/admin/events", tag = "events", security(("admin" = [])), responses((status = 101, description = "WebSocket: admin events (ServerEvent JSON)", body = ServerEvent), (status = 401, description = "no admin token", body = myturn_wire::ErrorBody)))]
pub(crate) async fn admin_events(
    State(state): State<AppState>,
    RawQuery(query): RawQuery,
    headers: HeaderMap,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ApiError> {
    refuse_token_in_url(query.as_deref())?;
    check_admin(state.admin.as_ref(), &headers, Carrier::HeaderOrSubprotocol)?;
    let ws = upgrade(ws)?;
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

enum Who {
    User { uid: UserId, exp: u64 },
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
        return state.now().mono;
    }
    let ping_every = state.settings.ping_every;
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
    let mut last_heard = state.now().mono;
    let mut warned = false;
    let warn = warn_before(state.jwt.ttl_secs);
    // The expiry warning and the expiry, as monotonic deadlines: worked
    // out once, and again only when a reauth swaps the token.
    let deadlines = |who: &Who| {
        let far = tokio::time::Instant::now() + Duration::from_secs(FAR);
        let Who::User { exp, .. } = who else {
            return (far, far);
        };
        let (now, base) = (state.now().unix(), tokio::time::Instant::now());
        (
            base + Duration::from_secs(exp.saturating_sub(warn).saturating_sub(now)),
            base + Duration::from_secs(exp.saturating_sub(now)),
        )
    };
    let expires = matches!(who, Who::User { .. });
    // Plain deadlines, not timers held across the loop: a timer held
    // across every await point would add to each idle stream's memory.
    let (mut warn_at, mut exp_at) = deadlines(&who);
    loop {
        tokio::select! {
            msg = socket.recv() => {
                let Some(Ok(msg)) = msg else { break };
                let now = state.now();
                last_heard = now.mono;
                // Pongs and messages are the liveness that pairing checks.
                if let Who::User { uid, .. } = &who {
                    let _ = state.store.heard(*uid, now).await;
                }
                match msg {
                    Message::Text(t) => match on_client_event(&state, &mut who, t.as_str()).await {
                        Reply::Nothing => {}
                        Reply::Rearm => {
                            warned = false;
                            (warn_at, exp_at) = deadlines(&who);
                        }
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
                if state.now().mono.saturating_duration_since(last_heard) > ping_every * 3 {
                    close_with(&mut socket, close::DEAD, "no pong").await;
                    return last_heard;
                }
                if socket.send(Message::Ping(Default::default())).await.is_err() { break; }
            }
            _ = tokio::time::sleep_until(warn_at), if expires && !warned => {
                warned = true;
                let expires_at = match &who { Who::User { exp, .. } => *exp, Who::Admin => 0 };
                let ev = ServerEvent::SessionExpiring { expires_at };
                if !send_event(&mut socket, &ev).await { break; }
            }
            _ = tokio::time::sleep_until(exp_at), if expires => {
                send_event(&mut socket, &ServerEvent::SessionExpired).await;
                close_with(&mut socket, close::SESSION, "access token expired").await;
                break;
            }
        }
    }
    state.now().mono
}

fn error(code: &str, message: impl Into<String>) -> ServerEvent {
    ServerEvent::Error {
        code: code.into(),
        message: message.into(),
    }
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

/// Handles one client event: one store call each.
async fn on_client_event(state: &AppState, who: &mut Who, text: &str) -> Reply {
    let ev: ClientEvent = match serde_json::from_str(text) {
        Ok(ev) => ev,
        Err(e) => return Reply::Send(error("invalid_event", format!("not a client event: {e}"))),
    };
    let now = state.now();
    match (ev, who) {
        (ClientEvent::Ping { id }, _) => Reply::Send(ServerEvent::Pong { id }),
        (ClientEvent::LobbySay { text }, Who::Admin) => lobby_say(state, Speaker::Moderator, text)
            .await
            .err()
            .into(),
        (ClientEvent::LobbySay { text }, Who::User { uid, .. }) => {
            lobby_say(state, Speaker::User(*uid), text)
                .await
                .err()
                .into()
        }
        (ClientEvent::Typing, Who::User { uid, .. }) => {
            let _ = state.store.typing(*uid, now).await;
            Reply::Nothing
        }
        (ClientEvent::Typing, Who::Admin) => Reply::Nothing,
        (ClientEvent::Reauth { token }, Who::User { uid, exp, .. }) => {
            match state.store.reauth(*uid, token, now).await {
                Ok(e) => {
                    *exp = e;
                    Reply::Rearm
                }
                Err(e) => Reply::Send(e.to_event()),
            }
        }
        (ClientEvent::Reauth { .. }, Who::Admin) => {
            Reply::Send(error("invalid_event", "admins do not reauth"))
        }
    }
}

/// Says `text` in the lobby and counts it. `Err` is the error event for
/// the sender. Returns how many sockets the line was queued on.
pub(crate) async fn lobby_say(
    state: &AppState,
    speaker: Speaker,
    text: String,
) -> Result<usize, ServerEvent> {
    match state.store.lobby_say(speaker, text, state.now()).await {
        Ok(n) => {
            state.metrics.lobby_messages.fetch_add(1, Relaxed);
            state.metrics.lobby_deliveries.fetch_add(n as u64, Relaxed);
            Ok(n)
        }
        Err(e) => {
            if e.code() == "rate_limited" {
                state.metrics.rate_limited.fetch_add(1, Relaxed);
            }
            Err(e.to_event())
        }
    }
}

/// The error event a refused use case answers on a stream.
impl From<CoreError> for Reply {
    fn from(e: CoreError) -> Self {
        Reply::Send(e.to_event())
    }
}

impl AppState {
    /// Waits up to `wait` for `uid` to be paired. `Ok(None)`: still
    /// waiting.
    pub(crate) async fn wait_for_peer(
        &self,
        uid: UserId,
        wait: Duration,
    ) -> Result<Option<PeerResponse>, CoreError> {
        let deadline = tokio::time::Instant::now() + wait;
        // Subscribe before looking: a pairing in between still wakes us.
        let mut rx = self.fanout.subscribe(uid);
        let found = self.store.peer_of(uid).await?;
        if found.is_some() || wait.is_zero() {
            return Ok(found);
        }
        let Some(rx) = rx.as_mut() else {
            return Err(RegistryError::NoSuchUser.into());
        };
        self.store.watch(uid, true, self.now()).await?;
        // Closes the watch when this future ends, also when the client
        // hangs up mid-wait and the future is dropped.
        struct Unwatch(AppState, UserId);
        impl Drop for Unwatch {
            fn drop(&mut self) {
                let (state, uid) = (self.0.clone(), self.1);
                let now = state.now();
                let mut done = Box::pin(async move {
                    let _ = state.store.watch(uid, false, now).await;
                });
                // The in-memory store is done at the first poll; a
                // networked one finishes in a task of its own.
                let mut cx = std::task::Context::from_waker(std::task::Waker::noop());
                if done.as_mut().poll(&mut cx).is_pending() {
                    if let Ok(rt) = tokio::runtime::Handle::try_current() {
                        rt.spawn(done);
                    }
                }
            }
        }
        let _guard = Unwatch(self.clone(), uid);
        loop {
            let woke = tokio::time::timeout_at(deadline, rx.changed()).await;
            let found = self.store.peer_of(uid).await?;
            match woke {
                _ if found.is_some() => return Ok(found),
                Ok(Ok(())) => continue,
                Ok(Err(_)) => return Err(RegistryError::NoSuchUser.into()),
                Err(_) => return Ok(None),
            }
        }
    }
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
    fn warning_lead_time() {
        assert_eq!(warn_before(900), 60);
        assert_eq!(warn_before(20), 5);
        assert_eq!(warn_before(2), 1);
    }
}

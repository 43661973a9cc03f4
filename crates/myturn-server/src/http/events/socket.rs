//! One event stream's task: it owns the WebSocket and the queue the
//! node's fan-out fills, pings the client (its pongs are the liveness
//! pairing checks), warns before the token expires and closes when it
//! does, and turns each client event into one use case.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use myturn_wire::{ClientEvent, ServerEvent};
use tokio::sync::mpsc;

use crate::core::cases::lobby::Typing;
use crate::core::cases::streams::Heard;
use crate::core::{CoreError, Speaker, UserId};
use crate::node::fanout::{close, Outbound};
use crate::node::AppState;
use crate::store::StoreError;

/// "Never", in seconds, for timers that are off.
const FAR: u64 = 365 * 24 * 3600;

pub(super) enum Who {
    User { uid: UserId, exp: u64 },
    Admin,
}

async fn send_event(socket: &mut WebSocket, ev: &impl serde::Serialize) -> bool {
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

pub(super) async fn run(
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
                    let _ = state.run_at(Heard { uid: *uid }, now).await;
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
                Some(Outbound::Admin(ev)) => {
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

/// Handles one client event: one use case each.
async fn on_client_event(state: &AppState, who: &mut Who, text: &str) -> Reply {
    let ev: ClientEvent = match serde_json::from_str(text) {
        Ok(ev) => ev,
        Err(e) => return Reply::Send(error("invalid_event", format!("not a client event: {e}"))),
    };
    match (ev, who) {
        (ClientEvent::Ping { id }, _) => Reply::Send(ServerEvent::Pong { id }),
        (ClientEvent::LobbySay { text }, Who::Admin) => say(state, Speaker::Moderator, text).await,
        (ClientEvent::LobbySay { text }, Who::User { uid, .. }) => {
            say(state, Speaker::User(*uid), text).await
        }
        (ClientEvent::Typing, Who::User { uid, .. }) => {
            let _ = state.run(Typing { uid: *uid }).await;
            Reply::Nothing
        }
        (ClientEvent::Typing, Who::Admin) => Reply::Nothing,
        (ClientEvent::Reauth { token }, Who::User { uid, exp, .. }) => {
            match state.reauth(*uid, &token).await {
                Ok(e) => {
                    *exp = e;
                    Reply::Rearm
                }
                Err(e) => Reply::Send(event_of(&e)),
            }
        }
        (ClientEvent::Reauth { .. }, Who::Admin) => {
            Reply::Send(error("invalid_event", "admins do not reauth"))
        }
    }
}

/// A lobby line from the socket; a refusal is answered to the sender (a
/// rate-limited one is counted: no HTTP answer counts it here).
async fn say(state: &AppState, speaker: Speaker, text: String) -> Reply {
    match state.lobby_say(speaker, text).await {
        Ok(_) => Reply::Nothing,
        Err(e) => {
            if matches!(e, StoreError::Refused(CoreError::RateLimited { .. })) {
                state.metrics.rate_limited.fetch_add(1, Relaxed);
            }
            Reply::Send(event_of(&e))
        }
    }
}

/// The `error` event a refused (or unanswered) use case answers on a
/// stream.
fn event_of(e: &StoreError) -> ServerEvent {
    match e {
        StoreError::Refused(e) => e.to_event(),
        StoreError::Unavailable(m) => error("unavailable", m.clone()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn warning_lead_time() {
        assert_eq!(warn_before(900), 60);
        assert_eq!(warn_before(20), 5);
        assert_eq!(warn_before(2), 1);
    }
}

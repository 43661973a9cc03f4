//! `GET /media`: the browser's media over WebSocket, bridged onto UDP to
//! the built-in relay. A page cannot send raw UDP; this carries the
//! datagrams it would send, one per binary WebSocket message, unchanged:
//! they are sealed end to end (`docs/protocol.md`), and this bridge can
//! read none of them. The relay sees the bridge as any other latched UDP
//! peer, so a page and a terminal client are paired with no translation.
//!
//! The conversation (subprotocols `myturn-media` and `bearer.<token>`,
//! since a browser cannot set headers):
//!
//! * server → page, text, first: `{"type":"bound","addr":"ip:port"}`, the
//!   UDP address the bridge sends from; the page writes it into its SDP.
//! * page → server, text: `{"type":"peer","addr":"ip:port"}`, the media
//!   address of the partner's SDP (the relay's port for this call). Only
//!   the relay's own ports are taken (`peer_refused` otherwise): the
//!   bridge is no open UDP proxy. Sent again when the SDP changes.
//! * binary, both ways: one datagram each. A page's datagram that is no
//!   RTP packet (shorter than its header, not version 2, or longer than
//!   [`MAX_DATAGRAM`]) or over the rate is dropped and counted
//!   (`myturn_web_media_dropped_total`), as the relay drops a stranger's.
//!
//! When the page goes (a closed tab, a lost network) the socket closes,
//! the bridge's UDP socket with it, and the partner's media liveness
//! notices the silence as it would a terminal client's.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use axum::extract::ws::{CloseFrame, Message, WebSocket};
use axum::extract::State;
use axum::response::Response;
use myturn_pbx::driver::MediaBridge;
use serde::Deserialize;
use tokio::net::UdpSocket;

use super::credentials::{presented_token, Carrier};
use super::error::ApiError;
use super::events::Opening;
use crate::node::metrics::{WebMediaDrop as Dropped, WebMediaMetrics};
use crate::node::AppState;

/// This endpoint's subprotocol.
pub(crate) const SUBPROTOCOL: &str = "myturn-media";
/// The largest datagram carried either way (a sealed 20 ms frame of
/// 16 kHz PCM16 with its redundancy is well under it).
pub(crate) const MAX_DATAGRAM: usize = 1500;
/// A page may send this many datagrams a second (50 frames, text and
/// handshake with room to spare), with [`BURST`] at once.
const RATE: f64 = 150.0;
const BURST: f64 = 50.0;
/// Bridges one user may hold at once: the call's, one opened ahead while
/// waiting, and the ones still closing after a quick `next` or a
/// fallback from the data channel to the WebSocket.
pub(crate) const MAX_PER_USER: usize = 4;

/// One of a user's bridges, counted until dropped.
pub(crate) struct Slot {
    state: AppState,
    user: String,
}

impl Slot {
    /// Takes one of `user`'s [`MAX_PER_USER`] slots, or refuses (429).
    pub(crate) fn take(state: &AppState, user: &str) -> Result<Slot, ApiError> {
        let m = &state.metrics.web_media;
        let mut held = m.per_user.lock().unwrap_or_else(|e| e.into_inner());
        let n = held.entry(user.to_owned()).or_insert(0);
        if *n >= MAX_PER_USER {
            m.refused.fetch_add(1, Relaxed);
            return Err(ApiError::TooManyConnections(format!(
                "at most {MAX_PER_USER} media connections per user"
            )));
        }
        *n += 1;
        Ok(Slot {
            state: state.clone(),
            user: user.to_owned(),
        })
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        let m = &self.state.metrics.web_media;
        let mut held = m.per_user.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = held.get_mut(&self.user) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                held.remove(&self.user);
            }
        }
    }
}

/// The close code for a refused peer (RFC 6455: policy violation).
const CLOSE_POLICY: u16 = 1008;

/// Whether `d` has the shape of an RTP packet: the only thing a page
/// sends (the handshake, audio and text all ride in RTP, see
/// `docs/protocol.md`).
pub(crate) fn rtp_shaped(d: &[u8]) -> bool {
    (12..=MAX_DATAGRAM).contains(&d.len()) && d[0] >> 6 == 2
}

/// A token bucket, per bridge.
#[derive(Debug)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn new(now: Instant) -> Bucket {
        Bucket {
            tokens: BURST,
            at: now,
        }
    }

    fn take(&mut self, now: Instant) -> bool {
        let dt = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + dt * RATE).min(BURST);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
enum Control {
    Peer { addr: String },
}

/// `GET /media`
#[utoipa::path(
    get, path = "/media", tag = "sip",
    responses(
        (status = 101, description = "WebSocket, subprotocols `myturn-media` and `bearer.<token>`: the page's sealed media datagrams, one per binary message, bridged onto UDP to the built-in relay (see the module docs and docs/protocol.md)"),
        (status = 400, description = "a token in the URL (`token_in_url`), or an upgrade without `Sec-WebSocket-Key` (`invalid_handshake`)", body = myturn_wire::ErrorBody),
        (status = 401, description = "no or bad access token in the `bearer.<token>` subprotocol or the header (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 404, description = "this server runs no built-in relay (`not_found`): the browser's media needs it", body = myturn_wire::ErrorBody),
        (status = 426, description = "not a WebSocket upgrade (`websocket_required`)", body = myturn_wire::ErrorBody, headers(("Upgrade" = String, description = "`websocket`"), ("Sec-WebSocket-Version" = String, description = "`13`"))),
        (status = 429, description = "this user holds 4 media connections already (`too_many_connections`)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn media_websocket(
    State(state): State<AppState>,
    opening: Opening,
) -> Result<Response, ApiError> {
    let Some(bridge) = state.pbx.sip_edge().and_then(|p| p.media_bridge()) else {
        return Err(ApiError::NotFound(
            "the browser's media is bridged to the built-in relay only (--pbx builtin --media-relay builtin)".into(),
        ));
    };
    let token = presented_token(opening.headers(), Carrier::HeaderOrSubprotocol)?;
    let session = state.authenticate(&token).await?;
    let slot = Slot::take(&state, &session.name)?;
    let ws = opening
        .into_upgrade()?
        .protocols([SUBPROTOCOL])
        .max_message_size(MAX_DATAGRAM)
        .max_frame_size(MAX_DATAGRAM);
    let socket = bridge_socket(&bridge).await?;
    Ok(ws.on_upgrade(move |ws| async move {
        run_bridge(&state, ws, socket, &bridge, &session.name, "websocket").await;
        drop(slot);
    }))
}

/// What a page's transport delivered.
pub(crate) enum FromPage {
    /// A binary message: one datagram.
    Datagram(Vec<u8>),
    /// A text message: a control message.
    Control(String),
    /// Nothing that matters (a ping).
    Nothing,
    /// The page is gone.
    Gone,
}

/// A page's transport: the WebSocket, or the WebRTC data channel
/// ([`super::webrtc`]). The bridge's conversation is the same on both.
pub(crate) trait PageLink {
    /// The next message from the page.
    async fn recv(&mut self) -> FromPage;
    /// A datagram for the page; `false` once it is gone.
    async fn send(&mut self, datagram: &[u8]) -> bool;
    /// A control message for the page; `false` once it is gone.
    async fn send_text(&mut self, text: String) -> bool;
    /// Ends the link, telling the page why.
    async fn refuse(&mut self, reason: &'static str);
}

impl PageLink for WebSocket {
    async fn recv(&mut self) -> FromPage {
        match WebSocket::recv(self).await {
            Some(Ok(Message::Binary(d))) => FromPage::Datagram(d.to_vec()),
            Some(Ok(Message::Text(t))) => FromPage::Control(t.to_string()),
            Some(Ok(Message::Ping(_) | Message::Pong(_))) => FromPage::Nothing,
            Some(Ok(Message::Close(_)) | Err(_)) | None => FromPage::Gone,
        }
    }

    async fn send(&mut self, datagram: &[u8]) -> bool {
        WebSocket::send(self, Message::Binary(datagram.to_vec().into()))
            .await
            .is_ok()
    }

    async fn send_text(&mut self, text: String) -> bool {
        WebSocket::send(self, Message::Text(text.into()))
            .await
            .is_ok()
    }

    async fn refuse(&mut self, reason: &'static str) {
        let _ = WebSocket::send(
            self,
            Message::Close(Some(CloseFrame {
                code: CLOSE_POLICY,
                reason: reason.into(),
            })),
        )
        .await;
    }
}

/// A bridge's UDP socket towards the relay, bound on the bridge address.
pub(crate) async fn bridge_socket(bridge: &MediaBridge) -> Result<UdpSocket, ApiError> {
    UdpSocket::bind((bridge.bind, 0))
        .await
        .map_err(|e| ApiError::Unavailable(format!("no UDP port for the media bridge: {e}")))
}

/// Runs one page's bridge to its end, counted in `/metrics` and logged.
pub(crate) async fn run_bridge<L: PageLink>(
    state: &AppState,
    mut link: L,
    socket: UdpSocket,
    bridge: &MediaBridge,
    user: &str,
    transport: &'static str,
) {
    let m = &state.metrics.web_media;
    m.open.fetch_add(1, Relaxed);
    tracing::info!(user, transport, local = ?socket.local_addr().ok(), "browser media bridge open");
    let why = carry(&mut link, socket, bridge, m).await;
    m.open.fetch_sub(1, Relaxed);
    tracing::info!(user, transport, why, "browser media bridge closed");
}

/// Carries datagrams until either side ends; why it ended.
async fn carry<L: PageLink>(
    link: &mut L,
    socket: UdpSocket,
    bridge: &MediaBridge,
    m: &WebMediaMetrics,
) -> &'static str {
    let Ok(local) = socket.local_addr() else {
        return "no local address";
    };
    let hello = serde_json::json!({"type": "bound", "addr": local.to_string()}).to_string();
    if !link.send_text(hello).await {
        return "page gone";
    }
    let mut peer: Option<SocketAddr> = None;
    let mut bucket = Bucket::new(Instant::now());
    let mut buf = vec![0u8; MAX_DATAGRAM + 1];
    // A page that says nothing at all for this long is gone (its
    // heartbeat is the media itself, 50 packets a second, or the
    // transport's own keep-alives).
    let idle = Duration::from_secs(60);
    loop {
        tokio::select! {
            incoming = tokio::time::timeout(idle, link.recv()) => match incoming {
                Err(_) => return "idle",
                Ok(FromPage::Datagram(d)) => {
                    let verdict = if !rtp_shaped(&d) {
                        Err(Dropped::Malformed)
                    } else if !bucket.take(Instant::now()) {
                        Err(Dropped::Rate)
                    } else {
                        peer.ok_or(Dropped::NoPeer)
                    };
                    match verdict {
                        Ok(to) => {
                            if socket.send_to(&d, to).await.is_ok() {
                                m.to_relay.fetch_add(1, Relaxed);
                            }
                        }
                        Err(why) => m.count_drop(why),
                    }
                }
                Ok(FromPage::Control(t)) => match serde_json::from_str::<Control>(&t) {
                    Ok(Control::Peer { addr }) => {
                        match addr.parse::<SocketAddr>().ok().and_then(|a| bridge.target(a)) {
                            Some(to) => peer = Some(to),
                            None => {
                                link.refuse("peer_refused: not a port of this server's relay").await;
                                return "peer refused";
                            }
                        }
                    }
                    Err(_) => m.count_drop(Dropped::Malformed),
                },
                Ok(FromPage::Nothing) => {}
                Ok(FromPage::Gone) => return "page gone",
            },
            got = socket.recv_from(&mut buf) => match got {
                // Only what comes from the relay's port for this call.
                Ok((n, from)) if Some(from) == peer && n <= MAX_DATAGRAM => {
                    if !link.send(&buf[..n]).await {
                        return "page gone";
                    }
                    m.to_page.fetch_add(1, Relaxed);
                }
                Ok(_) | Err(_) => {}
            },
        }
    }
}

/// The fuzz body for a page's messages (`myturn_server::fuzzing`): any
/// bytes as a datagram and as a control message, never a panic, and a
/// `peer` that is taken is a relay port.
pub(crate) fn fuzz_page_message(data: &[u8]) {
    let bridge = MediaBridge {
        bind: std::net::Ipv4Addr::LOCALHOST.into(),
        advertised: std::net::Ipv4Addr::new(203, 0, 113, 5).into(),
        ports: 10000..=10009,
    };
    let _ = rtp_shaped(data);
    if let Ok(Control::Peer { addr }) = serde_json::from_slice::<Control>(data) {
        if let Some(to) = addr
            .parse::<SocketAddr>()
            .ok()
            .and_then(|a| bridge.target(a))
        {
            assert!(bridge.ports.contains(&to.port()) && to.ip() == bridge.bind);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_rtp_shaped_datagrams_pass() {
        let mut ok = vec![0u8; 12];
        ok[0] = 0x80;
        assert!(rtp_shaped(&ok));
        assert!(!rtp_shaped(&ok[..11]));
        assert!(!rtp_shaped(&[0x40; 40]), "version 1");
        assert!(!rtp_shaped(&vec![0x80; MAX_DATAGRAM + 1]));
        assert!(!rtp_shaped(&[]));
    }

    #[test]
    fn the_bucket_holds_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(t0);
        let burst = (0..100).filter(|_| b.take(t0)).count();
        assert_eq!(burst, BURST as usize);
        let later = t0 + Duration::from_secs(1);
        let more = (0..1000).filter(|_| b.take(later)).count();
        assert_eq!(more, BURST as usize, "refilled, to the burst at most");
    }

    #[test]
    fn the_bridge_sends_only_to_the_relays_ports() {
        let b = MediaBridge {
            bind: "127.0.0.1".parse().unwrap(),
            advertised: "203.0.113.5".parse().unwrap(),
            ports: 10000..=10009,
        };
        assert_eq!(
            b.target("203.0.113.5:10002".parse().unwrap()),
            Some("127.0.0.1:10002".parse().unwrap()),
            "the advertised address is reached on the bind address"
        );
        assert!(b.target("203.0.113.5:53".parse().unwrap()).is_none());
        assert!(b.target("198.51.100.1:10002".parse().unwrap()).is_none());
    }
}

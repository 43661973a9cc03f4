//! `POST /media/webrtc`: the browser's media over a WebRTC data channel,
//! the page's first choice (`GET /media`, the WebSocket, is its
//! fallback). The page offers one data channel, unordered and never
//! retransmitted (`{ordered: false, maxRetransmits: 0}`: a late audio
//! frame is worth nothing, so a lost one must not hold up the next, as a
//! WebSocket's TCP does); the server answers as an ICE-lite endpoint on a
//! UDP port of its own, and terminates ICE, DTLS and SCTP with `str0m`
//! (sans-IO, driven here by one task per page). What the channel carries
//! is exactly the WebSocket's conversation ([`super::media`]): `bound`,
//! `peer`, and one sealed datagram per binary message, bridged onto UDP to
//! the built-in relay. DTLS only wraps the hop to this server; the
//! datagrams inside are sealed end to end, and this server reads none.
//!
//! Why a data channel and not WebTransport: every browser has it
//! (WebTransport's datagrams are missing from Safari), it needs no HTTP/3
//! listener beside the HTTPS one, and `str0m` is the sans-IO style of this
//! codebase.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use axum::extract::State;
use axum::Json;
use serde::{Deserialize, Serialize};
use str0m::change::SdpOffer;
use str0m::channel::ChannelId;
use str0m::net::{Protocol, Receive};
use str0m::{Candidate, Event, IceConnectionState, Input, Output, Rtc};
use tokio::net::UdpSocket;
use tokio::sync::mpsc;

use super::error::ApiError;
use super::extract::{ApiJson, AuthUser};
use super::media::{bridge_socket, run_bridge, FromPage, PageLink, Slot};
use crate::node::AppState;

/// How long the data channel may take to open after the answer (the page
/// gives up after 4 s and falls back to the WebSocket).
const OPEN_WITHIN: Duration = Duration::from_secs(8);
/// Messages queued between the page's task and its bridge, each way.
const QUEUE: usize = 64;

/// The page's offer.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct WebRtcOffer {
    /// The SDP offer of an `RTCPeerConnection` with one data channel.
    sdp: String,
}

/// The server's answer.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub(crate) struct WebRtcAnswer {
    /// The SDP answer: ICE-lite, one host candidate.
    sdp: String,
}

/// `POST /media/webrtc`
#[utoipa::path(
    post, path = "/media/webrtc", tag = "sip", security(("bearer" = [])),
    request_body = WebRtcOffer,
    responses(
        (status = 200, description = "the answer; the data channel then carries the media bridge's conversation (see `GET /media`)", body = WebRtcAnswer),
        (status = 400, description = "not a WebRTC offer with a data channel (`invalid_offer`), or a bad body (`invalid_json`, `invalid_body`)", body = myturn_wire::ErrorBody),
        (status = 401, description = "no, bad, expired or revoked token (`unauthorized`)", body = myturn_wire::ErrorBody),
        (status = 404, description = "this server runs no built-in relay (`not_found`)", body = myturn_wire::ErrorBody),
        (status = 429, description = "this user holds 4 media connections already (`too_many_connections`)", body = myturn_wire::ErrorBody),
        (status = 503, description = "no UDP port free for the data channel (`unavailable`: `--webrtc-ports` is full)", body = myturn_wire::ErrorBody),
    )
)]
pub(crate) async fn media_webrtc(
    State(state): State<AppState>,
    user: AuthUser,
    ApiJson(offer): ApiJson<WebRtcOffer>,
) -> Result<Json<WebRtcAnswer>, ApiError> {
    let Some(bridge) = state.pbx.sip_edge().and_then(|p| p.media_bridge()) else {
        return Err(ApiError::NotFound(
            "the browser's media is bridged to the built-in relay only (--pbx builtin --media-relay builtin)".into(),
        ));
    };
    let slot = Slot::take(&state, &user.name)?;
    let offer = parse(&offer.sdp)?;
    // The page reaches this server's own address (the relay's, as SDP
    // names it), on a port of this page's.
    let udp = bind_in(bridge.bind, state.settings.webrtc_ports.clone()).await?;
    let local = udp
        .local_addr()
        .map_err(|e| ApiError::Unavailable(format!("no UDP port for WebRTC: {e}")))?;
    let reachable = SocketAddr::new(bridge.advertised, local.port());
    let (rtc, sdp) = answer(offer, reachable)?;
    let socket = bridge_socket(&bridge).await?;
    let (from_tx, from_rx) = mpsc::channel(QUEUE);
    let (to_tx, to_rx) = mpsc::channel(QUEUE);
    tokio::spawn(drive(rtc, udp, from_tx, to_rx));
    let link = ChannelLink {
        from: from_rx,
        to: to_tx,
    };
    tokio::spawn(async move {
        run_bridge(&state, link, socket, &bridge, &user.name, "webrtc").await;
        drop(slot);
    });
    Ok(Json(WebRtcAnswer { sdp }))
}

/// A UDP socket on `ip`: on a free port of `ports` (tried from a random
/// one on), or any free port without a range. `503` when the range is
/// full.
async fn bind_in(
    ip: std::net::IpAddr,
    ports: Option<std::ops::RangeInclusive<u16>>,
) -> Result<UdpSocket, ApiError> {
    let Some(ports) = ports else {
        return UdpSocket::bind((ip, 0))
            .await
            .map_err(|e| ApiError::Unavailable(format!("no UDP port for WebRTC: {e}")));
    };
    let (lo, hi) = (*ports.start(), *ports.end());
    let span = u32::from(hi - lo) + 1;
    let first = rand::random::<u32>() % span;
    for k in 0..span {
        let port = lo + ((first + k) % span) as u16;
        if let Ok(s) = UdpSocket::bind((ip, port)).await {
            return Ok(s);
        }
    }
    Err(ApiError::Unavailable(format!(
        "every UDP port of --webrtc-ports {lo}-{hi} is taken"
    )))
}

/// The fuzz body for a page's offer (`myturn_server::fuzzing`): any bytes
/// as SDP, and what parses answered by a fresh ICE-lite endpoint, never a
/// panic.
pub(crate) fn fuzz_offer(data: &[u8]) {
    if let Ok(offer) = parse(&String::from_utf8_lossy(data)) {
        let _ = answer(offer, ([127, 0, 0, 1], 40000).into());
    }
}

/// The page's offer, parsed.
fn parse(sdp: &str) -> Result<SdpOffer, ApiError> {
    SdpOffer::from_sdp_string(sdp)
        .map_err(|e| ApiError::bad_request("invalid_offer", format!("not an SDP offer: {e}")))
}

/// A fresh ICE-lite endpoint reachable at `reachable`, and its answer to
/// the page's `offer`.
fn answer(offer: SdpOffer, reachable: SocketAddr) -> Result<(Rtc, String), ApiError> {
    let mut rtc = Rtc::builder().set_ice_lite(true).build(Instant::now());
    let candidate = Candidate::host(reachable, "udp")
        .map_err(|e| ApiError::Unavailable(format!("no usable WebRTC address: {e}")))?;
    rtc.add_local_candidate(candidate);
    let answer = rtc.sdp_api().accept_offer(offer).map_err(|e| {
        ApiError::bad_request("invalid_offer", format!("the offer is refused: {e}"))
    })?;
    let sdp = answer.to_sdp_string();
    Ok((rtc, sdp))
}

/// What the bridge asks of the page's task.
enum ToPage {
    Datagram(Vec<u8>),
    Text(String),
    Close,
}

/// The bridge's side of a page's data channel.
struct ChannelLink {
    from: mpsc::Receiver<FromPage>,
    to: mpsc::Sender<ToPage>,
}

impl PageLink for ChannelLink {
    async fn recv(&mut self) -> FromPage {
        self.from.recv().await.unwrap_or(FromPage::Gone)
    }

    async fn send(&mut self, datagram: &[u8]) -> bool {
        // Full means the page's task is behind: this frame is dropped, as
        // the network would.
        !matches!(
            self.to.try_send(ToPage::Datagram(datagram.to_vec())),
            Err(mpsc::error::TrySendError::Closed(_))
        )
    }

    async fn send_text(&mut self, text: String) -> bool {
        self.to.send(ToPage::Text(text)).await.is_ok()
    }

    async fn refuse(&mut self, _reason: &'static str) {
        let _ = self.to.send(ToPage::Close).await;
    }
}

/// Runs one page's WebRTC endpoint: ICE, DTLS and SCTP in `rtc`, its UDP
/// on `udp`, messages to and from the bridge. Ends when the page goes (the
/// channel closes, ICE disconnects, or it never opens), dropping `from`,
/// which ends the bridge.
async fn drive(
    mut rtc: Rtc,
    udp: UdpSocket,
    from: mpsc::Sender<FromPage>,
    mut to: mpsc::Receiver<ToPage>,
) {
    let Ok(local) = udp.local_addr() else { return };
    let mut channel: Option<ChannelId> = None;
    // What the bridge said before the channel opened (its `bound`).
    let mut early: VecDeque<ToPage> = VecDeque::new();
    let opened_by = Instant::now() + OPEN_WITHIN;
    let mut buf = vec![0u8; 2048];
    loop {
        let timeout = loop {
            match rtc.poll_output() {
                Ok(Output::Timeout(t)) => break t,
                Ok(Output::Transmit(t)) => {
                    let _ = udp.send_to(&t.contents, t.destination).await;
                }
                Ok(Output::Event(e)) => match e {
                    Event::ChannelOpen(id, _) => {
                        channel = Some(id);
                        while let Some(m) = early.pop_front() {
                            write(&mut rtc, channel, m);
                        }
                    }
                    Event::ChannelData(d) => {
                        let m = if d.binary {
                            FromPage::Datagram(d.data)
                        } else {
                            FromPage::Control(String::from_utf8_lossy(&d.data).into_owned())
                        };
                        // A bridge that is behind loses this message, as
                        // the network would lose it.
                        let _ = from.try_send(m);
                    }
                    Event::ChannelClose(_)
                    | Event::IceConnectionStateChange(IceConnectionState::Disconnected) => {
                        return;
                    }
                    _ => {}
                },
                Err(e) => {
                    tracing::debug!(error = %e, "browser WebRTC endpoint failed");
                    return;
                }
            }
        };
        if !rtc.is_alive() || (channel.is_none() && Instant::now() > opened_by) {
            return;
        }
        let timeout = timeout.min(Instant::now() + Duration::from_secs(1));
        tokio::select! {
            got = udp.recv_from(&mut buf) => {
                if let Ok((n, source)) = got {
                    if let Ok(r) = Receive::new(Protocol::Udp, source, local, &buf[..n]) {
                        if let Err(e) = rtc.handle_input(Input::Receive(Instant::now(), r)) {
                            tracing::debug!(error = %e, %source, "browser WebRTC datagram refused");
                        }
                    }
                }
            }
            m = to.recv() => match m {
                Some(ToPage::Close) | None => {
                    rtc.disconnect();
                    return;
                }
                Some(m) if channel.is_none() => early.push_back(m),
                Some(m) => write(&mut rtc, channel, m),
            },
            () = tokio::time::sleep_until(tokio::time::Instant::from_std(timeout)) => {
                let _ = rtc.handle_input(Input::Timeout(Instant::now()));
            }
        }
    }
}

fn write(rtc: &mut Rtc, channel: Option<ChannelId>, m: ToPage) {
    let Some(mut ch) = channel.and_then(|id| rtc.channel(id)) else {
        return;
    };
    let _ = match m {
        ToPage::Datagram(d) => ch.write(true, &d),
        ToPage::Text(t) => ch.write(false, t.as_bytes()),
        ToPage::Close => Ok(false),
    };
}

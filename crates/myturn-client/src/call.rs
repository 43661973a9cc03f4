//! One user's whole flow: registration, SIP, ready, paired, the call (SIP
//! through the PBX, then the media handshake), audio and chat, hang-up.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use myturn_media::driver::{self as media, MediaHandle};
use myturn_media::keys::{fingerprint_b64, parse_fingerprint_b64, EphemeralKey, PairId, Role};
use myturn_media::session::{Config as MediaConfig, Event as MediaEvent, Session};
use myturn_sip::driver::{self as sip, SipHandle};
use myturn_sip::sdp::Sdp;
use myturn_sip::ua::{CallHandle, Config as SipConfig, EndedBy, Event as SipEvent};
use myturn_wire::{PeerResponse, Role as WireRole, Status};
use rand_core::{OsRng, RngCore};
use tokio::sync::mpsc;

use crate::api::Api;
use crate::tls::Trust;
use crate::{ClientError, PbxError};

/// What the flow reports while it runs (the UI's feed).
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    /// Registered with the pairing server.
    Registered {
        /// The nickname, as registered.
        name: String,
        /// This user's extension.
        extension: String,
    },
    /// Registered with the PBX over SIP.
    SipRegistered,
    /// `ready`: waiting for a partner.
    Waiting,
    /// Paired with a partner.
    Paired {
        /// The partner's nickname.
        peer: String,
        /// This side's role in the call.
        role: WireRole,
    },
    /// The partner's phone rings (caller).
    Ringing,
    /// The call is up and the secure channel agreed.
    Connected {
        /// The short authentication string, to compare aloud.
        sas: String,
    },
    /// A chat line over the call.
    Chat {
        /// Who said it.
        from: String,
        /// What.
        text: String,
    },
    /// A lobby chat line, while waiting.
    Lobby {
        /// Who said it (`moderator` for admins).
        from: String,
        /// What.
        text: String,
    },
    /// The call ended.
    Ended {
        /// This side hung up (else the partner did).
        by_us: bool,
    },
    /// The partner did not make it to a call (left, never answered): the
    /// flow draws again by itself.
    Redraw {
        /// Why, for the user.
        why: String,
    },
    /// The server went away (its event stream closed); the flow registers
    /// again once it is back.
    ServerLost,
    /// Registered again after the server came back.
    Reconnected,
}

/// A call in progress: SIP call, media session, who and how.
#[derive(Debug)]
pub struct Call {
    /// This agent's handle on the SIP call.
    pub sip_call: CallHandle,
    /// The SIP Call-ID (the same on both sides of the PBX's dialog).
    pub sip_call_id: String,
    /// The partner, as the pairing server paired them.
    pub peer: PeerResponse,
    /// The encrypted media session: send audio and chat, read events.
    pub media: MediaHandle,
    /// The short authentication string, to compare aloud.
    pub sas: String,
    /// The audio sample rate agreed in SDP.
    pub rate: u32,
    /// From `ready` to paired, in milliseconds.
    pub pairing_ms: f64,
    /// From paired to the SIP call answered, in milliseconds.
    pub setup_ms: f64,
    /// The key agreement, in milliseconds.
    pub handshake_ms: f64,
}

/// What a SIP event means for the call in progress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CallSignal {
    /// Not about this call, or nothing to do.
    Nothing,
    /// The partner's side moved or renumbered the media; the media session
    /// now sends there.
    MediaMoved,
    /// The partner hung up.
    EndedByPeer,
    /// The SIP session timer ran out (the PBX stopped refreshing): the
    /// agent sent a BYE; the signalling path is gone.
    SignallingLost,
}

impl Call {
    /// Applies a SIP event to this call: a re-INVITE or UPDATE with new SDP
    /// moves the media (Asterisk does this when it re-anchors RTP), a BYE
    /// ends it. The keys never change: they bind nothing SIP carries.
    pub async fn on_sip(&self, ev: &SipEvent) -> CallSignal {
        match ev {
            SipEvent::RemoteMediaChanged { call, sdp } if *call == self.sip_call => {
                tracing::info!(media = %sdp.media, payload_type = sdp.payload_type, "remote media changed");
                if self
                    .media
                    .retarget(sdp.media, sdp.payload_type)
                    .await
                    .is_ok()
                {
                    CallSignal::MediaMoved
                } else {
                    CallSignal::Nothing
                }
            }
            SipEvent::CallEnded {
                call,
                by: EndedBy::Remote,
            } if *call == self.sip_call => CallSignal::EndedByPeer,
            SipEvent::CallEnded {
                call,
                by: EndedBy::SessionExpired,
            } if *call == self.sip_call => CallSignal::SignallingLost,
            _ => CallSignal::Nothing,
        }
    }
}

/// REGISTERs, retrying a refusal with backoff for [`REGISTER_GRACE`]: with
/// an external PBX the account may not be loaded yet.
async fn register_with_retry(sip: &mut SipHandle, pbx: SocketAddr) -> Result<(), ClientError> {
    let t0 = Instant::now();
    let mut pause = REGISTER_BACKOFF;
    loop {
        sip.register().await?;
        let mut skipped = Vec::new();
        let r = sip
            .wait_for(Duration::from_secs(10), &mut skipped, |e| match e {
                SipEvent::Registered { .. } => Some(Ok(())),
                SipEvent::RegistrationFailed { code, reason } => Some(Err((*code, reason.clone()))),
                _ => None,
            })
            .await;
        match r {
            Some(Ok(())) => return Ok(()),
            Some(Err((code, reason))) if t0.elapsed() + pause < REGISTER_GRACE => {
                tracing::info!(
                    code,
                    %reason,
                    retry_in_ms = pause.as_millis() as u64,
                    "SIP registration refused; the PBX may not know the account yet, retrying"
                );
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(2));
            }
            Some(Err((code, reason))) => {
                return Err(PbxError::RegistrationRefused {
                    code,
                    reason,
                    secs: t0.elapsed().as_secs(),
                }
                .into())
            }
            None => return Err(PbxError::NoAnswer(pbx).into()),
        }
    }
}

/// The local address this host uses to reach `pbx`: what the SIP and
/// media sockets bind when no address is given (an unspecified `bind_ip`).
/// A connected UDP socket sends nothing; the kernel only picks the route.
async fn route_to(pbx: SocketAddr) -> Result<IpAddr, ClientError> {
    let any: IpAddr = if pbx.is_ipv4() {
        std::net::Ipv4Addr::UNSPECIFIED.into()
    } else {
        std::net::Ipv6Addr::UNSPECIFIED.into()
    };
    let probe = tokio::net::UdpSocket::bind((any, 0))
        .await
        .map_err(|e| ClientError::io("route to the PBX", e))?;
    probe
        .connect(pbx)
        .await
        .map_err(|e| ClientError::io(format!("no route to the PBX at {pbx}"), e))?;
    let ip = probe.local_addr()?.ip();
    tracing::info!(%pbx, local = %ip, "bound to the address of the route to the PBX");
    Ok(ip)
}

/// A registered user with a registered SIP agent.
#[derive(Debug)]
pub struct Client {
    /// The session with the pairing server.
    pub api: Api,
    /// The SIP agent, registered with the PBX.
    pub sip: SipHandle,
    /// The local address of the SIP and media sockets.
    pub bind_ip: IpAddr,
    /// The audio sample rate offered.
    pub rate: u32,
    /// Silence from the partner that ends a call (default 5 s).
    pub peer_timeout: Duration,
    /// How long each step of setting a call up may wait on the partner
    /// (getting ready, the INVITE, the answer); past it the flow draws
    /// another partner (default 10 s).
    pub answer_timeout: Duration,
    progress: Option<mpsc::UnboundedSender<Progress>>,
    _keep_alive: AbortOnDrop,
    /// How it connected: what a reconnect does again.
    config: ClientConfig,
    /// The SIP call being set up, to cancel if the set-up is abandoned.
    pending_sip: Option<CallHandle>,
    /// The event stream closed unasked: reconnect.
    lost: bool,
    /// Kicked or banned: never reconnect.
    removed: bool,
    /// The server's event stream (pushes and the lobby), when it opened.
    pub(crate) events: Option<crate::events::Events>,
}

/// A background task that ends with its owner.
#[derive(Debug)]
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// The partner the server drew for this user, checked.
struct Partner {
    peer: PeerResponse,
    pair_id: PairId,
    /// The media key fingerprint the pairing server vouched for.
    fingerprint: Option<[u8; 32]>,
}

impl Partner {
    /// The SDP key must be the one the pairing server vouched for.
    fn check_vouched_key(&self, remote: &Sdp) -> Result<(), ClientError> {
        match (&self.peer.peer.media_key, &remote.key) {
            (Some(want), Some(got)) if want != got => Err(ClientError::Protocol(
                "the partner's SDP key differs from the paired one".into(),
            )),
            _ => Ok(()),
        }
    }
}

/// The SIP call once answered: its handle, its Call-ID and the partner's
/// SDP.
struct Dialog {
    call: CallHandle,
    sip_call_id: String,
    remote: Sdp,
}

/// This side of the media: where it listens, at what rate, with which
/// key; what goes into its SDP.
struct OurMedia<'a> {
    addr: SocketAddr,
    rate: u32,
    fingerprint: &'a str,
}

impl OurMedia<'_> {
    /// This side's SDP: an answer to `offer`, or an offer at `rate`.
    fn sdp(&self, offer: Option<&Sdp>) -> String {
        let key = Some(self.fingerprint.to_owned());
        let s = match offer {
            Some(o) => Sdp::answer(o, self.addr, key, OsRng.next_u64() >> 1),
            None => Sdp::new(self.addr, self.rate, key, OsRng.next_u64() >> 1),
        };
        s.render()
    }
}

/// The default for [`Client::answer_timeout`].
pub const DEFAULT_ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Redraws in a row after set-up failures that were not the server saying
/// the partner left (timeouts, PBX refusals), before giving up: a network
/// that fails every call should say so, not retry forever.
const MAX_REDRAWS: u32 = 3;
/// Bound on the key agreement once the call is up.
const HANDSHAKE: Duration = Duration::from_secs(20);
/// How long a refused first REGISTER is retried: an external PBX (Asterisk)
/// learns a new account only after its configuration reload, so the first
/// attempts may meet "wrong password" for a moment.
const REGISTER_GRACE: Duration = Duration::from_secs(8);
/// First pause between those retries (doubling, at most 2 s).
const REGISTER_BACKOFF: Duration = Duration::from_millis(250);
/// Well inside the server's default 30 s lease.
const KEEP_ALIVE: Duration = Duration::from_secs(8);

/// How a [`Client`] connects: to which server, trusting whom, from which
/// local address, at which audio rate, saying "still here" how often.
#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// The pairing server's URL (`https://…`, or `http://…` on a trusted
    /// network).
    pub server: String,
    /// Whom to trust for TLS: the web's roots, plus `--ca-cert`.
    pub trust: Trust,
    /// The local address of the SIP and media sockets; unspecified
    /// (`0.0.0.0`): the local address of the route to the PBX.
    pub bind: IpAddr,
    /// The audio sample rate offered.
    pub rate: u32,
    /// How often to say "still here" to the server (shorter than its
    /// `--lease`).
    pub keep_alive: Duration,
}

impl ClientConfig {
    /// The server at `server`, trusting the web's roots, sockets bound to
    /// `bind`, audio at `rate`, the default keep-alive.
    pub fn new(server: &str, bind: IpAddr, rate: u32) -> ClientConfig {
        ClientConfig {
            server: server.to_owned(),
            trust: Trust::default(),
            bind,
            rate,
            keep_alive: KEEP_ALIVE,
        }
    }
}

impl Client {
    /// Registers `name` with the server at `base`, then registers over SIP
    /// with the credentials it handed out. An unspecified `bind_ip`
    /// (`0.0.0.0`) means the local address of the route to the PBX. TLS
    /// trusts the web's roots; [`Client::connect_with`] takes a
    /// [`ClientConfig`].
    pub async fn connect(
        base: &str,
        name: &str,
        bind_ip: IpAddr,
        rate: u32,
        progress: Option<mpsc::UnboundedSender<Progress>>,
    ) -> Result<Client, ClientError> {
        Self::connect_with(ClientConfig::new(base, bind_ip, rate), name, progress).await
    }

    /// [`Client::connect`], saying "still here" to the server every
    /// `keep_alive` (it must be shorter than the server's `--lease`).
    pub async fn connect_with_keep_alive(
        base: &str,
        name: &str,
        bind_ip: IpAddr,
        rate: u32,
        progress: Option<mpsc::UnboundedSender<Progress>>,
        keep_alive: Duration,
    ) -> Result<Client, ClientError> {
        let config = ClientConfig {
            keep_alive,
            ..ClientConfig::new(base, bind_ip, rate)
        };
        Self::connect_with(config, name, progress).await
    }

    /// Registers `name` as `config` says, then registers over SIP with the
    /// credentials the server handed out.
    pub async fn connect_with(
        config: ClientConfig,
        name: &str,
        progress: Option<mpsc::UnboundedSender<Progress>>,
    ) -> Result<Client, ClientError> {
        let (api, sip, keep_alive_task, events, bind_ip) =
            Self::attach(&config, name, config.bind, progress.as_ref()).await?;
        Ok(Client {
            api,
            sip,
            bind_ip,
            rate: config.rate,
            peer_timeout: myturn_media::session::DEFAULT_PEER_TIMEOUT,
            answer_timeout: DEFAULT_ANSWER_TIMEOUT,
            progress,
            _keep_alive: keep_alive_task,
            config,
            pending_sip: None,
            lost: false,
            removed: false,
            events,
        })
    }

    /// Registration over HTTP and SIP, the keep-alive and the event stream:
    /// what connecting and reconnecting share.
    async fn attach(
        config: &ClientConfig,
        name: &str,
        bind_ip: IpAddr,
        progress: Option<&mpsc::UnboundedSender<Progress>>,
    ) -> Result<
        (
            Api,
            SipHandle,
            AbortOnDrop,
            Option<crate::events::Events>,
            IpAddr,
        ),
        ClientError,
    > {
        let api = Api::register_trusting(&config.trust, &config.server, name).await?;
        let tell = |p| {
            if let Some(tx) = progress {
                let _ = tx.send(p);
            }
        };
        tell(Progress::Registered {
            name: api.user.name.clone(),
            extension: api.user.sip.extension.clone(),
        });
        // `HOST:PORT`, or `HOST:PORT;transport=tls` when the PBX wants SIP
        // over TLS.
        let (domain, tls) = match api.user.sip.domain.split_once(';') {
            Some((d, params)) => (
                d.to_owned(),
                params
                    .split(';')
                    .any(|p| p.trim().eq_ignore_ascii_case("transport=tls")),
            ),
            None => (api.user.sip.domain.clone(), false),
        };
        let domain = &domain;
        let pbx: SocketAddr = domain
            .parse()
            .or_else(|_| format!("{domain}:{}", if tls { 5061 } else { 5060 }).parse())
            .map_err(|_| {
                ClientError::Protocol(format!("SIP domain `{domain}` is not an address"))
            })?;
        let bind_ip = if bind_ip.is_unspecified() {
            route_to(pbx).await?
        } else {
            bind_ip
        };
        let socket = tokio::net::UdpSocket::bind((bind_ip, 0))
            .await
            .map_err(|e| ClientError::io("SIP socket", e))?;
        let local = socket.local_addr()?;
        let mut cfg = SipConfig::new(local, pbx, &api.user.sip.username, &api.user.sip.password);
        cfg.domain = domain.clone();
        let mut sip = if tls {
            // The PBX shows the API's certificate: check it for the API's name.
            drop(socket);
            let name = rustls::pki_types::ServerName::try_from(api.host()).map_err(|_| {
                ClientError::Protocol(format!("`{}` is not a host name", api.host()))
            })?;
            let target = sip::TlsTarget {
                proxy: pbx,
                name,
                connector: tokio_rustls::TlsConnector::from(api.trust().client_config()),
            };
            tracing::info!(%pbx, "SIP over TLS");
            sip::start_tls(target, cfg, Box::new(OsRng))
                .await
                .map_err(|e| match crate::tls::explain(&e) {
                    Some(why) => ClientError::Tls {
                        why,
                        source: e.into(),
                    },
                    None => PbxError::TlsUnreachable { pbx, source: e }.into(),
                })?
        } else {
            sip::start(socket, cfg, Box::new(OsRng))?
        };
        register_with_retry(&mut sip, pbx).await?;
        tell(Progress::SipRegistered);
        let keep_alive = AbortOnDrop(tokio::spawn(api.clone().keep_alive(config.keep_alive)));
        // Best effort: without it the flow polls, and there is no lobby.
        let events = match crate::events::Events::connect(&api).await {
            Ok(e) => Some(e),
            Err(e) => {
                tracing::warn!(error = %e, "no event stream: polling instead");
                None
            }
        };
        Ok((api, sip, keep_alive, events, bind_ip))
    }

    /// The event stream is back on the same session.
    fn reopened(&mut self, events: crate::events::Events) {
        self.events = Some(events);
        self.lost = false;
        tracing::info!("event stream reopened");
        self.tell(Progress::Reconnected);
    }

    /// A moderator removed this user (kicked or banned): the closing
    /// stream is not reconnected, and the user is not registered again.
    pub fn removed(&mut self) {
        self.removed = true;
        self.lost = false;
    }

    /// Whether a moderator removed this user (see [`Client::removed`]).
    pub fn is_removed(&self) -> bool {
        self.removed
    }

    /// Whether the event stream was lost and [`Client::reconnect`] should
    /// be tried.
    pub fn needs_reconnect(&self) -> bool {
        self.lost
    }

    /// Notes that the event stream closed (the server restarted, or the
    /// network dropped): [`Client::reconnect`] brings it back.
    pub fn lost_server(&mut self) {
        if self.events.take().is_some() && !self.removed {
            tracing::warn!("the server's event stream closed; reconnecting");
            self.lost = true;
            self.tell(Progress::ServerLost);
        }
    }

    /// Brings the event stream back after [`Client::lost_server`]. If the
    /// server still knows this session, only the stream reopens. If it
    /// does not (it restarted: users live in memory), and `may_re_register`
    /// (not in a call, whose SIP dialog lives on the current agent), the
    /// user registers again under the same name, with new SIP credentials
    /// and a new SIP agent. `Ok(false)`: not yet (unreachable, or in a
    /// call); try again later.
    pub async fn reconnect(&mut self, may_re_register: bool) -> Result<bool, ClientError> {
        if !self.lost {
            return Ok(true);
        }
        match crate::events::Events::connect(&self.api).await {
            Ok(e) => {
                self.reopened(e);
                return Ok(true);
            }
            Err(why @ ClientError::Unreachable { .. }) => {
                tracing::debug!(%why, "server still unreachable");
                return Ok(false);
            }
            Err(e) => {
                // Maybe only the access token lapsed: refresh and retry.
                if self.api.refresh().await.is_ok() {
                    if let Ok(e) = crate::events::Events::connect(&self.api).await {
                        self.reopened(e);
                        return Ok(true);
                    }
                }
                tracing::info!(error = %e, "the server no longer knows this session");
            }
        }
        if !may_re_register {
            return Ok(false);
        }
        let name = self.api.user.name.clone();
        let (api, sip, keep_alive, events, bind_ip) =
            match Self::attach(&self.config, &name, self.bind_ip, self.progress.as_ref()).await {
                Ok(parts) => parts,
                Err(why @ ClientError::Unreachable { .. }) => {
                    tracing::debug!(%why, "server still unreachable");
                    return Ok(false);
                }
                Err(e) => return Err(e),
            };
        let old = std::mem::replace(&mut self.sip, sip);
        // The old agent's registration died with the server's accounts.
        tokio::spawn(old.shutdown(Duration::from_millis(500)));
        self.api = api;
        self.bind_ip = bind_ip;
        self._keep_alive = keep_alive;
        self.events = events;
        self.lost = false;
        tracing::info!(name = %self.api.user.name, extension = %self.api.user.sip.extension, "registered again after the server came back");
        self.tell(Progress::Reconnected);
        Ok(true)
    }

    /// Speaks in the lobby, usable while the flow waits for a partner.
    pub fn lobby_sender(&self) -> Option<crate::events::LobbySender> {
        self.events.as_ref().map(|e| e.sender())
    }

    /// Waits up to `d` for a pushed event, forwarding lobby lines; returns
    /// whether `peer_ready_to_talk` came, or `PeerLeft` if the pair ended.
    async fn wait_event(&mut self, d: Duration) -> Result<bool, ClientError> {
        let Some(ev) = self.events.as_mut() else {
            tokio::time::sleep(d).await;
            return Ok(false);
        };
        let end = tokio::time::Instant::now() + d;
        loop {
            match tokio::time::timeout_at(end, ev.incoming.recv()).await {
                Ok(Some(myturn_wire::ServerEvent::PeerReadyToTalk)) => return Ok(true),
                Ok(Some(myturn_wire::ServerEvent::PeerLeft { reason })) => {
                    tracing::info!(?reason, "the partner left before the call");
                    return Err(ClientError::PeerLeft);
                }
                Ok(Some(myturn_wire::ServerEvent::LobbyMessage { from, text, .. })) => {
                    if let Some(tx) = &self.progress {
                        let _ = tx.send(Progress::Lobby { from, text });
                    }
                }
                Ok(Some(_)) => {}
                Ok(None) => {
                    self.lost_server();
                    return Ok(false);
                }
                Err(_) => return Ok(false),
            }
        }
    }

    /// [`SipHandle::wait_for`], ended early by the server's `peer_left`
    /// push (the partner logged out, was kicked, or its client vanished):
    /// nobody waits 20 s for a call that will never come. Lobby lines are
    /// forwarded meanwhile.
    async fn sip_or_left<T>(
        &mut self,
        timeout: Duration,
        skipped: &mut Vec<SipEvent>,
        mut f: impl FnMut(&SipEvent) -> Option<T>,
    ) -> Option<Result<T, ClientError>> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                ev = self.sip.events.recv() => {
                    let ev = ev?;
                    if let Some(t) = f(&ev) {
                        return Some(Ok(t));
                    }
                    skipped.push(ev);
                }
                push = crate::events::next_push(&mut self.events) => match push {
                    Some(myturn_wire::ServerEvent::PeerLeft { reason }) => {
                        tracing::info!(?reason, "the partner left while the call was set up");
                        return Some(Err(ClientError::PeerLeft));
                    }
                    Some(myturn_wire::ServerEvent::LobbyMessage { from, text, .. }) => {
                        self.tell(Progress::Lobby { from, text });
                    }
                    Some(_) => {}
                    None => self.lost_server(),
                },
                _ = tokio::time::sleep_until(deadline) => return None,
            }
        }
    }

    fn tell(&self, p: Progress) {
        if let Some(tx) = &self.progress {
            let _ = tx.send(p);
        }
    }

    /// Says "I'm ready", waits to be paired, sets up the call (callee
    /// answers, caller dials) and the secure media channel.
    ///
    /// When the partner does not make it (the server says it left or
    /// never answered, it does not call or answer within
    /// [`Client::answer_timeout`]), the half-made call is cancelled and the
    /// flow draws again by itself: the user asked for a partner
    /// ([`Progress::Redraw`] says why). Other failures (and
    /// `MAX_REDRAWS` partner timeouts in a row) leave this user `busy`,
    /// not `paired`: the server must not keep a pair nobody is calling in.
    ///
    /// Dropping the future abandons the wait; call [`Client::abandon`]
    /// then, to cancel a half-made call and go `busy`.
    pub async fn ready_and_call(&mut self) -> Result<Call, ClientError> {
        let mut timeouts = 0;
        loop {
            let e = match self.set_up_call().await {
                Ok(call) => {
                    // Handed over: from now on the caller of this function
                    // owns the SIP call.
                    self.pending_sip = None;
                    return Ok(call);
                }
                Err(e) => e,
            };
            // The one failure path: whatever step failed, a half-made SIP
            // call is cancelled (CANCEL or BYE) here, and only here.
            self.cancel_pending().await;
            let redraw = match &e {
                ClientError::PeerLeft => true,
                ClientError::Timeout(_) | ClientError::Pbx(_) => {
                    timeouts += 1;
                    timeouts < MAX_REDRAWS
                }
                _ => false,
            };
            if !redraw {
                tracing::info!(error = %e, "no call: back to busy");
                let _ = self
                    .api
                    .status(myturn_wire::RequestedStatus::Busy, None)
                    .await;
                return Err(e);
            }
            tracing::info!(error = %e, "the partner did not make it: drawing again");
            self.tell(Progress::Redraw { why: e.to_string() });
        }
    }

    /// Cancels a call being set up (CANCEL or BYE) and goes `busy`: for an
    /// interface that dropped [`Client::ready_and_call`] (the user stopped
    /// waiting, or quit).
    pub async fn abandon(&mut self) {
        self.cancel_pending().await;
        let _ = self
            .api
            .status(myturn_wire::RequestedStatus::Busy, None)
            .await;
    }

    async fn cancel_pending(&mut self) {
        if let Some(call) = self.pending_sip.take() {
            let _ = self.sip.hangup(call).await;
        }
    }

    /// One attempt at a call, as named steps. A step that fails returns
    /// its error and leaves any SIP call it made in `pending_sip`, for
    /// [`Client::ready_and_call`] to cancel.
    async fn set_up_call(&mut self) -> Result<Call, ClientError> {
        let key = EphemeralKey::generate(&mut OsRng);
        let fp = fingerprint_b64(&key.public());
        let t_ready = Instant::now();
        self.announce_ready(&fp).await?;
        let partner = self.await_partner().await?;
        let pairing_ms = t_ready.elapsed().as_secs_f64() * 1e3;
        let media_socket = tokio::net::UdpSocket::bind((self.bind_ip, 0))
            .await
            .map_err(|e| ClientError::io("media socket", e))?;
        let media_addr = media_socket.local_addr()?;
        let t_setup = Instant::now();
        let mut skipped = Vec::new();
        let ours = OurMedia {
            addr: media_addr,
            rate: self.rate,
            fingerprint: &fp,
        };
        let dialog = self
            .dial_or_answer(&partner.peer, &ours, &mut skipped)
            .await?;
        let setup_ms = t_setup.elapsed().as_secs_f64() * 1e3;
        partner.check_vouched_key(&dialog.remote)?;
        let t_hs = Instant::now();
        let (media, sas) = self
            .agree_key(&partner, &dialog, key, media_socket, skipped)
            .await?;
        let handshake_ms = t_hs.elapsed().as_secs_f64() * 1e3;
        tracing::info!(
            sip_call_id = %dialog.sip_call_id,
            pair_id = %partner.pair_id,
            peer = %partner.peer.peer.name,
            remote_media = %dialog.remote.media,
            payload_type = dialog.remote.payload_type,
            "call connected"
        );
        self.tell(Progress::Connected { sas: sas.clone() });
        Ok(Call {
            sip_call: dialog.call,
            sip_call_id: dialog.sip_call_id,
            peer: partner.peer,
            media,
            sas,
            rate: dialog.remote.rate,
            pairing_ms,
            setup_ms,
            handshake_ms,
        })
    }

    /// `ready`, with the fingerprint of this call's media key.
    async fn announce_ready(&mut self, fingerprint: &str) -> Result<(), ClientError> {
        self.api
            .status(myturn_wire::RequestedStatus::Ready, Some(fingerprint))
            .await?;
        self.tell(Progress::Waiting);
        Ok(())
    }

    /// Long-polls for the partner, relaying the lobby chat meanwhile.
    async fn await_partner(&mut self) -> Result<Partner, ClientError> {
        let peer = loop {
            let api = self.api.clone();
            let poll = api.peer(15);
            tokio::pin!(poll);
            let got = loop {
                tokio::select! {
                    r = &mut poll => break r?,
                    _ = self.wait_event(Duration::from_secs(3600)), if self.events.is_some() => {}
                }
            };
            if let Some(p) = got {
                break p;
            }
        };
        let pair_id = PairId::from_hex(&peer.pair_id).ok_or_else(|| {
            ClientError::Protocol(format!("bad pair id `{}` from the server", peer.pair_id))
        })?;
        self.tell(Progress::Paired {
            peer: peer.peer.name.clone(),
            role: peer.role,
        });
        let fingerprint = match &peer.peer.media_key {
            Some(k) => Some(
                parse_fingerprint_b64(k)
                    .ok_or_else(|| ClientError::Protocol("bad peer media key".into()))?,
            ),
            None => None,
        };
        Ok(Partner {
            peer,
            pair_id,
            fingerprint,
        })
    }

    /// The SIP call: the callee answers the partner's INVITE, the caller
    /// dials once the partner listens.
    async fn dial_or_answer(
        &mut self,
        peer: &PeerResponse,
        ours: &OurMedia<'_>,
        skipped: &mut Vec<SipEvent>,
    ) -> Result<Dialog, ClientError> {
        if peer.role == WireRole::Caller {
            self.await_partner_listening().await?;
        }
        self.api
            .status(myturn_wire::RequestedStatus::ReadyToTalk, None)
            .await?;
        match peer.role {
            WireRole::Callee => self.answer_partner(ours, skipped).await,
            WireRole::Caller => self.dial_partner(peer, ours, skipped).await,
        }
    }

    /// Callee: answers the partner's INVITE.
    async fn answer_partner(
        &mut self,
        ours: &OurMedia<'_>,
        skipped: &mut Vec<SipEvent>,
    ) -> Result<Dialog, ClientError> {
        let (call, sip_call_id, offer) = self
            .sip_or_left(self.answer_timeout, skipped, |e| match e {
                SipEvent::IncomingCall {
                    call,
                    sip_call_id,
                    offer,
                    ..
                } => Some((*call, sip_call_id.clone(), offer.clone())),
                _ => None,
            })
            .await
            .ok_or(ClientError::Timeout("the partner's call"))??;
        self.pending_sip = Some(call);
        let offer = offer.ok_or_else(|| ClientError::Protocol("INVITE without SDP".into()))?;
        self.sip.answer(call, &ours.sdp(Some(&offer))).await?;
        Ok(Dialog {
            call,
            sip_call_id,
            remote: offer,
        })
    }

    /// Caller: waits until the callee listens. Its status says so, pushed
    /// as `peer_ready_to_talk` (checked again every 500 ms in case the
    /// push came before we looked, or there is no event stream).
    async fn await_partner_listening(&mut self) -> Result<(), ClientError> {
        let t0 = Instant::now();
        loop {
            let p = match self.api.peer(0).await {
                Ok(Some(p)) => p,
                // The pair ended meanwhile (this user is back to busy, or
                // waiting again).
                Ok(None) | Err(ClientError::Server { status: 409, .. }) => {
                    return Err(ClientError::PeerLeft)
                }
                Err(e) => return Err(e),
            };
            if matches!(p.peer_status, Status::ReadyToTalk | Status::InCall) {
                return Ok(());
            }
            if t0.elapsed() > self.answer_timeout {
                return Err(ClientError::Timeout("the partner to get ready"));
            }
            self.wait_event(Duration::from_millis(500)).await?;
        }
    }

    /// Caller: dials the partner's extension and waits for the answer.
    async fn dial_partner(
        &mut self,
        peer: &PeerResponse,
        ours: &OurMedia<'_>,
        skipped: &mut Vec<SipEvent>,
    ) -> Result<Dialog, ClientError> {
        let call = self
            .sip
            .invite(&peer.peer.extension, &ours.sdp(None))
            .await?;
        self.pending_sip = Some(call);
        let progress = self.progress.clone();
        let (answer, sip_call_id) = self
            .sip_or_left(self.answer_timeout, skipped, |e| match e {
                SipEvent::Ringing { call: c } if *c == call => {
                    if let Some(tx) = &progress {
                        let _ = tx.send(Progress::Ringing);
                    }
                    None
                }
                SipEvent::Answered {
                    call: c,
                    answer,
                    sip_call_id,
                } if *c == call => Some(Ok((answer.clone(), sip_call_id.clone()))),
                SipEvent::CallFailed {
                    call: c,
                    code,
                    reason,
                } if *c == call => Some(Err(ClientError::from(PbxError::CallFailed {
                    code: *code,
                    reason: reason.clone(),
                }))),
                _ => None,
            })
            .await
            // Gone before answering, or never answered: the caller of
            // `set_up_call` cancels.
            .ok_or(ClientError::Timeout("the partner to answer"))???;
        let remote = answer.ok_or_else(|| ClientError::Protocol("answer without SDP".into()))?;
        Ok(Dialog {
            call,
            sip_call_id,
            remote,
        })
    }

    /// Starts the media session on the partner's address and runs the key
    /// agreement, bounded by [`HANDSHAKE`], applying media moves meanwhile.
    async fn agree_key(
        &mut self,
        partner: &Partner,
        dialog: &Dialog,
        key: EphemeralKey,
        socket: tokio::net::UdpSocket,
        skipped: Vec<SipEvent>,
    ) -> Result<(MediaHandle, String), ClientError> {
        let cfg = MediaConfig {
            role: match partner.peer.role {
                WireRole::Caller => Role::Initiator,
                WireRole::Callee => Role::Responder,
            },
            pair_id: partner.pair_id,
            peer_fingerprint: partner.fingerprint,
            payload_type: dialog.remote.payload_type,
            ssrc: OsRng.next_u32(),
            samples_per_frame: dialog.remote.rate / 50,
        };
        let mut session = Session::with_key(cfg, key, Box::new(OsRng), Instant::now());
        session.set_peer_timeout(self.peer_timeout);
        let mut media = media::start_session(socket, dialog.remote.media, session)?;
        let sip_call = dialog.call;
        // A re-INVITE or UPDATE that came while the call was set up (a
        // back-to-back agent moving its media anchor) applies first.
        if let Some(sdp) = skipped.into_iter().rev().find_map(|e| match e {
            SipEvent::RemoteMediaChanged { call, sdp } if call == sip_call => Some(sdp),
            _ => None,
        }) {
            let _ = media.retarget(sdp.media, sdp.payload_type).await;
        }
        let deadline = tokio::time::Instant::now() + HANDSHAKE;
        let sas = loop {
            tokio::select! {
                ev = media.events.recv() => match ev {
                    Some(MediaEvent::Established { sas, .. }) => break sas,
                    Some(MediaEvent::Failed(f)) => return Err(ClientError::Media(f)),
                    Some(_) => {}
                    None => return Err(ClientError::Timeout("the key agreement")),
                },
                ev = self.sip.events.recv() => match ev {
                    Some(SipEvent::RemoteMediaChanged { call, sdp }) if call == sip_call => {
                        let _ = media.retarget(sdp.media, sdp.payload_type).await;
                    }
                    Some(SipEvent::CallEnded { call, .. }) if call == sip_call => {
                        return Err(ClientError::PeerLeft);
                    }
                    _ => {}
                },
                _ = tokio::time::sleep_until(deadline) => {
                    return Err(ClientError::Timeout("the key agreement"));
                }
            }
        };
        Ok((media, sas))
    }

    /// Ends a call whose partner is gone (nothing heard for the peer
    /// timeout, or the server said it left): BYE without waiting for an
    /// answer that may never come, and back to `busy`.
    pub async fn end_dead(&mut self, call: &Call) -> Result<(), ClientError> {
        let _ = self.sip.hangup(call.sip_call).await;
        self.api
            .status(myturn_wire::RequestedStatus::Busy, None)
            .await
            .map(|_| ())
    }

    /// Hangs up (BYE) and goes back to `busy`.
    pub async fn hang_up(&mut self, call: &Call) -> Result<(), ClientError> {
        self.sip.hangup(call.sip_call).await?;
        let mut skipped = Vec::new();
        let id = call.sip_call;
        self.sip
            .wait_for(Duration::from_secs(5), &mut skipped, |e| match e {
                SipEvent::CallEnded { call, .. } if *call == id => Some(()),
                _ => None,
            })
            .await;
        self.tell(Progress::Ended { by_us: true });
        match self
            .api
            .status(myturn_wire::RequestedStatus::Busy, None)
            .await
        {
            // The server is gone or forgot us: nothing to tell it; the
            // reconnect registers afresh (and busy) anyway.
            Err(e) if self.lost => {
                tracing::debug!(error = %e, "not telling the lost server we are busy");
                Ok(())
            }
            r => r.map(|_| ()),
        }
    }

    /// Waits for the partner to hang up (up to `timeout`).
    pub async fn wait_hang_up(&mut self, call: &Call, timeout: Duration) -> bool {
        let mut skipped = Vec::new();
        let id = call.sip_call;
        let ended = self
            .sip
            .wait_for(timeout, &mut skipped, |e| match e {
                SipEvent::CallEnded {
                    call,
                    by: EndedBy::Remote,
                } if *call == id => Some(()),
                _ => None,
            })
            .await
            .is_some();
        if ended {
            self.tell(Progress::Ended { by_us: false });
        }
        ended
    }

    /// SIP unregister and `DELETE /v1/me`.
    pub async fn quit(self) -> Result<(), ClientError> {
        let api = self.api.clone();
        drop(self._keep_alive);
        let unregistered = self.sip.shutdown(Duration::from_secs(3)).await;
        api.logout().await?;
        if !unregistered {
            tracing::warn!("the PBX did not confirm the SIP unregistration");
        }
        Ok(())
    }
}

//! The sans-IO SIP user agent: registration, calls and dialogs on top of
//! the transactions in [`crate::transaction`].
//!
//! Drive it like quinn-proto: feed datagrams with
//! [`UserAgent::handle_datagram`] and expiries with
//! [`UserAgent::handle_timeout`], then drain [`UserAgent::poll_transmit`]
//! and [`UserAgent::poll_event`], and sleep until
//! [`UserAgent::poll_timeout`]. Commands ([`UserAgent::register`],
//! [`UserAgent::invite`], [`UserAgent::answer`], [`UserAgent::hangup`], …)
//! only queue work. Nothing here reads a clock, touches a socket or draws
//! randomness from anywhere but the RNG it was given.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use rand_core::RngCore;
use rsip::headers::{self as h, UntypedHeader};
use rsip::Header;

use crate::build::{self, token, Reply};
use crate::digest::{self, Challenge};
use crate::msg::{self, Message, Method, NameAddr};
use crate::sdp::Sdp;
use crate::server::{self, Arrival, ServerTransactions};
use crate::transaction::{ClientOutcome, ClientTx, TimerAction, Timers};

/// Methods this agent answers (the `Allow` header).
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, UPDATE, INFO";
/// The session timer option tag (RFC 4028).
const TIMER: &str = "timer";

/// Session timers (RFC 4028) as the side that never refreshes: a request
/// with `Session-Expires` gets it back with `refresher=uac`, so its sender
/// (a PBX such as Asterisk) keeps sending the refreshes, which this agent
/// answers like any re-INVITE or UPDATE. `Require: timer` goes back only
/// to a sender that supports timers; without it the sender still refreshes
/// (§7.1: the refresher is the side that supports the extension).
fn session_timer_headers(req: &Message) -> Vec<Header> {
    let Some(delta) = session_interval(req) else {
        return Vec::new();
    };
    let supports = ["Supported", "Require"].iter().any(|name| {
        req.headers(name)
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case(TIMER))
    });
    let mut out: Vec<Header> = vec![Header::Other(
        "Session-Expires".into(),
        format!("{delta};refresher=uac"),
    )];
    if supports {
        out.push(h::Require::new(TIMER).into());
    }
    out
}

/// The session interval a request asks for (`Session-Expires`, seconds).
fn session_interval(req: &Message) -> Option<u32> {
    req.header("Session-Expires")?
        .split(';')
        .next()
        .and_then(|d| d.trim().parse::<u32>().ok())
        .filter(|&d| d > 0)
}

/// When a session whose interval was just refreshed counts as dead if no
/// refresh came: RFC 4028 §10, the side that does not refresh sends a BYE
/// `min(32, interval / 3)` seconds before the session expires.
fn session_deadline(now: Instant, interval: u32) -> Instant {
    let d = Duration::from_secs(u64::from(interval));
    now + d - (d / 3).min(Duration::from_secs(32))
}

/// Answers an in-dialog offer: our current SDP with the offer's payload
/// type (a back-to-back agent may renumber it), the `o=` version raised
/// when the body changes. Refused when the offer has no L16 at our rate.
fn answer_refresh(current: Option<&str>, offer: &[u8]) -> Result<(String, Sdp), String> {
    let offer = Sdp::parse(offer).map_err(|e| e.to_string())?;
    let Some(mut mine) = current.and_then(|c| Sdp::parse(c.as_bytes()).ok()) else {
        return Err("no local session description yet".into());
    };
    if offer.rate != mine.rate {
        return Err(format!(
            "offer is L16/{} but the call runs at {} Hz",
            offer.rate, mine.rate
        ));
    }
    if offer.payload_type != mine.payload_type {
        mine.payload_type = offer.payload_type;
        mine.session.1 = mine.session.1.wrapping_add(1);
    }
    Ok((mine.render(), offer))
}

/// How the agent reaches the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Transport {
    /// Datagrams (RFC 3261 §18, RFC 3581).
    #[default]
    Udp,
    /// One TLS connection to the proxy that carries everything, requests
    /// to us included (RFC 3261 §26, RFC 5923 connection reuse): Via says
    /// `TLS`, the Contact `;transport=tls`.
    Tls,
}

impl Transport {
    /// `UDP` or `TLS`, as in a Via.
    pub fn via_name(self) -> &'static str {
        match self {
            Transport::Udp => "UDP",
            Transport::Tls => "TLS",
        }
    }
}

/// How the agent is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// The local UDP address (Via sent-by and, until a public one is
    /// learnt, the Contact).
    pub local: SocketAddr,
    /// The registrar / outbound proxy: every out-of-dialog request goes
    /// there (Asterisk, the built-in PBX, Kamailio).
    pub proxy: SocketAddr,
    /// The SIP domain: host part of the address of record and of the
    /// Request-URI for extensions.
    pub domain: String,
    /// User part of the address of record, also the digest username.
    pub username: String,
    /// The digest password.
    pub password: String,
    /// The display name in From.
    pub display_name: Option<String>,
    /// Requested registration lifetime, seconds.
    pub expires: u32,
    /// T1, T2 and T4.
    pub timers: Timers,
    /// The `User-Agent` header.
    pub user_agent: String,
    /// Larger datagrams are dropped.
    pub max_message_size: usize,
    /// While registered, an OPTIONS to the proxy this often keeps the NAT
    /// binding towards it open (RFC 5626 §4.4, RFC 3581); its answer's
    /// `received`/`rport` reveals a changed public address, which is then
    /// registered at once. `None`: no keep-alive.
    pub keepalive: Option<Duration>,
    /// UDP (default) or a TLS connection (its driver: [`crate::driver::start_tls`]).
    pub transport: Transport,
}

impl Config {
    /// Defaults for `username` with `password` at `local`, through `proxy` (also the domain).
    pub fn new(local: SocketAddr, proxy: SocketAddr, username: &str, password: &str) -> Self {
        Config {
            local,
            proxy,
            domain: proxy.ip().to_string(),
            username: username.to_owned(),
            password: password.to_owned(),
            display_name: None,
            expires: 300,
            timers: Timers::default(),
            user_agent: concat!("myTurn/", env!("CARGO_PKG_VERSION")).to_owned(),
            max_message_size: msg::DEFAULT_MAX_SIZE,
            // Below the 30 s a UDP mapping lives in Linux's conntrack and in
            // many home routers.
            keepalive: Some(Duration::from_secs(20)),
            transport: Transport::Udp,
        }
    }
}

pub use crate::Transmit;

/// A call, as the application names it: this agent's own handle, not the
/// SIP Call-ID (that one is the dialog's, and a back-to-back agent gives each
/// leg its own; see [`UserAgent::sip_call_id`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CallHandle(pub u64);

/// Who ended a call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EndedBy {
    /// This agent hung up.
    Local,
    /// The peer hung up (BYE, CANCEL).
    Remote,
    /// The session timer ran out: the refresher (the PBX) stopped
    /// refreshing, so the signalling path is gone; this agent sent a BYE.
    SessionExpired,
}

/// What the agent reports.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    /// The registrar accepted the binding for `expires`.
    Registered {
        /// The lifetime the registrar granted.
        expires: Duration,
        /// The address the registrar saw us at (`received`/`rport`), when
        /// it differs from the local one.
        public: Option<SocketAddr>,
    },
    /// The proxy sees us at a new public address (a NAT rebinding); the
    /// binding is being registered again with it.
    PublicAddressChanged {
        /// The address it saw before.
        from: SocketAddr,
        /// The address it sees now.
        to: SocketAddr,
    },
    /// Registration (or its refresh) failed; the agent retries a refresh
    /// in 30 s if it was registered before.
    RegistrationFailed {
        /// The final status (408 on timeout, 0 for a domain that is no URI).
        code: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// The binding was removed (`Expires: 0` answered).
    Unregistered,
    /// Someone calls us. Answer with [`UserAgent::answer`] or refuse with
    /// [`UserAgent::reject`].
    IncomingCall {
        /// The call's handle.
        call: CallHandle,
        /// The SIP Call-ID of the dialog.
        sip_call_id: String,
        /// The caller's user part (extension) and display name.
        from_user: String,
        /// The caller's display name.
        from_display: Option<String>,
        /// The SDP offer, when the INVITE had one.
        offer: Option<Sdp>,
    },
    /// 180/183 on our INVITE.
    Ringing {
        /// The call's handle.
        call: CallHandle,
    },
    /// Our INVITE was answered (2xx; ACK sent).
    Answered {
        /// The call's handle.
        call: CallHandle,
        /// The SIP Call-ID of the dialog.
        sip_call_id: String,
        /// The SDP answer in the 2xx.
        answer: Option<Sdp>,
    },
    /// The ACK for our 2xx arrived: media may flow both ways.
    Confirmed {
        /// The call's handle.
        call: CallHandle,
        /// The SDP in the ACK, if any.
        answer: Option<Sdp>,
    },
    /// Our INVITE failed: 404, 486, 603, 408 (timeout or no answer), ….
    CallFailed {
        /// The call's handle.
        call: CallHandle,
        /// The final status (408 on timeout).
        code: u16,
        /// Its reason phrase.
        reason: String,
    },
    /// A re-INVITE or UPDATE changed the remote media.
    RemoteMediaChanged {
        /// The call's handle.
        call: CallHandle,
        /// The peer's new session description.
        sdp: Sdp,
    },
    /// The call is over (BYE either way, CANCEL, or an unanswered 2xx).
    CallEnded {
        /// The call's handle.
        call: CallHandle,
        /// Who ended it.
        by: EndedBy,
    },
}

/// Counters an operator can read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Datagrams that were not SIP at all, or too large (dropped).
    pub dropped: u64,
    /// Malformed requests answered with 400/505/513.
    pub rejected: u64,
    /// Request retransmissions absorbed by server transactions.
    pub absorbed: u64,
    /// Responses matching no transaction nor dialog.
    pub stray_responses: u64,
    /// Our own retransmissions (timers A, E, G and 2xx).
    pub retransmissions: u64,
}

/// Errors of the command API.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UaError {
    #[error("no such call")]
    /// The handle names no call (or one already forgotten).
    NoSuchCall,
    #[error("the call is not in a state that allows this")]
    /// Not possible in the call's current state.
    WrongState,
    #[error("invalid target URI `{0}`")]
    /// A target that is neither an extension nor a SIP URI.
    BadTarget(String),
}

impl From<build::BadUri> for UaError {
    fn from(e: build::BadUri) -> Self {
        UaError::BadTarget(e.0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RegState {
    Idle,
    Registering,
    Registered,
    Unregistering,
}

#[derive(Debug)]
struct Registration {
    state: RegState,
    call_id: String,
    from_tag: String,
    cseq: u32,
    expires: u32,
    auth_tries: u32,
    /// `Some` once a registration succeeded (for retry after failure).
    ever_registered: bool,
    refresh_at: Option<Instant>,
    branch: Option<String>,
    /// The next NAT keep-alive.
    keepalive_at: Option<Instant>,
}

/// Digest state for one challenger: the challenge and the nonce count.
#[derive(Debug, Clone)]
struct Auth {
    challenge: Challenge,
    proxy: bool,
    nc: u32,
}

impl Auth {
    /// The next (Proxy-)Authorization header for `method uri`.
    fn header(
        &mut self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> Header {
        self.nc += 1;
        let v = digest::respond(
            &self.challenge,
            user,
            password,
            method,
            uri,
            cnonce,
            self.nc,
        )
        .to_header_value();
        if self.proxy {
            h::ProxyAuthorization::new(v).into()
        } else {
            h::Authorization::new(v).into()
        }
    }
}

/// Who sent the INVITE that made a call: fixed for the call's life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Direction {
    Incoming,
    Outgoing,
}

/// The INVITE we sent, kept to build CANCEL and ACK-for-non-2xx.
#[derive(Debug, Clone)]
struct SentInvite {
    uri: String,
    via: String,
    cseq: u32,
    branch: String,
    to: String,
}

/// An outgoing call until its INVITE's final answer: the INVITE (for
/// CANCEL and the ACK of a failure) and the challenges answered so far.
#[derive(Debug)]
struct Outgoing {
    sent: SentInvite,
    auth_tries: u32,
}

/// A 2xx we retransmit until ACK (§13.3.1.4).
#[derive(Debug, Clone)]
struct OkRetransmit {
    bytes: Vec<u8>,
    dest: SocketAddr,
    next: Instant,
    interval: Duration,
    give_up: Instant,
}

/// Our ACK for the 2xx of an outgoing call and where it went: sent again
/// when the 2xx is (§13.2.2.4).
type Ack = (Vec<u8>, SocketAddr);

/// Where a call is, each state with the data valid in it (as the media
/// session's state is).
#[derive(Debug)]
enum CallState {
    /// Outgoing INVITE sent, no provisional.
    Calling(Outgoing),
    /// Outgoing, hang-up asked before any provisional: CANCEL must wait
    /// for one (§9.1).
    CancelPending(Outgoing),
    /// Outgoing, provisional received.
    Early(Outgoing),
    /// Outgoing, CANCEL sent: the INVITE's final answer ends the call.
    Cancelling(Outgoing),
    /// Incoming, ringing, not answered: the INVITE and its source, to
    /// answer it.
    Ringing {
        invite: Box<Message>,
        src: SocketAddr,
    },
    /// Incoming, 2xx sent, retransmitted until the ACK.
    Answered(OkRetransmit),
    /// Dialog confirmed.
    Confirmed { ack: Option<Ack> },
    /// BYE sent, waiting for its answer.
    Terminating { ack: Option<Ack> },
    /// Over, and forgotten at `forget_at` (late retransmissions are
    /// absorbed until then).
    Ended {
        forget_at: Instant,
        ack: Option<Ack>,
    },
}

impl CallState {
    /// The outgoing INVITE, while its final answer is awaited.
    fn outgoing(&self) -> Option<&Outgoing> {
        match self {
            CallState::Calling(o)
            | CallState::CancelPending(o)
            | CallState::Early(o)
            | CallState::Cancelling(o) => Some(o),
            _ => None,
        }
    }

    /// Our ACK for the 2xx, once there is one.
    fn ack(&self) -> Option<&Ack> {
        match self {
            CallState::Confirmed { ack }
            | CallState::Terminating { ack }
            | CallState::Ended { ack, .. } => ack.as_ref(),
            _ => None,
        }
    }

    fn is_ended(&self) -> bool {
        matches!(self, CallState::Ended { .. })
    }

    /// Moves to the state `next` makes of the current one.
    fn step(&mut self, next: impl FnOnce(CallState) -> CallState) {
        let current = std::mem::replace(self, CallState::Confirmed { ack: None });
        *self = next(current);
    }

    /// Terminating, keeping our ACK.
    fn terminate(&mut self) {
        self.step(|s| CallState::Terminating {
            ack: s.ack().cloned(),
        });
    }

    /// Ended, keeping our ACK, forgotten at `forget_at`.
    fn end(&mut self, forget_at: Instant) {
        self.step(|s| CallState::Ended {
            forget_at,
            ack: s.ack().cloned(),
        });
    }
}

#[derive(Debug)]
struct Call {
    id: CallHandle,
    direction: Direction,
    call_id: String,
    local_tag: String,
    remote_tag: Option<String>,
    /// Our From/To URI (the AOR) and the peer's.
    local_uri: String,
    remote_uri: String,
    local_cseq: u32,
    remote_cseq: Option<u32>,
    remote_target: String,
    /// Route set, in the order Route headers are written.
    route_set: Vec<String>,
    local_sdp: Option<String>,
    /// Session timer (RFC 4028): hang up if the refresher has not
    /// refreshed by then (the signalling path or the PBX is gone).
    session_expires: Option<Instant>,
    state: CallState,
}

/// What an INVITE is built from.
struct InviteTarget {
    call_id: String,
    local_tag: String,
    cseq: u32,
    /// The Request-URI (the remote target) and the To URI.
    uri: String,
    remote_uri: String,
    body: String,
}

/// Who a client transaction works for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Owner {
    Register,
    KeepAlive,
    Invite(CallHandle),
    Cancel(CallHandle),
    Bye(CallHandle),
}

#[derive(Debug)]
struct Client {
    tx: ClientTx,
    owner: Owner,
}

/// The user agent core.
pub struct UserAgent {
    cfg: Config,
    rng: Box<dyn RngCore + Send>,
    contact: SocketAddr,
    public: Option<SocketAddr>,
    transmits: VecDeque<Transmit>,
    events: VecDeque<Event>,
    clients: Vec<Client>,
    servers: ServerTransactions,
    reg: Registration,
    reg_auth: Option<Auth>,
    calls: Vec<Call>,
    next_call: u64,
    stats: Stats,
    session_id: u64,
}

impl std::fmt::Debug for UserAgent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("UserAgent")
            .field("user", &self.cfg.username)
            .field("local", &self.cfg.local)
            .field("calls", &self.calls.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl UserAgent {
    /// An agent with `cfg`, drawing tags, branches and Call-IDs from `rng`.
    pub fn new(cfg: Config, mut rng: Box<dyn RngCore + Send>) -> Self {
        let reg = Registration {
            state: RegState::Idle,
            call_id: format!("{}@myturn", token(rng.as_mut(), 20)),
            from_tag: token(rng.as_mut(), 12),
            cseq: rng.next_u32() % 10_000 + 1,
            expires: cfg.expires,
            auth_tries: 0,
            ever_registered: false,
            refresh_at: None,
            branch: None,
            keepalive_at: None,
        };
        let session_id = rng.next_u64() >> 1;
        let servers = ServerTransactions::new(cfg.timers);
        UserAgent {
            contact: cfg.local,
            cfg,
            rng,
            public: None,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            clients: Vec::new(),
            servers,
            reg,
            reg_auth: None,
            calls: Vec::new(),
            next_call: 1,
            stats: Stats::default(),
            session_id,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether a registration is in force.
    pub fn is_registered(&self) -> bool {
        self.reg.state == RegState::Registered
    }

    /// A fresh SDP session id (for building offers and answers).
    pub fn new_session_id(&mut self) -> u64 {
        self.session_id += 1;
        self.session_id
    }

    /// The SIP Call-ID of a call.
    pub fn sip_call_id(&self, call: CallHandle) -> Option<&str> {
        self.calls
            .iter()
            .find(|c| c.id == call)
            .map(|c| c.call_id.as_str())
    }

    fn aor(&self) -> String {
        format!("sip:{}@{}", self.cfg.username, self.cfg.domain)
    }

    fn contact_header(&self, expires: Option<u32>) -> String {
        let mut c = match self.cfg.transport {
            Transport::Udp => format!("<sip:{}@{}>", self.cfg.username, self.contact),
            Transport::Tls => format!("<sip:{}@{};transport=tls>", self.cfg.username, self.contact),
        };
        if let Some(e) = expires {
            c.push_str(&format!(";expires={e}"));
        }
        c
    }

    fn new_branch(&mut self) -> String {
        format!("z9hG4bK{}", token(self.rng.as_mut(), 16))
    }

    fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};rport;branch={branch}",
            self.cfg.transport.via_name(),
            self.cfg.local
        )
    }

    fn our_from(&self, tag: &str) -> String {
        let na = NameAddr {
            display: self.cfg.display_name.clone(),
            uri: self.aor(),
            params: vec![("tag".into(), Some(tag.to_owned()))],
        };
        na.to_string()
    }

    // ---- output plumbing -------------------------------------------------

    fn send(&mut self, dest: SocketAddr, payload: Vec<u8>) {
        self.transmits.push_back(Transmit { dest, payload });
    }

    /// A request retransmission a server transaction absorbed.
    fn absorbed(&mut self, resend: Option<Transmit>) {
        self.stats.absorbed += 1;
        self.transmits.extend(resend);
    }

    fn start_client(
        &mut self,
        now: Instant,
        owner: Owner,
        branch: String,
        method: &str,
        bytes: Vec<u8>,
        dest: SocketAddr,
    ) {
        let tx = ClientTx::new(now, &self.cfg.timers, branch, method, bytes.clone(), dest);
        self.clients.push(Client { tx, owner });
        self.send(dest, bytes);
    }

    fn common_headers(&self, headers: &mut Vec<Header>) {
        headers.push(h::MaxForwards::new("70").into());
        headers.push(h::UserAgent::new(self.cfg.user_agent.clone()).into());
    }

    // ---- responses -------------------------------------------------------

    /// Answers `req` with a final response carrying a new To tag (a
    /// request this agent refuses or answers outside any dialog).
    fn respond_fresh(&mut self, now: Instant, req: &Message, src: SocketAddr, reply: Reply<'_>) {
        let tag = token(self.rng.as_mut(), 12);
        self.respond(now, req, src, reply.tag(&tag));
    }

    /// Answers `req` within its server transaction.
    fn respond(&mut self, now: Instant, req: &Message, src: SocketAddr, reply: Reply<'_>) {
        let code = reply.code();
        let bytes = reply.for_request(req);
        let key = build::server_key(req);
        let dest = build::response_dest(req, src);
        let t = self.servers.respond(now, &key, code, bytes, dest);
        self.transmits.push_back(t);
    }

    // ---- registration ----------------------------------------------------

    /// Registers (or refreshes) the binding.
    pub fn register(&mut self, now: Instant) {
        self.reg.state = RegState::Registering;
        self.reg.auth_tries = 0;
        self.send_register(now, self.reg.expires);
    }

    /// Removes the binding (`Expires: 0`); [`Event::Unregistered`] follows.
    pub fn unregister(&mut self, now: Instant) {
        self.reg.state = RegState::Unregistering;
        self.reg.refresh_at = None;
        self.reg.keepalive_at = None;
        self.reg.auth_tries = 0;
        self.send_register(now, 0);
    }

    fn send_register(&mut self, now: Instant, expires: u32) {
        // A fresh branch for every REGISTER, the one after a 401 included.
        let branch = self.new_branch();
        self.reg.cseq += 1;
        let uri = format!("sip:{}", self.cfg.domain);
        let mut headers: Vec<Header> = vec![
            h::Via::new(self.via(&branch)).into(),
            h::From::new(self.our_from(&self.reg.from_tag.clone())).into(),
            h::To::new(format!("<{}>", self.aor())).into(),
            h::CallId::new(self.reg.call_id.clone()).into(),
            h::CSeq::new(format!("{} REGISTER", self.reg.cseq)).into(),
            h::Contact::new(self.contact_header(None)).into(),
            h::Expires::new(expires.to_string()).into(),
            h::Allow::new(ALLOW).into(),
        ];
        self.common_headers(&mut headers);
        if let Some(auth) = self.reg_auth.as_mut() {
            let cnonce = token(self.rng.as_mut(), 16);
            headers.push(auth.header(
                &self.cfg.username,
                &self.cfg.password,
                "REGISTER",
                &uri,
                &cnonce,
            ));
        }
        let Ok(bytes) = build::request(rsip::Method::Register, &uri, headers, b"") else {
            self.events.push_back(Event::RegistrationFailed {
                code: 0,
                reason: format!("invalid domain `{}`", self.cfg.domain),
            });
            return;
        };
        self.reg.branch = Some(branch.clone());
        let proxy = self.cfg.proxy;
        self.start_client(now, Owner::Register, branch, "REGISTER", bytes, proxy);
    }

    fn on_register_response(&mut self, now: Instant, resp: &Message) {
        let code = resp.status().unwrap_or(0);
        if code < 200 {
            return;
        }
        let unregistering = self.reg.state == RegState::Unregistering;
        let requested = if unregistering { 0 } else { self.reg.expires };
        match code {
            200..=299 => {
                self.reg.auth_tries = 0;
                if unregistering {
                    self.reg.state = RegState::Idle;
                    self.events.push_back(Event::Unregistered);
                    return;
                }
                // Learn our public address (RFC 3581) and re-register with
                // it once if it differs from the Contact we sent.
                let public = self.learnt(resp).filter(|a| *a != self.cfg.local);
                let ours = format!("@{}", self.contact);
                let granted = resp
                    .name_addrs("Contact")
                    .iter()
                    .find(|c| c.uri.contains(&ours))
                    .and_then(|c| c.param("expires").and_then(|e| e.parse().ok()))
                    .or(resp.expires())
                    .unwrap_or(requested);
                if let Some(p) = public {
                    if self.public != Some(p) {
                        self.public = Some(p);
                        self.contact = p;
                        self.send_register(now, self.reg.expires);
                        return;
                    }
                }
                self.reg.state = RegState::Registered;
                self.reg.ever_registered = true;
                self.reg.keepalive_at = self.cfg.keepalive.map(|k| now + k);
                let granted = granted.max(1);
                // Refresh well before expiry: halfway for short bindings,
                // 30 s early for long ones.
                let early = (granted / 2).min(30);
                self.reg.refresh_at = Some(now + Duration::from_secs(u64::from(granted - early)));
                self.events.push_back(Event::Registered {
                    expires: Duration::from_secs(u64::from(granted)),
                    public,
                });
            }
            401 | 407 => {
                let name = if code == 401 {
                    "WWW-Authenticate"
                } else {
                    "Proxy-Authenticate"
                };
                let challenge = Challenge::choose(resp.headers(name));
                self.reg.auth_tries += 1;
                // A second challenge for the same credentials means a wrong
                // password, unless the nonce was merely stale.
                let stale = challenge.as_ref().is_some_and(|c| c.stale);
                match challenge {
                    Some(c) if self.reg.auth_tries <= 1 || (stale && self.reg.auth_tries <= 3) => {
                        self.reg_auth = Some(Auth {
                            challenge: c,
                            proxy: code == 407,
                            nc: 0,
                        });
                        self.send_register(now, requested);
                    }
                    _ => self.registration_failed(now, code, resp.reason()),
                }
            }
            423 => {
                let min = resp
                    .header("Min-Expires")
                    .and_then(|v| v.trim().parse::<u32>().ok());
                match min {
                    Some(m) if m > self.reg.expires && !unregistering => {
                        self.reg.expires = m;
                        self.send_register(now, m);
                    }
                    _ => self.registration_failed(now, code, resp.reason()),
                }
            }
            _ => self.registration_failed(now, code, resp.reason()),
        }
    }

    /// The address the proxy saw a request of ours come from (RFC 3581:
    /// `received`, and `rport` when it filled it in).
    fn learnt(&self, resp: &Message) -> Option<SocketAddr> {
        resp.top_via().and_then(|v| {
            let ip: IpAddr = v.param("received").flatten()?.parse().ok()?;
            let port = v
                .param("rport")
                .flatten()
                .and_then(|p| p.parse().ok())
                .unwrap_or(self.cfg.local.port());
            Some(SocketAddr::new(ip, port))
        })
    }

    /// Sends the NAT keep-alive: an OPTIONS to the proxy, outside any
    /// dialog. Its answer says where the proxy sees us.
    fn send_keepalive(&mut self, now: Instant) {
        let branch = self.new_branch();
        let uri = format!("sip:{}", self.cfg.domain);
        let tag = token(self.rng.as_mut(), 10);
        let call_id = format!("{}@myturn", token(self.rng.as_mut(), 16));
        let mut headers: Vec<Header> = vec![
            h::Via::new(self.via(&branch)).into(),
            h::From::new(self.our_from(&tag)).into(),
            h::To::new(format!("<{uri}>")).into(),
            h::CallId::new(call_id).into(),
            h::CSeq::new("1 OPTIONS").into(),
        ];
        self.common_headers(&mut headers);
        let Ok(bytes) = build::request(rsip::Method::Options, &uri, headers, b"") else {
            return;
        };
        let proxy = self.cfg.proxy;
        self.start_client(now, Owner::KeepAlive, branch, "OPTIONS", bytes, proxy);
    }

    /// A keep-alive answered: if the proxy now sees us elsewhere (the NAT
    /// gave us a new mapping), register that address at once, so calls
    /// reach us there.
    fn on_keepalive_response(&mut self, now: Instant, resp: &Message) {
        let Some(seen) = self.learnt(resp) else {
            return;
        };
        let current = self.public.unwrap_or(self.cfg.local);
        if seen == current || self.reg.state != RegState::Registered {
            return;
        }
        self.public = (seen != self.cfg.local).then_some(seen);
        self.contact = seen;
        self.events.push_back(Event::PublicAddressChanged {
            from: current,
            to: seen,
        });
        self.reg.auth_tries = 0;
        self.send_register(now, self.reg.expires);
    }

    fn registration_failed(&mut self, now: Instant, code: u16, reason: &str) {
        if self.reg.state == RegState::Unregistering {
            self.reg.state = RegState::Idle;
            self.events.push_back(Event::Unregistered);
            return;
        }
        self.reg.state = RegState::Idle;
        self.reg.refresh_at = self
            .reg
            .ever_registered
            .then(|| now + Duration::from_secs(30));
        self.events.push_back(Event::RegistrationFailed {
            code,
            reason: reason.to_owned(),
        });
    }

    // ---- calls: commands -------------------------------------------------

    fn local_tag(&self, call: CallHandle) -> Result<String, UaError> {
        self.calls
            .iter()
            .find(|c| c.id == call)
            .map(|c| c.local_tag.clone())
            .ok_or(UaError::NoSuchCall)
    }

    fn call_mut(&mut self, call: CallHandle) -> Result<&mut Call, UaError> {
        self.calls
            .iter_mut()
            .find(|c| c.id == call)
            .ok_or(UaError::NoSuchCall)
    }

    /// Calls `target`: an extension (`111001`, sent as
    /// `sip:111001@domain`) or a full `sip:` URI. `sdp` is the offer.
    pub fn invite(&mut self, now: Instant, target: &str, sdp: &str) -> Result<CallHandle, UaError> {
        let uri = if target.contains(':') {
            target.to_owned()
        } else if !target.is_empty()
            && target
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.+".contains(&b))
        {
            format!("sip:{target}@{}", self.cfg.domain)
        } else {
            return Err(UaError::BadTarget(target.to_owned()));
        };
        rsip::Uri::try_from(uri.as_str()).map_err(|_| UaError::BadTarget(uri.clone()))?;
        let id = CallHandle(self.next_call);
        self.next_call += 1;
        let call_id = format!("{}@myturn", token(self.rng.as_mut(), 20));
        let local_tag = token(self.rng.as_mut(), 12);
        let local_cseq = self.rng.next_u32() % 10_000 + 2;
        let target = InviteTarget {
            call_id: call_id.clone(),
            local_tag: local_tag.clone(),
            cseq: local_cseq,
            uri: uri.clone(),
            remote_uri: uri.clone(),
            body: sdp.to_owned(),
        };
        let (bytes, sent) = self.invite_request(target, None)?;
        let branch = sent.branch.clone();
        self.calls.push(Call {
            id,
            direction: Direction::Outgoing,
            call_id,
            local_tag,
            remote_tag: None,
            local_uri: self.aor(),
            remote_uri: uri.clone(),
            local_cseq,
            remote_cseq: None,
            remote_target: uri,
            route_set: Vec::new(),
            local_sdp: Some(sdp.to_owned()),
            session_expires: None,
            state: CallState::Calling(Outgoing {
                sent,
                auth_tries: 0,
            }),
        });
        let proxy = self.cfg.proxy;
        self.start_client(now, Owner::Invite(id), branch, "INVITE", bytes, proxy);
        Ok(id)
    }

    /// Sends the INVITE of call `id` again, with credentials for `auth`'s
    /// challenge: the call is calling anew.
    fn send_invite_with(
        &mut self,
        now: Instant,
        id: CallHandle,
        mut auth: Auth,
        auth_tries: u32,
    ) -> Result<(), UaError> {
        let call = self.call_mut(id)?;
        call.local_cseq += 1;
        let target = InviteTarget {
            call_id: call.call_id.clone(),
            local_tag: call.local_tag.clone(),
            cseq: call.local_cseq,
            uri: call.remote_target.clone(),
            remote_uri: call.remote_uri.clone(),
            body: call.local_sdp.clone().unwrap_or_default(),
        };
        let (bytes, sent) = self.invite_request(target, Some(&mut auth))?;
        let branch = sent.branch.clone();
        self.call_mut(id)?.state = CallState::Calling(Outgoing { sent, auth_tries });
        let proxy = self.cfg.proxy;
        self.start_client(now, Owner::Invite(id), branch, "INVITE", bytes, proxy);
        Ok(())
    }

    /// An INVITE for `t` (a fresh branch; credentials when `auth` is
    /// given), and what CANCEL and the ACK of a failure need of it.
    fn invite_request(
        &mut self,
        t: InviteTarget,
        auth: Option<&mut Auth>,
    ) -> Result<(Vec<u8>, SentInvite), UaError> {
        let branch = self.new_branch();
        let via = self.via(&branch);
        let from = self.our_from(&t.local_tag);
        let contact = self.contact_header(None);
        let cnonce = token(self.rng.as_mut(), 16);
        let to = format!("<{}>", t.remote_uri);
        let mut headers: Vec<Header> = vec![
            h::Via::new(via.clone()).into(),
            h::From::new(from).into(),
            h::To::new(to.clone()).into(),
            h::CallId::new(t.call_id).into(),
            h::CSeq::new(format!("{} INVITE", t.cseq)).into(),
            h::Contact::new(contact).into(),
            h::Allow::new(ALLOW).into(),
            h::ContentType::new("application/sdp").into(),
        ];
        self.common_headers(&mut headers);
        if let Some(auth) = auth {
            let (user, password) = (&self.cfg.username, &self.cfg.password);
            headers.push(auth.header(user, password, "INVITE", &t.uri, &cnonce));
        }
        let bytes = build::request(rsip::Method::Invite, &t.uri, headers, t.body.as_bytes())?;
        let sent = SentInvite {
            uri: t.uri,
            via,
            cseq: t.cseq,
            branch,
            to,
        };
        Ok((bytes, sent))
    }

    /// Answers an incoming call with 200 OK carrying `sdp`.
    pub fn answer(&mut self, now: Instant, call: CallHandle, sdp: &str) -> Result<(), UaError> {
        let contact = self.contact_header(None);
        let timers = self.cfg.timers;
        let c = self.call_mut(call)?;
        let CallState::Ringing { invite, src } = &c.state else {
            return Err(UaError::WrongState);
        };
        let (invite, src) = (invite.clone(), *src);
        c.local_sdp = Some(sdp.to_owned());
        c.session_expires = session_interval(&invite).map(|d| session_deadline(now, d));
        let tag = c.local_tag.clone();
        let mut extra: Vec<Header> = vec![
            h::Contact::new(contact).into(),
            h::Allow::new(ALLOW).into(),
            h::ContentType::new("application/sdp").into(),
        ];
        for rr in invite.headers("Record-Route") {
            extra.push(h::RecordRoute::new(rr.to_owned()).into());
        }
        extra.extend(session_timer_headers(&invite));
        let bytes = Reply::new(200, "OK")
            .tag(&tag)
            .headers(extra)
            .body(sdp.as_bytes())
            .for_request(&invite);
        let dest = build::response_dest(&invite, src);
        let c = self.call_mut(call)?;
        c.state = CallState::Answered(OkRetransmit {
            bytes: bytes.clone(),
            dest,
            next: now + timers.t1,
            interval: timers.t1,
            give_up: now + timers.t64(),
        });
        let t = self
            .servers
            .respond(now, &build::server_key(&invite), 200, bytes, dest);
        self.transmits.push_back(t);
        Ok(())
    }

    /// Refuses an incoming call (486 Busy Here, 603 Decline, …).
    pub fn reject(
        &mut self,
        now: Instant,
        call: CallHandle,
        code: u16,
        reason: &str,
    ) -> Result<(), UaError> {
        let linger = self.cfg.timers.t64();
        let c = self.call_mut(call)?;
        let CallState::Ringing { invite, src } = &c.state else {
            return Err(UaError::WrongState);
        };
        if !(300..700).contains(&code) {
            return Err(UaError::WrongState);
        }
        let (invite, src) = (invite.clone(), *src);
        let tag = c.local_tag.clone();
        c.state.end(now + linger);
        self.respond(now, &invite, src, Reply::new(code, reason).tag(&tag));
        Ok(())
    }

    /// Ends a call whatever its state: CANCEL while ringing out, 603 while
    /// ringing in, BYE once established.
    pub fn hangup(&mut self, now: Instant, call: CallHandle) -> Result<(), UaError> {
        let c = self.call_mut(call)?;
        match &c.state {
            CallState::Calling(_) => {
                // No provisional yet: CANCEL must wait for one (§9.1).
                c.state.step(|s| match s {
                    CallState::Calling(o) => CallState::CancelPending(o),
                    other => other,
                });
                Ok(())
            }
            CallState::CancelPending(_) => Ok(()),
            CallState::Early(_) | CallState::Cancelling(_) => self.send_cancel(now, call),
            CallState::Ringing { .. } => {
                self.reject(now, call, 603, "Decline")?;
                self.events.push_back(Event::CallEnded {
                    call,
                    by: EndedBy::Local,
                });
                Ok(())
            }
            CallState::Answered(_) | CallState::Confirmed { .. } => self.send_bye(now, call),
            CallState::Terminating { .. } | CallState::Ended { .. } => Err(UaError::WrongState),
        }
    }

    fn send_cancel(&mut self, now: Instant, id: CallHandle) -> Result<(), UaError> {
        let from = self.our_from(&self.local_tag(id)?);
        let mut common = Vec::new();
        self.common_headers(&mut common);
        let proxy = self.cfg.proxy;
        let call = self.call_mut(id)?;
        let Some(sent) = call.state.outgoing().map(|o| o.sent.clone()) else {
            return Err(UaError::WrongState);
        };
        call.state.step(|s| match s {
            CallState::Calling(o)
            | CallState::CancelPending(o)
            | CallState::Early(o)
            | CallState::Cancelling(o) => CallState::Cancelling(o),
            other => other,
        });
        let mut headers: Vec<Header> = vec![
            h::Via::new(sent.via.clone()).into(),
            h::From::new(from).into(),
            h::To::new(sent.to.clone()).into(),
            h::CallId::new(call.call_id.clone()).into(),
            h::CSeq::new(format!("{} CANCEL", sent.cseq)).into(),
        ];
        headers.extend(common);
        let bytes = build::request(rsip::Method::Cancel, &sent.uri, headers, b"")?;
        // CANCEL has the INVITE's branch; its transaction is told apart by
        // method (a separate client transaction, §9.1).
        self.start_client(now, Owner::Cancel(id), sent.branch, "CANCEL", bytes, proxy);
        Ok(())
    }

    /// The next hop for an in-dialog request: the first route, else the
    /// remote target, when they name an IP; the proxy otherwise.
    fn dialog_dest(&self, call: &Call) -> SocketAddr {
        call.route_set
            .first()
            .map(|r| r.as_str())
            .or(Some(call.remote_target.as_str()))
            .and_then(build::uri_addr)
            .unwrap_or(self.cfg.proxy)
    }

    fn dialog_request(
        &mut self,
        id: CallHandle,
        method: rsip::Method,
        cseq: u32,
        branch: &str,
    ) -> Result<(Vec<u8>, SocketAddr), UaError> {
        let via = self.via(branch);
        let mut common = Vec::new();
        self.common_headers(&mut common);
        let call = self
            .calls
            .iter()
            .find(|c| c.id == id)
            .ok_or(UaError::NoSuchCall)?;
        // In a dialog, From is our side of the dialog: the AOR we called
        // from, or the To of the INVITE we answered (§12.2.1.1).
        let from = NameAddr {
            display: self.cfg.display_name.clone(),
            uri: call.local_uri.clone(),
            params: vec![("tag".into(), Some(call.local_tag.clone()))],
        }
        .to_string();
        let mut to = format!("<{}>", call.remote_uri);
        if let Some(t) = &call.remote_tag {
            to.push_str(&format!(";tag={t}"));
        }
        let mut headers: Vec<Header> = vec![
            h::Via::new(via).into(),
            h::From::new(from).into(),
            h::To::new(to).into(),
            h::CallId::new(call.call_id.clone()).into(),
            h::CSeq::new(format!("{cseq} {method}")).into(),
        ];
        for r in &call.route_set {
            headers.push(h::Route::new(r.clone()).into());
        }
        headers.extend(common);
        let bytes = build::request(method, &call.remote_target, headers, b"")?;
        Ok((bytes, self.dialog_dest(call)))
    }

    fn send_bye(&mut self, now: Instant, id: CallHandle) -> Result<(), UaError> {
        let branch = self.new_branch();
        let call = self.call_mut(id)?;
        call.local_cseq += 1;
        call.state.terminate();
        let cseq = call.local_cseq;
        let (bytes, dest) = self.dialog_request(id, rsip::Method::Bye, cseq, &branch)?;
        self.start_client(now, Owner::Bye(id), branch, "BYE", bytes, dest);
        Ok(())
    }

    fn end_call(&mut self, now: Instant, id: CallHandle, by: EndedBy) {
        let linger = self.cfg.timers.t64();
        if let Ok(c) = self.call_mut(id) {
            if c.state.is_ended() {
                return;
            }
            c.state.end(now + linger);
        }
        self.events.push_back(Event::CallEnded { call: id, by });
    }

    fn fail_call(&mut self, now: Instant, id: CallHandle, code: u16, reason: &str) {
        let linger = self.cfg.timers.t64();
        let cancelled = match self.call_mut(id) {
            Ok(c) if !c.state.is_ended() => {
                let cancelled = matches!(c.state, CallState::Cancelling(_));
                c.state.end(now + linger);
                cancelled
            }
            _ => return,
        };
        if cancelled {
            self.events.push_back(Event::CallEnded {
                call: id,
                by: EndedBy::Local,
            });
        } else {
            self.events.push_back(Event::CallFailed {
                call: id,
                code,
                reason: reason.to_owned(),
            });
        }
    }

    // ---- input -----------------------------------------------------------

    /// Feeds one received datagram. Never panics, whatever the bytes.
    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        match msg::parse_with_limit(data, self.cfg.max_message_size) {
            Ok(m) if m.is_request() => self.on_request(now, from, m),
            Ok(m) => self.on_response(now, m),
            Err(r) => {
                let rng = self.rng.as_mut();
                let answer = server::malformed(data, from, &r, || token(rng, 12))
                    .count(&mut self.stats.rejected, &mut self.stats.dropped);
                self.transmits.extend(answer);
            }
        }
    }

    fn on_response(&mut self, now: Instant, resp: Message) {
        let Some(code) = resp.status() else { return };
        let branch = resp
            .top_via()
            .and_then(|v| v.branch().map(str::to_owned))
            .unwrap_or_default();
        let method = resp.cseq_method().to_string();
        let timers = self.cfg.timers;
        let Some(i) = self
            .clients
            .iter()
            .position(|c| c.tx.branch == branch && c.tx.method == method)
        else {
            // A 2xx retransmission after the INVITE transaction ended: the
            // UA core acknowledges it again (§13.2.2.4).
            if method == "INVITE" && (200..300).contains(&code) {
                self.resend_ack(&resp);
            } else {
                self.stats.stray_responses += 1;
            }
            return;
        };
        let outcome = self.clients[i].tx.on_response(now, &timers, code);
        let owner = self.clients[i].owner;
        if outcome == ClientOutcome::Absorb {
            if let Some(ack) = self.clients[i].tx.ack.clone() {
                let dest = self.clients[i].tx.dest;
                self.send(dest, ack);
            }
            return;
        }
        match owner {
            Owner::Register => {
                if self.reg.branch.as_deref() == Some(branch.as_str()) {
                    self.on_register_response(now, &resp);
                }
            }
            Owner::Invite(id) => {
                if code >= 300 {
                    // The transaction acknowledges non-2xx finals itself.
                    if let Some(ack) = self.ack_for_failure(id, &resp) {
                        let dest = self.clients[i].tx.dest;
                        self.clients[i].tx.ack = Some(ack.clone());
                        self.send(dest, ack);
                    }
                }
                self.on_invite_response(now, id, &resp);
            }
            Owner::Cancel(_) => {}
            Owner::KeepAlive => {
                if code >= 200 {
                    self.on_keepalive_response(now, &resp);
                }
            }
            Owner::Bye(id) => {
                if code >= 200 {
                    self.end_call(now, id, EndedBy::Local);
                }
            }
        }
    }

    /// ACK for a non-2xx final (§17.1.1.3): the INVITE's R-URI, top Via,
    /// From, Call-ID and CSeq number; the response's To.
    fn ack_for_failure(&mut self, id: CallHandle, resp: &Message) -> Option<Vec<u8>> {
        let from = self.our_from(&self.local_tag(id).ok()?);
        let mut common = Vec::new();
        self.common_headers(&mut common);
        let call = self.calls.iter().find(|c| c.id == id)?;
        let sent = &call.state.outgoing()?.sent;
        let mut headers: Vec<Header> = vec![
            h::Via::new(sent.via.clone()).into(),
            h::From::new(from).into(),
            h::To::new(resp.header("To")?.to_owned()).into(),
            h::CallId::new(call.call_id.clone()).into(),
            h::CSeq::new(format!("{} ACK", sent.cseq)).into(),
        ];
        headers.extend(common);
        build::request(rsip::Method::Ack, &sent.uri, headers, b"").ok()
    }

    fn resend_ack(&mut self, resp: &Message) {
        let call_id = resp.call_id();
        let tag = resp.from().and_then(|f| f.tag().map(str::to_owned));
        if let Some((bytes, dest)) = self
            .calls
            .iter()
            .find(|c| c.call_id == call_id && Some(&c.local_tag) == tag.as_ref())
            .and_then(|c| c.state.ack().cloned())
        {
            self.stats.retransmissions += 1;
            self.send(dest, bytes);
        } else {
            self.stats.stray_responses += 1;
        }
    }

    fn on_invite_response(&mut self, now: Instant, id: CallHandle, resp: &Message) {
        let code = resp.status().unwrap_or(0);
        let Ok(call) = self.call_mut(id) else { return };
        if call.state.is_ended() && code < 200 {
            return;
        }
        match code {
            100 => {}
            101..=199 => self.on_invite_provisional(now, id, code),
            200..=299 => self.on_invite_ok(now, id, resp),
            401 | 407 => self.on_invite_challenge(now, id, code, resp),
            _ => self.fail_call(now, id, code, resp.reason()),
        }
    }

    /// 101–199 to our INVITE: early, ringing (the first provisional, and
    /// every 180), and the CANCEL that waited for it.
    fn on_invite_provisional(&mut self, now: Instant, id: CallHandle, code: u16) {
        let Ok(call) = self.call_mut(id) else { return };
        let mut first = false;
        let mut cancel = false;
        call.state.step(|s| match s {
            CallState::Calling(o) => {
                first = true;
                CallState::Early(o)
            }
            CallState::CancelPending(o) => {
                cancel = true;
                CallState::Early(o)
            }
            other => other,
        });
        if cancel {
            let _ = self.send_cancel(now, id);
        } else if first || code == 180 {
            self.events.push_back(Event::Ringing { call: id });
        }
    }

    /// 401/407 to our INVITE: one retry with credentials, unless the call
    /// is being cancelled; a failure otherwise.
    fn on_invite_challenge(&mut self, now: Instant, id: CallHandle, code: u16, resp: &Message) {
        let Ok(call) = self.call_mut(id) else { return };
        let tries = match &mut call.state {
            CallState::Calling(o) | CallState::Early(o) => {
                o.auth_tries += 1;
                Some(o.auth_tries)
            }
            CallState::CancelPending(o) | CallState::Cancelling(o) => {
                o.auth_tries += 1;
                None
            }
            _ => None,
        };
        let name = if code == 401 {
            "WWW-Authenticate"
        } else {
            "Proxy-Authenticate"
        };
        match (Challenge::choose(resp.headers(name)), tries) {
            (Some(c), Some(tries)) if tries <= 1 => {
                let auth = Auth {
                    challenge: c,
                    proxy: code == 407,
                    nc: 0,
                };
                if self.send_invite_with(now, id, auth, tries).is_err() {
                    self.fail_call(now, id, code, resp.reason());
                }
            }
            _ => self.fail_call(now, id, code, resp.reason()),
        }
    }

    fn on_invite_ok(&mut self, now: Instant, id: CallHandle, resp: &Message) {
        let answer = Sdp::parse(resp.body()).ok();
        let remote_tag = resp.to().and_then(|t| t.tag().map(str::to_owned));
        let contact = resp.name_addrs("Contact").into_iter().next().map(|c| c.uri);
        // The UAC's route set is the Record-Route in reverse (§12.1.2).
        let mut routes: Vec<String> = resp.headers("Record-Route").map(str::to_owned).collect();
        routes.reverse();
        let Ok(call) = self.call_mut(id) else { return };
        if matches!(
            call.state,
            CallState::Confirmed { .. } | CallState::Terminating { .. }
        ) {
            return;
        }
        let hang_up = matches!(
            call.state,
            CallState::CancelPending(_) | CallState::Cancelling(_) | CallState::Ended { .. }
        );
        call.remote_tag = remote_tag;
        if let Some(c) = contact {
            call.remote_target = c;
        }
        call.route_set = routes;
        let cseq = call
            .state
            .outgoing()
            .map(|o| o.sent.cseq)
            .unwrap_or(call.local_cseq);
        call.state = CallState::Confirmed { ack: None };
        let sip_call_id = call.call_id.clone();
        // ACK for 2xx: a new transaction-less request, new branch (§13.2.2.4).
        let branch = self.new_branch();
        if let Ok((bytes, dest)) = self.dialog_request(id, rsip::Method::Ack, cseq, &branch) {
            if let Ok(c) = self.call_mut(id) {
                c.state = CallState::Confirmed {
                    ack: Some((bytes.clone(), dest)),
                };
            }
            self.send(dest, bytes);
        }
        if hang_up {
            // Answered after we gave up (CANCEL lost the race): end it.
            let _ = self.send_bye(now, id);
            return;
        }
        self.events.push_back(Event::Answered {
            call: id,
            sip_call_id,
            answer,
        });
    }

    fn on_request(&mut self, now: Instant, src: SocketAddr, req: Message) {
        let key = build::server_key(&req);
        let method = req.method().clone();
        // Retransmissions and ACKs for non-2xx finals belong to an existing
        // server transaction.
        match self.servers.arrival(now, &key, &method) {
            Arrival::Absorbed(resend) => return self.absorbed(resend),
            Arrival::AckAbsorbed => return,
            Arrival::New => {}
        }
        match method {
            Method::Known(rsip::Method::Ack) => return self.on_ack(now, &req),
            Method::Known(rsip::Method::Cancel) => return self.on_cancel(now, src, &req),
            _ => {}
        }
        let invite = method == Method::INVITE;
        self.servers
            .open(key, invite, build::response_dest(&req, src));

        // Checks every request gets (§8.2.1–8.2.3).
        let scheme = req
            .request_uri()
            .split(':')
            .next()
            .unwrap_or_default()
            .to_ascii_lowercase();
        if scheme != "sip" && scheme != "sips" {
            return self.respond_fresh(now, &req, src, Reply::new(416, "Unsupported URI Scheme"));
        }
        if let Method::Extension(_) = method {
            let allow = vec![h::Allow::new(ALLOW).into()];
            return self.respond_fresh(
                now,
                &req,
                src,
                Reply::new(501, "Not Implemented").headers(allow),
            );
        }
        let required: Vec<String> = req
            .headers("Require")
            .flat_map(|v| v.split(','))
            .map(|s| s.trim().to_owned())
            // Session timers (RFC 4028) are supported, as the UAS whose
            // peer refreshes: see `session_timer_headers`.
            .filter(|s| !s.is_empty() && !s.eq_ignore_ascii_case(TIMER))
            .collect();
        if !required.is_empty() {
            let unsupported = vec![h::Unsupported::new(required.join(", ")).into()];
            return self.respond_fresh(
                now,
                &req,
                src,
                Reply::new(420, "Bad Extension").headers(unsupported),
            );
        }
        match method {
            Method::Known(rsip::Method::Invite) => self.on_invite(now, src, req),
            Method::Known(rsip::Method::Bye) => self.on_bye(now, src, &req),
            Method::Known(rsip::Method::Options) => {
                let extra = vec![
                    h::Allow::new(ALLOW).into(),
                    h::Accept::new("application/sdp").into(),
                ];
                self.respond_fresh(now, &req, src, Reply::new(200, "OK").headers(extra));
            }
            Method::Known(rsip::Method::Update) | Method::Known(rsip::Method::Info) => {
                self.on_in_dialog_refresh(now, src, &req)
            }
            _ => {
                let allow = vec![h::Allow::new(ALLOW).into()];
                self.respond_fresh(
                    now,
                    &req,
                    src,
                    Reply::new(405, "Method Not Allowed").headers(allow),
                );
            }
        }
    }

    /// The dialog an in-dialog request belongs to: Call-ID, our tag in To,
    /// theirs in From.
    fn dialog_of(&self, req: &Message) -> Option<usize> {
        let to_tag = req.to().and_then(|t| t.tag().map(str::to_owned))?;
        let from_tag = req.from().and_then(|f| f.tag().map(str::to_owned));
        self.calls.iter().position(|c| {
            c.call_id == req.call_id() && c.local_tag == to_tag && c.remote_tag == from_tag
        })
    }

    fn on_invite(&mut self, now: Instant, src: SocketAddr, req: Message) {
        let has_to_tag = req.to().is_some_and(|t| t.tag().is_some());
        if has_to_tag {
            // A re-INVITE (Asterisk sends them, e.g. for direct media):
            // take the new offer, answer with our current SDP.
            return self.on_in_dialog_refresh(now, src, &req);
        }
        let tag = token(self.rng.as_mut(), 12);
        match self.check_invite(&req) {
            Ok(offer) => self.ring(now, src, req, tag, offer),
            Err(refusal) => self.respond(now, &req, src, refusal.tag(&tag)),
        }
    }

    /// What a new INVITE must pass before it rings: not a merged request
    /// (§8.2.2.2), an SDP body (§8.2.3) we can read, an answer type the
    /// sender accepts. The offer, or the refusal to send.
    fn check_invite(&self, req: &Message) -> Result<Option<Sdp>, Reply<'static>> {
        // Merged request (§8.2.2.2): same Call-ID, From tag and CSeq as a
        // call we have, arriving on another branch.
        let from_tag = req.from().and_then(|f| f.tag().map(str::to_owned));
        if self.calls.iter().any(|c| {
            c.direction == Direction::Incoming
                && c.call_id == req.call_id()
                && c.remote_tag == from_tag
                && c.remote_cseq == Some(req.cseq())
        }) {
            return Err(Reply::new(482, "Loop Detected"));
        }
        let content_type = req.header("Content-Type").unwrap_or("application/sdp");
        if !req.body().is_empty() && !content_type.trim().eq_ignore_ascii_case("application/sdp") {
            return Err(
                Reply::new(415, "Unsupported Media Type").header(h::Accept::new("application/sdp"))
            );
        }
        if let Some(accept) = req.header("Accept") {
            let ok = accept.split(',').any(|t| {
                let t = t.split(';').next().unwrap_or_default().trim();
                t.eq_ignore_ascii_case("application/sdp")
                    || t == "*/*"
                    || t.eq_ignore_ascii_case("application/*")
            });
            if !ok {
                return Err(Reply::new(406, "Not Acceptable"));
            }
        }
        if req.body().is_empty() {
            return Ok(None);
        }
        match Sdp::parse(req.body()) {
            Ok(s) => Ok(Some(s)),
            Err(e) => Err(Reply::new(488, format!("Not Acceptable Here ({e})"))),
        }
    }

    /// A new call from `req`: kept as ringing, 180 sent, the application
    /// told.
    fn ring(
        &mut self,
        now: Instant,
        src: SocketAddr,
        req: Message,
        tag: String,
        offer: Option<Sdp>,
    ) {
        let Some(from) = req.from() else { return };
        let contact = req
            .name_addrs("Contact")
            .into_iter()
            .next()
            .map(|c| c.uri)
            .unwrap_or_else(|| from.uri.clone());
        let id = CallHandle(self.next_call);
        self.next_call += 1;
        let call = Call {
            id,
            direction: Direction::Incoming,
            call_id: req.call_id().to_owned(),
            local_tag: tag.clone(),
            remote_tag: from.tag().map(str::to_owned),
            local_uri: req.to().map(|t| t.uri.clone()).unwrap_or_default(),
            remote_uri: from.uri.clone(),
            local_cseq: self.rng.next_u32() % 10_000 + 1,
            remote_cseq: Some(req.cseq()),
            remote_target: contact,
            // The UAS's route set is Record-Route in order (§12.1.1).
            route_set: req.headers("Record-Route").map(str::to_owned).collect(),
            local_sdp: None,
            session_expires: None,
            state: CallState::Ringing {
                invite: Box::new(req.clone()),
                src,
            },
        };
        self.calls.push(call);
        let contact = h::Contact::new(self.contact_header(None));
        self.respond(
            now,
            &req,
            src,
            Reply::new(180, "Ringing").tag(&tag).header(contact),
        );
        self.events.push_back(Event::IncomingCall {
            call: id,
            sip_call_id: req.call_id().to_owned(),
            from_user: build::uri_user(&from.uri).to_owned(),
            from_display: from.display.clone(),
            offer,
        });
    }

    fn on_in_dialog_refresh(&mut self, now: Instant, src: SocketAddr, req: &Message) {
        match self.dialog_of(req) {
            Some(i) => self.on_in_dialog_refresh_at(now, src, req, i),
            None => {
                self.respond_fresh(
                    now,
                    req,
                    src,
                    Reply::new(481, "Call/Transaction Does Not Exist"),
                );
            }
        }
    }

    fn on_in_dialog_refresh_at(&mut self, now: Instant, src: SocketAddr, req: &Message, i: usize) {
        let contact = self.contact_header(None);
        let call = &mut self.calls[i];
        if call.remote_cseq.is_some_and(|c| req.cseq() <= c) {
            let tag = call.local_tag.clone();
            return self.respond(
                now,
                req,
                src,
                Reply::new(500, "Server Internal Error (CSeq out of order)").tag(&tag),
            );
        }
        call.remote_cseq = Some(req.cseq());
        if let Some(c) = req.name_addrs("Contact").into_iter().next() {
            call.remote_target = c.uri;
        }
        let id = call.id;
        let tag = call.local_tag.clone();
        let is_invite = req.method().is(rsip::Method::Invite);
        let offer = !req.body().is_empty() && !req.method().is(rsip::Method::Info);
        // The answer to a new offer (a session refresh, or a back-to-back
        // agent moving or renumbering media), or our current SDP as the
        // offer in the 200 to an offerless re-INVITE (the answer then
        // comes in the ACK).
        let body = if offer {
            match answer_refresh(call.local_sdp.as_deref(), req.body()) {
                Ok((body, sdp)) => {
                    call.local_sdp = Some(body.clone());
                    self.events
                        .push_back(Event::RemoteMediaChanged { call: id, sdp });
                    body
                }
                // Not acceptable: the session goes on as it was (§14.2).
                Err(reason) => {
                    tracing::info!(%reason, "in-dialog offer refused with 488");
                    return self.respond(
                        now,
                        req,
                        src,
                        Reply::new(488, "Not Acceptable Here").tag(&tag),
                    );
                }
            }
        } else if is_invite {
            call.local_sdp.clone().unwrap_or_default()
        } else {
            String::new()
        };
        let mut extra: Vec<Header> = vec![h::Contact::new(contact).into()];
        if !body.is_empty() {
            extra.push(h::ContentType::new("application/sdp").into());
        }
        extra.extend(session_timer_headers(req));
        // A refresh (re-INVITE or UPDATE with Session-Expires) restarts
        // the session timer; one without it turns the timer off (§9).
        if let Some(c) = self.calls.get_mut(i) {
            c.session_expires = session_interval(req).map(|d| session_deadline(now, d));
        }
        self.respond(
            now,
            req,
            src,
            Reply::new(200, "OK")
                .tag(&tag)
                .headers(extra)
                .body(body.as_bytes()),
        );
    }

    fn on_ack(&mut self, _now: Instant, req: &Message) {
        let Some(i) = self.dialog_of(req) else { return };
        let call = &mut self.calls[i];
        if let CallState::Answered(_) = call.state {
            call.state = CallState::Confirmed { ack: None };
            let id = call.id;
            let answer = Sdp::parse(req.body()).ok();
            self.events.push_back(Event::Confirmed { call: id, answer });
        } else {
            // The answer to the offer we put in the 200 to an offerless
            // re-INVITE.
            if let Ok(sdp) = Sdp::parse(req.body()) {
                let id = call.id;
                self.events
                    .push_back(Event::RemoteMediaChanged { call: id, sdp });
            }
        }
    }

    fn on_cancel(&mut self, now: Instant, src: SocketAddr, req: &Message) {
        let invite_key = build::server_key(req);
        let ringing = self.calls.iter().position(|c| {
            matches!(&c.state, CallState::Ringing { invite, .. } if build::server_key(invite) == invite_key)
        });
        // CANCEL gets its own (non-INVITE) server transaction.
        let cancel_key = format!("{invite_key}|CANCEL");
        if let Some(Arrival::Absorbed(resend)) = self.servers.absorb(&cancel_key) {
            return self.absorbed(resend);
        }
        let dest = build::response_dest(req, src);
        self.servers.open(cancel_key.clone(), false, dest);
        let Some(i) = ringing else {
            let tag = token(self.rng.as_mut(), 12);
            let reply = Reply::new(481, "Call/Transaction Does Not Exist").tag(&tag);
            let t = self
                .servers
                .respond(now, &cancel_key, 481, reply.for_request(req), dest);
            return self.transmits.push_back(t);
        };
        let tag = self.calls[i].local_tag.clone();
        let bytes = Reply::new(200, "OK").tag(&tag).for_request(req);
        let t = self.servers.respond(now, &cancel_key, 200, bytes, dest);
        self.transmits.push_back(t);
        let id = self.calls[i].id;
        if let CallState::Ringing { invite, src } = &self.calls[i].state {
            let (inv, isrc) = (invite.clone(), *src);
            self.respond(
                now,
                &inv,
                isrc,
                Reply::new(487, "Request Terminated").tag(&tag),
            );
        }
        self.end_call(now, id, EndedBy::Remote);
    }

    fn on_bye(&mut self, now: Instant, src: SocketAddr, req: &Message) {
        let Some(i) = self.dialog_of(req) else {
            return self.respond_fresh(
                now,
                req,
                src,
                Reply::new(481, "Call/Transaction Does Not Exist"),
            );
        };
        let tag = self.calls[i].local_tag.clone();
        let id = self.calls[i].id;
        self.respond(now, req, src, Reply::new(200, "OK").tag(&tag));
        self.end_call(now, id, EndedBy::Remote);
    }

    // ---- time ------------------------------------------------------------

    /// Fires every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        self.client_timers(now);
        let resend = self.servers.fire_all(now);
        self.stats.retransmissions += resend.len() as u64;
        self.transmits.extend(resend);
        self.ok_timers(now);
        self.calls.retain(|c| match c.state {
            CallState::Ended { forget_at, .. } => now < forget_at,
            _ => true,
        });
        self.session_timers(now);
        self.registration_timers(now);
    }

    /// Client transactions: retransmissions (timers A, E), and timeouts
    /// (B, F) reported to their owner.
    fn client_timers(&mut self, now: Instant) {
        let timers = self.cfg.timers;
        let mut i = 0;
        while i < self.clients.len() {
            match self.clients[i].tx.on_timeout(now, &timers) {
                Some(TimerAction::Retransmit) => {
                    self.stats.retransmissions += 1;
                    let (dest, bytes) =
                        (self.clients[i].tx.dest, self.clients[i].tx.request.clone());
                    self.send(dest, bytes);
                }
                Some(TimerAction::Timeout) => {
                    let branch = self.clients[i].tx.branch.clone();
                    self.client_timed_out(now, self.clients[i].owner, &branch);
                }
                None => {}
            }
            i += 1;
        }
        self.clients
            .retain(|c| c.tx.state != crate::transaction::ClientState::Terminated);
    }

    /// A request of ours got no final answer in time.
    fn client_timed_out(&mut self, now: Instant, owner: Owner, branch: &str) {
        match owner {
            Owner::Register => {
                if self.reg.branch.as_deref() == Some(branch) {
                    self.registration_failed(now, 408, "Request Timeout");
                }
            }
            Owner::Invite(id) => self.fail_call(now, id, 408, "Request Timeout"),
            Owner::Cancel(_) | Owner::KeepAlive => {}
            Owner::Bye(id) => self.end_call(now, id, EndedBy::Local),
        }
    }

    /// Our 2xx, retransmitted until ACK; after 64·T1 without one, BYE.
    fn ok_timers(&mut self, now: Instant) {
        let t2 = self.cfg.timers.t2;
        let mut give_up = Vec::new();
        let mut resend = Vec::new();
        for c in &mut self.calls {
            if let CallState::Answered(ok) = &mut c.state {
                if now >= ok.give_up {
                    give_up.push(c.id);
                } else if now >= ok.next {
                    ok.interval = (ok.interval * 2).min(t2);
                    ok.next = now + ok.interval;
                    resend.push((ok.dest, ok.bytes.clone()));
                }
            }
        }
        self.stats.retransmissions += resend.len() as u64;
        for (d, b) in resend {
            self.send(d, b);
        }
        for id in give_up {
            let _ = self.send_bye(now, id);
        }
    }

    /// Session timers: no refresh in time means the PBX (or the path to
    /// it) is gone. BYE, and say so.
    fn session_timers(&mut self, now: Instant) {
        let expired: Vec<CallHandle> = self
            .calls
            .iter_mut()
            .filter(|c| c.session_expires.is_some_and(|t| now >= t))
            .map(|c| {
                c.session_expires = None;
                (c.id, &c.state)
            })
            .filter(|(_, s)| matches!(s, CallState::Answered(_) | CallState::Confirmed { .. }))
            .map(|(id, _)| id)
            .collect();
        for id in expired {
            tracing::info!(
                call = id.0,
                "session timer expired without a refresh: hanging up"
            );
            let _ = self.send_bye(now, id);
            self.end_call(now, id, EndedBy::SessionExpired);
        }
    }

    /// The NAT keep-alive and the registration refresh.
    fn registration_timers(&mut self, now: Instant) {
        if let Some(at) = self.reg.keepalive_at {
            if now >= at {
                self.reg.keepalive_at = match self.reg.state {
                    RegState::Registered => self.cfg.keepalive.map(|k| now + k),
                    _ => None,
                };
                if self.reg.state == RegState::Registered {
                    self.send_keepalive(now);
                }
            }
        }
        if let Some(at) = self.reg.refresh_at {
            if now >= at && self.reg.state != RegState::Unregistering {
                self.reg.refresh_at = None;
                self.register(now);
            }
        }
    }

    /// When [`UserAgent::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let clients = self.clients.iter().filter_map(|c| c.tx.deadline());
        let servers = self.servers.deadline();
        let oks = self.calls.iter().filter_map(|c| match &c.state {
            CallState::Answered(o) => Some(o.next.min(o.give_up)),
            _ => None,
        });
        let forget = self.calls.iter().filter_map(|c| match c.state {
            CallState::Ended { forget_at, .. } => Some(forget_at),
            _ => None,
        });
        let sessions = self.calls.iter().filter_map(|c| c.session_expires);
        clients
            .chain(servers)
            .chain(oks)
            .chain(forget)
            .chain(sessions)
            .chain(self.reg.refresh_at)
            .chain(self.reg.keepalive_at)
            .min()
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

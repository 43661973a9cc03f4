//! The sans-IO registrar and proxy.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use myturn_sip::build::{self, token, uri_addr, uri_user, Reply};
use myturn_sip::digest::{self, Algorithm, Challenge, Credentials};
use myturn_sip::msg::{self, Message, Method};
use myturn_sip::server::{self, Arrival, ServerTransactions};
use myturn_sip::transaction::{ClientOutcome, ClientState, ClientTx, TimerAction, Timers};
use rand_core::RngCore;
use rsip::headers::{self as h, UntypedHeader};
use rsip::Header;

use crate::media::{Anchor, MediaCall, MediaCommand, MediaMode, Parked, Then};
use crate::nonce::{NonceCheck, Nonces};
use crate::relay::{PortPool, Side};

/// One SIP account: the pairing server's user.
#[derive(Clone, PartialEq, Eq)]
pub struct Account {
    /// Digest username and address-of-record user part (the nickname).
    pub username: String,
    /// The dialable extension.
    pub extension: String,
    /// The digest password.
    pub password: String,
}

impl std::fmt::Debug for Account {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Account")
            .field("username", &self.username)
            .field("extension", &self.extension)
            .finish_non_exhaustive()
    }
}

/// How the PBX is set up.
#[derive(Debug, Clone)]
pub struct Config {
    /// The address the PBX listens on (its Via and Record-Route).
    pub addr: SocketAddr,
    /// Digest realm.
    pub realm: String,
    /// Challenge algorithms, most preferred first (RFC 8760 §2.4: one
    /// `WWW-Authenticate` each).
    pub algorithms: Vec<Algorithm>,
    /// Shortest binding accepted (423 below it).
    pub min_expires: u32,
    /// Longest binding granted (longer requests are shortened).
    pub max_expires: u32,
    /// Binding lifetime when the REGISTER names none.
    pub default_expires: u32,
    /// Failed authentications from one IP within `fail_window` that block
    /// it.
    pub fail_limit: u32,
    /// The window `fail_limit` counts in.
    pub fail_window: Duration,
    /// How long a blocked IP is ignored.
    pub block_for: Duration,
    /// How long a nonce stays fresh.
    pub nonce_lifetime: Duration,
    /// T1, T2 and T4.
    pub timers: Timers,
    /// Larger datagrams are dropped.
    pub max_message_size: usize,
    /// Where calls' media flows: directly between the clients, through
    /// the built-in relay, or through an external rtpengine.
    pub media: MediaMode,
    /// A relayed call whose media stopped this long is torn down and its
    /// ports freed.
    pub media_timeout: Duration,
}

impl Config {
    /// Defaults for a PBX at `addr`: SHA-256 then MD5, bindings of 60 s to an hour, 5 failures in 5 s block for a minute, media direct.
    pub fn new(addr: SocketAddr) -> Self {
        Config {
            addr,
            realm: "myturn".into(),
            algorithms: vec![Algorithm::Sha256, Algorithm::Md5],
            min_expires: 60,
            max_expires: 3600,
            default_expires: 300,
            fail_limit: 5,
            fail_window: Duration::from_secs(5),
            block_for: Duration::from_secs(60),
            nonce_lifetime: Duration::from_secs(30),
            timers: Timers::default(),
            max_message_size: msg::DEFAULT_MAX_SIZE,
            media: MediaMode::Direct,
            media_timeout: Duration::from_secs(60),
        }
    }
}

pub use myturn_sip::Transmit;

/// What the PBX reports (for logs and the pairing server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A binding was added or refreshed.
    Registered {
        /// The account.
        username: String,
        /// The Contact bound.
        contact: String,
        /// Where the REGISTER came from (where requests for the user go).
        source: SocketAddr,
        /// The lifetime granted, seconds.
        expires: u32,
    },
    /// The binding is gone: `Expires: 0`, expiry, or the account removed.
    Unregistered {
        /// The account.
        username: String,
        /// Why: `expired`, `unregistered`, `account removed`.
        why: &'static str,
    },
    /// Too many failed authentications: the IP is ignored for
    /// [`Config::block_for`].
    Blocked {
        /// The source IP.
        ip: IpAddr,
        /// Failures counted within the window.
        failures: u32,
    },
    /// An INVITE was routed from one user to another's extension.
    CallRouted {
        /// The caller's username.
        from: String,
        /// The callee's username.
        to: String,
    },
}

/// Counters for `/metrics`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// REGISTERs that made or refreshed a binding.
    pub registrations: u64,
    /// Bindings removed (`Expires: 0`, expiry, account removed).
    pub unregistrations: u64,
    /// Credentials that proved nothing (wrong password, unknown user, forged nonce).
    pub auth_failures: u64,
    /// Source IPs blocked.
    pub blocks: u64,
    /// Datagrams ignored from blocked IPs.
    pub blocked_packets: u64,
    /// Datagrams that were not SIP, too large, or not ours to relay.
    pub dropped: u64,
    /// Malformed requests answered with 400/505/513.
    pub rejected: u64,
    /// INVITEs routed to a registered user.
    pub calls_routed: u64,
    /// INVITEs to an unknown extension (404).
    pub calls_not_found: u64,
    /// INVITEs to a user not registered (480).
    pub calls_unavailable: u64,
    /// Request retransmissions absorbed by server transactions.
    pub absorbed: u64,
    /// Calls whose media was anchored (relay or rtpengine).
    pub media_calls: u64,
    /// Calls refused with 503 because the relay's port range was full.
    pub media_exhausted: u64,
    /// SDPs that could not be anchored (unreadable SDP, rtpengine error or
    /// silence); the call was refused, or the message passed unchanged.
    pub media_failures: u64,
    /// Anchored calls torn down because their media stopped.
    pub media_timeouts: u64,
    /// rtpengine control messages sent again for want of a reply.
    pub control_retransmissions: u64,
}

#[derive(Debug, Clone)]
struct Binding {
    contact: String,
    source: SocketAddr,
    expires_at: Instant,
}

/// Failed authentications from one IP.
#[derive(Debug, Default)]
struct Failures {
    times: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

/// An INVITE we forward: the caller's side (a server transaction) and the
/// callee's (a client transaction), RFC 3261 §16.
#[derive(Debug)]
pub(crate) struct Forward {
    pub(crate) upstream_key: String,
    upstream_dest: SocketAddr,
    /// The INVITE as received (to answer it).
    pub(crate) request: Message,
    pub(crate) request_src: SocketAddr,
    pub(crate) client: ClientTx,
    /// The forwarded Request-URI and our Via, for CANCEL and ACK.
    ruri: String,
    our_via: String,
    provisional: bool,
    /// The INVITE waits for its SDP to be anchored: not sent yet.
    pub(crate) held: bool,
    cancel_pending: bool,
    final_sent: bool,
    /// Keep the mapping to relay 2xx retransmissions until then.
    forget_at: Option<Instant>,
}

/// What a deadline in the timer heap belongs to.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Due {
    Server(String),
    Forward(String),
}

/// The registrar and proxy.
pub struct Pbx {
    pub(crate) cfg: Config,
    rng: Box<dyn RngCore + Send>,
    nonces: Nonces,
    accounts: HashMap<String, Account>,
    by_extension: HashMap<String, String>,
    bindings: HashMap<String, Binding>,
    expiries: BTreeSet<(Instant, String)>,
    failures: HashMap<IpAddr, Failures>,
    pub(crate) servers: ServerTransactions,
    pub(crate) forwards: HashMap<String, Forward>,
    /// Our CANCEL client transactions (absorb their 200).
    cancels: Vec<ClientTx>,
    pub(crate) upstream: HashMap<String, String>,
    transmits: VecDeque<Transmit>,
    pub(crate) events: VecDeque<Event>,
    pub(crate) stats: Stats,
    next_housekeeping: Instant,
    rr: String,
    /// Deadlines of server transactions and forwards, so a timer costs
    /// O(log n) instead of a scan of every live transaction. Entries go
    /// stale when a deadline moves; stale ones are skipped when popped.
    timers: BinaryHeap<Reverse<(Instant, Due)>>,
    /// Bumped whenever a binding is added, refreshed or removed.
    bindings_generation: u64,
    /// Anchored calls by SIP Call-ID (this hop's).
    pub(crate) media_calls: HashMap<String, MediaCall>,
    /// The relay's ports (empty unless [`MediaMode::Relay`]).
    pub(crate) pool: PortPool,
    pub(crate) media_out: VecDeque<MediaCommand>,
    /// rtpengine control datagrams to send.
    pub(crate) control_out: VecDeque<Transmit>,
    /// Messages waiting for rtpengine's rewritten SDP, by ng cookie.
    pub(crate) parked: HashMap<String, Parked>,
    /// rtpengine queries in flight: cookie → media id.
    pub(crate) queries: HashMap<String, u64>,
    pub(crate) next_media_id: u64,
    pub(crate) next_query: Option<Instant>,
}

impl std::fmt::Debug for Pbx {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pbx")
            .field("addr", &self.cfg.addr)
            .field("accounts", &self.accounts.len())
            .field("bindings", &self.bindings.len())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

impl Pbx {
    /// A PBX with `cfg`, its nonce key and relay port order drawn from `rng`, started at `now`.
    pub fn new(cfg: Config, mut rng: Box<dyn RngCore + Send>, now: Instant) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let nonces = Nonces::new(key, now, cfg.nonce_lifetime);
        let rr = format!("<sip:{};lr>", cfg.addr);
        let mut pool = match &cfg.media {
            MediaMode::Relay { ports, .. } => PortPool::new(ports.clone()),
            _ => PortPool::new(0..=0),
        };
        pool.rotate(rng.next_u32() as usize);
        Pbx {
            media_calls: HashMap::new(),
            pool,
            media_out: VecDeque::new(),
            control_out: VecDeque::new(),
            parked: HashMap::new(),
            queries: HashMap::new(),
            next_media_id: 1,
            next_query: None,
            nonces,
            rng,
            accounts: HashMap::new(),
            by_extension: HashMap::new(),
            bindings: HashMap::new(),
            expiries: BTreeSet::new(),
            failures: HashMap::new(),
            servers: ServerTransactions::new(cfg.timers),
            forwards: HashMap::new(),
            cancels: Vec::new(),
            upstream: HashMap::new(),
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            next_housekeeping: now + Duration::from_secs(10),
            rr,
            timers: BinaryHeap::new(),
            bindings_generation: 0,
            cfg,
        }
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Changes whenever the set of bindings changes (to refresh copies of
    /// [`Pbx::bindings`] only when needed).
    pub fn bindings_generation(&self) -> u64 {
        self.bindings_generation
    }

    /// Number of live bindings.
    pub fn binding_count(&self) -> usize {
        self.bindings.len()
    }

    /// Puts the current deadline of a server transaction or forward in the
    /// timer heap. Called after anything that may move it.
    pub(crate) fn arm(&mut self, due: Due) {
        let at = match &due {
            Due::Server(k) => self.servers.get(k).and_then(|t| t.deadline()),
            Due::Forward(b) => self.forwards.get(b).and_then(|f| {
                [f.client.deadline(), f.forget_at]
                    .into_iter()
                    .flatten()
                    .min()
            }),
        };
        if let Some(at) = at {
            self.timers.push(Reverse((at, due)));
        }
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Live bindings: (username, contact, source).
    pub fn bindings(&self) -> Vec<(String, String, SocketAddr)> {
        let mut v: Vec<_> = self
            .bindings
            .iter()
            .map(|(u, b)| (u.clone(), b.contact.clone(), b.source))
            .collect();
        v.sort();
        v
    }

    /// IPs blocked at `now`.
    pub fn blocked(&self, now: Instant) -> Vec<IpAddr> {
        self.failures
            .iter()
            .filter(|(_, f)| f.blocked_until.is_some_and(|t| t > now))
            .map(|(ip, _)| *ip)
            .collect()
    }

    /// Replaces the directory. Users no longer in it lose their binding at
    /// once (logout, kick, lease expiry in the pairing server).
    pub fn set_accounts(&mut self, accounts: impl IntoIterator<Item = Account>) {
        self.accounts = accounts
            .into_iter()
            .map(|a| (a.username.clone(), a))
            .collect();
        self.by_extension = self
            .accounts
            .values()
            .map(|a| (a.extension.clone(), a.username.clone()))
            .collect();
        let gone: Vec<String> = self
            .bindings
            .keys()
            .filter(|u| !self.accounts.contains_key(*u))
            .cloned()
            .collect();
        for u in gone {
            self.remove_binding(&u, "account removed");
        }
    }

    fn remove_binding(&mut self, user: &str, why: &'static str) {
        if let Some(b) = self.bindings.remove(user) {
            self.bindings_generation += 1;
            self.expiries.remove(&(b.expires_at, user.to_owned()));
            self.stats.unregistrations += 1;
            self.events.push_back(Event::Unregistered {
                username: user.to_owned(),
                why,
            });
        }
    }

    pub(crate) fn send(&mut self, dest: SocketAddr, payload: Vec<u8>) {
        self.transmits.push_back(Transmit { dest, payload });
    }

    /// Answers `req` (through its server transaction, if it has one),
    /// with a fresh To tag on anything but 100.
    pub(crate) fn respond(
        &mut self,
        now: Instant,
        req: &Message,
        src: SocketAddr,
        reply: Reply<'_>,
    ) {
        let code = reply.code();
        let tag = (code > 100).then(|| token(self.rng.as_mut(), 10));
        let reply = match &tag {
            Some(t) => reply.tag(t),
            None => reply,
        };
        let bytes = reply.for_source(req, src);
        let key = build::server_key(req);
        let t = self
            .servers
            .respond(now, &key, code, bytes, build::response_dest(req, src));
        self.arm(Due::Server(key));
        self.transmits.push_back(t);
    }

    /// A request retransmission a server transaction absorbed.
    fn absorbed(&mut self, resend: Option<Transmit>) {
        self.stats.absorbed += 1;
        self.transmits.extend(resend);
    }

    // ---- input -----------------------------------------------------------

    /// Feeds one datagram. Never panics, whatever the bytes.
    pub fn handle_datagram(&mut self, now: Instant, src: SocketAddr, data: &[u8]) {
        if self.is_blocked(src.ip(), now) {
            self.stats.blocked_packets += 1;
            return;
        }
        match msg::parse_with_limit(data, self.cfg.max_message_size) {
            Ok(m) if m.is_request() => self.on_request(now, src, m),
            Ok(m) => self.on_response(now, src, m),
            Err(r) => {
                let rng = self.rng.as_mut();
                let answer = server::malformed(data, src, &r, || token(rng, 10))
                    .count(&mut self.stats.rejected, &mut self.stats.dropped);
                self.transmits.extend(answer);
            }
        }
    }

    fn is_blocked(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.failures.get_mut(&ip) {
            Some(f) => match f.blocked_until {
                Some(t) if t > now => true,
                Some(_) => {
                    f.blocked_until = None;
                    f.times.clear();
                    false
                }
                None => false,
            },
            None => false,
        }
    }

    /// Counts a failed authentication; blocks the IP past the limit.
    fn auth_failed(&mut self, now: Instant, ip: IpAddr, who: &str) {
        self.stats.auth_failures += 1;
        let window = self.cfg.fail_window;
        let f = self.failures.entry(ip).or_default();
        f.times.push_back(now);
        while f
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            f.times.pop_front();
        }
        let n = f.times.len() as u32;
        tracing::info!(%ip, user = %who, failures = n, "SIP authentication failed");
        if n >= self.cfg.fail_limit {
            f.blocked_until = Some(now + self.cfg.block_for);
            self.stats.blocks += 1;
            tracing::warn!(%ip, failures = n, block_secs = self.cfg.block_for.as_secs(), "SIP source blocked after repeated authentication failures");
            self.events.push_back(Event::Blocked { ip, failures: n });
        }
    }

    fn challenges(&mut self, now: Instant, proxy: bool, stale: bool) -> Vec<Header> {
        let nonce = self.nonces.issue(now);
        self.cfg
            .algorithms
            .iter()
            .map(|alg| {
                let v = Challenge {
                    realm: self.cfg.realm.clone(),
                    nonce: nonce.clone(),
                    opaque: None,
                    algorithm: *alg,
                    qop_auth: true,
                    stale,
                }
                .to_header_value();
                if proxy {
                    h::ProxyAuthenticate::new(v).into()
                } else {
                    h::WwwAuthenticate::new(v).into()
                }
            })
            .collect()
    }

    /// Checks the credentials in `header` of `req`. `Ok(username)` when they
    /// prove the account's password; `Err(stale)` otherwise (with failures
    /// counted). Unknown users and wrong passwords are indistinguishable.
    fn authenticate(
        &mut self,
        now: Instant,
        req: &Message,
        src: SocketAddr,
        header: &str,
    ) -> Result<String, Option<bool>> {
        let creds: Vec<Credentials> = req
            .headers(header)
            .filter_map(|v| Credentials::parse(v).ok())
            .filter(|c| c.realm == self.cfg.realm)
            .collect();
        let Some(c) = creds.into_iter().next() else {
            return Err(None); // no credentials: a plain challenge
        };
        if !self.cfg.algorithms.contains(&c.algorithm) {
            self.auth_failed(now, src.ip(), &c.username);
            return Err(Some(false));
        }
        match self.nonces.check(&c.nonce, now) {
            NonceCheck::Fresh => {}
            NonceCheck::Stale => return Err(Some(true)),
            NonceCheck::Forged => {
                self.auth_failed(now, src.ip(), &c.username);
                return Err(Some(false));
            }
        }
        let ok = self
            .accounts
            .get(&c.username)
            .is_some_and(|a| digest::verify(&c, &a.password, &req.method().to_string()));
        if ok {
            Ok(c.username)
        } else {
            self.auth_failed(now, src.ip(), &c.username);
            Err(Some(false))
        }
    }

    fn on_request(&mut self, now: Instant, src: SocketAddr, req: Message) {
        let method = req.method().clone();
        if method == Method::REGISTER {
            // The registrar answers statelessly, as Kamailio's `sl` does: a
            // retransmitted REGISTER is simply processed again, which is
            // idempotent (same binding, or a fresh challenge), and no
            // transaction is kept for 32 s per request under load.
            if req.header("Max-Forwards").is_some_and(|m| m.trim() == "0") {
                return self.respond(now, &req, src, Reply::new(483, "Too Many Hops"));
            }
            return self.on_register(now, src, &req);
        }
        let key = build::server_key(&req);
        match self.servers.arrival(now, &key, &method) {
            Arrival::Absorbed(resend) => return self.absorbed(resend),
            Arrival::AckAbsorbed => return self.arm(Due::Server(key)),
            Arrival::New => {}
        }
        if req.header("Max-Forwards").is_some_and(|m| m.trim() == "0") && method != Method::ACK {
            let dest = build::response_dest(&req, src);
            self.servers.open(key, method == Method::INVITE, dest);
            return self.respond(now, &req, src, Reply::new(483, "Too Many Hops"));
        }
        let in_dialog = req.to().is_some_and(|t| t.tag().is_some());
        match method {
            Method::Known(rsip::Method::Cancel) => return self.on_cancel(now, src, &req),
            Method::Known(rsip::Method::Ack) => return self.route_in_dialog(now, src, &req),
            _ if in_dialog => return self.route_in_dialog(now, src, &req),
            _ => {}
        }
        let invite = method == Method::INVITE;
        self.servers
            .open(key.clone(), invite, build::response_dest(&req, src));
        self.dispatch(now, src, req, method);
        // A request left unanswered (a source blocked mid-way) keeps no
        // transaction: nothing would ever end it.
        if self
            .servers
            .get(&key)
            .is_some_and(|t| t.last_response.is_none())
        {
            self.servers.remove(&key);
        }
    }

    fn dispatch(&mut self, now: Instant, src: SocketAddr, req: Message, method: Method) {
        match method {
            Method::Known(rsip::Method::Invite) => self.on_invite(now, src, req),
            Method::Known(rsip::Method::Options) => {
                let extra = vec![h::Allow::new(ALLOW).into()];
                self.respond(now, &req, src, Reply::new(200, "OK").headers(extra));
            }
            Method::Known(rsip::Method::Bye) => self.respond(
                now,
                &req,
                src,
                Reply::new(481, "Call/Transaction Does Not Exist"),
            ),
            Method::Extension(_) => {
                let extra = vec![h::Allow::new(ALLOW).into()];
                self.respond(
                    now,
                    &req,
                    src,
                    Reply::new(501, "Not Implemented").headers(extra),
                );
            }
            _ => {
                let extra = vec![h::Allow::new(ALLOW).into()];
                self.respond(
                    now,
                    &req,
                    src,
                    Reply::new(405, "Method Not Allowed").headers(extra),
                );
            }
        }
    }

    // ---- registrar (RFC 3261 §10.3) ----------------------------------------

    fn on_register(&mut self, now: Instant, src: SocketAddr, req: &Message) {
        let user = match self.authenticate(now, req, src, "Authorization") {
            Ok(u) => u,
            Err(stale) => {
                if self.is_blocked(src.ip(), now) {
                    return; // just blocked: say nothing more
                }
                let ch = self.challenges(now, false, stale == Some(true));
                return self.respond(now, req, src, Reply::new(401, "Unauthorized").headers(ch));
            }
        };
        let aor_user = req
            .to()
            .map(|t| uri_user(&t.uri).to_owned())
            .unwrap_or_default();
        if aor_user != user {
            // Credentials of one user for another's address of record.
            self.auth_failed(now, src.ip(), &user);
            return self.respond(now, req, src, Reply::new(403, "Forbidden"));
        }
        let contacts = req.name_addrs("Contact");
        let header_expires = req.expires();
        if contacts.iter().any(|c| c.uri == "*") {
            if header_expires != Some(0) || contacts.len() != 1 {
                return self.respond(
                    now,
                    req,
                    src,
                    Reply::new(400, "Bad Request (* needs Expires: 0)"),
                );
            }
            self.remove_binding(&user, "unregistered");
            return self.respond(now, req, src, Reply::new(200, "OK"));
        }
        let Some(contact) = contacts.into_iter().last() else {
            // A query: the current binding.
            let extra = self.binding_headers(&user, now);
            return self.respond(now, req, src, Reply::new(200, "OK").headers(extra));
        };
        let wanted = contact
            .param("expires")
            .and_then(|e| e.parse::<u64>().ok())
            .or(header_expires.map(u64::from))
            .unwrap_or(u64::from(self.cfg.default_expires));
        if wanted == 0 {
            self.remove_binding(&user, "unregistered");
            return self.respond(now, req, src, Reply::new(200, "OK"));
        }
        if wanted < u64::from(self.cfg.min_expires) {
            let extra = vec![h::MinExpires::new(self.cfg.min_expires.to_string()).into()];
            return self.respond(
                now,
                req,
                src,
                Reply::new(423, "Interval Too Brief").headers(extra),
            );
        }
        let granted = wanted.min(u64::from(self.cfg.max_expires)) as u32;
        if let Some(old) = self.bindings.remove(&user) {
            self.expiries.remove(&(old.expires_at, user.clone()));
        }
        let expires_at = now + Duration::from_secs(u64::from(granted));
        self.bindings.insert(
            user.clone(),
            Binding {
                contact: contact.uri.clone(),
                source: src,
                expires_at,
            },
        );
        self.expiries.insert((expires_at, user.clone()));
        self.bindings_generation += 1;
        self.stats.registrations += 1;
        self.events.push_back(Event::Registered {
            username: user.clone(),
            contact: contact.uri,
            source: src,
            expires: granted,
        });
        let extra = self.binding_headers(&user, now);
        self.respond(now, req, src, Reply::new(200, "OK").headers(extra));
    }

    fn binding_headers(&self, user: &str, now: Instant) -> Vec<Header> {
        match self.bindings.get(user) {
            Some(b) => {
                let left = b.expires_at.saturating_duration_since(now).as_secs();
                vec![h::Contact::new(format!("<{}>;expires={left}", b.contact)).into()]
            }
            None => Vec::new(),
        }
    }

    // ---- proxy (RFC 3261 §16) ----------------------------------------------

    fn our_via(&self, branch: &str) -> String {
        format!("SIP/2.0/UDP {};branch={branch}", self.cfg.addr)
    }

    fn on_invite(&mut self, now: Instant, src: SocketAddr, req: Message) {
        let caller = match self.authenticate(now, &req, src, "Proxy-Authorization") {
            Ok(u) => u,
            Err(stale) => {
                if self.is_blocked(src.ip(), now) {
                    return;
                }
                let ch = self.challenges(now, true, stale == Some(true));
                return self.respond(
                    now,
                    &req,
                    src,
                    Reply::new(407, "Proxy Authentication Required").headers(ch),
                );
            }
        };
        let from_user = req
            .from()
            .map(|f| uri_user(&f.uri).to_owned())
            .unwrap_or_default();
        if from_user != caller {
            return self.respond(
                now,
                &req,
                src,
                Reply::new(403, "Forbidden (From is not you)"),
            );
        }
        let ext = uri_user(req.request_uri()).to_owned();
        let Some(callee) = self.by_extension.get(&ext).cloned() else {
            self.stats.calls_not_found += 1;
            return self.respond(now, &req, src, Reply::new(404, "Not Found"));
        };
        let Some(binding) = self.bindings.get(&callee).cloned() else {
            self.stats.calls_unavailable += 1;
            return self.respond(now, &req, src, Reply::new(480, "Temporarily Unavailable"));
        };
        // 100 Trying at once: the caller stops retransmitting (§16.2).
        self.respond(now, &req, src, Reply::new(100, "Trying"));
        // Media anchoring first: with the relay full, a 503 and nothing
        // forwarded.
        let Ok(anchored) = self.open_media(now, &req, src, binding.source) else {
            return;
        };

        let branch = format!("z9hG4bK{}", token(self.rng.as_mut(), 18));
        let our_via = self.our_via(&branch);
        let bytes = self.forward_bytes(&req, src, &binding.contact, &our_via, true);
        let upstream_key = build::server_key(&req);
        let anchor = anchored.then(|| Anchor::of(&req, src, Side::Caller, true));
        let client = ClientTx::new(
            now,
            &self.cfg.timers,
            branch.clone(),
            "INVITE",
            bytes.clone(),
            binding.source,
        );
        self.upstream.insert(upstream_key.clone(), branch.clone());
        let branch_key = branch.clone();
        self.forwards.insert(
            branch,
            Forward {
                upstream_key,
                upstream_dest: build::response_dest(&req, src),
                request: req,
                request_src: src,
                client,
                ruri: binding.contact.clone(),
                our_via,
                provisional: false,
                held: anchored,
                cancel_pending: false,
                final_sent: false,
                forget_at: None,
            },
        );
        self.arm(Due::Forward(branch_key.clone()));
        self.stats.calls_routed += 1;
        tracing::info!(from = %caller, to = %callee, extension = %ext, "call routed");
        self.events.push_back(Event::CallRouted {
            from: caller,
            to: callee,
        });
        self.out(now, bytes, anchor, Then::Invite { branch: branch_key });
    }

    /// The request with our Via on top, the caller's Via completed, the
    /// Request-URI replaced, Max-Forwards decremented, our credentials
    /// removed, and (for a dialog-creating INVITE) our Record-Route.
    fn forward_bytes(
        &self,
        req: &Message,
        src: SocketAddr,
        ruri: &str,
        our_via: &str,
        record_route: bool,
    ) -> Vec<u8> {
        let mut prepend: Vec<Header> = vec![h::Via::new(our_via.to_owned()).into()];
        if record_route {
            prepend.push(h::RecordRoute::new(self.rr.clone()).into());
        }
        let mut first_via = true;
        let own_route = self.is_own_route_fn();
        let mut route_stripped = false;
        build::forward(req, ruri, &prepend, |hdr| match hdr {
            Header::Via(v) if first_via => {
                first_via = false;
                Some(h::Via::new(build::via_with_source(v.value(), src)).into())
            }
            Header::MaxForwards(m) => {
                let n = m
                    .value()
                    .trim()
                    .parse::<u32>()
                    .unwrap_or(70)
                    .saturating_sub(1);
                Some(h::MaxForwards::new(n.to_string()).into())
            }
            Header::ProxyAuthorization(_) => None,
            Header::Route(r) if !route_stripped && own_route(r.value()) => {
                route_stripped = true;
                None
            }
            other => Some(other.clone()),
        })
    }

    fn is_own_route_fn(&self) -> impl Fn(&str) -> bool + 'static {
        let addr = self.cfg.addr;
        move |route: &str| uri_addr(route) == Some(addr)
    }

    /// ACK for 2xx and in-dialog requests: loose routing through us.
    fn route_in_dialog(&mut self, now: Instant, src: SocketAddr, req: &Message) {
        let own = self.is_own_route_fn();
        let routes: Vec<String> = req.headers("Route").map(str::to_owned).collect();
        let remaining: Vec<&String> = routes.iter().skip_while(|r| !own(r)).skip(1).collect();
        let next = match remaining.first() {
            Some(r) => uri_addr(r),
            None => {
                // The Request-URI is a user's contact: send to where that
                // user's binding came from (NAT-safe), or to the URI itself.
                let ruri = req.request_uri();
                self.bindings
                    .values()
                    .find(|b| b.contact == ruri)
                    .map(|b| b.source)
                    .or_else(|| uri_addr(ruri))
            }
        };
        let routed_via_us = routes.iter().any(|r| own(r));
        let Some(next) = next.filter(|_| routed_via_us) else {
            if req.method() != &Method::ACK {
                let key = build::server_key(req);
                self.servers
                    .open(key, false, build::response_dest(req, src));
                self.respond(
                    now,
                    req,
                    src,
                    Reply::new(481, "Call/Transaction Does Not Exist"),
                );
            }
            return;
        };
        // Stateless: a branch derived from the incoming one, so
        // retransmissions are forwarded identically (§16.11).
        let incoming = req
            .top_via()
            .map(|v| format!("{}{}", v.branch().unwrap_or_default(), v.sent_by()))
            .unwrap_or_default();
        let branch = format!("z9hG4bKsl{}", short_hash(&incoming));
        let our_via = self.our_via(&branch);
        let bytes = self.forward_bytes(req, src, req.request_uri(), &our_via, false);
        let anchor = self.in_dialog_anchor(req, src);
        self.out(now, bytes, anchor, Then::Send { dest: next });
        if req.method() == &Method::BYE {
            self.close_media(req.call_id(), "BYE");
        }
    }

    fn on_cancel(&mut self, now: Instant, src: SocketAddr, req: &Message) {
        let invite_key = build::server_key(req);
        let cancel_key = format!("{invite_key}|CANCEL");
        if let Some(Arrival::Absorbed(resend)) = self.servers.absorb(&cancel_key) {
            return self.absorbed(resend);
        }
        let dest = build::response_dest(req, src);
        self.servers.open(cancel_key.clone(), false, dest);
        let found = self.upstream.get(&invite_key).cloned();
        let (code, reason) = if found.is_some() {
            (200, "OK")
        } else {
            (481, "Call/Transaction Does Not Exist")
        };
        let tag = token(self.rng.as_mut(), 10);
        let bytes = Reply::new(code, reason).tag(&tag).for_source(req, src);
        let t = self.servers.respond(now, &cancel_key, code, bytes, dest);
        self.arm(Due::Server(cancel_key));
        self.transmits.push_back(t);
        let Some(branch) = found else { return };
        let Some(fwd) = self.forwards.get_mut(&branch) else {
            return;
        };
        if fwd.final_sent {
            return;
        }
        if fwd.provisional {
            self.send_cancel_downstream(now, &branch);
        } else {
            fwd.cancel_pending = true;
        }
    }

    fn send_cancel_downstream(&mut self, now: Instant, branch: &str) {
        let Some(fwd) = self.forwards.get_mut(branch) else {
            return;
        };
        fwd.cancel_pending = false;
        let r = &fwd.request;
        let headers: Vec<Header> = vec![
            h::Via::new(fwd.our_via.clone()).into(),
            h::From::new(r.header("From").unwrap_or_default().to_owned()).into(),
            h::To::new(r.header("To").unwrap_or_default().to_owned()).into(),
            h::CallId::new(r.call_id().to_owned()).into(),
            h::CSeq::new(format!("{} CANCEL", r.cseq())).into(),
            h::MaxForwards::new("70").into(),
        ];
        let Ok(bytes) = build::request(rsip::Method::Cancel, &fwd.ruri, headers, b"") else {
            return;
        };
        let dest = fwd.client.dest;
        let tx = ClientTx::new(
            now,
            &self.cfg.timers,
            branch.to_owned(),
            "CANCEL",
            bytes.clone(),
            dest,
        );
        self.cancels.push(tx);
        self.send(dest, bytes);
    }

    fn on_response(&mut self, now: Instant, src: SocketAddr, resp: Message) {
        let Some(code) = resp.status() else { return };
        let vias = resp.vias();
        let Some(top) = vias.first() else { return };
        if build::via_dest(top) != Some(self.cfg.addr) && top.sent_by() != self.cfg.addr.to_string()
        {
            self.stats.dropped += 1;
            return; // not ours to relay
        }
        let branch = top.branch().unwrap_or_default().to_owned();
        let method = resp.cseq_method().clone();
        let timers = self.cfg.timers;
        if method == Method::CANCEL {
            if let Some(tx) = self.cancels.iter_mut().find(|t| t.branch == branch) {
                tx.on_response(now, &timers, code);
            }
            return;
        }
        if method == Method::INVITE {
            if let Some(up) = self.forwards.get(&branch).map(|f| f.upstream_key.clone()) {
                self.on_forward_response(now, src, &branch, code, &resp);
                self.arm(Due::Forward(branch));
                self.arm(Due::Server(up));
                return;
            }
        }
        // Stateless relay (in-dialog requests' responses): pop our Via.
        match vias.get(1).and_then(build::via_dest) {
            Some(next) => {
                let bytes = strip_top_via(&resp);
                let anchor = self.in_dialog_anchor(&resp, src);
                self.out(now, bytes, anchor, Then::Send { dest: next });
            }
            None => self.stats.dropped += 1,
        }
    }

    /// Passes a response from the callee (at `src`) up without our Via,
    /// its SDP anchored.
    fn pass_up(&mut self, now: Instant, resp: &Message, src: SocketAddr, then: Then) {
        let bytes = strip_top_via(resp);
        let anchor = self.response_anchor(resp, src);
        self.out(now, bytes, anchor, then);
    }

    /// A response to an INVITE we forwarded (RFC 3261 §16.7).
    fn on_forward_response(
        &mut self,
        now: Instant,
        src: SocketAddr,
        branch: &str,
        code: u16,
        resp: &Message,
    ) {
        let timers = self.cfg.timers;
        let Some(fwd) = self.forwards.get_mut(branch) else {
            return;
        };
        let outcome = fwd.client.on_response(now, &timers, code);
        // Where whatever goes up goes: the caller, through its server
        // transaction.
        let up = Then::Upstream {
            key: fwd.upstream_key.clone(),
            dest: fwd.upstream_dest,
            code,
        };
        if (200..300).contains(&code) {
            // 2xx, first or retransmitted, goes up statelessly.
            fwd.final_sent = true;
            fwd.forget_at.get_or_insert(now + timers.t64());
            return self.pass_up(now, resp, src, up);
        }
        match outcome {
            ClientOutcome::Absorb => {
                if let Some(ack) = fwd.client.ack.clone() {
                    let d = fwd.client.dest;
                    self.send(d, ack);
                }
            }
            ClientOutcome::Deliver if code < 200 => {
                fwd.provisional = true;
                let pending = fwd.cancel_pending;
                if code > 100 {
                    self.pass_up(now, resp, src, up);
                }
                if pending {
                    self.send_cancel_downstream(now, branch);
                }
            }
            ClientOutcome::Deliver => {
                // Non-2xx final: ACK it hop by hop, pass it up.
                let ack = hop_ack(resp, &fwd.ruri, &fwd.our_via);
                if let Some(ack) = &ack {
                    fwd.client.ack = Some(ack.clone());
                }
                fwd.final_sent = true;
                fwd.forget_at.get_or_insert(now + timers.t64());
                let dest = fwd.client.dest;
                if let Some(ack) = ack {
                    self.send(dest, ack);
                }
                let bytes = strip_top_via(resp);
                self.finish(now, bytes, up);
                self.close_media(resp.call_id(), "call failed");
            }
            ClientOutcome::Timeout => {}
        }
    }

    // ---- time --------------------------------------------------------------

    /// Fires every timer that is due at `now`.
    pub fn handle_timeout(&mut self, now: Instant) {
        while let Some(Reverse((at, due))) = self.timers.peek().cloned() {
            if at > now {
                break;
            }
            self.timers.pop();
            match due {
                Due::Server(key) => self.server_timer(now, key),
                Due::Forward(branch) => self.forward_timer(now, branch),
            }
        }
        self.cancel_timers(now);
        self.expire_bindings(now);
        self.media_timers(now);
        self.housekeeping(now);
    }

    /// A server transaction's timer (G, H, I, J or L) from the heap.
    fn server_timer(&mut self, now: Instant, key: String) {
        let Some(tx) = self.servers.get(&key) else {
            return;
        };
        if tx.deadline().is_none_or(|d| d > now) {
            return; // stale entry: the deadline moved
        }
        let resend = self.servers.fire(now, &key);
        self.transmits.extend(resend);
        // Nothing to arm once it is gone.
        self.arm(Due::Server(key));
    }

    /// A forwarded INVITE's timer: its mapping forgotten, timer A (the
    /// INVITE again) or timer B (408 to the caller).
    fn forward_timer(&mut self, now: Instant, branch: String) {
        let timers = self.cfg.timers;
        let Some(f) = self.forwards.get_mut(&branch) else {
            return;
        };
        if f.forget_at.is_some_and(|t| t <= now) {
            let f = self.forwards.remove(&branch);
            if let Some(f) = f {
                self.upstream.remove(&f.upstream_key);
            }
            return;
        }
        if f.client.deadline().is_none_or(|d| d > now) {
            return self.arm(Due::Forward(branch));
        }
        match f.client.on_timeout(now, &timers) {
            // Timer A: the INVITE again, to the callee (unless it still
            // waits for its SDP to be anchored).
            Some(TimerAction::Retransmit) if !f.held => {
                let (d, b) = (f.client.dest, f.client.request.clone());
                self.send(d, b);
            }
            // Timer B: 408 to the caller.
            Some(TimerAction::Timeout) if !f.final_sent => {
                f.final_sent = true;
                f.forget_at = Some(now + timers.t64());
                let (req, src) = (f.request.clone(), f.request_src);
                self.respond(now, &req, src, Reply::new(408, "Request Timeout"));
                self.close_media(req.call_id(), "no answer");
            }
            _ => {}
        }
        self.arm(Due::Forward(branch));
    }

    /// Our CANCELs: retransmitted until answered (timer E), then gone.
    fn cancel_timers(&mut self, now: Instant) {
        let timers = self.cfg.timers;
        for c in &mut self.cancels {
            if c.on_timeout(now, &timers) == Some(TimerAction::Retransmit) {
                self.transmits.push_back(Transmit {
                    dest: c.dest,
                    payload: c.request.clone(),
                });
            }
        }
        self.cancels.retain(|c| c.state != ClientState::Terminated);
    }

    /// Bindings whose lifetime ran out.
    fn expire_bindings(&mut self, now: Instant) {
        while let Some((at, user)) = self.expiries.first().cloned() {
            if at > now {
                break;
            }
            self.expiries.remove(&(at, user.clone()));
            if self.bindings.get(&user).is_some_and(|b| b.expires_at == at) {
                self.bindings.remove(&user);
                self.bindings_generation += 1;
                self.stats.unregistrations += 1;
                self.events.push_back(Event::Unregistered {
                    username: user,
                    why: "expired",
                });
            }
        }
    }

    /// Every 10 s: forgets failure counts that no longer matter.
    fn housekeeping(&mut self, now: Instant) {
        if now < self.next_housekeeping {
            return;
        }
        self.next_housekeeping = now + Duration::from_secs(10);
        let window = self.cfg.fail_window;
        self.failures.retain(|_, f| {
            f.blocked_until.is_some_and(|t| t > now)
                || f.times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) <= window)
        });
    }

    /// When [`Pbx::handle_timeout`] must next be called.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let heap = self.timers.peek().map(|Reverse((at, _))| *at);
        let c = self.cancels.iter().filter_map(|c| c.deadline());
        c.chain(heap)
            .chain(self.expiries.first().map(|(t, _)| *t))
            .chain(self.media_deadline())
            .chain(Some(self.next_housekeeping))
            .min()
    }

    /// The next SIP datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        self.transmits.pop_front()
    }

    /// The next event to report.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }
}

/// Methods the PBX itself answers or routes.
pub const ALLOW: &str = "INVITE, ACK, CANCEL, BYE, OPTIONS, REGISTER, UPDATE, INFO";

fn short_hash(s: &str) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes())
        .iter()
        .take(9)
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// The response without its top Via (ours), to pass upstream.
fn strip_top_via(resp: &Message) -> Vec<u8> {
    let mut first = true;
    build::forward(resp, "", &[], |hdr| match hdr {
        Header::Via(_) if first => {
            first = false;
            None
        }
        other => Some(other.clone()),
    })
}

/// The ACK a proxy sends for a non-2xx final it received (§17.1.1.3).
fn hop_ack(resp: &Message, ruri: &str, our_via: &str) -> Option<Vec<u8>> {
    let headers: Vec<Header> = vec![
        h::Via::new(our_via.to_owned()).into(),
        h::From::new(resp.header("From")?.to_owned()).into(),
        h::To::new(resp.header("To")?.to_owned()).into(),
        h::CallId::new(resp.call_id().to_owned()).into(),
        h::CSeq::new(format!("{} ACK", resp.cseq())).into(),
        h::MaxForwards::new("70").into(),
    ];
    build::request(rsip::Method::Ack, ruri, headers, b"").ok()
}

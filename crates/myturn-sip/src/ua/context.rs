//! What the agent lends each of its parts (registration, keep-alive,
//! calls) so that none of them reaches back into the agent: the
//! configuration, the RNG, the outbox (datagrams, events, counters), the
//! client and server transactions, the agent's timer table, and the
//! request and response plumbing they all share (Via, From, Contact,
//! starting a client transaction, answering within a server one).

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use web_time::Instant;

use rand_core::RngCore;
use rsip::headers::{self as h, UntypedHeader};
use rsip::Header;

use super::config::{Config, Transport};
use super::event::{CallHandle, Event, Stats};
use super::timer::Timers;
use crate::build::{self, token, Reply};
use crate::msg::{Message, NameAddr};
use crate::server::ServerTransactions;
use crate::transaction::{ClientState, ClientTx, TimerAction};
use crate::Transmit;

/// Who a client transaction works for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Owner {
    Register,
    KeepAlive,
    Invite(CallHandle),
    Cancel(CallHandle),
    Bye(CallHandle),
}

/// A client transaction and the part it works for.
#[derive(Debug)]
pub(super) struct Client {
    pub(super) tx: ClientTx,
    pub(super) owner: Owner,
}

/// What the agent has to give its user: datagrams, events, counters.
#[derive(Debug, Default)]
pub(super) struct Outbox {
    pub(super) transmits: VecDeque<Transmit>,
    pub(super) events: VecDeque<Event>,
    pub(super) stats: Stats,
}

/// The agent's shared state, lent to a part for one call.
pub(super) struct Context {
    pub(super) cfg: Config,
    pub(super) rng: Box<dyn RngCore + Send>,
    /// The address our Contact names: the local one until the proxy shows
    /// us a public one (registration learns it).
    pub(super) contact: SocketAddr,
    pub(super) out: Outbox,
    pub(super) clients: Vec<Client>,
    pub(super) servers: ServerTransactions,
    /// The agent's own timers (each call keeps its own table).
    pub(super) timers: Timers,
}

impl Context {
    pub(super) fn new(cfg: Config, rng: Box<dyn RngCore + Send>) -> Self {
        Context {
            contact: cfg.local,
            servers: ServerTransactions::new(cfg.timers),
            cfg,
            rng,
            out: Outbox::default(),
            clients: Vec::new(),
            timers: Timers::default(),
        }
    }

    // ---- drawing ---------------------------------------------------------

    /// `n` random token characters (tags, Call-IDs, cnonces).
    pub(super) fn token(&mut self, n: usize) -> String {
        token(self.rng.as_mut(), n)
    }

    pub(super) fn new_branch(&mut self) -> String {
        format!("z9hG4bK{}", self.token(16))
    }

    // ---- headers ---------------------------------------------------------

    /// Our address of record.
    pub(super) fn aor(&self) -> String {
        format!("sip:{}@{}", self.cfg.username, self.cfg.domain)
    }

    pub(super) fn contact_header(&self) -> String {
        match self.cfg.transport {
            Transport::Udp => format!("<sip:{}@{}>", self.cfg.username, self.contact),
            Transport::Tls => format!("<sip:{}@{};transport=tls>", self.cfg.username, self.contact),
            Transport::Ws => format!("<sip:{}@{};transport=ws>", self.cfg.username, self.contact),
        }
    }

    pub(super) fn via(&self, branch: &str) -> String {
        format!(
            "SIP/2.0/{} {};rport;branch={branch}",
            self.cfg.transport.via_name(),
            self.cfg.local
        )
    }

    /// From for `uri` (the AOR outside a dialog) with our display name.
    pub(super) fn our_from_as(&self, uri: String, tag: &str) -> String {
        let na = NameAddr {
            display: self.cfg.display_name.clone(),
            uri,
            params: vec![("tag".into(), Some(tag.to_owned()))],
        };
        na.to_string()
    }

    /// From with our AOR.
    pub(super) fn our_from(&self, tag: &str) -> String {
        self.our_from_as(self.aor(), tag)
    }

    /// Max-Forwards and User-Agent, last in every request.
    pub(super) fn common_headers(&self, headers: &mut Vec<Header>) {
        headers.push(h::MaxForwards::new("70").into());
        headers.push(h::UserAgent::new(self.cfg.user_agent.clone()).into());
    }

    /// The address the proxy saw a request of ours come from (RFC 3581:
    /// `received`, and `rport` when it filled it in).
    pub(super) fn learnt(&self, resp: &Message) -> Option<SocketAddr> {
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

    // ---- output ----------------------------------------------------------

    pub(super) fn send(&mut self, dest: SocketAddr, payload: Vec<u8>) {
        self.out.transmits.push_back(Transmit { dest, payload });
    }

    pub(super) fn event(&mut self, event: Event) {
        self.out.events.push_back(event);
    }

    /// A request retransmission a server transaction absorbed.
    pub(super) fn absorbed(&mut self, resend: Option<Transmit>) {
        self.out.stats.absorbed += 1;
        self.out.transmits.extend(resend);
    }

    /// Sends a request in a new client transaction working for `owner`.
    pub(super) fn start_client(
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

    /// Answers `req` with a final response carrying a new To tag (a
    /// request this agent refuses or answers outside any dialog).
    pub(super) fn respond_fresh(
        &mut self,
        now: Instant,
        req: &Message,
        src: SocketAddr,
        reply: Reply<'_>,
    ) {
        let tag = self.token(12);
        self.respond(now, req, src, reply.tag(&tag));
    }

    /// Answers `req` within its server transaction.
    pub(super) fn respond(
        &mut self,
        now: Instant,
        req: &Message,
        src: SocketAddr,
        reply: Reply<'_>,
    ) {
        let (key, dest) = (build::server_key(req), build::response_dest(req, src));
        let code = reply.code();
        self.respond_in(now, &key, code, reply.for_request(req), dest);
    }

    /// Sends a built response within the server transaction `key`.
    pub(super) fn respond_in(
        &mut self,
        now: Instant,
        key: &str,
        code: u16,
        bytes: Vec<u8>,
        dest: SocketAddr,
    ) {
        let t = self.servers.respond(now, key, code, bytes, dest);
        self.out.transmits.push_back(t);
    }

    // ---- client transactions ----------------------------------------------

    /// Client transaction timers: retransmissions (timers A, E) sent, and
    /// the transactions that timed out (B, F) with their branch, for their
    /// owners to hear of; terminated transactions dropped.
    pub(super) fn client_timers(&mut self, now: Instant) -> Vec<(Owner, String)> {
        let timers = self.cfg.timers;
        let mut timed_out = Vec::new();
        for c in &mut self.clients {
            match c.tx.on_timeout(now, &timers) {
                Some(TimerAction::Retransmit) => {
                    self.out.stats.retransmissions += 1;
                    let payload = c.tx.request.clone();
                    self.out.transmits.push_back(Transmit {
                        dest: c.tx.dest,
                        payload,
                    });
                }
                Some(TimerAction::Timeout) => timed_out.push((c.owner, c.tx.branch.clone())),
                None => {}
            }
        }
        self.clients
            .retain(|c| c.tx.state != ClientState::Terminated);
        timed_out
    }
}

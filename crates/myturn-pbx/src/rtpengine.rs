//! The PBX's side of the conversation with rtpengine over ng
//! ([`crate::ng`]): the control datagrams to send, the messages parked
//! until rtpengine's reply releases them (each command sent again with the
//! same cookie for want of a reply — rtpengine answers a repeat from its
//! cache — until it counts as failed), and the periodic query of each
//! anchored call's counters.
//!
//! It knows cookies and datagrams only: what a parked message is (`T`)
//! and which calls exist are the media anchoring's business.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use myturn_sip::Transmit;

use crate::ng::{self, Ben, Reply, Totals};
use crate::report::Stats;

/// How long rtpengine gets to answer a control message before it is sent
/// again (with the same cookie: rtpengine answers a repeat from its cache).
const CONTROL_RETRY: Duration = Duration::from_millis(500);
/// Sends of one control message before the anchoring counts as failed.
const CONTROL_TRIES: u32 = 4;
/// How often rtpengine is asked for each anchored call's counters.
const QUERY_EVERY: Duration = Duration::from_secs(10);

/// A message waiting for rtpengine.
#[derive(Debug)]
struct Parked<T> {
    held: T,
    datagram: Vec<u8>,
    sent: u32,
    retry_at: Instant,
}

/// What a reply from rtpengine was for.
#[derive(Debug)]
pub(crate) enum Answer<T> {
    /// Not an ng reply at all.
    Garbage,
    /// The counters of call `id` (`None`: rtpengine forgot the call).
    Totals { id: u64, totals: Option<Totals> },
    /// The reply to a parked message's command: its rewritten SDP
    /// (`None`: rtpengine refused, with `error`).
    Released {
        held: T,
        sdp: Option<Vec<u8>>,
        error: Option<String>,
    },
    /// A late repeat, or a delete's reply.
    Nothing,
}

/// The ng conversation with one rtpengine.
#[derive(Debug)]
pub(crate) struct Control<T> {
    /// rtpengine's ng address (unused unless the PBX anchors there).
    addr: SocketAddr,
    out: VecDeque<Transmit>,
    /// Parked messages, by the cookie of the command they wait on.
    parked: HashMap<String, Parked<T>>,
    /// Queries in flight: cookie → anchored call id.
    queries: HashMap<String, u64>,
    next_query: Option<Instant>,
}

impl<T> Control<T> {
    pub(crate) fn new(addr: SocketAddr) -> Self {
        Control {
            addr,
            out: VecDeque::new(),
            parked: HashMap::new(),
            queries: HashMap::new(),
            next_query: None,
        }
    }

    /// The next control datagram to send.
    pub(crate) fn poll_transmit(&mut self) -> Option<Transmit> {
        self.out.pop_front()
    }

    fn send(&mut self, payload: Vec<u8>) {
        self.out.push_back(Transmit {
            dest: self.addr,
            payload,
        });
    }

    /// Sends `command` under `cookie` and parks `held` until its reply.
    pub(crate) fn park(&mut self, now: Instant, cookie: String, command: &Ben, held: T) {
        let datagram = ng::frame(&cookie, command);
        self.send(datagram.clone());
        self.parked.insert(
            cookie,
            Parked {
                held,
                datagram,
                sent: 1,
                retry_at: now + CONTROL_RETRY,
            },
        );
    }

    /// Sends `command` under `cookie`, its reply unawaited.
    pub(crate) fn tell(&mut self, cookie: &str, command: &Ben) {
        self.send(ng::frame(cookie, command));
    }

    /// A datagram from rtpengine.
    pub(crate) fn handle_reply(&mut self, datagram: &[u8]) -> Answer<T> {
        let Some(reply) = Reply::parse(datagram) else {
            return Answer::Garbage;
        };
        if let Some(id) = self.queries.remove(&reply.cookie) {
            let totals = reply.totals.filter(|_| reply.ok);
            return Answer::Totals { id, totals };
        }
        match self.parked.remove(&reply.cookie) {
            Some(p) => Answer::Released {
                held: p.held,
                sdp: reply.sdp.filter(|_| reply.ok),
                error: reply.error,
            },
            None => Answer::Nothing,
        }
    }

    /// Sends again every parked command due at `now`, until one has had
    /// all its tries: that one's message is given back (call again for the
    /// rest).
    pub(crate) fn retry(&mut self, stats: &mut Stats, now: Instant) -> Option<T> {
        let due: Vec<String> = self
            .parked
            .iter()
            .filter(|(_, p)| p.retry_at <= now)
            .map(|(k, _)| k.clone())
            .collect();
        for cookie in due {
            let Some(p) = self.parked.get_mut(&cookie) else {
                continue;
            };
            if p.sent >= CONTROL_TRIES {
                return self.parked.remove(&cookie).map(|p| p.held);
            }
            p.sent += 1;
            p.retry_at = now + CONTROL_RETRY * p.sent;
            let payload = p.datagram.clone();
            stats.control_retransmissions += 1;
            self.send(payload);
        }
        None
    }

    /// Makes sure a round of queries is coming (a call was anchored).
    pub(crate) fn schedule_queries(&mut self, now: Instant) {
        if self.next_query.is_none() {
            self.next_query = Some(now + QUERY_EVERY);
        }
    }

    /// Whether a round of queries is due at `now`; if so, the queries
    /// still unanswered from the last round are forgotten.
    pub(crate) fn queries_due(&mut self, now: Instant) -> bool {
        let due = self.next_query.is_some_and(|t| t <= now);
        if due {
            self.queries.clear();
        }
        due
    }

    /// Asks for the counters of call `id` (`call_id`) under `cookie`.
    pub(crate) fn query(&mut self, cookie: String, id: u64, call_id: &str) {
        self.send(ng::frame(&cookie, &ng::query(call_id)));
        self.queries.insert(cookie, id);
    }

    /// The round is sent: the next in [`QUERY_EVERY`] while `more`.
    pub(crate) fn queried(&mut self, now: Instant, more: bool) {
        self.next_query = more.then(|| now + QUERY_EVERY);
    }

    /// The earliest retry or query due.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.parked
            .values()
            .map(|p| p.retry_at)
            .chain(self.next_query)
            .min()
    }
}

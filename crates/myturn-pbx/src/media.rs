//! Media anchoring: which calls are anchored, how each SDP that passes
//! through the proxy is rewritten (by the built-in relay's rules, or by
//! rtpengine over its ng protocol), and what the I/O side must do about it.
//!
//! The proxy hands every message that carries an SDP of an anchored call
//! to `Anchoring::anchor`. With the built-in relay the rewrite is
//! immediate; with rtpengine the message is parked, an `offer` or `answer`
//! goes out on the control channel, and the reply (or the give-up after
//! its retries) releases it later. Either way the message comes back as a
//! `Settled` for the proxy to send on or refuse. Nothing here does I/O:
//! the relay's sockets are opened and closed by whoever drains
//! [`crate::core::Pbx::poll_media`] (the tokio driver, or a test), and
//! rtpengine's datagrams go through [`crate::core::Pbx::poll_control`] and
//! [`crate::core::Pbx::handle_control`].
//!
//! Call state is keyed by this hop's SIP Call-ID, which is the PBX's own
//! business; nothing end to end rests on it.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use myturn_sip::msg::{Message, Method};
use myturn_sip::Transmit;

use crate::ng::{self, Totals};
use crate::relay::{rewrite_sdp, PortPool, Side};
use crate::report::Stats;
use crate::rewrite::{body_of, with_body};
use crate::rtpengine::{Answer, Control};

/// Where calls' media flows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaMode {
    /// Straight between the clients, as their SDP says (a LAN).
    Direct,
    /// Through the built-in relay: ports from `ports` on `addr` (the
    /// address written into SDP).
    Relay {
        /// The address written into SDP.
        addr: IpAddr,
        /// The UDP ports calls get pairs from.
        ports: RangeInclusive<u16>,
    },
    /// Through an rtpengine, controlled over ng at `control`.
    Rtpengine {
        /// rtpengine's ng control address.
        control: SocketAddr,
    },
}

impl MediaMode {
    /// `off`, `builtin` or `rtpengine` (logs, `/healthz`).
    pub fn as_str(&self) -> &'static str {
        match self {
            MediaMode::Direct => "off",
            MediaMode::Relay { .. } => "builtin",
            MediaMode::Rtpengine { .. } => "rtpengine",
        }
    }
}

/// What the relay's I/O side must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MediaCommand {
    /// Bind `ports[0]` (facing the caller) and `ports[1]` (facing the
    /// callee) and forward between them, latching each side on the first
    /// packet from its SIP source IP in `expect`.
    Open {
        /// The anchored call's id.
        id: u64,
        /// Its SIP Call-ID (for logs).
        call_id: String,
        /// The ports: the caller's side, then the callee's.
        ports: [u16; 2],
        /// The SIP source IPs: the caller's, then the callee's.
        expect: [IpAddr; 2],
        /// Close the call after this long without media.
        timeout: Duration,
    },
    /// `side` described its media at `sdp` (where it goes before latching).
    Sdp {
        /// The anchored call's id.
        id: u64,
        /// The side that described its media.
        side: Side,
        /// The address its SDP gave.
        sdp: SocketAddr,
    },
    /// The call is over: close its ports.
    Close {
        /// The anchored call's id.
        id: u64,
        /// Why (for logs).
        why: &'static str,
    },
}

/// What an anchored call looks like from outside (admin view, metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaCallInfo {
    /// The anchored call's id.
    pub id: u64,
    /// This hop's SIP Call-ID.
    pub call_id: String,
    /// The SIP usernames of the caller and the callee (the accounts the
    /// pairing server gave them), so a view can name the call's pair.
    pub users: [String; 2],
    /// The relay's ports (built-in relay only).
    pub ports: Option<[u16; 2]>,
    /// rtpengine's counters (zero with the built-in relay, whose counters
    /// live with its sockets).
    pub totals: Totals,
}

/// An anchored call.
#[derive(Debug, Clone)]
struct MediaCall {
    info: MediaCallInfo,
    caller_tag: String,
}

/// Whose SDP a message carries, for anchoring.
#[derive(Debug, Clone)]
pub(crate) struct Anchor {
    call_id: String,
    author: Side,
    /// The author's SIP source IP: where its media must come from.
    source: IpAddr,
    from_tag: String,
    to_tag: String,
    /// An offer (a request's SDP) or an answer (a response's).
    offer: bool,
}

impl Anchor {
    pub(crate) fn of(m: &Message, src: SocketAddr, author: Side, offer: bool) -> Anchor {
        Anchor {
            call_id: m.call_id().to_owned(),
            author,
            source: src.ip(),
            from_tag: m
                .from()
                .and_then(|f| f.tag())
                .unwrap_or_default()
                .to_owned(),
            to_tag: m.to().and_then(|t| t.tag()).unwrap_or_default().to_owned(),
            offer,
        }
    }
}

/// What the proxy does with a message once its SDP is settled.
#[derive(Debug, Clone)]
pub(crate) enum Then {
    /// The INVITE of the forward with this branch: send it (and let its
    /// client transaction retransmit these bytes).
    Invite { branch: String },
    /// A response to the caller's INVITE, recorded in its server
    /// transaction.
    Upstream {
        key: String,
        dest: SocketAddr,
        code: u16,
    },
    /// Stateless: just send it.
    Send { dest: SocketAddr },
}

/// A message as the proxy handed it over, of the call `call_id`.
#[derive(Debug)]
pub(crate) struct Held {
    pub(crate) bytes: Vec<u8>,
    pub(crate) then: Then,
    pub(crate) call_id: String,
}

/// A message back from anchoring.
#[derive(Debug)]
pub(crate) enum Settled {
    /// Its SDP points at the relay (or had nothing to anchor): send these
    /// bytes as `Then` says.
    Ready(Vec<u8>, Then),
    /// Its SDP could not be anchored (unreadable, refused, or rtpengine
    /// silent): the message as it was.
    Failed(Held),
}

/// The relay's port range is full: the call is refused with 503.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Exhausted;

/// Anchored calls, the relay's ports, and the conversation with rtpengine.
#[derive(Debug)]
pub(crate) struct Anchoring {
    mode: MediaMode,
    /// A relayed call whose media stopped this long ends.
    timeout: Duration,
    /// Anchored calls by id (the order they are listed in)…
    calls: BTreeMap<u64, MediaCall>,
    /// …and by SIP Call-ID (this hop's).
    by_call_id: HashMap<String, u64>,
    /// The relay's ports (empty unless [`MediaMode::Relay`]).
    pool: PortPool,
    commands: VecDeque<MediaCommand>,
    /// rtpengine (silent unless [`MediaMode::Rtpengine`]).
    control: Control<Held>,
    /// Anchored call ids and ng cookies, from one counter.
    next_id: u64,
}

impl Anchoring {
    /// Anchoring by `mode`; relayed calls time out after `timeout` of
    /// silence; the relay's port order is rotated by `rotate`.
    pub(crate) fn new(mode: &MediaMode, timeout: Duration, rotate: usize) -> Self {
        let mut pool = match mode {
            MediaMode::Relay { ports, .. } => PortPool::new(ports.clone()),
            _ => PortPool::new(0..=0),
        };
        pool.rotate(rotate);
        let control = match mode {
            MediaMode::Rtpengine { control } => *control,
            _ => SocketAddr::from(([0, 0, 0, 0], 0)),
        };
        Anchoring {
            mode: mode.clone(),
            timeout,
            calls: BTreeMap::new(),
            by_call_id: HashMap::new(),
            pool,
            commands: VecDeque::new(),
            control: Control::new(control),
            next_id: 1,
        }
    }

    fn call(&self, call_id: &str) -> Option<&MediaCall> {
        self.calls.get(self.by_call_id.get(call_id)?)
    }

    /// Starts anchoring the call `req` (an initial INVITE from `src` going
    /// to `callee`). `Ok(false)`: nothing to anchor (direct media, or no
    /// SDP). `Err`: the relay is full; the caller must have its 503.
    pub(crate) fn open(
        &mut self,
        stats: &mut Stats,
        now: Instant,
        req: &Message,
        src: SocketAddr,
        callee: SocketAddr,
        users: [String; 2],
    ) -> Result<bool, Exhausted> {
        if self.mode == MediaMode::Direct || req.body().is_empty() {
            return Ok(false);
        }
        let call_id = req.call_id().to_owned();
        // A new INVITE reusing a Call-ID ends what was anchored under it.
        self.close(&call_id, "replaced");
        let ports = match self.mode {
            MediaMode::Relay { .. } => match self.pool.allocate() {
                Some(p) => Some(p),
                None => {
                    stats.media_exhausted += 1;
                    tracing::warn!(
                        capacity = self.pool.capacity(),
                        "media relay ports exhausted: call refused with 503"
                    );
                    return Err(Exhausted);
                }
            },
            _ => None,
        };
        let id = self.next_id;
        self.next_id += 1;
        if let Some(ports) = ports {
            self.commands.push_back(MediaCommand::Open {
                id,
                call_id: call_id.clone(),
                ports,
                expect: [src.ip(), callee.ip()],
                timeout: self.timeout,
            });
        }
        stats.media_calls += 1;
        let caller_tag = req
            .from()
            .and_then(|f| f.tag())
            .unwrap_or_default()
            .to_owned();
        self.by_call_id.insert(call_id.clone(), id);
        let info = MediaCallInfo {
            id,
            call_id,
            users,
            ports,
            totals: Totals::default(),
        };
        self.calls.insert(id, MediaCall { info, caller_tag });
        if matches!(self.mode, MediaMode::Rtpengine { .. }) {
            self.control.schedule_queries(now);
        }
        Ok(true)
    }

    /// Forgets an anchored call and returns its relay ports to the pool.
    fn forget(&mut self, call_id: &str) -> Option<MediaCall> {
        let id = self.by_call_id.remove(call_id)?;
        let call = self.calls.remove(&id)?;
        if let Some(ports) = call.info.ports {
            self.pool.release(ports);
        }
        Some(call)
    }

    /// The call is over: free its ports, or tell rtpengine.
    pub(crate) fn close(&mut self, call_id: &str, why: &'static str) {
        let Some(call) = self.forget(call_id) else {
            return;
        };
        let id = call.info.id;
        if call.info.ports.is_some() {
            self.commands.push_back(MediaCommand::Close { id, why });
        }
        if let MediaMode::Rtpengine { .. } = self.mode {
            let cookie = format!("d{id}");
            self.control
                .tell(&cookie, &ng::delete(call_id, &call.caller_tag));
        }
        tracing::debug!(call_id, why, "media released");
    }

    /// The anchor of an in-dialog request, or of a response relayed
    /// statelessly, when its call is anchored and it carries SDP. A request
    /// from the caller has the caller's From tag; a response has the From
    /// tag of the request it answers, so its author is the other side.
    pub(crate) fn in_dialog_anchor(&self, m: &Message, src: SocketAddr) -> Option<Anchor> {
        let call = self.call(m.call_id())?;
        if m.body().is_empty() {
            return None;
        }
        let from_caller = m.from().and_then(|f| f.tag()) == Some(call.caller_tag.as_str());
        let request = m.is_request();
        let author = match (request, from_caller) {
            (true, true) | (false, false) => Side::Caller,
            _ => Side::Callee,
        };
        // An ACK's SDP answers an offerless INVITE's 2xx.
        let offer = request && m.method() != &Method::ACK;
        Some(Anchor::of(m, src, author, offer))
    }

    /// The anchor of a response to the caller's INVITE.
    pub(crate) fn response_anchor(&self, resp: &Message, src: SocketAddr) -> Option<Anchor> {
        (self.by_call_id.contains_key(resp.call_id()) && !resp.body().is_empty())
            .then(|| Anchor::of(resp, src, Side::Callee, false))
    }

    /// Points the SDP in `bytes` (if `anchor`) at the relay. `None`: the
    /// message is parked until rtpengine answers, and comes back from
    /// [`Anchoring::handle_control`] or [`Anchoring::handle_timeout`].
    pub(crate) fn anchor(
        &mut self,
        now: Instant,
        bytes: Vec<u8>,
        anchor: Option<Anchor>,
        then: Then,
    ) -> Option<Settled> {
        let Some(a) = anchor else {
            return Some(Settled::Ready(bytes, then));
        };
        let Some(call) = self.call(&a.call_id) else {
            return Some(Settled::Ready(bytes, then));
        };
        let (id, ports) = (call.info.id, call.info.ports);
        let Some((body, _)) = body_of(&bytes) else {
            return Some(Settled::Ready(bytes, then));
        };
        let command = match &self.mode {
            MediaMode::Direct => return Some(Settled::Ready(bytes, then)),
            MediaMode::Relay { addr, .. } => {
                let Some(ports) = ports else {
                    return Some(Settled::Ready(bytes, then));
                };
                // The receiver sends to the port that faces it.
                let facing = ports[a.author.other().index()];
                let rewritten = match rewrite_sdp(body, SocketAddr::new(*addr, facing)) {
                    Ok(r) => r,
                    Err(e) => {
                        tracing::info!(call_id = %a.call_id, error = %e, "SDP cannot be relayed");
                        return Some(failed(bytes, then, a.call_id));
                    }
                };
                self.commands.push_back(MediaCommand::Sdp {
                    id,
                    side: a.author,
                    sdp: rewritten.original,
                });
                return Some(match with_body(&bytes, &rewritten.body) {
                    Some(b) => Settled::Ready(b, then),
                    None => failed(bytes, then, a.call_id),
                });
            }
            MediaMode::Rtpengine { .. } if a.offer => {
                ng::offer(&a.call_id, &a.from_tag, body, a.source)
            }
            MediaMode::Rtpengine { .. } => {
                ng::answer(&a.call_id, &a.from_tag, &a.to_tag, body, a.source)
            }
        };
        let cookie = format!("{}x{}", id, self.next_id);
        self.next_id += 1;
        let held = Held {
            bytes,
            then,
            call_id: a.call_id,
        };
        self.control.park(now, cookie, &command, held);
        None
    }

    /// The answer to a new call whose SDP could not be anchored: 503 when
    /// rtpengine failed, 488 for an SDP the relay cannot use.
    pub(crate) fn refusal(&self) -> (u16, &'static str) {
        match self.mode {
            MediaMode::Rtpengine { .. } => (503, "Service Unavailable (media relay)"),
            _ => (488, "Not Acceptable Here"),
        }
    }

    /// A datagram from rtpengine's control port: a parked message it
    /// releases, if any. Garbage is dropped and counted.
    pub(crate) fn handle_control(&mut self, stats: &mut Stats, datagram: &[u8]) -> Option<Settled> {
        match self.control.handle_reply(datagram) {
            Answer::Garbage => stats.dropped += 1,
            Answer::Totals { id, totals } => {
                let call = self.calls.get_mut(&id)?;
                match totals {
                    Some(t) => call.info.totals = t,
                    // rtpengine forgot the call (its own media timeout).
                    None => {
                        stats.media_timeouts += 1;
                        let call_id = call.info.call_id.clone();
                        self.forget(&call_id);
                    }
                }
            }
            Answer::Released { held, sdp, error } => {
                let Some(sdp) = sdp else {
                    tracing::warn!(call_id = %held.call_id, error = ?error, "rtpengine refused to anchor the SDP");
                    return Some(Settled::Failed(held));
                };
                return Some(match with_body(&held.bytes, &sdp) {
                    Some(b) => Settled::Ready(b, held.then),
                    None => Settled::Failed(held),
                });
            }
            Answer::Nothing => {} // a late repeat, a delete's reply
        }
        None
    }

    /// The relay gave up on call `id` (no media for the media timeout, or
    /// its ports could not be bound): forget it and free its ports.
    pub(crate) fn handle_ended(&mut self, stats: &mut Stats, id: u64, why: &'static str) {
        let Some(call_id) = self.calls.get(&id).map(|c| c.info.call_id.clone()) else {
            return;
        };
        if self.forget(&call_id).is_some() {
            stats.media_timeouts += 1;
            tracing::info!(%call_id, why, "relayed call ended by the relay");
        }
    }

    /// When [`Anchoring::handle_timeout`] must next run.
    pub(crate) fn poll_timeout(&self) -> Option<Instant> {
        self.control.poll_timeout()
    }

    /// Control retransmissions, give-ups and periodic queries. A message
    /// given up on comes back: call again until `None`.
    pub(crate) fn handle_timeout(&mut self, stats: &mut Stats, now: Instant) -> Option<Settled> {
        let MediaMode::Rtpengine { control } = self.mode else {
            return None;
        };
        if let Some(held) = self.control.retry(stats, now) {
            tracing::warn!(call_id = %held.call_id, %control, "rtpengine did not answer");
            return Some(Settled::Failed(held));
        }
        if self.control.queries_due(now) {
            for (id, call) in &self.calls {
                let cookie = format!("q{id}x{}", self.next_id);
                self.next_id += 1;
                self.control.query(cookie, *id, &call.info.call_id);
            }
            self.control.queried(now, !self.calls.is_empty());
        }
        None
    }

    /// The next thing the relay's sockets must do.
    pub(crate) fn poll_command(&mut self) -> Option<MediaCommand> {
        self.commands.pop_front()
    }

    /// The next control datagram for rtpengine.
    pub(crate) fn poll_control(&mut self) -> Option<Transmit> {
        self.control.poll_transmit()
    }

    /// How many calls are anchored now.
    pub(crate) fn anchored_calls(&self) -> usize {
        self.calls.len()
    }

    /// Anchored calls now, by id.
    pub(crate) fn calls(&self) -> Vec<MediaCallInfo> {
        self.calls.values().map(|c| c.info.clone()).collect()
    }

    /// Relay port pairs: (free, capacity).
    pub(crate) fn ports(&self) -> (usize, usize) {
        (self.pool.available(), self.pool.capacity())
    }
}

fn failed(bytes: Vec<u8>, then: Then, call_id: String) -> Settled {
    Settled::Failed(Held {
        bytes,
        then,
        call_id,
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn ng_dictionaries_have_their_keys_sorted() {
        use crate::ng::Ben;
        let d = Ben::dict(vec![("b", Ben::Int(-3)), ("a", Ben::strs(&["x"]))]);
        let mut out = Vec::new();
        d.encode(&mut out);
        assert_eq!(out, b"d1:al1:xe1:bi-3ee");
    }
}

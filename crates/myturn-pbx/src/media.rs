//! Media anchoring in the PBX core: which calls are anchored, how each SDP
//! that passes through is rewritten (by the built-in relay's rules, or by
//! rtpengine over its ng protocol), and what the I/O side must do about it.
//!
//! Every message that carries an SDP of an anchored call goes through
//! `Pbx::out`. With the built-in relay the rewrite is immediate; with
//! rtpengine the message is parked, an `offer` or `answer` goes out on the
//! control channel ([`Pbx::poll_control`]), and the reply
//! ([`Pbx::handle_control`]) releases it. Nothing here does I/O: the relay's
//! sockets are opened and closed by whoever drains
//! [`Pbx::poll_media`] (the tokio driver, or a test).
//!
//! Call state is keyed by this hop's SIP Call-ID, which is the PBX's own
//! business; nothing end to end rests on it.

use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use myturn_sip::build::Reply as SipReply;
use myturn_sip::msg::{Message, Method};

use crate::core::{Due, Pbx, Transmit};
use crate::ng::{self, Reply, Totals};
use crate::relay::{rewrite_sdp, Side};

/// How long rtpengine gets to answer a control message before it is sent
/// again (with the same cookie: rtpengine answers a repeat from its cache).
const CONTROL_RETRY: Duration = Duration::from_millis(500);
/// Sends of one control message before the anchoring counts as failed.
const CONTROL_TRIES: u32 = 4;
/// How often rtpengine is asked for each anchored call's counters.
const QUERY_EVERY: Duration = Duration::from_secs(10);

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

/// An anchored call.
#[derive(Debug, Clone)]
pub(crate) struct MediaCall {
    pub(crate) id: u64,
    pub(crate) caller_tag: String,
    /// The relay's ports (built-in relay only).
    pub(crate) ports: Option<[u16; 2]>,
    /// rtpengine's counters from the last query.
    pub(crate) totals: Totals,
}

/// What an anchored call looks like from outside (admin view, metrics).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MediaCallInfo {
    /// The anchored call's id.
    pub id: u64,
    /// This hop's SIP Call-ID.
    pub call_id: String,
    /// The relay's ports (built-in relay only).
    pub ports: Option<[u16; 2]>,
    /// rtpengine's counters (zero with the built-in relay, whose counters
    /// live with its sockets).
    pub totals: Totals,
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

/// What to do with a message once its SDP is settled.
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

/// A message waiting for rtpengine.
#[derive(Debug, Clone)]
pub(crate) struct Parked {
    bytes: Vec<u8>,
    then: Then,
    call_id: String,
    datagram: Vec<u8>,
    sent: u32,
    retry_at: Instant,
}

/// The body of a message we built (`forward` ends its head with
/// `Content-Length`), and the offset where it starts.
fn body_of(bytes: &[u8]) -> Option<(&[u8], usize)> {
    let at = bytes.windows(4).position(|w| w == b"\r\n\r\n")? + 4;
    Some((bytes.get(at..)?, at))
}

/// `bytes` with its body replaced and its (last) `Content-Length` header
/// fixed.
fn with_body(bytes: &[u8], body: &[u8]) -> Option<Vec<u8>> {
    let (_, at) = body_of(bytes)?;
    let head = bytes.get(..at - 4)?;
    let cl = head
        .windows(17)
        .rposition(|w| w.eq_ignore_ascii_case(b"\r\ncontent-length:"))?;
    let line_end = head
        .get(cl + 2..)?
        .windows(2)
        .position(|w| w == b"\r\n")
        .map_or(head.len(), |p| cl + 2 + p);
    let mut out = Vec::with_capacity(bytes.len() + body.len());
    out.extend_from_slice(head.get(..cl)?);
    out.extend_from_slice(format!("\r\nContent-Length: {}", body.len()).as_bytes());
    out.extend_from_slice(head.get(line_end..)?);
    out.extend_from_slice(b"\r\n\r\n");
    out.extend_from_slice(body);
    Some(out)
}

impl Pbx {
    /// Starts anchoring the call `req` (an initial INVITE from `src` going
    /// to `callee`). `Ok(false)`: nothing to anchor (direct media, or no
    /// SDP). `Err(())`: refused, and the caller has its 503.
    pub(crate) fn open_media(
        &mut self,
        now: Instant,
        req: &Message,
        src: SocketAddr,
        callee: SocketAddr,
    ) -> Result<bool, ()> {
        if self.cfg.media == MediaMode::Direct || req.body().is_empty() {
            return Ok(false);
        }
        let call_id = req.call_id().to_owned();
        // A new INVITE reusing a Call-ID ends what was anchored under it.
        self.close_media(&call_id, "replaced");
        let ports = match self.cfg.media {
            MediaMode::Relay { .. } => match self.pool.allocate() {
                Some(p) => Some(p),
                None => {
                    self.stats.media_exhausted += 1;
                    tracing::warn!(
                        capacity = self.pool.capacity(),
                        "media relay ports exhausted: call refused with 503"
                    );
                    let extra = vec![rsip::Header::Other("Retry-After".into(), "5".into())];
                    self.respond(
                        now,
                        req,
                        src,
                        SipReply::new(503, "Service Unavailable (media ports exhausted)")
                            .headers(extra),
                    );
                    return Err(());
                }
            },
            _ => None,
        };
        let id = self.next_media_id;
        self.next_media_id += 1;
        if let Some(ports) = ports {
            self.media_out.push_back(MediaCommand::Open {
                id,
                call_id: call_id.clone(),
                ports,
                expect: [src.ip(), callee.ip()],
                timeout: self.cfg.media_timeout,
            });
        }
        self.stats.media_calls += 1;
        let caller_tag = req
            .from()
            .and_then(|f| f.tag())
            .unwrap_or_default()
            .to_owned();
        self.media_calls.insert(
            call_id,
            MediaCall {
                id,
                caller_tag,
                ports,
                totals: Totals::default(),
            },
        );
        if matches!(self.cfg.media, MediaMode::Rtpengine { .. }) && self.next_query.is_none() {
            self.next_query = Some(now + QUERY_EVERY);
        }
        Ok(true)
    }

    /// Forgets an anchored call and returns its relay ports to the pool.
    fn forget_media(&mut self, call_id: &str) -> Option<MediaCall> {
        let call = self.media_calls.remove(call_id)?;
        if let Some(ports) = call.ports {
            self.pool.release(ports);
        }
        Some(call)
    }

    /// The call is over: free its ports, or tell rtpengine.
    pub(crate) fn close_media(&mut self, call_id: &str, why: &'static str) {
        let Some(call) = self.forget_media(call_id) else {
            return;
        };
        if call.ports.is_some() {
            self.media_out
                .push_back(MediaCommand::Close { id: call.id, why });
        }
        if let MediaMode::Rtpengine { control } = self.cfg.media {
            let cookie = format!("d{}", call.id);
            let datagram = ng::frame(&cookie, &ng::delete(call_id, &call.caller_tag));
            self.control_out.push_back(Transmit {
                dest: control,
                payload: datagram,
            });
        }
        tracing::debug!(call_id, why, "media released");
    }

    /// The anchor of an in-dialog request, or of a response relayed
    /// statelessly, when its call is anchored and it carries SDP. A request
    /// from the caller has the caller's From tag; a response has the From
    /// tag of the request it answers, so its author is the other side.
    pub(crate) fn in_dialog_anchor(&self, m: &Message, src: SocketAddr) -> Option<Anchor> {
        let call = self.media_calls.get(m.call_id())?;
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
        (self.media_calls.contains_key(resp.call_id()) && !resp.body().is_empty())
            .then(|| Anchor::of(resp, src, Side::Callee, false))
    }

    /// Sends `bytes` as `then` says, once the SDP it carries (if `anchor`)
    /// points at the relay.
    pub(crate) fn out(&mut self, now: Instant, bytes: Vec<u8>, anchor: Option<Anchor>, then: Then) {
        let Some(a) = anchor else {
            return self.finish(now, bytes, then);
        };
        let Some(call) = self.media_calls.get(&a.call_id) else {
            return self.finish(now, bytes, then);
        };
        let (id, ports) = (call.id, call.ports);
        let Some((body, _)) = body_of(&bytes) else {
            return self.finish(now, bytes, then);
        };
        match self.cfg.media.clone() {
            MediaMode::Direct => self.finish(now, bytes, then),
            MediaMode::Relay { addr, .. } => {
                let Some(ports) = ports else {
                    return self.finish(now, bytes, then);
                };
                // The receiver sends to the port that faces it.
                let facing = ports[a.author.other().index()];
                match rewrite_sdp(body, SocketAddr::new(addr, facing)) {
                    Ok(r) => {
                        self.media_out.push_back(MediaCommand::Sdp {
                            id,
                            side: a.author,
                            sdp: r.original,
                        });
                        match with_body(&bytes, &r.body) {
                            Some(b) => self.finish(now, b, then),
                            None => self.anchoring_failed(now, bytes, then, &a.call_id),
                        }
                    }
                    Err(e) => {
                        tracing::info!(call_id = %a.call_id, error = %e, "SDP cannot be relayed");
                        self.anchoring_failed(now, bytes, then, &a.call_id)
                    }
                }
            }
            MediaMode::Rtpengine { control } => {
                let cookie = format!("{}x{}", id, self.next_media_id);
                self.next_media_id += 1;
                let dict = if a.offer {
                    ng::offer(&a.call_id, &a.from_tag, body, a.source)
                } else {
                    ng::answer(&a.call_id, &a.from_tag, &a.to_tag, body, a.source)
                };
                let datagram = ng::frame(&cookie, &dict);
                self.control_out.push_back(Transmit {
                    dest: control,
                    payload: datagram.clone(),
                });
                self.parked.insert(
                    cookie,
                    Parked {
                        bytes,
                        then,
                        call_id: a.call_id,
                        datagram,
                        sent: 1,
                        retry_at: now + CONTROL_RETRY,
                    },
                );
            }
        }
    }

    /// The SDP could not be anchored. A new call is refused (488 for an
    /// SDP we cannot relay, 503 when rtpengine failed); anything else
    /// passes unchanged, since its dialog exists already.
    fn anchoring_failed(&mut self, now: Instant, bytes: Vec<u8>, then: Then, call_id: &str) {
        self.stats.media_failures += 1;
        match then {
            Then::Invite { branch } => {
                let Some(fwd) = self.forwards.remove(&branch) else {
                    return;
                };
                self.upstream.remove(&fwd.upstream_key);
                let (code, reason) = match self.cfg.media {
                    MediaMode::Rtpengine { .. } => (503, "Service Unavailable (media relay)"),
                    _ => (488, "Not Acceptable Here"),
                };
                self.respond(
                    now,
                    &fwd.request,
                    fwd.request_src,
                    SipReply::new(code, reason),
                );
                self.close_media(call_id, "refused");
            }
            other => {
                tracing::warn!(call_id, "media not anchored: message passed unchanged");
                self.finish(now, bytes, other);
            }
        }
    }

    /// Sends a message whose SDP is settled.
    pub(crate) fn finish(&mut self, now: Instant, bytes: Vec<u8>, then: Then) {
        match then {
            Then::Send { dest } => self.send(dest, bytes),
            Then::Upstream { key, dest, code } => {
                let t = self.servers.respond(now, &key, code, bytes, dest);
                self.arm(Due::Server(key));
                self.send(t.dest, t.payload);
            }
            Then::Invite { branch } => {
                let Some(fwd) = self.forwards.get_mut(&branch) else {
                    return;
                };
                fwd.held = false;
                fwd.client.request = bytes.clone();
                let dest = fwd.client.dest;
                self.send(dest, bytes);
            }
        }
    }

    // ---- I/O side ------------------------------------------------------

    /// The next thing the relay's sockets must do.
    pub fn poll_media(&mut self) -> Option<MediaCommand> {
        self.media_out.pop_front()
    }

    /// The next control datagram for rtpengine.
    pub fn poll_control(&mut self) -> Option<Transmit> {
        self.control_out.pop_front()
    }

    /// A datagram from rtpengine's control port. Unknown cookies and
    /// garbage are dropped and counted.
    pub fn handle_control(&mut self, now: Instant, datagram: &[u8]) {
        let Some(reply) = Reply::parse(datagram) else {
            self.stats.dropped += 1;
            return;
        };
        if let Some(id) = self.queries.remove(&reply.cookie) {
            let Some(call_id) = self.call_id_of(id) else {
                return;
            };
            match reply.totals {
                Some(t) if reply.ok => {
                    if let Some(c) = self.media_calls.get_mut(&call_id) {
                        c.totals = t;
                    }
                }
                // rtpengine forgot the call (its own media timeout).
                _ => {
                    self.stats.media_timeouts += 1;
                    self.media_calls.remove(&call_id);
                }
            }
            return;
        }
        let Some(p) = self.parked.remove(&reply.cookie) else {
            return; // a late repeat, a delete's reply
        };
        match reply.sdp.filter(|_| reply.ok) {
            Some(sdp) => match with_body(&p.bytes, &sdp) {
                Some(b) => self.finish(now, b, p.then),
                None => self.anchoring_failed(now, p.bytes, p.then, &p.call_id),
            },
            None => {
                tracing::warn!(call_id = %p.call_id, error = ?reply.error, "rtpengine refused to anchor the SDP");
                self.anchoring_failed(now, p.bytes, p.then, &p.call_id);
            }
        }
    }

    /// The relay gave up on call `id` (no media for the media timeout, or
    /// its ports could not be bound): forget it and free its ports.
    pub fn handle_media_ended(&mut self, id: u64, why: &'static str) {
        let Some(call_id) = self.call_id_of(id) else {
            return;
        };
        if self.forget_media(&call_id).is_some() {
            self.stats.media_timeouts += 1;
            tracing::info!(%call_id, why, "relayed call ended by the relay");
        }
    }

    /// The SIP Call-ID of anchored call `id`.
    fn call_id_of(&self, id: u64) -> Option<String> {
        self.media_calls
            .iter()
            .find(|(_, c)| c.id == id)
            .map(|(k, _)| k.clone())
    }

    /// How many calls are anchored now.
    pub fn anchored_calls(&self) -> usize {
        self.media_calls.len()
    }

    /// Anchored calls now.
    pub fn media_calls(&self) -> Vec<MediaCallInfo> {
        let mut v: Vec<MediaCallInfo> = self
            .media_calls
            .iter()
            .map(|(k, c)| MediaCallInfo {
                id: c.id,
                call_id: k.clone(),
                ports: c.ports,
                totals: c.totals,
            })
            .collect();
        v.sort_by_key(|c| c.id);
        v
    }

    /// Relay port pairs: (free, capacity).
    pub fn media_ports(&self) -> (usize, usize) {
        (self.pool.available(), self.pool.capacity())
    }

    pub(crate) fn media_deadline(&self) -> Option<Instant> {
        self.parked
            .values()
            .map(|p| p.retry_at)
            .chain(self.next_query)
            .min()
    }

    /// Control retransmissions, give-ups and periodic queries.
    pub(crate) fn media_timers(&mut self, now: Instant) {
        let MediaMode::Rtpengine { control } = self.cfg.media else {
            return;
        };
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
                if let Some(p) = self.parked.remove(&cookie) {
                    tracing::warn!(call_id = %p.call_id, %control, "rtpengine did not answer");
                    self.anchoring_failed(now, p.bytes, p.then, &p.call_id);
                }
                continue;
            }
            p.sent += 1;
            p.retry_at = now + CONTROL_RETRY * p.sent;
            let payload = p.datagram.clone();
            self.stats.control_retransmissions += 1;
            self.control_out.push_back(Transmit {
                dest: control,
                payload,
            });
        }
        if self.next_query.is_some_and(|t| t <= now) {
            self.queries.clear();
            let calls: Vec<(String, u64)> = self
                .media_calls
                .iter()
                .map(|(k, c)| (k.clone(), c.id))
                .collect();
            for (call_id, id) in calls {
                let cookie = format!("q{id}x{}", self.next_media_id);
                self.next_media_id += 1;
                self.queries.insert(cookie.clone(), id);
                self.control_out.push_back(Transmit {
                    dest: control,
                    payload: ng::frame(&cookie, &ng::query(&call_id)),
                });
            }
            self.next_query = (!self.media_calls.is_empty()).then(|| now + QUERY_EVERY);
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn body_is_replaced_and_its_length_fixed() {
        let m = b"SIP/2.0 200 OK\r\nVia: x\r\nContent-Type: application/sdp\r\nContent-Length: 3\r\n\r\nabc";
        let out = with_body(m, b"hello").unwrap();
        assert_eq!(
            out,
            b"SIP/2.0 200 OK\r\nVia: x\r\nContent-Type: application/sdp\r\nContent-Length: 5\r\n\r\nhello"
        );
        assert_eq!(body_of(&out).unwrap().0, b"hello");
        assert_eq!(with_body(b"no head end", b"x"), None);
        assert_eq!(with_body(b"A\r\nB: 1\r\n\r\n", b"x"), None);
    }

    #[test]
    fn ng_dictionaries_have_their_keys_sorted() {
        use crate::ng::Ben;
        let d = Ben::dict(vec![("b", Ben::Int(-3)), ("a", Ben::strs(&["x"]))]);
        let mut out = Vec::new();
        d.encode(&mut out);
        assert_eq!(out, b"d1:al1:xe1:bi-3ee");
    }
}

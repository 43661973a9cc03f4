//! The built-in media relay's sans-IO parts: the port pool, the SDP
//! rewrite that anchors a call's media in the relay, and the per-call
//! forwarding state ([`MediaPath`]) with source latching.
//!
//! The relay does what Asterisk's `directmedia=no` and rtpengine do for
//! clients behind NATs: each call gets a pair of ports, one facing each
//! side. Every SDP the PBX passes on is rewritten to point at the port
//! that faces its receiver, so both sides send to the relay, which works
//! through any NAT because each side's packets open the way for the
//! replies.
//!
//! * Latching (rtpengine's "SIP source address" behaviour): a side's port
//!   accepts the first packet whose source IP is that side's signalled SIP
//!   source IP, then only that exact address and port for the rest of the
//!   call. Anybody else's packets are dropped and counted (RTPBleed).
//! * Payloads are forwarded untouched: the relay never reads past the
//!   datagram's length. Media is sealed end to end (see
//!   `docs/protocol.md`); the relay could not read it if it tried.
//!
//! Driving a [`MediaPath`]: for every datagram read on side `s`'s port,
//! call [`MediaPath::handle_packet`]`(now, s, from, len)`; a
//! [`Verdict::Forward`] names the destination to send it to from the other
//! side's port. [`MediaPath::poll_timeout`] says when the call counts as
//! silent; [`MediaPath::handle_timeout`] then reports it expired.

use std::collections::VecDeque;
use std::net::{IpAddr, SocketAddr};
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

/// One side of a relayed call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    /// The side that sent the INVITE.
    Caller,
    /// The side the INVITE went to.
    Callee,
}

impl Side {
    /// The other side.
    pub fn other(self) -> Side {
        match self {
            Side::Caller => Side::Callee,
            Side::Callee => Side::Caller,
        }
    }

    /// 0 for the caller, 1 for the callee.
    pub fn index(self) -> usize {
        match self {
            Side::Caller => 0,
            Side::Callee => 1,
        }
    }

    /// `caller` or `callee` (logs, metrics labels).
    pub fn as_str(self) -> &'static str {
        match self {
            Side::Caller => "caller",
            Side::Callee => "callee",
        }
    }
}

/// The relay's ports: pairs `(p, p+1)` from an even base, handed out
/// oldest-freed first, so a port just closed is reused only after the
/// whole range has been used once.
#[derive(Debug, Clone)]
pub struct PortPool {
    free: VecDeque<u16>,
    capacity: usize,
}

impl PortPool {
    /// Every even-based pair inside `range`.
    pub fn new(range: RangeInclusive<u16>) -> PortPool {
        let (lo, hi) = (*range.start(), *range.end());
        let first = lo.saturating_add(lo % 2);
        let mut free = VecDeque::new();
        let mut p = first;
        while p < hi && p != 0 {
            free.push_back(p);
            match p.checked_add(2) {
                Some(n) => p = n,
                None => break,
            }
        }
        let capacity = free.len();
        PortPool { free, capacity }
    }

    /// Starts handing out pairs `n` pairs into the range (a random start
    /// keeps two servers on one host from reaching for the same ports).
    pub fn rotate(&mut self, n: usize) {
        if !self.free.is_empty() {
            let n = n % self.free.len();
            self.free.rotate_left(n);
        }
    }

    /// A pair `[p, p+1]`, or `None` when every pair is taken.
    pub fn allocate(&mut self) -> Option<[u16; 2]> {
        self.free.pop_front().map(|p| [p, p + 1])
    }

    /// Returns a pair from [`PortPool::allocate`].
    pub fn release(&mut self, pair: [u16; 2]) {
        self.free.push_back(pair[0]);
    }

    /// Pairs in the range.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Pairs free now.
    pub fn available(&self) -> usize {
        self.free.len()
    }
}

/// Why an SDP cannot be anchored.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum RewriteError {
    #[error("SDP is not UTF-8")]
    Encoding,
    #[error("SDP has no audio stream")]
    NoAudio,
    #[error("SDP has no usable connection address")]
    NoAddress,
}

/// An SDP body rewritten to point at the relay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Rewritten {
    pub body: Vec<u8>,
    /// The audio stream's address as the author wrote it.
    pub original: SocketAddr,
}

/// Points the first audio stream of `body` at `to`: every `c=` line names
/// `to`'s address, the audio `m=` line its port. Other streams are refused
/// (port 0: the relay carries one audio stream), and attributes that name
/// the author's own addresses (`a=rtcp`, ICE candidates) are dropped. Every
/// other line, the media key attribute included, is kept byte for byte.
pub(crate) fn rewrite_sdp(body: &[u8], to: SocketAddr) -> Result<Rewritten, RewriteError> {
    let text = std::str::from_utf8(body).map_err(|_| RewriteError::Encoding)?;
    let fam = if to.is_ipv4() { "IP4" } else { "IP6" };
    let mut out = String::with_capacity(text.len() + 32);
    let mut session_addr: Option<IpAddr> = None;
    let mut audio_addr: Option<IpAddr> = None;
    let mut audio_port: Option<u16> = None;
    // Which section the line is in: None (session), Some(true) (the audio
    // stream we anchor), Some(false) (another stream).
    let mut section: Option<bool> = None;
    for line in text.split_inclusive('\n') {
        let bare = line.trim_end_matches(['\r', '\n']);
        let eol = &line[bare.len()..];
        let Some((kind, value)) = bare.split_once('=') else {
            out.push_str(line);
            continue;
        };
        match kind {
            "m" => {
                let mut f = value.split(' ');
                let media = f.next().unwrap_or_default();
                let port = f
                    .next()
                    .and_then(|p| p.split('/').next()?.parse::<u16>().ok());
                let rest: Vec<&str> = f.collect();
                if media == "audio" && audio_port.is_none() && port.is_some_and(|p| p != 0) {
                    section = Some(true);
                    audio_port = port;
                    out.push_str(&format!("m=audio {} {}{eol}", to.port(), rest.join(" ")));
                } else {
                    section = Some(false);
                    out.push_str(&format!("m={media} 0 {}{eol}", rest.join(" ")));
                }
            }
            "c" => {
                let addr = value
                    .split(' ')
                    .nth(2)
                    .and_then(|a| a.split('/').next())
                    .and_then(|a| a.parse::<IpAddr>().ok());
                match section {
                    None => session_addr = addr,
                    Some(true) => audio_addr = addr,
                    Some(false) => {}
                }
                out.push_str(&format!("c=IN {fam} {}{eol}", to.ip()));
            }
            "a" if section != Some(false)
                && (value.starts_with("rtcp:")
                    || value.starts_with("candidate:")
                    || value.starts_with("ice-")
                    || value == "end-of-candidates") => {}
            _ => out.push_str(line),
        }
    }
    let port = audio_port.ok_or(RewriteError::NoAudio)?;
    let ip = audio_addr.or(session_addr).ok_or(RewriteError::NoAddress)?;
    Ok(Rewritten {
        body: out.into_bytes(),
        original: SocketAddr::new(ip, port),
    })
}

/// Why the relay dropped a datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DropReason {
    /// From an address that is not the side's latched source (or, before
    /// latching, not from the side's SIP source IP).
    Stranger,
    /// The other side has no known address yet.
    NoDestination,
}

/// What to do with one datagram.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Send it, unchanged, from the other side's port to `dest`.
    Forward {
        /// Where the packet goes.
        dest: SocketAddr,
    },
    /// Drop it, for this reason.
    Drop(DropReason),
}

/// Counters for one side's port.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LegStats {
    /// Datagrams received from the side and forwarded.
    pub packets: u64,
    /// Bytes of those datagrams.
    pub bytes: u64,
    /// Datagrams received on the side's port and dropped.
    pub dropped: u64,
}

/// One side of a [`MediaPath`].
#[derive(Debug, Clone)]
pub struct Leg {
    /// The side's signalled SIP source IP: the only IP it may latch from.
    pub expect: IpAddr,
    /// The source it latched on, once a packet came.
    pub latched: Option<SocketAddr>,
    /// Where its media goes: the latched source, or before that its SIP
    /// source IP with the port from its SDP.
    pub dest: Option<SocketAddr>,
    /// The side's counters.
    pub stats: LegStats,
}

impl Leg {
    /// A side whose SIP source IP is `expect`, its SDP at `sdp` if known.
    pub fn new(expect: IpAddr, sdp: Option<SocketAddr>) -> Leg {
        Leg {
            expect,
            latched: None,
            dest: sdp.map(|a| SocketAddr::new(expect, a.port())),
            stats: LegStats::default(),
        }
    }
}

/// The forwarding state of one relayed call.
#[derive(Debug, Clone)]
pub struct MediaPath {
    legs: [Leg; 2],
    timeout: Duration,
    last_heard: Instant,
    /// The relay host's own address that media bridges send from (the
    /// browser's WebSocket media, bridged onto UDP by this process): a leg
    /// may latch from it, and an SDP naming it is sent to as it says.
    bridge: Option<IpAddr>,
}

impl MediaPath {
    /// A call opened at `now` that expires after `timeout` without a
    /// forwarded packet.
    pub fn new(now: Instant, caller: Leg, callee: Leg, timeout: Duration) -> MediaPath {
        MediaPath {
            legs: [caller, callee],
            timeout,
            last_heard: now,
            bridge: None,
        }
    }

    /// The same path, also accepting media from the bridges on `ip` (see
    /// the field). Only this host can send from its own address: the
    /// kernel drops packets from outside that claim it.
    pub fn with_bridge(mut self, ip: IpAddr) -> MediaPath {
        self.bridge = Some(ip);
        self
    }

    /// Side `side`.
    pub fn leg(&self, side: Side) -> &Leg {
        &self.legs[side.index()]
    }

    /// The side's SDP changed (an answer, a re-offer): before latching, its
    /// media goes to its SIP source IP at this SDP port.
    pub fn set_sdp(&mut self, side: Side, sdp: SocketAddr) {
        let bridged = self.bridge == Some(sdp.ip());
        let leg = &mut self.legs[side.index()];
        if leg.latched.is_none() {
            leg.dest = Some(if bridged {
                sdp
            } else {
                SocketAddr::new(leg.expect, sdp.port())
            });
        }
    }

    /// A datagram of `len` bytes from `from` arrived on `side`'s port.
    pub fn handle_packet(
        &mut self,
        now: Instant,
        side: Side,
        from: SocketAddr,
        len: usize,
    ) -> Verdict {
        let bridged = self.bridge == Some(from.ip());
        let leg = &mut self.legs[side.index()];
        match leg.latched {
            Some(a) if a == from => {}
            None if from.ip() == leg.expect || bridged => {
                leg.latched = Some(from);
                leg.dest = Some(from);
            }
            _ => {
                leg.stats.dropped += 1;
                return Verdict::Drop(DropReason::Stranger);
            }
        }
        let Some(dest) = self.legs[side.other().index()].dest else {
            self.legs[side.index()].stats.dropped += 1;
            return Verdict::Drop(DropReason::NoDestination);
        };
        let leg = &mut self.legs[side.index()];
        leg.stats.packets += 1;
        leg.stats.bytes += len as u64;
        self.last_heard = now;
        Verdict::Forward { dest }
    }

    /// A datagram on `side`'s port that cannot be forwarded (too large to
    /// be relayed whole): dropped and counted.
    pub fn drop_packet(&mut self, side: Side) {
        self.legs[side.index()].stats.dropped += 1;
    }

    /// When the call counts as silent.
    pub fn poll_timeout(&self) -> Instant {
        self.last_heard + self.timeout
    }

    /// True when nothing was forwarded for the media timeout.
    pub fn handle_timeout(&mut self, now: Instant) -> bool {
        now >= self.poll_timeout()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    const OFFER: &str =
        "v=0\r\no=myturn 7 1 IN IP4 10.1.0.2\r\ns=myTurn\r\nc=IN IP4 10.1.0.2\r\nt=0 0\r\n\
m=audio 40000 RTP/AVP 96\r\na=rtpmap:96 L16/8000\r\na=rtcp:40001\r\na=ptime:20\r\na=sendrecv\r\n\
a=myturn-key:sha-256 AAAA_bbbb-CCCC\r\nm=video 40002 RTP/AVP 99\r\nc=IN IP4 10.1.0.2\r\n";

    #[test]
    fn rewrite_points_audio_at_the_relay_and_keeps_the_rest() {
        let to: SocketAddr = "203.0.113.1:30002".parse().unwrap();
        let r = rewrite_sdp(OFFER.as_bytes(), to).unwrap();
        assert_eq!(r.original, "10.1.0.2:40000".parse().unwrap());
        let text = String::from_utf8(r.body).unwrap();
        assert!(
            text.contains("\r\nc=IN IP4 203.0.113.1\r\nt=0 0\r\n"),
            "{text}"
        );
        assert!(text.contains("m=audio 30002 RTP/AVP 96\r\n"), "{text}");
        assert!(text.contains("m=video 0 RTP/AVP 99\r\n"), "{text}");
        assert!(text.contains("a=myturn-key:sha-256 AAAA_bbbb-CCCC\r\n"));
        assert!(text.contains("a=rtpmap:96 L16/8000\r\n"));
        assert!(!text.contains("rtcp"), "{text}");
        assert!(!text.contains("10.1.0.2\r\nt="), "{text}");
        // What our own parser reads from the rewritten body.
        let sdp = myturn_sip::sdp::Sdp::parse(text.as_bytes()).unwrap();
        assert_eq!(sdp.media, to);
        assert_eq!(sdp.key.as_deref(), Some("AAAA_bbbb-CCCC"));
    }

    #[test]
    fn rewrite_refuses_what_it_cannot_anchor() {
        let to: SocketAddr = "203.0.113.1:30002".parse().unwrap();
        assert_eq!(
            rewrite_sdp(b"v=0\r\nc=IN IP4 10.0.0.1\r\n", to),
            Err(RewriteError::NoAudio)
        );
        assert_eq!(
            rewrite_sdp(b"v=0\r\nm=audio 4000 RTP/AVP 0\r\n", to),
            Err(RewriteError::NoAddress)
        );
        assert_eq!(rewrite_sdp(&[0xff, 0xfe], to), Err(RewriteError::Encoding));
    }

    #[test]
    fn pool_hands_out_pairs_oldest_freed_first_and_never_twice() {
        let mut pool = PortPool::new(30001..=30010);
        assert_eq!(pool.capacity(), 4); // 30002, 30004, 30006, 30008
        let a = pool.allocate().unwrap();
        assert_eq!(a, [30002, 30003]);
        let mut taken = vec![a];
        while let Some(p) = pool.allocate() {
            taken.push(p);
        }
        assert_eq!(taken.len(), 4);
        assert_eq!(pool.available(), 0);
        pool.release(a);
        pool.release(taken[2]);
        assert_eq!(pool.allocate(), Some(a));
        assert_eq!(pool.allocate(), Some(taken[2]));
        assert_eq!(pool.allocate(), None);
        assert_eq!(PortPool::new(65534..=65535).capacity(), 1);
        assert_eq!(PortPool::new(5..=5).capacity(), 0);
    }

    #[test]
    fn a_bridged_page_is_reached_at_its_sdp_and_latched_from_the_host() {
        // The page's SIP came from its browser (198.51.100.9, over the
        // WebSocket); its media comes from this host's bridge (127.0.0.1).
        let t0 = Instant::now();
        let browser: IpAddr = "198.51.100.9".parse().unwrap();
        let term: IpAddr = "203.0.113.4".parse().unwrap();
        let bridge: IpAddr = "127.0.0.1".parse().unwrap();
        let mut p = MediaPath::new(
            t0,
            Leg::new(term, None),
            Leg::new(browser, None),
            Duration::from_secs(30),
        )
        .with_bridge(bridge);
        // The page's answer names the bridge: sent there before latching.
        let bridged: SocketAddr = "127.0.0.1:41000".parse().unwrap();
        p.set_sdp(Side::Callee, bridged);
        let t_src: SocketAddr = "203.0.113.4:7000".parse().unwrap();
        assert_eq!(
            p.handle_packet(t0, Side::Caller, t_src, 100),
            Verdict::Forward { dest: bridged }
        );
        // The bridge's datagrams latch the page's side.
        assert_eq!(
            p.handle_packet(t0, Side::Callee, bridged, 100),
            Verdict::Forward { dest: t_src }
        );
        assert_eq!(p.leg(Side::Callee).latched, Some(bridged));
        // Without the bridge, the host's address is a stranger.
        let mut plain = MediaPath::new(
            t0,
            Leg::new(term, None),
            Leg::new(browser, None),
            Duration::from_secs(30),
        );
        plain.set_sdp(Side::Callee, bridged);
        assert_eq!(
            plain.handle_packet(t0, Side::Callee, bridged, 100),
            Verdict::Drop(DropReason::Stranger)
        );
    }

    #[test]
    fn latches_on_the_sip_source_and_drops_strangers() {
        let t0 = Instant::now();
        let nat_a: IpAddr = "198.51.100.2".parse().unwrap();
        let nat_b: IpAddr = "198.51.100.6".parse().unwrap();
        let mut p = MediaPath::new(
            t0,
            Leg::new(nat_a, Some("10.1.0.2:40000".parse().unwrap())),
            Leg::new(nat_b, None),
            Duration::from_secs(30),
        );
        // Before the callee answers, the caller's packets have nowhere to go.
        let a_src: SocketAddr = "198.51.100.2:61000".parse().unwrap();
        assert_eq!(
            p.handle_packet(t0, Side::Caller, a_src, 100),
            Verdict::Drop(DropReason::NoDestination)
        );
        // The answer: the callee's media at its SIP source IP, SDP port.
        p.set_sdp(Side::Callee, "10.1.0.2:40000".parse().unwrap());
        assert_eq!(
            p.handle_packet(t0, Side::Caller, a_src, 100),
            Verdict::Forward {
                dest: "198.51.100.6:40000".parse().unwrap()
            }
        );
        // A stranger before the callee latched: not from its SIP source IP.
        let stranger: SocketAddr = "192.0.2.66:5000".parse().unwrap();
        assert_eq!(
            p.handle_packet(t0, Side::Callee, stranger, 100),
            Verdict::Drop(DropReason::Stranger)
        );
        // The callee's NAT maps its media to a random port: latched.
        let b_src: SocketAddr = "198.51.100.6:52001".parse().unwrap();
        assert_eq!(
            p.handle_packet(t0, Side::Callee, b_src, 100),
            Verdict::Forward { dest: a_src }
        );
        assert_eq!(
            p.handle_packet(t0, Side::Caller, a_src, 100),
            Verdict::Forward { dest: b_src }
        );
        // Once latched, even the right IP from another port is a stranger,
        // and a late SDP change does not move a latched side.
        let b_other: SocketAddr = "198.51.100.6:52002".parse().unwrap();
        assert_eq!(
            p.handle_packet(t0, Side::Callee, b_other, 100),
            Verdict::Drop(DropReason::Stranger)
        );
        p.set_sdp(Side::Callee, "10.9.9.9:1".parse().unwrap());
        assert_eq!(p.leg(Side::Callee).dest, Some(b_src));
        assert_eq!(p.leg(Side::Callee).stats.dropped, 2);
        assert_eq!(p.leg(Side::Callee).stats.packets, 1);
        assert_eq!(p.leg(Side::Caller).stats.packets, 2);
        assert_eq!(p.leg(Side::Caller).stats.bytes, 200);
        assert_eq!(p.leg(Side::Caller).stats.dropped, 1);
    }

    #[test]
    fn expires_after_the_media_timeout_without_packets() {
        let t0 = Instant::now();
        let ip: IpAddr = "198.51.100.2".parse().unwrap();
        let mut p = MediaPath::new(
            t0,
            Leg::new(ip, Some("198.51.100.2:4000".parse().unwrap())),
            Leg::new(ip, Some("198.51.100.2:4002".parse().unwrap())),
            Duration::from_secs(10),
        );
        assert_eq!(p.poll_timeout(), t0 + Duration::from_secs(10));
        let t1 = t0 + Duration::from_secs(9);
        p.handle_packet(t1, Side::Caller, "198.51.100.2:4000".parse().unwrap(), 10);
        assert!(!p.handle_timeout(t0 + Duration::from_secs(10)));
        assert!(!p.handle_timeout(t1 + Duration::from_millis(9_999)));
        assert!(p.handle_timeout(t1 + Duration::from_secs(10)));
        // A stranger's packets do not keep the call alive.
        let mut q = p.clone();
        q.handle_packet(
            t1 + Duration::from_secs(5),
            Side::Caller,
            "192.0.2.1:1".parse().unwrap(),
            10,
        );
        assert!(q.handle_timeout(t1 + Duration::from_secs(10)));
    }
}

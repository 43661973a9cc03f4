//! A sans-IO call through a simulated back-to-back user agent, the way
//! Asterisk handles one: every datagram crosses an in-memory network in
//! simulated time, and nothing runs on sockets or clocks.
//!
//! The B2BUA is built like Asterisk's two bridged channels: one of our own
//! SIP agents terminates the caller's leg, another places a new call to the
//! callee. Between them it does what a real one does:
//! * a new Call-ID, tags and CSeq on the callee's leg;
//! * the offer's payload type 96 renumbered to 10 (Asterisk's `L16/8000`),
//!   the `a=myturn-key` attribute dropped, the media address replaced by
//!   its relay port on each leg;
//! * a `183 Session Progress` with SDP before the `200`;
//! * a relay that writes its own RTP header (SSRC, sequence number,
//!   timestamp, payload type) on every packet;
//! * a mid-call re-INVITE, with `Session-Expires` (a session-timer
//!   refresh), that moves the caller's leg to another relay port: the old
//!   port is closed at once.
//!
//! The two ends must still agree the same SAS from the pair id alone and
//! exchange every audio frame bit-exact and every chat line, both ways,
//! before and after the move.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use myturn_media::codec::{to_samples, Codec, Decoder};
use myturn_media::keys::{EphemeralKey, PairId, Role};
use myturn_media::packet::RtpHeader;
use myturn_media::session::{Config as MediaConfig, Event as MediaEvent, Session};
use myturn_sip::build;
use myturn_sip::msg;
use myturn_sip::sdp::Sdp;
use myturn_sip::ua::{CallHandle, Config as SipConfig, Event as SipEvent, UserAgent};
use rand::rngs::StdRng;
use rand::SeedableRng;
use rsip::headers::UntypedHeader;

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

// Documentation addresses: the two users and the PBX.
const A_SIP: &str = "192.0.2.10:5060";
const A_MEDIA: &str = "192.0.2.10:40000";
const B_SIP: &str = "192.0.2.20:5060";
const B_MEDIA: &str = "192.0.2.20:40000";
const PBX_A_SIP: &str = "198.51.100.1:5060";
const PBX_B_SIP: &str = "198.51.100.1:5070";
/// The relay port on the caller's leg, before and after the re-INVITE.
const RELAY_A: &str = "198.51.100.1:10000";
const RELAY_A_MOVED: &str = "198.51.100.1:20000";
/// The relay port on the callee's leg.
const RELAY_B: &str = "198.51.100.1:10002";
/// Asterisk's payload type for `L16/8000` on the callee's leg.
const PT_B: u8 = 10;
/// The number the B2BUA gives Opus on the callee's leg.
const PT_B_OPUS: u8 = 107;

/// One end: a SIP agent and, once answered, a media session.
struct End {
    sip: UserAgent,
    sip_addr: SocketAddr,
    media_addr: SocketAddr,
    key: Option<EphemeralKey>,
    media: Option<Session>,
    /// Where the media session sends (changed by re-INVITE/UPDATE).
    media_peer: Option<SocketAddr>,
    call: Option<CallHandle>,
    sip_call_id: Option<String>,
    established: Option<String>,
    heard: Vec<Vec<u8>>,
    /// The codec each heard frame came in, and the one agreed.
    heard_codecs: Vec<Codec>,
    agreed: Option<Codec>,
    /// What this end offers.
    codecs: Vec<Codec>,
    chat: Vec<String>,
    events: Vec<SipEvent>,
}

impl End {
    fn new(sip_addr: &str, media_addr: &str, pbx: &str, user: &str, seed: u64) -> End {
        let mut cfg = SipConfig::new(addr(sip_addr), addr(pbx), user, "pw");
        cfg.domain = addr(pbx).ip().to_string();
        End {
            sip: UserAgent::new(cfg, Box::new(StdRng::seed_from_u64(seed))),
            sip_addr: addr(sip_addr),
            media_addr: addr(media_addr),
            key: Some(EphemeralKey::generate(&mut StdRng::seed_from_u64(
                seed + 100,
            ))),
            media: None,
            media_peer: None,
            call: None,
            sip_call_id: None,
            established: None,
            heard: Vec::new(),
            heard_codecs: Vec::new(),
            agreed: None,
            codecs: vec![Codec::Pcm16],
            chat: Vec::new(),
            events: Vec::new(),
        }
    }

    /// Starts the media session on the negotiated SDP, as the client does.
    fn start_media(&mut self, role: Role, pair: PairId, remote: &Sdp, now: Instant) {
        let cfg = MediaConfig {
            role,
            pair_id: pair,
            // The B2BUA dropped the SDP attribute; the fingerprint would come
            // from the pairing server. Not needed for this scenario.
            peer_fingerprint: None,
            payload_type: remote.payload_type,
            opus_payload_type: remote.opus,
            ssrc: 0x1111_0000 + u32::from(role == Role::Responder),
            samples_per_frame: remote.rate / 50,
            // As the client does: Opus into the handshake only when the
            // path's SDP carried it.
            codecs: if remote.opus.is_some() {
                self.codecs.clone()
            } else {
                vec![Codec::Pcm16]
            },
        };
        let key = self.key.take().unwrap();
        let seed = u64::from(role == Role::Responder) + 7;
        self.media = Some(Session::with_key(
            cfg,
            key,
            Box::new(StdRng::seed_from_u64(seed)),
            now,
        ));
        self.media_peer = Some(remote.media);
    }
}

/// A datagram in flight.
struct Packet {
    from: SocketAddr,
    to: SocketAddr,
    data: Vec<u8>,
}

/// What the relay writes on each leg's packets.
struct LegRewrite {
    ssrc: u32,
    seq_offset: u16,
    ts_offset: u32,
    payload_type: u8,
}

struct World {
    now: Instant,
    a: End,
    b: End,
    /// The B2BUA's two channels.
    pbx_a: UserAgent,
    pbx_b: UserAgent,
    pbx_a_call: Option<CallHandle>,
    pbx_b_call: Option<CallHandle>,
    /// Where the relay sends on each leg (learnt from SDP).
    relay_to_a: Option<SocketAddr>,
    relay_to_b: Option<SocketAddr>,
    /// The relay port open on the caller's leg.
    relay_a: SocketAddr,
    net: VecDeque<Packet>,
    /// Every SIP datagram that reached A or B, for the assertions.
    sip_seen_by_a: Vec<String>,
    sip_seen_by_b: Vec<String>,
    /// RTP headers as sent by A and as received by B.
    rtp_sent_by_a: Vec<RtpHeader>,
    rtp_received_by_b: Vec<RtpHeader>,
    relayed: u64,
    dropped_at_closed_port: u64,
    /// Raw text of the INVITE A sent, and the To tag of the PBX's answer.
    a_invite: Option<String>,
    pbx_a_tag: Option<String>,
    sent_183: bool,
}

fn rewrite(data: &[u8], leg: &LegRewrite) -> Vec<u8> {
    let (h, payload) = RtpHeader::parse(data).unwrap();
    let mut out = Vec::with_capacity(data.len());
    RtpHeader::new(
        leg.payload_type,
        h.seq.wrapping_add(leg.seq_offset),
        h.timestamp.wrapping_add(leg.ts_offset),
        leg.ssrc,
    )
    .write(&mut out);
    out.extend_from_slice(payload);
    out
}

/// The B2BUA's SDP for one leg: its relay address, its payload type
/// numbering, and no myTurn attribute (a B2BUA drops what it does not know).
fn pbx_sdp(of: &Sdp, media: SocketAddr, payload_type: u8, session: u64) -> String {
    let mut s = Sdp::new(media, of.rate, None, session);
    s.payload_type = payload_type;
    // Opus passes when offered, renumbered on the callee's leg, and its
    // fmtp dropped (the B2BUA does not know the parameters).
    s.opus = of
        .opus
        .map(|_| if payload_type == PT_B { PT_B_OPUS } else { 111 });
    s.render()
        .lines()
        .filter(|l| !l.starts_with("a=fmtp"))
        .map(|l| format!("{l}\r\n"))
        .collect()
}

impl World {
    fn new() -> World {
        let mut cfg_a = SipConfig::new(addr(PBX_A_SIP), addr(A_SIP), "pbx", "x");
        cfg_a.domain = "198.51.100.1".into();
        let mut cfg_b = SipConfig::new(addr(PBX_B_SIP), addr(B_SIP), "pbx", "x");
        cfg_b.domain = "192.0.2.20".into();
        World {
            now: Instant::now(),
            a: End::new(A_SIP, A_MEDIA, PBX_A_SIP, "alice", 1),
            b: End::new(B_SIP, B_MEDIA, PBX_B_SIP, "bob", 2),
            pbx_a: UserAgent::new(cfg_a, Box::new(StdRng::seed_from_u64(3))),
            pbx_b: UserAgent::new(cfg_b, Box::new(StdRng::seed_from_u64(4))),
            pbx_a_call: None,
            pbx_b_call: None,
            relay_to_a: None,
            relay_to_b: None,
            relay_a: addr(RELAY_A),
            net: VecDeque::new(),
            sip_seen_by_a: Vec::new(),
            sip_seen_by_b: Vec::new(),
            rtp_sent_by_a: Vec::new(),
            rtp_received_by_b: Vec::new(),
            relayed: 0,
            dropped_at_closed_port: 0,
            a_invite: None,
            pbx_a_tag: None,
            sent_183: false,
        }
    }

    /// Collects everything the agents and sessions want to send.
    fn collect(&mut self) {
        for (ua, from) in [
            (&mut self.a.sip, self.a.sip_addr),
            (&mut self.b.sip, self.b.sip_addr),
            (&mut self.pbx_a, addr(PBX_A_SIP)),
            (&mut self.pbx_b, addr(PBX_B_SIP)),
        ] {
            while let Some(t) = ua.poll_transmit() {
                self.net.push_back(Packet {
                    from,
                    to: t.dest,
                    data: t.payload,
                });
            }
        }
        for end in [&mut self.a, &mut self.b] {
            if let (Some(m), Some(peer)) = (end.media.as_mut(), end.media_peer) {
                while let Some(d) = m.poll_transmit() {
                    self.net.push_back(Packet {
                        from: end.media_addr,
                        to: peer,
                        data: d,
                    });
                }
            }
        }
    }

    /// Delivers every datagram in flight (and what they cause).
    fn deliver(&mut self) {
        let mut guard = 0;
        loop {
            self.collect();
            let Some(p) = self.net.pop_front() else { break };
            guard += 1;
            assert!(guard < 100_000, "the network never settles");
            let now = self.now;
            if p.to == self.a.sip_addr {
                self.sip_seen_by_a
                    .push(String::from_utf8_lossy(&p.data).into_owned());
                self.a.sip.handle_datagram(now, p.from, &p.data);
            } else if p.to == self.b.sip_addr {
                self.sip_seen_by_b
                    .push(String::from_utf8_lossy(&p.data).into_owned());
                self.b.sip.handle_datagram(now, p.from, &p.data);
            } else if p.to == addr(PBX_A_SIP) {
                if p.data.starts_with(b"INVITE ") && self.a_invite.is_none() {
                    self.a_invite = Some(String::from_utf8_lossy(&p.data).into_owned());
                }
                self.pbx_a.handle_datagram(now, p.from, &p.data);
            } else if p.to == addr(PBX_B_SIP) {
                self.pbx_b.handle_datagram(now, p.from, &p.data);
            } else if p.to == self.a.media_addr {
                if let Some(m) = self.a.media.as_mut() {
                    m.handle_datagram(now, &p.data);
                }
            } else if p.to == self.b.media_addr {
                self.rtp_received_by_b
                    .push(RtpHeader::parse(&p.data).unwrap().0);
                if let Some(m) = self.b.media.as_mut() {
                    m.handle_datagram(now, &p.data);
                }
            } else if p.to == self.relay_a {
                // From the caller, towards the callee: the relay's own header.
                self.rtp_sent_by_a
                    .push(RtpHeader::parse(&p.data).unwrap().0);
                if let Some(to) = self.relay_to_b {
                    let leg = LegRewrite {
                        ssrc: 0xA5A5_0001,
                        seq_offset: 17_000,
                        ts_offset: 900_000,
                        payload_type: PT_B,
                    };
                    self.relayed += 1;
                    self.net.push_back(Packet {
                        from: addr(RELAY_B),
                        to,
                        data: rewrite(&p.data, &leg),
                    });
                }
            } else if p.to == addr(RELAY_B) {
                if let Some(to) = self.relay_to_a {
                    let leg = LegRewrite {
                        ssrc: 0x5A5A_0002,
                        seq_offset: 40_000,
                        ts_offset: 12_345,
                        payload_type: 96,
                    };
                    self.relayed += 1;
                    self.net.push_back(Packet {
                        from: self.relay_a,
                        to,
                        data: rewrite(&p.data, &leg),
                    });
                }
            } else if p.to == addr(RELAY_A) || p.to == addr(RELAY_A_MOVED) {
                // The caller's old relay port, closed after the move.
                self.dropped_at_closed_port += 1;
            } else {
                panic!("datagram to nowhere: {}", p.to);
            }
            self.b2bua();
            self.ends();
        }
    }

    /// The B2BUA's bridging logic, on its two channels' events.
    fn b2bua(&mut self) {
        let now = self.now;
        while let Some(ev) = self.pbx_a.poll_event() {
            match ev {
                SipEvent::IncomingCall {
                    call,
                    offer: Some(offer),
                    ..
                } => {
                    self.pbx_a_call = Some(call);
                    self.relay_to_a = Some(offer.media);
                    let sdp = pbx_sdp(&offer, addr(RELAY_B), PT_B, 9001);
                    let out = self.pbx_b.invite(now, "bob", &sdp).unwrap();
                    self.pbx_b_call = Some(out);
                }
                SipEvent::CallEnded { .. } => {
                    if let Some(c) = self.pbx_b_call {
                        let _ = self.pbx_b.hangup(now, c);
                    }
                }
                _ => {}
            }
        }
        while let Some(ev) = self.pbx_b.poll_event() {
            match ev {
                SipEvent::Ringing { .. } if !self.sent_183 => self.send_183(),
                SipEvent::Answered {
                    answer: Some(answer),
                    ..
                } => {
                    self.relay_to_b = Some(answer.media);
                    let sdp = pbx_sdp(&answer, self.relay_a, 96, 9002);
                    self.pbx_a
                        .answer(now, self.pbx_a_call.unwrap(), &sdp)
                        .unwrap();
                }
                SipEvent::CallEnded { .. } => {
                    if let Some(c) = self.pbx_a_call {
                        let _ = self.pbx_a.hangup(now, c);
                    }
                }
                _ => {}
            }
        }
    }

    /// `183 Session Progress` with SDP to the caller (early media offer),
    /// as Asterisk sends with `progressinband`.
    fn send_183(&mut self) {
        self.sent_183 = true;
        let invite = msg::parse(self.a_invite.as_ref().unwrap().as_bytes()).unwrap();
        let tag = self.pbx_a_tag.clone().unwrap_or_else(|| "pbx-early".into());
        let body = Sdp::new(self.relay_a, 8000, None, 9003).render();
        let bytes = build::response_raw(
            183,
            "Session Progress",
            &build::raw_of(&invite),
            Some(&tag),
            vec![rsip::headers::ContentType::new("application/sdp").into()],
            body.as_bytes(),
        );
        self.net.push_back(Packet {
            from: addr(PBX_A_SIP),
            to: self.a.sip_addr,
            data: bytes,
        });
    }

    /// The clients' logic (what `myturn_client::call` does), on their
    /// agents' and sessions' events.
    fn ends(&mut self) {
        let now = self.now;
        let pair = PairId([0x42; 16]);
        for (end, role) in [
            (&mut self.a, Role::Initiator),
            (&mut self.b, Role::Responder),
        ] {
            while let Some(ev) = end.sip.poll_event() {
                match &ev {
                    SipEvent::IncomingCall {
                        call,
                        sip_call_id,
                        offer: Some(offer),
                        ..
                    } => {
                        end.call = Some(*call);
                        end.sip_call_id = Some(sip_call_id.clone());
                        let answer = if end.codecs.contains(&Codec::Opus) {
                            Sdp::answer_with_opus(offer, end.media_addr, None, 77)
                        } else {
                            Sdp::answer(offer, end.media_addr, None, 77)
                        }
                        .render();
                        end.sip.answer(now, *call, &answer).unwrap();
                        end.start_media(role, pair, offer, now);
                    }
                    SipEvent::Answered {
                        sip_call_id,
                        answer: Some(answer),
                        ..
                    } => {
                        end.sip_call_id = Some(sip_call_id.clone());
                        end.start_media(role, pair, answer, now);
                    }
                    SipEvent::RemoteMediaChanged { sdp, .. } => {
                        end.media_peer = Some(sdp.media);
                        if let Some(m) = end.media.as_mut() {
                            m.set_payload_types(sdp.payload_type, sdp.opus);
                        }
                    }
                    _ => {}
                }
                end.events.push(ev);
            }
            if let Some(m) = end.media.as_mut() {
                while let Some(ev) = m.poll_event() {
                    match ev {
                        MediaEvent::Established { sas, codec, .. } => {
                            end.established = Some(sas);
                            end.agreed = Some(codec);
                        }
                        MediaEvent::Audio {
                            data,
                            codec,
                            redundant: false,
                            ..
                        } => {
                            end.heard.push(data);
                            end.heard_codecs.push(codec);
                        }
                        MediaEvent::Audio { .. } => {}
                        MediaEvent::Text(t) => end.chat.push(t),
                        MediaEvent::Failed(f) => panic!("media failed: {f}"),
                    }
                }
            }
        }
        // Learn the PBX's To tag on the caller's leg (for the 183).
        if self.pbx_a_tag.is_none() {
            if let Some(tag) = self.sip_seen_by_a.iter().find_map(|m| {
                let parsed = msg::parse(m.as_bytes()).ok()?;
                parsed.to()?.tag().map(str::to_owned)
            }) {
                self.pbx_a_tag = Some(tag);
            }
        }
    }

    /// Advances simulated time by `d` in 10 ms steps, firing timers.
    fn run_for(&mut self, d: Duration) {
        let end = self.now + d;
        while self.now < end {
            self.now += Duration::from_millis(10);
            let now = self.now;
            for ua in [
                &mut self.a.sip,
                &mut self.b.sip,
                &mut self.pbx_a,
                &mut self.pbx_b,
            ] {
                if ua.poll_timeout().is_some_and(|t| t <= now) {
                    ua.handle_timeout(now);
                }
            }
            for end in [&mut self.a, &mut self.b] {
                if let Some(m) = end.media.as_mut() {
                    if m.poll_timeout().is_some_and(|t| t <= now) {
                        m.handle_timeout(now);
                    }
                }
            }
            self.deliver();
        }
    }

    /// One 20 ms audio frame each way, distinct content per side and index.
    fn talk(&mut self, frames: usize, sent_a: &mut Vec<Vec<u8>>, sent_b: &mut Vec<Vec<u8>>) {
        for _ in 0..frames {
            let (ia, ib) = (sent_a.len(), sent_b.len());
            let fa: Vec<u8> = (0..320).map(|i| (i * 7 + ia * 13) as u8).collect();
            let fb: Vec<u8> = (0..320).map(|i| (i * 11 + ib * 3 + 1) as u8).collect();
            self.a.media.as_mut().unwrap().send_audio(&fa).unwrap();
            self.b.media.as_mut().unwrap().send_audio(&fb).unwrap();
            sent_a.push(fa);
            sent_b.push(fb);
            self.run_for(Duration::from_millis(20));
        }
    }

    /// The PBX re-INVITEs the caller to move its leg to another relay port
    /// (Asterisk does this when it re-anchors media), with a session-timer
    /// refresh in the same request. Returns the caller's response text.
    fn reinvite_caller(&mut self) -> String {
        self.reinvite_caller_with(1800)
    }

    /// [`World::reinvite_caller`] with this session interval (seconds).
    fn reinvite_caller_with(&mut self, session_expires: u32) -> String {
        let invite = msg::parse(self.a_invite.as_ref().unwrap().as_bytes()).unwrap();
        let from = invite.header("From").unwrap().to_owned();
        let to = invite.header("To").unwrap().to_owned();
        let tag = self.pbx_a_tag.clone().unwrap();
        let call_id = invite.call_id().to_owned();
        let contact = invite.name_addrs("Contact").into_iter().next().unwrap().uri;
        self.relay_a = addr(RELAY_A_MOVED);
        let body = Sdp::new(self.relay_a, 8000, None, 9002).render();
        // Same session id as the PBX's answer, a higher version.
        let body = body.replacen("9002 1", "9002 2", 1);
        let text = format!(
            "INVITE {contact} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {PBX_A_SIP};branch=z9hG4bK-reinvite-1;rport\r\n\
             Max-Forwards: 70\r\n\
             From: {to};tag={tag}\r\n\
             To: {from}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 102 INVITE\r\n\
             Contact: <sip:pbx@{PBX_A_SIP}>\r\n\
             Supported: timer\r\n\
             Session-Expires: {session_expires};refresher=uac\r\n\
             Content-Type: application/sdp\r\n\
             Content-Length: {}\r\n\r\n{body}",
            body.len()
        );
        let before = self.sip_seen_by_a.len();
        let mut responses = Vec::new();
        self.net.push_back(Packet {
            from: addr(PBX_A_SIP),
            to: self.a.sip_addr,
            data: text.into_bytes(),
        });
        // Capture what A answers (addressed to the PBX).
        self.collect();
        self.deliver_capturing(&mut responses);
        assert!(self.sip_seen_by_a.len() > before);
        let ok = responses
            .into_iter()
            .find(|r| r.starts_with("SIP/2.0 200"))
            .expect("the caller answers the re-INVITE with 200");
        // ACK it, as the PBX would.
        let ack = format!(
            "ACK {contact} SIP/2.0\r\n\
             Via: SIP/2.0/UDP {PBX_A_SIP};branch=z9hG4bK-reinvite-ack;rport\r\n\
             Max-Forwards: 70\r\n\
             From: {to};tag={tag}\r\n\
             To: {from}\r\n\
             Call-ID: {call_id}\r\n\
             CSeq: 102 ACK\r\n\
             Content-Length: 0\r\n\r\n"
        );
        self.net.push_back(Packet {
            from: addr(PBX_A_SIP),
            to: self.a.sip_addr,
            data: ack.into_bytes(),
        });
        self.deliver();
        ok
    }

    /// [`World::deliver`], keeping the text of A's responses to the PBX's
    /// re-INVITE (they do not go through the PBX's agent).
    fn deliver_capturing(&mut self, out: &mut Vec<String>) {
        let now = self.now;
        // Hand the re-INVITE to A, then take its answer off the network.
        while let Some(p) = self.net.pop_front() {
            if p.to == self.a.sip_addr {
                self.sip_seen_by_a
                    .push(String::from_utf8_lossy(&p.data).into_owned());
                self.a.sip.handle_datagram(now, p.from, &p.data);
            } else {
                self.net.push_back(p);
                break;
            }
        }
        while let Some(t) = self.a.sip.poll_transmit() {
            if t.dest == addr(PBX_A_SIP) && t.payload.starts_with(b"SIP/2.0 ") {
                out.push(String::from_utf8_lossy(&t.payload).into_owned());
            } else {
                self.net.push_back(Packet {
                    from: self.a.sip_addr,
                    to: t.dest,
                    data: t.payload,
                });
            }
        }
        self.ends();
        self.deliver();
    }
}

#[test]
fn a_call_survives_everything_a_back_to_back_agent_rewrites() {
    let mut w = World::new();
    let now = w.now;
    // The caller's offer, as the client makes it.
    let offer = Sdp::new(w.a.media_addr, 8000, None, 55).render();
    let call = w.a.sip.invite(now, "bob", &offer).unwrap();
    w.a.call = Some(call);
    w.run_for(Duration::from_secs(2));

    // Signalling: each leg has its own Call-ID, and the callee saw the
    // renumbered payload type; the caller got a 183 with SDP first.
    let (ca, cb) = (
        w.a.sip_call_id.clone().unwrap(),
        w.b.sip_call_id.clone().unwrap(),
    );
    assert_ne!(ca, cb, "the B2BUA gives each leg its own Call-ID");
    assert!(w.sent_183, "the caller got a 183 with SDP");
    assert!(w
        .sip_seen_by_a
        .iter()
        .any(|m| m.starts_with("SIP/2.0 183") && m.contains("m=audio")));
    assert!(w
        .sip_seen_by_b
        .iter()
        .any(|m| m.starts_with("INVITE ") && m.contains("a=rtpmap:10 L16/8000")));
    assert!(
        !w.sip_seen_by_b.iter().any(|m| m.contains("myturn-key")),
        "the B2BUA drops our attribute"
    );
    let b_sent_pt =
        w.b.events
            .iter()
            .find_map(|e| match e {
                SipEvent::IncomingCall { offer: Some(o), .. } => Some(o.payload_type),
                _ => None,
            })
            .unwrap();
    assert_eq!(b_sent_pt, PT_B);

    // Keys: the same SAS on both ends, from the pair id alone.
    let (sa, sb) = (w.a.established.clone(), w.b.established.clone());
    assert!(sa.is_some(), "the caller's key agreement completed");
    assert_eq!(sa, sb, "both ends show the same SAS");

    // Audio and chat both ways, through the rewriting relay.
    let (mut sent_a, mut sent_b) = (Vec::new(), Vec::new());
    w.talk(50, &mut sent_a, &mut sent_b);
    w.a.media
        .as_mut()
        .unwrap()
        .send_text(w.now, "hello from alice")
        .unwrap();
    w.b.media
        .as_mut()
        .unwrap()
        .send_text(w.now, "hi from bob")
        .unwrap();
    w.run_for(Duration::from_millis(200));
    assert_eq!(w.b.chat, ["hello from alice"]);
    assert_eq!(w.a.chat, ["hi from bob"]);

    // The relay really rewrote every RTP header field.
    let (first_a, first_b) = (w.rtp_sent_by_a[0], w.rtp_received_by_b[0]);
    assert_ne!(first_a.ssrc, first_b.ssrc);
    assert_ne!(first_a.seq, first_b.seq);
    assert_ne!(first_a.timestamp, first_b.timestamp);
    assert_eq!(first_a.payload_type, 96);
    assert_eq!(first_b.payload_type, PT_B);
    // And each end sends with the number the other side's SDP named.
    assert!(w.rtp_sent_by_a.iter().all(|h| h.payload_type == 96));

    // Mid-call: the PBX moves the caller's leg, with a session-timer refresh.
    let dropped_before = w.dropped_at_closed_port;
    let ok = w.reinvite_caller();
    assert!(ok.contains("m=audio"), "the 200 answers the offer:\n{ok}");
    assert!(
        ok.contains("Session-Expires: 1800;refresher=uac"),
        "the refresh is acknowledged, the PBX stays the refresher:\n{ok}"
    );
    assert!(ok.contains("Require: timer"), "{ok}");
    assert!(w.a.events.iter().any(|e| matches!(
        e,
        SipEvent::RemoteMediaChanged { sdp, .. } if sdp.media == addr(RELAY_A_MOVED)
    )));
    w.talk(50, &mut sent_a, &mut sent_b);
    w.run_for(Duration::from_millis(200));
    assert_eq!(
        w.dropped_at_closed_port, dropped_before,
        "after the move nothing goes to the old port"
    );

    // Every frame, bit-exact, both ways, before and after the move.
    assert_eq!(w.b.heard.len(), sent_a.len(), "callee heard every frame");
    assert_eq!(w.a.heard.len(), sent_b.len(), "caller heard every frame");
    assert!(w.b.heard == sent_a, "caller → callee audio is bit-exact");
    assert!(w.a.heard == sent_b, "callee → caller audio is bit-exact");
    assert!(w.relayed >= 200);

    // Hang-up crosses both legs.
    let call = w.a.call.unwrap();
    w.a.sip.hangup(w.now, call).unwrap();
    w.run_for(Duration::from_secs(1));
    assert!(w
        .b
        .events
        .iter()
        .any(|e| matches!(e, SipEvent::CallEnded { .. })));
}

#[test]
fn an_offer_without_our_codec_mid_call_is_refused_and_the_call_goes_on() {
    let mut w = World::new();
    let offer = Sdp::new(w.a.media_addr, 8000, None, 55).render();
    let call = w.a.sip.invite(w.now, "bob", &offer).unwrap();
    w.a.call = Some(call);
    w.run_for(Duration::from_secs(2));
    assert!(w.a.established.is_some());
    // A re-INVITE offering only PCMU: 488, and the media is not moved.
    let invite = msg::parse(w.a_invite.as_ref().unwrap().as_bytes()).unwrap();
    let (from, to) = (
        invite.header("From").unwrap().to_owned(),
        invite.header("To").unwrap().to_owned(),
    );
    let tag = w.pbx_a_tag.clone().unwrap();
    let body =
        "v=0\r\no=pbx 9002 3 IN IP4 198.51.100.1\r\ns=-\r\nc=IN IP4 198.51.100.1\r\nt=0 0\r\n\
                m=audio 30000 RTP/AVP 0\r\na=rtpmap:0 PCMU/8000\r\n";
    let text = format!(
        "INVITE sip:alice@{A_SIP} SIP/2.0\r\n\
         Via: SIP/2.0/UDP {PBX_A_SIP};branch=z9hG4bK-pcmu-1\r\n\
         Max-Forwards: 70\r\nFrom: {to};tag={tag}\r\nTo: {from}\r\n\
         Call-ID: {}\r\nCSeq: 103 INVITE\r\nContact: <sip:pbx@{PBX_A_SIP}>\r\n\
         Content-Type: application/sdp\r\nContent-Length: {}\r\n\r\n{body}",
        invite.call_id(),
        body.len()
    );
    w.a.sip
        .handle_datagram(w.now, addr(PBX_A_SIP), text.as_bytes());
    let answer = std::iter::from_fn(|| w.a.sip.poll_transmit())
        .map(|t| String::from_utf8_lossy(&t.payload).into_owned())
        .find(|r| r.starts_with("SIP/2.0 "))
        .unwrap();
    assert!(answer.starts_with("SIP/2.0 488"), "{answer}");
    assert!(!std::iter::from_fn(|| w.a.sip.poll_event())
        .any(|e| matches!(e, SipEvent::RemoteMediaChanged { .. })));
    let (mut sa, mut sb) = (Vec::new(), Vec::new());
    w.talk(10, &mut sa, &mut sb);
    assert_eq!(w.b.heard, sa);
}

#[test]
fn a_session_the_pbx_stops_refreshing_is_hung_up_before_it_expires() {
    let mut w = World::new();
    let offer = Sdp::new(w.a.media_addr, 8000, None, 56).render();
    let call = w.a.sip.invite(w.now, "bob", &offer).unwrap();
    w.a.call = Some(call);
    w.run_for(Duration::from_secs(2));
    assert!(w.a.established.is_some());
    // The PBX refreshes with a 90 s interval, then never again (it, or
    // the path to it, is gone). RFC 4028 §10: the side that does not
    // refresh hangs up min(32, 90/3) = 30 s before expiry, at 60 s.
    let ok = w.reinvite_caller_with(90);
    assert!(ok.contains("Session-Expires: 90;refresher=uac"), "{ok}");
    let ended = |w: &World| {
        w.a.events.iter().any(|e| {
            matches!(
                e,
                SipEvent::CallEnded {
                    by: myturn_sip::ua::EndedBy::SessionExpired,
                    ..
                }
            )
        })
    };
    let b_ended = |w: &World| {
        w.b.events
            .iter()
            .any(|e| matches!(e, SipEvent::CallEnded { .. }))
    };
    w.run_for(Duration::from_secs(58));
    assert!(!ended(&w), "too early: the session has 2 s left");
    assert!(!b_ended(&w));
    w.run_for(Duration::from_secs(4));
    assert!(ended(&w), "the caller gave the session up");
    // It said so with a BYE: the B2BUA ended the other leg too.
    assert!(b_ended(&w), "the BYE crossed to the callee's leg");
}

/// Decodes Opus frames in order into samples.
fn decode_opus(frames: &[Vec<u8>]) -> Vec<i16> {
    let mut d = Decoder::new(Codec::Opus, 8000).unwrap();
    frames.iter().flat_map(|f| d.decode(f).unwrap()).collect()
}

/// The best normalised correlation of `b` with `a` over lags 0..200.
fn best_corr(a: &[i16], b: &[i16]) -> f64 {
    let n = a.len().min(b.len()).saturating_sub(200);
    (0..200)
        .map(|lag| {
            let (mut ab, mut aa, mut bb) = (0.0, 1e-9, 1e-9);
            for i in 0..n {
                let (x, y) = (f64::from(a[i]), f64::from(b[i + lag]));
                ab += x * y;
                aa += x * x;
                bb += y * y;
            }
            ab / f64::sqrt(aa * bb)
        })
        .fold(f64::MIN, f64::max)
}

#[test]
fn opus_through_the_rewriting_b2bua_is_agreed_inside_the_seal() {
    let mut w = World::new();
    w.a.codecs = vec![Codec::Opus, Codec::Pcm16];
    w.b.codecs = vec![Codec::Opus, Codec::Pcm16];
    let offer = Sdp::new(w.a.media_addr, 8000, None, 57)
        .with_opus()
        .render();
    let call = w.a.sip.invite(w.now, "bob", &offer).unwrap();
    w.a.call = Some(call);
    w.run_for(Duration::from_secs(2));
    // The B2BUA renumbered Opus and dropped its fmtp on the callee's leg,
    // and the relay stamps every packet with the L16 numbers: the two ends
    // agreed on Opus all the same, inside the handshake.
    assert!(w.sip_seen_by_b.iter().any(|m| m.starts_with("INVITE ")
        && m.contains(&format!("a=rtpmap:{PT_B_OPUS} opus/48000/2"))
        && !m.contains("a=fmtp")));
    assert_eq!(
        (w.a.agreed, w.b.agreed),
        (Some(Codec::Opus), Some(Codec::Opus))
    );
    let speech_a = myturn_client::speech::frames(5, 8000, 2.0);
    let speech_b = myturn_client::speech::frames(6, 8000, 2.0);
    for (fa, fb) in speech_a.iter().zip(&speech_b) {
        w.a.media.as_mut().unwrap().send_audio(fa).unwrap();
        w.b.media.as_mut().unwrap().send_audio(fb).unwrap();
        w.run_for(Duration::from_millis(20));
    }
    w.run_for(Duration::from_millis(200));
    for (end, sent) in [(&w.b, &speech_a), (&w.a, &speech_b)] {
        assert!(end.heard_codecs.iter().all(|&c| c == Codec::Opus));
        // A third of PCM16's bytes at most (DTX leaves the pauses out).
        let bytes: usize = end.heard.iter().map(Vec::len).sum();
        assert!(bytes * 3 < sent.len() * 320, "{bytes} bytes");
        let sent: Vec<i16> = sent.iter().flat_map(|f| to_samples(f)).collect();
        // Judged on the decoded audio, over the first second (the first
        // pause, which DTX leaves out, comes after it).
        let heard = decode_opus(&end.heard);
        let c = best_corr(&sent[..6000], &heard[..6200.min(heard.len())]);
        assert!(c > 0.8, "correlation {c}");
    }
}

#[test]
fn ends_with_different_pair_ids_never_agree() {
    // The negative control: what binds the keys is the pair id, so two ends
    // given different ones (a mix-up, or a man in the middle relaying two
    // pairs) fail the key confirmation instead of talking.
    let now = Instant::now();
    let mk = |role, pair: u8, seed: u64| {
        Session::with_key(
            MediaConfig {
                role,
                pair_id: PairId([pair; 16]),
                peer_fingerprint: None,
                payload_type: 96,
                opus_payload_type: None,
                ssrc: 1,
                samples_per_frame: 160,
                codecs: vec![Codec::Pcm16],
            },
            EphemeralKey::generate(&mut StdRng::seed_from_u64(seed)),
            Box::new(StdRng::seed_from_u64(seed + 1)),
            now,
        )
    };
    let mut s: HashMap<u8, Session> = HashMap::new();
    s.insert(0, mk(Role::Initiator, 1, 10));
    s.insert(1, mk(Role::Responder, 2, 20));
    let mut failed = false;
    let mut t = now;
    for _ in 0..200 {
        t += Duration::from_millis(50);
        for i in 0..2u8 {
            let out: Vec<Vec<u8>> =
                std::iter::from_fn(|| s.get_mut(&i).unwrap().poll_transmit()).collect();
            for d in out {
                s.get_mut(&(1 - i)).unwrap().handle_datagram(t, &d);
            }
            let me = s.get_mut(&i).unwrap();
            if me.poll_timeout().is_some_and(|d| d <= t) {
                me.handle_timeout(t);
            }
            while let Some(ev) = me.poll_event() {
                match ev {
                    MediaEvent::Established { .. } => panic!("agreed across two pairs"),
                    MediaEvent::Failed(_) => failed = true,
                    _ => {}
                }
            }
        }
    }
    assert!(failed, "the key confirmation fails");
}

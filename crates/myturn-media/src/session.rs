//! The sans-IO media session: the key-agreement handshake with
//! retransmission, then sealed audio and a reliable, ordered text stream.
//!
//! Drive it like quinn-proto or str0m: feed datagrams with
//! [`Session::handle_datagram`], call [`Session::handle_timeout`] when
//! [`Session::poll_timeout`] says, send what [`Session::poll_transmit`]
//! yields, and act on [`Session::poll_event`]. `now` is always passed in;
//! randomness comes from the RNG given at construction (the OS RNG in
//! production: keys, nonces and IVs).
//!
//! Handshake (`docs/protocol.md`): Commit, DHPart1, DHPart2, Confirm1,
//! Confirm2, each an RTP packet of the negotiated payload type whose payload
//! starts with `0x20` (version 2, kind 0) and a message type byte.

use std::collections::{BTreeMap, VecDeque};
use std::time::Duration;

use web_time::Instant;

use hmac::{Hmac, Mac};
use rand_core::CryptoRngCore;
use sha2::Sha256;
use subtle::ConstantTimeEq;

use crate::codec::{Codec, Encoder};
use crate::frame::{choose, read_caps, write_caps};
use crate::keys::{
    commitment, derive, fingerprint, EphemeralKey, KeyError, PairId, Role, SessionKeys, NONCE_LEN,
};
use crate::loss::{Adapter, LossMeter};
use crate::packet::{Discard, Inner, Kind, Opener, RtpHeader, Sealer, VERSION};

mod audio;
mod text;

/// First handshake retransmission delay; doubles up to [`HS_RTO_MAX`].
pub const HS_RTO: Duration = Duration::from_millis(100);
/// Longest handshake retransmission delay.
pub const HS_RTO_MAX: Duration = Duration::from_secs(1);
/// A handshake not done by then fails.
pub const HS_TIMEOUT: Duration = Duration::from_secs(10);
/// First text retransmission delay; doubles up to [`TEXT_RTO_MAX`].
pub const TEXT_RTO: Duration = Duration::from_millis(200);
/// Longest text retransmission delay.
pub const TEXT_RTO_MAX: Duration = Duration::from_secs(2);
/// Longest chat message, in bytes of UTF-8.
pub const TEXT_MAX_LEN: usize = 1000;
/// Text messages in flight at once; more wait in a queue.
pub const TEXT_WINDOW: usize = 64;
/// Text messages queued behind the window before `send_text` refuses more.
pub const TEXT_QUEUE: usize = 1024;

/// An established session sends a sealed keep-alive (a repeated text ack)
/// this often, whatever else it sends: a muted or silent client still
/// shows it is alive.
pub const KEEPALIVE: Duration = Duration::from_secs(1);
/// An established session with no authentic packet from the peer for this
/// long fails with [`Failure::PeerSilent`] (see [`Session::set_peer_timeout`]).
pub const DEFAULT_PEER_TIMEOUT: Duration = Duration::from_secs(5);
const MSG_COMMIT: u8 = 1;
const MSG_DH1: u8 = 2;
const MSG_DH2: u8 = 3;
const MSG_CONFIRM1: u8 = 4;
const MSG_CONFIRM2: u8 = 5;
/// The responder's "I am here", sent from the start until the Commit
/// comes: behind a NAT, nothing reaches the responder before it has sent
/// something (its NAT lets in only replies, and a relay latches on a side's
/// first packet). The initiator answers it with its Commit at once.
const MSG_HELLO: u8 = 6;
const CONFIRM_LEN: usize = 16;

/// Static settings of a session.
#[derive(Debug, Clone)]
pub struct Config {
    /// SIP caller = initiator.
    pub role: Role,
    /// The pairing server's id of this pair, bound into the keys (never
    /// the SIP Call-ID, which a back-to-back agent changes per leg).
    pub pair_id: PairId,
    /// The peer's key fingerprint from SDP, if known: a different key
    /// aborts the handshake.
    pub peer_fingerprint: Option<[u8; 32]>,
    /// RTP payload type of L16 in the partner's SDP: handshake packets,
    /// and everything when the call is PCM16.
    pub payload_type: u8,
    /// RTP payload type of Opus in the partner's SDP, if it lists Opus:
    /// what an Opus call's packets carry once established (a label for the
    /// path only; the receiver reads the codec inside the seal).
    pub opus_payload_type: Option<u8>,
    /// Our RTP SSRC.
    pub ssrc: u32,
    /// Samples per 20 ms frame (160 at 8 kHz, 320 at 16 kHz): the RTP
    /// timestamp step.
    pub samples_per_frame: u32,
    /// The codecs this side offers in the handshake, most preferred first
    /// (PCM16 is always spoken, listed or not). The codec the call uses is
    /// agreed there, sealed into the key confirmation, and never read
    /// from SDP, which a back-to-back agent may rewrite.
    pub codecs: Vec<Codec>,
}

/// Why a session failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Failure {
    /// No complete handshake within [`HS_TIMEOUT`].
    #[error("key agreement timed out (no answer from the peer)")]
    Timeout,
    /// The peer's key does not match the fingerprint from SDP.
    #[error("the peer's key does not match the fingerprint it announced: possible interception")]
    FingerprintMismatch,
    /// The revealed key does not match the commitment.
    #[error("the peer's key does not match its commitment: possible interception")]
    CommitMismatch,
    /// The confirm MAC did not verify: the two sides derived different keys.
    #[error("key confirmation failed: the two sides derived different keys")]
    ConfirmFailed,
    /// Key derivation refused the peer's key.
    #[error(transparent)]
    Key(#[from] KeyError),
    /// No authentic packet from the peer for the peer timeout: it is gone
    /// (killed, offline, or its network vanished).
    #[error("nothing heard from the partner for {0:?}: the partner is gone")]
    PeerSilent(Duration),
}

/// Something the application must know.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Keys agreed and confirmed; show `sas` to the user.
    Established {
        /// Short Authentication String.
        sas: String,
        /// The peer's key fingerprint.
        peer_fingerprint: [u8; 32],
        /// The codec both sides agreed on in the handshake.
        codec: Codec,
    },
    /// An encoded audio frame with its end-to-end sequence number. Frames
    /// arrive in network order; the playout ([`crate::playout`]) reorders,
    /// paces, decodes and conceals them.
    Audio {
        /// End-to-end sequence number of the packet that carried it.
        seq: u64,
        /// The frame index: 20 ms frames since the partner's stream began
        /// (DTX's unsent ones counted), the frame's place in time.
        frame: u64,
        /// The codec the frame is in (named inside the seal).
        codec: Codec,
        /// The encoded frame (PCM16 little-endian for [`Codec::Pcm16`]).
        data: Vec<u8>,
        /// A copy of an earlier frame carried for loss recovery (its
        /// original may have arrived already).
        redundant: bool,
    },
    /// A chat message, delivered once and in order.
    Text(String),
    /// The session cannot continue; no media flows.
    Failed(Failure),
}

/// Why a send was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SendError {
    /// Before the handshake completes nothing is sent (never in clear).
    #[error("the secure channel is not established yet")]
    NotEstablished,
    /// The session failed.
    #[error("the session failed")]
    Failed,
    /// Text too long or not one line of text.
    #[error("chat messages are 1 to {TEXT_MAX_LEN} bytes of text without control characters")]
    BadText,
    /// Too many unacknowledged messages.
    #[error("too many chat messages in flight; wait for the peer")]
    TextBacklog,
    /// An audio frame that is not 20 ms of PCM16 at the call rate.
    #[error("an audio frame must be 20 ms of PCM16 at the call rate")]
    BadAudio,
}

/// Counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Audio frames sent.
    pub audio_sent: u64,
    /// Audio frames received (authentic, fresh).
    pub audio_received: u64,
    /// Frames not sent because Opus's DTX found them silent.
    pub dtx_frames: u64,
    /// Bytes of audio datagrams sent (RTP header and seal included).
    pub audio_bytes_sent: u64,
    /// Bytes of authentic audio datagrams received.
    pub audio_bytes_received: u64,
    /// Redundant copies of earlier frames sent.
    pub redundant_sent: u64,
    /// The partner's last loss report on our audio, in 256ths.
    pub peer_loss: u8,
    /// Earlier frames each audio packet carries now.
    pub redundancy: u8,
    /// The loss Opus's FEC is told to expect now, percent (0: none).
    pub fec_loss: u8,
    /// Text packets retransmitted.
    pub text_retransmits: u64,
    /// Handshake messages retransmitted.
    pub handshake_retransmits: u64,
    /// Keep-alives sent.
    pub keepalives_sent: u64,
    /// Datagrams dropped, by reason.
    pub dropped: BTreeMap<&'static str, u64>,
}

enum State {
    /// Initiator: Commit sent, waiting for DHPart1.
    Committed,
    /// Responder: waiting for Commit.
    WaitCommit,
    /// Responder: DHPart1 sent, waiting for DHPart2.
    SentDh1 {
        commit: [u8; 32],
        peer_nonce: [u8; NONCE_LEN],
        /// The initiator's capability list as it came (for the confirm MAC).
        peer_caps: Vec<u8>,
    },
    /// Keys derived; waiting for the peer's confirm.
    Confirming(Box<Secure>),
    /// Done.
    Established(Box<Secure>),
    /// Failed for good.
    Failed,
}

struct Secure {
    keys: SessionKeys,
    /// The agreed codec's encoder.
    encoder: Encoder,
    /// The last frames sent, (end-to-end seq, bytes), newest last: what
    /// redundancy copies.
    sent_frames: VecDeque<(u64, Vec<u8>)>,
    /// How many earlier frames each packet carries (0 to
    /// [`crate::frame::MAX_REDUNDANT`]).
    redundancy: usize,
    /// Frames given to send (sent or left out by DTX): the next frame's
    /// index.
    tx_frame: u64,
    /// The highest frame index received.
    rx_frame: Option<u64>,
    /// Our loss meter on the partner's audio, and what we make of the
    /// partner's reports on ours.
    meter: LossMeter,
    adapter: Adapter,
    /// The report our acks carry (the last keep-alive's).
    report: Option<u8>,
    /// Protection follows the reports (until set by hand).
    auto: bool,
    tx_audio: Sealer,
    tx_text: Sealer,
    tx_ack: Sealer,
    rx_audio: Opener,
    rx_text: Opener,
    rx_ack: Opener,
}

impl Secure {
    fn new(keys: SessionKeys, codec: Codec, rate: u32) -> Self {
        let encoder = Encoder::new(codec, rate).or_else(|_| Encoder::new(Codec::Pcm16, rate));
        let encoder = match encoder {
            Ok(e) => e,
            Err(_) => unreachable!("PCM16 needs no set-up"),
        };
        Secure {
            encoder,
            sent_frames: VecDeque::new(),
            redundancy: 0,
            tx_frame: 0,
            rx_frame: None,
            meter: LossMeter::default(),
            adapter: Adapter::default(),
            report: None,
            auto: true,
            tx_audio: Sealer::new(Kind::Audio, &keys.send_audio),
            tx_text: Sealer::new(Kind::Text, &keys.send_text),
            tx_ack: Sealer::new(Kind::TextAck, &keys.send_text),
            rx_audio: Opener::new(Kind::Audio, &keys.recv_audio),
            rx_text: Opener::new(Kind::Text, &keys.recv_text),
            rx_ack: Opener::new(Kind::TextAck, &keys.recv_text),
            keys,
        }
    }

    /// Seals text message `msg`, sent the first time or again: its
    /// plaintext is the message number, then the UTF-8 text.
    fn seal_text(
        &mut self,
        clock: &mut RtpClock,
        rng: &mut dyn CryptoRngCore,
        msg: u32,
        text: &str,
    ) -> Vec<u8> {
        let mut pt = Vec::with_capacity(4 + text.len());
        pt.extend_from_slice(&msg.to_be_bytes());
        pt.extend_from_slice(text.as_bytes());
        seal_with(&mut self.tx_text, clock, rng, &pt)
    }
}

struct Outgoing {
    msg: u32,
    text: String,
    due: Instant,
    rto: Duration,
}

/// One call's media session. See the module docs.
pub struct Session {
    cfg: Config,
    rng: Box<dyn CryptoRngCore + Send>,
    key: EphemeralKey,
    state: State,
    started: Instant,
    /// Liveness once established: the last authentic packet from the peer,
    /// how long silence may last, and the next keep-alive.
    last_heard: Instant,
    peer_timeout: Duration,
    keepalive_due: Option<Instant>,
    /// The handshake message to (re)send and when.
    hs_last: Option<Vec<u8>>,
    hs_due: Option<Instant>,
    hs_rto: Duration,
    clock: RtpClock,
    transmits: VecDeque<Vec<u8>>,
    events: VecDeque<Event>,
    stats: Stats,
    /// The peer's key fingerprint, once its key arrived.
    peer_fp: Option<[u8; 32]>,
    /// Both capability lists as sent (`count ‖ codecs`, empty for a peer
    /// that sent none), bound into the confirm MACs.
    caps_i: Vec<u8>,
    caps_r: Vec<u8>,
    /// The agreed codec.
    codec: Codec,
    // Text, sending side.
    next_msg: u32,
    unacked: VecDeque<Outgoing>,
    pending: VecDeque<String>,
    // Text, receiving side.
    next_expected: u32,
    early: BTreeMap<u32, String>,
    scratch: Vec<u8>,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session")
            .field("role", &self.cfg.role)
            .field("established", &self.is_established())
            .field("stats", &self.stats)
            .finish_non_exhaustive()
    }
}

/// The confirm MAC: over the role's label, then both capability lists, so
/// that a codec list changed on the path fails the key confirmation.
fn confirm_mac(key: &[u8; 32], label: &[u8], caps_i: &[u8], caps_r: &[u8]) -> [u8; CONFIRM_LEN] {
    let mut mac = match <Hmac<Sha256> as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    };
    mac.update(label);
    mac.update(caps_i);
    mac.update(caps_r);
    let full = mac.finalize().into_bytes();
    let mut out = [0u8; CONFIRM_LEN];
    out.copy_from_slice(full.get(..CONFIRM_LEN).unwrap_or(&[0; CONFIRM_LEN]));
    out
}

fn label(role: Role) -> &'static [u8] {
    match role {
        Role::Initiator => b"myturn-confirm-I",
        Role::Responder => b"myturn-confirm-R",
    }
}

impl Session {
    /// A new session with a fresh key. The initiator queues its Commit at
    /// once.
    pub fn new(cfg: Config, mut rng: Box<dyn CryptoRngCore + Send>, now: Instant) -> Self {
        let key = EphemeralKey::generate(&mut *rng);
        Session::with_key(cfg, key, rng, now)
    }

    /// A new session with a key made earlier: a client generates its key
    /// when it goes `ready`, announces the fingerprint to the pairing
    /// server, and only learns its role once paired.
    pub fn with_key(
        cfg: Config,
        key: EphemeralKey,
        mut rng: Box<dyn CryptoRngCore + Send>,
        now: Instant,
    ) -> Self {
        let role = cfg.role;
        let mut caps = Vec::new();
        write_caps(&cfg.codecs, &mut caps);
        let (caps_i, caps_r) = match role {
            Role::Initiator => (caps, Vec::new()),
            Role::Responder => (Vec::new(), caps),
        };
        let mut s = Session {
            caps_i,
            caps_r,
            codec: Codec::Pcm16,
            clock: RtpClock {
                payload_type: cfg.payload_type,
                ssrc: cfg.ssrc,
                seq: (rng.as_rngcore().next_u32() & 0x7fff) as u16,
                ts: rng.as_rngcore().next_u32(),
            },
            cfg,
            rng,
            key,
            state: match role {
                Role::Initiator => State::Committed,
                Role::Responder => State::WaitCommit,
            },
            started: now,
            last_heard: now,
            peer_timeout: DEFAULT_PEER_TIMEOUT,
            keepalive_due: None,
            hs_last: None,
            hs_due: None,
            hs_rto: HS_RTO,
            transmits: VecDeque::new(),
            events: VecDeque::new(),
            stats: Stats::default(),
            peer_fp: None,
            next_msg: 0,
            unacked: VecDeque::new(),
            pending: VecDeque::new(),
            next_expected: 0,
            early: BTreeMap::new(),
            scratch: Vec::with_capacity(2048),
        };
        match role {
            Role::Initiator => {
                let mut body = Vec::with_capacity(64);
                body.extend_from_slice(&s.key.nonce());
                body.extend_from_slice(&commitment(&s.key.public()));
                body.extend_from_slice(&s.caps_i);
                s.send_handshake(MSG_COMMIT, &body, now);
            }
            Role::Responder => s.send_handshake(MSG_HELLO, &[], now),
        }
        s
    }

    /// Our public key's fingerprint, for the SDP attribute.
    pub fn local_fingerprint(&self) -> [u8; 32] {
        fingerprint(&self.key.public())
    }

    /// `true` once keys are agreed and confirmed.
    pub fn is_established(&self) -> bool {
        matches!(self.state, State::Established(_))
    }

    /// Sends with other RTP payload types from now on: a re-INVITE or
    /// UPDATE renumbered the codec (back-to-back agents do; the receiver
    /// never looks at the payload type, so this only keeps the relay
    /// happy). Nothing else changes: keys, streams and sequence numbers
    /// live in the sealed payload.
    pub fn set_payload_types(&mut self, payload_type: u8, opus: Option<u8>) {
        self.cfg.payload_type = payload_type;
        self.cfg.opus_payload_type = opus;
        self.clock.payload_type = self.wire_payload_type();
    }

    /// The payload type to stamp: Opus's once an Opus call is established
    /// and the partner's SDP numbered it, L16's otherwise.
    fn wire_payload_type(&self) -> u8 {
        match (
            self.is_established(),
            self.codec,
            self.cfg.opus_payload_type,
        ) {
            (true, Codec::Opus, Some(pt)) => pt,
            _ => self.cfg.payload_type,
        }
    }

    /// How long the peer may stay silent once the session is established
    /// before it fails with [`Failure::PeerSilent`] (default
    /// [`DEFAULT_PEER_TIMEOUT`]). The peer's keep-alives ([`KEEPALIVE`])
    /// count, so a muted peer is not silent.
    pub fn set_peer_timeout(&mut self, timeout: Duration) {
        self.peer_timeout = timeout;
    }

    /// Counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// The next datagram to send.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.transmits.pop_front()
    }

    /// The next event for the application.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// When [`Session::handle_timeout`] must be called next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        let handshaking = !matches!(self.state, State::Established(_) | State::Failed);
        [
            self.unacked.iter().map(|o| o.due).min(),
            self.hs_due,
            handshaking.then_some(self.started + HS_TIMEOUT),
            self.keepalive_due,
            matches!(self.state, State::Established(_))
                .then_some(self.last_heard + self.peer_timeout),
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Retransmits what is due; fails a handshake that took too long.
    pub fn handle_timeout(&mut self, now: Instant) {
        let handshaking = !matches!(self.state, State::Established(_) | State::Failed);
        if handshaking && now >= self.started + HS_TIMEOUT {
            self.fail(Failure::Timeout);
            return;
        }
        if let (Some(due), Some(msg)) = (self.hs_due, &self.hs_last) {
            if now >= due {
                self.transmits.push_back(msg.clone());
                self.stats.handshake_retransmits += 1;
                self.hs_rto = (self.hs_rto * 2).min(HS_RTO_MAX);
                self.hs_due = Some(now + self.hs_rto);
            }
        }
        if matches!(self.state, State::Established(_)) {
            if now >= self.last_heard + self.peer_timeout {
                self.fail(Failure::PeerSilent(self.peer_timeout));
                return;
            }
            if self.keepalive_due.is_some_and(|d| now >= d) {
                self.take_report();
                self.send_ack();
                self.stats.keepalives_sent += 1;
                self.keepalive_due = Some(now + KEEPALIVE);
            }
        }
        if let State::Established(sec) = &mut self.state {
            let mut resend = Vec::new();
            for o in self.unacked.iter_mut().filter(|o| o.due <= now) {
                o.rto = (o.rto * 2).min(TEXT_RTO_MAX);
                o.due = now + o.rto;
                resend.push((o.msg, o.text.clone()));
            }
            for (msg, text) in resend {
                let pkt = sec.seal_text(&mut self.clock, &mut *self.rng, msg, &text);
                self.transmits.push_back(pkt);
                self.stats.text_retransmits += 1;
            }
        }
    }

    fn send_handshake(&mut self, msg: u8, body: &[u8], now: Instant) {
        let mut out = Vec::with_capacity(12 + 2 + body.len());
        let mut h = self.clock.next_header();
        // The marker flags handshake packets in captures.
        h.marker = true;
        h.write(&mut out);
        out.push(VERSION << 4);
        out.push(msg);
        out.extend_from_slice(body);
        self.transmits.push_back(out.clone());
        self.hs_last = Some(out);
        self.hs_rto = HS_RTO;
        self.hs_due = Some(now + HS_RTO);
    }

    /// Sends the last handshake message again (answer to a retransmitted
    /// request from the peer).
    fn repeat_handshake(&mut self) {
        if let Some(m) = &self.hs_last {
            self.transmits.push_back(m.clone());
        }
    }

    fn fail(&mut self, f: Failure) {
        if matches!(self.state, State::Failed) {
            return;
        }
        self.state = State::Failed;
        self.keepalive_due = None;
        self.hs_due = None;
        self.hs_last = None;
        self.unacked.clear();
        self.pending.clear();
        self.events.push_back(Event::Failed(f));
    }

    fn drop_counted(&mut self, d: Discard) {
        *self.stats.dropped.entry(d.as_str()).or_insert(0) += 1;
    }

    fn establish(&mut self, now: Instant) {
        let State::Confirming(sec) = std::mem::replace(&mut self.state, State::Failed) else {
            return;
        };
        self.last_heard = now;
        self.keepalive_due = Some(now + KEEPALIVE);
        self.events.push_back(Event::Established {
            sas: sec.keys.sas.clone(),
            peer_fingerprint: self.peer_fp.unwrap_or([0; 32]),
            codec: self.codec,
        });
        self.state = State::Established(sec);
        self.clock.payload_type = self.wire_payload_type();
    }

    /// Handles one received datagram.
    pub fn handle_datagram(&mut self, now: Instant, datagram: &[u8]) {
        let Ok((_, payload)) = RtpHeader::parse(datagram) else {
            self.drop_counted(Discard::BadRtp);
            return;
        };
        let Some(&first) = payload.first() else {
            self.drop_counted(Discard::Truncated);
            return;
        };
        if first >> 4 != VERSION {
            self.drop_counted(Discard::BadVersion);
            return;
        }
        if first & 0x0f == 0 {
            self.on_handshake(now, payload);
            return;
        }
        let inner = match Inner::parse(payload) {
            Ok(i) => i,
            Err(d) => return self.drop_counted(d),
        };
        // A responder learns that its Confirm1 arrived from the first
        // authentic media packet, as well as from Confirm2.
        let confirming =
            matches!(self.state, State::Confirming(_)) && self.cfg.role == Role::Responder;
        let sec = match &mut self.state {
            State::Established(sec) => sec,
            State::Confirming(sec) if confirming => sec,
            _ => return self.drop_counted(Discard::UnknownStream),
        };
        let result = match inner.kind {
            Kind::Audio => sec.rx_audio.open(datagram, &mut self.scratch),
            Kind::Text => sec.rx_text.open(datagram, &mut self.scratch),
            Kind::TextAck => sec.rx_ack.open(datagram, &mut self.scratch),
        };
        let opened = match result {
            Ok(o) => o,
            Err(d) => return self.drop_counted(d),
        };
        if confirming {
            self.hs_due = None;
            self.establish(now);
        }
        self.last_heard = now;
        let plaintext = std::mem::take(&mut self.scratch);
        match inner.kind {
            Kind::Audio => self.on_audio(opened.seq, datagram.len(), &plaintext),
            Kind::Text => self.on_text(&plaintext),
            Kind::TextAck => self.on_ack(now, &plaintext),
        }
        self.scratch = plaintext;
    }

    fn on_handshake(&mut self, now: Instant, payload: &[u8]) {
        let msg = payload.get(1).copied().unwrap_or(0);
        let body = payload.get(2..).unwrap_or(&[]);
        match (&self.state, msg) {
            (State::WaitCommit, MSG_COMMIT) if has_caps(body) => {
                let mut peer_nonce = [0u8; NONCE_LEN];
                let mut commit = [0u8; 32];
                peer_nonce.copy_from_slice(body.get(..NONCE_LEN).unwrap_or(&[0; NONCE_LEN]));
                commit.copy_from_slice(body.get(NONCE_LEN..KEYED_LEN).unwrap_or(&[0; 32]));
                let peer_caps = body.get(KEYED_LEN..).unwrap_or_default().to_vec();
                self.state = State::SentDh1 {
                    commit,
                    peer_nonce,
                    peer_caps,
                };
                let mut out = Vec::with_capacity(64);
                out.extend_from_slice(&self.key.nonce());
                out.extend_from_slice(&self.key.public());
                out.extend_from_slice(&self.caps_r);
                self.send_handshake(MSG_DH1, &out, now);
            }
            (State::SentDh1 { .. }, MSG_COMMIT) => self.repeat_handshake(),
            // The responder is reachable now. If our Commit already had to
            // be sent again (lost at the responder's NAT, most likely),
            // send it at once rather than at the next, backed-off timer.
            (State::Committed, MSG_HELLO) if self.hs_rto > HS_RTO => self.repeat_handshake(),
            // Otherwise a Hello is only the responder opening its path.
            (_, MSG_HELLO) => {}
            (State::Committed, MSG_DH1) if has_caps(body) => {
                let mut peer_nonce = [0u8; NONCE_LEN];
                let mut peer_pub = [0u8; 32];
                peer_nonce.copy_from_slice(body.get(..NONCE_LEN).unwrap_or(&[0; NONCE_LEN]));
                peer_pub.copy_from_slice(body.get(NONCE_LEN..KEYED_LEN).unwrap_or(&[0; 32]));
                self.caps_r = body.get(KEYED_LEN..).unwrap_or_default().to_vec();
                self.codec = self.agreed_codec();
                if let Err(f) = self.check_fingerprint(&peer_pub) {
                    return self.fail(f);
                }
                match derive(
                    Role::Initiator,
                    &self.key,
                    &peer_pub,
                    &peer_nonce,
                    &self.cfg.pair_id,
                ) {
                    Ok(keys) => {
                        let sec = Secure::new(keys, self.codec, self.rate());
                        self.state = State::Confirming(Box::new(sec));
                        let public = self.key.public();
                        self.send_handshake(MSG_DH2, &public, now);
                    }
                    Err(e) => self.fail(e.into()),
                }
            }
            (
                State::SentDh1 {
                    commit,
                    peer_nonce,
                    peer_caps,
                },
                MSG_DH2,
            ) if body.len() == 32 => {
                let (commit, peer_nonce) = (*commit, *peer_nonce);
                self.caps_i = peer_caps.clone();
                self.codec = self.agreed_codec();
                let mut peer_pub = [0u8; 32];
                peer_pub.copy_from_slice(body);
                if !bool::from(commitment(&peer_pub).ct_eq(&commit)) {
                    return self.fail(Failure::CommitMismatch);
                }
                if let Err(f) = self.check_fingerprint(&peer_pub) {
                    return self.fail(f);
                }
                match derive(
                    Role::Responder,
                    &self.key,
                    &peer_pub,
                    &peer_nonce,
                    &self.cfg.pair_id,
                ) {
                    Ok(keys) => {
                        let mac = confirm_mac(
                            &keys.confirm_mine.0,
                            label(Role::Responder),
                            &self.caps_i,
                            &self.caps_r,
                        );
                        let sec = Secure::new(keys, self.codec, self.rate());
                        self.state = State::Confirming(Box::new(sec));
                        self.send_handshake(MSG_CONFIRM1, &mac, now);
                    }
                    Err(e) => self.fail(e.into()),
                }
            }
            (State::Confirming(_), MSG_DH2) if self.cfg.role == Role::Responder => {
                self.repeat_handshake()
            }
            (State::Confirming(sec), MSG_CONFIRM1) if self.cfg.role == Role::Initiator => {
                let expected = confirm_mac(
                    &sec.keys.confirm_peer.0,
                    label(Role::Responder),
                    &self.caps_i,
                    &self.caps_r,
                );
                if !bool::from(expected.as_slice().ct_eq(body)) {
                    return self.fail(Failure::ConfirmFailed);
                }
                let mine = confirm_mac(
                    &sec.keys.confirm_mine.0,
                    label(Role::Initiator),
                    &self.caps_i,
                    &self.caps_r,
                );
                self.send_handshake(MSG_CONFIRM2, &mine, now);
                // Confirm2 is only repeated when Confirm1 is.
                self.hs_due = None;
                self.establish(now);
            }
            // Our Confirm2 was lost: the responder repeats Confirm1.
            (State::Established(_), MSG_CONFIRM1) if self.cfg.role == Role::Initiator => {
                self.repeat_handshake();
            }
            (State::Confirming(sec), MSG_CONFIRM2) if self.cfg.role == Role::Responder => {
                let expected = confirm_mac(
                    &sec.keys.confirm_peer.0,
                    label(Role::Initiator),
                    &self.caps_i,
                    &self.caps_r,
                );
                if !bool::from(expected.as_slice().ct_eq(body)) {
                    return self.fail(Failure::ConfirmFailed);
                }
                self.hs_due = None;
                self.establish(now);
            }
            // Duplicates and strays after the fact are harmless.
            _ => self.drop_counted(Discard::WrongKind),
        }
    }

    /// The codec both capability lists allow (PCM16 if either is
    /// malformed).
    fn agreed_codec(&self) -> Codec {
        match (read_caps(&self.caps_i), read_caps(&self.caps_r)) {
            (Some(i), Some(r)) => choose(&i, &r),
            _ => Codec::Pcm16,
        }
    }

    /// The call's sample rate.
    fn rate(&self) -> u32 {
        self.cfg.samples_per_frame * 50
    }

    /// The codec agreed in the handshake (PCM16 until then).
    pub fn codec(&self) -> Codec {
        self.codec
    }

    fn check_fingerprint(&mut self, peer_pub: &[u8; 32]) -> Result<(), Failure> {
        let fp = fingerprint(peer_pub);
        self.peer_fp = Some(fp);
        match self.cfg.peer_fingerprint {
            Some(expected) if !bool::from(expected.ct_eq(&fp)) => Err(Failure::FingerprintMismatch),
            _ => Ok(()),
        }
    }
}

/// Length of the keyed part of a Commit or DHPart1 (nonce and hash or
/// public key); the capability list follows.
const KEYED_LEN: usize = NONCE_LEN + 32;

/// A Commit or DHPart1 body: the keyed part, then a well-formed
/// capability list (or none: a PCM16-only peer).
fn has_caps(body: &[u8]) -> bool {
    body.len() >= KEYED_LEN && read_caps(body.get(KEYED_LEN..).unwrap_or_default()).is_some()
}

/// The RTP fields this side stamps on what it sends.
#[derive(Debug, Clone, Copy)]
struct RtpClock {
    payload_type: u8,
    ssrc: u32,
    seq: u16,
    ts: u32,
}

impl RtpClock {
    /// The next header; advances the RTP sequence number.
    fn next_header(&mut self) -> RtpHeader {
        let h = RtpHeader::new(self.payload_type, self.seq, self.ts, self.ssrc);
        self.seq = self.seq.wrapping_add(1);
        h
    }
}

/// Seals one packet with a fresh IV and the next RTP header.
fn seal_with(
    sealer: &mut Sealer,
    clock: &mut RtpClock,
    rng: &mut dyn CryptoRngCore,
    plaintext: &[u8],
) -> Vec<u8> {
    let mut iv = [0u8; 16];
    rng.as_rngcore().fill_bytes(&mut iv);
    let mut out = Vec::with_capacity(plaintext.len() + 80);
    sealer.seal(clock.next_header(), plaintext, iv, &mut out);
    out
}

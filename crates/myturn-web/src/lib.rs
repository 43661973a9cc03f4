//! # myturn-web
//!
//! The browser client's end-to-end core: [`myturn_media`]'s sans-IO
//! session (x25519 + HKDF commit-then-reveal key agreement, the SAS,
//! AES-256-CBC + HMAC-SHA256 sealed audio and text, the replay window) and
//! its playout (the jitter buffer and concealment), with `myturn-sip`'s
//! agent, compiled to `wasm32-unknown-unknown` with `wasm-bindgen`. It is
//! the same Rust as the terminal client's, not a JavaScript port, and it
//! speaks the wire protocol of `docs/protocol.md`, so a page and a
//! terminal client need no translation. Keys are made (from the browser's
//! `crypto.getRandomValues`) and kept inside the module: the page, the
//! server and any relay only ever see sealed datagrams. The page at `/`
//! (`crates/myturn-server/assets/web/page.js`) drives it; `build-page.sh`
//! builds the module the server embeds.
//!
//! Driving it (JavaScript, after `wasm-bindgen`):
//!
//! ```text
//! const key = new MediaKey();            // at `ready`: key.fingerprint() to the server
//! const call = Call.with_key(key, "caller", pairIdHex, peerFingerprint, 96, 160, performance.now());
//! call.handle_datagram(performance.now(), bytes);      // datagrams from the network
//! // then, and after every call into it, drain it:
//! let d; while ((d = call.poll_transmit())) send(d);
//! let e; while ((e = call.poll_event())) show(JSON.parse(e));
//! // wake it at call.poll_timeout(): call.handle_timeout(performance.now());
//! // every 20 ms of audio: call.send_samples(int16Frame); play(call.pop_playout(now));
//! ```
//!
//! Times are milliseconds on one monotonic clock the page chooses
//! (`performance.now()`), given to every call: the module reads no clock
//! except once, when a [`Call`] is made, to anchor them. Events are JSON
//! strings (`{"type":"established","sas":…}`, `"audio"`, `"text"`,
//! `"failed"`). The same API is a plain Rust API on native targets, which
//! is how its tests run (and under `wasm-bindgen-test` in a browser).
//!
//! [`Sip`] is the SIP agent of `myturn-sip`, the terminal client's, over
//! SIP over WebSocket (RFC 7118: `new WebSocket(url, "sip")`, one SIP
//! message per WebSocket message): the page hands it what the socket
//! receives ([`Sip::handle_message`]) and sends what
//! [`Sip::poll_transmit`] gives, the same drain-and-wake loop as a
//! [`Call`]; [`Sip::invite`], [`Sip::answer`] and [`Sip::hangup`] make
//! and end the call, with the L16 SDP and the media key's fingerprint.

use std::collections::HashMap;
use std::time::Duration;

use myturn_media::codec::Codec;
use myturn_media::keys::{fingerprint_b64, parse_fingerprint_b64, EphemeralKey, PairId, Role};
use myturn_media::playout::Playout;
use myturn_media::session::{Config, Event, Session};
use myturn_media::Instant;
use myturn_sip::sdp::Sdp;
use myturn_sip::ua::{
    CallHandle, Config as SipConfig, EndedBy, Event as SipEvent, Transport, UserAgent,
};
use rand_core::{OsRng, RngCore};
use serde_json::{json, Value};
use wasm_bindgen::prelude::wasm_bindgen;

/// The page's clock (milliseconds, `performance.now()`) on the crate's
/// instants: anchored once, when a [`Call`] or [`Sip`] is made.
#[derive(Debug, Clone, Copy)]
struct PageClock {
    /// The page's time at which `anchor` was read.
    base_ms: f64,
    anchor: Instant,
}

impl PageClock {
    fn new(now_ms: f64) -> Result<PageClock, String> {
        if !now_ms.is_finite() || now_ms < 0.0 {
            return Err("the time must be a finite, non-negative number of milliseconds".into());
        }
        Ok(PageClock {
            base_ms: now_ms,
            anchor: Instant::now(),
        })
    }

    /// The page's time as an instant (times before the first are the
    /// first: the clock is monotonic).
    fn at(&self, now_ms: f64) -> Instant {
        let ms = now_ms - self.base_ms;
        if ms.is_finite() && ms > 0.0 {
            self.anchor + Duration::from_secs_f64(ms / 1000.0)
        } else {
            self.anchor
        }
    }

    /// An instant as the page's time.
    fn page_ms(&self, t: Instant) -> f64 {
        self.base_ms + t.saturating_duration_since(self.anchor).as_secs_f64() * 1000.0
    }
}

/// This call's media key, made when the page says `ready` (its
/// fingerprint goes to the pairing server and into the SDP), before the
/// role and the pair are known; [`Call::with_key`] takes it.
#[wasm_bindgen]
#[derive(Debug)]
pub struct MediaKey {
    key: EphemeralKey,
}

#[wasm_bindgen]
impl MediaKey {
    /// A fresh x25519 key, from the browser's `crypto.getRandomValues`.
    #[wasm_bindgen(constructor)]
    pub fn new() -> MediaKey {
        MediaKey {
            key: EphemeralKey::generate(&mut OsRng),
        }
    }

    /// Its fingerprint, base64url: `ready`'s `media_key` and SDP's
    /// `a=myturn-key`.
    pub fn fingerprint(&self) -> String {
        fingerprint_b64(&self.key.public())
    }
}

impl Default for MediaKey {
    fn default() -> Self {
        MediaKey::new()
    }
}

/// One call's media session, for the page, with its playout (the jitter
/// buffer and concealment the terminal client plays through). See the
/// crate docs.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Call {
    session: Session,
    clock: PageClock,
    playout: Playout,
    samples_per_frame: usize,
    /// When the last datagram came in (the arrival time of the frames it
    /// carried, for the jitter buffer).
    last_rx: Instant,
}

/// The arguments of a call that both constructors check.
fn call_config(
    role: &str,
    pair_id: &str,
    payload_type: u8,
    ssrc: u32,
    samples_per_frame: u32,
    peer_fingerprint: Option<[u8; 32]>,
) -> Result<Config, String> {
    let role = match role {
        "caller" => Role::Initiator,
        "callee" => Role::Responder,
        other => {
            return Err(format!(
                "role must be \"caller\" or \"callee\", not {other:?}"
            ))
        }
    };
    let pair_id = PairId::from_hex(pair_id)
        .ok_or_else(|| "the pair id must be 32 hexadecimal digits".to_owned())?;
    if samples_per_frame != 160 && samples_per_frame != 320 {
        return Err(format!(
            "samples per frame must be 160 (8 kHz) or 320 (16 kHz), not {samples_per_frame}"
        ));
    }
    Ok(Config {
        role,
        pair_id,
        peer_fingerprint,
        payload_type,
        opus_payload_type: None,
        ssrc,
        samples_per_frame,
        codecs: vec![Codec::Pcm16],
    })
}

#[wasm_bindgen]
impl Call {
    /// A session for one pair with a fresh key: `role` is `"caller"`
    /// (the initiator) or `"callee"`, `pair_id` the pairing server's 32
    /// hex digits, then the L16 payload type, this side's SSRC and the
    /// samples per 20 ms frame (160 at 8 kHz, 320 at 16 kHz); `now_ms` the
    /// page's time now.
    #[wasm_bindgen(constructor)]
    pub fn new(
        role: &str,
        pair_id: &str,
        payload_type: u8,
        ssrc: u32,
        samples_per_frame: u32,
        now_ms: f64,
    ) -> Result<Call, String> {
        let cfg = call_config(role, pair_id, payload_type, ssrc, samples_per_frame, None)?;
        let key = EphemeralKey::generate(&mut OsRng);
        Call::start(cfg, key, now_ms)
    }

    /// [`Call::new`] with the key announced at `ready`, and the partner's
    /// fingerprint as the pairing server vouched for it (base64url, its
    /// `media_key`; empty when it gave none): a key agreement with any
    /// other key fails.
    pub fn with_key(
        key: MediaKey,
        role: &str,
        pair_id: &str,
        peer_fingerprint: &str,
        payload_type: u8,
        samples_per_frame: u32,
        now_ms: f64,
    ) -> Result<Call, String> {
        let peer = match peer_fingerprint {
            "" => None,
            fp => Some(
                parse_fingerprint_b64(fp)
                    .ok_or_else(|| "the partner's key fingerprint is not valid".to_owned())?,
            ),
        };
        let cfg = call_config(
            role,
            pair_id,
            payload_type,
            OsRng.next_u32(),
            samples_per_frame,
            peer,
        )?;
        Call::start(cfg, key.key, now_ms)
    }

    fn start(cfg: Config, key: EphemeralKey, now_ms: f64) -> Result<Call, String> {
        let clock = PageClock::new(now_ms)?;
        let samples_per_frame = cfg.samples_per_frame as usize;
        let playout = Playout::new(cfg.samples_per_frame * 50);
        Ok(Call {
            session: Session::with_key(cfg, key, Box::new(OsRng), clock.anchor),
            clock,
            playout,
            samples_per_frame,
            last_rx: clock.anchor,
        })
    }

    /// How long the partner may be silent (no packet at all: the sender
    /// keeps a comfort packet going in pauses) before the call fails with
    /// `peer_silent`, in seconds; the terminal client's default is 5.
    pub fn set_peer_timeout(&mut self, secs: f64) {
        if secs.is_finite() && secs > 0.0 {
            self.session
                .set_peer_timeout(Duration::from_secs_f64(secs.min(3600.0)));
        }
    }

    /// A datagram from the network (malformed or forged ones are dropped
    /// and counted in [`Call::stats`]).
    pub fn handle_datagram(&mut self, now_ms: f64, datagram: &[u8]) {
        let now = self.clock.at(now_ms);
        self.last_rx = now;
        self.session.handle_datagram(now, datagram);
    }

    /// The time has come (see [`Call::poll_timeout`]).
    pub fn handle_timeout(&mut self, now_ms: f64) {
        let now = self.clock.at(now_ms);
        self.session.handle_timeout(now);
    }

    /// The next datagram to send, if any.
    pub fn poll_transmit(&mut self) -> Option<Vec<u8>> {
        self.session.poll_transmit()
    }

    /// When to call [`Call::handle_timeout`] next, in page milliseconds.
    pub fn poll_timeout(&self) -> Option<f64> {
        self.session.poll_timeout().map(|t| self.clock.page_ms(t))
    }

    /// The next event as JSON, if any. Audio frames also go into the
    /// playout ([`Call::pop_playout`]).
    pub fn poll_event(&mut self) -> Option<String> {
        let e = self.session.poll_event()?;
        if let Event::Audio {
            seq,
            frame,
            codec,
            data,
            redundant,
        } = &e
        {
            // Frames come out of the datagram just handled: it arrived then.
            self.playout
                .push(self.last_rx, *seq, *frame, *codec, data.clone(), *redundant);
        }
        Some(event_json(&e))
    }

    /// The next 20 ms to play (call every 20 ms): the received frame, a
    /// concealed one, or silence; always a whole frame.
    pub fn pop_playout(&mut self, now_ms: f64) -> Vec<i16> {
        let now = self.clock.at(now_ms);
        let mut pcm = self.playout.pop(now);
        pcm.resize(self.samples_per_frame, 0);
        pcm
    }

    /// The playout's counters as JSON: codec, frames played, concealed
    /// and recovered, loss and the playout delay.
    pub fn playout_stats(&self) -> String {
        let s = self.playout.stats();
        json!({
            "codec": s.codec.map_or("pcm16", Codec::name),
            "played": s.played,
            "concealed": s.concealed,
            "recovered": s.recovered,
            "faded": s.faded,
            "lost": s.jitter.lost,
            "late": s.jitter.late,
            "delay_ms": s.delay_ms,
        })
        .to_string()
    }

    /// Sends one 20 ms frame of PCM16 (little-endian bytes) once
    /// established.
    pub fn send_audio(&mut self, pcm: &[u8]) -> Result<(), String> {
        self.session.send_audio(pcm).map_err(|e| e.to_string())
    }

    /// [`Call::send_audio`] from samples (an `Int16Array` of one frame).
    pub fn send_samples(&mut self, samples: &[i16]) -> Result<(), String> {
        if samples.len() != self.samples_per_frame {
            return Err(format!(
                "a frame is {} samples, not {}",
                self.samples_per_frame,
                samples.len()
            ));
        }
        let pcm: Vec<u8> = samples.iter().flat_map(|x| x.to_le_bytes()).collect();
        self.send_audio(&pcm)
    }

    /// Sends a chat message (delivered once, in order) once established.
    pub fn send_text(&mut self, now_ms: f64, text: &str) -> Result<(), String> {
        let now = self.clock.at(now_ms);
        self.session.send_text(now, text).map_err(|e| e.to_string())
    }

    /// Whether the keys are agreed and confirmed.
    pub fn is_established(&self) -> bool {
        self.session.is_established()
    }

    /// This side's key fingerprint, in hex (for SDP's `a=myturn-key`).
    pub fn local_fingerprint(&self) -> String {
        hex(&self.session.local_fingerprint())
    }

    /// The session's counters as JSON (frames, bytes, datagrams dropped
    /// and why).
    pub fn stats(&self) -> String {
        let s = self.session.stats();
        json!({
            "audio_sent": s.audio_sent,
            "audio_received": s.audio_received,
            "audio_bytes_sent": s.audio_bytes_sent,
            "audio_bytes_received": s.audio_bytes_received,
            "handshake_retransmits": s.handshake_retransmits,
            "text_retransmits": s.text_retransmits,
            "dropped": s.dropped,
        })
        .to_string()
    }
}

/// The SIP agent for the page, over SIP over WebSocket. See the crate
/// docs.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Sip {
    ua: UserAgent,
    proxy: std::net::SocketAddr,
    clock: PageClock,
    /// The offers of incoming calls, kept for [`Sip::answer`].
    offers: HashMap<u64, Sdp>,
}

#[wasm_bindgen]
impl Sip {
    /// An agent for `username`/`password` (the SIP credentials the
    /// pairing server's `POST /v1/users` gives) at `domain` (its `ip:port`
    /// domain, the built-in PBX, parameters ignored); `now_ms` the page's
    /// time now.
    #[wasm_bindgen(constructor)]
    pub fn new(username: &str, password: &str, domain: &str, now_ms: f64) -> Result<Sip, String> {
        // `ip:port`, perhaps with parameters (`;transport=tls`: the
        // terminal's transport, which means nothing over a WebSocket).
        let domain = domain.split(';').next().unwrap_or(domain);
        let proxy: std::net::SocketAddr = domain
            .parse()
            .map_err(|_| format!("the SIP domain must be ip:port, not {domain:?}"))?;
        if username.is_empty() || password.is_empty() {
            return Err("a SIP username and password are needed".into());
        }
        let clock = PageClock::new(now_ms)?;
        // The Contact's host means nothing over a WebSocket (RFC 7118 §5:
        // the proxy reaches the client down its connection).
        let local = std::net::SocketAddr::from(([127, 0, 0, 1], 5060));
        let mut cfg = SipConfig::new(local, proxy, username, password);
        cfg.transport = Transport::Ws;
        Ok(Sip {
            ua: UserAgent::new(cfg, Box::new(rand_core::OsRng)),
            proxy,
            clock,
            offers: HashMap::new(),
        })
    }

    /// Registers (and keeps the registration fresh).
    pub fn register(&mut self, now_ms: f64) {
        let now = self.clock.at(now_ms);
        self.ua.register(now);
    }

    /// A message the WebSocket received.
    pub fn handle_message(&mut self, now_ms: f64, message: &str) {
        let now = self.clock.at(now_ms);
        self.ua.handle_datagram(now, self.proxy, message.as_bytes());
    }

    /// The time has come (see [`Sip::poll_timeout`]).
    pub fn handle_timeout(&mut self, now_ms: f64) {
        let now = self.clock.at(now_ms);
        self.ua.handle_timeout(now);
    }

    /// The next message to send down the WebSocket, if any.
    pub fn poll_transmit(&mut self) -> Option<String> {
        self.ua
            .poll_transmit()
            .map(|t| String::from_utf8_lossy(&t.payload).into_owned())
    }

    /// When to call [`Sip::handle_timeout`] next, in page milliseconds.
    pub fn poll_timeout(&self) -> Option<f64> {
        self.ua.poll_timeout().map(|t| self.clock.page_ms(t))
    }

    /// Calls `target` (the partner's extension) with an offer of L16 at
    /// `rate` on `media` (`ip:port`, the media bridge's address) carrying
    /// the media key fingerprint `fingerprint`; the call's handle.
    pub fn invite(
        &mut self,
        now_ms: f64,
        target: &str,
        media: &str,
        rate: u32,
        fingerprint: &str,
    ) -> Result<u32, String> {
        let media = parse_addr(media)?;
        if rate != 8000 && rate != 16_000 {
            return Err(format!("the rate must be 8000 or 16000, not {rate}"));
        }
        let sdp = Sdp::new(media, rate, key_of(fingerprint), OsRng.next_u64() >> 1).render();
        let now = self.clock.at(now_ms);
        let call = self
            .ua
            .invite(now, target, &sdp)
            .map_err(|e| e.to_string())?;
        handle_number(call)
    }

    /// Answers the incoming call `call` (from an `incoming_call` event):
    /// the offer's payload type and rate, on `media`, with this side's key
    /// fingerprint.
    pub fn answer(
        &mut self,
        now_ms: f64,
        call: u32,
        media: &str,
        fingerprint: &str,
    ) -> Result<(), String> {
        let media = parse_addr(media)?;
        let offer = self
            .offers
            .get(&u64::from(call))
            .ok_or_else(|| "no offer for that call".to_owned())?;
        let sdp = Sdp::answer(offer, media, key_of(fingerprint), OsRng.next_u64() >> 1).render();
        let now = self.clock.at(now_ms);
        self.ua
            .answer(now, CallHandle(u64::from(call)), &sdp)
            .map_err(|e| e.to_string())
    }

    /// Ends the call `call` whatever its state (CANCEL, a refusal or BYE).
    pub fn hangup(&mut self, now_ms: f64, call: u32) -> Result<(), String> {
        let now = self.clock.at(now_ms);
        self.offers.remove(&u64::from(call));
        self.ua
            .hangup(now, CallHandle(u64::from(call)))
            .map_err(|e| e.to_string())
    }

    /// Removes the registration (before the page goes).
    pub fn unregister(&mut self, now_ms: f64) {
        let now = self.clock.at(now_ms);
        self.ua.unregister(now);
    }

    /// The next agent event as JSON, if any: `registered`,
    /// `registration_failed` (`code`, `reason`), `unregistered`,
    /// `incoming_call` (`call`, `from`, `offer`), `ringing`, `answered`
    /// (`call`, `answer`), `confirmed`, `call_failed` (`call`, `code`,
    /// `reason`), `remote_media_changed` (`call`, `sdp`), `call_ended`
    /// (`call`, `by`: `local`, `remote` or `session_expired`), or `other`.
    /// A session description is `{media, payload_type, rate, key}`, or
    /// null when the message had none.
    pub fn poll_event(&mut self) -> Option<String> {
        let e = self.ua.poll_event()?;
        let v = match e {
            SipEvent::Registered { .. } => json!({"type": "registered"}),
            SipEvent::RegistrationFailed { code, reason } => {
                json!({"type": "registration_failed", "code": code, "reason": reason})
            }
            SipEvent::Unregistered => json!({"type": "unregistered"}),
            SipEvent::IncomingCall {
                call,
                from_user,
                offer,
                ..
            } => {
                let described = sdp_json(offer.as_ref());
                if let Some(o) = offer {
                    self.offers.insert(call.0, o);
                }
                json!({"type": "incoming_call", "call": call.0, "from": from_user, "offer": described})
            }
            SipEvent::Ringing { call } => json!({"type": "ringing", "call": call.0}),
            SipEvent::Answered { call, answer, .. } => {
                json!({"type": "answered", "call": call.0, "answer": sdp_json(answer.as_ref())})
            }
            SipEvent::Confirmed { call, .. } => json!({"type": "confirmed", "call": call.0}),
            SipEvent::CallFailed { call, code, reason } => {
                json!({"type": "call_failed", "call": call.0, "code": code, "reason": reason})
            }
            SipEvent::RemoteMediaChanged { call, sdp } => {
                json!({"type": "remote_media_changed", "call": call.0, "sdp": sdp_json(Some(&sdp))})
            }
            SipEvent::CallEnded { call, by } => {
                self.offers.remove(&call.0);
                let by = match by {
                    EndedBy::Local => "local",
                    EndedBy::Remote => "remote",
                    EndedBy::SessionExpired => "session_expired",
                };
                json!({"type": "call_ended", "call": call.0, "by": by})
            }
            other => json!({"type": "other", "what": format!("{other:?}")}),
        };
        Some(v.to_string())
    }
}

fn parse_addr(s: &str) -> Result<std::net::SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("a media address must be ip:port, not {s:?}"))
}

fn key_of(fingerprint: &str) -> Option<String> {
    (!fingerprint.is_empty()).then(|| fingerprint.to_owned())
}

/// A call handle as JavaScript holds it (a number well inside 2^53).
fn handle_number(call: CallHandle) -> Result<u32, String> {
    u32::try_from(call.0).map_err(|_| "too many calls on one agent".to_owned())
}

/// A session description as the page reads it.
fn sdp_json(sdp: Option<&Sdp>) -> Value {
    match sdp {
        Some(s) => json!({
            "media": s.media.to_string(),
            "payload_type": s.payload_type,
            "rate": s.rate,
            "key": s.key,
        }),
        None => Value::Null,
    }
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

/// An event as the page reads it.
fn event_json(e: &Event) -> String {
    match e {
        Event::Established {
            sas,
            peer_fingerprint,
            codec,
        } => json!({
            "type": "established",
            "sas": sas,
            "peer_fingerprint": hex(peer_fingerprint),
            "codec": codec.name(),
        }),
        Event::Audio {
            seq,
            frame,
            codec,
            data,
            redundant,
        } => json!({
            "type": "audio",
            "seq": seq,
            "frame": frame,
            "codec": codec.name(),
            "data": hex(data),
            "redundant": redundant,
        }),
        Event::Text(t) => json!({"type": "text", "text": t}),
        Event::Failed(f) => json!({"type": "failed", "reason": f.to_string()}),
    }
    .to_string()
}

/// The same tests run natively (`cargo test`) and in headless chromium
/// (`wasm-bindgen-test`, see `.ci/run`), on the module a page loads.
#[cfg(test)]
mod tests {
    use super::*;
    #[cfg(target_arch = "wasm32")]
    use wasm_bindgen_test::wasm_bindgen_test as test;

    #[cfg(target_arch = "wasm32")]
    wasm_bindgen_test::wasm_bindgen_test_configure!(run_in_browser);

    const PAIR: &str = "0123456789abcdef0123456789abcdef";

    fn pump(a: &mut Call, b: &mut Call, now: f64) {
        for _ in 0..20 {
            let mut moved = false;
            while let Some(d) = a.poll_transmit() {
                b.handle_datagram(now, &d);
                moved = true;
            }
            while let Some(d) = b.poll_transmit() {
                a.handle_datagram(now, &d);
                moved = true;
            }
            if !moved {
                return;
            }
        }
    }

    fn events(c: &mut Call) -> Vec<serde_json::Value> {
        std::iter::from_fn(|| c.poll_event())
            .map(|e| serde_json::from_str(&e).expect("events are JSON"))
            .collect()
    }

    #[test]
    fn two_calls_agree_and_exchange_sealed_text_and_audio() {
        let mut a = Call::new("caller", PAIR, 96, 1, 160, 5.0).unwrap();
        let mut b = Call::new("callee", PAIR, 96, 2, 160, 1000.0).unwrap();
        pump(&mut a, &mut b, 10.0);
        b.handle_timeout(1010.0);
        pump(&mut a, &mut b, 20.0);
        assert!(a.is_established() && b.is_established());
        let (ea, eb) = (events(&mut a), events(&mut b));
        assert_eq!(ea[0]["type"], "established");
        assert_eq!(ea[0]["sas"], eb[0]["sas"]);
        assert_eq!(ea[0]["peer_fingerprint"], b.local_fingerprint());
        a.send_text(30.0, "hi <b>bob</b>").unwrap();
        a.send_audio(&[7u8; 320]).unwrap();
        pump(&mut a, &mut b, 30.0);
        let got = events(&mut b);
        assert!(got
            .iter()
            .any(|e| e["type"] == "text" && e["text"] == "hi <b>bob</b>"));
        assert!(got
            .iter()
            .any(|e| e["type"] == "audio" && e["data"] == "07".repeat(320)));
    }

    #[test]
    fn bad_arguments_are_clear_errors() {
        assert!(Call::new("boss", PAIR, 96, 1, 160, 0.0)
            .err()
            .unwrap()
            .contains("caller"));
        assert!(Call::new("caller", "xyz", 96, 1, 160, 0.0).is_err());
        assert!(Call::new("caller", PAIR, 96, 1, 100, 0.0).is_err());
        assert!(Call::new("caller", PAIR, 96, 1, 160, f64::NAN).is_err());
        let mut c = Call::new("caller", PAIR, 96, 1, 160, 0.0).unwrap();
        // Not established yet: refused, not a panic.
        assert!(c.send_audio(&[0; 320]).is_err());
        // Garbage is dropped and counted.
        c.handle_datagram(1.0, &[0xff; 7]);
        c.handle_datagram(1.0, &[]);
        let stats: serde_json::Value = serde_json::from_str(&c.stats()).unwrap();
        let dropped: u64 = stats["dropped"]
            .as_object()
            .unwrap()
            .values()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(dropped, 2);
    }

    #[test]
    fn page_times_map_onto_one_clock() {
        let c = Call::new("caller", PAIR, 96, 1, 160, 500.0).unwrap();
        // The first handshake timer is in the future of the page's clock.
        let t = c.poll_timeout().expect("a handshake timer");
        assert!(t > 500.0, "{t}");
        assert_eq!(
            c.clock.at(400.0),
            c.clock.anchor,
            "earlier times are the anchor"
        );
    }

    #[test]
    fn a_call_made_with_the_announced_key_checks_the_vouched_one() {
        let (ka, kb) = (MediaKey::new(), MediaKey::new());
        let (fa, fb) = (ka.fingerprint(), kb.fingerprint());
        assert_ne!(fa, fb);
        let mut a = Call::with_key(ka, "caller", PAIR, &fb, 96, 160, 0.0).unwrap();
        let mut b = Call::with_key(kb, "callee", PAIR, &fa, 96, 160, 0.0).unwrap();
        pump(&mut a, &mut b, 1.0);
        b.handle_timeout(2.0);
        pump(&mut a, &mut b, 3.0);
        assert!(a.is_established() && b.is_established());
        // A partner whose key is not the vouched one is refused.
        let mut c = Call::with_key(MediaKey::new(), "caller", PAIR, &fb, 96, 160, 0.0).unwrap();
        let mut d = Call::with_key(MediaKey::new(), "callee", PAIR, &fa, 96, 160, 0.0).unwrap();
        pump(&mut c, &mut d, 1.0);
        d.handle_timeout(2.0);
        pump(&mut c, &mut d, 3.0);
        assert!(!c.is_established() && !d.is_established());
        assert!(
            Call::with_key(MediaKey::new(), "caller", PAIR, "not-a-key", 96, 160, 0.0).is_err()
        );
    }

    #[test]
    fn the_playout_gives_whole_frames_heard_or_not() {
        let mut a = Call::new("caller", PAIR, 96, 1, 160, 0.0).unwrap();
        let mut b = Call::new("callee", PAIR, 96, 2, 160, 0.0).unwrap();
        pump(&mut a, &mut b, 1.0);
        b.handle_timeout(2.0);
        pump(&mut a, &mut b, 3.0);
        // Nothing received yet: silence, a whole frame.
        assert_eq!(b.pop_playout(4.0), vec![0; 160]);
        let tone: Vec<i16> = (0..160).map(|i| ((i % 40) * 500 - 10_000) as i16).collect();
        for k in 0..10 {
            a.send_samples(&tone).unwrap();
            pump(&mut a, &mut b, 10.0 + f64::from(k) * 20.0);
        }
        let _ = events(&mut b);
        let played: Vec<Vec<i16>> = (0..20)
            .map(|k| b.pop_playout(300.0 + f64::from(k) * 20.0))
            .collect();
        assert!(played.iter().all(|f| f.len() == 160));
        assert!(played.contains(&tone), "the tone is played as sent");
        let stats: serde_json::Value = serde_json::from_str(&b.playout_stats()).unwrap();
        assert!(stats["played"].as_u64().unwrap() >= 1, "{stats}");
        assert!(
            a.send_samples(&tone[..100]).is_err(),
            "a short frame is refused"
        );
    }

    #[test]
    fn the_sip_agent_registers_over_ws() {
        let mut sip = Sip::new("u1", "pw", "192.0.2.1:5061;transport=tls", 0.0).unwrap();
        sip.register(1.0);
        let register = sip.poll_transmit().expect("a REGISTER");
        assert!(register.starts_with("REGISTER sip:192.0.2.1"), "{register}");
        assert!(register.contains("SIP/2.0/WS "), "{register}");
        assert!(Sip::new("u1", "pw", "not an address", 0.0).is_err());
        assert!(Sip::new("", "pw", "192.0.2.1:5060", 0.0).is_err());
        // Garbage from the socket is no panic.
        sip.handle_message(2.0, "\u{0}garbage");
        assert!(sip.invite(3.0, "111", "192.0.2.9:4000", 11025, "").is_err());
    }
}

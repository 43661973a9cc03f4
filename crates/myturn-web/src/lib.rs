//! # myturn-web
//!
//! The browser's end-to-end media core: [`myturn_media`]'s sans-IO
//! session (x25519 + HKDF commit-then-reveal key agreement, the SAS,
//! AES-256-CBC + HMAC-SHA256 sealed audio and text, the replay window),
//! compiled to `wasm32-unknown-unknown` with `wasm-bindgen`. It is the
//! same Rust as the terminal client's, not a JavaScript port, and it
//! speaks the wire protocol of `docs/protocol.md`, so a page and a
//! terminal client need no translation. Keys are made (from the browser's
//! `crypto.getRandomValues`) and kept inside the module: the page, the
//! server and any relay only ever see sealed datagrams.
//!
//! Driving it (JavaScript, after `wasm-bindgen`):
//!
//! ```text
//! const call = new Call("caller", pairIdHex, 96, ssrc, 160, performance.now());
//! // datagrams from the network:
//! call.handle_datagram(performance.now(), bytes);
//! // then, and after every call into it, drain it:
//! let d; while ((d = call.poll_transmit())) send(d);
//! let e; while ((e = call.poll_event())) show(JSON.parse(e));
//! // and wake it at call.poll_timeout(): call.handle_timeout(performance.now());
//! ```
//!
//! Times are milliseconds on one monotonic clock the page chooses
//! (`performance.now()`), given to every call: the module reads no clock
//! except once, when a [`Call`] is made, to anchor them. Events are JSON
//! strings (`{"type":"established","sas":…}`, `"audio"`, `"text"`,
//! `"failed"`). The same API is a plain Rust API on native targets, which
//! is how its tests run.
//!
//! [`Sip`] is the SIP agent of `myturn-sip`, the terminal client's, over
//! SIP over WebSocket (RFC 7118: `new WebSocket(url, "sip")`, one SIP
//! message per WebSocket message): the page hands it what the socket
//! receives ([`Sip::handle_message`]) and sends what
//! [`Sip::poll_transmit`] gives, the same drain-and-wake loop as a
//! [`Call`].

use std::time::Duration;

use myturn_media::codec::Codec;
use myturn_media::keys::{PairId, Role};
use myturn_media::session::{Config, Event, Session};
use myturn_media::Instant;
use myturn_sip::ua::{Config as SipConfig, Event as SipEvent, Transport, UserAgent};
use serde_json::json;
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

/// One call's media session, for the page. See the crate docs.
#[wasm_bindgen]
#[derive(Debug)]
pub struct Call {
    session: Session,
    clock: PageClock,
}

#[wasm_bindgen]
impl Call {
    /// A session for one pair: `role` is `"caller"` (the initiator) or
    /// `"callee"`, `pair_id` the pairing server's 32 hex digits, then the
    /// L16 payload type, this side's SSRC and the samples per 20 ms frame
    /// (160 at 8 kHz, 320 at 16 kHz); `now_ms` the page's time now.
    #[wasm_bindgen(constructor)]
    pub fn new(
        role: &str,
        pair_id: &str,
        payload_type: u8,
        ssrc: u32,
        samples_per_frame: u32,
        now_ms: f64,
    ) -> Result<Call, String> {
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
        let clock = PageClock::new(now_ms)?;
        let cfg = Config {
            role,
            pair_id,
            peer_fingerprint: None,
            payload_type,
            opus_payload_type: None,
            ssrc,
            samples_per_frame,
            codecs: vec![Codec::Pcm16],
        };
        Ok(Call {
            session: Session::new(cfg, Box::new(rand_core::OsRng), clock.anchor),
            clock,
        })
    }

    /// A datagram from the network (malformed or forged ones are dropped
    /// and counted in [`Call::stats`]).
    pub fn handle_datagram(&mut self, now_ms: f64, datagram: &[u8]) {
        let now = self.clock.at(now_ms);
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

    /// The next event as JSON, if any.
    pub fn poll_event(&mut self) -> Option<String> {
        self.session.poll_event().map(|e| event_json(&e))
    }

    /// Sends one 20 ms frame of PCM16 (little-endian) once established.
    pub fn send_audio(&mut self, pcm: &[u8]) -> Result<(), String> {
        self.session.send_audio(pcm).map_err(|e| e.to_string())
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
}

#[wasm_bindgen]
impl Sip {
    /// An agent for `username`/`password` (the SIP credentials the
    /// pairing server's `POST /v1/users` gives) at `domain` (its `ip:port`
    /// domain, the built-in PBX); `now_ms` the page's time now.
    #[wasm_bindgen(constructor)]
    pub fn new(username: &str, password: &str, domain: &str, now_ms: f64) -> Result<Sip, String> {
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

    /// The next agent event as JSON (`registered`,
    /// `registration_failed` with `code` and `reason`, `unregistered`, or
    /// `other` with a description), if any.
    pub fn poll_event(&mut self) -> Option<String> {
        self.ua.poll_event().map(|e| {
            match e {
                SipEvent::Registered { .. } => json!({"type": "registered"}),
                SipEvent::RegistrationFailed { code, reason } => {
                    json!({"type": "registration_failed", "code": code, "reason": reason})
                }
                SipEvent::Unregistered => json!({"type": "unregistered"}),
                other => json!({"type": "other", "what": format!("{other:?}")}),
            }
            .to_string()
        })
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

#[cfg(test)]
mod tests {
    use super::*;

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
}

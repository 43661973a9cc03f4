//! # myturn-sip
//!
//! myTurn's SIP user agent, sans-IO: the client registers with its own
//! credentials, calls its partner through the PBX and answers calls, over
//! UDP, as RFC 3261 says. Nothing in the core reads a clock, opens a
//! socket or spawns a thread; `now` is passed in and randomness (Call-IDs,
//! tags, branches, cnonces) comes from an injected RNG, so tests step it
//! through simulated time with a seeded RNG.
//!
//! * [`msg`]: parsing with `rsip` 0.4 behind a normaliser that closes its
//!   gaps (compact headers, several values per line, unknown methods,
//!   Content-Length framing, strict validation). Survives the RFC 4475 and
//!   RFC 5118 torture messages.
//! * [`digest`]: Digest auth, MD5 and SHA-256 (RFC 7616/8760), qop=auth,
//!   both sides.
//! * [`transaction`]: the four RFC 3261 §17 transaction state machines
//!   with timers A, B, D, E, F, G, H, I, J and K.
//! * [`ua`]: the user agent core: registration (challenge, refresh, 423,
//!   `rport`/`received`, unregister), calls (INVITE with SDP offer, auth,
//!   provisional, 2xx + ACK, CANCEL, BYE both ways, failures), re-INVITE,
//!   UPDATE, OPTIONS, and the 4xx/5xx answers RFC 3261 §8.2 requires.
//! * [`build`]: message building through rsip and the RFC 3261 rules
//!   every element shares (response addressing, transaction keys,
//!   forwarding edits), used by the agent and the built-in PBX; one
//!   response builder, [`build::Reply`], for both.
//! * [`server`]: the server side both share: the table of server
//!   transactions (retransmissions absorbed, ACKs for non-2xx finals
//!   taken) and the answer to a datagram that did not parse.
//! * [`sdp`]: the L16 audio offer/answer with the media key fingerprint.
//! * [`driver`]: the thin tokio driver: one task owns the core, its link
//!   to the proxy (a UDP socket, or one TLS connection framed by
//!   [`stream`]) and the timer, and gives a handle and an event stream.
//!   Its loop (drain, then sleep until the next deadline) is
//!   `myturn-rt`'s, shared with the PBX and media drivers.
//!
//! Driving the core by hand:
//!
//! ```
//! use std::time::Instant;
//! use myturn_sip::ua::{Config, UserAgent};
//! let cfg = Config::new(
//!     "127.0.0.1:5070".parse().unwrap(),
//!     "127.0.0.1:5060".parse().unwrap(),
//!     "111000",
//!     "secret",
//! );
//! let mut ua = UserAgent::new(cfg, Box::new(rand_core::OsRng));
//! let now = Instant::now();
//! ua.register(now);
//! let t = ua.poll_transmit().unwrap();
//! assert_eq!(t.dest, "127.0.0.1:5060".parse().unwrap());
//! assert!(t.payload.starts_with(b"REGISTER sip:127.0.0.1 SIP/2.0\r\n"));
//! // Send it, feed answers to ua.handle_datagram(now, from, bytes), call
//! // ua.handle_timeout(now) at ua.poll_timeout(), read ua.poll_event().
//! ```

#![warn(missing_docs, unreachable_pub)]

/// A datagram a sans-IO core wants sent: the user agent's and the
/// built-in PBX's alike.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transmit {
    /// Where it goes.
    pub dest: std::net::SocketAddr,
    /// The datagram (or, over TLS, the message).
    pub payload: Vec<u8>,
}

pub mod build;
pub mod digest;
#[cfg(feature = "driver")]
pub mod driver;
#[doc(hidden)]
#[cfg(feature = "driver")]
pub mod fuzzing;
pub mod msg;
pub mod sdp;
pub mod server;
pub mod stream;
pub mod transaction;
pub mod ua;

//! # myturn-pbx
//!
//! The built-in PBX: an in-process SIP registrar and record-routing proxy
//! on UDP, so myTurn runs on one machine with nothing else installed. It
//! plays the part of Asterisk's `sip.conf` (accounts, digest auth) and
//! `extensions.conf` (`exten => 111001,1,Dial(SIP/name)`).
//!
//! * [`core::Pbx`] is sans-IO, like the user agent it is built on
//!   (`myturn-sip`): `handle_datagram(now, from, bytes)`, `handle_timeout`,
//!   `poll_transmit`, `poll_timeout`, `poll_event`, with the RNG injected.
//!   The directory of accounts comes from the pairing server through
//!   [`core::Pbx::set_accounts`]; users that leave lose their binding at
//!   once.
//! * Registrar (RFC 3261 §10.3): digest auth against each user's own
//!   password (SHA-256 and MD5 challenges, stateless HMAC nonces with
//!   `stale`), bindings with expiry, 423 with Min-Expires, `Expires: 0` and
//!   `*` removal.
//! * Proxy (§16): INVITE to `EXTENSION@domain` goes to the user owning the
//!   extension (407 first, like Asterisk's peers), with Record-Route so
//!   in-dialog requests pass through; CANCEL, 404 for unknown extensions,
//!   480 for users not registered.
//! * Media anchoring ([`media`], [`core::Config::media`]): SDP untouched
//!   (`Direct`), pointed at the built-in relay (`Relay`: a port pair per
//!   call from a range, `503` when none is left), or at an rtpengine
//!   (`Rtpengine`, over its ng protocol). The core stays sans-IO:
//!   drain [`core::Pbx::poll_media`] into the relay's sockets
//!   ([`relay_driver::RelayIo`], forwarding per [`relay::MediaPath`]),
//!   send [`core::Pbx::poll_control`] to rtpengine and feed its replies to
//!   [`core::Pbx::handle_control`], and report calls the relay ended with
//!   [`core::Pbx::handle_media_ended`]. [`driver`] does all of that.
//!   Transaction-stateful for INVITE (100 Trying, hop-by-hop ACK of
//!   failures, 408 on timer B), stateless for in-dialog requests.
//! * Security: an unknown user gets exactly the answer a wrong password
//!   gets (Asterisk's `alwaysauthreject`); the flood guard ([`guard`],
//!   [`core::Config::flood`]) checks every datagram's source before it is
//!   parsed: a source over its rate, or with `fail_limit` failures within
//!   `fail_window`, is ignored for `block_for` (renewed while a flood goes
//!   on), a source that has not proved a password gets only a few answers
//!   (no reflection), trusted networks skip it all; messages over the size
//!   limit are dropped; malformed requests get 400.
//! * [`driver`] runs it on a tokio UDP socket, with the relay's sockets
//!   and rtpengine's control socket (its drain-and-sleep loop is
//!   `myturn-rt`'s, shared with the agent's and the media drivers).
//!
//! Inside, [`core::Pbx`] is a thin front over three parts that each own
//! their state: the registrar (accounts, bindings, digest auth), the proxy (forwarded INVITEs and their timers,
//! CANCEL, stateless in-dialog routing) and media anchoring (relay ports,
//! rtpengine's ng conversation, SDP rewrite). The front lends each the
//! configuration, the RNG and the shared outbox (datagrams, events,
//! counters, server transactions, the flood guard's table of sources, and
//! one timer table keyed by timer kind) per input; the proxy is lent the registrar and the anchoring it
//! consults, and anchoring hands messages back settled rather than
//! sending them, so no part reaches into another.
//!
//! ```
//! use std::time::Instant;
//! use myturn_pbx::core::{Account, Config, Pbx};
//! let now = Instant::now();
//! let mut pbx = Pbx::new(Config::new("127.0.0.1:5060".parse().unwrap()), Box::new(rand_core::OsRng), now);
//! pbx.set_accounts([Account { username: "alice".into(), extension: "111000".into(), password: "pw".into() }]);
//! let register = "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1\r\n\
//!     From: <sip:alice@127.0.0.1>;tag=1\r\nTo: <sip:alice@127.0.0.1>\r\nCall-ID: c1\r\nCSeq: 1 REGISTER\r\n\
//!     Contact: <sip:alice@127.0.0.1:5070>\r\nContent-Length: 0\r\n\r\n";
//! pbx.handle_datagram(now, "127.0.0.1:5070".parse().unwrap(), register.as_bytes());
//! let challenge = pbx.poll_transmit().unwrap();
//! assert!(challenge.payload.starts_with(b"SIP/2.0 401 Unauthorized\r\n"));
//! ```

#![warn(missing_docs, unreachable_pub)]

mod auth;
mod bindings;
mod config;
pub mod core;
mod ctx;
pub mod driver;
#[doc(hidden)]
pub mod fuzzing;
pub mod guard;
pub mod limits;
pub mod media;
#[doc(hidden)] // rtpengine's protocol: for the tests and benches that play rtpengine
pub mod ng;
mod nonce;
mod proxy;
mod registrar;
pub mod relay;
pub mod relay_driver;
mod report;
mod rewrite;
mod rtpengine;
mod timer;
mod udp_batch;

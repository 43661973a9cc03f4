//! # myturn-client
//!
//! What a myTurn user runs, as a library: registration with the pairing
//! server, SIP registration with the user's own credentials (through
//! `myturn-sip`), "I'm ready", pairing, the call through the PBX (the
//! callee answers, the caller dials the partner's extension), the
//! end-to-end encrypted media session (`myturn-media`, keyed with the key
//! whose fingerprint went to the pairing server), audio and chat, hang-up,
//! and quitting (SIP unregister, `DELETE /v1/me`).
//!
//! Drive it with a [`Client`]: [`Client::connect_with`] (a
//! [`ClientConfig`]: server, [`Trust`], bind address, rate) registers,
//! [`Client::ready_and_call`] draws a partner and returns the encrypted
//! [`Call`], [`talk()`] streams audio and chat over it, [`Client::hang_up`]
//! ends it and [`Client::quit`] logs out. A [`Progress`] feed tells a
//! user interface what happens meanwhile; every failure is a
//! [`ClientError`] whose message a user can act on.
//!
//! * [`api`]: the HTTP API ([`Api`]).
//! * [`call`]: [`Client`], the flow, its [`ClientConfig`] and its
//!   [`Progress`] feed.
//! * [`events`]: the server's WebSocket event stream ([`Events`]: lobby
//!   chat, pushes).
//! * [`talk`](mod@talk): streams audio frames paced at 20 ms and chat lines
//!   over an established call, and collects what the partner sends.
//! * [`speech`]: deterministic speech-like test audio.
//! * [`tls`]: whom a client trusts for TLS ([`Trust`], `--ca-cert`).
//! * [`soundcheck`]: records, plays back and measures the sound devices.
//! * [`tui`]: the full-screen interface (ratatui) and its terminal runner.
//! * [`plain`]: line mode (`myturn --plain`): commands on stdin, events on
//!   stdout, WAV files for audio.
//!
//! The `myturn` binary (`src/bin/myturn.rs`) drives it in line mode or
//! full screen; the `myturn-demo` crate drives two of them against a real
//! server.

#![warn(missing_docs, unreachable_pub)]

pub mod api;
pub mod call;
pub mod events;
pub mod plain;
pub mod soundcheck;
pub mod speech;
pub mod talk;
pub mod tls;
pub mod tui;

mod error;
mod pump;

pub use api::{Api, Interests};
pub use call::{Call, CallSignal, Client, ClientConfig, Progress};
pub use error::{ClientError, PbxError, Transport};
pub use events::{Events, LobbySender};
pub use talk::{talk, TalkReport};
pub use tls::Trust;

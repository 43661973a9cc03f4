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
//! * [`api`]: the HTTP API.
//! * [`call`]: [`call::Client`], the flow, with a [`call::Progress`] feed
//!   for a user interface.
//! * [`events`]: the server's WebSocket event stream (lobby chat, pushes).
//! * [`talk`]: streams audio frames paced at 20 ms and chat lines over an
//!   established call, and collects what the partner sends.
//! * [`speech`]: deterministic speech-like test audio.
//! * [`tui`]: the full-screen interface's view-model and renderer
//!   (ratatui), and its terminal runner.
//! * [`plain`]: line mode (`myturn --plain`): commands on stdin, events on
//!   stdout, WAV files for audio.
//!
//! The `myturn` binary (`src/bin/myturn.rs`) drives it in line mode; the
//! `myturn-demo` crate drives two of them against a real server.

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

pub use error::{ClientError, PbxError, Transport};

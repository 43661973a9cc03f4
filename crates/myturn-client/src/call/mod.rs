//! One user's whole flow: registration, SIP, ready, paired, the call (SIP
//! through the PBX, then the media handshake), audio and chat, hang-up.
//!
//! A [`Client`] (`client`) registers (`register`) and, on
//! [`Client::ready_and_call`] (`redraw`: the failure and redraw path),
//! tries calls as named steps (`setup`, waiting on the partner with
//! `wait`); the [`Call`] it returns is driven in `in_call`. The event
//! stream's loss and return are `reconnect`'s; [`Progress`] is the feed
//! a user interface shows.

mod client;
mod in_call;
mod progress;
mod reconnect;
mod redraw;
mod register;
mod setup;
mod wait;

pub use client::{Client, ClientConfig, DEFAULT_ANSWER_TIMEOUT, DEFAULT_CODECS};
pub use in_call::{Call, CallSignal};
pub use progress::Progress;

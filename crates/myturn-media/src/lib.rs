//! # myturn-media
//!
//! The cryptographic core of myTurn's end-to-end encrypted media, sans-IO:
//! no sockets, no clocks, no threads. Randomness (keys, nonces, IVs) is
//! passed in, so tests can seed it and production passes the OS's.
//! `docs/protocol.md` specifies every byte.
//!
//! * [`keys`]: ephemeral x25519 keys, the commit hash, fingerprints, and the
//!   HKDF-SHA256 key schedule that yields per-direction, per-stream AES-256
//!   and HMAC keys, stream ids and the Short Authentication String.
//! * [`packet`]: the RTP header and the sealed payload: fresh IV,
//!   AES-256-CBC with PKCS#7, HMAC-SHA256 tag truncated to 128 bits over
//!   header ‖ IV ‖ ciphertext, verified in constant time before decrypting.
//! * `replay` (internal): the 64-packet replay window of RFC 3711 §3.3.2
//!   that every [`packet::Opener`] keeps.
//! * [`session`]: the sans-IO state machine over all of it: the
//!   commit-then-reveal handshake with retransmission and key confirmation,
//!   sealed audio, and a reliable, ordered text stream.
//! * [`codec`]: PCM16 and Opus (libopus: in-band FEC, DTX) encoders and
//!   decoders; which one a call uses is agreed inside the handshake.
//! * [`frame`]: the audio plaintext (codec, redundant earlier frames) and
//!   the handshake's codec capability list.
//! * [`loss`]: the receiver's loss reports (sent sealed in keep-alives)
//!   and the sender's choice of protection from them (FEC, redundancy).
//! * [`jitter`]: the adaptive jitter buffer (20–80 ms, reordering, RFC 3550
//!   loss and jitter).
//! * [`conceal`]: pitch-based concealment of lost PCM16 frames (G.711
//!   Appendix I in spirit).
//! * [`playout`]: the one playout path: jitter buffer, decoding, FEC
//!   recovery and concealment, 20 ms of PCM16 out per tick for the speaker
//!   and `--output-wav` alike.
//! * `audio` (feature `audio`): capture and playback with cpal, device
//!   listing and choice, resampling to and from the device's rate.
//! * `echo` (feature `audio`): echo cancellation, noise suppression and
//!   gain control for sound devices (WebRTC's audio processing module).
//! * `resample` (internal): the streaming resampler the audio module uses.
//! * [`wav`]: WAV input and output (PCM16, 8 or 16 kHz) for headless use.
//! * `driver` (feature `driver`, on by default): the thin tokio driver:
//!   one task owns a [`session::Session`] and a UDP socket, and gives an
//!   async handle and an event stream (its drain-and-sleep loop is
//!   `myturn-rt`'s, shared with the SIP drivers).
//!
//! Without the `driver` feature the crate builds for
//! `wasm32-unknown-unknown` (the browser client, `crates/myturn-web`):
//! times are [`Instant`]s of the `web-time` crate, which is
//! `std::time::Instant` on every other target.
//!
//! Driving it: after the handshake both sides hold [`keys::SessionKeys`].
//! Build a [`packet::Sealer`] per sending stream and a [`packet::Opener`]
//! per receiving stream; `seal` appends a datagram to a buffer, `open`
//! returns the plaintext or a [`packet::Discard`] reason to count.
//!
//! ```
//! use myturn_media::keys::{derive, EphemeralKey, PairId, Role};
//! use myturn_media::packet::{Kind, Opener, RtpHeader, Sealer};
//! let mut rng = rand_core::OsRng;
//! let (i, r) = (EphemeralKey::generate(&mut rng), EphemeralKey::generate(&mut rng));
//! // The pairing server's random pair id: the only call id bound into the keys.
//! let pair = PairId([0x42; 16]);
//! let ki = derive(Role::Initiator, &i, &r.public(), &r.nonce(), &pair).unwrap();
//! let kr = derive(Role::Responder, &r, &i.public(), &i.nonce(), &pair).unwrap();
//! assert_eq!(ki.sas, kr.sas);
//! let mut tx = Sealer::new(Kind::Audio, &ki.send_audio);
//! let mut rx = Opener::new(Kind::Audio, &kr.recv_audio);
//! let mut wire = Vec::new();
//! tx.seal(RtpHeader::new(96, 0, 0, 1), &[1, 2, 3, 4], [7; 16], &mut wire);
//! let mut out = Vec::new();
//! rx.open(&wire, &mut out).unwrap();
//! assert_eq!(out, [1, 2, 3, 4]);
//! ```

#![warn(missing_docs, unreachable_pub)]
#![warn(clippy::indexing_slicing)]

/// The instant type every `now` of this crate is: `std::time::Instant`,
/// except in a browser (`performance.now()`).
pub use web_time::Instant;

#[cfg(feature = "audio")]
pub mod audio;
pub mod codec;
pub mod conceal;
#[cfg(feature = "driver")]
pub mod driver;
#[cfg(feature = "audio")]
pub mod echo;
pub mod frame;
#[doc(hidden)]
#[cfg(feature = "driver")]
pub mod fuzzing;
pub mod jitter;
pub mod keys;
pub mod loss;
pub mod packet;
pub mod playout;
mod replay;
// Only the sound devices resample; without them it is tested, not used.
#[cfg_attr(not(feature = "audio"), allow(dead_code))]
mod resample;
pub mod session;
pub mod wav;

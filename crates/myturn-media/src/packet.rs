//! RTP framing and the sealed myTurn payload (`docs/protocol.md`).
//!
//! Layout of a sealed datagram:
//! `RTP header (12+) ‖ ver/kind (1) ‖ flags (1) ‖ stream id (4) ‖ seq (8) ‖
//!  IV (16) ‖ AES-256-CBC(PKCS#7) ciphertext (16·k) ‖ tag (16)`,
//! the tag being HMAC-SHA256 over everything after the RTP header up to the
//! tag, truncated to 128 bits.

use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, InnerIvInit, KeyInit};
use aes::Aes256;
use hmac::{Hmac, Mac};
use sha2::Sha256;

use crate::keys::StreamKeys;
use crate::replay::{ReplayError, ReplayWindow};

/// Protocol version in the high nibble of the first payload byte.
pub const VERSION: u8 = 2;
/// Fixed RTP header length (no CSRC, no extension).
pub const RTP_HEADER_LEN: usize = 12;
/// myTurn header: ver/kind, flags, stream id, sequence number.
pub const INNER_HEADER_LEN: usize = 14;
/// IV length.
pub const IV_LEN: usize = 16;
/// Truncated tag length.
pub const TAG_LEN: usize = 16;
/// AES block.
pub const BLOCK: usize = 16;
/// Smallest sealed payload: header, IV, one block, tag.
pub const MIN_SEALED: usize = INNER_HEADER_LEN + IV_LEN + BLOCK + TAG_LEN;
/// Largest plaintext a packet may carry (keeps datagrams under 1,200 bytes).
pub const MAX_PLAINTEXT: usize = 1024;

type Hmac256 = Hmac<Sha256>;

/// What a sealed packet carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    /// A 20 ms PCM16 frame.
    Audio = 1,
    /// A chunk of the reliable text stream.
    Text = 2,
    /// An acknowledgement on the text stream.
    TextAck = 3,
}

impl Kind {
    /// From the low nibble of the first payload byte.
    pub fn from_nibble(n: u8) -> Option<Kind> {
        match n {
            1 => Some(Kind::Audio),
            2 => Some(Kind::Text),
            3 => Some(Kind::TextAck),
            _ => None,
        }
    }
}

/// Why a datagram was dropped. Each is counted; none reaches the user.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, thiserror::Error)]
pub enum Discard {
    /// Too short for what it claims to be.
    #[error("truncated")]
    Truncated,
    /// Not RTP version 2, or a malformed RTP header.
    #[error("bad RTP header")]
    BadRtp,
    /// Unknown myTurn version or kind.
    #[error("bad version or kind")]
    BadVersion,
    /// A kind this opener does not handle.
    #[error("wrong kind for this stream")]
    WrongKind,
    /// A stream id that is not the peer's.
    #[error("unknown stream")]
    UnknownStream,
    /// Seen before.
    #[error("replayed")]
    Replayed,
    /// Older than the replay window.
    #[error("older than the replay window")]
    TooOld,
    /// The tag did not verify (tampered, or not from the peer).
    #[error("bad tag")]
    BadTag,
    /// Authentic but badly padded (cannot happen with a correct peer).
    #[error("bad padding")]
    BadPadding,
    /// Authentic audio in a format this side cannot read (an unknown
    /// codec, a malformed redundancy header).
    #[error("bad audio format")]
    BadFormat,
}

impl Discard {
    /// Every reason, for counters.
    pub const ALL: [Discard; 10] = [
        Discard::Truncated,
        Discard::BadRtp,
        Discard::BadVersion,
        Discard::WrongKind,
        Discard::UnknownStream,
        Discard::Replayed,
        Discard::TooOld,
        Discard::BadTag,
        Discard::BadPadding,
        Discard::BadFormat,
    ];

    /// A snake_case name, for logs and stats.
    pub fn as_str(self) -> &'static str {
        match self {
            Discard::Truncated => "truncated",
            Discard::BadRtp => "bad_rtp",
            Discard::BadVersion => "bad_version",
            Discard::WrongKind => "wrong_kind",
            Discard::UnknownStream => "unknown_stream",
            Discard::Replayed => "replayed",
            Discard::TooOld => "too_old",
            Discard::BadTag => "bad_tag",
            Discard::BadPadding => "bad_padding",
            Discard::BadFormat => "bad_format",
        }
    }
}

impl From<ReplayError> for Discard {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::Replayed => Discard::Replayed,
            ReplayError::TooOld => Discard::TooOld,
        }
    }
}

/// The RTP fields myTurn sets and reads (RFC 3550 §5.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RtpHeader {
    /// Payload type (7 bits).
    pub payload_type: u8,
    /// Marker bit.
    pub marker: bool,
    /// RTP sequence number (may be rewritten by a PBX).
    pub seq: u16,
    /// RTP timestamp (may be rewritten by a PBX).
    pub timestamp: u32,
    /// SSRC (may be rewritten by a PBX).
    pub ssrc: u32,
}

impl RtpHeader {
    /// A header with the marker bit clear.
    pub fn new(payload_type: u8, seq: u16, timestamp: u32, ssrc: u32) -> Self {
        RtpHeader {
            payload_type: payload_type & 0x7f,
            marker: false,
            seq,
            timestamp,
            ssrc,
        }
    }

    /// Appends the 12-byte header.
    pub fn write(&self, out: &mut Vec<u8>) {
        out.push(0x80);
        out.push((u8::from(self.marker) << 7) | (self.payload_type & 0x7f));
        out.extend_from_slice(&self.seq.to_be_bytes());
        out.extend_from_slice(&self.timestamp.to_be_bytes());
        out.extend_from_slice(&self.ssrc.to_be_bytes());
    }

    /// Parses an RTP header, skipping CSRCs and a header extension and
    /// honouring the padding bit; returns the header and the payload.
    pub fn parse(datagram: &[u8]) -> Result<(RtpHeader, &[u8]), Discard> {
        let fixed = datagram.get(..RTP_HEADER_LEN).ok_or(Discard::Truncated)?;
        let b = |i: usize| fixed.get(i).copied().unwrap_or(0);
        if b(0) >> 6 != 2 {
            return Err(Discard::BadRtp);
        }
        let padding = b(0) & 0x20 != 0;
        let extension = b(0) & 0x10 != 0;
        let csrc = usize::from(b(0) & 0x0f);
        let header = RtpHeader {
            marker: b(1) & 0x80 != 0,
            payload_type: b(1) & 0x7f,
            seq: u16::from_be_bytes([b(2), b(3)]),
            timestamp: u32::from_be_bytes([b(4), b(5), b(6), b(7)]),
            ssrc: u32::from_be_bytes([b(8), b(9), b(10), b(11)]),
        };
        let mut start = RTP_HEADER_LEN + 4 * csrc;
        if extension {
            let ext = datagram.get(start..start + 4).ok_or(Discard::Truncated)?;
            let words = usize::from(u16::from_be_bytes([
                ext.get(2).copied().unwrap_or(0),
                ext.get(3).copied().unwrap_or(0),
            ]));
            start += 4 + 4 * words;
        }
        let mut end = datagram.len();
        if padding {
            let pad = usize::from(*datagram.last().ok_or(Discard::Truncated)?);
            if pad == 0 {
                return Err(Discard::BadRtp);
            }
            end = end.checked_sub(pad).ok_or(Discard::BadRtp)?;
        }
        let payload = datagram.get(start..end).ok_or(Discard::Truncated)?;
        Ok((header, payload))
    }
}

/// The cleartext myTurn header of a sealed payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Inner {
    /// What the packet carries.
    pub kind: Kind,
    /// Stream id.
    pub stream: u32,
    /// End-to-end sequence number.
    pub seq: u64,
}

impl Inner {
    /// Reads the header of a sealed payload (no authentication yet).
    pub fn parse(payload: &[u8]) -> Result<Inner, Discard> {
        let h = payload.get(..INNER_HEADER_LEN).ok_or(Discard::Truncated)?;
        let first = h.first().copied().unwrap_or(0);
        if first >> 4 != VERSION {
            return Err(Discard::BadVersion);
        }
        let kind = Kind::from_nibble(first & 0x0f).ok_or(Discard::BadVersion)?;
        let mut id = [0u8; 4];
        id.copy_from_slice(h.get(2..6).ok_or(Discard::Truncated)?);
        let mut seq = [0u8; 8];
        seq.copy_from_slice(h.get(6..14).ok_or(Discard::Truncated)?);
        Ok(Inner {
            kind,
            stream: u32::from_be_bytes(id),
            seq: u64::from_be_bytes(seq),
        })
    }
}

fn mac_init(key: &[u8; 32]) -> Hmac256 {
    match <Hmac256 as Mac>::new_from_slice(key) {
        Ok(m) => m,
        Err(_) => unreachable!("HMAC accepts keys of any length"),
    }
}

/// Seals packets of one sending stream.
#[derive(Clone)]
pub struct Sealer {
    kind: Kind,
    id: u32,
    next: u64,
    aes: Aes256,
    mac: Hmac256,
}

impl std::fmt::Debug for Sealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sealer")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("next", &self.next)
            .finish_non_exhaustive()
    }
}

impl Sealer {
    /// A sealer for `kind` with this stream's keys. (Text and text acks
    /// share the text keys and stream id; give each its own sealer.)
    pub fn new(kind: Kind, keys: &StreamKeys) -> Self {
        Sealer {
            kind,
            id: keys.id,
            next: 0,
            aes: Aes256::new(&keys.enc.into()),
            mac: mac_init(&keys.mac),
        }
    }

    /// The sequence number the next packet gets.
    pub fn next_seq(&self) -> u64 {
        self.next
    }

    /// Appends one sealed datagram (RTP header included) to `out`, with
    /// `iv` as its IV (16 fresh random bytes from the OS per packet).
    /// Returns its end-to-end sequence number. Plaintexts longer than
    /// [`MAX_PLAINTEXT`] are the caller's bug: they are cut to it.
    pub fn seal(
        &mut self,
        rtp: RtpHeader,
        plaintext: &[u8],
        iv: [u8; IV_LEN],
        out: &mut Vec<u8>,
    ) -> u64 {
        let plaintext = plaintext.get(..MAX_PLAINTEXT).unwrap_or(plaintext);
        let seq = self.next;
        self.next += 1;
        rtp.write(out);
        let start = out.len();
        out.push((VERSION << 4) | self.kind as u8);
        out.push(0);
        out.extend_from_slice(&self.id.to_be_bytes());
        out.extend_from_slice(&seq.to_be_bytes());
        out.extend_from_slice(&iv);
        let ct_start = out.len();
        let padded = (plaintext.len() / BLOCK + 1) * BLOCK;
        out.extend_from_slice(plaintext);
        out.resize(ct_start + padded, 0);
        let enc = cbc::Encryptor::<Aes256>::inner_iv_init(self.aes.clone(), &iv.into());
        if let Some(buf) = out.get_mut(ct_start..) {
            // The buffer has exactly the room PKCS#7 needs.
            let _ = enc.encrypt_padded_mut::<Pkcs7>(buf, plaintext.len());
        }
        let mut mac = self.mac.clone();
        mac.update(out.get(start..).unwrap_or(&[]));
        let tag = mac.finalize().into_bytes();
        out.extend_from_slice(tag.get(..TAG_LEN).unwrap_or(&[]));
        seq
    }
}

/// What [`Opener::open`] returns for an authentic packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Opened {
    /// The RTP header as received (possibly rewritten by a PBX).
    pub rtp: RtpHeader,
    /// The end-to-end sequence number.
    pub seq: u64,
}

/// Opens packets of one receiving stream.
#[derive(Clone)]
pub struct Opener {
    kind: Kind,
    id: u32,
    window: ReplayWindow,
    aes: Aes256,
    mac: Hmac256,
}

impl std::fmt::Debug for Opener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Opener")
            .field("kind", &self.kind)
            .field("id", &self.id)
            .field("highest", &self.window.highest())
            .finish_non_exhaustive()
    }
}

impl Opener {
    /// An opener for `kind` with the peer's stream keys.
    pub fn new(kind: Kind, keys: &StreamKeys) -> Self {
        Opener {
            kind,
            id: keys.id,
            window: ReplayWindow::default(),
            aes: Aes256::new(&keys.enc.into()),
            mac: mac_init(&keys.mac),
        }
    }

    /// The stream id this opener accepts.
    pub fn stream_id(&self) -> u32 {
        self.id
    }

    /// Authenticates, replay-checks and decrypts one datagram (RTP header
    /// included), replacing `out`'s contents with the plaintext. The tag is
    /// checked in constant time before anything is decrypted.
    pub fn open(&mut self, datagram: &[u8], out: &mut Vec<u8>) -> Result<Opened, Discard> {
        let (rtp, payload) = RtpHeader::parse(datagram)?;
        if payload.len() < MIN_SEALED
            || (payload.len() - INNER_HEADER_LEN - IV_LEN - TAG_LEN) % BLOCK != 0
        {
            return Err(Discard::Truncated);
        }
        let inner = Inner::parse(payload)?;
        if inner.kind != self.kind {
            return Err(Discard::WrongKind);
        }
        if inner.stream != self.id {
            return Err(Discard::UnknownStream);
        }
        self.window.check(inner.seq)?;
        let (authed, tag) = payload.split_at(payload.len() - TAG_LEN);
        let mut mac = self.mac.clone();
        mac.update(authed);
        mac.verify_truncated_left(tag)
            .map_err(|_| Discard::BadTag)?;
        let iv = authed
            .get(INNER_HEADER_LEN..INNER_HEADER_LEN + IV_LEN)
            .ok_or(Discard::Truncated)?;
        let mut iv_arr = [0u8; IV_LEN];
        iv_arr.copy_from_slice(iv);
        out.clear();
        out.extend_from_slice(authed.get(INNER_HEADER_LEN + IV_LEN..).unwrap_or(&[]));
        let dec = cbc::Decryptor::<Aes256>::inner_iv_init(self.aes.clone(), &iv_arr.into());
        let len = dec
            .decrypt_padded_mut::<Pkcs7>(out)
            .map_err(|_| Discard::BadPadding)?
            .len();
        out.truncate(len);
        self.window.mark(inner.seq);
        Ok(Opened {
            rtp,
            seq: inner.seq,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::{derive, EphemeralKey, Role, SessionKeys};
    use rand::{rngs::StdRng, RngCore, SeedableRng};

    fn keys() -> (SessionKeys, SessionKeys) {
        let mut rng = StdRng::seed_from_u64(1);
        let (i, r) = (
            EphemeralKey::generate(&mut rng),
            EphemeralKey::generate(&mut rng),
        );
        (
            derive(
                Role::Initiator,
                &i,
                &r.public(),
                &r.nonce(),
                &crate::keys::PairId([1; 16]),
            )
            .unwrap(),
            derive(
                Role::Responder,
                &r,
                &i.public(),
                &i.nonce(),
                &crate::keys::PairId([1; 16]),
            )
            .unwrap(),
        )
    }

    fn frame(n: usize, seed: u8) -> Vec<u8> {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    }

    #[test]
    fn round_trip_every_length_and_layout() {
        let (a, b) = keys();
        let mut tx = Sealer::new(Kind::Audio, &a.send_audio);
        let mut rx = Opener::new(Kind::Audio, &b.recv_audio);
        let mut rng = StdRng::seed_from_u64(9);
        for len in [0, 1, 15, 16, 17, 320, 640, MAX_PLAINTEXT] {
            let pt = frame(len, len as u8);
            let mut iv = [0u8; 16];
            rng.fill_bytes(&mut iv);
            let mut wire = Vec::new();
            let seq = tx.seal(RtpHeader::new(96, 7, 160, 0xdead_beef), &pt, iv, &mut wire);
            let padded = (len / 16 + 1) * 16;
            assert_eq!(
                wire.len(),
                RTP_HEADER_LEN + INNER_HEADER_LEN + IV_LEN + padded + TAG_LEN
            );
            assert_eq!(wire[0], 0x80);
            assert_eq!(wire[1], 96);
            assert_eq!(wire[12], 0x21, "version 2, kind audio");
            assert_eq!(&wire[14..18], &a.send_audio.id.to_be_bytes());
            assert_eq!(&wire[18..26], &seq.to_be_bytes());
            assert_eq!(&wire[26..42], &iv);
            let mut out = Vec::new();
            let opened = rx.open(&wire, &mut out).unwrap();
            assert_eq!(out, pt);
            assert_eq!(opened.seq, seq);
            assert_eq!(opened.rtp.ssrc, 0xdead_beef);
        }
    }

    #[test]
    fn a_pbx_rewriting_the_rtp_header_changes_nothing() {
        let (a, b) = keys();
        let mut tx = Sealer::new(Kind::Audio, &a.send_audio);
        let mut rx = Opener::new(Kind::Audio, &b.recv_audio);
        let mut wire = Vec::new();
        tx.seal(RtpHeader::new(96, 1, 2, 3), b"hello", [1; 16], &mut wire);
        // Asterisk's bridge: new SSRC, sequence, timestamp and marker.
        wire[1] |= 0x80;
        wire[2..12].copy_from_slice(&[0x12, 0x34, 0, 0, 0x56, 0x78, 0x9a, 0xbc, 0xde, 0xf0]);
        let mut out = Vec::new();
        let o = rx.open(&wire, &mut out).unwrap();
        assert_eq!(out, b"hello");
        assert_eq!(o.rtp.seq, 0x1234);
        // ...and a CSRC list plus a header extension added by a mixer.
        let mut wire2 = Vec::new();
        tx.seal(RtpHeader::new(96, 2, 3, 4), b"again", [2; 16], &mut wire2);
        let mut mixed2 = vec![0x80 | 0x10 | 0x01];
        mixed2.extend_from_slice(&wire2[1..12]);
        mixed2.extend_from_slice(&[0xaa; 4]); // one CSRC
        mixed2.extend_from_slice(&[0xbe, 0xde, 0, 1, 1, 2, 3, 4]); // extension, 1 word
        mixed2.extend_from_slice(&wire2[12..]);
        rx.open(&mixed2, &mut out).unwrap();
        assert_eq!(out, b"again");
    }

    #[test]
    fn every_single_bit_flip_is_caught() {
        let (a, b) = keys();
        let mut tx = Sealer::new(Kind::Text, &a.send_text);
        let mut wire = Vec::new();
        tx.seal(
            RtpHeader::new(96, 1, 2, 3),
            b"attack at dawn",
            [5; 16],
            &mut wire,
        );
        let mut out = Vec::new();
        for bit in 0..wire.len() * 8 {
            let mut w = wire.clone();
            w[bit / 8] ^= 1 << (bit % 8);
            let mut rx = Opener::new(Kind::Text, &b.recv_text);
            out.clear();
            let r = rx.open(&w, &mut out);
            if bit / 8 < RTP_HEADER_LEN {
                // The RTP header is not end to end: only the version bits matter.
                if bit / 8 == 0 && (bit % 8) >= 6 {
                    assert_eq!(r, Err(Discard::BadRtp), "bit {bit}");
                }
                continue;
            }
            assert!(r.is_err(), "flip of bit {bit} was accepted");
            assert_ne!(out, b"attack at dawn");
        }
    }

    #[test]
    fn replays_truncations_and_strangers_are_dropped() {
        let (a, b) = keys();
        let mut tx = Sealer::new(Kind::Audio, &a.send_audio);
        let mut rx = Opener::new(Kind::Audio, &b.recv_audio);
        let mut wire = Vec::new();
        tx.seal(
            RtpHeader::new(96, 1, 2, 3),
            &frame(320, 1),
            [3; 16],
            &mut wire,
        );
        let mut out = Vec::new();
        rx.open(&wire, &mut out).unwrap();
        assert_eq!(rx.open(&wire, &mut out), Err(Discard::Replayed));
        for cut in [0, 5, 12, 20, 41, 57, wire.len() - 1, wire.len() - 15] {
            assert_eq!(
                rx.open(&wire[..cut], &mut out).unwrap_err(),
                Discard::Truncated,
                "cut {cut}"
            );
        }
        // Cutting a whole block keeps the shape valid: the tag catches it.
        let mut fresh = Opener::new(Kind::Audio, &b.recv_audio);
        assert_eq!(
            fresh.open(&wire[..wire.len() - 16], &mut out),
            Err(Discard::BadTag)
        );
        // Our own sending stream reflected back: not the peer's stream.
        let mut mirror = Opener::new(Kind::Audio, &b.recv_audio);
        let mut own = Vec::new();
        Sealer::new(Kind::Audio, &b.send_audio).seal(
            RtpHeader::new(96, 1, 2, 3),
            b"x",
            [0; 16],
            &mut own,
        );
        assert_eq!(mirror.open(&own, &mut out), Err(Discard::UnknownStream));
        // Text keys cannot open audio.
        let mut text_rx = Opener::new(Kind::Text, &b.recv_text);
        assert_eq!(text_rx.open(&wire, &mut out), Err(Discard::WrongKind));
        // A third party's key: bad tag, even with the right stream id.
        let mut other = a.send_audio.clone();
        other.mac[0] ^= 1;
        let mut forged = Vec::new();
        Sealer::new(Kind::Audio, &other).seal(
            RtpHeader::new(96, 1, 2, 3),
            b"x",
            [0; 16],
            &mut forged,
        );
        let mut rx2 = Opener::new(Kind::Audio, &b.recv_audio);
        assert_eq!(rx2.open(&forged, &mut out), Err(Discard::BadTag));
        // A forged packet does not move the replay window.
        let mut next = Vec::new();
        tx.seal(RtpHeader::new(96, 2, 3, 4), b"ok", [4; 16], &mut next);
        rx2.open(&next, &mut out).unwrap();
    }

    #[test]
    fn reordered_packets_inside_the_window_are_accepted_once() {
        let (a, b) = keys();
        let mut tx = Sealer::new(Kind::Audio, &a.send_audio);
        let mut rx = Opener::new(Kind::Audio, &b.recv_audio);
        let wires: Vec<Vec<u8>> = (0..100)
            .map(|i| {
                let mut w = Vec::new();
                tx.seal(
                    RtpHeader::new(96, i, 0, 0),
                    &[i as u8],
                    [i as u8; 16],
                    &mut w,
                );
                w
            })
            .collect();
        let mut out = Vec::new();
        // 99, 97, ..., 37: newest first, all inside the 64-packet window.
        for i in (37..100).rev().step_by(2) {
            rx.open(&wires[i], &mut out).unwrap();
            assert_eq!(out, [i as u8]);
        }
        assert_eq!(rx.open(&wires[35], &mut out), Err(Discard::TooOld));
        assert_eq!(rx.open(&wires[97], &mut out), Err(Discard::Replayed));
        rx.open(&wires[98], &mut out).unwrap();
        assert_eq!(out, [98]);
    }

    #[test]
    fn garbage_never_panics() {
        let (_, b) = keys();
        let mut rx = Opener::new(Kind::Audio, &b.recv_audio);
        let mut rng = StdRng::seed_from_u64(4);
        let mut out = Vec::new();
        for len in 0..400 {
            let mut v = vec![0u8; len];
            rng.fill_bytes(&mut v);
            if len > 0 {
                v[0] = 0x80 | (v[0] & 0x3f);
            }
            if len > 12 {
                v[12] = (VERSION << 4) | 1;
            }
            assert!(rx.open(&v, &mut out).is_err());
        }
    }
}

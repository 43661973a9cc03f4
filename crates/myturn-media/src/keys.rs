//! Key agreement material: ephemeral x25519 keys, commitments,
//! fingerprints, and the HKDF-SHA256 key schedule (`docs/protocol.md`).

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use hkdf::Hkdf;
use rand_core::CryptoRngCore;
use sha2::{Digest, Sha256};
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Protocol and version, first in every HKDF info.
pub const INFO_PREFIX: &[u8] = b"myturn-media-v2";
/// Domain separation of the commitment hash.
pub const COMMIT_PREFIX: &[u8] = b"myturn-commit-v1";
/// Length of a handshake nonce.
pub const NONCE_LEN: usize = 16;
/// Length of the Short Authentication String, in base32 characters.
pub const SAS_LEN: usize = 6;

/// Which side of the handshake: the SIP caller initiates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// Sends Commit and DHPart2 (the SIP caller).
    Initiator,
    /// Sends DHPart1 (the SIP callee).
    Responder,
}

/// Why keys could not be derived.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The shared secret is all zeros: the peer sent a low-order point.
    #[error("the peer's public key is a low-order point (non-contributory key exchange)")]
    NonContributory,
}

/// Length of a pair id, in bytes (128 bits).
pub const PAIR_ID_LEN: usize = 16;

/// The pairing server's random id of one pair: the only call identifier
/// the key schedule binds. It reaches both clients unchanged over the
/// pairing server's authenticated API, unlike anything in SIP or RTP
/// (Call-ID, tags, SDP, payload types and RTP headers are rewritten by
/// back-to-back agents such as Asterisk).
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct PairId(pub [u8; PAIR_ID_LEN]);

impl PairId {
    /// Parses the wire form: 32 hexadecimal digits (either case).
    pub fn from_hex(s: &str) -> Option<PairId> {
        let b = s.as_bytes();
        if b.len() != 2 * PAIR_ID_LEN {
            return None;
        }
        let mut out = [0u8; PAIR_ID_LEN];
        for (o, pair) in out.iter_mut().zip(b.chunks_exact(2)) {
            let hex = |c: u8| char::from(c).to_digit(16);
            let (hi, lo) = (hex(*pair.first()?)?, hex(*pair.get(1)?)?);
            *o = u8::try_from(hi << 4 | lo).ok()?;
        }
        Some(PairId(out))
    }

    /// The wire form: 32 lowercase hexadecimal digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }
}

impl std::fmt::Debug for PairId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PairId({})", self.to_hex())
    }
}

impl std::fmt::Display for PairId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// One side's ephemeral key and nonce for one call.
pub struct EphemeralKey {
    secret: StaticSecret,
    public: [u8; 32],
    nonce: [u8; NONCE_LEN],
}

impl std::fmt::Debug for EphemeralKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EphemeralKey")
            .field("fingerprint", &fingerprint_b64(&self.public))
            .finish_non_exhaustive()
    }
}

impl EphemeralKey {
    /// A fresh key and nonce (pass the OS RNG in production).
    pub fn generate<R: CryptoRngCore + ?Sized>(rng: &mut R) -> Self {
        let mut bytes = [0u8; 32];
        rng.as_rngcore().fill_bytes(&mut bytes);
        // x25519 clamps the scalar itself.
        let secret = StaticSecret::from(bytes);
        bytes.zeroize();
        let public = PublicKey::from(&secret).to_bytes();
        let mut nonce = [0u8; NONCE_LEN];
        rng.as_rngcore().fill_bytes(&mut nonce);
        EphemeralKey {
            secret,
            public,
            nonce,
        }
    }

    /// The public key.
    pub fn public(&self) -> [u8; 32] {
        self.public
    }

    /// The nonce.
    pub fn nonce(&self) -> [u8; NONCE_LEN] {
        self.nonce
    }
}

/// `SHA-256("myturn-commit-v1" ‖ pub)`: what the initiator commits to.
pub fn commitment(public: &[u8; 32]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(COMMIT_PREFIX);
    h.update(public);
    h.finalize().into()
}

/// `SHA-256(pub)`: the key's fingerprint, sent through SDP.
pub fn fingerprint(public: &[u8; 32]) -> [u8; 32] {
    Sha256::digest(public).into()
}

/// The fingerprint as base64url without padding (SDP attribute value).
pub fn fingerprint_b64(public: &[u8; 32]) -> String {
    URL_SAFE_NO_PAD.encode(fingerprint(public))
}

/// Parses a fingerprint from its base64url form (the SDP attribute value,
/// or `media_key` from the pairing server).
pub fn parse_fingerprint_b64(s: &str) -> Option<[u8; 32]> {
    let bytes = URL_SAFE_NO_PAD.decode(s.trim()).ok()?;
    bytes.try_into().ok()
}

/// Keys of one stream in one direction.
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct StreamKeys {
    /// AES-256 key.
    pub enc: [u8; 32],
    /// HMAC-SHA256 key.
    pub mac: [u8; 32],
    /// The stream id carried in every packet.
    pub id: u32,
}

impl std::fmt::Debug for StreamKeys {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamKeys")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

/// Everything one side needs after the handshake.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionKeys {
    /// What this side sends: audio.
    pub send_audio: StreamKeys,
    /// What this side sends: text and text acks.
    pub send_text: StreamKeys,
    /// What the peer sends: audio.
    pub recv_audio: StreamKeys,
    /// What the peer sends: text and text acks.
    pub recv_text: StreamKeys,
    /// Key of this side's Confirm message.
    pub confirm_mine: ConfirmKey,
    /// Key of the peer's Confirm message.
    pub confirm_peer: ConfirmKey,
    /// The Short Authentication String (6 base32 characters).
    pub sas: String,
}

/// A confirm key (kept apart from stream keys so it is never used for media).
#[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
pub struct ConfirmKey(pub [u8; 32]);

impl std::fmt::Debug for ConfirmKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ConfirmKey(<redacted>)")
    }
}

const BASE32: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";

/// The first 30 bits of `bytes` as 6 base32 characters.
fn sas_of(bytes: &[u8; 4]) -> String {
    let v = u32::from_be_bytes(*bytes) >> 2;
    (0..SAS_LEN)
        .rev()
        .map(|i| {
            char::from(
                BASE32
                    .get(((v >> (5 * i)) & 31) as usize)
                    .copied()
                    .unwrap_or(b'A'),
            )
        })
        .collect()
}

/// Derives the session keys: x25519, then HKDF-SHA256 with
/// salt `nonce_I ‖ nonce_R` and info binding the version, the pair id,
/// both public keys and the roles. Nothing a PBX or NAT may rewrite (SIP
/// Call-ID, tags, SDP, payload types, RTP headers, addresses) is bound.
pub fn derive(
    role: Role,
    mine: &EphemeralKey,
    peer_public: &[u8; 32],
    peer_nonce: &[u8; NONCE_LEN],
    pair_id: &PairId,
) -> Result<SessionKeys, KeyError> {
    let shared = mine.secret.diffie_hellman(&PublicKey::from(*peer_public));
    if !shared.was_contributory() {
        return Err(KeyError::NonContributory);
    }
    let (pub_i, pub_r, nonce_i, nonce_r) = match role {
        Role::Initiator => (&mine.public, peer_public, &mine.nonce, peer_nonce),
        Role::Responder => (peer_public, &mine.public, peer_nonce, &mine.nonce),
    };
    let mut salt = [0u8; 2 * NONCE_LEN];
    let (si, sr) = salt.split_at_mut(NONCE_LEN);
    si.copy_from_slice(nonce_i);
    sr.copy_from_slice(nonce_r);
    let hk = Hkdf::<Sha256>::new(Some(&salt), shared.as_bytes());
    let mut info = Vec::with_capacity(INFO_PREFIX.len() + PAIR_ID_LEN + 64 + 16);
    info.extend_from_slice(INFO_PREFIX);
    info.extend_from_slice(&pair_id.0);
    info.extend_from_slice(pub_i);
    info.extend_from_slice(pub_r);
    let base = info.len();
    let mut expand = |label: &str, out: &mut [u8]| {
        info.truncate(base);
        info.extend_from_slice(label.as_bytes());
        // Output lengths here are far below HKDF's 255 × 32 limit.
        let _ = hk.expand(&info, out);
    };
    let key = |expand: &mut dyn FnMut(&str, &mut [u8]), label: &str| {
        let mut k = [0u8; 32];
        expand(label, &mut k);
        k
    };
    let mut ids = [0u8; 16];
    expand("stream ids", &mut ids);
    let id = |i: usize| {
        let mut b = [0u8; 4];
        b.copy_from_slice(ids.get(4 * i..4 * i + 4).unwrap_or(&[0; 4]));
        u32::from_be_bytes(b)
    };
    let mut stream = |dir: &str, kind: &str, idx: usize| StreamKeys {
        enc: key(&mut expand, &format!("{dir} {kind} enc")),
        mac: key(&mut expand, &format!("{dir} {kind} mac")),
        id: id(idx),
    };
    let i2r_audio = stream("I2R", "audio", 0);
    let i2r_text = stream("I2R", "text", 1);
    let r2i_audio = stream("R2I", "audio", 2);
    let r2i_text = stream("R2I", "text", 3);
    let confirm_i = ConfirmKey(key(&mut expand, "confirm I"));
    let confirm_r = ConfirmKey(key(&mut expand, "confirm R"));
    let mut sas = [0u8; 4];
    expand("sas", &mut sas);
    ids.zeroize();
    let sas = sas_of(&sas);
    Ok(match role {
        Role::Initiator => SessionKeys {
            send_audio: i2r_audio,
            send_text: i2r_text,
            recv_audio: r2i_audio,
            recv_text: r2i_text,
            confirm_mine: confirm_i,
            confirm_peer: confirm_r,
            sas,
        },
        Role::Responder => SessionKeys {
            send_audio: r2i_audio,
            send_text: r2i_text,
            recv_audio: i2r_audio,
            recv_text: i2r_text,
            confirm_mine: confirm_r,
            confirm_peer: confirm_i,
            sas,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    fn pair(seed: u64) -> (EphemeralKey, EphemeralKey) {
        let mut rng = StdRng::seed_from_u64(seed);
        (
            EphemeralKey::generate(&mut rng),
            EphemeralKey::generate(&mut rng),
        )
    }

    #[test]
    fn both_sides_derive_mirrored_keys_and_the_same_sas() {
        let (i, r) = pair(1);
        let ki = derive(
            Role::Initiator,
            &i,
            &r.public(),
            &r.nonce(),
            &PairId([0xab; 16]),
        )
        .unwrap();
        let kr = derive(
            Role::Responder,
            &r,
            &i.public(),
            &i.nonce(),
            &PairId([0xab; 16]),
        )
        .unwrap();
        assert_eq!(ki.send_audio, kr.recv_audio);
        assert_eq!(ki.send_text, kr.recv_text);
        assert_eq!(ki.recv_audio, kr.send_audio);
        assert_eq!(ki.confirm_mine, kr.confirm_peer);
        assert_eq!(ki.sas, kr.sas);
        assert_eq!(ki.sas.len(), SAS_LEN);
        assert!(ki.sas.bytes().all(|b| BASE32.contains(&b)));
        // Every key and id is distinct.
        let all = [&ki.send_audio, &ki.send_text, &ki.recv_audio, &ki.recv_text];
        for (a, x) in all.iter().enumerate() {
            for y in all.iter().skip(a + 1) {
                assert_ne!(x.enc, y.enc);
                assert_ne!(x.mac, y.mac);
                assert_ne!(x.id, y.id);
            }
            assert_ne!(x.enc, x.mac);
        }
    }

    #[test]
    fn pair_ids_round_trip_as_hex_and_bad_ones_are_refused() {
        let id = PairId([
            0, 1, 2, 0x7f, 0x80, 0xfe, 0xff, 9, 10, 11, 12, 13, 14, 15, 16, 17,
        ]);
        let hex = id.to_hex();
        assert_eq!(hex, "0001027f80feff090a0b0c0d0e0f1011");
        assert_eq!(PairId::from_hex(&hex), Some(id));
        assert_eq!(PairId::from_hex(&hex.to_uppercase()), Some(id));
        for bad in [
            "",
            "00",
            &hex[1..],
            &format!("{hex}0"),
            "0001027f80feff090a0b0c0d0e0f101g",
            "+001027f80feff090a0b0c0d0e0f1011",
            "é001027f80feff090a0b0c0d0e0f101",
        ] {
            assert_eq!(PairId::from_hex(bad), None, "{bad:?}");
        }
    }

    #[test]
    fn the_pair_id_and_roles_are_bound() {
        let (i, r) = pair(2);
        let a = derive(
            Role::Initiator,
            &i,
            &r.public(),
            &r.nonce(),
            &PairId([0xa; 16]),
        )
        .unwrap();
        let b = derive(
            Role::Initiator,
            &i,
            &r.public(),
            &r.nonce(),
            &PairId([0xb; 16]),
        )
        .unwrap();
        assert_ne!(a.send_audio, b.send_audio);
        assert_ne!(a.sas, b.sas);
        // Swapping roles (each side believing it initiated) breaks agreement.
        let wrong = derive(
            Role::Initiator,
            &r,
            &i.public(),
            &i.nonce(),
            &PairId([0xa; 16]),
        )
        .unwrap();
        assert_ne!(wrong.recv_audio, a.send_audio);
    }

    #[test]
    fn a_man_in_the_middle_gets_different_sas_on_each_side() {
        // I ↔ M ↔ R: M runs one exchange with each side.
        let (i, r) = pair(3);
        let (m1, m2) = pair(4);
        let i_side = derive(
            Role::Initiator,
            &i,
            &m1.public(),
            &m1.nonce(),
            &PairId([0xc; 16]),
        )
        .unwrap();
        let r_side = derive(
            Role::Responder,
            &r,
            &m2.public(),
            &m2.nonce(),
            &PairId([0xc; 16]),
        )
        .unwrap();
        assert_ne!(i_side.sas, r_side.sas);
        // And the fingerprint R expected (from SDP) is not what it received.
        assert_ne!(fingerprint(&i.public()), fingerprint(&m2.public()));
    }

    #[test]
    fn low_order_points_are_refused() {
        let (i, _) = pair(5);
        // The all-zero point and other small-order points (RFC 7748 §6.1;
        // list as in libsodium's blocklist).
        let mut bad: Vec<[u8; 32]> = vec![[0u8; 32]];
        let mut one = [0u8; 32];
        one[0] = 1;
        bad.push(one);
        let mut p = [0u8; 32];
        p.copy_from_slice(&[
            0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f,
            0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16,
            0x5f, 0x49, 0xb8, 0x00,
        ]);
        bad.push(p);
        for point in bad {
            assert_eq!(
                derive(Role::Initiator, &i, &point, &[0; 16], &PairId([0xc; 16])).unwrap_err(),
                KeyError::NonContributory
            );
        }
    }

    #[test]
    fn commitments_and_fingerprints_differ_and_are_stable() {
        let (i, _) = pair(6);
        let p = i.public();
        assert_ne!(commitment(&p), fingerprint(&p));
        assert_eq!(fingerprint_b64(&p).len(), 43);
        assert_eq!(fingerprint_b64(&p), fingerprint_b64(&p));
    }

    #[test]
    fn fingerprints_round_trip_through_base64url() {
        let (i, _) = pair(7);
        let b64 = fingerprint_b64(&i.public());
        assert_eq!(parse_fingerprint_b64(&b64), Some(fingerprint(&i.public())));
        assert_eq!(parse_fingerprint_b64("not base64!"), None);
        assert_eq!(parse_fingerprint_b64("AAAA"), None);
    }

    #[test]
    fn sas_encoding_uses_the_first_30_bits() {
        assert_eq!(sas_of(&[0, 0, 0, 0]), "AAAAAA");
        assert_eq!(sas_of(&[0xff, 0xff, 0xff, 0xff]), "777777");
        // 0b00001_00010_00011_00100_00101_00110_xx
        let v: u32 = (1 << 27) | (2 << 22) | (3 << 17) | (4 << 12) | (5 << 7) | (6 << 2);
        assert_eq!(sas_of(&v.to_be_bytes()), "BCDEFG");
    }
}

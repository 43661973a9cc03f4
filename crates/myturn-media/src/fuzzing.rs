//! Entry points shared by the fuzz targets (`fuzz/`) and the smoke tests
//! that run the same bodies on the stable toolchain. None may panic.

use std::time::Duration;

use web_time::Instant;

use myturn_rt::fuzzing::Counter;

use crate::codec::{Codec, Decoder};
use crate::frame::{read_audio, read_caps};
use crate::keys::{derive, EphemeralKey, PairId, Role};
use crate::packet::{Inner, Kind, Opener, RtpHeader};
use crate::session::{Config, Session};

/// RTP parsing, the inner header, and opening with real keys.
pub fn packet(data: &[u8]) {
    let _ = RtpHeader::parse(data);
    if let Ok((_, payload)) = RtpHeader::parse(data) {
        let _ = Inner::parse(payload);
    }
    let mut rng = Counter(1);
    let (i, r) = (
        EphemeralKey::generate(&mut rng),
        EphemeralKey::generate(&mut rng),
    );
    if let Ok(k) = derive(
        Role::Responder,
        &r,
        &i.public(),
        &i.nonce(),
        &PairId([0xf0; 16]),
    ) {
        let mut out = Vec::new();
        for kind in [Kind::Audio, Kind::Text, Kind::TextAck] {
            let keys = if kind == Kind::Audio {
                &k.recv_audio
            } else {
                &k.recv_text
            };
            // Nothing unsigned may ever open.
            assert!(Opener::new(kind, keys).open(data, &mut out).is_err());
        }
    }
}

/// Every handshake state fed the same datagrams, split on 0xff bytes.
pub fn handshake(data: &[u8]) {
    let now = Instant::now();
    for role in [Role::Initiator, Role::Responder] {
        let cfg = Config {
            role,
            pair_id: PairId([0xf0; 16]),
            peer_fingerprint: None,
            payload_type: 96,
            opus_payload_type: Some(111),
            ssrc: 1,
            samples_per_frame: 160,
            codecs: vec![Codec::Opus, Codec::Pcm16],
        };
        let mut s = Session::new(cfg, Box::new(Counter(2)), now);
        for (k, part) in data.split(|&b| b == 0xff).enumerate() {
            s.handle_datagram(now + Duration::from_millis(k as u64), part);
            while s.poll_transmit().is_some() {}
            while s.poll_event().is_some() {}
        }
        s.handle_timeout(now + Duration::from_secs(60));
    }
}

/// An authentic peer's audio plaintext: the frame format, the capability
/// list, and the playout's decoders fed what it names.
pub fn audio(data: &[u8]) {
    let _ = read_caps(data);
    if let Ok(p) = read_audio(data) {
        if let Ok(mut d) = Decoder::new(p.codec, 8000) {
            let _ = d.decode(p.primary);
            let _ = d.recover(p.primary);
            for (_, f) in p.redundant {
                let _ = d.decode(f);
            }
        }
    }
    let mut playout = crate::playout::Playout::new(16_000);
    let now = Instant::now();
    for (k, part) in data.chunks(7).enumerate() {
        let codec = if k % 2 == 0 {
            Codec::Opus
        } else {
            Codec::Pcm16
        };
        let seq = u64::from(part.first().copied().unwrap_or(0));
        playout.push(
            now,
            seq,
            seq + k as u64 % 3,
            codec,
            part.to_vec(),
            k % 3 == 0,
        );
        let _ = playout.pop(now + Duration::from_millis(20 * k as u64 + 100));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand_core::RngCore;

    #[test]
    fn fuzz_bodies_survive_mutated_packets() {
        let mut rng = Counter(9);
        let mut seed = vec![
            0x80,
            96,
            0,
            1,
            0,
            0,
            0,
            0,
            0,
            0,
            0,
            1,
            crate::packet::VERSION << 4,
            1,
        ];
        seed.extend_from_slice(&[3; 48]);
        for _ in 0..3000 {
            let mut v = seed.clone();
            for _ in 0..(rng.next_u32() % 6) {
                let pos = rng.next_u32() as usize % (v.len() + 1);
                match rng.next_u32() % 3 {
                    0 if pos < v.len() => v[pos] = rng.next_u32() as u8,
                    1 => v.insert(pos, rng.next_u32() as u8),
                    _ if pos < v.len() => {
                        v.remove(pos);
                    }
                    _ => {}
                }
            }
            packet(&v);
            handshake(&v);
        }
    }

    #[test]
    fn the_audio_body_survives_mutated_plaintexts() {
        let mut rng = Counter(11);
        let mut seed = vec![2, 0, 5, 1, 1, 0, 4, 9, 9, 9, 9];
        seed.extend_from_slice(&[0x48; 60]);
        for _ in 0..500 {
            let mut v = seed.clone();
            for _ in 0..(rng.next_u32() % 6) {
                let pos = rng.next_u32() as usize % v.len();
                v[pos] = rng.next_u32() as u8;
            }
            audio(&v);
        }
    }
}

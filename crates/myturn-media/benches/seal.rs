//! `cargo bench -p myturn-media --bench seal`
//!
//! Seal + open of one 20 ms PCM16 frame (320 bytes at 8 kHz, 640 at
//! 16 kHz), against a reference measured in the same run: SRTP's
//! AES_CM_128_HMAC_SHA1_80 protect (RFC 3711: AES-128 counter mode, then
//! HMAC-SHA1 over header ‖ payload ‖ ROC, 80-bit tag) built from the same
//! RustCrypto primitives, on a 160-byte and a 320-byte payload. Also CPU
//! per call-second: 50 frames sealed and 50 opened.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::hint::black_box;
use std::time::{Duration, Instant};

use aes::cipher::{KeyIvInit, StreamCipher};
use hmac::{Hmac, Mac};
use myturn_media::keys::{derive, EphemeralKey, Role};
use myturn_media::packet::{Kind, Opener, RtpHeader, Sealer};
use rand_core::{OsRng, RngCore};

/// Median ns per call of 15 rounds (myturn-testkit's timing).
fn measure(f: impl FnMut(), iters: u32) -> f64 {
    myturn_testkit::bench::median_ns(f, iters, 15)
}

type Aes128Ctr = ctr::Ctr128BE<aes::Aes128>;

/// SRTP protect, AES_CM_128_HMAC_SHA1_80 (RFC 3711 §4.1.1, §4.2).
struct SrtpRef {
    key: [u8; 16],
    salt: [u8; 14],
    auth: Hmac<sha1::Sha1>,
}

impl SrtpRef {
    fn protect(&self, seq: u16, ssrc: u32, payload: &[u8], out: &mut Vec<u8>) {
        out.clear();
        RtpHeader::new(96, seq, 0, ssrc).write(out);
        let start = out.len();
        out.extend_from_slice(payload);
        // IV = (salt << 16) XOR (SSRC << 64) XOR (index << 16).
        let mut iv = [0u8; 16];
        iv[..14].copy_from_slice(&self.salt);
        for (i, b) in ssrc.to_be_bytes().iter().enumerate() {
            iv[4 + i] ^= b;
        }
        let index = u64::from(seq);
        for (i, b) in index.to_be_bytes()[2..].iter().enumerate() {
            iv[8 + i] ^= b;
        }
        let mut c = Aes128Ctr::new(&self.key.into(), &iv.into());
        c.apply_keystream(&mut out[start..]);
        let mut m = self.auth.clone();
        m.update(out);
        m.update(&0u32.to_be_bytes()); // ROC
        let tag = m.finalize().into_bytes();
        out.extend_from_slice(&tag[..10]);
    }
}

fn main() {
    let mut rng = OsRng;
    let (i, r) = (
        EphemeralKey::generate(&mut rng),
        EphemeralKey::generate(&mut rng),
    );
    let ki = derive(
        Role::Initiator,
        &i,
        &r.public(),
        &r.nonce(),
        &myturn_media::keys::PairId([0xbe; 16]),
    )
    .unwrap();
    let kr = derive(
        Role::Responder,
        &r,
        &i.public(),
        &i.nonce(),
        &myturn_media::keys::PairId([0xbe; 16]),
    )
    .unwrap();
    let mut srtp = SrtpRef {
        key: [0; 16],
        salt: [0; 14],
        auth: <Hmac<sha1::Sha1> as Mac>::new_from_slice(&[7; 20]).unwrap(),
    };
    rng.fill_bytes(&mut srtp.key);
    rng.fill_bytes(&mut srtp.salt);

    println!("seal + open per frame, median of 15 rounds (ns)");
    let mut buf = Vec::with_capacity(2048);
    let mut out = Vec::with_capacity(2048);
    let mut results = Vec::new();
    for (label, len) in [("srtp-ref 160 B", 160usize), ("srtp-ref 320 B", 320)] {
        let payload = vec![0x5a; len];
        let mut seq = 0u16;
        let ns = measure(
            || {
                seq = seq.wrapping_add(1);
                srtp.protect(seq, 0x1234, black_box(&payload), &mut buf);
                black_box(&buf);
            },
            20_000,
        );
        println!("  reference {label} protect only: {ns:.0}");
        results.push((label, ns));
    }
    // Opus at 24 kbit/s: a 60-byte frame, 64 with the audio header; 127
    // with one redundant copy (issue #25's plaintext, docs/protocol.md).
    for (label, len) in [
        ("8 kHz 320 B", 320usize),
        ("16 kHz 640 B", 640),
        ("Opus 24k 64 B", 64),
        ("Opus 24k + 1 copy 127 B", 127),
    ] {
        let frame = vec![0x33u8; len];
        let mut tx = Sealer::new(Kind::Audio, &ki.send_audio);
        let seal_ns = measure(
            || {
                buf.clear();
                let mut iv = [0u8; 16];
                OsRng.fill_bytes(&mut iv);
                tx.seal(RtpHeader::new(96, 1, 2, 3), black_box(&frame), iv, &mut buf);
                black_box(&buf);
            },
            20_000,
        );
        // The same with IVs from a ChaCha CSPRNG seeded from the OS once
        // (what rand's StdRng is), instead of one getrandom call per IV.
        let mut chacha = <rand::rngs::StdRng as rand::SeedableRng>::from_entropy();
        let mut tx = Sealer::new(Kind::Audio, &ki.send_audio);
        let seal_csprng_ns = measure(
            || {
                buf.clear();
                let mut iv = [0u8; 16];
                chacha.fill_bytes(&mut iv);
                tx.seal(RtpHeader::new(96, 1, 2, 3), black_box(&frame), iv, &mut buf);
                black_box(&buf);
            },
            20_000,
        );
        // Open needs fresh packets (the replay window refuses repeats):
        // seal a batch first, then time opening it.
        let mut tx = Sealer::new(Kind::Audio, &ki.send_audio);
        let pkts: Vec<Vec<u8>> = (0..20_000)
            .map(|_| {
                let mut p = Vec::new();
                tx.seal(RtpHeader::new(96, 1, 2, 3), &frame, [1; 16], &mut p);
                p
            })
            .collect();
        let mut rx = Opener::new(Kind::Audio, &kr.recv_audio);
        let t = Instant::now();
        for p in &pkts {
            rx.open(black_box(p), &mut out).unwrap();
        }
        let open_ns = t.elapsed().as_nanos() as f64 / pkts.len() as f64;
        println!(
            "  myTurn {label}: seal {seal_ns:.0} (IV from getrandom), {seal_csprng_ns:.0} (IV from OS-seeded ChaCha); open {open_ns:.0}; seal+open {:.0} / {:.0}",
            seal_ns + open_ns,
            seal_csprng_ns + open_ns
        );
        results.push((label, seal_ns + open_ns));
        results.push((label, seal_csprng_ns + open_ns));
    }
    let (r160, r320, m320, m320c) = (results[0].1, results[1].1, results[2].1, results[3].1);
    println!(
        "ratio seal+open 320 B / SRTP-reference protect 320 B: {:.2}x (getrandom IV), {:.2}x (ChaCha IV); / reference 160 B: {:.2}x, {:.2}x",
        m320 / r320,
        m320c / r320,
        m320 / r160,
        m320c / r160
    );
    // CPU per call-second at 8 kHz: 50 frames sealed and 50 opened.
    let per_call_second = Duration::from_nanos((50.0 * m320) as u64);
    println!(
        "CPU per call-second (8 kHz, both directions of one client): {:.1} µs = {:.4}% of a core",
        per_call_second.as_secs_f64() * 1e6,
        per_call_second.as_secs_f64() * 100.0
    );
}

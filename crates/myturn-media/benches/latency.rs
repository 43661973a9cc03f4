//! `cargo bench -p myturn-media --bench latency`
//!
//! Latency the client adds, mouth to ear, on loopback: a frame is stamped
//! when "captured" (a 20 ms capture clock), sealed, sent over real UDP,
//! opened, put in the jitter buffer and played by a 20 ms playout clock.
//! Device buffers are not included (no sound card here). The reference,
//! measured in the same run, is capture → arrival (network and crypto
//! only), so the jitter buffer's share is visible.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::time::{Duration, Instant};

use myturn_media::driver::start;
use myturn_media::jitter::{JitterBuffer, Slot};
use myturn_media::keys::Role;
use myturn_media::session::{Config, Event};
use rand_core::OsRng;
use tokio::net::UdpSocket;

fn cfg(role: Role) -> Config {
    Config {
        role,
        pair_id: myturn_media::keys::PairId([0x1a; 16]),
        peer_fingerprint: None,
        payload_type: 96,
        opus_payload_type: None,
        ssrc: 1,
        samples_per_frame: 160,
        codecs: vec![myturn_media::codec::Codec::Pcm16],
    }
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    v.sort_by(f64::total_cmp);
    v[((v.len() - 1) as f64 * p).round() as usize]
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let frames: u64 = std::env::var("MYTURN_BENCH_FRAMES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(500);
    let (sa, sb) = (
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    );
    let (aa, ab) = (sa.local_addr().unwrap(), sb.local_addr().unwrap());
    let a = start(sa, ab, cfg(Role::Initiator), Box::new(OsRng)).unwrap();
    let mut b = start(sb, aa, cfg(Role::Responder), Box::new(OsRng)).unwrap();
    loop {
        if let Some(Event::Established { .. }) = b.events.recv().await {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let mut captured: HashMap<u64, Instant> = HashMap::new();
    let mut arrival_ms = Vec::new();
    let mut m2e_ms = Vec::new();
    let mut jb = JitterBuffer::new();
    let mut capture = tokio::time::interval(Duration::from_millis(20));
    // The playout clock runs on its own phase, as a sound card's would.
    let mut playout = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_millis(7),
        Duration::from_millis(20),
    );
    let mut n = 0u64;
    let end = Instant::now() + Duration::from_millis(frames * 20 + 500);
    while Instant::now() < end {
        tokio::select! {
            _ = capture.tick(), if n < frames => {
                let mut pcm = vec![0u8; 320];
                pcm[..8].copy_from_slice(&n.to_le_bytes());
                captured.insert(n, Instant::now());
                a.send_audio(pcm).await.unwrap();
                n += 1;
            }
            ev = b.events.recv() => {
                if let Some(Event::Audio { seq, frame, codec, data: pcm, .. }) = ev {
                    let now = Instant::now();
                    if let Some(t) = captured.get(&seq) {
                        arrival_ms.push((now - *t).as_secs_f64() * 1e3);
                    }
                    jb.push(now, seq, frame, codec, pcm);
                }
            }
            _ = playout.tick() => {
                let now = Instant::now();
                if let Slot::Frame(_, f) = jb.pop(now) {
                    let id = u64::from_le_bytes(f.data[..8].try_into().unwrap());
                    if let Some(t) = captured.remove(&id) {
                        m2e_ms.push((now - t).as_secs_f64() * 1e3);
                    }
                }
            }
        }
    }
    let s = jb.stats().clone();
    let (a50, a99) = (pct(&mut arrival_ms, 0.5), pct(&mut arrival_ms, 0.99));
    let (m50, m99) = (pct(&mut m2e_ms, 0.5), pct(&mut m2e_ms, 0.99));
    println!(
        "frames {frames}, played {} (missing {}, lost {})",
        m2e_ms.len(),
        s.missing,
        s.lost
    );
    println!("reference capture → arrival (network + crypto): p50 {a50:.2} ms, p99 {a99:.2} ms");
    println!("capture → playout (mouth to ear, client-added): p50 {m50:.2} ms, p99 {m99:.2} ms");
    println!(
        "jitter buffer target at the end: {:.1} ms, measured jitter {:.2} ms",
        s.target_ms, s.jitter_ms
    );
}

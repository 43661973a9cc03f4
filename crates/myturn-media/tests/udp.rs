//! Two media endpoints over real UDP on loopback, directly and through a
//! lossy, reordering relay run by the test.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use myturn_media::driver::{start, MediaHandle};
use myturn_media::keys::Role;
use myturn_media::session::{Config, Event};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::net::UdpSocket;

fn cfg(role: Role, fp: Option<[u8; 32]>) -> Config {
    Config {
        role,
        pair_id: myturn_media::keys::PairId([0x0d; 16]),
        peer_fingerprint: fp,
        payload_type: 96,
        opus_payload_type: None,
        ssrc: 7,
        samples_per_frame: 160,
        codecs: vec![myturn_media::codec::Codec::Pcm16],
    }
}

async fn endpoint(role: Role, peer: SocketAddr, sock: UdpSocket, seed: u64) -> MediaHandle {
    start(
        sock,
        peer,
        cfg(role, None),
        Box::new(StdRng::seed_from_u64(seed)),
    )
    .unwrap()
}

async fn wait_established(h: &mut MediaHandle) -> String {
    loop {
        match tokio::time::timeout(Duration::from_secs(10), h.events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Event::Established { sas, .. } => return sas,
            Event::Failed(f) => panic!("{f}"),
            _ => {}
        }
    }
}

fn frame(side: u8, n: u32) -> Vec<u8> {
    (0..160u32)
        .flat_map(|k| ((n * 160 + k) as i16 ^ i16::from(side) << 12).to_le_bytes())
        .collect()
}

#[tokio::test]
async fn five_seconds_of_audio_arrive_bit_exact_over_loopback() {
    let (sa, sb) = (
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    );
    let (aa, ab) = (sa.local_addr().unwrap(), sb.local_addr().unwrap());
    let mut a = endpoint(Role::Initiator, ab, sa, 1).await;
    let mut b = endpoint(Role::Responder, aa, sb, 2).await;
    let (x, y) = tokio::join!(wait_established(&mut a), wait_established(&mut b));
    assert_eq!(x, y);
    // 250 frames of 20 ms each way, paced at 2 ms (content, not timing, is
    // under test here).
    for n in 0..250 {
        a.send_audio(frame(1, n)).await.unwrap();
        b.send_audio(frame(2, n)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    for (rx, side) in [(&mut b, 1u8), (&mut a, 2u8)] {
        let mut n = 0u32;
        while n < 250 {
            match tokio::time::timeout(Duration::from_secs(5), rx.events.recv())
                .await
                .unwrap()
                .unwrap()
            {
                Event::Audio { seq, data: pcm, .. } => {
                    assert_eq!(seq, u64::from(n));
                    assert_eq!(pcm, frame(side, n), "frame {n}");
                    n += 1;
                }
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(a.stats().session.audio_received, 250);
    assert!(a.stats().session.dropped.is_empty());
}

/// A UDP relay between two endpoints that loses and reorders packets and
/// counts the audio packets it forwarded each way.
async fn relay(
    loss: f64,
    seed: u64,
    a: SocketAddr,
    b: SocketAddr,
) -> (SocketAddr, SocketAddr, Arc<[AtomicU64; 2]>) {
    let (ra, rb) = (
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    );
    let addrs = (ra.local_addr().unwrap(), rb.local_addr().unwrap());
    let counts: Arc<[AtomicU64; 2]> = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
    let c = counts.clone();
    let (ra, rb) = (Arc::new(ra), Arc::new(rb));
    for (dir, (from, to, dest)) in [
        (0usize, (ra.clone(), rb.clone(), b)),
        (1, (rb.clone(), ra.clone(), a)),
    ] {
        let c = c.clone();
        tokio::spawn(async move {
            let mut rng = StdRng::seed_from_u64(seed + dir as u64);
            let mut buf = [0u8; 2048];
            loop {
                let Ok((n, _)) = from.recv_from(&mut buf).await else {
                    return;
                };
                let pkt = buf[..n].to_vec();
                if rng.gen::<f64>() < loss {
                    continue;
                }
                if pkt.get(12) == Some(&((myturn_media::packet::VERSION << 4) | 1)) {
                    c[dir].fetch_add(1, Ordering::Relaxed);
                }
                // Reorder: hold some packets back a little.
                let delay = if rng.gen::<f64>() < 0.2 {
                    rng.gen_range(1..30)
                } else {
                    0
                };
                let to = to.clone();
                tokio::spawn(async move {
                    tokio::time::sleep(Duration::from_millis(delay)).await;
                    let _ = to.send_to(&pkt, dest).await;
                });
            }
        });
    }
    (addrs.0, addrs.1, counts)
}

#[tokio::test]
async fn through_a_lossy_reordering_relay_text_arrives_once_in_order() {
    let (sa, sb) = (
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    );
    let (aa, ab) = (sa.local_addr().unwrap(), sb.local_addr().unwrap());
    // a talks to the relay's first port, b to its second.
    let (r_for_a, r_for_b, forwarded) = relay(0.10, 9, aa, ab).await;
    let mut a = endpoint(Role::Initiator, r_for_a, sa, 3).await;
    let mut b = endpoint(Role::Responder, r_for_b, sb, 4).await;
    let (x, y) = tokio::join!(wait_established(&mut a), wait_established(&mut b));
    assert_eq!(x, y);
    let msgs: Vec<String> = (0..100).map(|i| format!("line {i} ✓")).collect();
    for (n, m) in msgs.iter().enumerate() {
        a.send_text(m.clone()).await.unwrap();
        a.send_audio(frame(1, n as u32)).await.unwrap();
        tokio::time::sleep(Duration::from_millis(3)).await;
    }
    let mut got = Vec::new();
    let mut audio = 0u64;
    while got.len() < msgs.len() {
        match tokio::time::timeout(Duration::from_secs(10), b.events.recv())
            .await
            .unwrap()
            .unwrap()
        {
            Event::Text(t) => got.push(t),
            // Copies of earlier frames (redundancy, on once the partner
            // reports this loss) ride inside forwarded packets: not counted.
            Event::Audio {
                redundant: false, ..
            } => audio += 1,
            Event::Audio { .. } => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(got, msgs);
    // Let stragglers land, then compare with what the relay did.
    tokio::time::sleep(Duration::from_millis(200)).await;
    while let Ok(ev) = b.events.try_recv() {
        if matches!(
            ev,
            Event::Audio {
                redundant: false,
                ..
            }
        ) {
            audio += 1;
        }
    }
    let relayed = forwarded[0].load(Ordering::Relaxed);
    assert_eq!(
        audio, relayed,
        "every forwarded frame arrived once, none other"
    );
    assert_eq!(b.stats().session.audio_received, relayed);
    assert!(relayed < 100, "10% loss must have cost frames");
    assert!(a.stats().session.text_retransmits > 0);
}

#[tokio::test]
async fn mute_stops_sending_the_microphone() {
    let (sa, sb) = (
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    );
    let (aa, ab) = (sa.local_addr().unwrap(), sb.local_addr().unwrap());
    let mut a = endpoint(Role::Initiator, ab, sa, 7).await;
    let mut b = endpoint(Role::Responder, aa, sb, 8).await;
    tokio::join!(wait_established(&mut a), wait_established(&mut b));
    a.set_muted(true).await.unwrap();
    for n in 0..10 {
        a.send_audio(frame(1, n)).await.unwrap();
    }
    a.set_muted(false).await.unwrap();
    a.send_audio(frame(1, 99)).await.unwrap();
    match tokio::time::timeout(Duration::from_secs(5), b.events.recv())
        .await
        .unwrap()
        .unwrap()
    {
        // The first frame heard is the one after unmuting, as seq 0.
        Event::Audio { seq, data, .. } => assert_eq!((seq, data), (0, frame(1, 99))),
        other => panic!("unexpected {other:?}"),
    }
    assert_eq!(a.stats().muted_frames, 10);
    assert_eq!(a.stats().session.audio_sent, 1);
}

#[tokio::test]
async fn datagrams_from_strangers_are_dropped_and_counted() {
    let (sa, sb) = (
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
        UdpSocket::bind("127.0.0.1:0").await.unwrap(),
    );
    let (aa, ab) = (sa.local_addr().unwrap(), sb.local_addr().unwrap());
    let mut a = endpoint(Role::Initiator, ab, sa, 5).await;
    let mut b = endpoint(Role::Responder, aa, sb, 6).await;
    tokio::join!(wait_established(&mut a), wait_established(&mut b));
    let stranger = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    for _ in 0..10 {
        stranger
            .send_to(
                &[
                    0x80,
                    96,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    0,
                    (myturn_media::packet::VERSION << 4) | 1,
                ],
                ab,
            )
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(b.stats().foreign, 10);
}

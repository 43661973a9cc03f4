//! Two sans-IO sessions over a simulated link (loss, reordering, delay,
//! tampering), stepped through simulated time.

// The Opus tests need the `opus` feature (libopus); without it, the
// helpers only they use sit idle.
#![cfg_attr(not(feature = "opus"), allow(unused_imports, dead_code))]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use myturn_media::codec::{to_bytes, to_samples, Codec, Decoder};
use myturn_media::keys::{PairId, Role};
use myturn_media::packet::RtpHeader;
use myturn_media::session::{Config, Event, Failure, SendError, Session, HS_TIMEOUT};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn session(role: Role, seed: u64, peer_fp: Option<[u8; 32]>, now: Instant) -> Session {
    session_with(role, seed, peer_fp, now, &[Codec::Pcm16])
}

fn session_with(
    role: Role,
    seed: u64,
    peer_fp: Option<[u8; 32]>,
    now: Instant,
    codecs: &[Codec],
) -> Session {
    Session::new(
        Config {
            role,
            pair_id: PairId([0x5e; 16]),
            peer_fingerprint: peer_fp,
            payload_type: 96,
            opus_payload_type: Some(111),
            ssrc: seed as u32,
            samples_per_frame: 160,
            codecs: codecs.to_vec(),
        },
        Box::new(StdRng::seed_from_u64(seed)),
        now,
    )
}

/// Edits a packet in flight; `false` drops it.
type Tamper = Box<dyn FnMut(&mut Vec<u8>) -> bool>;

/// A datagram link between side 0 and side 1.
struct Link {
    rng: StdRng,
    loss: f64,
    /// Extra random delay up to this, which reorders packets.
    jitter: Duration,
    delay: Duration,
    in_flight: Vec<(Instant, usize, Vec<u8>)>,
    /// Applied to every packet in flight (tampering relays).
    tamper: Option<Tamper>,
    delivered: u64,
    lost: u64,
}

impl Link {
    fn new(seed: u64, loss: f64, jitter_ms: u64) -> Self {
        Link {
            rng: StdRng::seed_from_u64(seed),
            loss,
            jitter: Duration::from_millis(jitter_ms),
            delay: Duration::from_millis(10),
            in_flight: Vec::new(),
            tamper: None,
            delivered: 0,
            lost: 0,
        }
    }

    fn send(&mut self, now: Instant, to: usize, mut pkt: Vec<u8>) {
        if self.rng.gen::<f64>() < self.loss {
            self.lost += 1;
            return;
        }
        if let Some(t) = &mut self.tamper {
            if !t(&mut pkt) {
                return;
            }
        }
        let extra = if self.jitter.is_zero() {
            Duration::ZERO
        } else {
            self.jitter.mul_f64(self.rng.gen())
        };
        self.in_flight.push((now + self.delay + extra, to, pkt));
    }
}

/// Runs both sessions until `until`, calling `each_ms` every simulated
/// millisecond (to send media).
fn run(
    s: &mut [Session; 2],
    link: &mut Link,
    now: &mut Instant,
    span: Duration,
    mut each_ms: impl FnMut(&mut [Session; 2], Instant),
) {
    let until = *now + span;
    let mut next_tick = *now;
    while *now < until {
        for (i, sess) in s.iter_mut().enumerate() {
            while let Some(p) = sess.poll_transmit() {
                link.send(*now, 1 - i, p);
            }
        }
        let mut next = until.min(next_tick);
        for sess in s.iter() {
            if let Some(t) = sess.poll_timeout() {
                next = next.min(t);
            }
        }
        if let Some(t) = link.in_flight.iter().map(|x| x.0).min() {
            next = next.min(t);
        }
        *now = next.max(*now);
        let due: Vec<(usize, Vec<u8>)> = {
            let (d, rest): (Vec<_>, Vec<_>) = link.in_flight.drain(..).partition(|x| x.0 <= *now);
            link.in_flight = rest;
            d.into_iter().map(|(_, to, p)| (to, p)).collect()
        };
        for (to, p) in due {
            link.delivered += 1;
            s[to].handle_datagram(*now, &p);
        }
        for sess in s.iter_mut() {
            if sess.poll_timeout().is_some_and(|t| t <= *now) {
                sess.handle_timeout(*now);
            }
        }
        if *now >= next_tick {
            each_ms(s, *now);
            next_tick = *now + Duration::from_millis(1);
        }
        if *now >= until {
            break;
        }
    }
}

/// Runs both sessions for `span` with nothing to send but what they
/// produce themselves.
fn settle(s: &mut [Session; 2], link: &mut Link, now: &mut Instant, span: Duration) {
    run(s, link, now, span, |_, _| {});
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn established(ev: &[Event]) -> Option<String> {
    ev.iter().find_map(|e| match e {
        Event::Established { sas, .. } => Some(sas.clone()),
        _ => None,
    })
}

fn pair(seed: u64, now: Instant) -> [Session; 2] {
    let i = session(Role::Initiator, seed, None, now);
    let r = session(Role::Responder, seed + 1, None, now);
    // SDP carries each side's fingerprint to the other.
    let (fi, fr) = (i.local_fingerprint(), r.local_fingerprint());
    [
        session(Role::Initiator, seed, Some(fr), now),
        session(Role::Responder, seed + 1, Some(fi), now),
    ]
}

#[test]
fn handshake_without_loss_agrees_on_the_sas() {
    let mut now = Instant::now();
    let mut s = pair(1, now);
    let mut link = Link::new(1, 0.0, 0);
    assert_eq!(s[0].send_audio(&[0; 320]), Err(SendError::NotEstablished));
    settle(&mut s, &mut link, &mut now, Duration::from_secs(1));
    let (e0, e1) = (events(&mut s[0]), events(&mut s[1]));
    let (a, b) = (
        established(&e0).expect("initiator"),
        established(&e1).expect("responder"),
    );
    assert_eq!(a, b);
    assert_eq!(a.len(), 6);
    assert_eq!(
        s[0].stats().handshake_retransmits + s[1].stats().handshake_retransmits,
        0
    );
    // The responder's Hello (which opens its NAT) and the five handshake
    // messages crossed the link, and nothing else.
    assert_eq!(link.delivered, 6);
}

#[test]
fn handshake_survives_heavy_loss_and_reordering() {
    for seed in 0..40 {
        let mut now = Instant::now();
        let mut s = pair(100 + seed, now);
        let mut link = Link::new(seed, 0.3, 30);
        settle(&mut s, &mut link, &mut now, Duration::from_secs(9));
        let (e0, e1) = (events(&mut s[0]), events(&mut s[1]));
        let a = established(&e0).unwrap_or_else(|| panic!("seed {seed}: initiator {e0:?}"));
        let b = established(&e1).unwrap_or_else(|| panic!("seed {seed}: responder {e1:?}"));
        assert_eq!(a, b);
    }
}

#[test]
fn a_silent_peer_times_out_with_a_clear_error() {
    let mut now = Instant::now();
    let mut s = pair(2, now);
    let mut link = Link::new(2, 1.0, 0);
    settle(
        &mut s,
        &mut link,
        &mut now,
        HS_TIMEOUT + Duration::from_secs(1),
    );
    for side in s.iter_mut() {
        assert!(events(side).contains(&Event::Failed(Failure::Timeout)));
        assert_eq!(side.send_audio(&[0; 320]), Err(SendError::Failed));
    }
    // Retransmissions backed off: far fewer than one per 100 ms.
    assert!(
        s[0].stats().handshake_retransmits < 20,
        "{:?}",
        s[0].stats()
    );
}

#[test]
fn five_seconds_of_audio_arrive_bit_exact() {
    let mut now = Instant::now();
    let mut s = pair(3, now);
    let mut link = Link::new(3, 0.0, 0);
    settle(&mut s, &mut link, &mut now, Duration::from_millis(500));
    assert!(s[0].is_established() && s[1].is_established());
    events(&mut s[0]);
    events(&mut s[1]);
    let frame = |side: usize, n: u64| -> Vec<u8> {
        (0..160u64)
            .flat_map(|k| (((n * 160 + k) as i16).wrapping_mul(7 + side as i16)).to_le_bytes())
            .collect()
    };
    let mut sent = [0u64; 2];
    let start = now;
    run(
        &mut s,
        &mut link,
        &mut now,
        Duration::from_millis(5000),
        |s, t| {
            // One 20 ms frame per side, 250 each.
            let due = ((t - start).as_millis() / 20) as u64;
            for side in 0..2 {
                while sent[side] < due.min(250) {
                    s[side].send_audio(&frame(side, sent[side])).unwrap();
                    sent[side] += 1;
                }
            }
        },
    );
    settle(&mut s, &mut link, &mut now, Duration::from_millis(100));
    for side in 0..2 {
        let got: Vec<(u64, Vec<u8>)> = events(&mut s[1 - side])
            .into_iter()
            .filter_map(|e| match e {
                Event::Audio {
                    seq,
                    frame,
                    codec: Codec::Pcm16,
                    data,
                    redundant: false,
                } => {
                    assert_eq!(seq, frame, "PCM16 sends every frame");
                    Some((seq, data))
                }
                _ => None,
            })
            .collect();
        assert_eq!(got.len(), 250);
        for (n, (seq, pcm)) in got.iter().enumerate() {
            assert_eq!(*seq, n as u64);
            assert_eq!(*pcm, frame(side, n as u64), "frame {n} from side {side}");
        }
    }
    assert!(s[0].stats().dropped.is_empty() && s[1].stats().dropped.is_empty());
}

#[test]
fn text_arrives_once_and_in_order_over_a_lossy_reordering_link() {
    let mut now = Instant::now();
    let mut s = pair(4, now);
    let mut link = Link::new(4, 0.1, 40);
    settle(&mut s, &mut link, &mut now, Duration::from_secs(3));
    assert!(
        s[0].is_established() && s[1].is_established(),
        "{:?}",
        events(&mut s[0])
    );
    events(&mut s[0]);
    events(&mut s[1]);
    let msgs: Vec<String> = (0..200)
        .map(|i| format!("message {i}: zażółć gęślą jaźń"))
        .collect();
    let mut next = 0;
    let start = now;
    run(
        &mut s,
        &mut link,
        &mut now,
        Duration::from_secs(20),
        |s, t| {
            // Two messages every 10 ms while the window has room.
            while next < msgs.len() && next < ((t - start).as_millis() / 5) as usize {
                match s[0].send_text(t, &msgs[next]) {
                    Ok(()) => next += 1,
                    Err(SendError::TextBacklog) => break,
                    Err(e) => panic!("{e}"),
                }
            }
        },
    );
    assert_eq!(next, msgs.len());
    let got: Vec<String> = events(&mut s[1])
        .into_iter()
        .filter_map(|e| match e {
            Event::Text(t) => Some(t),
            _ => None,
        })
        .collect();
    assert_eq!(got, msgs);
    assert!(
        s[0].stats().text_retransmits > 0,
        "10% loss must have cost retransmissions"
    );
    assert!(link.lost > 0);
}

#[test]
fn tampered_replayed_and_truncated_packets_are_counted_never_delivered() {
    let mut now = Instant::now();
    let mut s = pair(5, now);
    let mut link = Link::new(5, 0.0, 0);
    settle(&mut s, &mut link, &mut now, Duration::from_millis(300));
    events(&mut s[1]);
    // A relay that flips a ciphertext bit in every 3rd media packet,
    // duplicates every 5th and truncates every 7th.
    let mut n = 0u32;
    link.tamper = Some(Box::new(move |p: &mut Vec<u8>| {
        n += 1;
        if n % 3 == 0 && p.len() > 50 {
            p[45] ^= 0x04;
        } else if n % 7 == 0 {
            p.truncate(p.len() - 5);
        }
        true
    }));
    for i in 0..60u8 {
        s[0].send_audio(&[i; 320]).unwrap();
    }
    // Replays: send every packet twice.
    let pkts: Vec<Vec<u8>> = std::iter::from_fn(|| s[0].poll_transmit()).collect();
    for p in &pkts {
        link.send(now, 1, p.clone());
    }
    link.tamper = None;
    for p in &pkts {
        link.send(now, 1, p.clone());
    }
    settle(&mut s, &mut link, &mut now, Duration::from_millis(100));
    let audio: Vec<Vec<u8>> = events(&mut s[1])
        .into_iter()
        .filter_map(|e| match e {
            Event::Audio { data, .. } => Some(data),
            _ => None,
        })
        .collect();
    // Every frame arrives exactly once (the clean copies), intact.
    assert_eq!(audio.len(), 60);
    for (i, pcm) in audio.iter().enumerate() {
        assert!(pcm.iter().all(|&b| b == pcm[0]), "frame {i} corrupted");
    }
    let d = &s[1].stats().dropped;
    assert_eq!(d.get("bad_tag").copied().unwrap_or(0), 20, "{d:?}");
    assert!(d.get("truncated").copied().unwrap_or(0) >= 5, "{d:?}");
    assert!(d.get("replayed").copied().unwrap_or(0) >= 30, "{d:?}");
}

/// A man in the middle runs one handshake with each side and relays.
fn mitm(alice_knows_bob: bool) -> (Vec<Event>, Vec<Event>) {
    let mut now = Instant::now();
    let bob_probe = session(Role::Responder, 11, None, now);
    let bob_fp = bob_probe.local_fingerprint();
    let mut alice = session(Role::Initiator, 10, alice_knows_bob.then_some(bob_fp), now);
    let mut bob = session(Role::Responder, 11, None, now);
    let mut m_to_alice = session(Role::Responder, 20, None, now);
    let mut m_to_bob = session(Role::Initiator, 21, None, now);
    let until = now + Duration::from_secs(2);
    while now < until {
        let mut moved = false;
        while let Some(p) = alice.poll_transmit() {
            m_to_alice.handle_datagram(now, &p);
            moved = true;
        }
        while let Some(p) = m_to_alice.poll_transmit() {
            alice.handle_datagram(now, &p);
            moved = true;
        }
        while let Some(p) = m_to_bob.poll_transmit() {
            bob.handle_datagram(now, &p);
            moved = true;
        }
        while let Some(p) = bob.poll_transmit() {
            m_to_bob.handle_datagram(now, &p);
            moved = true;
        }
        if !moved {
            now += Duration::from_millis(10);
            for s in [&mut alice, &mut bob, &mut m_to_alice, &mut m_to_bob] {
                if s.poll_timeout().is_some_and(|t| t <= now) {
                    s.handle_timeout(now);
                }
            }
        }
    }
    (events(&mut alice), events(&mut bob))
}

#[test]
fn a_man_in_the_middle_shows_as_different_sas() {
    let (a, b) = mitm(false);
    let (sa, sb) = (established(&a).unwrap(), established(&b).unwrap());
    assert_ne!(sa, sb, "the users would read out different strings");
}

#[test]
fn a_swapped_key_fails_the_sdp_fingerprint_check() {
    let (a, _) = mitm(true);
    assert!(established(&a).is_none());
    assert!(
        a.contains(&Event::Failed(Failure::FingerprintMismatch)),
        "{a:?}"
    );
}

#[test]
fn keys_announced_through_the_pairing_server_are_checked() {
    // Each client makes its key when it goes ready and sends the
    // fingerprint; the server hands each the other's in `paired`.
    use myturn_media::keys::{fingerprint_b64, parse_fingerprint_b64, EphemeralKey};
    let mut now = Instant::now();
    let mut rng = StdRng::seed_from_u64(60);
    let (ka, kb) = (
        EphemeralKey::generate(&mut rng),
        EphemeralKey::generate(&mut rng),
    );
    let (fa, fb) = (fingerprint_b64(&ka.public()), fingerprint_b64(&kb.public()));
    let cfg = |role, peer: &str| Config {
        role,
        pair_id: PairId([0xc; 16]),
        peer_fingerprint: parse_fingerprint_b64(peer),
        payload_type: 96,
        opus_payload_type: None,
        ssrc: 1,
        samples_per_frame: 160,
        codecs: vec![Codec::Pcm16],
    };
    let a = Session::with_key(
        cfg(Role::Initiator, &fb),
        ka,
        Box::new(StdRng::seed_from_u64(61)),
        now,
    );
    // The session runs on the announced key.
    assert_eq!(Some(a.local_fingerprint()), parse_fingerprint_b64(&fa));
    let b = Session::with_key(
        cfg(Role::Responder, &fa),
        kb,
        Box::new(StdRng::seed_from_u64(62)),
        now,
    );
    let mut s = [a, b];
    let mut link = Link::new(6, 0.0, 0);
    settle(&mut s, &mut link, &mut now, Duration::from_secs(1));
    assert!(s[0].is_established() && s[1].is_established());
}

#[test]
fn a_low_order_point_is_refused() {
    let now = Instant::now();
    let mut alice = session(Role::Initiator, 30, None, now);
    let _commit = alice.poll_transmit().unwrap();
    // DHPart1 with the all-zero public key.
    let mut p = vec![0x80, 96, 0, 1, 0, 0, 0, 0, 0, 0, 0, 9];
    p.extend_from_slice(&[myturn_media::packet::VERSION << 4, 2]);
    p.extend_from_slice(&[7; 16]);
    p.extend_from_slice(&[0; 32]);
    alice.handle_datagram(now, &p);
    let ev = events(&mut alice);
    assert!(
        ev.iter()
            .any(|e| matches!(e, Event::Failed(Failure::Key(_)))),
        "{ev:?}"
    );
    assert_eq!(alice.send_audio(&[0; 320]), Err(SendError::Failed));
    assert!(
        alice.poll_transmit().is_none(),
        "nothing goes out after a failure"
    );
}

#[test]
fn a_revealed_key_that_breaks_the_commitment_is_refused() {
    let now = Instant::now();
    let mut bob = session(Role::Responder, 40, None, now);
    let mut alice = session(Role::Initiator, 41, None, now);
    let commit = alice.poll_transmit().unwrap();
    bob.handle_datagram(now, &commit);
    let _dh1 = bob.poll_transmit().unwrap();
    // Someone else's DHPart2.
    let mut p = vec![
        0x80,
        96,
        0,
        2,
        0,
        0,
        0,
        0,
        0,
        0,
        0,
        9,
        myturn_media::packet::VERSION << 4,
        3,
    ];
    p.extend_from_slice(&[9; 32]);
    bob.handle_datagram(now, &p);
    assert!(events(&mut bob).contains(&Event::Failed(Failure::CommitMismatch)));
}

#[test]
fn garbage_datagrams_never_panic_and_are_counted() {
    let now = Instant::now();
    let mut s = pair(50, now);
    let mut rng = StdRng::seed_from_u64(50);
    for len in 0..300 {
        let mut v = vec![0u8; len];
        rng.fill(&mut v[..]);
        if len > 12 {
            v[0] = 0x80;
            v[12] = (myturn_media::packet::VERSION << 4) | (v[12] & 0x03);
        }
        s[0].handle_datagram(now, &v);
        s[1].handle_datagram(now, &v);
    }
    let dropped: u64 = s[1].stats().dropped.values().sum();
    assert!(dropped > 250, "{:?}", s[1].stats());
}

#[test]
fn silent_but_alive_peers_keep_each_other_up_with_keepalives() {
    // Both muted for 30 s of simulated time, on a link losing 20 %: the
    // sealed keep-alives (one a second) keep both sessions up.
    let mut now = Instant::now();
    let mut s = pair(60, now);
    let mut link = Link::new(60, 0.2, 5);
    settle(&mut s, &mut link, &mut now, Duration::from_secs(2));
    assert!(established(&events(&mut s[0])).is_some());
    assert!(established(&events(&mut s[1])).is_some());
    settle(&mut s, &mut link, &mut now, Duration::from_secs(30));
    for side in &mut s {
        let ev = events(side);
        assert!(
            !ev.iter().any(|e| matches!(e, Event::Failed(_))),
            "a muted peer is not a dead one: {ev:?}"
        );
        let sent = side.stats().keepalives_sent;
        assert!(
            (29..=32).contains(&sent),
            "one keep-alive a second, sent {sent}"
        );
    }
    assert_eq!(s[0].send_audio(&[1; 320]), Ok(()));
}

#[test]
fn a_vanished_peer_is_declared_gone_after_the_peer_timeout() {
    let mut now = Instant::now();
    let mut s = pair(61, now);
    let mut link = Link::new(61, 0.0, 0);
    s[0].set_peer_timeout(Duration::from_secs(3));
    settle(&mut s, &mut link, &mut now, Duration::from_secs(1));
    events(&mut s[0]);
    // The responder's network vanishes: everything it sends is lost.
    let gone = now;
    link.tamper = Some(Box::new(|_| false));
    let mut failed_at = None;
    for _ in 0..100 {
        settle(&mut s, &mut link, &mut now, Duration::from_millis(100));
        if events(&mut s[0])
            .iter()
            .any(|e| matches!(e, Event::Failed(Failure::PeerSilent(_))))
        {
            failed_at = Some(now);
            break;
        }
    }
    let after = failed_at.expect("the survivor learns the peer is gone") - gone;
    assert!(
        after >= Duration::from_secs(2) && after <= Duration::from_millis(3200),
        "declared gone {after:?} after it vanished (timeout 3 s)"
    );
    assert_eq!(s[0].send_audio(&[0; 320]), Err(SendError::Failed));
}

/// A pair whose sides offer `ci` and `cr`, established over a clean link.
fn codec_pair(seed: u64, ci: &[Codec], cr: &[Codec], now: &mut Instant) -> ([Session; 2], Link) {
    let mut s = [
        session_with(Role::Initiator, seed, None, *now, ci),
        session_with(Role::Responder, seed + 1, None, *now, cr),
    ];
    let mut link = Link::new(seed, 0.0, 0);
    settle(&mut s, &mut link, now, Duration::from_millis(500));
    (s, link)
}

fn agreed(s: &mut Session) -> Option<Codec> {
    events(s).into_iter().find_map(|e| match e {
        Event::Established { codec, .. } => Some(codec),
        _ => None,
    })
}

/// Voice-like test audio (harmonics of a wavering pitch in syllables, so
/// that Opus's voice detector sends it), frame `k` of 20 ms at 8 kHz.
fn tone(k: usize) -> Vec<u8> {
    use std::f32::consts::TAU;
    let s: Vec<i16> = (k * 160..(k + 1) * 160)
        .map(|i| {
            let t = i as f32 / 8000.0;
            let phase = 140.0 * t + 2.0 * (TAU * 3.0 * t).sin();
            let env = 0.3 + 0.7 * (TAU * 2.0 * t).sin().abs();
            let v: f32 = (1..8)
                .map(|h| (TAU * phase * h as f32).sin() / h as f32)
                .sum();
            (v * env * 6000.0) as i16
        })
        .collect();
    to_bytes(&s)
}

#[test]
fn the_codec_is_agreed_in_the_handshake_opus_when_both_offer_it() {
    let mut now = Instant::now();
    let both = [Codec::Opus, Codec::Pcm16];
    for (ci, cr, want) in [
        (&both[..], &both[..], Codec::Opus),
        (&both[..], &[Codec::Pcm16][..], Codec::Pcm16),
        (&[Codec::Pcm16][..], &both[..], Codec::Pcm16),
        (&[][..], &[][..], Codec::Pcm16),
    ] {
        let (mut s, _) = codec_pair(70, ci, cr, &mut now);
        assert_eq!(agreed(&mut s[0]), Some(want), "{ci:?} / {cr:?}");
        assert_eq!(agreed(&mut s[1]), Some(want), "{ci:?} / {cr:?}");
        assert_eq!((s[0].codec(), s[1].codec()), (want, want));
    }
}

#[test]
#[cfg(feature = "opus")]
fn opus_audio_is_sealed_named_and_decodes_to_what_was_sent() {
    let mut now = Instant::now();
    let both = [Codec::Opus, Codec::Pcm16];
    let (mut s, mut link) = codec_pair(72, &both, &both, &mut now);
    events(&mut s[1]);
    for k in 0..50 {
        s[0].send_audio(&tone(k)).unwrap();
    }
    let pkts: Vec<Vec<u8>> = std::iter::from_fn(|| s[0].poll_transmit()).collect();
    // Opus at 24 kbit/s: the datagrams are a third of PCM16's 394 bytes,
    // and carry the Opus payload type the partner's SDP named.
    let audio: Vec<&Vec<u8>> = pkts.iter().filter(|p| p.len() > 60).collect();
    assert!(audio.len() >= 45, "{}", audio.len());
    assert!(
        audio.iter().all(|p| p.len() <= 150),
        "{:?}",
        audio.iter().map(|p| p.len()).collect::<Vec<_>>()
    );
    assert!(audio
        .iter()
        .all(|p| RtpHeader::parse(p).unwrap().0.payload_type == 111));
    for p in pkts {
        link.send(now, 1, p);
    }
    settle(&mut s, &mut link, &mut now, Duration::from_millis(100));
    let mut dec = Decoder::new(Codec::Opus, 8000).unwrap();
    let mut out = Vec::new();
    for e in events(&mut s[1]) {
        if let Event::Audio {
            codec,
            data,
            redundant: false,
            ..
        } = e
        {
            assert_eq!(codec, Codec::Opus);
            out.extend(dec.decode(&data).unwrap());
        }
    }
    let sent: Vec<i16> = (0..50).flat_map(|k| to_samples(&tone(k))).collect();
    // Decoded, the tone is back (Opus delays it by a few samples).
    let best = (0..200)
        .map(|lag| {
            let (a, b) = (&sent[1000..7000], &out[1000 + lag..7000 + lag]);
            let dot: f64 = a
                .iter()
                .zip(b)
                .map(|(&x, &y)| f64::from(x) * f64::from(y))
                .sum();
            let na: f64 = a.iter().map(|&x| f64::from(x).powi(2)).sum();
            let nb: f64 = b.iter().map(|&x| f64::from(x).powi(2)).sum();
            dot / (na * nb).sqrt()
        })
        .fold(0.0, f64::max);
    // Measured 0.85 (SILK at 24 kbit/s is not waveform-exact).
    assert!(best > 0.75, "correlation {best}");
}

#[test]
fn a_capability_list_changed_on_the_path_fails_the_key_confirmation() {
    let mut now = Instant::now();
    let both = [Codec::Opus, Codec::Pcm16];
    let mut s = [
        session_with(Role::Initiator, 74, None, now, &both),
        session_with(Role::Responder, 75, None, now, &both),
    ];
    let mut link = Link::new(74, 0.0, 0);
    // Someone on the path rewrites the Commit's list to "PCM16 only"
    // (the Commit is the 12 + 2 + 48 + 3 byte handshake packet).
    link.tamper = Some(Box::new(|p: &mut Vec<u8>| {
        if p.len() == 65 && p[13] == 1 {
            p[63] = 1;
        }
        true
    }));
    settle(&mut s, &mut link, &mut now, Duration::from_millis(800));
    let failed = events(&mut s[0])
        .into_iter()
        .chain(events(&mut s[1]))
        .any(|e| e == Event::Failed(Failure::ConfirmFailed));
    assert!(failed, "the downgrade is caught");
    assert!(!s[0].is_established());
}

#[test]
#[cfg(feature = "opus")]
fn redundancy_carries_earlier_frames_inside_the_seal() {
    let mut now = Instant::now();
    for codec in [Codec::Pcm16, Codec::Opus] {
        let (mut s, mut link) = codec_pair(76, &[codec], &[codec], &mut now);
        events(&mut s[1]);
        s[0].set_protection(2, 20);
        link.loss = 0.2;
        for k in 0..100 {
            s[0].send_audio(&tone(k)).unwrap();
            let pkts: Vec<Vec<u8>> = std::iter::from_fn(|| s[0].poll_transmit()).collect();
            for p in pkts {
                link.send(now, 1, p);
            }
            settle(&mut s, &mut link, &mut now, Duration::from_millis(20));
        }
        let mut primary = std::collections::BTreeSet::new();
        let mut any = std::collections::BTreeSet::new();
        for e in events(&mut s[1]) {
            if let Event::Audio {
                frame,
                data,
                redundant,
                codec: c,
                ..
            } = e
            {
                assert_eq!(c, codec);
                if codec == Codec::Pcm16 {
                    assert_eq!(data, tone(frame as usize), "frame {frame}");
                }
                if !redundant {
                    primary.insert(frame);
                }
                any.insert(frame);
            }
        }
        // About a fifth lost, and nearly all of it rebuilt from the next
        // two packets' copies.
        let sent = s[0].stats().audio_sent;
        eprintln!("{codec:?}: sent {sent}, dtx {}", s[0].stats().dtx_frames);
        assert!(sent >= 90, "{codec:?}: {sent} sent");
        assert!(
            primary.len() as u64 <= sent - 10,
            "{codec:?}: {}",
            primary.len()
        );
        assert!(
            any.len() as u64 >= sent - 3,
            "{codec:?}: {} of {sent}",
            any.len()
        );
        assert!(
            s[1].stats().dropped.is_empty(),
            "{:?}",
            s[1].stats().dropped
        );
        assert!(s[0].stats().redundant_sent >= 190);
    }
}

#[test]
#[cfg(feature = "opus")]
fn loss_reports_travel_sealed_and_the_sender_protects_itself() {
    let mut now = Instant::now();
    for (codec, want_red) in [(Codec::Opus, 1), (Codec::Pcm16, 2)] {
        let (mut s, mut link) = codec_pair(78, &[codec], &[codec], &mut now);
        events(&mut s[1]);
        assert_eq!((s[0].stats().redundancy, s[0].stats().fec_loss), (0, 0));
        // 15 % loss for 6 s: the receiver's keep-alives say so, and the
        // sender adds copies of earlier frames (and Opus its FEC).
        link.loss = 0.15;
        let start = now;
        let mut k = 0;
        run(
            &mut s,
            &mut link,
            &mut now,
            Duration::from_secs(6),
            |s, t| {
                while (k as u128) < (t - start).as_millis() / 20 {
                    s[0].send_audio(&tone(k)).unwrap();
                    k += 1;
                }
            },
        );
        let st = s[0].stats().clone();
        let reported = f64::from(st.peer_loss) / 2.56;
        assert!((5.0..30.0).contains(&reported), "{codec:?}: {st:?}");
        assert_eq!(usize::from(st.redundancy), want_red, "{codec:?}: {st:?}");
        assert_eq!(st.fec_loss > 0, codec == Codec::Opus, "{st:?}");
        assert!(st.redundant_sent > 0);
        // A clean link again: the protection is taken back.
        link.loss = 0.0;
        let start = now;
        run(
            &mut s,
            &mut link,
            &mut now,
            Duration::from_secs(20),
            |s, t| {
                while (k as u128) < 300 + (t - start).as_millis() / 20 {
                    s[0].send_audio(&tone(k % 300)).unwrap();
                    k += 1;
                }
            },
        );
        let st = s[0].stats();
        assert_eq!(
            (st.peer_loss, st.redundancy, st.fec_loss),
            (0, 0, 0),
            "{codec:?}: {st:?}"
        );
    }
}

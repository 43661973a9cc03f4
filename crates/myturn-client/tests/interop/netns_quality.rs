//! Call quality on a lossy real network (issue #25): two `myturn --plain`
//! clients with default flags behind two symmetric NAT routers, the media
//! through the built-in relay, and Alice's router dropping a share of the
//! media datagrams at random both ways (nftables `numgen random`). Alice
//! speaks espeak-ng speech; Bob's `--output-wav` (the playout) is scored
//! with PESQ (ITU-T P.862, PyPI `pesq`), narrowband and wideband, with
//! Opus and with PCM16, beside the references measured in the same run:
//! Opus 24 kbit/s through opus-tools at the same loss, and the speech with
//! the same share of frames zeroed. Bob's file must last as long as the
//! call, whatever was lost. A jitter test puts a userspace bridge on
//! Alice's access link that holds each UDP datagram 20–60 ms at random
//! (reordering them; no loss) and scores the call the same way, with the
//! playout delay it took.
//!
//! The thresholds sit a margin under the lowest of five runs measured
//! here on 2026-12-02 (next to each test; a loaded two-core machine, load
//! average 4–9, where a starved client stalls its playout, which PESQ
//! hears, so the runs spread widely); the goals (the
//! opus-tools reference + 0.2) are benchmarks in `docs/performance.md`.
//! A call under its minimum is made once more and the better score kept
//! (a starved client stalls now and then; a regression fails twice).
//! The scored calls run one at a time. `MYTURN_KEEP_AUDIO=DIR` keeps what
//! was sent and heard.

use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::{self, serve_on, Proc};
use myturn_media::wav;
use myturn_testkit::netns::{Homes, Jitter, Nat};
use myturn_testkit::{pesq, Scratch};

/// Seconds of speech Alice sends.
const SECONDS: f32 = 10.0;

/// One call's outcome.
struct Scored {
    codec: &'static str,
    rate: u32,
    pesq: f64,
    /// Bob's stats line, and Alice's (what she sent: kbit/s).
    bob: String,
    alice: String,
}

/// A field of a stats line.
fn field<'a>(stats: &'a str, name: &str) -> &'a str {
    stats
        .split_whitespace()
        .find_map(|f| f.strip_prefix(name).and_then(|v| v.strip_prefix('=')))
        .unwrap_or("")
}

/// A silent WAV at `rate` (Bob only listens).
fn silence(path: &Path, rate: u32) {
    let mut w = wav::Writer::create(path, rate).unwrap();
    w.write_frame(&vec![0; (rate / 50 * 2) as usize]).unwrap();
    w.finalize().unwrap();
}

/// Calls through homes `tag` with Alice's router dropping `loss` percent
/// of the media (and `jitter` on Alice's access link), once per
/// `(codec, rate)`; scores each.
async fn scored_calls(
    tag: u8,
    loss: u32,
    jitter: Option<Jitter>,
    calls: &[(&'static str, u32)],
) -> Vec<Scored> {
    // One scored call at a time: the machine has two cores, and a client
    // starved by its neighbours stalls its playout, which PESQ hears.
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    let homes = match jitter {
        None => Homes::new(tag, 2, Nat::Symmetric),
        Some(j) => Homes::with_jitter(tag, 2, Nat::Symmetric, j),
    };
    let Some(homes) = homes else {
        return Vec::new();
    };
    if !pesq::available() {
        return Vec::new();
    }
    let dir = Scratch::new();
    let mut cfg = common::builtin_pbx();
    cfg.sip_listen = std::net::SocketAddr::new(homes.sites[0].host, 0);
    let (lo, hi) = (*cfg.media_ports.0.start(), *cfg.media_ports.0.end());
    let server = format!("http://{}", serve_on(&cfg, homes.sites[0].host).await);
    homes.sites[0].drop_udp(lo, hi, loss);
    let mut out = Vec::new();
    for &(codec, rate) in calls {
        let speech = pesq::speech(dir.path(), rate, SECONDS);
        let quiet = dir.join(&format!("quiet-{rate}.wav"));
        silence(&quiet, rate);
        let heard = dir.join(&format!("bob-{codec}-{rate}.wav"));
        let flags = ["--codec", codec, "--rate", &rate.to_string()];
        let ns = |s: usize| Some(homes.sites[s].client_ns.as_str());
        let scratch = dir.join("alice-heard.wav");
        let mut alice = Proc::start_in(ns(0), &server, "alice", &speech, &scratch, &flags);
        let mut bob = Proc::start_in(ns(1), &server, "bob", &quiet, &heard, &flags);
        common::sip_registered([&mut alice, &mut bob]).await;
        common::connect(&mut alice, &mut bob).await;
        let t0 = Instant::now();
        tokio::time::sleep(Duration::from_secs_f32(SECONDS + 1.0)).await;
        alice.send("stats").await;
        let a = alice.expect("stats ").await;
        bob.send("stats").await;
        let b = bob.expect("stats ").await;
        // The call ends between the hang-up and the clients' exit (which
        // a loaded machine can stretch by seconds).
        let hang_up = t0.elapsed().as_secs_f64();
        common::hang_up_and_quit(&mut alice, &mut bob).await;
        let call = t0.elapsed().as_secs_f64();
        // The playout writes 20 ms per 20 ms of call, lost frames
        // concealed in place: the file lasts as long as the call.
        let secs = wav::read(&heard, rate).unwrap().len() as f64 / f64::from(rate);
        assert!(
            secs >= hang_up - 1.0 && secs <= call + 1.0,
            "{codec}/{rate}: Bob's file is {secs:.2} s for a call hung up at {hang_up:.2} s, over at {call:.2} s"
        );
        let score = pesq::score(&speech, &heard, rate);
        // MYTURN_KEEP_AUDIO=DIR keeps what Bob heard, to listen to.
        if let Some(keep) = std::env::var_os("MYTURN_KEEP_AUDIO") {
            let to = Path::new(&keep).join(format!("heard-{loss}-{codec}-{rate}.wav"));
            let _ = std::fs::copy(&heard, to);
            let _ = std::fs::copy(&speech, Path::new(&keep).join(format!("sent-{rate}.wav")));
        }
        eprintln!("loss {loss}% {codec}/{rate}: PESQ {score:.2}; file {secs:.2} s of {call:.2} s\n  alice {a}\n  bob {b}");
        out.push(Scored {
            codec,
            rate,
            pesq: score,
            bob: b,
            alice: a,
        });
    }
    for rate in [8000, 16_000] {
        if out.iter().any(|s| s.rate == rate) {
            let speech = pesq::speech(dir.path(), rate, SECONDS);
            let r = pesq::opus_reference(dir.path(), &speech, rate, loss);
            let f = pesq::zeroed_floor(dir.path(), &speech, rate, loss, 25);
            eprintln!("loss {loss}% rate {rate}: opus-tools 24k reference {r:.2}, zeroed-frames floor {f:.2}");
        }
    }
    out
}

/// The minimum for a call, from `min`'s `(codec, rate, score)` rows.
fn min_for(min: &[(&str, u32, f64)], s: &Scored) -> f64 {
    min.iter()
        .find(|(c, r, _)| *c == s.codec && *r == s.rate)
        .map_or(0.0, |m| m.2)
}

/// [`scored_calls`], and each call that scored under its minimum once
/// more (the better of the two kept): on a loaded two-core machine one
/// call in a while is starved and stalls, a regression fails twice.
async fn scored_twice(
    tag: u8,
    loss: u32,
    jitter: Option<Jitter>,
    calls: &[(&'static str, u32)],
    min: &[(&str, u32, f64)],
) -> Vec<Scored> {
    let mut out = scored_calls(tag, loss, jitter, calls).await;
    let again: Vec<(&'static str, u32)> = out
        .iter()
        .filter(|s| s.pesq < min_for(min, s))
        .map(|s| (s.codec, s.rate))
        .collect();
    if again.is_empty() {
        return out;
    }
    eprintln!("under the minimum, once more: {again:?}");
    for retry in scored_calls(tag, loss, jitter, &again).await {
        if let Some(first) = out
            .iter_mut()
            .find(|s| s.codec == retry.codec && s.rate == retry.rate)
        {
            if retry.pesq > first.pesq {
                *first = retry;
            }
        }
    }
    out
}

/// Checks each call's score against `min` for its codec (a margin under
/// the measured figures), and that the loss seen is about the loss made.
fn check(scored: &[Scored], loss: u32, min: &[(&str, u32, f64)]) {
    for s in scored {
        let want = min_for(min, s);
        assert!(
            s.pesq >= want,
            "loss {loss}% {}/{}: PESQ {:.2} < {want}",
            s.codec,
            s.rate,
            s.pesq
        );
        assert!(field(&s.bob, "codec") == s.codec, "{}", s.bob);
        let seen: f64 = field(&s.bob, "loss").trim_end_matches('%').parse().unwrap();
        assert!(
            (seen - f64::from(loss)).abs() <= f64::from(loss) * 0.6 + 0.5,
            "loss {loss}%: Bob saw {seen}%"
        );
        let kbps: f64 = field(&s.alice, "kbps").parse().unwrap();
        eprintln!(
            "loss {loss}% {}/{}: Alice sent {kbps:.1} kbit/s",
            s.codec, s.rate
        );
        if s.codec == "opus" && loss <= 5 {
            assert!(kbps <= 64.0, "{}", s.alice);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pesq_at_5_percent_loss_narrowband() {
    let min = &[("opus", 8000, 2.3), ("pcm16", 8000, 3.0)];
    // Measured (5 runs): Opus 3.61, 3.45, 2.76, 3.56, 2.60; PCM16 4.03,
    // 3.80, 4.20, 3.40, 3.91.
    let s = scored_twice(4, 5, None, &[("opus", 8000), ("pcm16", 8000)], min).await;
    check(&s, 5, min);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pesq_at_10_percent_loss_narrowband() {
    let min = &[("opus", 8000, 2.3), ("pcm16", 8000, 3.2)];
    // Measured: Opus 2.73, 3.02, 2.74, 3.16, 2.71; PCM16 3.81, 3.72, 4.41,
    // 4.20, 4.14.
    let s = scored_twice(5, 10, None, &[("opus", 8000), ("pcm16", 8000)], min).await;
    check(&s, 10, min);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pesq_at_5_percent_loss_wideband() {
    let min = &[("opus", 16_000, 1.9), ("pcm16", 16_000, 1.7)];
    // Measured: Opus 3.00, 2.78, 2.96, 2.19, 2.30; PCM16 3.64, 3.00, 1.99,
    // 2.90 (the 1.99 run trimmed 21 frames after stalls: a load average of
    // 8 on two cores).
    let s = scored_twice(6, 5, None, &[("opus", 16_000), ("pcm16", 16_000)], min).await;
    check(&s, 5, min);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pesq_on_a_clean_network() {
    let min = &[("opus", 16_000, 2.7), ("pcm16", 8000, 3.2)];
    // Measured: Opus 3.99, 4.00, 4.00, 4.02, 3.00; PCM16 4.55, 4.55, 4.55,
    // 3.58, 4.20 (the low ones under a load average of 10: Bob measured
    // 10 ms of jitter on a clean link, and trimmed 11 frames).
    let s = scored_twice(7, 0, None, &[("opus", 16_000), ("pcm16", 8000)], min).await;
    check(&s, 0, min);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pesq_at_10_percent_loss_wideband() {
    let min = &[("opus", 16_000, 1.3), ("pcm16", 16_000, 1.4)];
    // Measured: Opus 2.12, 1.58, 2.24, 2.32, 2.47; PCM16 2.20, 2.60, 1.71,
    // 2.60, 2.04.
    let s = scored_twice(8, 10, None, &[("opus", 16_000), ("pcm16", 16_000)], min).await;
    check(&s, 10, min);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pesq_with_20_to_60_ms_of_jitter_and_reordering() {
    let jitter = Jitter {
        site: 0,
        min_ms: 20,
        max_ms: 60,
    };
    let min = &[("pcm16", 8000, 4.0), ("opus", 8000, 3.0)];
    let s = scored_twice(9, 0, Some(jitter), &[("pcm16", 8000), ("opus", 8000)], min).await;
    for c in &s {
        let delay: f64 = field(&c.bob, "delay")
            .trim_end_matches("ms")
            .parse()
            .unwrap();
        eprintln!(
            "jitter 20-60 ms {}/{}: PESQ {:.2}, playout delay {delay:.0} ms",
            c.codec, c.rate, c.pesq
        );
        // The buffer grew past the delay's spread, and not without bound.
        assert!((40.0..=100.0).contains(&delay), "{}", c.bob);
    }
    // Measured (4 runs): PCM16 4.55 each time (56-64 ms of delay); Opus
    // 4.40, 3.96, 3.54, 4.39 (59-71 ms); ~190 frames reordered a call. The clean
    // call's ceiling is 4.55.
    check(&s, 0, min);
}

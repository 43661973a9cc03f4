//! End to end: two `myturn --plain` processes with WAV input and output
//! against a real myturn-server (built-in PBX; run in this test process on
//! free ports). Each side's output WAV must hold the other side's audio,
//! and the chat lines must arrive.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use common::{builtin_pbx, serve, voice, Proc};

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use myturn_client::speech;
use myturn_media::wav;
use myturn_testkit::Scratch;
use tokio::process::Command;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_plain_clients_talk_and_chat_through_the_builtin_pbx() {
    talk_and_chat("pcm16").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_plain_clients_talk_opus_through_the_builtin_pbx() {
    talk_and_chat("opus").await;
}

async fn talk_and_chat(codec: &str) {
    let server = serve(&builtin_pbx()).await;

    let dir = Scratch::new();
    let (a_in, a_frames) = voice(dir.path(), "alice", 11, 2.0);
    let (b_in, b_frames) = voice(dir.path(), "bob", 12, 2.0);
    let (a_out, b_out) = (dir.join("alice-heard.wav"), dir.join("bob-heard.wav"));

    let flags = ["--codec", codec];
    let mut alice = Proc::start_in(None, &server, "alice", &a_in, &a_out, &flags);
    let mut bob = Proc::start_in(None, &server, "bob", &b_in, &b_out, &flags);
    common::fully_registered([&mut alice, &mut bob]).await;
    let (pa, pb) = common::paired(&mut alice, &mut bob).await;
    assert!(
        pa.contains("peer=bob") && pb.contains("peer=alice"),
        "{pa} / {pb}"
    );
    let (ca, cb) = tokio::join!(alice.expect("connected sas="), bob.expect("connected sas="));
    assert_eq!(ca, cb, "both sides show the same SAS");

    alice.send("say hello from alice").await;
    bob.send("say hi from bob").await;
    assert_eq!(bob.expect("chat ").await, "chat alice: hello from alice");
    assert_eq!(alice.expect("chat ").await, "chat bob: hi from bob");

    // Let the 2 s of audio flow, then alice hangs up.
    let t0 = std::time::Instant::now();
    tokio::time::sleep(Duration::from_millis(2600)).await;
    alice.send("stats").await;
    let stats = alice.expect("stats ").await;
    if codec == "pcm16" {
        assert!(
            stats.contains("sent=100") && stats.contains("received=100"),
            "{stats}"
        );
    } else {
        // Opus's DTX sends nothing for the pauses.
        assert!(
            stats.contains(" sent=") && stats.contains("codec=opus"),
            "{stats}"
        );
    }
    assert!(
        stats.contains("loss=0.0%") && stats.contains("jitter=") && stats.contains("concealed=0"),
        "{stats}"
    );
    bob.send("stats").await;
    eprintln!("alice: {stats}\nbob: {}", bob.expect("stats ").await);
    common::hang_up_and_quit(&mut alice, &mut bob).await;
    let call = t0.elapsed();

    // Each output WAV holds what the other side sent (no loss on
    // loopback), as PCM16 at 8 kHz: bit-exact for PCM16, alike once
    // decoded for Opus; and it lasts as long as the call (the playout
    // writes 20 ms every 20 ms).
    for (heard, sent) in [(&b_out, &a_frames), (&a_out, &b_frames)] {
        let min = if codec == "pcm16" { 1.0 } else { 0.8 };
        common::heard::assert_heard(heard, sent, 8000, codec, min);
        let samples = wav::read(heard, 8000).unwrap();
        let secs = samples.len() as f64 / 8000.0;
        assert!(
            secs >= 2.0 && secs <= call.as_secs_f64() + 1.0,
            "{}: {secs:.2} s for a call of {call:?}",
            heard.display()
        );
        let frames = wav::frames(&samples, 160);
        assert!(frames.iter().map(|f| speech::rms(f)).sum::<f64>() / frames.len() as f64 > 50.0);
    }
}

#[tokio::test]
async fn clear_errors_and_non_zero_exits() {
    // No server there.
    let out = Command::new(env!("CARGO_BIN_EXE_myturn"))
        .args([
            "--plain",
            "--name",
            "alice",
            "--server",
            "http://127.0.0.1:9",
        ])
        .stdin(Stdio::null())
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("cannot reach the myTurn server"), "{err}");

    // A taken name: the server's reason, and a non-zero exit.
    let server = serve(&builtin_pbx()).await;
    let mut first = Proc::start(
        &server,
        "carol",
        Path::new("/nonexistent.wav"),
        Path::new("/tmp/x.wav"),
    );
    first.expect("sip registered").await;
    for (name, want) in [("CAROL", "taken"), ("1bad", "name")] {
        let out = Command::new(env!("CARGO_BIN_EXE_myturn"))
            .args(["--plain", "--name", name, "--server", &server])
            .stdin(Stdio::null())
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(1), "{name}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.to_lowercase().contains(want), "{name}: {err}");
    }
    first.send("quit").await;
    first.expect("bye").await;

    // Sound devices in a build without them: said plainly, exit 2.
    #[cfg(not(feature = "audio"))]
    {
        let out = Command::new(env!("CARGO_BIN_EXE_myturn"))
            .args(["--list-devices"])
            .output()
            .await
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        assert!(String::from_utf8_lossy(&out.stderr).contains("no sound-device support"));
    }
    // A bad rate is refused by the flag parser.
    let out = Command::new(env!("CARGO_BIN_EXE_myturn"))
        .args(["--plain", "--name", "x", "--rate", "44100"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("8000 or 16000"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_muted_partner_stays_and_a_killed_one_ends_the_call_within_the_peer_timeout() {
    // The server's stream grace is long here, so the media path alone
    // notices the death (the next test covers the server's push).
    let mut cfg = builtin_pbx();
    cfg.stream_grace = 60;
    let server = serve(&cfg).await;

    let dir = Scratch::new();
    // One second of voice each: afterwards neither side has audio to send,
    // so only keep-alives show that the other is alive.
    let (mut alice, mut bob) = in_a_call(&server, dir.path(), &[]).await;

    // Bob mutes and his voice file ends: for 8 s (longer than the 5 s peer
    // timeout) alice hears no audio from him, yet the call stays up.
    bob.send("mute").await;
    bob.expect("muted").await;
    tokio::time::sleep(Duration::from_secs(8)).await;
    alice.send("stats").await;
    let stats = alice.expect("stats ").await;
    assert!(
        !alice.seen.iter().any(|l| l.starts_with("ended")),
        "a muted partner is not a dead one: {:?}",
        alice.seen
    );
    assert!(
        stats.contains("sent=50"),
        "alice is still in the call: {stats}"
    );

    // Bob's process dies (SIGKILL: no BYE, no logout). Alice is told
    // within the peer timeout, and sends her BYE.
    bob.child.start_kill().unwrap();
    let killed = std::time::Instant::now();
    let ended = alice.expect("ended by=").await;
    let after = killed.elapsed();
    assert_eq!(ended, "ended by=timeout");
    assert!(
        after >= Duration::from_secs(3) && after < Duration::from_secs(9),
        "told {after:?} after the kill (peer timeout 5 s)"
    );
    then_a_live_newcomer(&server, dir.path(), &mut alice).await;
}

/// After her partner's death alice draws again and gets carol, a live
/// newcomer; both quit cleanly.
async fn then_a_live_newcomer(server: &str, dir: &Path, alice: &mut Proc) {
    let c_in = voice(dir, "c", 23, 1.0).0;
    let mut carol = Proc::start(server, "carol", &c_in, &dir.join("co.wav"));
    carol.expect("sip registered").await;
    alice.send("ready").await;
    carol.send("ready").await;
    assert!(alice
        .expect("paired peer=")
        .await
        .starts_with("paired peer=carol "));
    let (a, c) = tokio::join!(
        alice.expect("connected sas="),
        carol.expect("connected sas=")
    );
    assert_eq!(a, c);
    common::quit([alice, &mut carol]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_partner_is_reported_by_the_server_after_its_stream_grace() {
    // Media timeout far away (30 s): the server's `peer_left` ends the call.
    let mut cfg = builtin_pbx();
    cfg.stream_grace = 1;
    let server = serve(&cfg).await;
    let dir = Scratch::new();
    let (mut alice, mut bob) = in_a_call(&server, dir.path(), &["--peer-timeout", "30"]).await;
    bob.child.start_kill().unwrap();
    let killed = std::time::Instant::now();
    let ended = alice.expect("ended by=").await;
    assert_eq!(ended, "ended by=server reason=disconnected");
    assert!(
        killed.elapsed() < Duration::from_secs(6),
        "told {:?} after the kill (grace 1 s)",
        killed.elapsed()
    );
    // Alice is busy again and can draw the next partner.
    then_a_live_newcomer(&server, dir.path(), &mut alice).await;
}

/// Alice and Bob, each with one second of voice, connected to each other
/// (same SAS) through `server`.
async fn in_a_call(server: &str, dir: &Path, flags: &[&str]) -> (Proc, Proc) {
    let (a_in, b_in) = (voice(dir, "a", 21, 1.0).0, voice(dir, "b", 22, 1.0).0);
    let mut alice = Proc::start_in(None, server, "alice", &a_in, &dir.join("ao.wav"), flags);
    let mut bob = Proc::start_in(None, server, "bob", &b_in, &dir.join("bo.wav"), flags);
    common::sip_registered([&mut alice, &mut bob]).await;
    let (ca, cb) = common::connect(&mut alice, &mut bob).await;
    assert_eq!(ca, cb, "both sides show the same SAS");
    (alice, bob)
}

//! Interests end to end: real `myturn --plain` processes against a real
//! server. Two with an interest in common are paired and both print it;
//! two with none in common are paired only after the interest wait; a
//! user who asks only for interests says so while waiting.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::{Duration, Instant};

use common::{builtin_pbx, serve, voice, Proc};
use myturn_testkit::Scratch;

/// A server whose interest wait is `secs`, and alice and bob on it (with
/// these flags each), both registered. The scratch directory holds their
/// WAV files while they run.
async fn alice_and_bob(secs: u64, a: &[&str], b: &[&str]) -> (Scratch, Proc, Proc) {
    let mut cfg = builtin_pbx();
    cfg.interest_wait = secs;
    let server = serve(&cfg).await;
    let dir = Scratch::new();
    let (a_in, _) = voice(dir.path(), "alice", 1, 0.2);
    let (b_in, _) = voice(dir.path(), "bob", 2, 0.2);
    let (a_out, b_out) = (dir.join("a.wav"), dir.join("b.wav"));
    let mut alice = Proc::start_in(None, &server, "alice", &a_in, &a_out, a);
    let mut bob = Proc::start_in(None, &server, "bob", &b_in, &b_out, b);
    common::fully_registered([&mut alice, &mut bob]).await;
    (dir, alice, bob)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_with_an_interest_in_common_are_paired_and_both_print_it() {
    let (_dir, mut alice, mut bob) = alice_and_bob(30, &["--interests", "Music, chess"], &[]).await;
    alice.send("ready").await;
    assert_eq!(
        alice.expect("waiting").await,
        "waiting interests=music,chess"
    );
    // Bob types his interests with `ready`.
    bob.send("ready rust, MUSIC").await;
    let (pa, pb) = tokio::join!(alice.expect("paired "), bob.expect("paired "));
    assert!(
        pa.contains("peer=bob") && pa.ends_with(" shared=music"),
        "{pa}"
    );
    assert!(
        pb.contains("peer=alice") && pb.ends_with(" shared=music"),
        "{pb}"
    );
    tokio::join!(alice.expect("connected sas="), bob.expect("connected sas="));
    common::hang_up_and_quit(&mut alice, &mut bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_clients_with_nothing_in_common_are_paired_only_after_the_wait() {
    const WAIT: Duration = Duration::from_secs(3);
    let (_dir, mut alice, mut bob) = alice_and_bob(
        WAIT.as_secs(),
        &["--interests", "jazz"],
        &["--interests", "chess"],
    )
    .await;
    let start = Instant::now();
    alice.send("ready").await;
    bob.send("ready").await;
    let (pa, pb) = tokio::join!(alice.expect("paired "), bob.expect("paired "));
    let took = start.elapsed();
    assert!(
        took >= WAIT - Duration::from_millis(100),
        "paired after {took:?}, before the {WAIT:?} wait ran out"
    );
    assert!(took < WAIT * 3, "paired only after {took:?}");
    assert!(
        !pa.contains("shared=") && !pb.contains("shared="),
        "{pa} / {pb}"
    );
    tokio::join!(alice.expect("connected sas="), bob.expect("connected sas="));
    common::hang_up_and_quit(&mut alice, &mut bob).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_interests_never_falls_back_and_says_so() {
    let (_dir, mut alice, mut bob) =
        alice_and_bob(1, &["--interests", "jazz", "--only-interests"], &[]).await;
    alice.send("ready").await;
    let w = alice.expect("waiting").await;
    assert!(w.contains("interests=jazz") && w.contains(" only"), "{w}");
    bob.send("ready").await;
    bob.expect("waiting").await;
    // Well past the 1 s wait: neither was paired with the other.
    let lines = alice.lines_for(Duration::from_secs(3)).await;
    assert!(lines.iter().all(|l| !l.starts_with("paired")), "{lines:?}");
    common::quit([&mut alice, &mut bob]).await;
}

#[tokio::test]
async fn a_bad_interest_is_refused_before_anything_starts() {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_myturn"))
        .args(["--plain", "--name", "alice", "--interests", "ok, <b>"])
        .output()
        .await
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("\"<b>\""), "{err}");
}

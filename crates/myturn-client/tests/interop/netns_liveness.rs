//! A partner whose network vanishes while its process lives (issue #12),
//! on a real network: the test makes a network namespace joined to this
//! one by a veth pair (documentation addresses, 198.51.100.0/24), runs one
//! `myturn --plain` inside it, and cuts it off with nftables. Nothing
//! leaves the namespace pair the test made.
//!
//! Needs root (`ip netns`, `nft`). Without it: `SKIPPED`; under CI
//! (`CI` or `MYTURN_REQUIRE_INTEROP=1`) that is a failure.

use std::path::Path;
use std::time::Duration;

use crate::common::{self, builtin_pbx, serve_on, voice, Proc};
use myturn_testkit::netns::Veth as Net;
use myturn_testkit::Scratch;

/// The limit, plus the scheduling slack of a loaded 2-core box.
const TOLD_WITHIN: Duration = Duration::from_secs(6);

/// The pairing server and built-in PBX on the host side of `net`.
async fn serve_in(net: &Net) -> String {
    let mut cfg = builtin_pbx();
    cfg.sip_listen = std::net::SocketAddr::new(net.host, 0);
    format!("http://{}", serve_on(&cfg, net.host).await)
}

async fn start(
    net: &Net,
    server: &str,
    dir: &Path,
    name: &'static str,
    inside: bool,
    seed: u64,
) -> Proc {
    let bind = if inside { net.inside } else { net.host }.to_string();
    let mut p = Proc::start_in(
        inside.then_some(net.ns.as_str()),
        server,
        name,
        &voice(dir, name, seed, 1.0).0,
        &dir.join(format!("{name}-out.wav")),
        &["--bind", &bind],
    );
    p.expect("sip registered").await;
    p
}

/// The server on the host side of `net`, and alice inside the namespace,
/// bob and carol outside, each registered; their voices (in the returned
/// directory) from the seeds `seed`, `seed + 1` and `seed + 2`.
async fn three(net: &Net, seed: u64) -> (Scratch, [Proc; 3]) {
    let server = serve_in(net).await;
    let dir = Scratch::new();
    let procs = [
        start(net, &server, dir.path(), "alice", true, seed).await,
        start(net, &server, dir.path(), "bob", false, seed + 1).await,
        start(net, &server, dir.path(), "carol", false, seed + 2).await,
    ];
    (dir, procs)
}

/// `bob` draws again and gets the live newcomer `carol`.
async fn bob_gets_carol(bob: &mut Proc, carol: &mut Proc) {
    carol.send("ready").await;
    let paired = bob.expect("paired peer=").await;
    assert!(paired.starts_with("paired peer=carol "), "{paired}");
    let (a, b) = tokio::join!(bob.expect("connected sas="), carol.expect("connected sas="));
    assert_eq!(a, b);
    common::quit([bob, carol]).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_whose_network_vanishes_mid_call_is_noticed_within_the_limit() {
    let Some(net) = Net::new(1) else { return };
    let (_dir, [mut alice, mut bob, mut carol]) = three(&net, 1).await;
    let (a, b) = common::connect(&mut alice, &mut bob).await;
    assert_eq!(a, b);
    // Talk a little, then alice's network is gone; her process lives on.
    common::chat(&mut bob, &mut alice, "are you there?").await;
    net.cut(false);
    let (ended, took) = bob.expect_within("ended by=", TOLD_WITHIN).await;
    eprintln!("bob: `{ended}` {took:?} after alice's network vanished");
    assert!(
        ended == "ended by=timeout" || ended == "ended by=server reason=disconnected",
        "{ended}"
    );
    bob.send("ready").await;
    bob.expect("waiting").await;
    bob_gets_carol(&mut bob, &mut carol).await;
    drop(alice);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_killed_while_it_is_being_called_is_given_up_within_the_limit() {
    let Some(net) = Net::new(2) else { return };
    let (_dir, [mut alice, mut bob, mut carol]) = three(&net, 4).await;
    // Alice's SIP and media can no longer get through; her HTTP and event
    // stream still can. The SIP call between them hangs (an INVITE nobody
    // answers, or one that never comes), and then alice dies.
    net.cut(true);
    alice.send("ready").await;
    alice.expect("waiting").await;
    bob.send("ready").await;
    bob.expect("paired peer=alice").await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    alice.signal("KILL");
    let (redraw, took) = bob.expect_within("redraw ", TOLD_WITHIN).await;
    eprintln!("bob: `{redraw}` {took:?} after alice's death");
    bob_gets_carol(&mut bob, &mut carol).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_with_no_network_flags_bind_the_route_to_the_pbx() {
    // Issue #13's first step: without `--bind`, each client uses the
    // address of its route to the PBX (inside the namespace, the veth's
    // address; here, the host side). Loopback would reach nothing.
    let Some(net) = Net::new(3) else { return };
    let server = serve_in(&net).await;
    let dir = Scratch::new();
    let mut alice = Proc::start_in(
        Some(&net.ns),
        &server,
        "alice",
        &voice(dir.path(), "alice", 7, 1.0).0,
        &dir.path().join("alice-out.wav"),
        &[],
    );
    let mut bob = Proc::start(
        &server,
        "bob",
        &voice(dir.path(), "bob", 8, 1.0).0,
        &dir.path().join("bob-out.wav"),
    );
    common::sip_registered([&mut alice, &mut bob]).await;
    let (a, b) = common::connect(&mut alice, &mut bob).await;
    assert_eq!(a, b);
    common::chat(&mut alice, &mut bob, "over the veth").await;
    common::chat(&mut bob, &mut alice, "and back").await;
    common::quit([&mut alice, &mut bob]).await;
    let log = alice.finish_log().await;
    assert!(
        log.iter()
            .any(|l| l.contains("route to the PBX") && l.contains(&net.inside.to_string())),
        "alice bound her namespace's address: {log:?}"
    );
}

//! A partner whose network vanishes while its process lives (issue #12),
//! on a real network: the test makes a network namespace joined to this
//! one by a veth pair (documentation addresses, 198.51.100.0/24), runs one
//! `myturn --plain` inside it, and cuts it off with nftables. Nothing
//! leaves the namespace pair the test made.
//!
//! Needs root (`ip netns`, `nft`). Without it: `SKIPPED`; under CI
//! (`CI` or `MYTURN_REQUIRE_INTEROP=1`) that is a failure.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::IpAddr;
use std::path::Path;
use std::time::Duration;

use common::netns::{required, run, sh};
use common::{builtin_pbx, write_wav, Proc};
use myturn_client::speech;

/// The limit, plus the scheduling slack of a loaded 2-core box.
const TOLD_WITHIN: Duration = Duration::from_secs(6);

/// A namespace with one veth to the host: the host side has `host`, the
/// namespace side `inside` (a /30 of 198.51.100.0/24). Removed on drop.
struct Net {
    ns: String,
    host_if: String,
    host: IpAddr,
    inside: IpAddr,
}

impl Net {
    /// `None` (after printing SKIPPED) when namespaces cannot be made here.
    fn new(index: u8) -> Option<Net> {
        let ns = format!("mtl{}-{index}", std::process::id());
        if !sh(&["ip", "netns", "add", &ns]) || !sh(&["nft", "--version"]) {
            let _ = sh(&["ip", "netns", "del", &ns]);
            assert!(
                !required(),
                "cannot make a network namespace with nftables (needs root, iproute2, nftables)"
            );
            eprintln!("SKIPPED: network namespaces need root, iproute2 and nftables");
            return None;
        }
        let base = 4 * index;
        let host_if = format!("mth{}{index}", std::process::id() % 10_000);
        let ns_if = format!("mtc{}{index}", std::process::id() % 10_000);
        let net = Net {
            ns: ns.clone(),
            host_if: host_if.clone(),
            host: format!("198.51.100.{}", base + 1).parse().unwrap(),
            inside: format!("198.51.100.{}", base + 2).parse().unwrap(),
        };
        let host = format!("{}/30", net.host);
        let inside = format!("{}/30", net.inside);
        run(&[
            "ip", "link", "add", &host_if, "type", "veth", "peer", "name", &ns_if,
        ]);
        run(&["ip", "link", "set", &ns_if, "netns", &ns]);
        run(&["ip", "addr", "add", &host, "dev", &host_if]);
        run(&["ip", "link", "set", &host_if, "up"]);
        run(&[
            "ip", "netns", "exec", &ns, "ip", "addr", "add", &inside, "dev", &ns_if,
        ]);
        run(&[
            "ip", "netns", "exec", &ns, "ip", "link", "set", &ns_if, "up",
        ]);
        run(&["ip", "netns", "exec", &ns, "ip", "link", "set", "lo", "up"]);
        Some(net)
    }

    /// Drops what the namespace sends and receives: all of it, or only
    /// UDP (SIP and media) while HTTP and the event stream still work.
    fn cut(&self, udp_only: bool) {
        let rule = if udp_only {
            "meta l4proto udp drop"
        } else {
            "drop"
        };
        let ruleset = format!(
            "table inet vanish {{\n\
               chain in {{ type filter hook input priority 0; policy accept; {rule}; }}\n\
               chain out {{ type filter hook output priority 0; policy accept; {rule}; }}\n\
             }}\n"
        );
        let path = std::env::temp_dir().join(format!("{}.nft", self.ns));
        std::fs::write(&path, ruleset).unwrap();
        run(&[
            "ip",
            "netns",
            "exec",
            &self.ns,
            "nft",
            "-f",
            path.to_str().unwrap(),
        ]);
        let _ = std::fs::remove_file(path);
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = sh(&["ip", "link", "del", &self.host_if]);
        let _ = sh(&["ip", "netns", "del", &self.ns]);
    }
}

/// The pairing server and built-in PBX on the host side of `net`.
async fn serve_on(net: &Net) -> String {
    let mut cfg = builtin_pbx();
    cfg.sip_listen = std::net::SocketAddr::new(net.host, 0);
    let app = myturn_server::App::new(&cfg, None).unwrap();
    let listener = tokio::net::TcpListener::bind((net.host, 0)).await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(app.serve(listener, std::future::pending()));
    url
}

fn voice(dir: &Path, name: &str, seed: u64) -> std::path::PathBuf {
    let p = dir.join(format!("{name}.wav"));
    write_wav(&p, &speech::frames(seed, 8000, 1.0));
    p
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
        &voice(dir, name, seed),
        &dir.join(format!("{name}-out.wav")),
        &["--bind", &bind],
    );
    p.expect("sip registered").await;
    p
}

/// `bob` draws again and gets the live newcomer `carol`.
async fn bob_gets_carol(bob: &mut Proc, carol: &mut Proc) {
    carol.send("ready").await;
    let paired = bob.expect("paired peer=").await;
    assert!(paired.starts_with("paired peer=carol "), "{paired}");
    let (a, b) = tokio::join!(bob.expect("connected sas="), carol.expect("connected sas="));
    assert_eq!(a, b);
    for p in [bob, carol] {
        p.send("quit").await;
        p.expect("bye").await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_partner_whose_network_vanishes_mid_call_is_noticed_within_the_limit() {
    let Some(net) = Net::new(1) else { return };
    let server = serve_on(&net).await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = start(&net, &server, dir.path(), "alice", true, 1).await;
    let mut bob = start(&net, &server, dir.path(), "bob", false, 2).await;
    let mut carol = start(&net, &server, dir.path(), "carol", false, 3).await;
    alice.send("ready").await;
    bob.send("ready").await;
    let (a, b) = tokio::join!(alice.expect("connected sas="), bob.expect("connected sas="));
    assert_eq!(a, b);
    // Talk a little, then alice's network is gone; her process lives on.
    bob.send("say are you there?").await;
    alice.expect("chat bob: are you there?").await;
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
    let server = serve_on(&net).await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = start(&net, &server, dir.path(), "alice", true, 4).await;
    let mut bob = start(&net, &server, dir.path(), "bob", false, 5).await;
    let mut carol = start(&net, &server, dir.path(), "carol", false, 6).await;
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
    let server = serve_on(&net).await;
    let dir = tempfile::tempdir().unwrap();
    let mut alice = Proc::start_in(
        Some(&net.ns),
        &server,
        "alice",
        &voice(dir.path(), "alice", 7),
        &dir.path().join("alice-out.wav"),
        &[],
    );
    let mut bob = Proc::start(
        &server,
        "bob",
        &voice(dir.path(), "bob", 8),
        &dir.path().join("bob-out.wav"),
    );
    for p in [&mut alice, &mut bob] {
        p.expect("sip registered").await;
    }
    alice.send("ready").await;
    bob.send("ready").await;
    let (a, b) = tokio::join!(alice.expect("connected sas="), bob.expect("connected sas="));
    assert_eq!(a, b);
    alice.send("say over the veth").await;
    bob.expect("chat alice: over the veth").await;
    bob.send("say and back").await;
    alice.expect("chat bob: and back").await;
    for p in [&mut alice, &mut bob] {
        p.send("quit").await;
        p.expect("bye").await;
    }
    let log = alice.finish_log().await;
    assert!(
        log.iter()
            .any(|l| l.contains("route to the PBX") && l.contains(&net.inside.to_string())),
        "alice bound her namespace's address: {log:?}"
    );
}

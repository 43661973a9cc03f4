//! SIPp (Debian's `sip-tester`) against the built-in PBX on real UDP:
//! REGISTER with a 401 challenge then 200, a wrong password, an unknown
//! user (the same answer), unregister, INVITE routing between two
//! registered SIPp agents. (Two of our agents through it, and the torture
//! replay: those two, with no peer, are the `udp` test). The scenarios
//! are myturn-testkit's `sipp/register.xml`, `register-refused.xml`,
//! `callee.xml` + `callee-answer.xml` and `caller.xml`.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use crate::common::pbx;
use myturn_sip::digest::Algorithm;
use myturn_testkit::sipp::{self, Scenario, Sipp};
use myturn_testkit::{skip, Scratch};

/// Runs `scenario` as `user` (password `pw`) against the PBX, to its end,
/// in a directory of its own: that directory (SIPp's logs), SIPp's exit
/// code and output.
async fn run_sipp(
    scenario: Scenario,
    pbx: SocketAddr,
    user: &str,
    pw: &str,
) -> (Scratch, Option<i32>, String) {
    let dir = Scratch::new();
    let p = Sipp::new(dir.path(), scenario)
        .remote(pbx)
        .key("user", user)
        .key("expires", 120)
        .auth(user, pw)
        .traced_once()
        .spawn();
    let (code, out) = tokio::task::spawn_blocking(move || p.wait(Duration::from_secs(30)))
        .await
        .unwrap();
    (dir, code, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_registers_and_unregisters_with_md5_offered_first() {
    if !skip::installed("sipp") {
        return;
    }
    // SIPp 3.6 computes MD5 only and reads just the first challenge, so it
    // needs `--sip-digest md5,sha-256` (both offered, MD5 first); the
    // default order, SHA-256 first, is for agents that pick what they
    // support (ours, RFC 8760).
    let p = pbx(vec![Algorithm::Md5, Algorithm::Sha256]).await;
    let (_dir, code, out) = run_sipp(Scenario::Register, p.addr, "alice", "Alice-pw-0001").await;
    assert_eq!(code, Some(0), "{out}");
    let st = p.handle.stats();
    assert!(st.registrations >= 1 && st.unregistrations >= 1, "{st:?}");
    assert!(p.handle.bindings().is_empty(), "unregistered");
}

fn final_401(log: &str) -> String {
    // The last 401 SIPp received, reduced to its status line and the names
    // of its headers (values carry nonces and tags).
    let start = log.rfind("SIP/2.0 401").expect("a 401");
    let msg: Vec<&str> = log[start..]
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .collect();
    let mut names: Vec<String> = msg[1..]
        .iter()
        .filter_map(|l| l.split_once(':').map(|(n, _)| n.to_owned()))
        .collect();
    names.sort();
    format!("{}|{}", msg[0], names.join(","))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_password_and_unknown_user_look_the_same_to_sipp() {
    if !skip::installed("sipp") {
        return;
    }
    let p = pbx(vec![Algorithm::Md5]).await;
    let (d1, c1, o1) = run_sipp(Scenario::RegisterRefused, p.addr, "alice", "not-it").await;
    assert_eq!(c1, Some(0), "wrong password re-challenged: {o1}");
    let (d2, c2, o2) = run_sipp(Scenario::RegisterRefused, p.addr, "mallory", "not-it").await;
    assert_eq!(c2, Some(0), "unknown user re-challenged: {o2}");
    let (l1, l2) = (sipp::messages(d1.path()), sipp::messages(d2.path()));
    assert_eq!(final_401(&l1), final_401(&l2));
    assert_eq!(p.handle.stats().auth_failures, 2);
    assert!(p.handle.bindings().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_routed_between_two_sipp_agents() {
    if !skip::installed("sipp") {
        return;
    }
    let p = pbx(vec![Algorithm::Md5]).await;
    let dir = Scratch::new();
    let callee = Sipp::new(dir.path(), Scenario::Callee)
        .remote(p.addr)
        .out_of_call(Scenario::CalleeAnswer)
        .key("user", "bob")
        .key("expires", 120)
        .auth("bob", "Bob-pw-000002")
        .args(["-d", "4000"])
        .traced_once()
        .spawn();
    // Wait for bob's binding.
    let t0 = Instant::now();
    while p.handle.bindings().is_empty() {
        if t0.elapsed() > Duration::from_secs(10) {
            let (_, out) = callee.wait(Duration::from_secs(1));
            panic!("bob never registered: {:?} {out}", p.handle.stats());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let caller_dir = Scratch::new();
    let caller = Sipp::new(caller_dir.path(), Scenario::Caller)
        .remote(p.addr)
        .key("user", "alice")
        .key("extension", "111001")
        .auth("alice", "Alice-pw-0001")
        .flag("linger")
        .args(["-d", "200"])
        .traced_once()
        .spawn();
    let (cc, co) = tokio::task::spawn_blocking(move || caller.wait(Duration::from_secs(30)))
        .await
        .unwrap();
    let (ce, ceo) = tokio::task::spawn_blocking(move || callee.wait(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(cc, Some(0), "caller: {co}");
    assert_eq!(ce, Some(0), "callee: {ceo}");
    let log = sipp::messages(dir.path());
    // Bob saw the INVITE with the PBX's Record-Route and both Vias, and the
    // BYE came through the PBX too.
    assert!(
        log.contains(&format!("Record-Route: <sip:{};lr>", p.addr)),
        "{log}"
    );
    assert!(log.contains("m=audio 6020 RTP/AVP 96"), "SDP untouched");
    let st = p.handle.stats();
    assert_eq!(st.calls_routed, 1, "{st:?}");
}

//! SIPp (Debian's `sip-tester`) against the built-in PBX on real UDP:
//! REGISTER with a 401 challenge then 200, a wrong password, an unknown
//! user (the same answer), unregister, INVITE routing between two
//! registered SIPp agents and between two of our agents, and the torture
//! replay.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../myturn-sip/tests/peers/mod.rs"]
mod peers;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use myturn_pbx::core::{Account, Config, Pbx};
use myturn_pbx::driver::{self, PbxHandle};
use myturn_sip::digest::Algorithm;
use myturn_sip::msg;
use myturn_sip::ua::Event;
use peers::*;
use tokio::sync::watch;

fn accounts() -> Vec<Account> {
    vec![
        Account {
            username: "alice".into(),
            extension: "111000".into(),
            password: "Alice-pw-0001".into(),
        },
        Account {
            username: "bob".into(),
            extension: "111001".into(),
            password: "Bob-pw-000002".into(),
        },
    ]
}

struct Running {
    addr: SocketAddr,
    handle: PbxHandle,
    _stop: watch::Sender<bool>,
}

/// The PBX on a free loopback port. SIPp 3.6 computes MD5 only, so its
/// tests run the PBX with `algorithms` chosen by the caller.
async fn pbx(algorithms: Vec<Algorithm>) -> Running {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let mut cfg = Config::new(addr);
    cfg.algorithms = algorithms;
    let core = Pbx::new(cfg, Box::new(rand_core::OsRng), Instant::now());
    let (_acc_tx, acc_rx) = watch::channel(accounts());
    let (stop, stop_rx) = watch::channel(false);
    let handle = PbxHandle::new(addr);
    driver::spawn(socket, core, handle.clone(), acc_rx, stop_rx);
    std::mem::forget(_acc_tx);
    Running {
        addr,
        handle,
        _stop: stop,
    }
}

const REGISTER_XML: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register, challenged; then unregister">
  <send retrans="500"><![CDATA[

REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[remote_ip]:[remote_port]>;tag=[pid]r[call_number]
To: <sip:[field0]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:[field0]@[local_ip]:[local_port]>
Expires: 120
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <recv response="401" auth="true" />
  <send retrans="500"><![CDATA[

REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[remote_ip]:[remote_port]>;tag=[pid]r[call_number]
To: <sip:[field0]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:[field0]@[local_ip]:[local_port]>
[authentication]
Expires: 120
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <recv response="200" />
  <send retrans="500"><![CDATA[

REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[remote_ip]:[remote_port]>;tag=[pid]r[call_number]
To: <sip:[field0]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 3 REGISTER
Contact: <sip:[field0]@[local_ip]:[local_port]>
[authentication]
Expires: 0
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <recv response="200" />
</scenario>
"#;

/// Two challenges in a row mean the credentials were refused.
const REFUSED_XML: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register with bad credentials">
  <send retrans="500"><![CDATA[

REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[remote_ip]:[remote_port]>;tag=[pid]r[call_number]
To: <sip:[field0]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:[field0]@[local_ip]:[local_port]>
Expires: 120
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <recv response="401" auth="true" />
  <send retrans="500"><![CDATA[

REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:[field0]@[remote_ip]:[remote_port]>;tag=[pid]r[call_number]
To: <sip:[field0]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:[field0]@[local_ip]:[local_port]>
[authentication]
Expires: 120
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <recv response="401" />
</scenario>
"#;

fn inject(dir: &std::path::Path, user: &str, pw: &str) -> String {
    let p = dir.join(format!("{user}.csv"));
    std::fs::write(&p, format!("SEQUENTIAL\n{user};{pw};\n")).unwrap();
    p.to_string_lossy().into_owned()
}

async fn run_sipp(
    dir: &std::path::Path,
    name: &str,
    xml: &str,
    pbx: SocketAddr,
    user: &str,
    pw: &str,
) -> (Option<i32>, String) {
    let csv = inject(dir, user, pw);
    let remote = pbx.to_string();
    let p = sipp(
        dir,
        name,
        xml,
        free_port(),
        &[&remote, "-inf", &csv, "-au", user, "-ap", pw],
    );
    tokio::task::spawn_blocking(move || p.wait(Duration::from_secs(30)))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sipp_registers_and_unregisters_with_md5_offered_first() {
    if !available("sipp") {
        return;
    }
    // SIPp 3.6 computes MD5 only and reads just the first challenge, so it
    // needs `--sip-digest md5,sha-256` (both offered, MD5 first); the
    // default order, SHA-256 first, is for agents that pick what they
    // support (ours, RFC 8760).
    let p = pbx(vec![Algorithm::Md5, Algorithm::Sha256]).await;
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = run_sipp(
        dir.path(),
        "reg.xml",
        REGISTER_XML,
        p.addr,
        "alice",
        "Alice-pw-0001",
    )
    .await;
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
    if !available("sipp") {
        return;
    }
    let p = pbx(vec![Algorithm::Md5]).await;
    let d1 = tempfile::tempdir().unwrap();
    let (c1, o1) = run_sipp(d1.path(), "bad.xml", REFUSED_XML, p.addr, "alice", "not-it").await;
    assert_eq!(c1, Some(0), "wrong password re-challenged: {o1}");
    let d2 = tempfile::tempdir().unwrap();
    let (c2, o2) = run_sipp(
        d2.path(),
        "bad.xml",
        REFUSED_XML,
        p.addr,
        "mallory",
        "not-it",
    )
    .await;
    assert_eq!(c2, Some(0), "unknown user re-challenged: {o2}");
    let (l1, l2) = (sipp_messages(d1.path()), sipp_messages(d2.path()));
    assert_eq!(final_401(&l1), final_401(&l2));
    assert_eq!(p.handle.stats().auth_failures, 2);
    assert!(p.handle.bindings().is_empty());
}

/// SIPp ties a scenario to one Call-ID, so the registered callee is two
/// scenarios on one process: the REGISTER (main) and the incoming call
/// (`-oocsf`, out-of-call messages).
const CALLEE_REGISTER_XML: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bob registers, then stays up while the call runs">
  <send retrans="500"><![CDATA[

REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:bob@[remote_ip]:[remote_port]>;tag=[pid]b
To: <sip:bob@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:bob@[local_ip]:[local_port]>
Expires: 120
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <recv response="401" auth="true" />
  <send retrans="500"><![CDATA[

REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:bob@[remote_ip]:[remote_port]>;tag=[pid]b
To: <sip:bob@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:bob@[local_ip]:[local_port]>
[authentication]
Expires: 120
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <recv response="200" />
  <pause milliseconds="4000" />
</scenario>
"#;

const CALLEE_OOC_XML: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="bob answers the call SIPp sees outside its REGISTER dialog">
  <recv request="INVITE" crlf="true" />
  <send><![CDATA[

SIP/2.0 180 Ringing
[last_Via:]
[last_Record-Route:]
[last_From:]
[last_To:];tag=[pid]callee
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:bob@[local_ip]:[local_port]>
Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_Record-Route:]
[last_From:]
[last_To:];tag=[pid]callee
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:bob@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=bob 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio 6010 RTP/AVP 96
a=rtpmap:96 L16/8000

  ]]></send>
  <recv request="ACK" />
  <recv request="BYE" />
  <send><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

  ]]></send>
</scenario>
"#;

const CALLER_XML: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="calls extension 111001 through the PBX (407 first), then hangs up">
  <send retrans="500"><![CDATA[

INVITE sip:111001@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[remote_ip]:[remote_port]>;tag=[pid]a
To: <sip:111001@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:alice@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=alice 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio 6020 RTP/AVP 96
a=rtpmap:96 L16/8000

  ]]></send>
  <recv response="407" auth="true" />
  <send><![CDATA[

ACK sip:111001@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[remote_ip]:[remote_port]>;tag=[pid]a
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[

INVITE sip:111001@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[remote_ip]:[remote_port]>;tag=[pid]a
To: <sip:111001@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:alice@[local_ip]:[local_port]>
[authentication]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=alice 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio 6020 RTP/AVP 96
a=rtpmap:96 L16/8000

  ]]></send>
  <recv response="100" optional="true" />
  <recv response="180" optional="true" />
  <recv response="200" rrs="true" />
  <send><![CDATA[

ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[remote_ip]:[remote_port]>;tag=[pid]a
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <pause milliseconds="200" />
  <send retrans="500"><![CDATA[

BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:alice@[remote_ip]:[remote_port]>;tag=[pid]a
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 3 BYE
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <recv response="200" />
</scenario>
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invite_routed_between_two_sipp_agents() {
    if !available("sipp") {
        return;
    }
    let p = pbx(vec![Algorithm::Md5]).await;
    let dir = tempfile::tempdir().unwrap();
    let remote = p.addr.to_string();
    let ooc = dir.path().join("callee-call.xml");
    std::fs::write(&ooc, CALLEE_OOC_XML).unwrap();
    let ooc = ooc.to_string_lossy().into_owned();
    let callee = sipp(
        dir.path(),
        "callee.xml",
        CALLEE_REGISTER_XML,
        free_port(),
        &[
            &remote,
            "-au",
            "bob",
            "-ap",
            "Bob-pw-000002",
            "-oocsf",
            &ooc,
        ],
    );
    // Wait for bob's binding.
    let t0 = Instant::now();
    while p.handle.bindings().is_empty() {
        if t0.elapsed() > Duration::from_secs(10) {
            let (_, out) = callee.wait(Duration::from_secs(1));
            panic!("bob never registered: {:?} {out}", p.handle.stats());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let caller_dir = tempfile::tempdir().unwrap();
    let caller = sipp(
        caller_dir.path(),
        "caller.xml",
        CALLER_XML,
        free_port(),
        &[&remote, "-au", "alice", "-ap", "Alice-pw-0001"],
    );
    let (cc, co) = tokio::task::spawn_blocking(move || caller.wait(Duration::from_secs(30)))
        .await
        .unwrap();
    let (ce, ceo) = tokio::task::spawn_blocking(move || callee.wait(Duration::from_secs(30)))
        .await
        .unwrap();
    assert_eq!(cc, Some(0), "caller: {co}");
    assert_eq!(ce, Some(0), "callee: {ceo}");
    let log = sipp_messages(dir.path());
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_agents_call_each_other_through_the_pbx_on_real_udp() {
    let p = pbx(vec![Algorithm::Sha256, Algorithm::Md5]).await;
    let mut a = agent("alice", "Alice-pw-0001", p.addr).await;
    let mut b = agent("bob", "Bob-pw-000002", p.addr).await;
    for h in [&mut a, &mut b] {
        h.register().await.unwrap();
        expect(h, "Registered", |e| {
            matches!(e, Event::Registered { .. }).then_some(())
        })
        .await;
    }
    let sdp = myturn_sip::sdp::Sdp::new("127.0.0.1:4000".parse().unwrap(), 8000, None, 1).render();
    let ca = a.invite("111001", &sdp).await.unwrap();
    let cb = expect(&mut b, "IncomingCall", |e| match e {
        Event::IncomingCall { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    b.answer(cb, &sdp).await.unwrap();
    expect(&mut a, "Answered", |e| {
        matches!(e, Event::Answered { .. }).then_some(())
    })
    .await;
    b.hangup(cb).await.unwrap();
    expect(&mut a, "CallEnded", |e| match e {
        Event::CallEnded { call, .. } if *call == ca => Some(()),
        _ => None,
    })
    .await;
    assert!(a.shutdown(Duration::from_secs(5)).await);
    assert!(b.shutdown(Duration::from_secs(5)).await);
    assert!(p.handle.bindings().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn torture_replay_over_udp_then_the_pbx_still_answers() {
    let p = pbx(vec![Algorithm::Sha256, Algorithm::Md5]).await;
    let sock = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let base = concat!(env!("CARGO_MANIFEST_DIR"), "/../myturn-sip/tests/torture");
    let mut sent = 0;
    for dir in ["rfc4475", "rfc5118"] {
        for e in std::fs::read_dir(format!("{base}/{dir}")).unwrap() {
            let data = std::fs::read(e.unwrap().path()).unwrap();
            sock.send_to(&data, p.addr).await.unwrap();
            sent += 1;
        }
    }
    assert_eq!(sent, 61);
    // Drain what came back: only SIP responses, each parseable or a 400
    // echoing a malformed request's headers.
    let mut buf = vec![0u8; 65_535];
    let mut answers = 0;
    while let Ok(Ok((n, _))) =
        tokio::time::timeout(Duration::from_millis(300), sock.recv_from(&mut buf)).await
    {
        assert!(
            buf[..n].starts_with(b"SIP/2.0 "),
            "{}",
            String::from_utf8_lossy(&buf[..n])
        );
        answers += 1;
    }
    assert!(answers >= 20, "{answers}");
    let options = format!(
        "OPTIONS sip:{0} SIP/2.0\r\nVia: SIP/2.0/UDP {1};branch=z9hG4bKalive\r\nFrom: <sip:x@{1}>;tag=1\r\n\
         To: <sip:{0}>\r\nCall-ID: alive\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        p.addr,
        sock.local_addr().unwrap()
    );
    sock.send_to(options.as_bytes(), p.addr).await.unwrap();
    let (n, _) = tokio::time::timeout(Duration::from_secs(2), sock.recv_from(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(msg::parse(&buf[..n]).unwrap().status(), Some(200));
    let st = p.handle.stats();
    assert!(st.rejected >= 15, "{st:?}");
    assert_eq!(st.blocks, 0, "malformed input alone blocks nobody");
}

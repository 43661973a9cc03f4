//! The built-in PBX on real UDP, with no peer but our own agents and a
//! raw socket: two of our agents call each other through it, and the
//! torture replay leaves it answering.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::pbx;
use myturn_sip::digest::Algorithm;
use myturn_sip::msg;
use myturn_sip::ua::Event;
use myturn_testkit::sip::{agent, expect, incoming, seen};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_agents_call_each_other_through_the_pbx_on_real_udp() {
    let p = pbx(vec![Algorithm::Sha256, Algorithm::Md5]).await;
    let mut a = agent("alice", "Alice-pw-0001", p.addr).await;
    let mut b = agent("bob", "Bob-pw-000002", p.addr).await;
    for h in [&mut a, &mut b] {
        h.register().await.unwrap();
        seen(h, "Registered", |e| matches!(e, Event::Registered { .. })).await;
    }
    let sdp = myturn_sip::sdp::Sdp::new("127.0.0.1:4000".parse().unwrap(), 8000, None, 1).render();
    let ca = a.invite("111001", &sdp).await.unwrap();
    let cb = incoming(&mut b).await;
    b.answer(cb, &sdp).await.unwrap();
    seen(&mut a, "Answered", |e| matches!(e, Event::Answered { .. })).await;
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
    // One unproven source: answered up to its budget (some answers go to
    // the port a message's Via names, not to this socket), then not at all.
    let budget = myturn_pbx::core::FloodConfig::default().answers.burst as usize;
    assert!((10..=budget).contains(&answers), "{answers}");
    assert!(p.handle.stats().unanswered > 0);
    // The budget refills (10 a second).
    tokio::time::sleep(Duration::from_millis(300)).await;
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

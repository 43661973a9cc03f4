//! Interop against Kamailio (Debian's `kamailio`), started by the test as
//! registrar (usrloc in memory, digest auth with MD5 or SHA-256) and
//! record-routing proxy (407 challenge on INVITE). Two of our agents
//! register, one calls the other through it, then BYE both ways; once
//! over UDP, and once over TLS (`kamailio-tls-modules`, a certificate from
//! a CA the test makes), where Kamailio reaches each agent down the
//! connection the agent opened. The script is myturn-testkit's
//! `kamailio/auth-proxy.cfg`.

use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use myturn_sip::sdp::Sdp;
use myturn_sip::ua::{EndedBy, Event};
use myturn_testkit::kamailio::{self, Kamailio, Script};
use myturn_testkit::sip::{agent, ended, expect, failed, incoming, seen};
use myturn_testkit::tls::TestCa;
use myturn_testkit::{ports, skip, wait, Peer, Scratch};

const A: (&str, &str) = ("111000", "alice-Pw1");
const B: (&str, &str) = ("111001", "bob-Pw22");

/// Kamailio with digest auth in `algorithm` for A and B, and a TLS
/// listener on `(port, tls.cfg)` when given; its UDP address.
fn start_kamailio(
    dir: &Path,
    algorithm: &str,
    tls: Option<(u16, &Path)>,
) -> Option<(Peer, SocketAddr)> {
    let mut needed = vec!["auth.so"];
    if tls.is_some() {
        needed.push("tls.so");
    }
    let modules = kamailio::modules(&needed)?;
    let mut k = Kamailio::new(dir, Script::AuthProxy, &modules)
        .set("algorithm", algorithm)
        .set("passwords", kamailio::passwords(&[A, B], "no-such-user"))
        .set("extensions", "");
    if let Some((port, config)) = tls {
        k = k.tls(port, config);
    }
    let port = k.port();
    Some((k.start(), format!("127.0.0.1:{port}").parse().unwrap()))
}

fn offer(port: u16, key: &str) -> String {
    Sdp::new(
        format!("127.0.0.1:{port}").parse().unwrap(),
        8000,
        Some(key.into()),
        5,
    )
    .render()
}

async fn registered(h: &mut myturn_sip::driver::SipHandle) -> Option<SocketAddr> {
    h.register().await.unwrap();
    expect(h, "registration", |e| match e {
        Event::Registered { public, .. } => Some(*public),
        Event::RegistrationFailed { code, reason } => {
            panic!("registration failed: {code} {reason}")
        }
        _ => None,
    })
    .await
}

async fn call_through_kamailio(algorithm: &str) {
    if !skip::installed("kamailio") {
        return;
    }
    let dir = Scratch::new();
    let Some((kamailio, proxy)) = start_kamailio(dir.path(), algorithm, None) else {
        return;
    };
    // What Kamailio challenges with, seen by a bare socket.
    let probe = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    probe
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let me = probe.local_addr().unwrap();
    let register = format!(
        "REGISTER sip:127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/UDP {me};branch=z9hG4bKprobe\r\n\
         From: <sip:{0}@127.0.0.1>;tag=p\r\nTo: <sip:{0}@127.0.0.1>\r\nCall-ID: probe\r\n\
         CSeq: 1 REGISTER\r\nContact: <sip:{0}@{me}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        A.0
    );
    probe.send_to(register.as_bytes(), proxy).unwrap();
    let mut buf = [0u8; 4096];
    let n = probe.recv(&mut buf).unwrap();
    let challenge = myturn_sip::msg::parse(&buf[..n]).unwrap();
    assert_eq!(challenge.status(), Some(401));
    let ch = myturn_sip::digest::Challenge::parse(challenge.header("WWW-Authenticate").unwrap())
        .unwrap();
    assert_eq!(
        ch.algorithm.as_str(),
        algorithm,
        "Kamailio challenges with {algorithm}"
    );
    assert!(ch.qop_auth);

    let mut a = agent(A.0, A.1, proxy).await;
    let mut b = agent(B.0, B.1, proxy).await;
    assert_eq!(registered(&mut a).await, None, "no NAT on loopback");
    registered(&mut b).await;

    // A calls B's extension; Kamailio challenges (407), looks B up, relays.
    let ca = a.invite(B.0, &offer(4000, "YWxpY2U")).await.unwrap();
    let (cb, o) = expect(&mut b, "IncomingCall", |e| match e {
        Event::IncomingCall {
            call,
            offer,
            from_user,
            ..
        } => {
            assert_eq!(from_user, A.0);
            Some((*call, offer.clone()))
        }
        _ => None,
    })
    .await;
    let o = o.expect("offer relayed untouched");
    assert_eq!(o.media, "127.0.0.1:4000".parse().unwrap());
    assert_eq!(o.key.as_deref(), Some("YWxpY2U"));
    seen(&mut a, "Ringing", |e| matches!(e, Event::Ringing { .. })).await;
    b.answer(cb, &offer(5000, "Ym9i")).await.unwrap();
    let ans = expect(&mut a, "Answered", |e| match e {
        Event::Answered { answer, .. } => Some(answer.clone()),
        _ => None,
    })
    .await
    .expect("answer relayed");
    assert_eq!(ans.key.as_deref(), Some("Ym9i"));
    seen(&mut b, "Confirmed", |e| {
        matches!(e, Event::Confirmed { .. })
    })
    .await;

    // A hangs up: the BYE follows Kamailio's Record-Route.
    a.hangup(ca).await.unwrap();
    ended(&mut b, "CallEnded remote", EndedBy::Remote).await;
    ended(&mut a, "CallEnded local", EndedBy::Local).await;

    // Second call, B hangs up this time.
    let _ = a.invite(B.0, &offer(4002, "YWxpY2U")).await.unwrap();
    let cb = incoming(&mut b).await;
    b.answer(cb, &offer(5002, "Ym9i")).await.unwrap();
    seen(&mut a, "Answered", |e| matches!(e, Event::Answered { .. })).await;
    seen(&mut b, "Confirmed", |e| {
        matches!(e, Event::Confirmed { .. })
    })
    .await;
    b.hangup(cb).await.unwrap();
    ended(&mut a, "CallEnded remote", EndedBy::Remote).await;

    // An unknown extension: Kamailio's 404 reaches A as a clear failure.
    let c3 = a.invite("199999", &offer(4004, "YWxpY2U")).await.unwrap();
    failed(&mut a, "404", c3, 404).await;

    assert!(a.shutdown(Duration::from_secs(5)).await);
    assert!(b.shutdown(Duration::from_secs(5)).await);
    drop(kamailio);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_call_through_kamailio_sha256() {
    call_through_kamailio("SHA-256").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_call_through_kamailio_md5() {
    call_through_kamailio("MD5").await;
}

#[tokio::test]
async fn kamailio_refuses_a_wrong_password() {
    if !skip::installed("kamailio") {
        return;
    }
    let dir = Scratch::new();
    let Some((_kamailio, proxy)) = start_kamailio(dir.path(), "SHA-256", None) else {
        return;
    };
    let mut a = agent(A.0, "not-the-password", proxy).await;
    a.register().await.unwrap();
    let code = expect(&mut a, "RegistrationFailed", |e| match e {
        Event::RegistrationFailed { code, .. } => Some(*code),
        Event::Registered { .. } => panic!("registered with a wrong password"),
        _ => None,
    })
    .await;
    assert_eq!(code, 401);
}

/// A CA, and a certificate for 127.0.0.1 and `localhost` it signed, in
/// `dir`: the agents' CA, and Kamailio's cert.pem/key.pem and tls.cfg.
fn tls_files(dir: &Path) -> TestCa {
    let ca = TestCa::new(dir, "Kamailio interop CA", "localhost");
    std::fs::write(
        dir.join("tls.cfg"),
        format!(
            "[server:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n\
             private_key = {0}/key.pem\ncertificate = {0}/cert.pem\n\n\
             [client:default]\nmethod = TLSv1.2+\nverify_certificate = no\nrequire_certificate = no\n",
            dir.display()
        ),
    )
    .unwrap();
    ca
}

async fn tls_agent(
    user: &str,
    password: &str,
    target: &myturn_sip::driver::TlsTarget,
) -> myturn_sip::driver::SipHandle {
    // `local` is replaced by the connection's own address.
    let mut cfg =
        myturn_sip::ua::Config::new("127.0.0.1:0".parse().unwrap(), target.proxy, user, password);
    cfg.expires = 120;
    myturn_sip::driver::start_tls(target.clone(), cfg, Box::new(rand_core::OsRng))
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_agents_call_through_kamailio_over_tls() {
    if !skip::installed("kamailio") {
        return;
    }
    let dir = Scratch::new();
    let ca = tls_files(dir.path());
    let tls_port = ports::free_tcp_port();
    let Some((mut kamailio, _udp)) = start_kamailio(
        dir.path(),
        "SHA-256",
        Some((tls_port, &dir.join("tls.cfg"))),
    ) else {
        return;
    };
    let proxy: SocketAddr = format!("127.0.0.1:{tls_port}").parse().unwrap();
    wait::tcp_listening(proxy, Duration::from_secs(10), Some(&mut kamailio)).await;
    let target = myturn_sip::driver::TlsTarget {
        proxy,
        name: rustls::pki_types::ServerName::try_from("localhost").unwrap(),
        connector: ca.connector(),
    };
    let mut a = tls_agent(A.0, A.1, &target).await;
    let mut b = tls_agent(B.0, B.1, &target).await;
    registered(&mut a).await;
    registered(&mut b).await;
    // Kamailio reaches B down B's own connection: the agents have no
    // other socket at all.
    let ca = a.invite(B.0, &offer(4010, "YWxpY2U")).await.unwrap();
    let (cb, o) = expect(&mut b, "IncomingCall over TLS", |e| match e {
        Event::IncomingCall { call, offer, .. } => Some((*call, offer.clone())),
        _ => None,
    })
    .await;
    assert_eq!(o.unwrap().key.as_deref(), Some("YWxpY2U"));
    b.answer(cb, &offer(5010, "Ym9i")).await.unwrap();
    let ans = expect(&mut a, "Answered", |e| match e {
        Event::Answered { answer, .. } => Some(answer.clone()),
        _ => None,
    })
    .await;
    assert_eq!(ans.unwrap().key.as_deref(), Some("Ym9i"));
    seen(&mut b, "Confirmed", |e| {
        matches!(e, Event::Confirmed { .. })
    })
    .await;
    b.hangup(cb).await.unwrap();
    expect(&mut a, "CallEnded remote", |e| {
        matches!(
            e,
            Event::CallEnded {
                by: EndedBy::Remote,
                call
            } if *call == ca
        )
        .then_some(())
    })
    .await;
    assert!(a.shutdown(Duration::from_secs(5)).await);
    assert!(b.shutdown(Duration::from_secs(5)).await);
    drop(kamailio);
}

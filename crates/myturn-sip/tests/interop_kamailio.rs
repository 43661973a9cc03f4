//! Interop against Kamailio (Debian's `kamailio`), started by the test as
//! registrar (usrloc in memory, digest auth with MD5 or SHA-256) and
//! record-routing proxy (407 challenge on INVITE). Two of our agents
//! register, one calls the other through it, then BYE both ways.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod peers;

use std::net::SocketAddr;
use std::process::Command;
use std::time::Duration;

use myturn_sip::sdp::Sdp;
use myturn_sip::ua::{EndedBy, Event};
use peers::*;

const A: (&str, &str) = ("111000", "alice-Pw1");
const B: (&str, &str) = ("111001", "bob-Pw22");

fn config(port: u16, algorithm: &str) -> String {
    format!(
        r#"#!KAMAILIO
debug=2
log_stderror=yes
children=1
dns=no
rev_dns=no
auto_aliases=no
listen=udp:127.0.0.1:{port}
alias="127.0.0.1:{port}"
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"

loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "xlog.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"

modparam("usrloc", "db_mode", 0)
modparam("auth", "algorithm", "{algorithm}")
modparam("auth", "secret", "myturn-interop")
modparam("rr", "enable_full_lr", 1)

route[PASSWORD] {{
    if ($au == "{au}") {{ $var(pw) = "{ap}"; }}
    else if ($au == "{bu}") {{ $var(pw) = "{bp}"; }}
    else {{ $var(pw) = "no-such-user"; }}
}}

request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    t_check_trans();
    if (is_method("REGISTER")) {{
        route(PASSWORD);
        if (!pv_www_authenticate("$td", "$var(pw)", "0")) {{
            www_challenge("$td", "1");
            exit;
        }}
        if ($au != $tU) {{ sl_send_reply("403", "Forbidden"); exit; }}
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
    if (is_method("INVITE")) {{
        route(PASSWORD);
        if (!pv_proxy_authenticate("$fd", "$var(pw)", "0")) {{
            proxy_challenge("$fd", "1");
            exit;
        }}
        consume_credentials();
    }}
    record_route();
    if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
    t_relay();
}}
"#,
        au = A.0,
        ap = A.1,
        bu = B.0,
        bp = B.1,
    )
}

fn start_kamailio(dir: &std::path::Path, algorithm: &str) -> (Peer, SocketAddr) {
    let port = free_port();
    let cfg = dir.join("kamailio.cfg");
    std::fs::write(&cfg, config(port, algorithm)).unwrap();
    let check = Command::new("kamailio")
        .arg("-c")
        .arg("-f")
        .arg(&cfg)
        .output()
        .unwrap();
    assert!(
        check.status.success(),
        "kamailio rejects the config: {}",
        String::from_utf8_lossy(&check.stderr)
    );
    let mut cmd = Command::new("kamailio");
    cmd.arg("-f")
        .arg(&cfg)
        .args(["-DD", "-E", "-m", "64", "-M", "8"])
        .arg("-Y")
        .arg(dir)
        .arg("-w")
        .arg(dir);
    let peer = Peer::spawn("kamailio", &mut cmd);
    wait_listening(port, Duration::from_secs(10));
    (peer, format!("127.0.0.1:{port}").parse().unwrap())
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
    if !available("kamailio") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (kamailio, proxy) = start_kamailio(dir.path(), algorithm);
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
    expect(&mut a, "Ringing", |e| {
        matches!(e, Event::Ringing { .. }).then_some(())
    })
    .await;
    b.answer(cb, &offer(5000, "Ym9i")).await.unwrap();
    let ans = expect(&mut a, "Answered", |e| match e {
        Event::Answered { answer, .. } => Some(answer.clone()),
        _ => None,
    })
    .await
    .expect("answer relayed");
    assert_eq!(ans.key.as_deref(), Some("Ym9i"));
    expect(&mut b, "Confirmed", |e| {
        matches!(e, Event::Confirmed { .. }).then_some(())
    })
    .await;

    // A hangs up: the BYE follows Kamailio's Record-Route.
    a.hangup(ca).await.unwrap();
    expect(&mut b, "CallEnded remote", |e| {
        matches!(
            e,
            Event::CallEnded {
                by: EndedBy::Remote,
                ..
            }
        )
        .then_some(())
    })
    .await;
    expect(&mut a, "CallEnded local", |e| {
        matches!(
            e,
            Event::CallEnded {
                by: EndedBy::Local,
                ..
            }
        )
        .then_some(())
    })
    .await;

    // Second call, B hangs up this time.
    let _ = a.invite(B.0, &offer(4002, "YWxpY2U")).await.unwrap();
    let cb = expect(&mut b, "IncomingCall", |e| match e {
        Event::IncomingCall { call, .. } => Some(*call),
        _ => None,
    })
    .await;
    b.answer(cb, &offer(5002, "Ym9i")).await.unwrap();
    expect(&mut a, "Answered", |e| {
        matches!(e, Event::Answered { .. }).then_some(())
    })
    .await;
    expect(&mut b, "Confirmed", |e| {
        matches!(e, Event::Confirmed { .. }).then_some(())
    })
    .await;
    b.hangup(cb).await.unwrap();
    expect(&mut a, "CallEnded remote", |e| {
        matches!(
            e,
            Event::CallEnded {
                by: EndedBy::Remote,
                ..
            }
        )
        .then_some(())
    })
    .await;

    // An unknown extension: Kamailio's 404 reaches A as a clear failure.
    let c3 = a.invite("199999", &offer(4004, "YWxpY2U")).await.unwrap();
    expect(&mut a, "404", |e| match e {
        Event::CallFailed {
            call, code: 404, ..
        } if *call == c3 => Some(()),
        _ => None,
    })
    .await;

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
    if !available("kamailio") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (_kamailio, proxy) = start_kamailio(dir.path(), "SHA-256");
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

//! Interop against SIPp (Debian's `sip-tester`), started by the tests:
//! SIPp as a registrar that challenges (MD5 verified by SIPp itself,
//! SHA-256 checked against SIPp's own nonce), as a UAS that challenges our
//! INVITE with 401, verifies the credentials and answers, and as a UAC
//! that calls us and hangs up. The scenarios are myturn-testkit's
//! `sipp/registrar.xml`, `uas.xml` and `uac.xml`.

use std::net::SocketAddr;
use std::time::Duration;

use myturn_sip::digest::{self, Algorithm, Credentials};
use myturn_sip::sdp::Sdp;
use myturn_sip::ua::{EndedBy, Event};
use myturn_testkit::sip::{agent, ended, expect, seen};
use myturn_testkit::sipp::{self, Scenario, Sipp};
use myturn_testkit::{ports, skip, wait, Scratch};

const USER: &str = "111000";
const PASSWORD: &str = "s3cret-Pw";

async fn register_against_sipp(algorithm: &str, verify: bool, password: &str) -> (bool, String) {
    if !skip::installed("sipp") {
        return (true, String::new());
    }
    let dir = Scratch::new();
    let port = ports::free_udp_port();
    // With MD5, SIPp checks the credentials itself (verifyauth); with
    // SHA-256 (which SIPp 3.6 cannot verify) it takes them, and the test
    // checks them against the nonce SIPp sent.
    let mut registrar = Sipp::on_port(dir.path(), Scenario::Registrar, port)
        .key("algorithm", algorithm)
        .key("user", USER)
        .key("password", PASSWORD)
        .traced_once();
    if !verify {
        registrar = registrar.flag("unverified");
    }
    let sipp = registrar.spawn();
    wait::udp_listening(port, Duration::from_secs(5), None);
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut ua = agent(USER, password, proxy).await;
    ua.register().await.unwrap();
    let mut other = Vec::new();
    let ok = ua
        .wait_for(Duration::from_secs(10), &mut other, |e| match e {
            Event::Registered { expires, .. } => Some(Ok(*expires)),
            Event::RegistrationFailed { code, .. } => Some(Err(*code)),
            _ => None,
        })
        .await;
    let registered = matches!(ok, Some(Ok(e)) if e == Duration::from_secs(120));
    if registered {
        assert!(
            ua.shutdown(Duration::from_secs(5)).await,
            "unregister answered"
        );
    }
    let (code, out) = sipp.wait(Duration::from_secs(20));
    if registered {
        assert_eq!(code, Some(0), "SIPp failed: {out}");
    }
    (registered, sipp::messages(dir.path()))
}

#[tokio::test]
async fn registers_with_md5_verified_by_sipp() {
    let (ok, log) = register_against_sipp("MD5", true, PASSWORD).await;
    assert!(ok);
    if !log.is_empty() {
        assert!(log.contains("algorithm=MD5"));
        assert!(log.contains("Expires: 0"), "unregistered on shutdown");
    }
}

#[tokio::test]
async fn wrong_password_is_refused_by_sipp() {
    let (ok, _) = register_against_sipp("MD5", true, "wrong").await;
    if skip::installed("sipp") {
        assert!(!ok);
    }
}

#[tokio::test]
async fn registers_with_sha256_against_sipps_nonce() {
    let (ok, log) = register_against_sipp("SHA-256", false, PASSWORD).await;
    assert!(ok);
    if log.is_empty() {
        return;
    }
    // The REGISTER SIPp received with credentials: check them here, by the
    // RFC 7616 formula written out, against the nonce SIPp issued.
    let auth_line = log
        .lines()
        .find(|l| l.starts_with("Authorization: Digest"))
        .expect("SIPp received credentials");
    let creds = Credentials::parse(&auth_line["Authorization: ".len()..]).unwrap();
    assert_eq!(creds.algorithm, Algorithm::Sha256);
    assert!(creds.nonce.ends_with("nonce") && creds.opaque.as_deref() == Some("op4que"));
    let (cnonce, nc) = creds.qop.clone().unwrap();
    use sha2::{Digest, Sha256};
    let h = |s: String| {
        Sha256::digest(s.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<String>()
    };
    let ha1 = h(format!("{USER}:sipp.test:{PASSWORD}"));
    let ha2 = h(format!("REGISTER:{}", creds.uri));
    let want = h(format!(
        "{ha1}:{}:{nc:08x}:{cnonce}:auth:{ha2}",
        creds.nonce
    ));
    assert_eq!(creds.response, want);
    assert!(digest::verify(&creds, PASSWORD, "REGISTER"));
}

fn offer(media: SocketAddr) -> String {
    Sdp::new(media, 8000, Some("ZmluZ2VycHJpbnQ".into()), 42).render()
}

#[tokio::test]
async fn sipp_uas_challenges_answers_and_takes_our_bye() {
    if !skip::installed("sipp") {
        return;
    }
    let dir = Scratch::new();
    let port = ports::free_udp_port();
    let sipp = Sipp::on_port(dir.path(), Scenario::Uas, port)
        .key("user", USER)
        .key("password", PASSWORD)
        .traced_once()
        .spawn();
    wait::udp_listening(port, Duration::from_secs(5), None);
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut ua = agent(USER, PASSWORD, proxy).await;
    let call = ua
        .invite("111001", &offer("127.0.0.1:4000".parse().unwrap()))
        .await
        .unwrap();
    seen(&mut ua, "Ringing", |e| matches!(e, Event::Ringing { .. })).await;
    let answer = expect(&mut ua, "Answered", |e| match e {
        Event::Answered { answer, .. } => Some(answer.clone()),
        _ => None,
    })
    .await
    .expect("SIPp's SDP");
    assert_eq!(answer.media, "127.0.0.1:6000".parse().unwrap());
    assert_eq!(answer.key.as_deref(), Some("c2lwcGtleQ"));
    ua.hangup(call).await.unwrap();
    ended(&mut ua, "CallEnded", EndedBy::Local).await;
    let log = sipp_succeeded(sipp, dir.path());
    // The INVITE carried our offer: L16 and the key attribute.
    assert!(log.contains("a=rtpmap:96 L16/8000"));
    assert!(log.contains("a=myturn-key:sha-256 ZmluZ2VycHJpbnQ"));
    // SIPp's verifyauth reads `Authorization`, so this UAS challenges with
    // 401; the proxy's 407 path is exercised against Kamailio.
    assert!(log.contains("\nAuthorization: Digest"));
}

#[tokio::test]
async fn sipp_uac_calls_us_and_hangs_up() {
    if !skip::installed("sipp") {
        return;
    }
    let dir = Scratch::new();
    // Our agent first (SIPp sends at once); its proxy is unused here.
    let mut ua = agent(USER, PASSWORD, "127.0.0.1:9".parse().unwrap()).await;
    let ours = ua.local_addr();
    let sipp = Sipp::new(dir.path(), Scenario::Uac)
        .remote(ours)
        .args(["-s", USER])
        .traced_once()
        .spawn();
    let (call, offer) = expect(&mut ua, "IncomingCall", |e| match e {
        Event::IncomingCall {
            call,
            offer,
            from_display,
            from_user,
            ..
        } => {
            assert_eq!(from_display.as_deref(), Some("SIPp caller"));
            assert_eq!(from_user, "sipp");
            Some((*call, offer.clone()))
        }
        _ => None,
    })
    .await;
    let offer = offer.expect("an offer");
    assert_eq!((offer.payload_type, offer.rate), (97, 16_000));
    let answer = Sdp::answer(
        &offer,
        "127.0.0.1:4002".parse().unwrap(),
        Some("b3Vycw".into()),
        9,
    );
    ua.answer(call, &answer.render()).await.unwrap();
    seen(&mut ua, "Confirmed", |e| {
        matches!(e, Event::Confirmed { .. })
    })
    .await;
    ended(&mut ua, "CallEnded by SIPp", EndedBy::Remote).await;
    let log = sipp_succeeded(sipp, dir.path());
    assert!(
        log.contains("a=rtpmap:97 L16/16000"),
        "our answer keeps the offered codec"
    );
    assert!(log.contains("a=myturn-key:sha-256 b3Vycw"));
}

/// Waits for SIPp to finish its call: it must succeed; its message log.
fn sipp_succeeded(sipp: myturn_testkit::Peer, dir: &std::path::Path) -> String {
    let (code, out) = sipp.wait(Duration::from_secs(20));
    assert_eq!(code, Some(0), "SIPp failed: {out}");
    sipp::messages(dir)
}

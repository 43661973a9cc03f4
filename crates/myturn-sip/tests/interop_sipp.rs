//! Interop against SIPp (Debian's `sip-tester`), started by the tests:
//! SIPp as a registrar that challenges (MD5 verified by SIPp itself,
//! SHA-256 checked against SIPp's own nonce), as a UAS that challenges our
//! INVITE with 401, verifies the credentials and answers, and as a UAC
//! that calls us and hangs up.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod peers;

use std::net::SocketAddr;
use std::time::Duration;

use myturn_sip::digest::{self, Algorithm, Credentials};
use myturn_sip::sdp::Sdp;
use myturn_sip::ua::{EndedBy, Event};
use peers::*;

const USER: &str = "111000";
const PASSWORD: &str = "s3cret-Pw";

fn registrar_xml(algorithm: &str, verify: bool) -> String {
    // With MD5, SIPp checks the credentials itself (verifyauth); with
    // SHA-256 (which SIPp 3.6 cannot verify) it records them and the test
    // checks them against the nonce SIPp sent.
    let check = if verify {
        format!(
            r#"<action><verifyauth assign_to="authvalid" username="{USER}" password="{PASSWORD}" /></action>"#
        )
    } else {
        r#"<action><assign assign_to="authvalid" value="1" /></action>"#.to_owned()
    };
    format!(
        r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="digest registrar">
  <recv request="REGISTER" />
  <send><![CDATA[

SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg[call_number]
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: Digest realm="sipp.test", nonce="[pid]x[call_number]nonce", algorithm={algorithm}, qop="auth", opaque="op4que"
Content-Length: 0

  ]]></send>
  <recv request="REGISTER">{check}</recv>
  <nop hide="true" test="authvalid" next="good" />
  <send><![CDATA[

SIP/2.0 403 Forbidden
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

  ]]></send>
  <recv request="REGISTER" timeout="500" />
  <label id="good" />
  <send><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg[call_number]
[last_Call-ID:]
[last_CSeq:]
[last_Contact:];expires=120
Content-Length: 0

  ]]></send>
  <recv request="REGISTER" />
  <send><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]reg[call_number]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

  ]]></send>
</scenario>
"#
    )
}

async fn register_against_sipp(algorithm: &str, verify: bool, password: &str) -> (bool, String) {
    if !available("sipp") {
        return (true, String::new());
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sipp = sipp(
        dir.path(),
        "registrar.xml",
        &registrar_xml(algorithm, verify),
        port,
        &[],
    );
    wait_listening(port, Duration::from_secs(5));
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
    (registered, sipp_messages(dir.path()))
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
    if available("sipp") {
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

const UAS_XML: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="UAS: challenge, then answer, then our BYE">
  <recv request="INVITE" />
  <send><![CDATA[

SIP/2.0 401 Unauthorized
[last_Via:]
[last_From:]
[last_To:];tag=[pid]uas[call_number]
[last_Call-ID:]
[last_CSeq:]
WWW-Authenticate: Digest realm="sipp.test", nonce="inv[pid]nonce", algorithm=MD5, qop="auth"
Content-Length: 0

  ]]></send>
  <recv request="ACK" />
  <recv request="INVITE">
    <action><verifyauth assign_to="authvalid" username="111000" password="s3cret-Pw" /></action>
  </recv>
  <nop hide="true" test="authvalid" next="good" />
  <recv request="NEVERCOMES" timeout="100" />
  <label id="good" />
  <send><![CDATA[

SIP/2.0 100 Trying
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

  ]]></send>
  <send><![CDATA[

SIP/2.0 180 Ringing
[last_Via:]
[last_From:]
[last_To:];tag=[pid]uas2[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:sipp@[local_ip]:[local_port]>
Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:];tag=[pid]uas2[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:sipp@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=sipp 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio 6000 RTP/AVP 96
a=rtpmap:96 L16/8000
a=myturn-key:sha-256 c2lwcGtleQ

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

#[tokio::test]
async fn sipp_uas_challenges_answers_and_takes_our_bye() {
    if !available("sipp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let sipp = sipp(dir.path(), "uas.xml", UAS_XML, port, &[]);
    wait_listening(port, Duration::from_secs(5));
    let proxy: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut ua = agent(USER, PASSWORD, proxy).await;
    let call = ua
        .invite("111001", &offer("127.0.0.1:4000".parse().unwrap()))
        .await
        .unwrap();
    expect(&mut ua, "Ringing", |e| {
        matches!(e, Event::Ringing { .. }).then_some(())
    })
    .await;
    let answer = expect(&mut ua, "Answered", |e| match e {
        Event::Answered { answer, .. } => Some(answer.clone()),
        _ => None,
    })
    .await
    .expect("SIPp's SDP");
    assert_eq!(answer.media, "127.0.0.1:6000".parse().unwrap());
    assert_eq!(answer.key.as_deref(), Some("c2lwcGtleQ"));
    ua.hangup(call).await.unwrap();
    expect(&mut ua, "CallEnded", |e| {
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
    let (code, out) = sipp.wait(Duration::from_secs(20));
    assert_eq!(code, Some(0), "SIPp failed: {out}");
    let log = sipp_messages(dir.path());
    // The INVITE carried our offer: L16 and the key attribute.
    assert!(log.contains("a=rtpmap:96 L16/8000"));
    assert!(log.contains("a=myturn-key:sha-256 ZmluZ2VycHJpbnQ"));
    // SIPp's verifyauth reads `Authorization`, so this UAS challenges with
    // 401; the proxy's 407 path is exercised against Kamailio.
    assert!(log.contains("\nAuthorization: Digest"));
}

const UAC_XML: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="UAC: calls us, then hangs up">
  <send retrans="500"><![CDATA[

INVITE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "SIPp caller" <sip:sipp@[local_ip]:[local_port]>;tag=[pid]uac[call_number]
To: <sip:[service]@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=sipp 7 7 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio 6002 RTP/AVP 97
a=rtpmap:97 L16/16000
a=myturn-key:sha-256 Y2FsbGVyLWtleQ

  ]]></send>
  <recv response="100" optional="true" />
  <recv response="180" />
  <recv response="200" rtd="true" />
  <send><![CDATA[

ACK sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "SIPp caller" <sip:sipp@[local_ip]:[local_port]>;tag=[pid]uac[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <pause milliseconds="300" />
  <send retrans="500"><![CDATA[

BYE sip:[service]@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: "SIPp caller" <sip:sipp@[local_ip]:[local_port]>;tag=[pid]uac[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 2 BYE
Contact: <sip:sipp@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <recv response="200" crlf="true" />
</scenario>
"#;

#[tokio::test]
async fn sipp_uac_calls_us_and_hangs_up() {
    if !available("sipp") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // Our agent first (SIPp sends at once); its proxy is unused here.
    let mut ua = agent(USER, PASSWORD, "127.0.0.1:9".parse().unwrap()).await;
    let ours = ua.local_addr();
    let port = free_port();
    let remote = ours.to_string();
    let sipp = sipp(dir.path(), "uac.xml", UAC_XML, port, &[&remote, "-s", USER]);
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
    expect(&mut ua, "Confirmed", |e| {
        matches!(e, Event::Confirmed { .. }).then_some(())
    })
    .await;
    expect(&mut ua, "CallEnded by SIPp", |e| {
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
    let (code, out) = sipp.wait(Duration::from_secs(20));
    assert_eq!(code, Some(0), "SIPp failed: {out}");
    let log = sipp_messages(dir.path());
    assert!(
        log.contains("a=rtpmap:97 L16/16000"),
        "our answer keeps the offered codec"
    );
    assert!(log.contains("a=myturn-key:sha-256 b3Vycw"));
}

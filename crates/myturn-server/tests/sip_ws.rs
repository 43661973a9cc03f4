//! SIP over WebSocket (RFC 7118) to the built-in PBX, on the server's
//! HTTP listener, as the browser client will use it: a client on `/sip`
//! (subprotocol `sip`) registers with its digest credentials from the
//! API, and a UDP agent's call to its extension reaches it down the same
//! socket. Refusals are the API's JSON errors.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use myturn_sip::digest::{respond, Challenge};
use myturn_sip::ua::Event;
use myturn_testkit::sip::expect;
use serde_json::Value;
use tokio_tungstenite::tungstenite::Message;

/// The text of the next SIP message on the socket (pings skipped).
async fn next_sip(ws: &mut common::ws::Ws) -> String {
    let deadline = Duration::from_secs(5);
    loop {
        let m = tokio::time::timeout(deadline, ws.next())
            .await
            .expect("a SIP message within 5 s")
            .expect("the socket is open")
            .expect("a readable frame");
        match m {
            Message::Text(t) => return t.to_string(),
            Message::Binary(b) => return String::from_utf8(b.to_vec()).unwrap(),
            _ => continue,
        }
    }
}

fn header<'a>(msg: &'a str, name: &str) -> Vec<&'a str> {
    msg.split("\r\n")
        .filter_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim().eq_ignore_ascii_case(name).then_some(v.trim())
        })
        .collect()
}

/// A REGISTER as a browser's SIP stack sends it over WebSocket (RFC
/// 7118 §5: the `.invalid` host in Via and Contact, `transport=ws`).
fn register(user: &Value, cseq: u32, auth: Option<String>) -> String {
    let sip = &user["sip"];
    let (name, domain) = (
        sip["username"].as_str().unwrap(),
        sip["domain"].as_str().unwrap(),
    );
    let auth = auth.map_or(String::new(), |a| format!("Authorization: {a}\r\n"));
    format!(
        "REGISTER sip:{domain} SIP/2.0\r\n\
         Via: SIP/2.0/WS df7jal23ls0d.invalid;branch=z9hG4bKws{cseq};rport\r\n\
         Max-Forwards: 70\r\n\
         From: <sip:{name}@{domain}>;tag=ws4711\r\n\
         To: <sip:{name}@{domain}>\r\n\
         Call-ID: ws-register-1@df7jal23ls0d.invalid\r\n\
         CSeq: {cseq} REGISTER\r\n\
         Contact: <sip:{name}@df7jal23ls0d.invalid;transport=ws>\r\n\
         Expires: 300\r\n\
         {auth}Content-Length: 0\r\n\r\n"
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_client_registers_and_is_called_down_its_socket() {
    let env = common::live(&common::config()).await;
    let alice = env.register("alice").await;
    let bob = env.register("bob").await;
    let req = env
        .api
        .ws_request("/sip", &[("sec-websocket-protocol", "sip".into())]);
    let (mut ws, resp) = tokio_tungstenite::connect_async(req).await.unwrap();
    assert_eq!(
        resp.headers()
            .get("sec-websocket-protocol")
            .and_then(|v| v.to_str().ok()),
        Some("sip")
    );

    // REGISTER, challenged, then with the API's credentials.
    ws.send(Message::Text(register(&alice, 1, None).into()))
        .await
        .unwrap();
    let challenge = next_sip(&mut ws).await;
    assert!(challenge.starts_with("SIP/2.0 401"), "{challenge}");
    let ch = Challenge::choose(header(&challenge, "WWW-Authenticate")).expect("a challenge");
    let sip = &alice["sip"];
    let uri = format!("sip:{}", sip["domain"].as_str().unwrap());
    let creds = respond(
        &ch,
        sip["username"].as_str().unwrap(),
        sip["password"].as_str().unwrap(),
        "REGISTER",
        &uri,
        "0a4f113b",
        1,
    );
    ws.send(Message::Text(
        register(&alice, 2, Some(creds.to_header_value())).into(),
    ))
    .await
    .unwrap();
    let ok = next_sip(&mut ws).await;
    assert!(ok.starts_with("SIP/2.0 200"), "{ok}");
    assert!(
        header(&ok, "Contact")
            .iter()
            .any(|c| c.contains("transport=ws")),
        "{ok}"
    );

    // Bob, on UDP, calls alice's extension: the INVITE comes down alice's
    // socket; she turns it down, and bob hears why.
    let mut b = common::sip::agent(&bob).await;
    b.register().await.unwrap();
    expect(&mut b, "Registered", |e| match e {
        Event::Registered { .. } => Some(()),
        Event::RegistrationFailed { code, reason } => panic!("{code} {reason}"),
        _ => None,
    })
    .await;
    let ext = sip["extension"].as_str().unwrap();
    let call = b.invite(ext, &common::sip::offer(4100)).await.unwrap();
    let invite = loop {
        let m = next_sip(&mut ws).await;
        if m.starts_with("INVITE ") {
            break m;
        }
    };
    assert!(
        invite.contains("From: ") && invite.contains("bob"),
        "{invite}"
    );
    let busy = {
        let mut lines: Vec<String> = vec!["SIP/2.0 486 Busy Here".into()];
        for name in ["Via", "From", "To", "Call-ID", "CSeq"] {
            for v in header(&invite, name) {
                let v = if name == "To" {
                    format!("{v};tag=wsbusy")
                } else {
                    v.to_owned()
                };
                lines.push(format!("{name}: {v}"));
            }
        }
        lines.push("Content-Length: 0".into());
        format!("{}\r\n\r\n", lines.join("\r\n"))
    };
    ws.send(Message::Text(busy.into())).await.unwrap();
    myturn_testkit::sip::failed(&mut b, "486", call, 486).await;
    assert!(env.metrics().await.contains("myturn_sip_bindings 2"));

    // Closing the socket is the end of the connection, not of the binding
    // (RFC 7118 leaves that to the registration's expiry).
    ws.close(None).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_the_sip_subprotocol_or_an_upgrade_it_is_a_clear_refusal() {
    let env = common::live(&common::config()).await;
    let req = env.api.ws_request("/sip", &[]);
    match tokio_tungstenite::connect_async(req).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status().as_u16(), 400);
            let body: Value = serde_json::from_slice(resp.body().as_ref().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], "sip_subprotocol_required");
        }
        other => panic!("expected 400, got {other:?}"),
    }
    let r = reqwest::get(format!("{}/sip", env.api.base)).await.unwrap();
    assert_eq!(r.status().as_u16(), 426);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "websocket_required");
}

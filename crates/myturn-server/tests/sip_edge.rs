//! The built-in PBX's flood guard through the server: its flags, the
//! blocked sources in the admin API (`GET /v1/admin/blocked`) with when
//! and why, lifting a block (`DELETE /v1/admin/blocked/{ip}`), and the
//! `/metrics` lines. Real HTTP, real UDP from a second loopback address.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use serde_json::Value;

const FLOODER: &str = "127.0.0.5";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flooding_source_is_listed_with_why_and_an_admin_unblocks_it() {
    let mut cfg = common::config();
    cfg.sip_rate_limit = "5/10".parse().unwrap();
    cfg.sip_trusted = "127.0.0.1".parse().unwrap(); // not the flooder's 127.0.0.5
    let app = common::app_with(&cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let served = app.clone();
    tokio::spawn(async move { served.serve(listener, std::future::pending()).await });
    let http = reqwest::Client::new();
    let sip = app.sip_addr().unwrap();

    let sock = tokio::net::UdpSocket::bind((FLOODER, 0)).await.unwrap();
    for _ in 0..50 {
        sock.send_to(b"not SIP\r\n\r\n", sip).await.unwrap();
    }
    // The listing is refreshed every 100 ms.
    let mut listed = Value::Null;
    for _ in 0..50 {
        listed = common::admin_get(&http, &base, "/v1/admin/blocked").await;
        if listed["total"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(listed["total"], 1, "{listed}");
    let b = &listed["sources"][0];
    assert_eq!(b["ip"], FLOODER, "{listed}");
    assert_eq!(b["reason"], "flood");
    assert!(b["packets"].as_u64().unwrap() >= 30, "{b}");
    let (since, until) = (b["since"].as_u64().unwrap(), b["until"].as_u64().unwrap());
    assert!(
        until >= since + 59 && until <= since + 61,
        "{b}: --sip-block-secs 60"
    );

    let metrics = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for line in [
        "myturn_sip_blocked_sources 1",
        "myturn_sip_flood_blocks_total 1",
    ] {
        assert!(metrics.contains(line), "{line} in {metrics}");
    }
    assert!(
        !metrics.contains("myturn_sip_blocked_bytes_total 0\n"),
        "{metrics}"
    );

    let del = |ip: &str| {
        http.delete(format!("{base}/v1/admin/blocked/{ip}"))
            .bearer_auth(common::ADMIN)
            .send()
    };
    assert_eq!(del(FLOODER).await.unwrap().status(), 204);
    assert_eq!(
        del(FLOODER).await.unwrap().status(),
        404,
        "no longer blocked"
    );
    let r = del("not-an-ip").await.unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_ip");
    let listed = common::admin_get(&http, &base, "/v1/admin/blocked").await;
    assert_eq!(listed["total"], 0, "{listed}");
    // Heard again: an OPTIONS is answered.
    let options = format!(
        "OPTIONS sip:{sip} SIP/2.0\r\nVia: SIP/2.0/UDP {0};rport;branch=z9hG4bKback\r\nFrom: <sip:x@{0}>;tag=1\r\n\
         To: <sip:{sip}>\r\nCall-ID: back\r\nCSeq: 1 OPTIONS\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n",
        sock.local_addr().unwrap()
    );
    sock.send_to(options.as_bytes(), sip).await.unwrap();
    let mut buf = [0u8; 2048];
    let n = tokio::time::timeout(Duration::from_secs(2), sock.recv(&mut buf))
        .await
        .unwrap()
        .unwrap();
    assert!(
        buf[..n].starts_with(b"SIP/2.0 200"),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    // Without the admin token: refused.
    let r = http
        .get(format!("{base}/v1/admin/blocked"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

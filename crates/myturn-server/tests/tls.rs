//! TLS on the server's own terms (issue #14): unusable certificates are
//! clear start errors, limits behind a trusted proxy, the cleartext
//! warning, and SIP over TLS to the built-in PBX with a rustls client.
//! What curl and openssl check of HTTPS is in the `interop` target
//! (`tests/interop/https.rs`).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use tokio::io::AsyncWriteExt;

#[tokio::test]
async fn unusable_certificates_are_clear_start_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pki = common::pki(dir.path());
    let mut cfg = common::tls_config(&pki);
    cfg.tls_key = Some(dir.path().join("missing.pem"));
    let e = myturn_server::App::new(&cfg, None).unwrap_err().to_string();
    assert!(e.contains("missing.pem"), "{e}");
    // A key that belongs to another certificate.
    let other = rcgen::KeyPair::generate().unwrap();
    std::fs::write(dir.path().join("other.pem"), other.serialize_pem()).unwrap();
    cfg.tls_key = Some(dir.path().join("other.pem"));
    let e = myturn_server::App::new(&cfg, None).unwrap_err().to_string();
    assert!(e.contains("does not belong"), "{e}");
    cfg.tls_key = Some(pki.cert.clone());
    let e = myturn_server::App::new(&cfg, None).unwrap_err().to_string();
    assert!(e.contains("no PEM private key"), "{e}");
}

/// Registers `n` users through `base` as client `xff` (an
/// `X-Forwarded-For` header), returning the statuses.
async fn register_as(http: &reqwest::Client, base: &str, xff: &str, names: &[&str]) -> Vec<u16> {
    let mut out = Vec::new();
    for name in names {
        let r = http
            .post(format!("{base}/v1/users"))
            .header("x-forwarded-for", xff)
            .json(&serde_json::json!({ "name": name }))
            .send()
            .await
            .unwrap();
        out.push(r.status().as_u16());
    }
    out
}

async fn plain_server(cfg: &myturn_server::Config) -> String {
    let app = myturn_server::App::new(cfg, None).unwrap();
    format!("http://{}", common::serve(&app).await)
}

#[tokio::test]
async fn behind_a_trusted_proxy_limits_see_the_real_client_and_others_cannot_forge_it() {
    let http = reqwest::Client::new();
    let names: Vec<String> = (0..11).map(|i| format!("user{i}")).collect();
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    // The proxy (this test, on 127.0.0.1) is trusted: each forwarded
    // client has its own registration budget (10 at once).
    let mut cfg = common::config();
    cfg.trusted_proxy = vec!["127.0.0.0/8".parse().unwrap()];
    let base = plain_server(&cfg).await;
    let a = register_as(&http, &base, "203.0.113.10", &names[..11]).await;
    assert_eq!(a[..10], [201; 10]);
    assert_eq!(a[10], 429, "client A used up its own budget");
    let b = register_as(&http, &base, "203.0.113.11", &["other"]).await;
    assert_eq!(b, [201], "client B is somebody else");
    // Not trusted: the header is the client's own claim and is ignored;
    // everybody is 127.0.0.1 and shares one budget.
    let base = plain_server(&common::config()).await;
    let a = register_as(&http, &base, "203.0.113.10", &names[..10]).await;
    assert_eq!(a, [201; 10]);
    let b = register_as(&http, &base, "203.0.113.11", &["other"]).await;
    assert_eq!(b, [429], "a forged X-Forwarded-For buys no new budget");
}

#[tokio::test]
async fn plain_http_on_a_public_address_is_allowed_but_flagged() {
    use tower::ServiceExt;
    let mut cfg = common::config();
    cfg.listen = "0.0.0.0:8080".parse().unwrap();
    let app = myturn_server::App::new(&cfg, None).unwrap();
    let resp = app
        .router()
        .oneshot(
            axum::http::Request::get("/healthz")
                .body(axum::body::Body::empty())
                .unwrap(),
        )
        .await
        .unwrap();
    let body = axum::body::to_bytes(resp.into_body(), 65_536)
        .await
        .unwrap();
    let health: myturn_wire::Health = serde_json::from_slice(&body).unwrap();
    assert!(!health.tls);
    let w = health.warning.expect("a warning");
    assert!(w.contains("cleartext") && w.contains("--tls-cert"), "{w}");
    // Loopback (the default), or behind a trusted TLS proxy: no warning.
    cfg.trusted_proxy = vec!["10.0.0.1".parse().unwrap()];
    let app = myturn_server::App::new(&cfg, None).unwrap();
    assert!(app.state.settings.warning.is_none());
    let app = myturn_server::App::new(&common::config(), None).unwrap();
    assert!(app.state.settings.warning.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_over_tls_answers_and_refuses_what_is_not_tls() {
    use tokio::io::AsyncReadExt;
    let dir = tempfile::tempdir().unwrap();
    let pki = common::pki(dir.path());
    let app = myturn_server::App::new(&common::tls_config(&pki), None).unwrap();
    let sips = app.sips_addr().expect("the PBX takes SIP over TLS");
    // Clients are told so.
    assert!(
        app.state
            .settings
            .sip_domain
            .ends_with(&format!(":{};transport=tls", sips.port())),
        "{}",
        app.state.settings.sip_domain
    );
    common::serve(&app).await;
    tokio::time::sleep(Duration::from_millis(100)).await;

    // Half a handshake, held open: nobody else waits for it.
    let mut stuck = tokio::net::TcpStream::connect(sips).await.unwrap();
    stuck.write_all(&[0x16, 0x03, 0x01, 0x00]).await.unwrap();
    // Plain SIP to the TLS port: the connection is closed, promptly.
    let mut plain = tokio::net::TcpStream::connect(sips).await.unwrap();
    plain
        .write_all(b"OPTIONS sip:127.0.0.1 SIP/2.0\r\nContent-Length: 0\r\n\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 512];
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            match plain.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {} // a TLS alert, then the close
            }
        }
    })
    .await;
    assert!(closed.is_ok(), "plain SIP to the TLS port was not refused");

    // A real TLS client: OPTIONS answered, a ping answered with a pong.
    let connector = pki.connector();
    let tcp = tokio::net::TcpStream::connect(sips).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut tls = connector.connect(name, tcp).await.unwrap();
    let local = tls.get_ref().0.local_addr().unwrap();
    let options = format!(
        "OPTIONS sip:{sips} SIP/2.0\r\nVia: SIP/2.0/TLS {local};rport;branch=z9hG4bKtls1\r\n\
         From: <sip:probe@{local}>;tag=1\r\nTo: <sip:{sips}>\r\nCall-ID: tls-probe\r\nCSeq: 1 OPTIONS\r\n\
         Max-Forwards: 70\r\nContent-Length: 0\r\n\r\n\r\n\r\n"
    );
    tls.write_all(options.as_bytes()).await.unwrap();
    let mut got = Vec::new();
    let answered = tokio::time::timeout(Duration::from_secs(5), async {
        // The pong (CRLF) and the 200 come in either order.
        let done = |g: &[u8]| {
            (g.starts_with(b"\r\nSIP/2.0 200") && g.ends_with(b"\r\n\r\n"))
                || (g.starts_with(b"SIP/2.0 200") && g.ends_with(b"\r\n\r\n\r\n"))
        };
        while !done(&got) {
            let n = tls.read(&mut buf).await.unwrap();
            assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
            got.extend_from_slice(&buf[..n]);
        }
    })
    .await;
    assert!(answered.is_ok(), "{}", String::from_utf8_lossy(&got));
    drop(stuck);
}

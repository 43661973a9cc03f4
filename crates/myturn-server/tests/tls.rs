//! HTTPS and WSS on `--listen` (issue #14), checked with the tools an
//! operator would use: `curl --cacert` and `openssl s_client`, against a
//! certificate made by the test (its own CA, with rcgen). Also: a renewed
//! certificate is served without a restart, a broken renewal keeps the old
//! one, and plain HTTP to the TLS port, TLS to a plain port and a
//! truncated handshake are refused cleanly while the server goes on.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use tokio::io::AsyncWriteExt;

/// A CA and a server certificate for `localhost` and 127.0.0.1 signed by
/// it, as PEM files in `dir`: (ca.pem, cert.pem, key.pem).
struct Pki {
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    ca_cert: rcgen::Certificate,
    ca_key: rcgen::KeyPair,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let ca_key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "myTurn test CA");
        let ca_cert = params.self_signed(&ca_key).unwrap();
        let pki = Pki {
            ca: dir.join("ca.pem"),
            cert: dir.join("cert.pem"),
            key: dir.join("key.pem"),
            ca_cert,
            ca_key,
        };
        std::fs::write(&pki.ca, pki.ca_cert.pem()).unwrap();
        pki.issue("first");
        pki
    }

    /// Writes a new server certificate (its CN says `label`).
    fn issue(&self, label: &str) {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".into(), "127.0.0.1".into()]).unwrap();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, format!("myturn {label}"));
        let cert = params.signed_by(&key, &self.ca_cert, &self.ca_key).unwrap();
        // Key first, then the certificate: the watcher may look between.
        std::fs::write(&self.key, key.serialize_pem()).unwrap();
        std::fs::write(&self.cert, cert.pem()).unwrap();
    }
}

async fn serve_tls(pki: &Pki) -> SocketAddr {
    let mut cfg = common::config();
    cfg.tls_cert = Some(pki.cert.clone());
    cfg.tls_key = Some(pki.key.clone());
    let app = myturn_server::App::new(&cfg, None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(app.serve(listener, std::future::pending()));
    addr
}

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .args(args)
        .output()
        .unwrap();
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The CN of the certificate the server presents, as `openssl s_client`
/// sees it after verifying it against `ca`.
fn served_cn(addr: SocketAddr, ca: &Path) -> String {
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!(
            "openssl s_client -connect {addr} -servername localhost -CAfile {} -verify_return_error </dev/null 2>&1",
            ca.display()
        ))
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        text.contains("Verify return code: 0 (ok)"),
        "openssl could not verify: {text}"
    );
    text.lines()
        .find(|l| l.trim_start().starts_with("subject="))
        .unwrap_or_default()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_is_served_and_checked_by_curl_and_openssl() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let addr = serve_tls(&pki).await;
    let url = format!("https://localhost:{}/healthz", addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", addr.port());
    let ca = pki.ca.to_str().unwrap();
    let (ok, out) = tokio::task::spawn_blocking({
        let (url, resolve, ca) = (url.clone(), resolve.clone(), ca.to_owned());
        move || curl(&["-i", "--cacert", &ca, "--resolve", &resolve, &url])
    })
    .await
    .unwrap();
    assert!(ok, "{out}");
    assert!(out.starts_with("HTTP/1.1 200"), "{out}");
    assert!(
        out.to_ascii_lowercase()
            .contains("strict-transport-security: max-age=31536000"),
        "{out}"
    );
    assert!(out.contains("\"tls\":true"), "{out}");
    assert!(!out.contains("\"warning\""), "{out}");
    // Without the CA, curl refuses the certificate.
    let (ok, out) = tokio::task::spawn_blocking(move || curl(&["--resolve", &resolve, &url]))
        .await
        .unwrap();
    assert!(!ok, "{out}");
    assert!(out.contains("certificate"), "{out}");
    let cn = tokio::task::spawn_blocking({
        let ca = pki.ca.clone();
        move || served_cn(addr, &ca)
    })
    .await
    .unwrap();
    assert!(cn.contains("myturn first"), "{cn}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewed_certificate_is_served_without_a_restart_and_a_broken_one_is_not() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let addr = serve_tls(&pki).await;
    let cn = |pki: &Pki| {
        let ca = pki.ca.clone();
        tokio::task::spawn_blocking(move || served_cn(addr, &ca))
    };
    assert!(cn(&pki).await.unwrap().contains("myturn first"));
    // Renewal: new files in place. Served within the watch period.
    tokio::time::sleep(Duration::from_millis(1100)).await; // a new mtime
    pki.issue("renewed");
    let t0 = Instant::now();
    loop {
        let now = cn(&pki).await.unwrap();
        if now.contains("myturn renewed") {
            break;
        }
        assert!(
            t0.elapsed() < Duration::from_secs(8),
            "still serving: {now}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    eprintln!(
        "renewed certificate served {:?} after the files changed",
        t0.elapsed()
    );
    // A broken renewal (a key that is not PEM): the renewed certificate
    // stays, and handshakes keep working.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    std::fs::write(&pki.key, "not a key").unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(cn(&pki).await.unwrap().contains("myturn renewed"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_protocols_and_truncated_handshakes_are_refused_and_the_server_goes_on() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let addr = serve_tls(&pki).await;
    // A client that opens a connection, sends half a ClientHello and
    // then nothing: held open while the others are served.
    let mut stuck = tokio::net::TcpStream::connect(addr).await.unwrap();
    stuck
        .write_all(&[0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00])
        .await
        .unwrap();
    // And one that sends half and hangs up.
    let mut gone = tokio::net::TcpStream::connect(addr).await.unwrap();
    gone.write_all(&[0x16, 0x03, 0x01]).await.unwrap();
    drop(gone);
    // Plain HTTP to the TLS port: a clean failure, not a hang.
    let plain = format!("http://{addr}/healthz");
    let t0 = Instant::now();
    let (ok, out) = tokio::task::spawn_blocking(move || curl(&[&plain]))
        .await
        .unwrap();
    assert!(!ok, "{out}");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "plain HTTP hung: {out}"
    );
    // Meanwhile HTTPS works.
    let url = format!("https://localhost:{}/healthz", addr.port());
    let resolve = format!("localhost:{}:127.0.0.1", addr.port());
    let ca = pki.ca.to_str().unwrap().to_owned();
    let (ok, out) =
        tokio::task::spawn_blocking(move || curl(&["--cacert", &ca, "--resolve", &resolve, &url]))
            .await
            .unwrap();
    assert!(ok && out.contains("\"tls\":true"), "{out}");
    drop(stuck);

    // TLS to a plain-HTTP server: refused cleanly, and that server goes on.
    let cfg = common::config();
    let app = myturn_server::App::new(&cfg, None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let plain_addr = listener.local_addr().unwrap();
    tokio::spawn(app.serve(listener, std::future::pending()));
    let https = format!("https://{plain_addr}/healthz");
    let (ok, out) = tokio::task::spawn_blocking(move || curl(&["-k", &https]))
        .await
        .unwrap();
    assert!(!ok, "{out}");
    let http = format!("http://{plain_addr}/healthz");
    let (ok, out) = tokio::task::spawn_blocking(move || curl(&[&http]))
        .await
        .unwrap();
    assert!(ok && out.contains("\"tls\":false"), "{out}");
}

#[tokio::test]
async fn unusable_certificates_are_clear_start_errors() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let mut cfg = common::config();
    cfg.tls_cert = Some(pki.cert.clone());
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(app.serve(listener, std::future::pending()));
    base
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
    let pki = Pki::new(dir.path());
    let mut cfg = common::config();
    cfg.tls_cert = Some(pki.cert.clone());
    cfg.tls_key = Some(pki.key.clone());
    let app = myturn_server::App::new(&cfg, None).unwrap();
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    tokio::spawn(app.serve(listener, std::future::pending()));
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
    let mut roots = rustls::RootCertStore::empty();
    roots.add(pki.ca_cert.der().clone()).unwrap();
    let config = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
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

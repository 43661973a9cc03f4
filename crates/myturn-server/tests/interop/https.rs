//! HTTPS and WSS on `--listen` (issue #14), checked with the tools an
//! operator would use: `curl --cacert` and `openssl s_client`, against a
//! certificate made by the test (its own CA, myturn-testkit's). Also: a
//! renewed certificate is served without a restart, a broken renewal keeps
//! the old one, and plain HTTP to the TLS port, TLS to a plain port and a
//! truncated handshake are refused cleanly while the server goes on.
//!
//! Without curl or openssl: SKIPPED, and a failure under CI. The TLS tests
//! that need no program but the server are the pure target `tls`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use myturn_testkit::skip;
use myturn_testkit::tls::TestCa;
use tokio::io::AsyncWriteExt;

use crate::common;

/// When curl and openssl are here to check it: a server serving HTTPS
/// with a certificate from a CA of the test's own ([`common::pki`]); the
/// CA's directory, the CA, and the server's address.
async fn served() -> Option<(tempfile::TempDir, TestCa, SocketAddr)> {
    if !skip::all_installed(&["curl", "openssl"]) {
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let pki = common::pki(dir.path());
    let app = myturn_server::App::new(&common::tls_config(&pki), None).unwrap();
    let addr = common::serve(&app).await;
    Some((dir, pki, addr))
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
    let Some((_dir, pki, addr)) = served().await else {
        return;
    };
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
    let Some((_dir, pki, addr)) = served().await else {
        return;
    };
    let cn = |pki: &TestCa| {
        let ca = pki.ca.clone();
        tokio::task::spawn_blocking(move || served_cn(addr, &ca))
    };
    assert!(cn(&pki).await.unwrap().contains("myturn first"));
    // Renewal: new files in place. Served within the watch period.
    tokio::time::sleep(Duration::from_millis(1100)).await; // a new mtime
    pki.issue("myturn renewed");
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
    let Some((_dir, pki, addr)) = served().await else {
        return;
    };
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
    let app = myturn_server::App::new(&common::config(), None).unwrap();
    let plain_addr = common::serve(&app).await;
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

//! An external PBX (Asterisk) learns a new account only after its
//! configuration reload, so the first REGISTER may be refused for a moment.
//! The client retries with backoff for a few seconds, then gives up with a
//! clear message. The registrar here is a scripted stand-in on real UDP
//! (the real-Asterisk path is covered by the server waiting for the reload
//! and by docs/asterisk.md).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use myturn_client::call::Client;
use tokio::net::UdpSocket;

/// Answers each REGISTER: `403 Forbidden` for the first `refusals`, then
/// `200 OK`. Counts the REGISTERs it saw.
async fn registrar(refusals: usize) -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let sock = UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = sock.local_addr().unwrap();
    let seen = Arc::new(AtomicUsize::new(0));
    let count = seen.clone();
    tokio::spawn(async move {
        let mut buf = vec![0u8; 4096];
        loop {
            let Ok((n, from)) = sock.recv_from(&mut buf).await else {
                return;
            };
            let req = String::from_utf8_lossy(&buf[..n]).into_owned();
            if !req.starts_with("REGISTER ") {
                continue;
            }
            let i = count.fetch_add(1, Ordering::SeqCst);
            let copy = |name: &str| {
                req.lines()
                    .filter(|l| {
                        l.split(':')
                            .next()
                            .is_some_and(|h| h.trim().eq_ignore_ascii_case(name))
                    })
                    .map(|l| format!("{}\r\n", l.trim_end()))
                    .collect::<String>()
            };
            let status = if i < refusals {
                "403 Forbidden"
            } else {
                "200 OK"
            };
            let to = copy("To").trim_end().to_owned();
            let mut resp = format!(
                "SIP/2.0 {status}\r\n{}{}{to};tag=reg{i}\r\n{}{}",
                copy("Via"),
                copy("From"),
                copy("Call-ID"),
                copy("CSeq"),
            );
            if i >= refusals {
                let contact = copy("Contact");
                resp.push_str(&format!("{};expires=300\r\n", contact.trim_end()));
            }
            resp.push_str("Content-Length: 0\r\n\r\n");
            let _ = sock.send_to(resp.as_bytes(), from).await;
        }
    });
    (addr, seen)
}

async fn server(sip_domain: std::net::SocketAddr) -> String {
    let mut cfg = myturn_server::Config::defaults();
    cfg.pbx = myturn_server::pbx::PbxKind::None;
    cfg.sip_domain = Some(sip_domain.to_string());
    common::serve(&cfg).await
}

#[tokio::test]
async fn a_refused_first_register_is_retried_until_the_pbx_knows_the_account() {
    let (pbx, seen) = registrar(2).await;
    let base = server(pbx).await;
    let client = Client::connect(&base, "alice", "127.0.0.1".parse().unwrap(), 8000, None)
        .await
        .expect("registered after the PBX caught up");
    assert_eq!(seen.load(Ordering::SeqCst), 3, "two refusals, then success");
    assert!(client.sip.stats().await.is_ok());
}

#[tokio::test]
async fn a_register_refused_for_good_gives_up_with_a_clear_message() {
    let (pbx, seen) = registrar(usize::MAX).await;
    let base = server(pbx).await;
    let t0 = Instant::now();
    let err = Client::connect(&base, "bob", "127.0.0.1".parse().unwrap(), 8000, None)
        .await
        .expect_err("never accepted");
    let msg = err.to_string();
    assert!(
        msg.contains("403") && msg.contains("still refused"),
        "{msg}"
    );
    let tries = seen.load(Ordering::SeqCst);
    assert!(
        (3..=10).contains(&tries),
        "retried with backoff: {tries} tries"
    );
    assert!(
        t0.elapsed() < Duration::from_secs(20),
        "gave up in {:?}",
        t0.elapsed()
    );
}

//! The HTTP flood: one loopback address (127.0.0.2) floods `POST
//! /v1/users` on many connections and holds open more connections than
//! its per-IP limit, while a second address (127.0.0.3) registers two
//! users who go ready and are paired. The second address is served
//! throughout; the flooder is refused by the per-IP limits (connections
//! answered 429 and closed, requests 429 before routing), as `/metrics`
//! counts.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use myturn_server::RateLimit;
use serde_json::{json, Value};

const FLOODER: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2));
const LEGIT: IpAddr = IpAddr::V4(Ipv4Addr::new(127, 0, 0, 3));

fn client(from: IpAddr) -> reqwest::Client {
    reqwest::Client::builder()
        .local_address(from)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

async fn register(http: &reqwest::Client, base: &str, name: &str) -> String {
    let r = http
        .post(format!("{base}/v1/users"))
        .json(&json!({ "name": name }))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201, "{name}");
    r.json::<Value>().await.unwrap()["token"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_flood_from_one_address_does_not_stop_another_from_pairing() {
    let mut cfg = common::config();
    cfg.http_conn_limit = 64;
    cfg.http_rate_limit = "100/200".parse::<RateLimit>().unwrap();
    let app = common::app_with(&cfg);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr: SocketAddr = listener.local_addr().unwrap();
    let base = format!("http://{addr}");
    let served = app.clone();
    tokio::spawn(async move { served.serve(listener, std::future::pending()).await });

    // The flood: 32 connections posting registrations for 3 s, and 200
    // more connections held open (past the 64 allowed).
    let flood_for = Duration::from_secs(3);
    let (created, limited, other) = (
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
        Arc::new(AtomicU64::new(0)),
    );
    let mut posters = Vec::new();
    for w in 0..32 {
        let (http, base) = (client(FLOODER), base.clone());
        let (created, limited, other) = (created.clone(), limited.clone(), other.clone());
        posters.push(tokio::spawn(async move {
            let t0 = Instant::now();
            let mut n = 0u64;
            while t0.elapsed() < flood_for {
                n += 1;
                let r = http
                    .post(format!("{base}/v1/users"))
                    .json(&json!({ "name": format!("flood{w}x{n}") }))
                    .send()
                    .await;
                let counter = match r.map(|r| r.status().as_u16()) {
                    Ok(201) => &created,
                    Ok(429) => &limited,
                    _ => &other,
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
        }));
    }
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..200 {
        let s = tokio::net::TcpSocket::new_v4().unwrap();
        s.bind(SocketAddr::new(FLOODER, 0)).unwrap();
        if let Ok(c) = s.connect(addr).await {
            held.push(c);
        }
    }
    // Refused connections are told 429 and closed.
    for c in &mut held {
        let mut buf = [0u8; 64];
        let read = tokio::time::timeout(Duration::from_millis(20), c.peek(&mut buf)).await;
        if let Ok(Ok(n)) = read {
            if buf[..n].starts_with(b"HTTP/1.1 429") {
                refused += 1;
            }
        }
    }

    // Meanwhile the other address registers two users who pair.
    let legit = client(LEGIT);
    let t0 = Instant::now();
    let a = register(&legit, &base, "legit_a").await;
    let b = register(&legit, &base, "legit_b").await;
    for t in [&a, &b] {
        let r = legit
            .put(format!("{base}/v1/me/status"))
            .bearer_auth(t)
            .json(&json!({ "status": "ready" }))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 200);
    }
    let r = legit
        .get(format!("{base}/v1/me/peer?wait=5"))
        .bearer_auth(&a)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "paired");
    let peer: Value = r.json().await.unwrap();
    assert_eq!(peer["peer"]["name"], "legit_b", "{peer}");
    let took = t0.elapsed();
    for p in posters {
        p.await.unwrap();
    }
    drop(held);

    // The flooder was held off by the per-IP limits.
    let (created, limited) = (
        created.load(Ordering::Relaxed),
        limited.load(Ordering::Relaxed),
    );
    assert!(limited > created, "429s {limited}, created {created}");
    assert!(
        created <= 10,
        "the core's per-IP registration limit: {created}"
    );
    assert!(refused > 100, "connections refused with 429: {refused}");
    let metrics = legit
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let value = |name: &str| -> u64 {
        metrics
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name} ")))
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{name} in {metrics}"))
    };
    assert!(value("myturn_http_connections_refused_total") >= refused);
    assert!(value("myturn_http_requests_limited_total") > 0);
    eprintln!(
        "legit registered, readied and paired in {took:?} under a flood: {created} created, {limited} refused with 429, {} other, {refused} connections refused",
        other.load(Ordering::Relaxed)
    );
}

//! `cargo bench -p myturn-server --bench registrations`
//!
//! Registration throughput with the Asterisk backend, config writes
//! included, and the ratio against the naive strategy of rewriting the
//! files on every registration, both measured in this run on this machine.
//! Also pairings per second through the HTTP router.
//!
//! `MYTURN_BENCH_USERS` (default 10000) sets the population.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use axum::body::Body;
use axum::http::Request;
use http_body_util::BodyExt;
use myturn_server::core::cases::views::{Counts, PbxUsers};
use myturn_server::pbx::sync::SyncState;
use myturn_server::pbx::PbxKind;
use myturn_server::{App, Config, ReloadMethod};
use serde_json::Value;
use tower::ServiceExt;

fn config(dir: &std::path::Path) -> Config {
    let mut cfg = Config::defaults();
    cfg.pbx = PbxKind::Asterisk;
    cfg.asterisk_conf_dir = dir.into();
    cfg.reload = ReloadMethod::None;
    cfg.max_users = 1_000_000;
    cfg.lease = 86_400;
    cfg.rate_limits = myturn_server::Switch::Off;
    cfg
}

async fn post_user(app: &App, name: &str) -> Value {
    let req = Request::post("/v1/users")
        .header("content-type", "application/json")
        .body(Body::from(format!(r#"{{"name":"{name}"}}"#)))
        .unwrap();
    let resp = app.router().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 201);
    serde_json::from_slice(&resp.into_body().collect().await.unwrap().to_bytes()).unwrap()
}

async fn put_status(app: &App, token: &str, status: &str) {
    let req = Request::put("/v1/me/status")
        .header("content-type", "application/json")
        .header("authorization", format!("Bearer {token}"))
        .body(Body::from(format!(r#"{{"status":"{status}"}}"#)))
        .unwrap();
    let resp = app.router().oneshot(req).await.unwrap();
    assert_eq!(resp.status(), 200);
}

fn file_users(dir: &std::path::Path) -> usize {
    std::fs::read_to_string(dir.join("myturn_sip.conf"))
        .map(|t| t.matches("\ntype=friend").count())
        .unwrap_or(0)
}

/// Registers `names` through the API with the sync task running, all at
/// once, as a burst of clients would: each answer waits until the PBX
/// holds that user, so one by one every registration would cost a whole
/// coalescing window. Returns the time until every answer arrived and the
/// files on disk hold `expect_total` users.
async fn coalesced(
    app: &App,
    dir: &std::path::Path,
    names: &[String],
    expect_total: usize,
) -> Duration {
    let start = Instant::now();
    let mut burst = tokio::task::JoinSet::new();
    for n in names {
        let (app, n) = (app.clone(), n.clone());
        burst.spawn(async move {
            post_user(&app, &n).await;
        });
    }
    while let Some(done) = burst.join_next().await {
        done.unwrap();
    }
    while file_users(dir) != expect_total {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    start.elapsed()
}

/// The naive strategy: every registration rewrites both files (render,
/// write, fsync, rename) before the next one.
async fn naive(app: &App, names: &[String], st: &mut SyncState) -> Duration {
    let start = Instant::now();
    for n in names {
        post_user(app, n).await;
        let users = app.state.run(PbxUsers).await.unwrap();
        app.state.pbx.sync_once(&users, st).await.unwrap();
    }
    start.elapsed()
}

fn spawn_serving(app: &App) -> tokio::sync::oneshot::Sender<()> {
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let served = app.clone();
    tokio::spawn(async move {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        served
            .serve(l, async {
                let _ = rx.await;
            })
            .await
            .unwrap();
    });
    tx
}

/// How many times the PBX files were written so far.
fn config_writes(app: &App) -> u64 {
    app.state
        .pbx
        .counters
        .config_writes
        .load(std::sync::atomic::Ordering::Relaxed)
}

fn names(prefix: &str, range: std::ops::Range<usize>) -> Vec<String> {
    range.map(|i| format!("{prefix}{i:06}")).collect()
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: usize = std::env::var("MYTURN_BENCH_USERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let tail = (n / 10).max(1);
    println!("registrations benchmark: N = {n} users, measured tail = last {tail} registrations");

    // A. Coalesced, 0 → N, until the files hold all N.
    let dir_a = tempfile::tempdir().unwrap();
    let app_a = App::new(&config(dir_a.path()), None).unwrap();
    let stop_a = spawn_serving(&app_a);
    let t_a = coalesced(&app_a, dir_a.path(), &names("a", 0..n), n).await;
    let writes_a = config_writes(&app_a);
    let _ = stop_a.send(());

    // B. Naive at N: pre-populate N - tail (one write), then time the last
    //    `tail` registrations, each rewriting the files.
    let dir_b = tempfile::tempdir().unwrap();
    let app_b = App::new(&config(dir_b.path()), None).unwrap();
    let mut st = SyncState::default();
    for name in names("b", 0..n - tail) {
        post_user(&app_b, &name).await;
    }
    let users = app_b.state.run(PbxUsers).await.unwrap();
    app_b.state.pbx.sync_once(&users, &mut st).await.unwrap();
    let t_b = naive(&app_b, &names("b", n - tail..n), &mut st).await;
    assert_eq!(file_users(dir_b.path()), n);

    // C. Coalesced at N, same conditions as B.
    let dir_c = tempfile::tempdir().unwrap();
    let app_c = App::new(&config(dir_c.path()), None).unwrap();
    let stop_c = spawn_serving(&app_c);
    coalesced(&app_c, dir_c.path(), &names("c", 0..n - tail), n - tail).await;
    let before = config_writes(&app_c);
    let t_c = coalesced(&app_c, dir_c.path(), &names("c", n - tail..n), n).await;
    let writes_c = config_writes(&app_c) - before;
    let _ = stop_c.send(());

    let rate = |k: usize, t: Duration| k as f64 / t.as_secs_f64();
    println!(
        "A coalesced 0→{n}: {:.3} s, {:.0} registrations/s, {writes_a} file writes",
        t_a.as_secs_f64(),
        rate(n, t_a)
    );
    println!(
        "B naive {}→{n}: {:.3} s, {:.0} registrations/s, {} file writes",
        n - tail,
        t_b.as_secs_f64(),
        rate(tail, t_b),
        2 * tail
    );
    println!(
        "C coalesced {}→{n}: {:.3} s, {:.0} registrations/s, {writes_c} file writes",
        n - tail,
        t_c.as_secs_f64(),
        rate(tail, t_c)
    );
    println!(
        "ratio coalesced/naive at {n} users (C/B): {:.1}x",
        rate(tail, t_c) / rate(tail, t_b)
    );

    // Pairings per second through the router: 2 users per pairing, each
    // ready → paired → busy.
    let dir_p = tempfile::tempdir().unwrap();
    let mut cfg = config(dir_p.path());
    cfg.pbx = PbxKind::None;
    let app_p = App::new(&cfg, None).unwrap();
    let mut tokens = Vec::new();
    for name in names("p", 0..1000) {
        tokens.push(
            post_user(&app_p, &name).await["token"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let rounds = 20;
    let start = Instant::now();
    for _ in 0..rounds {
        for t in &tokens {
            put_status(&app_p, t, "ready").await;
        }
        for t in &tokens {
            put_status(&app_p, t, "busy").await;
        }
    }
    let t_p = start.elapsed();
    let pairings = app_p.state.run(Counts).await.unwrap().pairings_total;
    assert_eq!(pairings as usize, rounds * tokens.len() / 2);
    println!(
        "pairings: {pairings} in {:.3} s = {:.0} pairings/s ({:.0} status requests/s)",
        t_p.as_secs_f64(),
        pairings as f64 / t_p.as_secs_f64(),
        (2 * rounds * tokens.len()) as f64 / t_p.as_secs_f64()
    );
}

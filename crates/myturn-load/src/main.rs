//! `myturn-load`: drives a running `myturn-server` with many concurrent
//! virtual users from a separate process and reports latency percentiles.
//!
//! `myturn-load http`: each virtual user registers, then loops until the deadline:
//! `PUT ready` → `GET /v1/me/peer?wait=5` (pairing) → `GET /v1/me` →
//! `PUT busy`, and logs out at the end. Requests answered `409` because the
//! partner moved first are expected under this churn and counted apart.
//!
//! `myturn-load ws`: see the `ws` module.
//!
//! `myturn-load handshakes`: see the `handshakes` module.
//!
//! `myturn-load ops`: see the `ops` module.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context as _};
use clap::Parser;
use myturn_wire::{CreateUserRequest, CreateUserResponse, RequestedStatus, SetStatusRequest};
use serde_json::json;
use tokio::sync::Mutex;

mod handshakes;
mod ops;
mod ws;

/// Load generator for myturn-server: run it as a separate process against
/// a running server.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    #[command(subcommand)]
    mode: Mode,
}

#[derive(Debug, clap::Subcommand)]
enum Mode {
    /// HTTP request latency under concurrent virtual users.
    Http(Args),
    /// Event streams: memory per idle stream, push vs 1 s polling pairing
    /// latency, lobby fan-out.
    Ws(ws::WsArgs),
    /// New connections per second (TLS handshakes with an https:// server),
    /// each carrying one `GET /healthz`.
    Handshakes(handshakes::HandshakeArgs),
    /// Ops/s, CPU and Redis commands per use case over one or more nodes.
    Ops(ops::OpsArgs),
}

/// Arguments of the `http` mode.
#[derive(Debug, clap::Args)]
struct Args {
    /// Base URL of the server.
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Concurrent virtual users.
    #[arg(long, default_value_t = 200)]
    users: usize,
    /// Seconds of load after everyone registered.
    #[arg(long, default_value_t = 10)]
    duration: u64,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

#[derive(Default)]
struct Samples {
    by_kind: BTreeMap<&'static str, Vec<u32>>,
    conflicts: u64,
    errors: u64,
}

impl Samples {
    fn add(&mut self, kind: &'static str, d: Duration) {
        self.by_kind
            .entry(kind)
            .or_default()
            .push(u32::try_from(d.as_micros()).unwrap_or(u32::MAX));
    }
}

fn pct(sorted: &[u32], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    f64::from(sorted.get(idx).copied().unwrap_or(0)) / 1000.0
}

struct Vu {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl Vu {
    async fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&SetStatusRequest>,
    ) -> anyhow::Result<(u16, Duration)> {
        let mut rb = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(&self.token);
        if let Some(b) = body {
            rb = rb.json(b);
        }
        let start = Instant::now();
        let resp = rb.send().await?;
        let status = resp.status().as_u16();
        let _ = resp.bytes().await?;
        Ok((status, start.elapsed()))
    }
}

async fn run_vu(
    i: usize,
    args: Arc<Args>,
    http: reqwest::Client,
    deadline: Instant,
    samples: Arc<Mutex<Samples>>,
) -> anyhow::Result<()> {
    let name = format!("load{}x{i:05}", std::process::id() % 10_000);
    let start = Instant::now();
    let resp = http
        .post(format!("{}/v1/users", args.server))
        .json(&CreateUserRequest { name: name.clone() })
        .send()
        .await?;
    if resp.status() != 201 {
        bail!("register {name}: {}", resp.status());
    }
    let user: CreateUserResponse = resp.json().await?;
    let reg_time = start.elapsed();
    let vu = Vu {
        http,
        base: args.server.clone(),
        token: user.token,
    };
    let mut local = Samples::default();
    local.add("register", reg_time);
    let status = SetStatusRequest::new;
    let (ready, busy) = (
        status(RequestedStatus::Ready),
        status(RequestedStatus::Busy),
    );
    while Instant::now() < deadline {
        let (s, d) = vu
            .req(reqwest::Method::PUT, "/v1/me/status", Some(&ready))
            .await?;
        tally(&mut local, "put_status", s, d);
        let (s, d) = vu
            .req(reqwest::Method::GET, "/v1/me/peer?wait=5", None)
            .await?;
        if s == 200 {
            local.add("pairing_wait", d);
        } else {
            tally(&mut local, "pairing_wait", s, d);
        }
        let (s, d) = vu.req(reqwest::Method::GET, "/v1/me", None).await?;
        tally(&mut local, "get_me", s, d);
        // Reference: a no-op route on the same server and connections, so
        // the API's cost is reported against the HTTP floor of this run.
        let (s, d) = vu.req(reqwest::Method::GET, "/healthz", None).await?;
        tally(&mut local, "ref_healthz", s, d);
        let (s, d) = vu
            .req(reqwest::Method::PUT, "/v1/me/status", Some(&busy))
            .await?;
        tally(&mut local, "put_status", s, d);
    }
    let _ = vu.req(reqwest::Method::DELETE, "/v1/me", None).await;
    let mut all = samples.lock().await;
    for (k, v) in local.by_kind {
        all.by_kind.entry(k).or_default().extend(v);
    }
    all.conflicts += local.conflicts;
    all.errors += local.errors;
    Ok(())
}

fn tally(s: &mut Samples, kind: &'static str, status: u16, d: Duration) {
    match status {
        200..=299 => s.add(kind, d),
        409 => s.conflicts += 1,
        _ => s.errors += 1,
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().mode {
        Mode::Http(args) => http_mode(Arc::new(args)).await,
        Mode::Ws(args) => ws::run(args).await,
        Mode::Handshakes(args) => handshakes::run(args).await,
        Mode::Ops(args) => ops::run(args).await,
    }
}

async fn http_mode(args: Arc<Args>) -> anyhow::Result<()> {
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.users)
        .timeout(Duration::from_secs(30))
        .build()?;
    let health = http
        .get(format!("{}/healthz", args.server))
        .send()
        .await
        .with_context(|| format!("cannot reach {}", args.server))?;
    if !health.status().is_success() {
        bail!("{} answered /healthz with {}", args.server, health.status());
    }
    let samples = Arc::new(Mutex::new(Samples::default()));
    let deadline = Instant::now() + Duration::from_secs(args.duration);
    let started = Instant::now();
    let mut tasks = Vec::with_capacity(args.users);
    for i in 0..args.users {
        tasks.push(tokio::spawn(run_vu(
            i,
            args.clone(),
            http.clone(),
            deadline,
            samples.clone(),
        )));
    }
    let mut failed = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failed += 1;
                eprintln!("virtual user failed: {e:#}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("virtual user panicked: {e}");
            }
        }
    }
    // Rates are over the load window; the last long-polls may run past it.
    let elapsed = deadline
        .saturating_duration_since(started)
        .as_secs_f64()
        .max(1e-3);
    let wall = started.elapsed().as_secs_f64();
    let mut s = samples.lock().await;
    let mut report = serde_json::Map::new();
    let mut total = 0usize;
    for (kind, v) in s.by_kind.iter_mut() {
        v.sort_unstable();
        total += v.len();
        report.insert(
            (*kind).to_owned(),
            json!({"count": v.len(), "p50_ms": pct(v, 0.50), "p99_ms": pct(v, 0.99), "max_ms": pct(v, 1.0)}),
        );
    }
    let pairing_count = s.by_kind.get("pairing_wait").map_or(0, Vec::len);
    let p50 = |k: &str| s.by_kind.get(k).map_or(0.0, |v| pct(v, 0.5));
    let p99 = |k: &str| s.by_kind.get(k).map_or(0.0, |v| pct(v, 0.99));
    let ratio = |a: f64, b: f64| if b > 0.0 { a / b } else { 0.0 };
    let put_vs_ref = (
        ratio(p50("put_status"), p50("ref_healthz")),
        ratio(p99("put_status"), p99("ref_healthz")),
    );
    let out = json!({
        "users": args.users,
        "seconds": elapsed,
        "wall_seconds": wall,
        "requests": total,
        "requests_per_s": total as f64 / elapsed,
        "pairings_per_s": pairing_count as f64 / 2.0 / elapsed,
        "conflicts_409": s.conflicts,
        "errors": s.errors,
        "failed_users": failed,
        "latency": report,
        "put_status_vs_healthz": {"p50": put_vs_ref.0, "p99": put_vs_ref.1},
    });
    if args.json {
        println!("{out}");
    } else {
        println!("{} users, {:.1} s window ({wall:.1} s wall), {} requests ({:.0}/s), {} expected 409s, {} errors", args.users, elapsed, total, total as f64 / elapsed, s.conflicts, s.errors);
        println!(
            "{:<14} {:>8} {:>9} {:>9} {:>9}",
            "request", "count", "p50 ms", "p99 ms", "max ms"
        );
        for (kind, v) in &s.by_kind {
            println!(
                "{kind:<14} {:>8} {:>9.2} {:>9.2} {:>9.2}",
                v.len(),
                pct(v, 0.5),
                pct(v, 0.99),
                pct(v, 1.0)
            );
        }
        println!(
            "put_status / ref_healthz latency: p50 {:.2}x, p99 {:.2}x",
            put_vs_ref.0, put_vs_ref.1
        );
    }
    if failed > 0 || s.errors > 0 {
        bail!(
            "{failed} virtual users failed, {} unexpected responses",
            s.errors
        );
    }
    Ok(())
}

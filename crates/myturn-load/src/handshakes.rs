//! `myturn-load handshakes`: how many new connections per second the
//! server takes, each carrying one `GET /healthz` and then closed. Against
//! an `https://` server every request is a full TLS handshake (no
//! connection reuse, no session resumption); against `http://` it is a
//! bare TCP connection, the reference. Reports connections per second,
//! client-side latency percentiles and, with `--server-pid`, server CPU
//! per connection.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::bail;
use myturn_client::tls::Trust;

/// Arguments of the `handshakes` mode.
#[derive(Debug, clap::Args)]
pub struct HandshakeArgs {
    /// Base URL of the server (`https://` for TLS handshakes).
    #[arg(long, default_value = "http://127.0.0.1:8080")]
    server: String,
    /// Connections opened at the same time.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Seconds of load.
    #[arg(long, default_value_t = 5)]
    duration: u64,
    /// Trust this CA (PEM) for an https:// server.
    #[arg(long)]
    ca_cert: Option<std::path::PathBuf>,
    /// The server's process id, to read its CPU time.
    #[arg(long)]
    server_pid: Option<u32>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// utime + stime of `pid`, seconds.
fn cpu_secs(pid: Option<u32>) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid?)).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?;
    Some(ticks as f64 / 100.0)
}

/// Runs the `handshakes` mode.
pub async fn run(args: HandshakeArgs) -> anyhow::Result<()> {
    let trust = Trust::from_ca_cert(args.ca_cert.as_deref())?;
    let url = format!("{}/healthz", args.server.trim_end_matches('/'));
    // No idle connections kept: every request opens (and handshakes) anew.
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(0)
        .use_preconfigured_tls((*trust.client_config()).clone())
        .build()?;
    // One request first, so a bad URL or certificate fails clearly.
    if let Err(e) = http
        .get(&url)
        .send()
        .await
        .and_then(|r| r.error_for_status())
    {
        bail!("{url}: {e}");
    }
    let cpu0 = cpu_secs(args.server_pid);
    let t0 = Instant::now();
    let end = t0 + Duration::from_secs(args.duration);
    let errors = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let mut tasks = Vec::new();
    for _ in 0..args.concurrency {
        let (http, url, errors) = (http.clone(), url.clone(), errors.clone());
        tasks.push(tokio::spawn(async move {
            let mut lat = Vec::new();
            while Instant::now() < end {
                let s = Instant::now();
                match http.get(&url).send().await {
                    Ok(r) if r.status().is_success() => {
                        let _ = r.bytes().await;
                        lat.push(s.elapsed().as_secs_f64() * 1000.0);
                    }
                    _ => {
                        errors.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    }
                }
            }
            lat
        }));
    }
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await?);
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = match (cpu0, cpu_secs(args.server_pid)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    lat.sort_by(f64::total_cmp);
    let p = |q: f64| {
        lat.get(((lat.len() as f64 - 1.0) * q).round() as usize)
            .copied()
            .unwrap_or(0.0)
    };
    let rate = lat.len() as f64 / secs;
    let cpu_us = cpu.map(|c| c * 1e6 / lat.len().max(1) as f64);
    let errors = errors.load(std::sync::atomic::Ordering::Relaxed);
    if args.json {
        println!(
            "{}",
            serde_json::json!({
                "server": args.server, "connections": lat.len(), "per_second": rate,
                "p50_ms": p(0.5), "p99_ms": p(0.99), "server_cpu_us_per_connection": cpu_us,
                "errors": errors,
            })
        );
    } else {
        println!(
            "{}: {} connections in {secs:.1} s = {rate:.0}/s, p50 {:.2} ms, p99 {:.2} ms, server CPU {} per connection, {errors} errors",
            args.server,
            lat.len(),
            p(0.5),
            p(0.99),
            cpu_us.map_or("n/a".to_owned(), |c| format!("{c:.0} µs")),
        );
    }
    Ok(())
}

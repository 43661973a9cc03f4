//! `myturn-load ws`: N concurrent WebSocket users against a running server
//! started with `--admission moderated --rate-limits off` and an admin
//! token. Measures, in one run:
//!
//! 1. server memory per idle event stream (RSS before/after opening N);
//! 2. pairing notification latency, `ready` → `paired` received, pushed
//!    over the streams, side by side with the original design's client that
//!    polls `GET /v1/me/peer` every second;
//! 3. lobby fan-out: chat lines delivered per second to every waiting user.
//!
//! `--server` may be given once per node: user i registers, opens its
//! stream and goes ready on node i mod N, so the two sides of a timed pair
//! sit on different nodes. With `--interests TAGS` the polling and lobby
//! parts give way to the interests figure: everyone but the timed users
//! waits in the pool (`only_interests`, three tags of their own), and the
//! timed pairs alternate between a pair sharing one of TAGS (two more
//! random ones each) and a plain pair, so both draws are timed against
//! the same pool in the same run.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure};
use futures_util::StreamExt;
use myturn_client::tls::Trust;
use myturn_wire::{
    AdmitRequest, CreateUserRequest, CreateUserResponse, LobbySay, RequestedStatus,
    SetStatusRequest,
};
use serde_json::json;
use tokio::sync::{watch, Semaphore};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::Message;

mod interests;

/// Arguments of the `ws` mode.
#[derive(Debug, clap::Args)]
pub struct WsArgs {
    /// Base URL of a node; give it once per node.
    #[arg(long = "server", default_value = "http://127.0.0.1:8080")]
    servers: Vec<String>,
    /// Concurrent users, each with an open event stream.
    #[arg(long, default_value_t = 10_000)]
    users: usize,
    /// Pairs timed with push (and as many again with polling).
    #[arg(long, default_value_t = 500)]
    pairs: usize,
    /// Lobby lines broadcast for the fan-out figure.
    #[arg(long, default_value_t = 20)]
    lobby_lines: usize,
    /// The server's admin token.
    #[arg(long, env = "MYTURN_ADMIN_TOKEN", hide_env_values = true)]
    admin_token: String,
    /// The servers' process ids, to read their memory (summed).
    #[arg(long = "server-pid")]
    server_pids: Vec<u32>,
    /// Time interest pairs (tags out of this many) against plain ones, next
    /// to a pool of everyone else (0: the polling and lobby figures).
    #[arg(long, default_value_t = 0)]
    interests: usize,
    /// Trust this CA (PEM) for an https:// server (streams then use wss://).
    #[arg(long)]
    ca_cert: Option<std::path::PathBuf>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn rss_kb(pids: &[u32]) -> Option<u64> {
    if pids.is_empty() {
        return None;
    }
    let mut sum = 0;
    for pid in pids {
        let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
        sum += text
            .lines()
            .find(|l| l.starts_with("VmRSS:"))?
            .split_whitespace()
            .nth(1)?
            .parse::<u64>()
            .ok()?;
    }
    Some(sum)
}

fn pct(v: &mut [f64], p: f64) -> f64 {
    if v.is_empty() {
        return 0.0;
    }
    v.sort_by(f64::total_cmp);
    let i = ((v.len() as f64 - 1.0) * p).round() as usize;
    v.get(i).copied().unwrap_or(0.0)
}

struct User {
    /// Index of the node this user lives on.
    node: usize,
    name: String,
    token: String,
    paired: watch::Receiver<Option<Instant>>,
}

/// Registrations answered 503 and tried again (a shared state under
/// contention answers `state_unavailable` when a write kept conflicting).
static REGISTER_RETRIES: AtomicU64 = AtomicU64::new(0);

/// Timed pairings whose `paired` did not arrive within 5 s.
static PUSH_MISSED: AtomicU64 = AtomicU64::new(0);

/// Streams that ended (closed by the server or failed) before the end.
static STREAMS_CLOSED: AtomicU64 = AtomicU64::new(0);

async fn register(http: &reqwest::Client, base: &str, name: &str) -> anyhow::Result<String> {
    let mut tries = 0;
    let r = loop {
        let r = http
            .post(format!("{base}/v1/users"))
            .json(&CreateUserRequest {
                name: name.to_owned(),
            })
            .send()
            .await?;
        if r.status() != 503 || tries == 5 {
            break r;
        }
        tries += 1;
        if REGISTER_RETRIES.fetch_add(1, Ordering::Relaxed) == 0 {
            eprintln!(
                "register {name}: 503 {}",
                r.text().await.unwrap_or_default()
            );
        }
        tokio::time::sleep(Duration::from_millis(20 * tries)).await;
    };
    ensure!(
        r.status() == 201,
        "register {name}: {} (start the server with --rate-limits off)",
        r.status()
    );
    let user: CreateUserResponse = r.json().await?;
    Ok(user.token)
}

/// `PUT /v1/me/status` `ready`; the answer's status code.
async fn ready(http: &reqwest::Client, base: &str, token: &str) -> anyhow::Result<u16> {
    ready_with(
        http,
        base,
        token,
        &SetStatusRequest::new(RequestedStatus::Ready),
    )
    .await
}

/// `PUT /v1/me/status` with this body; the answer's status code.
pub(crate) async fn ready_with(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    body: &SetStatusRequest,
) -> anyhow::Result<u16> {
    Ok(http
        .put(format!("{base}/v1/me/status"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await?
        .status()
        .as_u16())
}

/// Every one of `users` goes ready on its node with `body(i)`, 64 at a
/// time; whether all were answered 200.
async fn ready_all(
    http: &reqwest::Client,
    bases: &[String],
    users: &[User],
    body: impl Fn(usize) -> SetStatusRequest,
) -> anyhow::Result<bool> {
    let sem = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::with_capacity(users.len());
    for (i, u) in users.iter().enumerate() {
        let (http, base, tok, sem, body) = (
            http.clone(),
            bases[u.node].clone(),
            u.token.clone(),
            sem.clone(),
            body(i),
        );
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await;
            ready_with(&http, &base, &tok, &body).await
        }));
    }
    let mut all = true;
    for t in tasks {
        all &= t.await?? == 200;
    }
    Ok(all)
}

/// `POST /v1/admin/admit` for one user.
async fn admit(http: &reqwest::Client, base: &str, token: &str, name: &str) -> anyhow::Result<()> {
    let body = AdmitRequest {
        name: Some(name.to_owned()),
        all: false,
    };
    admin(http, base, token, "/v1/admin/admit", &body).await
}

async fn admin(
    http: &reqwest::Client,
    base: &str,
    token: &str,
    path: &str,
    body: &impl serde::Serialize,
) -> anyhow::Result<()> {
    let r = http
        .post(format!("{base}{path}"))
        .bearer_auth(token)
        .json(body)
        .send()
        .await?;
    ensure!(r.status().is_success(), "{path}: {}", r.status());
    Ok(())
}

/// Opens a stream and spawns its reader: records when `paired` arrives,
/// counts lobby lines.
async fn open_stream(
    trust: &Trust,
    addr: &str,
    token: &str,
    lobby: Arc<AtomicU64>,
) -> anyhow::Result<watch::Receiver<Option<Instant>>> {
    let mut req = format!("{addr}/v1/events").into_client_request()?;
    req.headers_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    let (mut ws, _) = tokio_tungstenite::connect_async_tls_with_config(
        req,
        None,
        false,
        Some(trust.ws_connector()),
    )
    .await?;
    let (tx, rx) = watch::channel(None);
    tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            if let Message::Text(t) = m {
                let s = t.as_str();
                if s.contains(r#""type":"paired""#) {
                    let _ = tx.send(Some(Instant::now()));
                } else if s.contains(r#""type":"lobby_message""#) {
                    lobby.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
        STREAMS_CLOSED.fetch_add(1, Ordering::Relaxed);
    });
    Ok(rx)
}

/// Runs the `ws` mode.
pub async fn run(args: WsArgs) -> anyhow::Result<()> {
    ensure!(
        args.users >= 4 * args.pairs + 2,
        "--users must be at least 4 × --pairs + 2"
    );
    let bases: Vec<String> = args
        .servers
        .iter()
        .map(|s| s.trim_end_matches('/').to_owned())
        .collect();
    let nodes = bases.len();
    // The admin calls go to the first node (the state is shared).
    let base = bases[0].clone();
    let trust = Trust::from_ca_cert(args.ca_cert.as_deref())?;
    // The streams' URL prefixes: ws://host:port or wss://host:port.
    let mut addrs = Vec::with_capacity(nodes);
    for b in &bases {
        addrs.push(
            match (b.strip_prefix("http://"), b.strip_prefix("https://")) {
                (Some(a), _) => format!("ws://{a}"),
                (_, Some(a)) => format!("wss://{a}"),
                _ => bail!("--server must be http://host:port or https://host:port"),
            },
        );
    }
    let http = reqwest::Client::builder()
        .use_preconfigured_tls((*trust.client_config()).clone())
        .pool_max_idle_per_host(512)
        .build()?;
    let run_id = std::process::id() % 100_000;
    let lobby = Arc::new(AtomicU64::new(0));

    // Register everyone.
    let sem = Arc::new(Semaphore::new(64));
    let mut tasks = Vec::with_capacity(args.users);
    for i in 0..args.users {
        let (http, base, sem) = (http.clone(), bases[i % nodes].clone(), sem.clone());
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await;
            let name = format!("ws{run_id}x{i:06}");
            register(&http, &base, &name).await.map(|t| (name, t))
        }));
    }
    let mut creds = Vec::with_capacity(args.users);
    for t in tasks {
        creds.push(t.await??);
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss_before = rss_kb(&args.server_pids);

    // Open every stream.
    let t_open = Instant::now();
    let sem = Arc::new(Semaphore::new(256));
    let mut tasks = Vec::with_capacity(args.users);
    for (i, (name, token)) in creds.into_iter().enumerate() {
        let node = i % nodes;
        let (addr, sem, lobby, trust) = (
            addrs[node].clone(),
            sem.clone(),
            lobby.clone(),
            trust.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let _p = sem.acquire().await;
            let paired = open_stream(&trust, &addr, &token, lobby).await?;
            anyhow::Ok(User {
                node,
                name,
                token,
                paired,
            })
        }));
    }
    let mut users = Vec::with_capacity(args.users);
    for t in tasks {
        users.push(t.await??);
    }
    let open_secs = t_open.elapsed().as_secs_f64();
    tokio::time::sleep(Duration::from_secs(2)).await;
    let rss_idle = rss_kb(&args.server_pids);
    let per_conn = match (rss_before, rss_idle) {
        (Some(b), Some(a)) => Some((a.saturating_sub(b)) as f64 * 1024.0 / args.users as f64),
        _ => None,
    };

    if args.interests > 0 {
        return interests::run(
            &args, &http, &bases, &users, open_secs, rss_before, rss_idle,
        )
        .await;
    }

    // Pairing with push: admit a pair, a goes ready, b goes ready at t1;
    // latency is t1 → `paired` received, for both sides.
    let mut push_ms = Vec::with_capacity(2 * args.pairs);
    for p in 0..args.pairs {
        let (a, b) = (&users[2 * p], &users[2 * p + 1]);
        for u in [a, b] {
            admit(&http, &base, &args.admin_token, &u.name).await?;
        }
        ensure!(ready(&http, &bases[a.node], &a.token).await? == 200);
        let (mut ra, mut rb) = (a.paired.clone(), b.paired.clone());
        let t1 = Instant::now();
        ensure!(ready(&http, &bases[b.node], &b.token).await? == 200);
        for r in [&mut ra, &mut rb] {
            // A stream the server closed, or no `paired` within 5 s, is
            // counted, not timed.
            match tokio::time::timeout(Duration::from_secs(5), r.wait_for(Option::is_some)).await {
                Ok(Ok(at)) => {
                    let at = at.unwrap_or(t1);
                    push_ms.push(at.saturating_duration_since(t1).as_secs_f64() * 1e3);
                }
                Ok(Err(_)) => {}
                Err(_) => {
                    PUSH_MISSED.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    // The original design's client: poll GET /v1/me/peer once a second.
    // All pairs at once, each poller starting at a random phase.
    let poll_users: Vec<(String, String)> = users[2 * args.pairs..4 * args.pairs]
        .iter()
        .map(|u| (u.name.clone(), u.token.clone()))
        .collect();
    for (name, _) in &poll_users {
        admit(&http, &base, &args.admin_token, name).await?;
    }
    let mut tasks = Vec::new();
    for p in 0..args.pairs {
        let (a, b) = (poll_users[2 * p].1.clone(), poll_users[2 * p + 1].1.clone());
        let (http, base) = (http.clone(), base.clone());
        let phase = Duration::from_millis((p as u64 * 7919) % 1000);
        tasks.push(tokio::spawn(async move {
            ready(&http, &base, &a).await?;
            let t1 = Instant::now();
            ready(&http, &base, &b).await?;
            // Both sides poll independently, each at its own phase.
            let poll = |i: u64, tok: String| {
                let (http, base) = (http.clone(), base.clone());
                async move {
                    let offset = (phase.as_millis() as u64 + i * 500) % 1000;
                    let mut next = t1 + Duration::from_millis(offset);
                    loop {
                        tokio::time::sleep_until(next.into()).await;
                        let r = http
                            .get(format!("{base}/v1/me/peer"))
                            .bearer_auth(&tok)
                            .send()
                            .await?;
                        if r.status() == 200 {
                            return anyhow::Ok(
                                Instant::now().saturating_duration_since(t1).as_secs_f64() * 1e3,
                            );
                        }
                        ensure!(r.status() == 204, "poll: {}", r.status());
                        next += Duration::from_secs(1);
                    }
                }
            };
            let (x, y) = tokio::join!(poll(0, a), poll(1, b));
            let out = vec![x?, y?];
            anyhow::Ok(out)
        }));
    }
    let mut poll_ms = Vec::new();
    for t in tasks {
        poll_ms.extend(t.await??);
    }

    // Lobby fan-out: everyone else goes ready (unadmitted: the waiting
    // room), then the moderator says `lobby_lines` lines.
    let lobby_users: Vec<&User> = users[4 * args.pairs..].iter().collect();
    let plain = |_| SetStatusRequest::new(RequestedStatus::Ready);
    ensure!(
        ready_all(&http, &bases, &users[4 * args.pairs..], plain).await?,
        "a lobby user's ready was refused"
    );
    let members = lobby_users.len() as u64;
    let expected = members * args.lobby_lines as u64;
    let before = lobby.load(Ordering::Relaxed);
    let t_lobby = Instant::now();
    for i in 0..args.lobby_lines {
        admin(
            &http,
            &base,
            &args.admin_token,
            "/v1/admin/lobby",
            &LobbySay {
                text: format!("announcement {i}"),
            },
        )
        .await?;
    }
    // Lines still missing after 30 s are lost (their streams closed:
    // counted in `streams_closed`) and reported, not waited for.
    while lobby.load(Ordering::Relaxed) - before < expected
        && t_lobby.elapsed() < Duration::from_secs(30)
    {
        tokio::time::sleep(Duration::from_millis(1)).await;
    }
    let lobby_lost = expected.saturating_sub(lobby.load(Ordering::Relaxed) - before);
    let lobby_secs = t_lobby.elapsed().as_secs_f64();
    let rss_after = rss_kb(&args.server_pids);

    let (push50, push99) = (pct(&mut push_ms, 0.5), pct(&mut push_ms, 0.99));
    let (poll50, poll99) = (pct(&mut poll_ms, 0.5), pct(&mut poll_ms, 0.99));
    let out = json!({
        "users": args.users,
        "register_503_retries": REGISTER_RETRIES.load(Ordering::Relaxed),
        "streams_closed": STREAMS_CLOSED.load(Ordering::Relaxed),
        "push_missed_5s": PUSH_MISSED.load(Ordering::Relaxed),
        "streams_opened_per_s": args.users as f64 / open_secs,
        "server_rss_kb": {"registered": rss_before, "streams_idle": rss_idle, "end": rss_after},
        "bytes_per_idle_stream": per_conn,
        "pairing_push_ms": {"samples": push_ms.len(), "p50": push50, "p99": push99},
        "pairing_poll_1s_ms": {"samples": poll_ms.len(), "p50": poll50, "p99": poll99},
        "poll_over_push": {"p50": poll50 / push50.max(1e-9), "p99": poll99 / push99.max(1e-9)},
        "lobby": {"members": members, "lines": args.lobby_lines, "deliveries": expected, "lost": lobby_lost, "seconds": lobby_secs, "deliveries_per_s": (expected - lobby_lost) as f64 / lobby_secs},
    });
    if args.json {
        println!("{out}");
    } else {
        println!(
            "{} event streams open ({:.0} opened/s)",
            args.users,
            args.users as f64 / open_secs
        );
        if let Some(b) = per_conn {
            println!(
                "server memory per idle stream: {:.1} KB (RSS {} → {} kB)",
                b / 1024.0,
                rss_before.unwrap_or(0),
                rss_idle.unwrap_or(0)
            );
        }
        println!("pairing, ready → paired received: push p50 {push50:.2} ms, p99 {push99:.2} ms ({} samples)", push_ms.len());
        println!("pairing, 1 s polling (original design): p50 {poll50:.0} ms, p99 {poll99:.0} ms ({} samples)", poll_ms.len());
        println!(
            "polling / push: p50 {:.0}x, p99 {:.0}x",
            poll50 / push50.max(1e-9),
            poll99 / push99.max(1e-9)
        );
        println!("lobby fan-out: {expected} deliveries to {members} members in {lobby_secs:.3} s = {:.0}/s", expected as f64 / lobby_secs);
    }
    Ok(())
}

//! `myturn-load ops`: throughput and cost per use case against one or
//! several nodes (`--server` given more than once: users are spread over
//! them round-robin). Each phase runs a fixed number of one kind of
//! operation with `--concurrency` in flight and reports ops/s and, for
//! every `--pid NAME=PID`, CPU time per operation (utime + stime from
//! `/proc/PID/stat`, before and after the phase). With `--redis HOST:PORT`
//! it also diffs `INFO commandstats` and `INFO stats` (reads processed ≈
//! requests batches received ≈ round trips) per operation, and reports
//! `used_memory` per registered user and per waiting user with interests.
//!
//! Phases: `register`, `ready_pair` (a pair of users each `PUT ready`,
//! then both `PUT busy`; pairings counted from every node's `/metrics`),
//! with `--interests TAGS` also `ready_pair_interests` (the same with a
//! tag the two share and two random ones out of TAGS), alternating with
//! the plain one; `refresh` (on another node than the user registered on),
//! `status` (`PUT busy`), `me` (`GET /v1/me`), `logout`.
//! `--backdrop N` first puts N more users in the pool, each waiting with
//! `only_interests` on three tags nobody else has, so the pairing phases
//! draw next to a pool of N.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, ensure, Context as _};
use myturn_wire::{
    CreateUserRequest, CreateUserResponse, RefreshRequest, RequestedStatus, SetStatusRequest,
    TokenPair,
};
use serde_json::{json, Value};
use tokio::io::{AsyncBufReadExt as _, AsyncReadExt as _, AsyncWriteExt as _, BufReader};
use tokio::sync::Mutex;

/// Arguments of the `ops` mode.
#[derive(Debug, clap::Args)]
pub struct OpsArgs {
    /// Base URL of a node; give it once per node.
    #[arg(long = "server", required = true)]
    servers: Vec<String>,
    /// Users taking part in every phase.
    #[arg(long, default_value_t = 2000)]
    users: usize,
    /// Requests in flight.
    #[arg(long, default_value_t = 32)]
    concurrency: usize,
    /// Rounds of each pairing phase (alternating plain and interests).
    #[arg(long, default_value_t = 2)]
    rounds: usize,
    /// A process to measure, as NAME=PID (repeatable).
    #[arg(long = "pid")]
    pids: Vec<String>,
    /// A redis-server to read `INFO` from, HOST:PORT.
    #[arg(long)]
    redis: Option<String>,
    /// Tags the interest pairing draws from (0: no interest phases).
    #[arg(long, default_value_t = 0)]
    interests: usize,
    /// Users put waiting (only_interests, tags of their own) first.
    #[arg(long, default_value_t = 0)]
    backdrop: usize,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// CPU ticks (utime + stime) of a process.
fn cpu_ticks(pid: u32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name may hold spaces: fields count from after ')'.
    let rest = text.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    let ut: u64 = f.get(11)?.parse().ok()?;
    let st: u64 = f.get(12)?.parse().ok()?;
    Some(ut + st)
}

/// Clock ticks per second for `/proc/PID/stat` (USER_HZ, 100 on Linux).
const USER_HZ: f64 = 100.0;

/// `INFO section` from a Redis server, as `field → value`.
async fn redis_info(addr: &str, section: &str) -> anyhow::Result<BTreeMap<String, String>> {
    let mut s = tokio::net::TcpStream::connect(addr)
        .await
        .with_context(|| format!("redis {addr}"))?;
    s.write_all(format!("INFO {section}\r\n").as_bytes())
        .await?;
    let mut r = BufReader::new(s);
    let mut head = String::new();
    r.read_line(&mut head).await?;
    let len: usize = head
        .trim()
        .strip_prefix('$')
        .and_then(|n| n.parse().ok())
        .with_context(|| format!("redis INFO answered {head:?}"))?;
    let mut body = vec![0; len];
    r.read_exact(&mut body).await?;
    let text = String::from_utf8_lossy(&body);
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.to_owned(), v.trim().to_owned()))
        .collect())
}

/// Calls per command (`cmdstat_get:calls=3,…` → `get → 3`), plus
/// `total_reads_processed` and `total_commands_processed` from `INFO stats`.
async fn redis_counts(addr: &str) -> anyhow::Result<BTreeMap<String, u64>> {
    let mut out = BTreeMap::new();
    for (k, v) in redis_info(addr, "commandstats").await? {
        let Some(cmd) = k.strip_prefix("cmdstat_") else {
            continue;
        };
        let calls = v
            .split(',')
            .find_map(|kv| kv.strip_prefix("calls="))
            .and_then(|n| n.parse().ok())
            .unwrap_or(0);
        out.insert(cmd.to_owned(), calls);
    }
    let stats = redis_info(addr, "stats").await?;
    for k in ["total_reads_processed", "total_commands_processed"] {
        if let Some(v) = stats.get(k).and_then(|v| v.parse().ok()) {
            out.insert(k.to_owned(), v);
        }
    }
    Ok(out)
}

async fn used_memory(addr: &str) -> anyhow::Result<u64> {
    redis_info(addr, "memory")
        .await?
        .get("used_memory")
        .and_then(|v| v.parse().ok())
        .context("no used_memory in INFO memory")
}

struct Cred {
    name: String,
    token: String,
    refresh: String,
    /// Index of the node this user registered on.
    node: usize,
}

struct Ctx {
    http: reqwest::Client,
    bases: Vec<String>,
    run_id: u32,
}

impl Ctx {
    fn base(&self, node: usize) -> &str {
        &self.bases[node % self.bases.len()]
    }

    async fn register(&self, name: String, node: usize) -> anyhow::Result<Cred> {
        let r = self
            .http
            .post(format!("{}/v1/users", self.base(node)))
            .json(&CreateUserRequest { name: name.clone() })
            .send()
            .await?;
        ensure!(
            r.status() == 201,
            "register {name}: {} (start the server with --rate-limits off)",
            r.status()
        );
        let u: CreateUserResponse = r.json().await?;
        Ok(Cred {
            name,
            token: u.token,
            refresh: u.refresh_token,
            node,
        })
    }

    async fn status(
        &self,
        node: usize,
        token: &str,
        body: &SetStatusRequest,
    ) -> anyhow::Result<u16> {
        crate::ws::ready_with(&self.http, self.base(node), token, body).await
    }

    /// `myturn_pairings_total`: the largest any node reports (with a
    /// shared state every node reports the shared count; one node alone
    /// reports its own).
    async fn pairings(&self) -> anyhow::Result<u64> {
        let mut max = 0;
        for b in &self.bases {
            let text = self
                .http
                .get(format!("{b}/metrics"))
                .send()
                .await?
                .text()
                .await?;
            let n = text
                .lines()
                .find_map(|l| l.strip_prefix("myturn_pairings_total "))
                .and_then(|v| v.trim().parse::<f64>().ok())
                .unwrap_or(0.0) as u64;
            max = max.max(n);
        }
        Ok(max)
    }
}

/// What one phase measured.
struct Phase {
    name: String,
    ops: u64,
    secs: f64,
    errors: u64,
    cpu: Vec<(String, f64)>,
    redis: BTreeMap<String, u64>,
    pairings: Option<u64>,
}

impl Phase {
    fn to_json(&self) -> Value {
        let per = |x: f64| x / self.ops.max(1) as f64;
        let cpu: serde_json::Map<String, Value> = self
            .cpu
            .iter()
            .map(|(n, s)| (n.clone(), json!(per(*s) * 1e6)))
            .collect();
        let total_cpu: f64 = self.cpu.iter().map(|(_, s)| s).sum();
        let redis: serde_json::Map<String, Value> = self
            .redis
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| (k.clone(), json!(per(*v as f64))))
            .collect();
        json!({
            "phase": self.name, "ops": self.ops, "seconds": self.secs,
            "ops_per_s": self.ops as f64 / self.secs.max(1e-9), "errors": self.errors,
            "cpu_us_per_op": cpu, "cpu_us_per_op_total": per(total_cpu) * 1e6,
            "redis_per_op": redis, "pairings": self.pairings,
        })
    }
}

/// Runs `ops` jobs `concurrency` at a time, measuring CPU and Redis around.
async fn phase<F, Fut>(
    args: &OpsArgs,
    pids: &[(String, u32)],
    name: &str,
    ops: usize,
    job: F,
) -> anyhow::Result<Phase>
where
    F: Fn(usize) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<bool>> + Send + 'static,
{
    let cpu0: Vec<Option<u64>> = pids.iter().map(|(_, p)| cpu_ticks(*p)).collect();
    let redis0 = match &args.redis {
        Some(a) => Some(redis_counts(a).await?),
        None => None,
    };
    let errors = Arc::new(AtomicU64::new(0));
    let next = Arc::new(AtomicU64::new(0));
    let jobs: Arc<Mutex<Vec<Option<Fut>>>> =
        Arc::new(Mutex::new((0..ops).map(|i| Some(job(i))).collect()));
    let t0 = Instant::now();
    let mut workers = Vec::new();
    for _ in 0..args.concurrency.max(1) {
        let (jobs, next, errors) = (jobs.clone(), next.clone(), errors.clone());
        workers.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed) as usize;
                let fut = match jobs.lock().await.get_mut(i) {
                    Some(f) => f.take(),
                    None => break,
                };
                let Some(fut) = fut else { break };
                match fut.await {
                    Ok(true) => {}
                    Ok(false) => {
                        errors.fetch_add(1, Ordering::Relaxed);
                    }
                    Err(e) => {
                        if errors.fetch_add(1, Ordering::Relaxed) < 3 {
                            eprintln!("{e:#}");
                        }
                    }
                }
            }
        }));
    }
    for w in workers {
        w.await?;
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu = pids
        .iter()
        .zip(cpu0)
        .map(|((n, p), c0)| {
            let d = cpu_ticks(*p)
                .zip(c0)
                .map_or(0, |(a, b)| a.saturating_sub(b));
            (n.clone(), d as f64 / USER_HZ)
        })
        .collect();
    let mut redis = BTreeMap::new();
    if let (Some(a), Some(r0)) = (&args.redis, redis0) {
        for (k, v) in redis_counts(a).await? {
            let d = v.saturating_sub(r0.get(&k).copied().unwrap_or(0));
            // Our own INFO calls are not the server's.
            if k != "info" {
                redis.insert(k, d);
            }
        }
    }
    Ok(Phase {
        name: name.to_owned(),
        ops: ops as u64,
        secs,
        errors: errors.load(Ordering::Relaxed),
        cpu,
        redis,
        pairings: None,
    })
}

fn parse_pids(v: &[String]) -> anyhow::Result<Vec<(String, u32)>> {
    v.iter()
        .map(|s| {
            let (n, p) = s.split_once('=').context("--pid takes NAME=PID")?;
            Ok((n.to_owned(), p.parse().context("--pid takes NAME=PID")?))
        })
        .collect()
}

/// A small deterministic generator for tag picks (no rand dependency).
pub(crate) fn mix(x: u64) -> u64 {
    let mut z = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

fn ready_with(interests: Option<Vec<String>>, only: bool) -> SetStatusRequest {
    let mut r = SetStatusRequest::new(RequestedStatus::Ready);
    r.interests = interests;
    r.only_interests = only;
    r
}

/// Runs the `ops` mode.
pub async fn run(args: OpsArgs) -> anyhow::Result<()> {
    let pids = parse_pids(&args.pids)?;
    let bases: Vec<String> = args
        .servers
        .iter()
        .map(|s| s.trim_end_matches('/').to_owned())
        .collect();
    let http = reqwest::Client::builder()
        .pool_max_idle_per_host(args.concurrency.max(64))
        .timeout(Duration::from_secs(30))
        .build()?;
    let ctx = Arc::new(Ctx {
        http,
        bases,
        run_id: std::process::id() % 100_000,
    });
    let n = args.users & !1;
    ensure!(n >= 2, "--users must be at least 2");
    let mut phases = Vec::new();
    let mut memory = serde_json::Map::new();
    let mem = |a: &Option<String>| {
        let a = a.clone();
        async move {
            match a {
                Some(a) => used_memory(&a).await.map(Some),
                None => Ok(None),
            }
        }
    };

    // register
    let creds: Arc<Mutex<Vec<Option<Cred>>>> = Arc::new(Mutex::new((0..n).map(|_| None).collect()));
    let m0 = mem(&args.redis).await?;
    let p = phase(&args, &pids, "register", n, |i| {
        let (ctx, creds) = (ctx.clone(), creds.clone());
        async move {
            let c = ctx.register(format!("op{}x{i:06}", ctx.run_id), i).await?;
            creds.lock().await[i] = Some(c);
            Ok(true)
        }
    })
    .await?;
    let m1 = mem(&args.redis).await?;
    if let (Some(a), Some(b)) = (m0, m1) {
        memory.insert(
            "bytes_per_registered_user".into(),
            json!((b as f64 - a as f64) / n as f64),
        );
    }
    phases.push(p);
    let creds: Arc<Vec<Cred>> = Arc::new(
        std::mem::take(&mut *creds.lock().await)
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .context("a registration failed")?,
    );

    // backdrop: users waiting with tags of their own.
    if args.backdrop > 0 {
        let bd: Arc<Mutex<Vec<Option<Cred>>>> =
            Arc::new(Mutex::new((0..args.backdrop).map(|_| None).collect()));
        let p = phase(&args, &pids, "register_backdrop", args.backdrop, |i| {
            let (ctx, bd) = (ctx.clone(), bd.clone());
            async move {
                let c = ctx.register(format!("bd{}x{i:06}", ctx.run_id), i).await?;
                bd.lock().await[i] = Some(c);
                Ok(true)
            }
        })
        .await?;
        phases.push(p);
        let bd: Arc<Vec<Cred>> = Arc::new(
            std::mem::take(&mut *bd.lock().await)
                .into_iter()
                .collect::<Option<Vec<_>>>()
                .context("a registration failed")?,
        );
        let m0 = mem(&args.redis).await?;
        let p = phase(&args, &pids, "ready_backdrop", args.backdrop, |i| {
            let (ctx, bd) = (ctx.clone(), bd.clone());
            async move {
                let c = &bd[i];
                let tags = ["a", "b", "c"]
                    .iter()
                    .map(|s| format!("solo{i}{s}"))
                    .collect();
                Ok(ctx
                    .status(c.node, &c.token, &ready_with(Some(tags), true))
                    .await?
                    == 200)
            }
        })
        .await?;
        let m1 = mem(&args.redis).await?;
        if let (Some(a), Some(b)) = (m0, m1) {
            memory.insert(
                "bytes_per_waiting_user_3_own_tags".into(),
                json!((b as f64 - a as f64) / args.backdrop as f64),
            );
        }
        phases.push(p);
    }

    // ready + pair: pair j is users 2j (node 2j) and 2j+1 (the next node).
    let kinds: &[bool] = if args.interests > 0 {
        &[false, true]
    } else {
        &[false]
    };
    for round in 0..args.rounds.max(1) {
        for &with_tags in kinds {
            let name = if with_tags {
                "ready_pair_interests"
            } else {
                "ready_pair"
            };
            let before = ctx.pairings().await?;
            let tags = args.interests.max(1) as u64;
            let mut p = phase(&args, &pids, name, n / 2, |j| {
                let (ctx, creds) = (ctx.clone(), creds.clone());
                let seed = (round as u64) << 32 | j as u64;
                async move {
                    let (a, b) = (&creds[2 * j], &creds[2 * j + 1]);
                    let tag = |k: u64| format!("t{}", mix(seed * 3 + k) % tags);
                    let body = |k: u64| {
                        if with_tags {
                            ready_with(Some(vec![tag(0), tag(k), tag(k + 1)]), false)
                        } else {
                            // `[]`, not absent: a session keeps the interests
                            // it gave last, and the plain round must not.
                            ready_with(Some(Vec::new()), false)
                        }
                    };
                    let busy = SetStatusRequest::new(RequestedStatus::Busy);
                    let mut ok = ctx.status(a.node, &a.token, &body(1)).await? == 200;
                    ok &= ctx.status(b.node, &b.token, &body(3)).await? == 200;
                    ok &= ctx.status(a.node, &a.token, &busy).await? == 200;
                    ok &= ctx.status(b.node, &b.token, &busy).await? == 200;
                    Ok(ok)
                }
            })
            .await?;
            p.pairings = Some(ctx.pairings().await?.saturating_sub(before));
            phases.push(p);
        }
    }
    // refresh, on the next node over.
    let refreshed: Arc<Mutex<Vec<Option<String>>>> =
        Arc::new(Mutex::new((0..n).map(|_| None).collect()));
    let p = phase(&args, &pids, "refresh", n, |i| {
        let (ctx, creds, refreshed) = (ctx.clone(), creds.clone(), refreshed.clone());
        async move {
            let c = &creds[i];
            let r = ctx
                .http
                .post(format!("{}/v1/session/refresh", ctx.base(c.node + 1)))
                .json(&RefreshRequest {
                    refresh_token: c.refresh.clone(),
                })
                .send()
                .await?;
            if r.status() != 200 {
                bail!("refresh {}: {}", c.name, r.status());
            }
            let t: TokenPair = r.json().await?;
            refreshed.lock().await[i] = Some(t.token);
            Ok(true)
        }
    })
    .await?;
    phases.push(p);
    let tokens: Arc<Vec<String>> = Arc::new(
        std::mem::take(&mut *refreshed.lock().await)
            .into_iter()
            .collect::<Option<Vec<_>>>()
            .context("a refresh failed")?,
    );

    for (name, put) in [("status_busy", true), ("get_me", false)] {
        let p = phase(&args, &pids, name, n, |i| {
            let (ctx, creds, tokens) = (ctx.clone(), creds.clone(), tokens.clone());
            async move {
                let node = creds[i].node;
                let tok = &tokens[i];
                if put {
                    let busy = SetStatusRequest::new(RequestedStatus::Busy);
                    return Ok(ctx.status(node, tok, &busy).await? == 200);
                }
                let r = ctx
                    .http
                    .get(format!("{}/v1/me", ctx.base(node)))
                    .bearer_auth(tok)
                    .send()
                    .await?;
                Ok(r.status() == 200)
            }
        })
        .await?;
        phases.push(p);
    }

    let p = phase(&args, &pids, "logout", n, |i| {
        let (ctx, creds, tokens) = (ctx.clone(), creds.clone(), tokens.clone());
        async move {
            let r = ctx
                .http
                .delete(format!("{}/v1/me", ctx.base(creds[i].node)))
                .bearer_auth(&tokens[i])
                .send()
                .await?;
            Ok(r.status() == 204)
        }
    })
    .await?;
    phases.push(p);

    let out = json!({
        "nodes": ctx.bases.len(), "users": n, "backdrop": args.backdrop,
        "interest_tags": args.interests, "concurrency": args.concurrency,
        "phases": phases.iter().map(Phase::to_json).collect::<Vec<_>>(),
        "redis_memory": memory,
    });
    if args.json {
        println!("{out}");
        return Ok(());
    }
    println!(
        "{} node(s), {n} users, concurrency {}",
        ctx.bases.len(),
        args.concurrency
    );
    println!(
        "{:<22} {:>7} {:>9} {:>6}  cpu µs/op (per process)   redis per op",
        "phase", "ops", "ops/s", "errors"
    );
    for p in &phases {
        let cpu: Vec<String> = p
            .cpu
            .iter()
            .map(|(n, s)| format!("{n} {:.0}", s / p.ops.max(1) as f64 * 1e6))
            .collect();
        let redis: Vec<String> = p
            .redis
            .iter()
            .filter(|(_, v)| **v > 0)
            .map(|(k, v)| format!("{k} {:.2}", *v as f64 / p.ops.max(1) as f64))
            .collect();
        let pairs = p
            .pairings
            .map(|x| format!(" ({x} pairings)"))
            .unwrap_or_default();
        println!(
            "{:<22} {:>7} {:>9.0} {:>6}  {}   {}{pairs}",
            p.name,
            p.ops,
            p.ops as f64 / p.secs.max(1e-9),
            p.errors,
            cpu.join(", "),
            redis.join(", ")
        );
    }
    for (k, v) in &memory {
        println!("redis {k}: {v}");
    }
    Ok(())
}

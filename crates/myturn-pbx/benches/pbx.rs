//! `cargo bench -p myturn-pbx --bench pbx`
//!
//! The built-in PBX against Kamailio, same machine, same run, same SIPp
//! scenarios (Debian's `sip-tester` and `kamailio`, installed by
//! `.ci/run`):
//!
//! 1. REGISTER with digest auth: each SIPp call is REGISTER → 401 →
//!    REGISTER with credentials → 200 (two transactions, one digest
//!    check). Kamailio: `auth` + `registrar`, usrloc in memory
//!    (`db_mode=0`), `children=2`.
//! 2. INVITE routing: a SIPp caller calls a SIPp callee registered to the
//!    PBX: INVITE → 407 → ACK → INVITE → 100/180/200 → ACK → BYE → 200.
//! 3. Memory per registered user: RSS growth of this process while the
//!    sans-IO core takes 100,000 accounts and their bindings.
//! 4. Under a one-source flood: SIPp's REGISTER+auth from 127.0.0.2 at a
//!    fixed 1,000/s, alone and while one process floods from 127.0.0.3 as
//!    fast as it can (garbage, unauthenticated REGISTER, INVITE, OPTIONS);
//!    against the built-in PBX (10,000 requests/s per source, the default
//!    answer budget for sources that have not proved a password) and
//!    Kamailio with `pike` (children=2, 20,000 requests per 2 s): the
//!    legit rate flooded ÷ unflooded, and the answers the flooder got (in
//!    all, after 2 s, in its last second).
//!
//! SIPp 3.6 speaks MD5 only, so both servers challenge with MD5 here.
//! The scenarios and Kamailio's script are myturn-testkit's fixtures
//! (`sipp/register.xml`, `callee.xml`, `callee-answer.xml`, `caller.xml`;
//! `kamailio/auth-proxy.cfg`), as the interop tests use them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../tests/common/flood.rs"]
mod flood;

use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};

use myturn_pbx::core::{Account, Config, FloodConfig, Limit, Pbx};
use myturn_pbx::driver::{self, PbxHandle};
use myturn_sip::digest::Algorithm;
use myturn_testkit::kamailio::{self, Kamailio, Script};
use myturn_testkit::sipp::{self, Scenario, Sipp};
use myturn_testkit::{skip, Peer};
use tokio::sync::watch;

const PASSWORD: &str = "bench-Pw-2026";
const FLOODER: std::net::IpAddr = std::net::IpAddr::V4(std::net::Ipv4Addr::new(127, 0, 0, 3));

fn accounts() -> Vec<Account> {
    ["bench", "caller", "callee"]
        .iter()
        .enumerate()
        .map(|(i, u)| Account {
            username: (*u).into(),
            extension: format!("{}", 111_000 + i),
            password: PASSWORD.into(),
        })
        .collect()
}

/// The built-in PBX on its own thread (one tokio task, as in the server),
/// its flood guard set up as `flood`.
fn start_builtin(flood: FloodConfig) -> (SocketAddr, PbxHandle, String) {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let me = std::fs::read_link("/proc/thread-self")
            .unwrap()
            .to_string_lossy()
            .into_owned();
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async move {
            let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
            let addr = socket.local_addr().unwrap();
            let mut cfg = Config::new(addr);
            cfg.algorithms = vec![Algorithm::Md5];
            // The benchmark is one source hammering: never block it for
            // digest failures. The flood guard stays on (its cost counts)
            // with the `flood` shape given.
            cfg.fail_limit = u32::MAX;
            cfg.flood = flood;
            // As the server runs it: a userspace CSPRNG seeded from the OS.
            let rng = <rand::rngs::StdRng as rand::SeedableRng>::from_entropy();
            let core = Pbx::new(cfg, Box::new(rng), Instant::now());
            let (_a, acc) = watch::channel(accounts());
            let (_s, stop) = watch::channel(false);
            let handle = PbxHandle::new(addr);
            let task = driver::spawn(socket, core, handle.clone(), acc, stop);
            tx.send((addr, handle, me)).unwrap();
            let _keep = (_a, _s);
            let _ = task.await;
        });
    });
    rx.recv().unwrap()
}

/// Kamailio with `children` workers, challenging with MD5, every user's
/// password [`PASSWORD`], 111002 routed to `callee` as the built-in PBX's
/// directory maps it.
fn start_kamailio(dir: &Path, children: u32) -> (SocketAddr, Peer) {
    let modules = kamailio::modules(&["auth.so"]).expect("Kamailio's modules");
    let k = Kamailio::new(dir, Script::AuthProxy, &modules)
        .workers(children, 1)
        .memory(256, 16)
        .set("algorithm", "MD5")
        .set("passwords", kamailio::passwords(&[], PASSWORD))
        .set("extensions", kamailio::extensions(&[("111002", "callee")]));
    let addr: SocketAddr = format!("127.0.0.1:{}", k.port()).parse().unwrap();
    let peer = k.start();
    std::thread::sleep(Duration::from_millis(300));
    (addr, peer)
}

/// [`start_kamailio`] with two workers and `pike`: a source over 20,000
/// requests per 2 s (the built-in PBX's 10,000/s here) is ignored.
fn start_kamailio_pike(dir: &Path) -> (SocketAddr, Peer) {
    let modules = kamailio::modules(&["auth.so", "pike.so"]).expect("Kamailio's modules");
    let k = Kamailio::new(dir, Script::AuthProxy, &modules)
        .workers(2, 1)
        .memory(256, 16)
        .define("WITH_PIKE")
        .define("PIKE_DENSITY=20000")
        .set("algorithm", "MD5")
        .set("passwords", kamailio::passwords(&[], PASSWORD))
        .set("extensions", kamailio::extensions(&[("111002", "callee")]));
    let addr: SocketAddr = format!("127.0.0.1:{}", k.port()).parse().unwrap();
    let peer = k.start();
    std::thread::sleep(Duration::from_millis(300));
    (addr, peer)
}

/// Runs SIPp's `scenario` against `remote` to its end, with what `more`
/// adds; returns (successful calls, failed calls, secs).
fn sipp_run(
    dir: &Path,
    scenario: Scenario,
    remote: SocketAddr,
    more: impl FnOnce(Sipp) -> Sipp,
) -> (u64, u64, f64) {
    let t0 = Instant::now();
    let run = more(Sipp::new(dir, scenario).remote(remote))
        .args(["-timeout", "120s", "-trace_stat", "-fd", "60"])
        .spawn();
    let _ = run.wait(Duration::from_secs(600));
    let secs = t0.elapsed().as_secs_f64();
    let (ok, failed) = sipp::take_call_counts(dir, scenario);
    (ok, failed, secs)
}

/// CPU seconds (user + system) used so far by the processes or threads
/// whose `/proc/.../stat` paths are given.
fn cpu_secs(stats: &[String]) -> f64 {
    let tick = 100.0; // USER_HZ
    stats
        .iter()
        .filter_map(|p| std::fs::read_to_string(p).ok())
        .map(|s| {
            let after = &s[s.rfind(')').unwrap() + 2..];
            let f: Vec<&str> = after.split_whitespace().collect();
            (f[11].parse::<f64>().unwrap() + f[12].parse::<f64>().unwrap()) / tick
        })
        .sum()
}

/// The stat files of every process in Kamailio's process group.
fn kamailio_stats(pgid: u32) -> Vec<String> {
    std::fs::read_dir("/proc")
        .unwrap()
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_name().to_string_lossy().parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
                let after = &s[s.rfind(')').unwrap() + 2..];
                after.split_whitespace().nth(2) == Some(&pgid.to_string())
            })
        })
        .map(|pid| format!("/proc/{pid}/stat"))
        .collect()
}

/// Rate, failures and the server's CPU microseconds per REGISTER (the
/// CPU of the processes or threads whose stat files are `server`).
fn register_run(dir: &Path, target: SocketAddr, calls: u64, server: &[String]) -> (f64, u64, f64) {
    let c0 = cpu_secs(server);
    let (ok, failed, secs) = sipp_run(dir, Scenario::Register, target, |s| {
        // Each call is REGISTER, 401, REGISTER, 200 (no unregister, and
        // no retransmission: -nr).
        s.key("user", "bench")
            .key("expires", 300)
            .flag("keep")
            .auth("bench", PASSWORD)
            .args(["-nr", "-m", &calls.to_string(), "-r", "100000", "-l", "64"])
    });
    let cpu = cpu_secs(server) - c0;
    (ok as f64 / secs, failed, cpu * 1e6 / ok.max(1) as f64)
}

fn call_rate(dir: &Path, target: SocketAddr, calls: u64) -> (f64, u64) {
    let callee = Sipp::new(dir, Scenario::Callee)
        .remote(target)
        .out_of_call(Scenario::CalleeAnswer)
        .key("user", "callee")
        .key("expires", 300)
        .auth("callee", PASSWORD)
        .calls(1)
        .args(["-d", "600000"])
        .spawn();
    std::thread::sleep(Duration::from_millis(800));
    let (ok, failed, secs) = sipp_run(dir, Scenario::Caller, target, |s| {
        s.key("user", "caller")
            .key("extension", "111002")
            .auth("caller", PASSWORD)
            .args(["-m", &calls.to_string(), "-r", "100000", "-l", "32"])
    });
    drop(callee);
    (ok as f64 / secs, failed)
}

fn rss_kib() -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap();
    s.lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// Bytes per registered user: 100,000 accounts and bindings in the core.
fn memory_per_user() -> f64 {
    let n = 100_000usize;
    let now = Instant::now();
    let addr: SocketAddr = "127.0.0.1:5060".parse().unwrap();
    let mut cfg = Config::new(addr);
    cfg.algorithms = vec![Algorithm::Md5];
    let rng = <rand::rngs::StdRng as rand::SeedableRng>::from_entropy();
    let mut pbx = Pbx::new(cfg, Box::new(rng), now);
    let before = rss_kib();
    let accounts: Vec<Account> = (0..n)
        .map(|i| Account {
            username: format!("user{i:06}"),
            extension: format!("{}", 200_000 + i),
            password: "abcdefghijklmnopqrstuvwx".into(),
        })
        .collect();
    pbx.set_accounts(accounts);
    // Register each through the real path: challenge, then credentials.
    let t0 = Instant::now();
    for i in 0..n {
        let user = format!("user{i:06}");
        let src: SocketAddr = format!("10.{}.{}.{}:5060", i >> 16, (i >> 8) & 255, i & 255)
            .parse()
            .unwrap();
        let req = |auth: &str, b: &str| {
            format!(
                "REGISTER sip:127.0.0.1:5060 SIP/2.0\r\nVia: SIP/2.0/UDP {src};branch=z9hG4bK{b}{i}\r\n\
                 From: <sip:{user}@127.0.0.1>;tag=t{i}\r\nTo: <sip:{user}@127.0.0.1>\r\nCall-ID: c{i}\r\n\
                 CSeq: 1 REGISTER\r\nContact: <sip:{user}@{src}>\r\nExpires: 3600\r\nMax-Forwards: 70\r\n{auth}Content-Length: 0\r\n\r\n"
            )
        };
        pbx.handle_datagram(now, src, req("", "a").as_bytes());
        let ch = pbx.poll_transmit().unwrap();
        let m = myturn_sip::msg::parse(&ch.payload).unwrap();
        let c = myturn_sip::digest::Challenge::choose(m.headers("WWW-Authenticate")).unwrap();
        let cr = myturn_sip::digest::respond(
            &c,
            &user,
            "abcdefghijklmnopqrstuvwx",
            "REGISTER",
            "sip:127.0.0.1:5060",
            "cn",
            1,
        );
        pbx.handle_datagram(
            now,
            src,
            req(&format!("Authorization: {}\r\n", cr.to_header_value()), "b").as_bytes(),
        );
        assert!(pbx
            .poll_transmit()
            .unwrap()
            .payload
            .starts_with(b"SIP/2.0 200"));
    }
    let per = t0.elapsed().as_secs_f64() / n as f64;
    println!(
        "core alone: {:.1} µs per REGISTER pair (challenge + authorised), client side included",
        per * 1e6
    );
    // Let the transactions expire: only accounts and bindings remain.
    pbx.handle_timeout(now + Duration::from_secs(40));
    while pbx.poll_event().is_some() {}
    assert_eq!(pbx.bindings().len(), n);
    let after = rss_kib();
    (after.saturating_sub(before) * 1024) as f64 / n as f64
}

/// Legit REGISTER+auth per second from 127.0.0.2 at 1,000/s offered for
/// 5 s, with a flood from 127.0.0.3 or without.
fn legit_rate(dir: &Path, target: SocketAddr, flooded: bool) -> (f64, Option<flood::Outcome>) {
    let flooder = flooded.then(|| {
        std::thread::spawn(move || {
            flood::flood(
                FLOODER,
                target,
                flood::Mix::Attack,
                0,
                Duration::from_secs(7),
                Duration::from_millis(300),
            )
        })
    });
    if flooded {
        std::thread::sleep(Duration::from_millis(500));
    }
    let (ok, _failed, secs) = sipp_run(dir, Scenario::Register, target, |s| {
        s.key("user", "bench")
            .key("expires", 300)
            .flag("keep")
            .auth("bench", PASSWORD)
            .args(["-i", "127.0.0.2", "-m", "5000", "-r", "1000", "-l", "200"])
    });
    let f = flooder.map(|t| t.join().unwrap());
    (ok as f64 / secs, f)
}

fn flood_bench(dir: &Path, (ours, handle): (SocketAddr, PbxHandle), pike: SocketAddr) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    println!("Legit REGISTER+auth at 1,000/s from one address, with and without a one-source flood (as fast as it sends):");
    println!("| server | run | legit unflooded /s | flooded /s | ratio | flood sent | answers to the flooder | after 2 s | in its last second |");
    println!("|---|---|---|---|---|---|---|---|---|");
    for run in 1..=2 {
        for (name, target) in [("built-in PBX", ours), ("Kamailio + pike", pike)] {
            let (alone, _) = legit_rate(dir, target, false);
            let (under, f) = legit_rate(dir, target, true);
            let f = f.unwrap();
            // Each run starts with the flooder unblocked (pike forgets it
            // by itself once it stops).
            if target == ours {
                rt.block_on(handle.unblock(FLOODER));
            }
            let last = f.lasted.saturating_sub(Duration::from_secs(1));
            println!(
                "| {name} | {run} | {alone:.0} | {under:.0} | {:.2} | {} | {} | {} | {} |",
                under / alone,
                f.sent,
                f.answers.len(),
                f.answers_after(Duration::from_secs(2)),
                f.answers_after(last)
            );
        }
    }
}

fn main() {
    let per_user = memory_per_user();
    println!("memory per registered user (account + binding, core): {per_user:.0} bytes");
    if !skip::all_installed(&["sipp", "kamailio"]) {
        println!(
            "SKIPPED the SIPp comparison: install sip-tester and kamailio (bash .ci/run does)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    // The throughput runs send from one address far above any public
    // server's per-source limit: the guard checks every datagram (its
    // cost counts) with a bucket they never empty.
    let (ours, _h, tid) = start_builtin(FloodConfig {
        requests: Limit::new(1_000_000, 1_000_000),
        answers: Limit::new(1_000_000, 1_000_000),
        ..FloodConfig::default()
    });
    let ours_stat = vec![format!("/proc/{tid}/stat")
        .replace("/proc/self/", &format!("/proc/{}/", std::process::id()))];
    let kdir1 = tempfile::tempdir().unwrap();
    let kdir2 = tempfile::tempdir().unwrap();
    let (kam1, k1) = start_kamailio(kdir1.path(), 1);
    let (kam2, k2) = start_kamailio(kdir2.path(), 2);
    let k1_stat = kamailio_stats(k1.id());
    let k2_stat = kamailio_stats(k2.id());
    let n = 20_000;
    // Warm-up, then alternate to spread machine noise over all three.
    for t in [ours, kam1, kam2] {
        register_run(dir.path(), t, 2_000, &[]);
    }
    let (mut r_ours, mut r_k1, mut r_k2) = (Vec::new(), Vec::new(), Vec::new());
    println!("REGISTER+auth runs (rate /s, server CPU µs per REGISTER), alternating:");
    for run in 1..=3 {
        let o = register_run(dir.path(), ours, n, &ours_stat);
        let a = register_run(dir.path(), kam1, n, &k1_stat);
        let b = register_run(dir.path(), kam2, n, &k2_stat);
        println!(
            "  run {run}: built-in {:.0} /s {:.1} µs | Kamailio(1) {:.0} /s {:.1} µs | Kamailio(2) {:.0} /s {:.1} µs | rate ÷ Kamailio(2) {:.2}, CPU ÷ Kamailio(2) {:.2}",
            o.0, o.2, a.0, a.2, b.0, b.2, o.0 / b.0, o.2 / b.2
        );
        r_ours.push(o);
        r_k1.push(a);
        r_k2.push(b);
    }
    let med = |v: &mut Vec<(f64, u64, f64)>| {
        v.sort_by(|a, b| a.0.total_cmp(&b.0));
        v[v.len() / 2]
    };
    let (o, of, ocpu) = med(&mut r_ours);
    let (k1r, k1f, k1cpu) = med(&mut r_k1);
    let (k2r, k2f, k2cpu) = med(&mut r_k2);
    println!("REGISTER with digest auth (REGISTER, 401, REGISTER, 200), SIPp -l 64, {n} per run, median of 3:");
    println!("                                 rate        server CPU per REGISTER");
    println!("  built-in PBX (1 thread):   {o:8.0} /s   {ocpu:6.1} µs   (failed {of})");
    println!("  Kamailio 5.6, children=1:  {k1r:8.0} /s   {k1cpu:6.1} µs   (failed {k1f})");
    println!("  Kamailio 5.6, children=2:  {k2r:8.0} /s   {k2cpu:6.1} µs   (failed {k2f})");
    println!(
        "  rate ratio built-in / Kamailio(1): {:.2}, / Kamailio(2): {:.2}",
        o / k1r,
        o / k2r
    );
    println!(
        "  CPU per REGISTER, Kamailio(1) / built-in: {:.2}, Kamailio(2) / built-in: {:.2}",
        k1cpu / ocpu,
        k2cpu / ocpu
    );
    let kdir3 = tempfile::tempdir().unwrap();
    let (pike, _k3) = start_kamailio_pike(kdir3.path());
    // The flood runs: a second built-in PBX cutting a source off past
    // 10,000 datagrams/s (burst 20,000), as pike's 20,000 per 2 s, and
    // with the server's default answer budget for unproven sources.
    let (ours_flood, h_flood, _) = start_builtin(FloodConfig {
        requests: Limit::new(10_000, 20_000),
        ..FloodConfig::default()
    });
    flood_bench(dir.path(), (ours_flood, h_flood), pike);
    let calls = 5_000;
    let (co, cof) = call_rate(dir.path(), ours, calls);
    let (ck, ckf) = call_rate(dir.path(), kam2, calls);
    println!("INVITE routing (407, INVITE, 180, 200, ACK, BYE), SIPp -l 32, {calls} calls:");
    println!("  built-in PBX:             {co:8.0} calls/s  (failed {cof})");
    println!("  Kamailio 5.6, children=2: {ck:8.0} calls/s  (failed {ckf})");
    if ck > 0.0 {
        println!("  ratio built-in / Kamailio: {:.2}", co / ck);
    }
}

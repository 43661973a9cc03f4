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
//!
//! SIPp 3.6 speaks MD5 only, so both servers challenge with MD5 here.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use myturn_pbx::core::{Account, Config, Pbx};
use myturn_pbx::driver::{self, PbxHandle};
use myturn_sip::digest::Algorithm;
use tokio::sync::watch;

const PASSWORD: &str = "bench-Pw-2026";

fn have(bin: &str) -> bool {
    Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.0.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

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

/// The built-in PBX on its own thread (one tokio task, as in the server).
fn start_builtin() -> (SocketAddr, PbxHandle, String) {
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
            // The benchmark is one source hammering: never block it.
            cfg.fail_limit = u32::MAX;
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

fn kamailio_cfg(port: u16, children: u32) -> String {
    format!(
        r#"#!KAMAILIO
debug=1
log_stderror=yes
children={children}
dns=no
rev_dns=no
auto_aliases=no
listen=udp:127.0.0.1:{port}
alias="127.0.0.1:{port}"
mpath="/usr/lib/x86_64-linux-gnu/kamailio/modules/"
loadmodule "tm.so"
loadmodule "sl.so"
loadmodule "rr.so"
loadmodule "pv.so"
loadmodule "maxfwd.so"
loadmodule "textops.so"
loadmodule "siputils.so"
loadmodule "usrloc.so"
loadmodule "registrar.so"
loadmodule "auth.so"
modparam("usrloc", "db_mode", 0)
modparam("auth", "secret", "myturn-bench")
request_route {{
    if (!mf_process_maxfwd_header("10")) {{ sl_send_reply("483", "Too Many Hops"); exit; }}
    if (has_totag()) {{
        if (loose_route()) {{ t_relay(); exit; }}
        if (is_method("ACK")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
        sl_send_reply("404", "Not here");
        exit;
    }}
    if (is_method("CANCEL")) {{ if (t_check_trans()) {{ t_relay(); }} exit; }}
    t_check_trans();
    $var(pw) = "{PASSWORD}";
    if (is_method("REGISTER")) {{
        if (!pv_www_authenticate("$td", "$var(pw)", "0")) {{ www_challenge("$td", "1"); exit; }}
        if ($au != $tU) {{ sl_send_reply("403", "Forbidden"); exit; }}
        if (!save("location")) {{ sl_reply_error(); }}
        exit;
    }}
    if (is_method("INVITE")) {{
        if (!pv_proxy_authenticate("$fd", "$var(pw)", "0")) {{ proxy_challenge("$fd", "1"); exit; }}
        consume_credentials();
    }}
    record_route();
    # The extension, as the built-in PBX's directory maps it.
    if ($rU == "111002") {{ $rU = "callee"; }}
    if (!lookup("location")) {{ sl_send_reply("404", "Not Found"); exit; }}
    t_relay();
}}
"#
    )
}

fn start_kamailio(dir: &Path, children: u32) -> (SocketAddr, Killed) {
    use std::os::unix::process::CommandExt;
    let port = free_port();
    let cfg = dir.join("kamailio.cfg");
    std::fs::write(&cfg, kamailio_cfg(port, children)).unwrap();
    let child = Command::new("kamailio")
        .arg("-f")
        .arg(&cfg)
        .args(["-DD", "-E", "-m", "256", "-M", "16"])
        .arg("-Y")
        .arg(dir)
        .arg("-w")
        .arg(dir)
        .process_group(0)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let k = Killed(child);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let t0 = Instant::now();
    while UdpSocket::bind(addr).is_ok() {
        assert!(
            t0.elapsed() < Duration::from_secs(10),
            "kamailio did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    std::thread::sleep(Duration::from_millis(300));
    (addr, k)
}

const REGISTER_XML: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="register with digest">
  <send><![CDATA[

REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:bench@[remote_ip]:[remote_port]>;tag=[pid]r[call_number]
To: <sip:bench@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:bench@[local_ip]:[local_port]>
Expires: 300
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <recv response="401" auth="true" />
  <send><![CDATA[

REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:bench@[remote_ip]:[remote_port]>;tag=[pid]r[call_number]
To: <sip:bench@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:bench@[local_ip]:[local_port]>
[authentication]
Expires: 300
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <recv response="200" />
</scenario>
"#;

/// Runs SIPp to completion; returns (successful calls, failed calls, secs).
fn sipp_run(
    dir: &Path,
    name: &str,
    xml: &str,
    remote: SocketAddr,
    extra: &[&str],
) -> (u64, u64, f64) {
    let path = dir.join(name);
    std::fs::write(&path, xml).unwrap();
    let t0 = Instant::now();
    let out = Command::new("sipp")
        .current_dir(dir)
        .arg(remote.to_string())
        .arg("-sf")
        .arg(&path)
        .args(["-i", "127.0.0.1", "-p", &free_port().to_string()])
        .args(["-nostdin", "-timeout", "120s", "-trace_stat", "-fd", "60"])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    let secs = t0.elapsed().as_secs_f64();
    let _ = out;
    let stat = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(name.trim_end_matches(".xml"))
                && p.to_string_lossy().ends_with(".csv")
        })
        .expect("SIPp stat file");
    let text = std::fs::read_to_string(&stat).unwrap();
    let _ = std::fs::remove_file(&stat);
    let mut lines = text.lines();
    let head: Vec<&str> = lines.next().unwrap().split(';').collect();
    let last: Vec<&str> = lines.last().unwrap().split(';').collect();
    let col = |n: &str| {
        let i = head.iter().position(|h| *h == n).unwrap();
        last[i].trim().parse::<u64>().unwrap()
    };
    (col("SuccessfulCall(C)"), col("FailedCall(C)"), secs)
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

/// Rate, failures and the server's CPU microseconds per REGISTER.
fn register_run(dir: &Path, target: SocketAddr, calls: u64, server: &[String]) -> (f64, u64, f64) {
    let c0 = cpu_secs(server);
    let (ok, failed, secs) = sipp_run(
        dir,
        "reg.xml",
        REGISTER_XML,
        target,
        &[
            "-m",
            &calls.to_string(),
            "-r",
            "100000",
            "-l",
            "64",
            "-au",
            "bench",
            "-ap",
            PASSWORD,
        ],
    );
    let cpu = cpu_secs(server) - c0;
    (ok as f64 / secs, failed, cpu * 1e6 / ok.max(1) as f64)
}

fn register_rate(dir: &Path, target: SocketAddr, calls: u64) -> (f64, u64) {
    let (ok, failed, secs) = sipp_run(
        dir,
        "reg.xml",
        REGISTER_XML,
        target,
        &[
            "-m",
            &calls.to_string(),
            "-r",
            "100000",
            "-l",
            "64",
            "-au",
            "bench",
            "-ap",
            PASSWORD,
        ],
    );
    (ok as f64 / secs, failed)
}

const CALLEE_REGISTER_XML: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callee registers, then serves calls for a while">
  <send retrans="500"><![CDATA[

REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:callee@[remote_ip]:[remote_port]>;tag=[pid]c
To: <sip:callee@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 REGISTER
Contact: <sip:callee@[local_ip]:[local_port]>
Expires: 300
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <recv response="401" auth="true" />
  <send retrans="500"><![CDATA[

REGISTER sip:[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:callee@[remote_ip]:[remote_port]>;tag=[pid]c
To: <sip:callee@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 2 REGISTER
Contact: <sip:callee@[local_ip]:[local_port]>
[authentication]
Expires: 300
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <recv response="200" />
  <pause milliseconds="600000" />
</scenario>
"#;

const CALLEE_CALL_XML: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="callee answers">
  <recv request="INVITE" />
  <send><![CDATA[

SIP/2.0 180 Ringing
[last_Via:]
[last_Record-Route:]
[last_From:]
[last_To:];tag=[pid]k[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:callee@[local_ip]:[local_port]>
Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_Record-Route:]
[last_From:]
[last_To:];tag=[pid]k[call_number]
[last_Call-ID:]
[last_CSeq:]
Contact: <sip:callee@[local_ip]:[local_port]>
Content-Type: application/sdp
Content-Length: [len]

v=0
o=callee 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio 6010 RTP/AVP 96
a=rtpmap:96 L16/8000

  ]]></send>
  <recv request="ACK" />
  <recv request="BYE" />
  <send><![CDATA[

SIP/2.0 200 OK
[last_Via:]
[last_From:]
[last_To:]
[last_Call-ID:]
[last_CSeq:]
Content-Length: 0

  ]]></send>
</scenario>
"#;

const CALLER_XML: &str = r#"<?xml version="1.0" encoding="ISO-8859-1" ?>
<scenario name="caller: 407, then the call, then BYE">
  <send retrans="500"><![CDATA[

INVITE sip:111002@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[remote_ip]:[remote_port]>;tag=[pid]a[call_number]
To: <sip:111002@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 1 INVITE
Contact: <sip:caller@[local_ip]:[local_port]>
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=caller 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio 6020 RTP/AVP 96
a=rtpmap:96 L16/8000

  ]]></send>
  <recv response="407" auth="true" />
  <send><![CDATA[

ACK sip:111002@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[remote_ip]:[remote_port]>;tag=[pid]a[call_number]
[last_To:]
Call-ID: [call_id]
CSeq: 1 ACK
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[

INVITE sip:111002@[remote_ip]:[remote_port] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[remote_ip]:[remote_port]>;tag=[pid]a[call_number]
To: <sip:111002@[remote_ip]:[remote_port]>
Call-ID: [call_id]
CSeq: 2 INVITE
Contact: <sip:caller@[local_ip]:[local_port]>
[authentication]
Max-Forwards: 70
Content-Type: application/sdp
Content-Length: [len]

v=0
o=caller 1 1 IN IP4 [local_ip]
s=-
c=IN IP4 [local_ip]
t=0 0
m=audio 6020 RTP/AVP 96
a=rtpmap:96 L16/8000

  ]]></send>
  <recv response="100" optional="true" />
  <recv response="180" optional="true" />
  <recv response="200" rrs="true" />
  <send><![CDATA[

ACK [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[remote_ip]:[remote_port]>;tag=[pid]a[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 2 ACK
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <send retrans="500"><![CDATA[

BYE [next_url] SIP/2.0
Via: SIP/2.0/[transport] [local_ip]:[local_port];branch=[branch]
From: <sip:caller@[remote_ip]:[remote_port]>;tag=[pid]a[call_number]
[last_To:]
[routes]
Call-ID: [call_id]
CSeq: 3 BYE
Max-Forwards: 70
Content-Length: 0

  ]]></send>
  <recv response="200" />
</scenario>
"#;

fn call_rate(dir: &Path, target: SocketAddr, calls: u64) -> (f64, u64) {
    use std::os::unix::process::CommandExt;
    let reg = dir.join("callee-reg.xml");
    let ooc = dir.join("callee-call.xml");
    std::fs::write(&reg, CALLEE_REGISTER_XML).unwrap();
    std::fs::write(&ooc, CALLEE_CALL_XML).unwrap();
    let callee = Killed(
        Command::new("sipp")
            .current_dir(dir)
            .arg(target.to_string())
            .arg("-sf")
            .arg(&reg)
            .arg("-oocsf")
            .arg(&ooc)
            .args([
                "-i",
                "127.0.0.1",
                "-p",
                &free_port().to_string(),
                "-m",
                "1",
                "-nostdin",
            ])
            .args(["-au", "callee", "-ap", PASSWORD])
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    std::thread::sleep(Duration::from_millis(800));
    let (ok, failed, secs) = sipp_run(
        dir,
        "caller.xml",
        CALLER_XML,
        target,
        &[
            "-m",
            &calls.to_string(),
            "-r",
            "100000",
            "-l",
            "32",
            "-au",
            "caller",
            "-ap",
            PASSWORD,
        ],
    );
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

fn main() {
    let per_user = memory_per_user();
    println!("memory per registered user (account + binding, core): {per_user:.0} bytes");
    if !have("sipp") || !have("kamailio") {
        println!(
            "SKIPPED the SIPp comparison: install sip-tester and kamailio (bash .ci/run does)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ours, _h, tid) = start_builtin();
    let ours_stat = vec![format!("/proc/{tid}/stat")
        .replace("/proc/self/", &format!("/proc/{}/", std::process::id()))];
    let kdir1 = tempfile::tempdir().unwrap();
    let kdir2 = tempfile::tempdir().unwrap();
    let (kam1, k1) = start_kamailio(kdir1.path(), 1);
    let (kam2, k2) = start_kamailio(kdir2.path(), 2);
    let k1_stat = kamailio_stats(k1.0.id());
    let k2_stat = kamailio_stats(k2.0.id());
    let n = 20_000;
    // Warm-up, then alternate to spread machine noise over all three.
    for t in [ours, kam1, kam2] {
        register_rate(dir.path(), t, 2_000);
    }
    let (mut r_ours, mut r_k1, mut r_k2) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..3 {
        r_ours.push(register_run(dir.path(), ours, n, &ours_stat));
        r_k1.push(register_run(dir.path(), kam1, n, &k1_stat));
        r_k2.push(register_run(dir.path(), kam2, n, &k2_stat));
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

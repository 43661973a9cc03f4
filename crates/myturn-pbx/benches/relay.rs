//! `cargo bench -p myturn-pbx --bench relay`
//!
//! The built-in media relay against rtpengine (Debian's
//! `rtpengine-daemon`, userspace forwarding, `--table=-1`), same machine,
//! same run, same load: N concurrent calls, each sending one 332-byte
//! datagram (an RTP header and 20 ms of L16 at 8 kHz) every 20 ms in each
//! direction, from loopback sockets. For each relay:
//!
//! * datagrams forwarded per second and the share delivered;
//! * relay CPU per forwarded datagram (utime + stime from `/proc`: the
//!   relay's own threads here, the rtpengine process there);
//! * one-way latency added, p50 and p99: while the load runs, a probe
//!   call sends one datagram every 2 ms and times its arrival on the other
//!   side (a blocking read), alternating with the same probe sent straight
//!   from socket to socket; the relay's figure minus the direct one is what
//!   the relay adds.
//!
//! Both relays get two threads: the built-in one its shards (one
//! current-thread runtime per core, calls spread over them), rtpengine
//! `--num-threads=2`. Without `rtpengine` installed only the
//! built-in relay is measured.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{IpAddr, SocketAddr, UdpSocket as StdUdpSocket};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use myturn_pbx::media::MediaCommand;
use myturn_pbx::ng::{self, Reply};
use myturn_pbx::relay::{PortPool, Side};
use myturn_pbx::relay_driver::RelayIo;

const PACKET: usize = 332;
const WARMUP: Duration = Duration::from_secs(1);
const WINDOW: Duration = Duration::from_secs(5);

fn lo() -> IpAddr {
    IpAddr::from([127, 0, 0, 1])
}

/// Clock ticks per second for /proc's utime and stime.
const HZ: f64 = 100.0;

/// utime + stime, seconds, of the threads of this process whose names
/// start with `name` (the relay's shards are `relay-0`, `relay-1`, …).
fn threads_cpu(name: &str) -> f64 {
    let mut ticks = 0u64;
    for t in std::fs::read_dir("/proc/self/task").unwrap() {
        let dir = t.unwrap().path();
        let comm = std::fs::read_to_string(dir.join("comm")).unwrap_or_default();
        if comm.trim().starts_with(name) {
            ticks += stat_ticks(&std::fs::read_to_string(dir.join("stat")).unwrap_or_default());
        }
    }
    ticks as f64 / HZ
}

fn process_cpu(pid: u32) -> f64 {
    stat_ticks(&std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default()) as f64
        / HZ
}

fn stat_ticks(stat: &str) -> u64 {
    // Fields after the parenthesised command: utime is the 14th field.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let f: Vec<&str> = rest.split_whitespace().collect();
    f.get(11).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
        + f.get(12).and_then(|v| v.parse::<u64>().ok()).unwrap_or(0)
}

/// One call's two endpoints and where each sends.
struct Call {
    a: StdUdpSocket,
    b: StdUdpSocket,
    a_to: SocketAddr,
    b_to: SocketAddr,
}

fn endpoint() -> StdUdpSocket {
    StdUdpSocket::bind((lo(), 0)).unwrap()
}

fn free_range(pairs: u16) -> std::ops::RangeInclusive<u16> {
    let mut base = 22_000u16;
    loop {
        let hi = base + 2 * pairs - 1;
        if (base..=hi).all(|p| StdUdpSocket::bind((lo(), p)).is_ok()) {
            return base..=hi;
        }
        base += 2 * pairs;
        assert!(base < 30_000, "no free port range");
    }
}

struct Result {
    forwarded_per_s: f64,
    delivered: f64,
    cpu_us_per_packet: f64,
    /// Through the relay, and straight: (p50, p99) in µs.
    relayed: (f64, f64),
    direct: (f64, f64),
}

/// The probe: a call through the relay, and a direct pair.
struct Probe {
    call: Call,
    direct: (StdUdpSocket, StdUdpSocket),
}

fn probe_pair() -> (StdUdpSocket, StdUdpSocket) {
    (endpoint(), endpoint())
}

fn percentiles(mut v: Vec<f64>) -> (f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        v.get(((v.len() as f64 * q) as usize).min(v.len().saturating_sub(1)))
            .copied()
            .unwrap_or(0.0)
    };
    (at(0.5), at(0.99))
}

/// One timed datagram from `a` to `b` (sent to `to`), µs.
fn one_way(a: &StdUdpSocket, to: SocketAddr, b: &StdUdpSocket, buf: &mut [u8]) -> Option<f64> {
    let t0 = Instant::now();
    a.send_to(&buf[..PACKET], to).ok()?;
    b.recv_from(buf).ok()?;
    Some(t0.elapsed().as_secs_f64() * 1e6)
}

/// Drives `calls` for WARMUP + WINDOW and measures the window; `cpu` reads
/// the relay's CPU seconds.
fn drive(calls: &[Call], probe: Probe, cpu: &dyn Fn() -> f64) -> Result {
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let base = Instant::now();
    let measuring_from = base + WARMUP;
    let measuring_to = measuring_from + WINDOW;
    let latencies = Arc::new(Mutex::new(Vec::<u32>::new()));
    // Receivers: one thread polls every endpoint (non-blocking, with a
    // short sleep when all are idle).
    let sockets: Vec<StdUdpSocket> = calls
        .iter()
        .flat_map(|c| [c.a.try_clone().unwrap(), c.b.try_clone().unwrap()])
        .collect();
    for s in &sockets {
        s.set_nonblocking(true).unwrap();
    }
    let rx = {
        let (stop, latencies) = (stop.clone(), latencies.clone());
        std::thread::Builder::new()
            .name("gen-rx".into())
            .spawn(move || {
                let mut buf = [0u8; 2048];
                let mut mine = Vec::with_capacity(2_000_000);
                while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                    let mut any = false;
                    for s in &sockets {
                        while let Ok((n, _)) = s.recv_from(&mut buf) {
                            any = true;
                            let now = Instant::now();
                            if n >= 20 && now >= measuring_from && now < measuring_to {
                                let sent = u64::from_le_bytes(buf[12..20].try_into().unwrap());
                                let at = base + Duration::from_nanos(sent);
                                mine.push(
                                    now.duration_since(at).as_micros().min(u32::MAX as u128) as u32
                                );
                            }
                        }
                    }
                    if !any {
                        std::thread::sleep(Duration::from_micros(200));
                    }
                }
                latencies.lock().unwrap().extend(mine);
            })
            .unwrap()
    };
    let prober = {
        let stop = stop.clone();
        std::thread::Builder::new()
            .name("gen-probe".into())
            .spawn(move || {
                let Probe { call, direct } = probe;
                for s in [&call.b, &direct.1] {
                    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
                }
                let (mut relayed, mut straight) = (Vec::new(), Vec::new());
                let mut buf = vec![0u8; 2048];
                while Instant::now() < measuring_from {
                    std::thread::sleep(Duration::from_millis(2));
                }
                let to_direct = direct.1.local_addr().unwrap();
                while Instant::now() < measuring_to
                    && !stop.load(std::sync::atomic::Ordering::Relaxed)
                {
                    relayed.extend(one_way(&call.a, call.a_to, &call.b, &mut buf));
                    std::thread::sleep(Duration::from_millis(1));
                    straight.extend(one_way(&direct.0, to_direct, &direct.1, &mut buf));
                    std::thread::sleep(Duration::from_millis(1));
                }
                (percentiles(relayed), percentiles(straight))
            })
            .unwrap()
    };
    // Sender: one datagram each way per call every 20 ms, the calls spread
    // over the 20 ms in 1 ms slots (real calls do not all speak at the same
    // instant).
    let mut pkt = vec![0u8; PACKET];
    pkt[0] = 0x80;
    pkt[1] = 96;
    let mut sent_in_window = 0u64;
    let mut cpu0 = None;
    let mut tick = base;
    let mut slot = 0usize;
    let per_slot = calls.len().div_ceil(20);
    while tick < measuring_to {
        let now = Instant::now();
        if now >= measuring_from && cpu0.is_none() {
            cpu0 = Some(cpu());
        }
        let these = calls.iter().skip(slot * per_slot).take(per_slot);
        for c in these.clone() {
            let t = Instant::now().duration_since(base).as_nanos() as u64;
            pkt[12..20].copy_from_slice(&t.to_le_bytes());
            let _ = c.a.send_to(&pkt, c.a_to);
            let t = Instant::now().duration_since(base).as_nanos() as u64;
            pkt[12..20].copy_from_slice(&t.to_le_bytes());
            let _ = c.b.send_to(&pkt, c.b_to);
        }
        if now >= measuring_from {
            sent_in_window += 2 * these.count() as u64;
        }
        slot = (slot + 1) % 20;
        tick += Duration::from_millis(1);
        if let Some(d) = tick.checked_duration_since(Instant::now()) {
            std::thread::sleep(d);
        }
    }
    let cpu1 = cpu();
    std::thread::sleep(Duration::from_millis(100));
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    rx.join().unwrap();
    let (relayed, direct) = prober.join().unwrap();
    let got = latencies.lock().unwrap().len() as u64;
    Result {
        forwarded_per_s: got as f64 / WINDOW.as_secs_f64(),
        delivered: got as f64 / sent_in_window.max(1) as f64,
        cpu_us_per_packet: (cpu1 - cpu0.unwrap_or(cpu1)) * 1e6 / got.max(1) as f64,
        relayed,
        direct,
    }
}

fn builtin(n: usize) -> Result {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .thread_name("relay")
        .enable_all()
        .build()
        .unwrap();
    let _guard = rt.enter();
    let (mut relay, _ended) = RelayIo::new(lo());
    let mut pool = PortPool::new(free_range(n as u16 + 1));
    let mut calls = Vec::new();
    for id in 0..=n as u64 {
        let ports = pool.allocate().unwrap();
        let (a, b) = (endpoint(), endpoint());
        relay.apply(MediaCommand::Open {
            id,
            call_id: format!("bench-{id}"),
            ports,
            expect: [lo(), lo()],
            timeout: Duration::from_secs(60),
        });
        relay.apply(MediaCommand::Sdp {
            id,
            side: Side::Caller,
            sdp: a.local_addr().unwrap(),
        });
        relay.apply(MediaCommand::Sdp {
            id,
            side: Side::Callee,
            sdp: b.local_addr().unwrap(),
        });
        calls.push(Call {
            a_to: SocketAddr::new(lo(), ports[0]),
            b_to: SocketAddr::new(lo(), ports[1]),
            a,
            b,
        });
    }
    std::thread::sleep(Duration::from_millis(200));
    let probe = Probe {
        call: calls.pop().unwrap(),
        direct: probe_pair(),
    };
    let r = drive(&calls, probe, &|| threads_cpu("relay"));
    drop(relay);
    r
}

struct Killed(Child);
impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn sdp(port: u16) -> String {
    format!(
        "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n\
         m=audio {port} RTP/AVP 96\r\na=rtpmap:96 L16/8000\r\na=ptime:20\r\n"
    )
}

fn audio_port(sdp: &[u8]) -> u16 {
    let text = String::from_utf8_lossy(sdp);
    let m = text.lines().find(|l| l.starts_with("m=audio ")).unwrap();
    m.split_whitespace().nth(1).unwrap().parse().unwrap()
}

/// One ng request and its answer, sent again (same cookie: rtpengine
/// answers a repeat from its cache) if no answer came within the socket's
/// read timeout, as when rtpengine is still starting on a loaded machine.
fn ng_call(ctl: &StdUdpSocket, to: SocketAddr, cookie: &str, dict: &ng::Ben) -> Reply {
    let mut buf = vec![0u8; 65_536];
    for _attempt in 0..5 {
        ctl.send_to(&ng::frame(cookie, dict), to).unwrap();
        while let Ok((n, _)) = ctl.recv_from(&mut buf) {
            if let Some(r) = Reply::parse(&buf[..n]) {
                if r.cookie == cookie {
                    assert!(r.ok, "{:?}", r.error);
                    return r;
                }
            }
        }
    }
    panic!("rtpengine does not answer on {to}");
}

fn rtpengine(n: usize) -> Option<Result> {
    let have = Command::new("sh")
        .args(["-c", "command -v rtpengine"])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !have {
        eprintln!("rtpengine not installed: only the built-in relay measured");
        return None;
    }
    let ng_port = StdUdpSocket::bind((lo(), 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    // rtpengine takes an RTP and an RTCP port for each side of a call.
    let range = free_range(2 * n as u16 + 10);
    let child = Command::new("rtpengine")
        .args([
            "--config-file=none",
            "--foreground",
            "--log-stderr",
            "--log-level=3",
            "--table=-1",
            "--num-threads=2",
            "--interface=127.0.0.1",
        ])
        .arg(format!("--listen-ng=127.0.0.1:{ng_port}"))
        .arg(format!("--port-min={}", range.start()))
        .arg(format!("--port-max={}", range.end()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .ok()?;
    let pid = child.id();
    let _kill = Killed(child);
    std::thread::sleep(Duration::from_millis(700));
    let ctl = StdUdpSocket::bind((lo(), 0)).unwrap();
    ctl.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let to = SocketAddr::new(lo(), ng_port);
    let mut calls = Vec::new();
    for i in 0..=n {
        let (a, b) = (endpoint(), endpoint());
        let call_id = format!("bench-{i}");
        let offer = ng::offer(
            &call_id,
            "ta",
            sdp(a.local_addr().unwrap().port()).as_bytes(),
            lo(),
        );
        let to_b = audio_port(&ng_call(&ctl, to, &format!("o{i}"), &offer).sdp.unwrap());
        let answer = ng::answer(
            &call_id,
            "ta",
            "tb",
            sdp(b.local_addr().unwrap().port()).as_bytes(),
            lo(),
        );
        let to_a = audio_port(&ng_call(&ctl, to, &format!("a{i}"), &answer).sdp.unwrap());
        calls.push(Call {
            a_to: SocketAddr::new(lo(), to_a),
            b_to: SocketAddr::new(lo(), to_b),
            a,
            b,
        });
    }
    std::thread::sleep(Duration::from_millis(200));
    let probe = Probe {
        call: calls.pop().unwrap(),
        direct: probe_pair(),
    };
    Some(drive(&calls, probe, &|| process_cpu(pid)))
}

fn main() {
    println!("relay benchmark: N calls × 50 datagrams/s each way, {PACKET} bytes, {WINDOW:?} measured after {WARMUP:?}");
    println!("| calls | relay | forwarded/s | delivered | CPU µs/datagram | one-way p50 / p99 µs (relay) | (direct) | added p50 / p99 µs |");
    println!("|---|---|---|---|---|---|---|---|");
    for n in [100usize, 400, 1000] {
        let ours = builtin(n);
        let theirs = rtpengine(n);
        for (name, r) in [("built-in", Some(&ours)), ("rtpengine", theirs.as_ref())] {
            if let Some(r) = r {
                println!(
                    "| {n} | {name} | {:.0} | {:.2}% | {:.2} | {:.0} / {:.0} | {:.0} / {:.0} | {:.0} / {:.0} |",
                    r.forwarded_per_s,
                    r.delivered * 100.0,
                    r.cpu_us_per_packet,
                    r.relayed.0,
                    r.relayed.1,
                    r.direct.0,
                    r.direct.1,
                    r.relayed.0 - r.direct.0,
                    r.relayed.1 - r.direct.1
                );
            }
        }
        if let Some(t) = &theirs {
            println!(
                "ratio at {n} calls: rate {:.2}×, CPU per datagram {:.2}× (rtpengine's ÷ ours; ≥ 1 means ours is cheaper)",
                ours.forwarded_per_s / t.forwarded_per_s.max(1.0),
                t.cpu_us_per_packet / ours.cpu_us_per_packet.max(1e-9)
            );
        }
    }
}

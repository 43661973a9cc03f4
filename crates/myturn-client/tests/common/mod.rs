//! What the client's process-level tests share: a `myturn --plain` child
//! with its stdout read line by line and its log captured, the steps of a
//! call between two of them, WAV files, and a pairing server on a free
//! port in the test process. (The real peers and the network namespaces
//! are myturn-testkit's.)
#![allow(dead_code)]

pub mod heard;

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use myturn_media::wav;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};

/// Runs a real `myturn-server` (a full `App`) on a free loopback port;
/// returns its base URL.
pub async fn serve(cfg: &myturn_server::Config) -> String {
    format!("http://{}", serve_on(cfg, [127, 0, 0, 1].into()).await)
}

/// Runs a real `myturn-server` (a full `App`) on a free port of `ip`;
/// returns its address. (In the test process: the testkit depends on no
/// server, see its docs.)
pub async fn serve_on(cfg: &myturn_server::Config, ip: IpAddr) -> SocketAddr {
    let app = myturn_server::App::new(cfg, None).unwrap();
    let listener = tokio::net::TcpListener::bind((ip, 0)).await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(app.serve(listener, std::future::pending()));
    addr
}

/// The defaults with the built-in PBX on a free port.
pub fn builtin_pbx() -> myturn_server::Config {
    let mut cfg = myturn_server::Config::defaults();
    cfg.sip_listen = "127.0.0.1:0".parse().unwrap();
    cfg.media_ports = own_media_ports();
    cfg
}

pub fn write_wav(path: &Path, frames: &[Vec<u8>]) {
    let mut w = wav::Writer::create(path, 8000).unwrap();
    for f in frames {
        w.write_frame(f).unwrap();
    }
    w.finalize().unwrap();
}

/// `secs` of speech (seed `seed`) in `dir/{name}.wav`: the file and its
/// frames.
pub fn voice(dir: &Path, name: &str, seed: u64, secs: f32) -> (PathBuf, Vec<Vec<u8>>) {
    let p = dir.join(format!("{name}.wav"));
    let frames = myturn_client::speech::frames(seed, 8000, secs);
    write_wav(&p, &frames);
    (p, frames)
}

/// Waits until each of `procs` registered its SIP account.
pub async fn sip_registered<const N: usize>(procs: [&mut Proc; N]) {
    for p in procs {
        p.expect("sip registered").await;
    }
}

/// Waits until each of `procs` registered its user and its SIP account.
pub async fn fully_registered<const N: usize>(procs: [&mut Proc; N]) {
    for p in procs {
        p.expect("registered name=").await;
        p.expect("sip registered").await;
    }
}

/// Both say `ready`; their `paired ` lines.
pub async fn paired(a: &mut Proc, b: &mut Proc) -> (String, String) {
    a.send("ready").await;
    b.send("ready").await;
    tokio::join!(a.expect("paired "), b.expect("paired "))
}

/// Both say `ready`; their `connected sas=` lines, once both are in the
/// call.
pub async fn connect(a: &mut Proc, b: &mut Proc) -> (String, String) {
    a.send("ready").await;
    b.send("ready").await;
    tokio::join!(a.expect("connected sas="), b.expect("connected sas="))
}

/// `from` says `text`; waits until `to` shows it.
pub async fn chat(from: &mut Proc, to: &mut Proc, text: &str) {
    from.send(&format!("say {text}")).await;
    to.expect(&format!("chat {}: {text}", from.name)).await;
}

/// Each of `procs` quits and says `bye`.
pub async fn quit<const N: usize>(procs: [&mut Proc; N]) {
    for p in procs {
        p.send("quit").await;
        p.expect("bye").await;
    }
}

/// `us` hangs up, `peer` hears it; both quit and exit with success. The
/// last audio that arrived plays out first (the output WAV is the
/// playout, and the jitter buffer may hold a few hundred milliseconds).
pub async fn hang_up_and_quit(us: &mut Proc, peer: &mut Proc) {
    tokio::time::sleep(Duration::from_millis(600)).await;
    us.send("hangup").await;
    us.expect("ended by=us").await;
    peer.expect("ended by=peer").await;
    for p in [us, peer] {
        p.send("quit").await;
        p.expect("bye").await;
        let st = tokio::time::timeout(Duration::from_secs(10), p.child.wait())
            .await
            .unwrap()
            .unwrap();
        assert!(st.success(), "{}: {st}", p.name);
    }
}

/// A `myturn --plain` process.
pub struct Proc {
    pub name: &'static str,
    pub child: Child,
    stdin: ChildStdin,
    out: Lines<BufReader<ChildStdout>>,
    pub seen: Vec<String>,
    log: Arc<Mutex<Vec<String>>>,
    log_reader: Option<tokio::task::JoinHandle<()>>,
}

impl Proc {
    pub fn start(server: &str, name: &'static str, input: &Path, output: &Path) -> Proc {
        Self::start_in(None, server, name, input, output, &[])
    }

    /// [`Proc::start`] with more command-line flags, inside a network
    /// namespace (`ip netns exec`) when `netns` is given.
    pub fn start_in(
        netns: Option<&str>,
        server: &str,
        name: &'static str,
        input: &Path,
        output: &Path,
        flags: &[&str],
    ) -> Proc {
        let bin = env!("CARGO_BIN_EXE_myturn");
        let mut cmd = match netns {
            Some(ns) => {
                let mut c = Command::new("ip");
                c.args(["netns", "exec", ns, bin]);
                c
            }
            None => Command::new(bin),
        };
        let mut child = cmd
            .args(["--plain", "--server", server, "--name", name])
            .args(flags)
            .arg("--input-wav")
            .arg(input)
            .arg("--output-wav")
            .arg(output)
            // The `call connected … sip_call_id=…` line is at info level.
            .env("MYTURN_LOG", "info")
            .env("RUST_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let out = BufReader::new(child.stdout.take().unwrap()).lines();
        let log = Arc::new(Mutex::new(Vec::new()));
        let mut err = BufReader::new(child.stderr.take().unwrap()).lines();
        let keep = log.clone();
        let log_reader = tokio::spawn(async move {
            while let Ok(Some(l)) = err.next_line().await {
                eprintln!("[{name}] {l}");
                keep.lock().unwrap().push(l);
            }
        });
        Proc {
            name,
            child,
            stdin,
            out,
            seen: Vec::new(),
            log,
            log_reader: Some(log_reader),
        }
    }

    pub async fn send(&mut self, line: &str) {
        self.stdin
            .write_all(format!("{line}\n").as_bytes())
            .await
            .unwrap();
        self.stdin.flush().await.unwrap();
    }

    /// The first line (from now) starting with `prefix`; an `error` line
    /// before it fails at once.
    pub async fn expect(&mut self, prefix: &str) -> String {
        let r = tokio::time::timeout(Duration::from_secs(30), async {
            while let Some(l) = self.out.next_line().await.unwrap() {
                self.seen.push(l.clone());
                if l.starts_with(prefix) {
                    return Ok(l);
                }
                if l.starts_with("error ") {
                    return Err(l);
                }
            }
            Err("(end of output)".into())
        })
        .await;
        match r {
            Ok(Ok(l)) => l,
            Ok(Err(e)) => panic!(
                "{}: `{e}` instead of `{prefix}`; saw {:?}",
                self.name, self.seen
            ),
            Err(_) => panic!("{}: no `{prefix}` line; saw {:?}", self.name, self.seen),
        }
    }

    /// Sends a signal (`STOP`, `KILL`, …) to the process.
    pub fn signal(&self, sig: &str) {
        let pid = self.child.id().expect("still running").to_string();
        let st = std::process::Command::new("kill")
            .args(["-s", sig, &pid])
            .status()
            .unwrap();
        assert!(st.success(), "kill -s {sig} {pid}");
    }

    /// [`Proc::expect`], failing unless the line comes within `limit`;
    /// returns it and how long it took.
    pub async fn expect_within(&mut self, prefix: &str, limit: Duration) -> (String, Duration) {
        let t0 = Instant::now();
        let line = tokio::time::timeout(limit, self.expect(prefix))
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "{}: no `{prefix}` within {limit:?}; saw {:?}",
                    self.name, self.seen
                )
            });
        (line, t0.elapsed())
    }

    /// Lines printed within `d` from now (none may be an error).
    pub async fn lines_for(&mut self, d: Duration) -> Vec<String> {
        let mut got = Vec::new();
        let _ = tokio::time::timeout(d, async {
            while let Ok(Some(l)) = self.out.next_line().await {
                self.seen.push(l.clone());
                got.push(l);
            }
        })
        .await;
        got
    }

    /// Asks for `stats` until all the audio went both ways: `frames`
    /// sent and received; with Opus, whose DTX sends nothing for pauses,
    /// `frames` sent and what was received no longer growing.
    pub async fn all_audio_through(&mut self, frames: usize) -> String {
        let end = Instant::now() + Duration::from_secs(20);
        let mut last = String::new();
        loop {
            self.send("stats").await;
            let s = self.expect("stats ").await;
            let received = |s: &str| {
                s.split_whitespace()
                    .find_map(|f| f.strip_prefix("received="))
                    .map(str::to_owned)
            };
            let sent = s.contains(&format!(" sent={frames} "));
            if sent && s.contains(&format!(" received={frames} ")) {
                return s;
            }
            if sent && s.contains(" codec=opus ") && received(&s) == received(&last) {
                return s;
            }
            last = s.clone();
            assert!(Instant::now() < end, "{}: audio incomplete: {s}", self.name);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Waits for the stderr reader to reach the end (after the exit).
    pub async fn finish_log(&mut self) -> Vec<String> {
        if let Some(h) = self.log_reader.take() {
            let _ = tokio::time::timeout(Duration::from_secs(5), h).await;
        }
        self.log.lock().unwrap().clone()
    }
}

/// A relay port range no other server in this test process uses (tests
/// run side by side; the product default, 10000-19999, is left to servers
/// the tests start as separate processes).
pub fn own_media_ports() -> myturn_server::config::PortRange {
    use std::sync::atomic::{AtomicU16, Ordering};
    static NEXT: AtomicU16 = AtomicU16::new(0);
    let k = NEXT.fetch_add(1, Ordering::Relaxed) % 500;
    let lo = 20_000 + k * 20;
    myturn_server::config::PortRange(lo..=lo + 19)
}

/// A private CA and a certificate for `localhost`/127.0.0.1 it signed,
/// made with the `openssl` command line in `dir`: (ca.pem, cert.pem,
/// key.pem).
pub fn private_ca(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, std::path::PathBuf) {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/../../tests/tls/make-ca.sh");
    let st = std::process::Command::new("sh")
        .arg(script)
        .arg(dir)
        .status()
        .unwrap();
    assert!(st.success(), "openssl could not make the test PKI");
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

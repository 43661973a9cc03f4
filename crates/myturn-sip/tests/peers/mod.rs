//! Starting real SIP peers (SIPp, Kamailio) for interop tests, and our own
//! agents on real UDP sockets.
//!
//! `.ci/run` installs the peers from Debian's packages. When one is missing
//! the test fails under CI (`CI` set) or with `MYTURN_REQUIRE_INTEROP=1`,
//! and is skipped with a notice otherwise.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{SocketAddr, UdpSocket};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use myturn_sip::driver::{self, SipHandle};
use myturn_sip::ua::{Config, Event};

/// Whether `bin` is installed; panics if it is required and missing.
pub fn available(bin: &str) -> bool {
    let found = Command::new("sh")
        .arg("-c")
        .arg(format!("command -v {bin}"))
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        let required = std::env::var_os("CI").is_some()
            || std::env::var("MYTURN_REQUIRE_INTEROP").is_ok_and(|v| v == "1");
        assert!(
            !required,
            "{bin} is not installed; `bash .ci/run` installs it from Debian's packages"
        );
        eprintln!(
            "SKIPPED: {bin} is not installed (run `bash .ci/run` to install the interop peers)"
        );
    }
    found
}

/// A free UDP port on loopback.
pub fn free_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed on drop.
pub struct Peer {
    pub child: Child,
    pub name: &'static str,
}

impl Peer {
    pub fn spawn(name: &'static str, cmd: &mut Command) -> Peer {
        use std::os::unix::process::CommandExt;
        // Its own process group, so forked workers (Kamailio's) die with it.
        let child = cmd
            .process_group(0)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Peer { child, name }
    }

    /// Waits for the process to exit; returns its exit code, and its
    /// output for diagnostics.
    pub fn wait(mut self, timeout: Duration) -> (Option<i32>, String) {
        let end = Instant::now() + timeout;
        loop {
            if let Some(st) = self.child.try_wait().unwrap() {
                let out = self.output();
                return (st.code(), out);
            }
            if Instant::now() > end {
                self.kill_group();
                return (None, self.output());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn output(&mut self) -> String {
        use std::io::Read;
        let mut s = String::new();
        if let Some(o) = self.child.stdout.as_mut() {
            let _ = o.read_to_string(&mut s);
        }
        if let Some(e) = self.child.stderr.as_mut() {
            let _ = e.read_to_string(&mut s);
        }
        s
    }
}

impl Peer {
    fn kill_group(&mut self) {
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.child.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Peer {
    fn drop(&mut self) {
        self.kill_group();
    }
}

/// Runs a SIPp scenario file from `dir`: `-m 1` call, loopback, port
/// `port`, with `extra` arguments (e.g. the remote host for a UAC).
pub fn sipp(dir: &Path, scenario: &str, xml: &str, port: u16, extra: &[&str]) -> Peer {
    let path = dir.join(scenario);
    std::fs::write(&path, xml).unwrap();
    let mut cmd = Command::new("sipp");
    cmd.current_dir(dir)
        .arg("-sf")
        .arg(&path)
        .args(["-i", "127.0.0.1", "-p", &port.to_string(), "-m", "1"])
        .args(["-timeout", "30s", "-timeout_error", "-nostdin"])
        .args(["-trace_msg", "-trace_err"])
        .args(extra);
    Peer::spawn("sipp", &mut cmd)
}

/// SIPp's message log for a scenario (`-trace_msg`).
pub fn sipp_messages(dir: &Path) -> String {
    let mut all = String::new();
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.to_string_lossy().ends_with("_messages.log") {
            all.push_str(&std::fs::read_to_string(&p).unwrap_or_default());
        }
    }
    all
}

/// Waits until something listens on UDP `port` (a peer is up).
pub fn wait_listening(port: u16, timeout: Duration) {
    let end = Instant::now() + timeout;
    while Instant::now() < end {
        if UdpSocket::bind(("127.0.0.1", port)).is_err() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("nothing listens on UDP port {port}");
}

/// Starts one of our agents on a fresh loopback port.
pub async fn agent(user: &str, password: &str, proxy: SocketAddr) -> SipHandle {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let local = socket.local_addr().unwrap();
    let mut cfg = Config::new(local, proxy, user, password);
    cfg.expires = 120;
    driver::start(socket, cfg, Box::new(rand_core::OsRng)).unwrap()
}

/// The next event matching `f` within 15 s, or a panic naming what came.
pub async fn expect<T>(h: &mut SipHandle, what: &str, f: impl FnMut(&Event) -> Option<T>) -> T {
    let mut other = Vec::new();
    match h.wait_for(Duration::from_secs(15), &mut other, f).await {
        Some(t) => t,
        None => panic!("no {what}; got {other:?}"),
    }
}

//! Headless Chromium (Debian's `chromium`) with a profile of its own,
//! started and waited for until it names its DevTools endpoint (up to 90 s:
//! beside the other interop tests on a 2-core machine it once took over 30).

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use crate::process::Peer;

/// Starts headless Chromium on `about:blank` with its profile in `dir`;
/// returns it and the DevTools WebSocket URL of its browser target.
pub fn headless(dir: &Path) -> (Peer, String) {
    headless_with(dir, &[])
}

/// [`headless`] with more flags: the browser client's tests give it a
/// fake microphone fed from a WAV file and let audio start without a
/// gesture. The network flags keep it from calling hosts it cannot reach.
pub fn headless_with(dir: &Path, flags: &[String]) -> (Peer, String) {
    start(Command::new("chromium"), dir, flags)
}

/// [`headless_with`] inside the network namespace `ns`, whose address
/// `ip` the test process reaches: DevTools listens on the namespace's
/// loopback only, so `chromium/forward.py` forwards `ip:port` to it.
/// Returns the browser, the forwarder, and the DevTools URL through it.
pub fn headless_in(ns: &str, ip: IpAddr, dir: &Path, flags: &[String]) -> (Peer, Peer, String) {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", ns, "chromium"]);
    let (browser, url) = start(cmd, dir, flags);
    // ws://127.0.0.1:PORT/devtools/browser/ID
    let rest = url.trim_start_matches("ws://");
    let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
    let port = authority.rsplit(':').next().unwrap_or_default().to_owned();
    let listen = crate::ports::free_tcp_port();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/chromium/forward.py");
    let mut fwd = Command::new("ip");
    fwd.args(["netns", "exec", ns, "python3", script])
        .arg(ip.to_string())
        .arg(listen.to_string())
        .arg(&port);
    let mut forwarder = Peer::spawn("devtools-forward", &mut fwd, dir);
    forwarder.wait_for_line("forwarding", Duration::from_secs(20));
    let host = match ip {
        IpAddr::V4(a) => a.to_string(),
        IpAddr::V6(a) => format!("[{a}]"),
    };
    (browser, forwarder, format!("ws://{host}:{listen}/{path}"))
}

fn start(mut cmd: Command, dir: &Path, flags: &[String]) -> (Peer, String) {
    cmd.args([
        "--headless=new",
        "--no-sandbox", // as root in CI; the page is the test's own
        "--disable-gpu",
        "--no-first-run",
        "--no-default-browser-check",
        "--remote-debugging-port=0",
        "--window-size=1280,1600",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
    ])
    .args(flags)
    .arg(format!("--user-data-dir={}", dir.join("profile").display()))
    .arg("about:blank");
    let mut peer = Peer::spawn("chromium", &mut cmd, dir);
    let line = peer.wait_for_line("DevTools listening on ", Duration::from_secs(90));
    let url = line
        .split("DevTools listening on ")
        .nth(1)
        .unwrap_or_default()
        .trim()
        .to_owned();
    (peer, url)
}

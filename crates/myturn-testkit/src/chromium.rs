//! Headless Chromium (Debian's `chromium`) with a profile of its own,
//! started and waited for until it names its DevTools endpoint (up to 90 s:
//! beside the other interop tests on a 2-core machine it once took over 30).

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
    let mut cmd = Command::new("chromium");
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

//! Starts the real `myturn-server` binary and talks HTTP to it, with the
//! Asterisk backend writing into a temp dir and a reload command that logs
//! what it was asked to do.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::Api;
use myturn_testkit::ports::free_tcp_port;
use serde_json::Value;

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The binary, to serve HTTP on `port` with the PBX backend `pbx`, its
/// stderr piped to the test; and a client of it.
fn binary(port: u16, pbx: &str) -> (Command, Api) {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_myturn-server"));
    cmd.args(["--listen", &format!("127.0.0.1:{port}"), "--pbx", pbx])
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    (cmd, Api::new(format!("http://127.0.0.1:{port}")))
}

async fn wait_until<F: Fn() -> bool>(what: &str, f: F) {
    let start = Instant::now();
    while !f() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "timed out waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[test]
fn help_explains_the_flags() {
    let out = Command::new(env!("CARGO_BIN_EXE_myturn-server"))
        .arg("--help")
        .output()
        .unwrap();
    assert!(out.status.success());
    let help = String::from_utf8(out.stdout).unwrap();
    for flag in [
        "--listen",
        "--pbx",
        "--asterisk-conf-dir",
        "--reload",
        "--token-ttl",
        "--lease",
        "MYTURN_ADMIN_TOKEN",
        "asterisk-pjsip",
    ] {
        assert!(help.contains(flag), "--help lacks {flag}:\n{help}");
    }
}

#[test]
fn bad_configuration_exits_with_a_clear_message() {
    let out = Command::new(env!("CARGO_BIN_EXE_myturn-server"))
        .args([
            "--pbx",
            "asterisk",
            "--asterisk-conf-dir",
            "/nonexistent/asterisk",
        ])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("/nonexistent/asterisk") && err.contains("not a directory"),
        "{err}"
    );
}

#[tokio::test]
async fn real_binary_serves_http_and_keeps_asterisk_files_in_step() {
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("reloads.log");
    let script = dir.path().join("fake-asterisk");
    std::fs::write(
        &script,
        format!("#!/bin/sh\necho \"$*\" >> {}\n", log.display()),
    )
    .unwrap();
    let (mut cmd, api) = binary(free_tcp_port(), "asterisk");
    let child = cmd
        .arg("--asterisk-conf-dir")
        .arg(dir.path())
        .args(["--reload", "command", "--reload-command"])
        .arg(format!("sh {} -rx", script.display()))
        .args(["--coalesce-ms", "20"])
        .env("MYTURN_ADMIN_TOKEN", "binary-test-admin-token")
        .spawn()
        .unwrap();
    let mut server = Server(child);
    api.wait_until_up().await;
    let sip = dir.path().join("myturn_sip.conf");
    let ext = dir.path().join("myturn_extensions.conf");
    let read = |p: &std::path::Path| std::fs::read_to_string(p).unwrap_or_default();

    let r = api.post_user("jeden").await;
    assert_eq!(r.status(), 201);
    let jeden: Value = r.json().await.unwrap();
    let r = api.post_user("dwa").await;
    let dwa: Value = r.json().await.unwrap();
    wait_until("both peers in sip.conf", || {
        read(&sip).contains("[jeden]") && read(&sip).contains("[dwa]")
    })
    .await;
    let secret = jeden["sip"]["password"].as_str().unwrap();
    assert!(read(&sip).contains(&format!("secret={secret}")));
    wait_until("dialplan", || {
        read(&ext).contains("exten => 111001,1,NoOp(myturn: calling dwa)")
    })
    .await;
    wait_until("reload", || {
        read(&log.clone()).contains("-rx dialplan reload")
    })
    .await;
    assert!(read(&log).contains("-rx sip reload"));

    // A bad request to the real server is a JSON 400.
    let r = api.post_user("x;y\n[general]").await;
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_name");

    // Logout drops the user from both files.
    let r = api.delete("/v1/me", dwa["token"].as_str().unwrap()).await;
    assert_eq!(r.status(), 204);
    wait_until("dwa removed", || {
        !read(&sip).contains("[dwa]") && !read(&ext).contains("111001")
    })
    .await;
    assert!(read(&sip).contains("[jeden]"));

    // SIGTERM: graceful shutdown clears the files.
    let pid = server.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = server.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
    assert!(
        !read(&sip).contains("[jeden]"),
        "users outlived the process:\n{}",
        read(&sip)
    );
    // The server never logged a secret.
    let mut stderr = String::new();
    use std::io::Read as _;
    server
        .0
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    assert!(stderr.contains("myturn-server listening"), "{stderr}");
    assert!(!stderr.contains(secret), "a SIP password reached the log");
    assert!(
        !stderr.contains(jeden["token"].as_str().unwrap()),
        "a token reached the log"
    );
}

/// Runs the binary with `args` until it serves, registers one user (so
/// something is logged at info), stops it, and returns its stderr.
async fn log_of(args: &[&str]) -> String {
    let (mut cmd, api) = binary(free_tcp_port(), "none");
    let mut child = cmd
        .args(args)
        .env("MYTURN_LOG", "info")
        .env_remove("NO_COLOR")
        .spawn()
        .unwrap();
    api.wait_until_up().await;
    let r = api.post_user("logged").await;
    assert_eq!(r.status(), 201);
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    err
}

#[tokio::test]
async fn piped_logs_carry_no_escape_codes_and_json_logs_parse() {
    // Human format into a pipe (a log file, journald): plain text.
    let human = log_of(&[]).await;
    assert!(human.contains("myturn-server listening"), "{human}");
    assert!(human.contains("user registered"), "{human}");
    assert!(
        !human.contains('\u{1b}'),
        "escape codes in a piped log: {human:?}"
    );
    // JSON: every line one object with a timestamp, level and message.
    let json = log_of(&["--log-format", "json"]).await;
    let lines: Vec<Value> = json
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    assert!(lines.len() >= 3, "{json}");
    for l in &lines {
        assert!(l["timestamp"].is_string() && l["level"].is_string(), "{l}");
    }
    let reg = lines
        .iter()
        .find(|l| l["message"] == "user registered")
        .unwrap_or_else(|| panic!("{json}"));
    assert_eq!(reg["level"], "INFO");
    assert_eq!(reg["name"], "logged");
    // Secrets stay out of the log in either format.
    assert!(!json.contains("password") && !human.contains("password"));
}

/// `--help` puts each backend's flags under that backend's heading.
#[test]
fn help_groups_flags_by_backend() {
    let out = Command::new(env!("CARGO_BIN_EXE_myturn-server"))
        .arg("--help")
        .output()
        .unwrap();
    let help = String::from_utf8(out.stdout).unwrap();
    // Heading lines stand alone at the left margin and end with ':'.
    let mut section = String::new();
    let mut under = std::collections::BTreeMap::new();
    for line in help.lines() {
        if !line.starts_with(' ') && line.ends_with(':') {
            section = line.trim_end_matches(':').to_owned();
        } else if let Some(flag) = line.trim_start().strip_prefix("--") {
            let flag = flag.split([' ', '=']).next().unwrap().to_owned();
            if line.starts_with("      --") {
                under.insert(flag, section.clone());
            }
        }
    }
    for (flag, heading) in [
        ("listen", "Options"),
        ("pbx", "Options"),
        ("state", "Options"),
        ("config", "Options"),
        ("sip-listen", "Built-in PBX (--pbx builtin, the default)"),
        ("media-ports", "Built-in PBX (--pbx builtin, the default)"),
        (
            "sip-rate-limit",
            "Built-in PBX (--pbx builtin, the default)",
        ),
        (
            "asterisk-conf-dir",
            "Asterisk backend (--pbx asterisk, --pbx asterisk-pjsip)",
        ),
        (
            "ami-secret",
            "Asterisk backend (--pbx asterisk, --pbx asterisk-pjsip)",
        ),
        (
            "wideband",
            "Asterisk backend (--pbx asterisk, --pbx asterisk-pjsip)",
        ),
        ("kamailio-redis", "Kamailio backend (--pbx kamailio)"),
        ("jwt-key-file", "Redis state (--state redis://…)"),
        ("node-id", "Redis state (--state redis://…)"),
    ] {
        assert_eq!(
            under.get(flag).map(String::as_str),
            Some(heading),
            "--{flag} in --help:\n{help}"
        );
    }
}

/// The binary with `--config` holding `toml`, serving on a port of its own
/// with no PBX.
fn with_config(dir: &std::path::Path, toml: &str) -> (Command, Api) {
    let port = free_tcp_port();
    let path = dir.join("myturn-server.toml");
    std::fs::write(
        &path,
        format!("listen = \"127.0.0.1:{port}\"\npbx = \"none\"\n{toml}"),
    )
    .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_myturn-server"));
    cmd.arg("--config")
        .arg(&path)
        .env_remove("MYTURN_NODE_ID")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    (cmd, Api::new(format!("http://127.0.0.1:{port}")))
}

async fn node_of(api: &Api) -> String {
    api.wait_until_up().await;
    let health: Value = api.get("/healthz", None).await.json().await.unwrap();
    health["node"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn the_config_file_is_beaten_by_the_environment_and_the_environment_by_flags() {
    let dir = tempfile::tempdir().unwrap();
    // The file alone: its listen address and node name are used.
    let (mut cmd, api) = with_config(dir.path(), "node_id = \"from-file\"\n");
    let server = Server(cmd.spawn().unwrap());
    assert_eq!(node_of(&api).await, "from-file");
    drop(server);
    // MYTURN_NODE_ID beats the file (whose listen address still holds).
    let (mut cmd, api) = with_config(dir.path(), "node_id = \"from-file\"\n");
    let server = Server(cmd.env("MYTURN_NODE_ID", "from-env").spawn().unwrap());
    assert_eq!(node_of(&api).await, "from-env");
    drop(server);
    // --node-id beats both.
    let (mut cmd, api) = with_config(dir.path(), "node_id = \"from-file\"\n");
    let server = Server(
        cmd.env("MYTURN_NODE_ID", "from-env")
            .args(["--node-id", "from-flag"])
            .spawn()
            .unwrap(),
    );
    assert_eq!(node_of(&api).await, "from-flag");
    drop(server);
}

#[test]
fn a_bad_config_file_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    for (toml, says) in [
        (
            "\nsip_listn = \"127.0.0.1:5060\"\n",
            "unknown key `sip_listn`",
        ),
        ("\nlease = \"long\"\n", "`lease`"),
    ] {
        let (mut cmd, _) = with_config(dir.path(), toml);
        let out = cmd.stderr(Stdio::piped()).output().unwrap();
        assert_eq!(out.status.code(), Some(2), "{toml}");
        let err = String::from_utf8_lossy(&out.stderr);
        let at = format!("{}:4", dir.path().join("myturn-server.toml").display());
        assert!(err.contains(&at) && err.contains(says), "{toml}: {err}");
    }
}

/// Reads every datagram on `socket` into a channel until the test ends.
fn notifications(socket: std::os::unix::net::UnixDatagram) -> std::sync::mpsc::Receiver<String> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut buf = [0u8; 4096];
        while let Ok(n) = socket.recv(&mut buf) {
            if tx
                .send(String::from_utf8_lossy(&buf[..n]).into_owned())
                .is_err()
            {
                break;
            }
        }
    });
    rx
}

/// The next notification holding `line` (as one of its lines), and those
/// before it.
fn wait_for(rx: &std::sync::mpsc::Receiver<String>, line: &str) -> (String, Vec<String>) {
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut before = Vec::new();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let msg = rx
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no {line} notification; before it: {before:?}"));
        if msg.lines().any(|l| l == line) {
            return (msg, before);
        }
        before.push(msg);
    }
}

#[tokio::test]
async fn systemd_hears_ready_when_ready_the_watchdog_and_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let socket_path = dir.path().join("notify.sock");
    let rx = notifications(std::os::unix::net::UnixDatagram::bind(&socket_path).unwrap());
    // Asterisk whose reload takes a while: the first sync, and so
    // readiness, comes well after HTTP is bound.
    let log = dir.path().join("reloads.log");
    let script = dir.path().join("slow-asterisk");
    std::fs::write(
        &script,
        format!("#!/bin/sh\nsleep 1\necho \"$*\" >> {}\n", log.display()),
    )
    .unwrap();
    let (mut cmd, api) = binary(free_tcp_port(), "asterisk");
    let child = cmd
        .arg("--asterisk-conf-dir")
        .arg(dir.path())
        .args(["--reload", "command", "--reload-command"])
        .arg(format!("sh {} -rx", script.display()))
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "200000")
        .env_remove("WATCHDOG_PID")
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let server = Server(child);

    let (ready, before) = wait_for(&rx, "READY=1");
    // At READY=1, /readyz says ready: not before it could.
    let r = api.get("/readyz", None).await;
    assert_eq!(r.status(), 200, "READY=1 sent before /readyz was ready");
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["status"], "ready");
    assert!(
        std::fs::read_to_string(&log)
            .unwrap_or_default()
            .contains("dialplan reload"),
        "READY=1 before the PBX's first sync"
    );
    assert!(
        ready
            .lines()
            .any(|l| l.starts_with("STATUS=serving on 127.0.0.1:")),
        "{ready}"
    );
    assert!(
        before.iter().any(|m| m.starts_with("STATUS=starting")),
        "no STATUS= while starting: {before:?}"
    );
    // The watchdog keeps on: at half of WATCHDOG_USEC, several pings.
    for _ in 0..3 {
        wait_for(&rx, "WATCHDOG=1");
    }
    // SIGTERM: STOPPING=1, then a clean exit.
    let pid = server.0.id().to_string();
    assert!(Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap()
        .success());
    let (stopping, _) = wait_for(&rx, "STOPPING=1");
    assert!(stopping.contains("STATUS=stopping"), "{stopping}");
    let mut server = server;
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        if let Some(s) = server.0.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "server did not stop on SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    assert!(status.success(), "{status}");
    // Nothing claims it serves after STOPPING=1.
    while let Ok(m) = rx.try_recv() {
        assert!(
            !m.contains("READY=1") && !m.contains("STATUS=serving"),
            "{m}"
        );
    }
}

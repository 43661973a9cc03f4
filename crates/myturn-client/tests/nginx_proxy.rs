//! `docs/reverse-proxy/nginx.conf`, tested as written (issue #14): a real
//! nginx (Debian's `nginx-light`, started by the test) terminates TLS with
//! a private CA's certificate and forwards to a plain myturn-server started
//! with `--trusted-proxy 127.0.0.1`. Checked through nginx:
//!
//! * a whole call (API over HTTPS, event stream over WSS through the
//!   upgrade), the same SAS and chat both ways;
//! * rate limits see each client, not nginx: clients on 127.0.0.2 and
//!   127.0.0.3 have their own registration budgets, and a forged
//!   `X-Forwarded-For` buys nothing;
//! * HSTS from nginx.
//!
//! Without nginx installed: SKIPPED, and a failure under CI.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::Path;
use std::process::Command;

use common::daemon::Daemon;
use common::netns::required;
use common::{builtin_pbx, private_ca, write_wav, Proc};
use myturn_client::speech;

/// The documented config, with this test's ports, paths and name.
fn site_config(port: u16, upstream: u16, cert: &Path, key: &Path) -> String {
    let doc = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../docs/reverse-proxy/nginx.conf"
    ))
    .unwrap();
    let mut out = String::new();
    for line in doc.lines() {
        let t = line.trim();
        let line = if t == "listen 443 ssl;" {
            format!("    listen 127.0.0.1:{port} ssl;")
        } else if t == "listen [::]:443 ssl;" {
            continue;
        } else if t == "server 127.0.0.1:8080;" {
            format!("    server 127.0.0.1:{upstream};")
        } else if t.starts_with("ssl_certificate ") {
            format!("    ssl_certificate {};", cert.display())
        } else if t.starts_with("ssl_certificate_key ") {
            format!("    ssl_certificate_key {};", key.display())
        } else {
            line.replace("myturn.example.org", "localhost")
        };
        out.push_str(&line);
        out.push('\n');
    }
    for substituted in [
        "ssl_certificate ",
        "ssl_certificate_key ",
        "server 127.0.0.1:",
        "listen 127.0.0.1:",
    ] {
        assert!(
            out.contains(substituted),
            "the documented config changed shape: {substituted}"
        );
    }
    out
}

fn start_nginx(dir: &Path, site: &str) -> Daemon {
    let d = dir.display();
    std::fs::write(dir.join("myturn.conf"), site).unwrap();
    let main = format!(
        "worker_processes 1;\nerror_log {d}/error.log info;\npid {d}/nginx.pid;\n{}\
         events {{ worker_connections 256; }}\n\
         http {{\n  access_log {d}/access.log;\n  client_body_temp_path {d}/body;\n  proxy_temp_path {d}/proxy;\n\
           fastcgi_temp_path {d}/fastcgi;\n  uwsgi_temp_path {d}/uwsgi;\n  scgi_temp_path {d}/scgi;\n\
           include {d}/myturn.conf;\n}}\n",
        // As root, workers would otherwise drop to a user that cannot read
        // the test's files.
        if unsafe_is_root() { "user root;\n" } else { "" }
    );
    std::fs::write(dir.join("nginx.conf"), main).unwrap();
    let conf = dir.join("nginx.conf");
    let t = Command::new("nginx")
        .args(["-t", "-p"])
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .output()
        .unwrap();
    assert!(
        t.status.success(),
        "nginx -t: {}",
        String::from_utf8_lossy(&t.stderr)
    );
    let mut cmd = Command::new("nginx");
    cmd.args(["-p"])
        .arg(dir)
        .arg("-c")
        .arg(&conf)
        .args(["-g", "daemon off;"]);
    Daemon::spawn("nginx", &mut cmd, dir)
}

fn unsafe_is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| o.stdout.trim_ascii() == b"0")
}

/// `curl` through nginx from `source` (a loopback address), returning the
/// HTTP status.
fn post_user(url: &str, ca: &Path, source: &str, name: &str, forged: Option<&str>) -> u16 {
    let mut cmd = Command::new("curl");
    cmd.args([
        "-s",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        "--max-time",
        "5",
        "--interface",
        source,
    ])
    .arg("--cacert")
    .arg(ca)
    .args(["-H", "content-type: application/json"]);
    if let Some(f) = forged {
        cmd.args(["-H", &format!("x-forwarded-for: {f}")]);
    }
    let out = cmd
        .args([
            "-d",
            &format!("{{\"name\":\"{name}\"}}"),
            &format!("{url}/v1/users"),
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_documented_nginx_config_carries_a_whole_call_and_the_real_client_address() {
    if !Command::new("sh")
        .args(["-c", "command -v nginx"])
        .output()
        .is_ok_and(|o| o.status.success())
    {
        assert!(!required(), "nginx is not installed (Debian: nginx-light)");
        eprintln!("SKIPPED: nginx is not installed");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = private_ca(dir.path());
    // The server as the config's comment says: plain, on loopback,
    // trusting nginx.
    let mut cfg = builtin_pbx();
    cfg.trusted_proxy = vec!["127.0.0.1".parse().unwrap()];
    let app = myturn_server::App::new(&cfg, None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = listener.local_addr().unwrap().port();
    tokio::spawn(app.serve(listener, std::future::pending()));
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut nginx = start_nginx(dir.path(), &site_config(port, upstream, &cert, &key));
    let url = format!("https://localhost:{port}");
    let mut up = false;
    for _ in 0..50 {
        let o = Command::new("curl")
            .args(["-s", "-i", "--max-time", "2", "--cacert"])
            .arg(&ca)
            .arg(format!("{url}/healthz"))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&o.stdout).to_ascii_lowercase();
        if text.starts_with("http/1.1 200") {
            assert!(
                text.contains("strict-transport-security: max-age=31536000"),
                "{text}"
            );
            // Behind a trusted proxy, plain HTTP to it is fine: no warning.
            assert!(!text.contains("\"warning\""), "{text}");
            up = true;
            break;
        }
        nginx.assert_running();
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(up, "nginx never answered");

    // Each client its own budget (10 registrations at once).
    let url2 = url.clone();
    let ca2 = ca.clone();
    let statuses = tokio::task::spawn_blocking(move || {
        let a: Vec<u16> = (0..11)
            .map(|i| post_user(&url2, &ca2, "127.0.0.2", &format!("twos{i}"), None))
            .collect();
        // The client on .3 claims to be somebody else: it stays .3.
        let b = post_user(&url2, &ca2, "127.0.0.3", "threes", Some("198.51.100.77"));
        // And claiming to be .3 does not free .2 from its limit.
        let c = post_user(&url2, &ca2, "127.0.0.2", "twos-again", Some("127.0.0.3"));
        (a, b, c)
    })
    .await
    .unwrap();
    assert_eq!(statuses.0[..10], [201; 10], "{statuses:?}");
    assert_eq!(statuses.0[10], 429, "{statuses:?}");
    assert_eq!(statuses.1, 201, "{statuses:?}");
    assert_eq!(statuses.2, 429, "{statuses:?}");

    // A whole call through nginx: HTTPS for the API, WSS for the events.
    let (a_in, b_in) = (dir.path().join("alice.wav"), dir.path().join("bob.wav"));
    write_wav(&a_in, &speech::frames(51, 8000, 1.0));
    write_wav(&b_in, &speech::frames(52, 8000, 1.0));
    let ca_flag = ca.to_str().unwrap();
    let mut alice = Proc::start_with(
        &url,
        "alice",
        &a_in,
        &dir.path().join("a-out.wav"),
        &["--ca-cert", ca_flag],
    );
    let mut bob = Proc::start_with(
        &url,
        "bob",
        &b_in,
        &dir.path().join("b-out.wav"),
        &["--ca-cert", ca_flag],
    );
    for p in [&mut alice, &mut bob] {
        p.expect("sip registered").await;
    }
    alice.send("ready").await;
    bob.send("ready").await;
    let (sa, sb) = tokio::join!(alice.expect("connected sas="), bob.expect("connected sas="));
    assert_eq!(sa, sb);
    alice.send("say through nginx").await;
    bob.expect("chat alice: through nginx").await;
    bob.send("say and back").await;
    alice.expect("chat bob: and back").await;
    common::hang_up_and_quit(&mut alice, &mut bob).await;
    nginx.assert_running();
}

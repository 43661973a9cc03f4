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

use std::path::Path;
use std::process::Command;

use crate::common::{self, builtin_pbx, private_ca, serve_on, voice, Proc};
use myturn_testkit::{nginx, ports, skip, Scratch};

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
    if !skip::installed("nginx") {
        return;
    }
    let dir = Scratch::new();
    let (ca, cert, key) = private_ca(dir.path());
    // The server as the config's comment says: plain, on loopback,
    // trusting nginx.
    let mut cfg = builtin_pbx();
    cfg.trusted_proxy = vec!["127.0.0.1".parse().unwrap()];
    let upstream = serve_on(&cfg, [127, 0, 0, 1].into()).await.port();
    let port = ports::free_tcp_port();
    let mut nginx = nginx::start(dir.path(), &site_config(port, upstream, &cert, &key));
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
    let flags = ["--ca-cert", ca.to_str().unwrap()];
    let client = |name, seed, output: &str| {
        let input = voice(dir.path(), name, seed, 1.0).0;
        Proc::start_in(None, &url, name, &input, &dir.join(output), &flags)
    };
    let mut alice = client("alice", 51, "a-out.wav");
    let mut bob = client("bob", 52, "b-out.wav");
    common::sip_registered([&mut alice, &mut bob]).await;
    let (sa, sb) = common::connect(&mut alice, &mut bob).await;
    assert_eq!(sa, sb);
    common::chat(&mut alice, &mut bob, "through nginx").await;
    common::chat(&mut bob, &mut alice, "and back").await;
    common::hang_up_and_quit(&mut alice, &mut bob).await;
    nginx.assert_running();
}

//! The browser's SIP agent (myturn-sip compiled to wasm32, run by Node.js
//! with a browser's WebSocket) registers with a real myturn-server's
//! built-in PBX over `GET /sip` (RFC 7118), with the credentials the
//! server's API gives: Via `WS`, digest challenge and answer, 200.

use std::path::Path;
use std::process::Command;

use serde_json::Value;

use crate::node::build_module;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_wasm_sip_agent_registers_over_websocket() {
    let dir = tempfile::tempdir().unwrap();
    let Some(module) = build_module(dir.path()) else {
        return;
    };
    let mut cfg = myturn_server::Config::defaults();
    cfg.sip_listen = "127.0.0.1:0".parse().unwrap();
    cfg.media_ports = "47000-47009".parse().unwrap();
    let app = myturn_server::App::start(&cfg, None).await.unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(app.serve(listener, std::future::pending()));

    let user: Value = reqwest::Client::new()
        .post(format!("http://{addr}/v1/users"))
        .json(&serde_json::json!({"name": "webpage"}))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let sip = &user["sip"];
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/sip.js");
    let (module, url) = (module.clone(), format!("ws://{addr}/sip"));
    let args: Vec<String> = [
        sip["username"].as_str().unwrap(),
        sip["password"].as_str().unwrap(),
        sip["domain"].as_str().unwrap(),
    ]
    .map(str::to_owned)
    .to_vec();
    let out = tokio::task::spawn_blocking(move || {
        Command::new("node")
            .arg("--experimental-websocket")
            .arg(&script)
            .arg(&module)
            .arg(&url)
            .args(&args)
            .output()
            .expect("node runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK sip"),
        "node: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The PBX holds the binding, as for any SIP client.
    let metrics = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(metrics.contains("myturn_sip_bindings 1"), "{metrics}");
}

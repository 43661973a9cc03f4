//! The demo runs end to end as an integration test.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn demo_runs_the_whole_flow_and_reports_json() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_myturn-demo"))
        .arg("--json")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true);
    assert!(v["pairing_latency_ms"].as_f64().unwrap() < 5000.0);
    assert_ne!(v["caller"], v["callee"]);
    let dial: Vec<String> = serde_json::from_value(v["generated_dialplan"].clone()).unwrap();
    assert!(
        dial.iter().any(|d| d.contains("Dial(SIP/jeden,60)")),
        "{dial:?}"
    );
    assert!(
        dial.iter().any(|d| d.contains("Dial(SIP/dwa,60)")),
        "{dial:?}"
    );
    assert_eq!(v["pbx_files_cleared_on_logout"], true);
}

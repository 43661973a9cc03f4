//! The demo runs end to end as an integration test: a real server with its
//! built-in PBX, two users, a whole encrypted call.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[test]
fn demo_runs_a_whole_call_and_reports_json() {
    let out = myturn_testkit::process::output_ok(
        "myturn-demo",
        std::process::Command::new(env!("CARGO_BIN_EXE_myturn-demo")).args([
            "--json",
            "--seconds",
            "2",
        ]),
    );
    let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(v["ok"], true, "{v}");
    assert_eq!(v["sas_matched"], true);
    assert_eq!(v["sas"].as_str().unwrap().len(), 6);
    assert_ne!(v["caller"], v["callee"]);
    for key in ["pairing_latency_ms", "call_setup_ms", "handshake_ms"] {
        let ms = v["timings"][key].as_f64().unwrap();
        assert!(ms > 0.0 && ms < 10_000.0, "{key}: {ms}");
    }
    let dirs = v["directions"].as_array().unwrap();
    assert_eq!(dirs.len(), 2);
    for d in dirs {
        // 2 s of 20 ms frames each way; on loopback nothing is lost, so the
        // received audio is exactly what was sent.
        assert_eq!(d["frames_sent"], 100, "{d}");
        assert_eq!(d["frames_received"], 100, "{d}");
        assert_eq!(d["audio_bit_exact"], true, "{d}");
        assert!(
            d["received_rms"].as_f64().unwrap() > 100.0,
            "speech, not silence: {d}"
        );
        assert_eq!(d["chat_delivered"], 2, "{d}");
        assert_eq!(d["chat_in_order"], true, "{d}");
    }
}

//! Seal and open per 20 ms frame in the browser's core, WebAssembly
//! (`myturn-web` built for Node.js, V8 as in chromium) against the same
//! Rust natively, in the same run (issue #28's benchmark; the figures go
//! in `docs/performance.md`). One frame is: the caller's `send_audio`
//! (seal: AES-256-CBC + HMAC-SHA256, the RTP header, the replay counter),
//! then the callee's `handle_datagram` (authenticate, open, the replay
//! window) and its event: the same calls a page makes.
//!
//! `cargo bench -p myturn-web --bench seal`
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::path::Path;
use std::process::Command;

use myturn_testkit::bench::median_ns;
use myturn_web::Call;

const PAIR: &str = "6d7974726e2d7761736d2d62656e6368";
const FRAMES: u32 = 5000;
const ROUNDS: usize = 9;

fn pump(a: &mut Call, b: &mut Call, t: f64) {
    for _ in 0..20 {
        let mut moved = false;
        while let Some(d) = a.poll_transmit() {
            b.handle_datagram(t, &d);
            moved = true;
        }
        while let Some(d) = b.poll_transmit() {
            a.handle_datagram(t, &d);
            moved = true;
        }
        while a.poll_event().is_some() {}
        while b.poll_event().is_some() {}
        if !moved {
            return;
        }
    }
}

fn native_ns(spf: u32) -> f64 {
    let mut a = Call::new("caller", PAIR, 96, 1, spf, 0.0).expect("a call");
    let mut b = Call::new("callee", PAIR, 96, 2, spf, 0.0).expect("a call");
    pump(&mut a, &mut b, 1.0);
    b.handle_timeout(2.0);
    pump(&mut a, &mut b, 3.0);
    assert!(a.is_established() && b.is_established());
    let pcm: Vec<u8> = (0..spf * 2).map(|i| (i * 37) as u8).collect();
    let mut t = 10.0;
    median_ns(
        || {
            a.send_audio(&pcm).expect("sealed");
            let d = a.poll_transmit().expect("a datagram");
            t += 20.0;
            b.handle_datagram(t, &d);
            let _ = b.poll_event();
        },
        FRAMES,
        ROUNDS,
    )
}

fn wasm_ns(module: &Path, spf: u32) -> f64 {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/seal.js");
    let out = Command::new("node")
        .arg(script)
        .arg(module)
        .arg(spf.to_string())
        .arg(FRAMES.to_string())
        .arg(ROUNDS.to_string())
        .output()
        .expect("node runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    text.trim()
        .strip_prefix("NS ")
        .and_then(|v| v.parse().ok())
        .expect("NS <ns>")
}

fn main() {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    if !myturn_testkit::wasm::toolchain() {
        return;
    }
    let dir = tempfile::tempdir().expect("a temporary directory");
    let module = myturn_testkit::wasm::build_node_module(&workspace, dir.path());
    println!("seal + open per 20 ms PCM16 frame, median of {ROUNDS} rounds of {FRAMES}");
    println!(
        "| rate | native | wasm (Node.js {}) | wasm / native |",
        node_version()
    );
    println!("|---|---|---|---|");
    for spf in [160, 320] {
        let n = native_ns(spf);
        let w = wasm_ns(&module, spf);
        println!(
            "| {} kHz | {:.1} µs | {:.1} µs | {:.2}× |",
            spf / 20,
            n / 1000.0,
            w / 1000.0,
            w / n
        );
    }
}

fn node_version() -> String {
    Command::new("node")
        .arg("--version")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

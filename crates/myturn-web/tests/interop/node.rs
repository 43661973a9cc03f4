//! A call between the terminal client's media core (native Rust) and the
//! browser's (the same crate compiled to wasm32 and run by Node.js): the
//! same SAS on both sides, and sealed text and audio, bit-exact, both
//! ways, over the wire protocol of `docs/protocol.md` and nothing else.

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use myturn_media::codec::Codec;
use myturn_media::keys::{PairId, Role};
use myturn_media::session::{Config, Event, Session};

const PAIR: &str = "6d7974726e2d7761736d2d696e7465ff";

/// Whether the wasm target, wasm-bindgen at the crate's version and
/// Node.js are here (SKIPPED, or a failure under CI, when not).
pub(crate) fn wasm_toolchain() -> bool {
    myturn_testkit::wasm::toolchain()
}

pub(crate) fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// Builds the module and its Node.js glue into `out`; `None` (skipped)
/// when a tool is missing.
pub(crate) fn build_module(out: &Path) -> Option<PathBuf> {
    wasm_toolchain().then(|| myturn_testkit::wasm::build_node_module(&workspace(), out))
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn unhex(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}

#[test]
fn a_wasm_core_in_node_and_the_native_core_agree_and_talk() {
    let dir = tempfile::tempdir().unwrap();
    let Some(module) = build_module(dir.path()) else {
        return;
    };
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/node/peer.js");
    let mut node = Command::new("node")
        .arg(&script)
        .arg(&module)
        .arg("callee")
        .arg(PAIR)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("node starts");
    let mut to_node = node.stdin.take().unwrap();
    let (tx, rx) = mpsc::channel::<String>();
    let stdout = node.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });

    // The native side: the terminal client's core, as the caller.
    let cfg = Config {
        role: Role::Initiator,
        pair_id: PairId::from_hex(PAIR).unwrap(),
        peer_fingerprint: None,
        payload_type: 96,
        opus_payload_type: None,
        ssrc: 0x1234,
        samples_per_frame: 160,
        codecs: vec![Codec::Pcm16],
    };
    let mut me = Session::new(cfg, Box::new(rand_core::OsRng), Instant::now());
    let native_pcm: Vec<u8> = (0..320u32).map(|i| (i * 11 + 5) as u8).collect();
    let wasm_pcm: Vec<u8> = (0..320u32).map(|i| ((i * 7 + 3) & 0xff) as u8).collect();
    let (mut my_sas, mut their_sas) = (None::<String>, None::<String>);
    let (mut got_text, mut got_audio) = (false, false);
    let (mut they_got_text, mut they_got_audio) = (false, false);
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline
        && !(got_text && got_audio && they_got_text && they_got_audio && their_sas.is_some())
    {
        if me.poll_timeout().is_some_and(|t| t <= Instant::now()) {
            me.handle_timeout(Instant::now());
        }
        while let Some(d) = me.poll_transmit() {
            writeln!(to_node, "D {}", hex(&d)).unwrap();
        }
        while let Some(e) = me.poll_event() {
            match e {
                Event::Established { sas, .. } => {
                    my_sas = Some(sas);
                    me.send_text(Instant::now(), "hello from the terminal")
                        .unwrap();
                    me.send_audio(&native_pcm).unwrap();
                }
                Event::Text(t) => {
                    assert_eq!(t, "hello from wasm <i>page</i>");
                    got_text = true;
                }
                Event::Audio {
                    data, redundant, ..
                } if !redundant => {
                    assert_eq!(data, wasm_pcm, "the page's frame, bit-exact");
                    got_audio = true;
                }
                Event::Failed(f) => panic!("the native side failed: {f}"),
                _ => {}
            }
        }
        to_node.flush().unwrap();
        let wait = me
            .poll_timeout()
            .map(|t| t.saturating_duration_since(Instant::now()))
            .unwrap_or(Duration::from_millis(50))
            .min(Duration::from_millis(50));
        match rx.recv_timeout(wait) {
            Ok(line) => {
                if let Some(d) = line.strip_prefix("D ") {
                    me.handle_datagram(Instant::now(), &unhex(d));
                } else if let Some(e) = line.strip_prefix("E ") {
                    let v: serde_json::Value = serde_json::from_str(e).unwrap();
                    match v["type"].as_str() {
                        Some("established") => their_sas = v["sas"].as_str().map(str::to_owned),
                        Some("text") => {
                            assert_eq!(v["text"], "hello from the terminal");
                            they_got_text = true;
                        }
                        Some("audio") if v["redundant"] == false => {
                            assert_eq!(v["data"].as_str().unwrap(), hex(&native_pcm));
                            they_got_audio = true;
                        }
                        Some("failed") => panic!("the wasm side failed: {}", v["reason"]),
                        _ => {}
                    }
                }
            }
            Err(mpsc::RecvTimeoutError::Timeout) => me.handle_timeout(Instant::now()),
            Err(mpsc::RecvTimeoutError::Disconnected) => panic!("node exited"),
        }
    }
    writeln!(to_node, "Q").unwrap();
    let _ = node.wait();
    assert!(my_sas.is_some(), "the native side agreed keys");
    assert_eq!(my_sas, their_sas, "the same SAS on both sides");
    assert!(got_text && got_audio, "the terminal heard the page");
    assert!(
        they_got_text && they_got_audio,
        "the page heard the terminal"
    );
}

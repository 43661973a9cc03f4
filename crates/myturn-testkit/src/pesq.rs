//! Speech quality, scored as a listener would: synthetic speech from
//! `espeak-ng` (resampled by `sox`), ITU-T P.862 PESQ from PyPI's `pesq`
//! (`pesq/score.py`, which first finds the reference in the degraded
//! recording), and the references a test measures in the same run: Opus
//! through `opus-tools` at the same random loss (`opusenc --expect-loss`,
//! `opusdec --packet-loss`), and the floor of the same share of 20 ms
//! frames zeroed.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::skip;

/// What it takes: the programs, and Python with `pesq` and `numpy`.
pub fn available() -> bool {
    if !skip::all_installed(&["espeak-ng", "sox", "opusenc", "opusdec", "python3"]) {
        return false;
    }
    let ok = Command::new("python3")
        .args(["-c", "import pesq, numpy"])
        .status()
        .is_ok_and(|s| s.success());
    ok || skip::missing("python3 cannot import pesq and numpy (PyPI `pesq`)")
}

fn run(cmd: &mut Command) -> String {
    let out = cmd.output().unwrap();
    assert!(
        out.status.success(),
        "{cmd:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The text spoken: phonetically varied sentences, long enough for 12 s.
const TEXT: &str = "The birch canoe slid on the smooth planks. Glue the sheet to the \
    dark blue background. It is easy to tell the depth of a well. These days a chicken \
    leg is a rare dish. Rice is often served in round bowls. The juice of lemons makes \
    fine punch. The box was thrown beside the parked truck. The hogs were fed chopped \
    corn and garbage. Four hours of steady work faced us.";

/// `secs` of espeak-ng speech as mono PCM16 at `rate` in `dir`
/// (`speech-RATE.wav`), padded or cut to exactly that length.
pub fn speech(dir: &Path, rate: u32, secs: f32) -> PathBuf {
    let raw = dir.join("espeak.wav");
    if !raw.exists() {
        run(Command::new("espeak-ng")
            .args(["-v", "en-us", "-s", "150", "-w"])
            .arg(&raw)
            .arg(TEXT));
    }
    let out = dir.join(format!("speech-{rate}.wav"));
    run(Command::new("sox")
        .arg(&raw)
        .args([
            "-r",
            &rate.to_string(),
            "-c",
            "1",
            "-b",
            "16",
            "-e",
            "signed-integer",
        ])
        .arg(&out)
        .args([
            "pad",
            "0",
            &secs.to_string(),
            "trim",
            "0",
            &secs.to_string(),
        ]));
    out
}

/// PESQ of `degraded` against `reference` (both mono PCM16 at `rate`;
/// 8000 scores narrowband, 16000 wideband).
pub fn score(reference: &Path, degraded: &Path, rate: u32) -> f64 {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/pesq/score.py");
    let out = run(Command::new("python3")
        .arg(script)
        .arg(reference)
        .arg(degraded)
        .arg(rate.to_string()));
    out.trim()
        .parse()
        .unwrap_or_else(|_| panic!("PESQ said {out:?}"))
}

/// The reference: `speech` through Opus at 24 kbit/s with its own FEC
/// and concealment at `loss_percent` random loss (opus-tools), scored.
pub fn opus_reference(dir: &Path, speech: &Path, rate: u32, loss_percent: u32) -> f64 {
    let (enc, dec) = (
        dir.join(format!("ref-{rate}-{loss_percent}.opus")),
        dir.join(format!("ref-{rate}-{loss_percent}.wav")),
    );
    run(Command::new("opusenc")
        .args(["--quiet", "--bitrate", "24", "--framesize", "20"])
        .args(["--expect-loss", &loss_percent.to_string()])
        .arg(speech)
        .arg(&enc));
    run(Command::new("opusdec")
        .args(["--quiet", "--rate", &rate.to_string()])
        .args(["--packet-loss", &loss_percent.to_string()])
        .arg(&enc)
        .arg(&dec));
    score(speech, &dec, rate)
}

/// The floor: `speech` with `loss_percent` of its 20 ms frames zeroed at
/// random (seeded), scored.
pub fn zeroed_floor(dir: &Path, speech: &Path, rate: u32, loss_percent: u32, seed: u64) -> f64 {
    let bytes = std::fs::read(speech).unwrap();
    // A canonical 44-byte WAV header from sox, then samples.
    let (head, body) = bytes.split_at(44);
    let frame = (rate / 50) as usize * 2;
    let mut x = seed | 1;
    let mut out = head.to_vec();
    for chunk in body.chunks(frame) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if x % 100 < u64::from(loss_percent) {
            out.extend(std::iter::repeat_n(0u8, chunk.len()));
        } else {
            out.extend_from_slice(chunk);
        }
    }
    let path = dir.join(format!("floor-{rate}-{loss_percent}.wav"));
    std::fs::write(&path, out).unwrap();
    score(speech, &path, rate)
}

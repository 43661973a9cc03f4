//! The default (voice) build of `myturn` through ALSA with no sound card:
//! the child's ALSA `default` PCM is the file plugin (capture reads a loud
//! square wave, playback lands in a file). `myturn --check-audio` records,
//! plays back and reports both levels; with a silent microphone it says so
//! and exits non-zero. Needs libasound2-dev (installed by .ci/run).
#![cfg(feature = "audio")]
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::process::Command;

fn check_audio(dir: &std::path::Path) -> (i32, String) {
    let cfg = myturn_media::audio::file_pcm_config(dir).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_myturn"))
        .arg("--check-audio")
        .env("ALSA_CONFIG_PATH", cfg)
        .output()
        .unwrap();
    (
        out.status.code().unwrap_or(-1),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// The number after `label` in `text`.
fn level(text: &str, label: &str) -> f64 {
    let rest = text
        .split(label)
        .nth(1)
        .unwrap_or_else(|| panic!("no `{label}` in {text}"));
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn check_audio_records_plays_back_and_reports_levels() {
    let dir = tempfile::tempdir().unwrap();
    let (code, out) = check_audio(dir.path());
    assert_eq!(code, 0, "{out}");
    assert!(
        out.contains("recording 2 s from the default input"),
        "{out}"
    );
    // A loud square wave (how loud depends on the sample format cpal
    // negotiates with the file plugin): far above silence.
    let input = level(&out, "input level: ");
    assert!((-30.0..=0.1).contains(&input), "{out}");
    let output = level(&out, "output level: ");
    assert!((output - input).abs() < 0.5, "{out}");
    assert!(out.lines().any(|l| l == "audio ok"), "{out}");
    // And the speaker really got it.
    let played = std::fs::metadata(dir.path().join("played.raw")).map_or(0, |m| m.len());
    assert!(played > 10_000, "{played} bytes played");
}

#[test]
fn a_silent_microphone_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = myturn_media::audio::file_pcm_config(dir.path()).unwrap();
    // Silence instead of the square wave.
    std::fs::write(dir.path().join("in.raw"), vec![0u8; 48_000 * 2 * 4]).unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_myturn"))
        .arg("--check-audio")
        .env("ALSA_CONFIG_PATH", cfg)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("the microphone is silent"), "{text}");
}

//! The real cpal path through ALSA, with no sound card: the test points
//! ALSA's `default` PCM at the `file` plugin over a `null` slave, so
//! playback lands in a file (capped by a `head -c` pipe, since `null`
//! consumes instantly) and capture reads a file the test wrote.
//! Needs `--features audio` and libasound2-dev (installed by .ci/run).

#![cfg(feature = "audio")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::time::{Duration, Instant};

use myturn_media::audio::{list_devices, start_capture, start_playback};

/// One ALSA set-up per test process (ALSA reads its config once).
fn alsa() -> &'static std::path::Path {
    static DIR: std::sync::OnceLock<tempfile::TempDir> = std::sync::OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let path = myturn_media::audio::file_pcm_config(dir.path()).unwrap();
        // Set once, before anything in this process touches ALSA.
        std::env::set_var("ALSA_CONFIG_PATH", path);
        dir
    })
    .path()
}

#[test]
fn capture_and_playback_through_alsa() {
    let dir = alsa();
    let devices = list_devices().unwrap();
    assert!(devices.iter().any(|d| d.output), "{devices:?}");

    // Playback: one second of a 440 Hz tone at 8 kHz.
    let play = start_playback(None, 8000).unwrap();
    let fmt = play.format;
    assert!(fmt.rate >= 8000 && fmt.channels >= 1, "{fmt:?}");
    for n in 0..50u32 {
        let frame: Vec<u8> = (0..160u32)
            .flat_map(|k| {
                let t = f64::from(n * 160 + k) / 8000.0;
                (((2.0 * std::f64::consts::PI * 440.0 * t).sin() * 12000.0) as i16).to_le_bytes()
            })
            .collect();
        while !play.play(frame.clone()) {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    // `null` consumes at once: stop as soon as the file holds the second
    // of tone (plus margin), long before the pipe's cap.
    let enough = (fmt.rate as u64) * u64::from(fmt.channels) * 4 * 3 / 2;
    let start = Instant::now();
    while std::fs::metadata(dir.join("played.raw")).map_or(0, |m| m.len()) < enough
        && start.elapsed() < Duration::from_secs(3)
    {
        std::thread::sleep(Duration::from_millis(1));
    }
    drop(play);
    std::thread::sleep(Duration::from_millis(100));
    let raw = std::fs::read(dir.join("played.raw")).unwrap();
    let samples: Vec<f32> = match fmt.sample_format {
        "f32" => raw
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes(c.try_into().unwrap()))
            .collect(),
        "i16" => raw
            .chunks_exact(2)
            .map(|c| f32::from(i16::from_le_bytes(c.try_into().unwrap())) / 32768.0)
            .collect(),
        other => panic!("unexpected device format {other}"),
    };
    // Left channel only.
    let left: Vec<f32> = samples
        .chunks(usize::from(fmt.channels))
        .map(|c| c[0])
        .collect();
    let loud = left.iter().filter(|x| x.abs() > 0.01).count();
    let want = fmt.rate as usize; // one second at the device rate
    assert!(
        loud > want * 8 / 10 && loud < want * 11 / 10,
        "{loud} loud samples, want ~{want} ({fmt:?})"
    );
    let peak = left.iter().fold(0f32, |m, x| m.max(x.abs()));
    assert!((0.3..0.45).contains(&peak), "peak {peak}");

    // Capture: 20 ms frames at 16 kHz, resampled from the device.
    let cap = start_capture(None, 16_000).unwrap();
    let start = Instant::now();
    let mut frames = Vec::new();
    while frames.len() < 10 && start.elapsed() < Duration::from_secs(5) {
        if let Ok(f) = cap.frames.recv_timeout(Duration::from_millis(100)) {
            frames.push(f);
        }
    }
    assert!(frames.len() >= 10, "{} frames", frames.len());
    assert!(frames.iter().all(|f| f.len() == 640));
    let loud = frames
        .iter()
        .flat_map(|f| f.chunks_exact(2))
        .filter(|c| i16::from_le_bytes([c[0], c[1]]).unsigned_abs() > 1000)
        .count();
    assert!(
        loud > 1000,
        "captured audio is silent ({loud} loud samples)"
    );
}

#[test]
fn a_missing_device_is_a_clear_error() {
    alsa();
    let e = start_playback(Some("no-such-device"), 8000).unwrap_err();
    assert!(
        e.to_string().contains("no-such-device") && e.to_string().contains("--list-devices"),
        "{e}"
    );
}

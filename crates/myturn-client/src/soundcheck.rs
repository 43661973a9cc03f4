//! `myturn --check-audio`: records a few seconds from the microphone,
//! plays them back on the speaker, and reports both levels, so a user can
//! tell a muted microphone or a wrong device before the first call.

/// Below this, the recording counts as silence.
pub const SILENT_DBFS: f64 = -60.0;

/// The level of some PCM16 audio.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Level {
    /// Root mean square, dB below full scale.
    pub rms_dbfs: f64,
    /// Loudest sample, dB below full scale.
    pub peak_dbfs: f64,
}

impl Level {
    /// The level of little-endian PCM16 `frames`.
    pub fn of(frames: &[Vec<u8>]) -> Level {
        let mut sum = 0f64;
        let mut n = 0u64;
        let mut peak = 0f64;
        for s in frames.iter().flat_map(|f| f.chunks_exact(2)) {
            let v = f64::from(i16::from_le_bytes([s[0], s[1]])) / 32768.0;
            sum += v * v;
            n += 1;
            peak = peak.max(v.abs());
        }
        let db = |x: f64| if x > 0.0 { 20.0 * x.log10() } else { -120.0 };
        Level {
            rms_dbfs: db((sum / n.max(1) as f64).sqrt()),
            peak_dbfs: db(peak),
        }
    }

    /// Quieter than [`SILENT_DBFS`]: nothing (or a muted device) recorded.
    pub fn is_silent(&self) -> bool {
        self.rms_dbfs < SILENT_DBFS
    }
}

impl std::fmt::Display for Level {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.1} dBFS RMS, peak {:.1} dBFS",
            self.rms_dbfs, self.peak_dbfs
        )
    }
}

/// What the check found.
#[derive(Debug, Clone)]
pub struct Report {
    /// 20 ms frames recorded.
    pub frames: usize,
    /// What the input device recorded.
    pub input: Level,
    /// What was played back on the output device.
    pub output: Level,
}

/// Records `secs` seconds from `input` (or the default), plays them on
/// `output` (or the default), and measures both. `say` gets a line for
/// each step.
#[cfg(feature = "audio")]
pub fn check(
    input: Option<&str>,
    output: Option<&str>,
    secs: u32,
    mut say: impl FnMut(&str),
) -> Result<Report, crate::ClientError> {
    use std::time::{Duration, Instant};

    use crate::ClientError;
    use myturn_media::audio::{start_capture, start_playback};
    const RATE: u32 = 8000;
    let dev =
        |d: Option<&str>, what: &str| d.map_or(format!("the default {what}"), |n| format!("`{n}`"));
    say(&format!("recording {secs} s from {}…", dev(input, "input")));
    let cap = start_capture(input, RATE).map_err(|source| ClientError::Audio {
        what: "cannot record",
        source,
    })?;
    let want = (secs * 50) as usize;
    let end = Instant::now() + Duration::from_secs(u64::from(secs) + 3);
    let mut frames = Vec::with_capacity(want);
    while frames.len() < want && Instant::now() < end {
        if let Ok(f) = cap.frames.recv_timeout(Duration::from_millis(100)) {
            frames.push(f);
        }
    }
    drop(cap);
    if frames.is_empty() {
        return Err(ClientError::Device(
            "the input device delivered nothing: is it in use, or unplugged? (see --list-devices)",
        ));
    }
    let input_level = Level::of(&frames);
    say(&format!(
        "input level: {input_level} ({} frames)",
        frames.len()
    ));
    say(&format!("playing it back on {}…", dev(output, "output")));
    let play = start_playback(output, RATE).map_err(|source| ClientError::Audio {
        what: "cannot play",
        source,
    })?;
    let mut played = Vec::with_capacity(frames.len());
    for f in &frames {
        let deadline = Instant::now() + Duration::from_secs(2);
        while !play.play(f.clone()) {
            if Instant::now() > deadline {
                return Err(ClientError::Device(
                    "the output device stopped taking sound",
                ));
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        played.push(f.clone());
    }
    // Let the device drain what it queued (about a second at most).
    std::thread::sleep(Duration::from_millis(u64::from(secs) * 200 + 300));
    drop(play);
    let output_level = Level::of(&played);
    say(&format!("output level: {output_level}"));
    Ok(Report {
        frames: frames.len(),
        input: input_level,
        output: output_level,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 20 ms frame at 8 kHz (160 samples, PCM16) alternating `a`, `b`.
    fn square(a: i16, b: i16) -> Vec<u8> {
        [a, b]
            .iter()
            .cycle()
            .take(160)
            .flat_map(|v| v.to_le_bytes())
            .collect()
    }

    #[test]
    fn levels() {
        let full = square(i16::MAX, i16::MIN);
        let l = Level::of(&[full]);
        assert!(l.rms_dbfs > -0.1 && l.peak_dbfs > -0.1, "{l}");
        let quiet = square(100, -100);
        let q = Level::of(&[quiet]);
        assert!((q.rms_dbfs + 50.3).abs() < 0.2, "{q}");
        assert!(!q.is_silent());
        assert!(Level::of(&[vec![0; 320]]).is_silent());
        assert!(Level::of(&[]).is_silent());
    }
}

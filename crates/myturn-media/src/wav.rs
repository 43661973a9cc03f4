//! WAV input and output for headless use (`--input-wav`, `--output-wav`).
//!
//! Input: 16-bit PCM WAV at the call's rate (8 or 16 kHz), mono or stereo
//! (stereo is mixed down). Output: 16-bit mono at the call's rate.

use std::path::Path;

/// Why a WAV file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum WavError {
    /// Opening, reading or writing failed.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// What hound said.
        #[source]
        source: hound::Error,
    },
    /// A format this client does not take.
    #[error("{path}: {what}; convert it first, e.g. `sox in.wav -r {rate} -c 1 -b 16 out.wav`")]
    Format {
        /// The file.
        path: String,
        /// What is wrong.
        what: String,
        /// The rate wanted.
        rate: u32,
    },
}

/// Reads a whole WAV file as mono PCM16 samples at `rate`.
pub fn read(path: &Path, rate: u32) -> Result<Vec<i16>, WavError> {
    let p = path.display().to_string();
    let io = |source| WavError::Io {
        path: p.clone(),
        source,
    };
    let mut r = hound::WavReader::open(path).map_err(io)?;
    let spec = r.spec();
    let bad = |what: String| WavError::Format {
        path: p.clone(),
        what,
        rate,
    };
    if spec.sample_format != hound::SampleFormat::Int || spec.bits_per_sample != 16 {
        return Err(bad(format!(
            "{}-bit {:?} samples (16-bit integer PCM needed)",
            spec.bits_per_sample, spec.sample_format
        )));
    }
    if spec.sample_rate != rate {
        return Err(bad(format!(
            "{} Hz (the call runs at {rate} Hz)",
            spec.sample_rate
        )));
    }
    if !(1..=2).contains(&spec.channels) {
        return Err(bad(format!(
            "{} channels (mono or stereo needed)",
            spec.channels
        )));
    }
    let raw: Vec<i16> = r.samples::<i16>().collect::<Result<_, _>>().map_err(io)?;
    Ok(if spec.channels == 2 {
        raw.chunks_exact(2)
            .map(|c| {
                ((i32::from(c.first().copied().unwrap_or(0))
                    + i32::from(c.get(1).copied().unwrap_or(0)))
                    / 2) as i16
            })
            .collect()
    } else {
        raw
    })
}

/// Cuts samples into 20 ms frames of PCM16 little-endian bytes; the last
/// frame is padded with silence.
pub fn frames(samples: &[i16], samples_per_frame: usize) -> Vec<Vec<u8>> {
    samples
        .chunks(samples_per_frame.max(1))
        .map(|c| {
            let mut f: Vec<u8> = c.iter().flat_map(|s| s.to_le_bytes()).collect();
            f.resize(samples_per_frame * 2, 0);
            f
        })
        .collect()
}

/// Writes received audio to a mono PCM16 WAV file.
pub struct Writer {
    inner: hound::WavWriter<std::io::BufWriter<std::fs::File>>,
    path: String,
}

impl std::fmt::Debug for Writer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Writer")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Writer {
    /// Creates (or truncates) `path`.
    pub fn create(path: &Path, rate: u32) -> Result<Self, WavError> {
        let p = path.display().to_string();
        let spec = hound::WavSpec {
            channels: 1,
            sample_rate: rate,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let inner = hound::WavWriter::create(path, spec).map_err(|source| WavError::Io {
            path: p.clone(),
            source,
        })?;
        Ok(Writer { inner, path: p })
    }

    /// Appends one frame of PCM16 little-endian bytes.
    pub fn write_frame(&mut self, pcm: &[u8]) -> Result<(), WavError> {
        for c in pcm.chunks_exact(2) {
            let s = i16::from_le_bytes([
                c.first().copied().unwrap_or(0),
                c.get(1).copied().unwrap_or(0),
            ]);
            self.inner.write_sample(s).map_err(|source| WavError::Io {
                path: self.path.clone(),
                source,
            })?;
        }
        Ok(())
    }

    /// Finishes the header; a file not finalized is still readable but
    /// claims no length.
    pub fn finalize(self) -> Result<(), WavError> {
        let path = self.path;
        self.inner
            .finalize()
            .map_err(|source| WavError::Io { path, source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_through_frames() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("a.wav");
        let samples: Vec<i16> = (0..1000).map(|i| ((i * 37) % 2000 - 1000) as i16).collect();
        let mut w = Writer::create(&path, 8000).unwrap();
        let fs = frames(&samples, 160);
        assert_eq!(fs.len(), 7);
        assert!(fs.iter().all(|f| f.len() == 320));
        for f in &fs {
            w.write_frame(f).unwrap();
        }
        w.finalize().unwrap();
        let back = read(&path, 8000).unwrap();
        assert_eq!(&back[..1000], &samples[..]);
        assert!(back[1000..].iter().all(|&s| s == 0));
    }

    #[test]
    fn wrong_formats_get_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("b.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 44_100,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        w.write_sample(1i16).unwrap();
        w.write_sample(3i16).unwrap();
        w.finalize().unwrap();
        let e = read(&path, 8000).unwrap_err().to_string();
        assert!(e.contains("44100 Hz") && e.contains("sox"), "{e}");
        let e = read(&dir.path().join("missing.wav"), 8000)
            .unwrap_err()
            .to_string();
        assert!(e.contains("missing.wav"), "{e}");
        std::fs::write(dir.path().join("junk.wav"), b"not a wav").unwrap();
        assert!(read(&dir.path().join("junk.wav"), 8000).is_err());
    }

    #[test]
    fn stereo_is_mixed_down() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("s.wav");
        let spec = hound::WavSpec {
            channels: 2,
            sample_rate: 16_000,
            bits_per_sample: 16,
            sample_format: hound::SampleFormat::Int,
        };
        let mut w = hound::WavWriter::create(&path, spec).unwrap();
        for (l, r) in [(100i16, 300i16), (-50, 50)] {
            w.write_sample(l).unwrap();
            w.write_sample(r).unwrap();
        }
        w.finalize().unwrap();
        assert_eq!(read(&path, 16_000).unwrap(), vec![200, 0]);
    }
}

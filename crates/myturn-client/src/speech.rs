//! Speech-like test audio: a voiced source (harmonics of a gliding pitch)
//! shaped by two formants, in syllables of ~4 Hz with pauses. Deterministic
//! from a seed, so a test knows exactly what each side sent.

/// `secs` seconds of speech-like PCM16 at `rate`, as 20 ms frames of
/// little-endian bytes.
pub fn frames(seed: u64, rate: u32, secs: f32) -> Vec<Vec<u8>> {
    let n = (rate as f32 * secs) as usize;
    let per_frame = (rate / 50) as usize;
    let mut s = Vec::with_capacity(n);
    let f0_base = 110.0 + (seed % 7) as f32 * 15.0;
    let (f1, f2) = (
        500.0 + (seed % 5) as f32 * 60.0,
        1500.0 + (seed % 3) as f32 * 200.0,
    );
    let mut phase = 0.0f32;
    for i in 0..n {
        let t = i as f32 / rate as f32;
        // Syllables: 250 ms on, a short gap every fourth one.
        let syl = (t * 4.0) as u32;
        let in_syl = (t * 4.0).fract();
        let env = if syl % 4 == 3 {
            0.0
        } else {
            (in_syl * std::f32::consts::PI).sin().powf(0.7)
        };
        let f0 = f0_base * (1.0 + 0.15 * (t * 1.3 + seed as f32).sin());
        phase += f0 / rate as f32;
        let mut v = 0.0;
        for h in 1..=12 {
            let fh = f0 * h as f32;
            if fh > rate as f32 / 2.0 {
                break;
            }
            // Formant weighting: resonances near f1 and f2.
            let w = 1.0 / (1.0 + ((fh - f1) / 150.0).powi(2))
                + 0.5 / (1.0 + ((fh - f2) / 250.0).powi(2));
            v += w * (phase * h as f32 * std::f32::consts::TAU).sin() / h as f32;
        }
        s.push((v * env * 9000.0).clamp(-32000.0, 32000.0) as i16);
    }
    s.chunks(per_frame)
        .filter(|c| c.len() == per_frame)
        .map(|c| c.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect()
}

/// Root-mean-square level of PCM16 bytes (0 = silence).
pub fn rms(pcm: &[u8]) -> f64 {
    let n = pcm.len() / 2;
    if n == 0 {
        return 0.0;
    }
    let sum: f64 = pcm
        .chunks_exact(2)
        .map(|b| f64::from(i16::from_le_bytes([b[0], b[1]])).powi(2))
        .sum();
    (sum / n as f64).sqrt()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn speech_like_not_silence_and_deterministic() {
        let a = frames(1, 8000, 2.0);
        assert_eq!(a.len(), 100);
        assert!(a.iter().all(|f| f.len() == 320));
        assert_eq!(a, frames(1, 8000, 2.0));
        assert_ne!(a, frames(2, 8000, 2.0));
        let loud = a.iter().filter(|f| rms(f) > 500.0).count();
        let quiet = a.iter().filter(|f| rms(f) < 50.0).count();
        assert!(loud > 50, "voiced most of the time: {loud}");
        assert!(quiet > 5, "with pauses: {quiet}");
    }
}

//! Sample-rate conversion between the call (8 or 16 kHz) and a sound
//! device (usually 44.1 or 48 kHz), streaming, mono `f32`.
//!
//! Linear interpolation, with a moving-average pre-filter when
//! downsampling so that content above the new Nyquist frequency is
//! attenuated instead of folding back into the speech band (48 → 8 kHz:
//! −2 dB at 3 kHz, −10 dB at 6 kHz). Good enough for narrowband voice; a
//! polyphase filter would do better.

/// A streaming resampler from `from` Hz to `to` Hz.
#[derive(Debug, Clone)]
pub(crate) struct Resampler {
    step: f64,
    /// Position of the next output sample, in input samples, relative to
    /// the start of `hist`.
    pos: f64,
    /// The last input sample of the previous call (for interpolation
    /// across calls).
    hist: f32,
    /// Moving-average width (1 when upsampling).
    taps: usize,
    window: std::collections::VecDeque<f32>,
    sum: f32,
}

impl Resampler {
    /// A resampler; `from == to` passes samples through unchanged.
    pub(crate) fn new(from: u32, to: u32) -> Self {
        let step = f64::from(from.max(1)) / f64::from(to.max(1));
        let taps = if step > 1.0 { step.round() as usize } else { 1 };
        Resampler {
            step,
            pos: 1.0,
            hist: 0.0,
            taps: taps.max(1),
            window: std::collections::VecDeque::new(),
            sum: 0.0,
        }
    }

    /// Converts one chunk, appending to `out`.
    pub(crate) fn process(&mut self, input: &[f32], out: &mut Vec<f32>) {
        if (self.step - 1.0).abs() < f64::EPSILON {
            out.extend_from_slice(input);
            return;
        }
        // Pre-filter (a no-op with one tap).
        let filtered: Vec<f32> = input
            .iter()
            .map(|&x| {
                self.window.push_back(x);
                self.sum += x;
                if self.window.len() > self.taps {
                    self.sum -= self.window.pop_front().unwrap_or(0.0);
                }
                self.sum / self.window.len() as f32
            })
            .collect();
        // Index 0 is the previous call's last sample; 1.. are this call's.
        let at = |i: usize| -> f32 {
            if i == 0 {
                self.hist
            } else {
                filtered.get(i - 1).copied().unwrap_or(0.0)
            }
        };
        let n = filtered.len() as f64;
        while self.pos <= n {
            let i = self.pos.floor() as usize;
            let frac = (self.pos - i as f64) as f32;
            let a = at(i);
            let b = if frac > 0.0 { at(i + 1) } else { a };
            out.push(a + (b - a) * frac);
            self.pos += self.step;
        }
        self.pos -= n;
        if let Some(&last) = filtered.last() {
            self.hist = last;
        }
    }
}

/// PCM16 to `f32` in [-1, 1).
pub(crate) fn to_f32(s: i16) -> f32 {
    f32::from(s) / 32768.0
}

/// `f32` to PCM16, clamped.
pub(crate) fn to_i16(x: f32) -> i16 {
    (x * 32768.0).round().clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tone(freq: f64, rate: u32, secs: f64) -> Vec<f32> {
        (0..(f64::from(rate) * secs) as usize)
            .map(|i| {
                (2.0 * std::f64::consts::PI * freq * i as f64 / f64::from(rate)).sin() as f32 * 0.5
            })
            .collect()
    }

    fn crossings(x: &[f32]) -> usize {
        x.windows(2)
            .filter(|w| (w[0] < 0.0) != (w[1] < 0.0))
            .count()
    }

    fn rms(x: &[f32]) -> f32 {
        (x.iter().map(|v| v * v).sum::<f32>() / x.len().max(1) as f32).sqrt()
    }

    fn run(r: &mut Resampler, input: &[f32], chunk: usize) -> Vec<f32> {
        let mut out = Vec::new();
        for c in input.chunks(chunk) {
            r.process(c, &mut out);
        }
        out
    }

    #[test]
    fn lengths_follow_the_ratio_across_odd_chunks() {
        for (from, to) in [
            (48_000, 8_000),
            (8_000, 48_000),
            (44_100, 16_000),
            (16_000, 44_100),
            (8_000, 8_000),
        ] {
            let input = tone(300.0, from, 1.0);
            let out = run(&mut Resampler::new(from, to), &input, 441);
            // A streaming interpolator holds back at most one input sample.
            let slack = (f64::from(to) / f64::from(from)).ceil() as usize + 2;
            assert!(
                out.len().abs_diff(to as usize) <= slack,
                "{from}->{to}: {} samples",
                out.len()
            );
        }
    }

    #[test]
    fn a_speech_band_tone_keeps_its_pitch_and_level() {
        for (from, to) in [(48_000, 8_000), (8_000, 48_000), (44_100, 16_000)] {
            let input = tone(440.0, from, 1.0);
            let out = run(&mut Resampler::new(from, to), &input, 480);
            // 440 Hz: 880 zero crossings a second.
            assert!(
                crossings(&out).abs_diff(880) <= 4,
                "{from}->{to}: {}",
                crossings(&out)
            );
            assert!(
                (rms(&out) - rms(&input)).abs() < 0.05,
                "{from}->{to}: {} vs {}",
                rms(&out),
                rms(&input)
            );
        }
    }

    #[test]
    fn content_above_the_new_nyquist_is_attenuated() {
        // 6 kHz at 48 kHz cannot exist at 8 kHz (Nyquist 4 kHz). The 6-tap
        // average's response there is sin(3π/4)/(6·sin(π/8)) ≈ 0.31
        // (−10 dB); at 3 kHz it is ≈ 0.79 (−2 dB).
        let input = tone(6000.0, 48_000, 1.0);
        let out = run(&mut Resampler::new(48_000, 8_000), &input, 480);
        assert!(
            rms(&out) < 0.35 * rms(&input),
            "{} vs {}",
            rms(&out),
            rms(&input)
        );
        let speech = tone(3000.0, 48_000, 1.0);
        let kept = run(&mut Resampler::new(48_000, 8_000), &speech, 480);
        assert!(
            rms(&kept) > 0.7 * rms(&speech),
            "{} vs {}",
            rms(&kept),
            rms(&speech)
        );
    }

    #[test]
    fn pcm16_conversions_round_trip() {
        for s in [i16::MIN, -1, 0, 1, 12345, i16::MAX] {
            assert_eq!(to_i16(to_f32(s)), s);
        }
        assert_eq!(to_i16(2.0), i16::MAX);
    }
}

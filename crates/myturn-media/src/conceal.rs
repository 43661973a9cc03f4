//! Pitch-based concealment of lost PCM16 frames, in the spirit of ITU-T
//! G.711 Appendix I: the last pitch period (two, then three, as the loss
//! goes on) is repeated, attenuated from 10 ms into the loss and silent
//! after 60 ms; the first real frame after a loss is cross-faded in from
//! the synthetic signal so that nothing clicks. A plain state machine:
//! [`Concealer::good`] sees every played real frame, [`Concealer::lost`]
//! makes one frame in place of a missing one.

/// See the module docs.
#[derive(Debug, Clone)]
pub struct Concealer {
    /// Samples per frame.
    n: usize,
    /// Samples per millisecond.
    per_ms: usize,
    /// The last played samples (real or synthetic), oldest first.
    history: Vec<f32>,
    /// Concealed frames in a row.
    run: u32,
    /// The estimated pitch period, samples.
    pitch: usize,
    /// The history as it was when the loss began: what is repeated.
    base: Vec<f32>,
    /// The periodic buffer being repeated.
    cycle: Vec<f32>,
    /// Samples made since the loss began.
    t: usize,
}

impl Concealer {
    /// A concealer for `rate` (8000 or 16000) and 20 ms frames.
    pub fn new(rate: u32) -> Concealer {
        let per_ms = (rate / 1000).max(1) as usize;
        Concealer {
            n: per_ms * 20,
            per_ms,
            history: Vec::new(),
            run: 0,
            pitch: 0,
            base: Vec::new(),
            cycle: Vec::new(),
            t: 0,
        }
    }

    fn history_len(&self) -> usize {
        // Three of the longest pitch periods (15 ms), plus a frame.
        self.per_ms * (45 + 20)
    }

    fn remember(&mut self, s: &[f32]) {
        self.history.extend_from_slice(s);
        let keep = self.history_len();
        if self.history.len() > keep {
            let cut = self.history.len() - keep;
            self.history.drain(..cut);
        }
    }

    /// A real frame is about to play: after a loss its start is
    /// cross-faded from the synthetic signal (in place).
    pub fn good(&mut self, frame: &mut [i16]) {
        if self.run > 0 && !self.cycle.is_empty() {
            // A quarter pitch period, plus 4 ms per 10 ms lost beyond the
            // first 10 (Appendix I), within the frame.
            let extra = (self.run as usize * 20).saturating_sub(10) / 10 * 4 * self.per_ms;
            let len = (self.pitch / 4 + extra).min(frame.len());
            let gain = self.gain(self.run * 20);
            for (i, s) in frame.iter_mut().take(len).enumerate() {
                let w = (i + 1) as f32 / (len + 1) as f32;
                let syn = self.next_cycle() * gain;
                *s = clamp(w * f32::from(*s) + (1.0 - w) * syn);
            }
        }
        self.run = 0;
        let f: Vec<f32> = frame.iter().map(|&s| f32::from(s)).collect();
        self.remember(&f);
    }

    /// A frame in place of a lost one.
    pub fn lost(&mut self) -> Vec<i16> {
        let n = self.n;
        if self.history.len() < self.history_len() {
            self.run += 1;
            self.remember(&vec![0.0; n]);
            return vec![0; n];
        }
        if self.run == 0 {
            self.base = self.history.clone();
            self.t = 0;
            self.pitch = self.estimate_pitch();
            self.build_cycle(1);
        } else if self.run == 1 || self.run == 2 {
            // 10 ms and more in: more periods, against a buzzy sound.
            self.build_cycle(self.run as usize + 1);
        }
        let start_ms = self.run * 20;
        self.run += 1;
        let mut out = Vec::with_capacity(n);
        for i in 0..n {
            let ms = start_ms + (i / self.per_ms) as u32;
            let g = self.gain(ms);
            out.push(self.next_cycle() * g);
        }
        self.remember(&out);
        out.into_iter().map(clamp).collect()
    }

    /// Frames concealed in a row so far.
    pub fn run(&self) -> u32 {
        self.run
    }

    /// Gain `ms` into a loss: 1 for 10 ms, then 20 % less per 10 ms,
    /// silent from 60 ms.
    fn gain(&self, ms: u32) -> f32 {
        if ms < 10 {
            1.0
        } else {
            (1.0 - 0.2 * (ms - 10) as f32 / 10.0).max(0.0)
        }
    }

    fn next_cycle(&mut self) -> f32 {
        if self.cycle.is_empty() {
            return 0.0;
        }
        let v = self
            .cycle
            .get(self.t % self.cycle.len())
            .copied()
            .unwrap_or(0.0);
        self.t += 1;
        v
    }

    /// The last `periods` pitch periods before the loss, their end
    /// blended towards the samples before their start so that the
    /// repetition wraps smoothly. Sample `t` of the loss is
    /// `cycle[t mod len]`: one whole cycle after the last real sample, so
    /// the phase carries on whatever the number of periods.
    fn build_cycle(&mut self, periods: usize) {
        let p = self.pitch.max(1);
        let ovl = (p / 4).max(1);
        let end = self.base.len();
        let len = (p * periods).min(end.saturating_sub(ovl + 1)).max(1);
        let start = end.saturating_sub(len);
        let mut cycle: Vec<f32> = self.base.get(start..end).unwrap_or_default().to_vec();
        for j in 0..ovl.min(len) {
            let w = (j + 1) as f32 / (ovl + 1) as f32;
            let before = self
                .base
                .get((start + j).saturating_sub(ovl))
                .copied()
                .unwrap_or(0.0);
            if let Some(c) = cycle.get_mut(len - ovl.min(len) + j) {
                *c = (1.0 - w) * *c + w * before;
            }
        }
        self.cycle = cycle;
    }

    /// The lag with the highest normalised autocorrelation over the last
    /// 20 ms, searched over 5–15 ms (200–66 Hz).
    fn estimate_pitch(&self) -> usize {
        let (lo, hi) = (self.per_ms * 5, self.per_ms * 15);
        let w = self.per_ms * 20;
        let h = &self.history;
        let end = h.len();
        if end < hi + w {
            return lo;
        }
        let seg = h.get(end - w..end).unwrap_or_default();
        let mut best = (lo, f32::MIN);
        for lag in lo..=hi {
            let other = h.get(end - w - lag..end - lag).unwrap_or_default();
            let (mut num, mut den) = (0.0f32, 1e-3f32);
            for (a, b) in seg.iter().zip(other) {
                num += a * b;
                den += b * b;
            }
            let score = num / den.sqrt();
            if score > best.1 {
                best = (lag, score);
            }
        }
        best.0
    }
}

fn clamp(x: f32) -> i16 {
    x.round().clamp(-32768.0, 32767.0) as i16
}

#[cfg(test)]
mod tests {
    use super::*;

    fn voiced(rate: u32, f0: f32, from: usize, n: usize) -> Vec<i16> {
        (from..from + n)
            .map(|i| {
                let t = i as f32 / rate as f32;
                let mut v = 0.0;
                for h in 1..5 {
                    v += (t * f0 * h as f32 * std::f32::consts::TAU).sin() / h as f32;
                }
                (v * 6000.0) as i16
            })
            .collect()
    }

    fn err_db(a: &[i16], b: &[i16]) -> f64 {
        let sig: f64 = a.iter().map(|&x| f64::from(x).powi(2)).sum();
        let err: f64 = a
            .iter()
            .zip(b)
            .map(|(&x, &y)| (f64::from(x) - f64::from(y)).powi(2))
            .sum();
        10.0 * (sig / err.max(1.0)).log10()
    }

    #[test]
    fn a_lost_voiced_frame_is_rebuilt_from_its_pitch() {
        for rate in [8000u32, 16_000] {
            let n = (rate / 50) as usize;
            let mut c = Concealer::new(rate);
            for k in 0..10 {
                let mut f = voiced(rate, 125.0, k * n, n);
                c.good(&mut f);
            }
            let hidden = voiced(rate, 125.0, 10 * n, n);
            let made = c.lost();
            // Far closer to the lost frame than silence (0 dB) or the
            // previous frame's fade would be.
            let snr = err_db(&hidden[..n / 2], &made[..n / 2]);
            assert!(snr > 10.0, "{rate}: {snr:.1} dB");
            // A long loss fades to silence by 60 ms.
            let _ = (c.lost(), c.lost());
            assert!(c.lost().iter().all(|&s| s == 0));
            assert_eq!(c.run(), 4);
            let mut back = voiced(rate, 125.0, 14 * n, n);
            let orig = back.clone();
            c.good(&mut back);
            assert_eq!(c.run(), 0);
            assert_eq!(back[n - 1], orig[n - 1], "only the start is cross-faded");
        }
    }

    #[test]
    fn before_any_audio_a_loss_is_silence() {
        let mut c = Concealer::new(8000);
        assert!(c.lost().iter().all(|&s| s == 0));
    }
}

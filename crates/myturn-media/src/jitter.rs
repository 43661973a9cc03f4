//! An adaptive jitter buffer for 20 ms PCM16 frames, sans-IO.
//!
//! [`JitterBuffer::push`] takes frames as they arrive (any order), keyed by
//! their end-to-end sequence number; [`JitterBuffer::pop`] is called by the
//! playout clock every 20 ms and always returns a frame once playout has
//! started: the next real one, or a concealment (the last frame repeated,
//! fading by half each time, then silence).
//!
//! The playout delay starts at 40 ms and follows the measured interarrival
//! jitter (RFC 3550 §6.4.1, computed on end-to-end sequence numbers since a
//! PBX may rewrite RTP timestamps), staying within 20–80 ms. When the buffer
//! holds more than the target, a frame is skipped to bring latency down.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

/// Frame duration.
pub const FRAME: Duration = Duration::from_millis(20);
/// Initial playout delay.
pub const START_DELAY: Duration = Duration::from_millis(40);
/// Smallest playout delay.
pub const MIN_DELAY: Duration = Duration::from_millis(20);
/// Largest playout delay.
pub const MAX_DELAY: Duration = Duration::from_millis(80);
/// Concealment repeats (fading) before silence.
pub const FADE_FRAMES: u32 = 3;

/// Counters (RFC 3550-style).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JitterStats {
    /// Frames pushed and kept.
    pub received: u64,
    /// Frames lost: the sequence-number span seen minus frames received
    /// (RFC 3550 §6.4.1 "cumulative number of packets lost").
    pub lost: u64,
    /// Frames that arrived after their playout time.
    pub late: u64,
    /// Frames received twice.
    pub duplicate: u64,
    /// Frames played from concealment.
    pub concealed: u64,
    /// Frames skipped to cut latency.
    pub skipped: u64,
    /// Playout ticks with nothing buffered (the peer is muted, or the
    /// network stalled): concealed, but not counted as lost.
    pub underruns: u64,
    /// Interarrival jitter, milliseconds.
    pub jitter_ms: f64,
    /// Current playout delay target, milliseconds.
    pub target_ms: f64,
}

/// See the module docs.
#[derive(Debug)]
pub struct JitterBuffer {
    frame_bytes: usize,
    frames: BTreeMap<u64, Vec<u8>>,
    /// The next sequence number to play.
    next: Option<u64>,
    /// When playout starts (first arrival + target).
    start_at: Option<Instant>,
    target: Duration,
    /// RFC 3550 jitter estimate, seconds.
    jitter: f64,
    /// Transit time of the previous arrival, seconds (relative).
    last_transit: Option<f64>,
    origin: Option<Instant>,
    last_played: Option<Vec<u8>>,
    conceal_run: u32,
    /// Lowest and highest sequence numbers received.
    span: Option<(u64, u64)>,
    /// Recently received sequence numbers (duplicates).
    seen: std::collections::BTreeSet<u64>,
    stats: JitterStats,
}

impl JitterBuffer {
    /// A buffer for frames of `frame_bytes` (320 at 8 kHz, 640 at 16 kHz).
    pub fn new(frame_bytes: usize) -> Self {
        JitterBuffer {
            frame_bytes,
            frames: BTreeMap::new(),
            next: None,
            start_at: None,
            target: START_DELAY,
            jitter: 0.0,
            last_transit: None,
            origin: None,
            last_played: None,
            conceal_run: 0,
            span: None,
            seen: std::collections::BTreeSet::new(),
            stats: JitterStats {
                target_ms: START_DELAY.as_secs_f64() * 1e3,
                ..JitterStats::default()
            },
        }
    }

    /// Counters.
    pub fn stats(&self) -> &JitterStats {
        &self.stats
    }

    /// Current playout delay target.
    pub fn target(&self) -> Duration {
        self.target
    }

    /// Frames waiting.
    pub fn depth(&self) -> usize {
        self.frames.len()
    }

    /// Takes one arrived frame.
    pub fn push(&mut self, now: Instant, seq: u64, pcm: Vec<u8>) {
        // RFC 3550 §6.4.1 with S = seq × 20 ms (end to end) and R = now.
        let origin = *self.origin.get_or_insert(now);
        let transit =
            now.saturating_duration_since(origin).as_secs_f64() - seq as f64 * FRAME.as_secs_f64();
        if let Some(prev) = self.last_transit {
            let d = (transit - prev).abs();
            self.jitter += (d - self.jitter) / 16.0;
            self.stats.jitter_ms = self.jitter * 1e3;
            // One frame plus three jitters of spread.
            let want = FRAME.as_secs_f64() + 3.0 * self.jitter;
            self.target = Duration::from_secs_f64(want).clamp(MIN_DELAY, MAX_DELAY);
            self.stats.target_ms = self.target.as_secs_f64() * 1e3;
        }
        self.last_transit = Some(transit);
        if self.frames.contains_key(&seq) || self.seen.contains(&seq) {
            self.stats.duplicate += 1;
            return;
        }
        if let Some(next) = self.next {
            if seq < next {
                if !self.frames.is_empty() {
                    self.stats.late += 1;
                    self.remember(seq);
                    return;
                }
                // Behind the clock into an empty buffer: the peer resumed
                // after a pause (mute); start a new talkspurt.
                self.next = None;
                self.start_at = Some(now + self.target);
            }
        }
        self.remember(seq);
        self.stats.received += 1;
        // RFC 3550 cumulative loss: expected from the sequence span minus
        // received. A muted peer sends nothing and skips no numbers.
        let (lo, hi) = match self.span {
            None => (seq, seq),
            Some((lo, hi)) => (lo.min(seq), hi.max(seq)),
        };
        self.span = Some((lo, hi));
        self.stats.lost = (hi - lo + 1).saturating_sub(self.stats.received + self.stats.late);
        self.frames.insert(seq, pcm);
        if self.start_at.is_none() {
            self.start_at = Some(now + self.target);
        }
    }

    /// Remembers recent sequence numbers for duplicate detection.
    fn remember(&mut self, seq: u64) {
        if self.seen.len() >= 256 {
            self.seen.pop_first();
        }
        self.seen.insert(seq);
    }

    /// The frame to play now (call every 20 ms). `None` until playout
    /// starts; then always a frame.
    pub fn pop(&mut self, now: Instant) -> Option<Vec<u8>> {
        if self.start_at.is_none_or(|t| now < t) {
            return None;
        }
        let mut next = match self.next {
            Some(n) => n,
            None => *self.frames.keys().next()?,
        };
        // Too much buffered for the target: skip the oldest to cut delay.
        let budget = (self.target.as_millis() / FRAME.as_millis()).max(1) as usize + 1;
        while self.frames.len() > budget + 1 {
            if self.frames.remove(&next).is_some() {
                self.stats.skipped += 1;
            }
            next += 1;
        }
        self.next = Some(next + 1);
        if let Some(f) = self.frames.remove(&next) {
            self.conceal_run = 0;
            self.last_played = Some(f.clone());
            return Some(f);
        }
        if self.frames.is_empty() {
            self.stats.underruns += 1;
        }
        self.stats.concealed += 1;
        self.conceal_run += 1;
        Some(self.conceal())
    }

    /// The last frame, halved per consecutive concealment; silence after
    /// [`FADE_FRAMES`].
    fn conceal(&self) -> Vec<u8> {
        let Some(last) = &self.last_played else {
            return vec![0; self.frame_bytes];
        };
        if self.conceal_run > FADE_FRAMES {
            return vec![0; self.frame_bytes];
        }
        let shift = self.conceal_run;
        last.chunks_exact(2)
            .flat_map(|c| {
                let s = i16::from_le_bytes([
                    c.first().copied().unwrap_or(0),
                    c.get(1).copied().unwrap_or(0),
                ]);
                (s >> shift).to_le_bytes()
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(n: u64) -> Vec<u8> {
        (0..160)
            .flat_map(|k| (((n * 160 + k) % 30000) as i16 + 1000).to_le_bytes())
            .collect()
    }

    /// Feeds frames at `arrivals` (seq, arrival offset ms) and plays every
    /// 20 ms for `ms`; returns what was played (None before start).
    fn play(jb: &mut JitterBuffer, arrivals: &[(u64, u64)], ms: u64) -> Vec<Option<Vec<u8>>> {
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut pending: Vec<(u64, u64)> = arrivals.to_vec();
        pending.sort_by_key(|a| a.1);
        let mut i = 0;
        for tick in (0..=ms).step_by(1) {
            while i < pending.len() && pending[i].1 <= tick {
                jb.push(
                    t0 + Duration::from_millis(tick),
                    pending[i].0,
                    frame(pending[i].0),
                );
                i += 1;
            }
            if tick % 20 == 0 {
                out.push(jb.pop(t0 + Duration::from_millis(tick)));
            }
        }
        out
    }

    #[test]
    fn steady_stream_plays_in_order_after_the_start_delay() {
        let mut jb = JitterBuffer::new(320);
        let arrivals: Vec<(u64, u64)> = (0..50).map(|n| (n, n * 20)).collect();
        let out = play(&mut jb, &arrivals, 1000);
        let first = out.iter().position(Option::is_some).unwrap();
        assert_eq!(first * 20, 40, "playout starts 40 ms after the first frame");
        for (k, f) in out.iter().skip(first).take(45).enumerate() {
            assert_eq!(f.as_ref().unwrap(), &frame(k as u64), "slot {k}");
        }
        let s = jb.stats();
        assert_eq!((s.lost, s.late, s.duplicate, s.concealed), (0, 0, 0, 0));
        assert!(s.jitter_ms < 0.5, "{s:?}");
    }

    #[test]
    fn reordering_inside_the_delay_is_invisible() {
        let mut jb = JitterBuffer::new(320);
        // Pairs swapped: 1 before 0, 3 before 2, ... within 20 ms.
        let arrivals: Vec<(u64, u64)> = (0..40).map(|n| (n ^ 1, n * 20)).collect();
        let out = play(&mut jb, &arrivals, 900);
        let played: Vec<&Vec<u8>> = out.iter().flatten().take(35).collect();
        for (k, f) in played.iter().enumerate() {
            assert_eq!(*f, &frame(k as u64), "slot {k}");
        }
        assert_eq!(jb.stats().lost, 0);
    }

    #[test]
    fn losses_are_concealed_fading_then_silent() {
        let mut jb = JitterBuffer::new(320);
        // Frames 10..=16 never arrive.
        let arrivals: Vec<(u64, u64)> = (0..40)
            .filter(|n| !(10..=16).contains(n))
            .map(|n| (n, n * 20))
            .collect();
        let out = play(&mut jb, &arrivals, 900);
        let played: Vec<&Vec<u8>> = out.iter().flatten().collect();
        let sample = |f: &Vec<u8>| i16::from_le_bytes([f[0], f[1]]);
        assert_eq!(played[9], &frame(9));
        assert_eq!(sample(played[10]), sample(&frame(9)) >> 1);
        assert_eq!(sample(played[11]), sample(&frame(9)) >> 2);
        assert_eq!(sample(played[12]), sample(&frame(9)) >> 3);
        assert!(played[13].iter().all(|&b| b == 0), "silence after the fade");
        assert_eq!(played[17], &frame(17));
        let s = jb.stats();
        assert_eq!(s.lost, 7);
        // Every missing slot was concealed; the gap itself and the end of
        // the stream ran the buffer empty (underruns).
        assert!(s.concealed >= 7 && s.underruns > 0, "{s:?}");
    }

    #[test]
    fn late_and_duplicate_frames_are_counted_not_played() {
        let mut jb = JitterBuffer::new(320);
        let mut arrivals: Vec<(u64, u64)> =
            (0..30).filter(|&n| n != 7).map(|n| (n, n * 20)).collect();
        arrivals.push((5, 101)); // duplicate, still buffered
        arrivals.push((7, 400)); // long after its slot
        play(&mut jb, &arrivals, 700);
        let s = jb.stats();
        assert_eq!((s.duplicate, s.late), (1, 1), "{s:?}");
    }

    #[test]
    fn the_delay_adapts_to_jitter_within_bounds() {
        let mut jb = JitterBuffer::new(320);
        // ±15 ms of pseudo-random arrival jitter.
        let mut x: u64 = 7;
        let arrivals: Vec<(u64, u64)> = (0..300)
            .map(|n| {
                x = x
                    .wrapping_mul(6364136223846793005)
                    .wrapping_add(1442695040888963407);
                (n, 20 + n * 20 + (x >> 59) * 2)
            })
            .collect();
        play(&mut jb, &arrivals, 6200);
        let s = jb.stats().clone();
        assert!(s.jitter_ms > 3.0, "{s:?}");
        assert!(
            jb.target() > START_DELAY && jb.target() <= MAX_DELAY,
            "{s:?}"
        );
        // Calm network: the target comes back down, never below 20 ms.
        let mut calm = JitterBuffer::new(320);
        play(
            &mut calm,
            &(0..300).map(|n| (n, n * 20)).collect::<Vec<_>>(),
            6000,
        );
        assert_eq!(calm.target(), MIN_DELAY);
    }

    #[test]
    fn a_muted_peer_is_not_loss_and_resumes_cleanly() {
        let mut jb = JitterBuffer::new(320);
        // 0..20, then 1 s of mute (no packets, no sequence numbers used),
        // then 20..40.
        let arrivals: Vec<(u64, u64)> = (0..40)
            .map(|n| (n, n * 20 + if n >= 20 { 1000 } else { 0 }))
            .collect();
        let out = play(&mut jb, &arrivals, 2000);
        let s = jb.stats();
        assert_eq!(s.lost, 0, "{s:?}");
        assert!(s.underruns >= 40, "{s:?}");
        // Every frame was played, in order.
        let real: Vec<&Vec<u8>> = out
            .iter()
            .flatten()
            .filter(|f| f.iter().any(|&b| b != 0))
            .collect();
        let frames: Vec<Vec<u8>> = (0..40).map(frame).collect();
        let played: Vec<&Vec<u8>> = real.into_iter().filter(|f| frames.contains(f)).collect();
        assert_eq!(played.len(), 40);
        for (k, f) in played.iter().enumerate() {
            assert_eq!(*f, &frames[k]);
        }
    }

    #[test]
    fn a_burst_is_trimmed_to_keep_latency_bounded() {
        let mut jb = JitterBuffer::new(320);
        // 30 frames arrive at once after a stall.
        let arrivals: Vec<(u64, u64)> = (0..30).map(|n| (n, 0)).collect();
        play(&mut jb, &arrivals, 600);
        assert!(jb.stats().skipped > 0);
        assert!(jb.depth() <= 6);
    }
}

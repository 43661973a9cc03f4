//! An adaptive jitter buffer for 20 ms encoded frames, sans-IO.
//!
//! [`JitterBuffer::push`] takes frames as they arrive (any order), keyed by
//! their frame index (their place in time, DTX's unsent frames counted);
//! [`JitterBuffer::pop`] is called by the playout clock every 20 ms and says
//! what that slot holds once playout has started: the next frame, a
//! missing one (lost, to conceal or recover, see [`crate::playout`]; or not
//! sent, DTX), or nothing buffered at all. Loss is counted on the packets'
//! end-to-end sequence numbers (RFC 3550), which count only what was sent.
//!
//! The playout delay starts at 40 ms and follows the measured interarrival
//! jitter (RFC 3550 §6.4.1, computed on end-to-end frame indices since a
//! PBX may rewrite RTP timestamps), staying within 20–80 ms. What the
//! buffer holds beyond the target is its [`JitterBuffer::excess`]: the
//! playout works it off where nobody hears it (quiet frames, time-scaled
//! speech). Only beyond [`HARD_LIMIT`] (a long stall let loose) are frames
//! skipped outright.

use std::collections::BTreeMap;
use std::time::Duration;

use web_time::Instant;

use crate::codec::Codec;

/// Frame duration.
pub const FRAME: Duration = Duration::from_millis(20);
/// Initial playout delay.
pub const START_DELAY: Duration = Duration::from_millis(40);
/// Smallest playout delay.
pub const MIN_DELAY: Duration = Duration::from_millis(20);
/// Largest playout delay.
pub const MAX_DELAY: Duration = Duration::from_millis(80);
/// Frames buffered beyond which the oldest are skipped outright (1 s: a
/// sender or receiver starved of CPU for a moment lets its backlog loose
/// at once, and the playout works that off in pauses without losing
/// speech; at 300 ms the bit-exact call tests lost frames on a loaded
/// machine).
pub const HARD_LIMIT: usize = 50;

/// One buffered frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    /// The sequence number of the packet it came in (`None`: a redundant
    /// copy).
    pub seq: Option<u64>,
    /// Its codec.
    pub codec: Codec,
    /// The encoded bytes.
    pub data: Vec<u8>,
    /// It came as a redundant copy, its original lost.
    pub recovered: bool,
}

/// What one playout slot holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Slot {
    /// Playout has not started.
    Waiting,
    /// The frame to play.
    Frame(u64, Frame),
    /// The frame of this index is missing and frames after it are
    /// buffered: `lost` with its packet (conceal it, or rebuild it from the
    /// next one's FEC), else never sent (DTX: the partner was silent).
    Missing {
        /// The frame index.
        frame: u64,
        /// Its packet was lost (the packets around it are not
        /// consecutive).
        lost: bool,
    },
    /// Nothing buffered: the peer is silent (muted, DTX) or the network
    /// stalled.
    Empty,
}

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
    /// Slots whose frame was missing (concealed or recovered).
    pub missing: u64,
    /// Frames skipped to cut latency.
    pub skipped: u64,
    /// Playout ticks with nothing buffered (the peer is muted, or the
    /// network stalled): not counted as lost.
    pub underruns: u64,
    /// Interarrival jitter, milliseconds.
    pub jitter_ms: f64,
    /// Current playout delay target, milliseconds.
    pub target_ms: f64,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct JitterBuffer {
    frames: BTreeMap<u64, Frame>,
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
    /// Lowest and highest sequence numbers received.
    span: Option<(u64, u64)>,
    /// Recently received frame indices (duplicates).
    seen: std::collections::BTreeSet<u64>,
    /// The packet sequence number of the last frame played.
    last_seq: Option<u64>,
    stats: JitterStats,
}

impl JitterBuffer {
    /// An empty buffer.
    pub fn new() -> Self {
        JitterBuffer {
            frames: BTreeMap::new(),
            next: None,
            start_at: None,
            target: START_DELAY,
            jitter: 0.0,
            last_transit: None,
            origin: None,
            span: None,
            seen: std::collections::BTreeSet::new(),
            last_seq: None,
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

    /// Frames buffered beyond the target delay (and the one frame a
    /// 20 ms clock needs in hand): what the playout should work off.
    pub fn excess(&self) -> usize {
        let budget = (self.target.as_millis() / FRAME.as_millis()).max(1) as usize + 1;
        self.frames.len().saturating_sub(budget)
    }

    /// The buffered frame `frame`, if any (the next frame's FEC rebuilds a
    /// missing one).
    pub fn peek(&self, frame: u64) -> Option<&Frame> {
        self.frames.get(&frame)
    }

    /// Takes a redundant copy of frame `frame`: kept only if that frame is
    /// still to be played and not here; never counted as received, late
    /// or duplicate.
    pub fn push_redundant(&mut self, frame: u64, codec: Codec, data: Vec<u8>) {
        if self.next.is_some_and(|n| frame < n)
            || self.frames.contains_key(&frame)
            || self.seen.contains(&frame)
            || self.frames.is_empty()
        {
            return;
        }
        self.frames.insert(
            frame,
            Frame {
                seq: None,
                codec,
                data,
                recovered: true,
            },
        );
    }

    /// Takes one arrived frame: frame index `frame`, in the packet of
    /// sequence number `seq`.
    pub fn push(&mut self, now: Instant, seq: u64, frame: u64, codec: Codec, data: Vec<u8>) {
        // RFC 3550 §6.4.1 with S = frame × 20 ms (end to end) and R = now.
        let origin = *self.origin.get_or_insert(now);
        let transit = now.saturating_duration_since(origin).as_secs_f64()
            - frame as f64 * FRAME.as_secs_f64();
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
        if self.seen.contains(&frame) {
            self.stats.duplicate += 1;
            return;
        }
        if let Some(next) = self.next {
            if frame < next {
                if !self.frames.is_empty() {
                    self.stats.late += 1;
                    self.remember(frame);
                    return;
                }
                // Behind the clock into an empty buffer: the peer resumed
                // after a pause (mute, which stops its frame clock too);
                // start a new talkspurt.
                self.next = None;
                self.start_at = Some(now + self.target);
            }
        }
        self.remember(frame);
        self.stats.received += 1;
        // RFC 3550 cumulative loss: expected from the sequence span minus
        // received. A muted peer sends nothing and skips no numbers.
        let (lo, hi) = match self.span {
            None => (seq, seq),
            Some((lo, hi)) => (lo.min(seq), hi.max(seq)),
        };
        self.span = Some((lo, hi));
        self.stats.lost = (hi - lo + 1).saturating_sub(self.stats.received + self.stats.late);
        // A redundant copy may hold the slot already: the original wins.
        self.frames.insert(
            frame,
            Frame {
                seq: Some(seq),
                codec,
                data,
                recovered: false,
            },
        );
        if self.start_at.is_none() {
            self.start_at = Some(now + self.target);
        }
    }

    /// Remembers recent frame indices for duplicate detection.
    fn remember(&mut self, frame: u64) {
        if self.seen.len() >= 256 {
            self.seen.pop_first();
        }
        self.seen.insert(frame);
    }

    /// What to play now (call every 20 ms).
    pub fn pop(&mut self, now: Instant) -> Slot {
        if self.start_at.is_none_or(|t| now < t) {
            return Slot::Waiting;
        }
        let first = self.frames.keys().next().copied();
        let Some(mut next) = self.next.or(first) else {
            return Slot::Waiting;
        };
        // Far too much buffered: skip the oldest to bound the delay.
        while self.frames.len() > HARD_LIMIT {
            if self.frames.remove(&next).is_some() {
                self.stats.skipped += 1;
            }
            next += 1;
        }
        self.next = Some(next + 1);
        if let Some(f) = self.frames.remove(&next) {
            if f.seq.is_some() {
                self.last_seq = f.seq;
            }
            return Slot::Frame(next, f);
        }
        if self.frames.is_empty() {
            self.stats.underruns += 1;
            return Slot::Empty;
        }
        // Not sent (DTX) when the next packet buffered follows the last
        // one played; lost otherwise.
        let following = self.frames.values().find_map(|f| f.seq);
        let lost = match (self.last_seq, following) {
            (Some(last), Some(s)) => s > last + 1,
            _ => true,
        };
        if lost {
            self.stats.missing += 1;
        }
        Slot::Missing { frame: next, lost }
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
    /// 20 ms for `ms`; returns every slot.
    fn play(jb: &mut JitterBuffer, arrivals: &[(u64, u64)], ms: u64) -> Vec<Slot> {
        let t0 = Instant::now();
        let mut out = Vec::new();
        let mut pending: Vec<(u64, u64)> = arrivals.to_vec();
        pending.sort_by_key(|a| a.1);
        let mut i = 0;
        for tick in 0..=ms {
            while i < pending.len() && pending[i].1 <= tick {
                let seq = pending[i].0;
                jb.push(
                    t0 + Duration::from_millis(tick),
                    seq,
                    seq,
                    Codec::Pcm16,
                    frame(seq),
                );
                i += 1;
            }
            if tick % 20 == 0 {
                out.push(jb.pop(t0 + Duration::from_millis(tick)));
            }
        }
        out
    }

    /// The frames played, by sequence number.
    fn played(slots: &[Slot]) -> Vec<u64> {
        slots
            .iter()
            .filter_map(|s| match s {
                Slot::Frame(n, f) => {
                    assert_eq!(f.data, frame(*n));
                    Some(*n)
                }
                _ => None,
            })
            .collect()
    }

    #[test]
    fn steady_stream_plays_in_order_after_the_start_delay() {
        let mut jb = JitterBuffer::new();
        let arrivals: Vec<(u64, u64)> = (0..50).map(|n| (n, n * 20)).collect();
        let out = play(&mut jb, &arrivals, 1100);
        let first = out.iter().position(|s| *s != Slot::Waiting).unwrap();
        assert_eq!(first * 20, 40, "playout starts 40 ms after the first frame");
        assert_eq!(played(&out), (0..50).collect::<Vec<_>>());
        let s = jb.stats();
        assert_eq!((s.lost, s.late, s.duplicate, s.missing), (0, 0, 0, 0));
        assert!(s.jitter_ms < 0.5, "{s:?}");
    }

    #[test]
    fn reordering_inside_the_delay_is_invisible() {
        let mut jb = JitterBuffer::new();
        // Pairs swapped: 1 before 0, 3 before 2, ... within 20 ms.
        let arrivals: Vec<(u64, u64)> = (0..40).map(|n| (n ^ 1, n * 20)).collect();
        let out = play(&mut jb, &arrivals, 900);
        assert_eq!(played(&out), (0..40).collect::<Vec<_>>());
        assert_eq!((jb.stats().lost, jb.stats().missing), (0, 0));
    }

    #[test]
    fn losses_leave_missing_slots_in_place() {
        let mut jb = JitterBuffer::new();
        // Frames 10..=16 never arrive.
        let arrivals: Vec<(u64, u64)> = (0..40)
            .filter(|n| !(10..=16).contains(n))
            .map(|n| (n, n * 20))
            .collect();
        let out = play(&mut jb, &arrivals, 900);
        let start = out.iter().position(|s| *s != Slot::Waiting).unwrap();
        for (k, slot) in out[start..start + 40].iter().enumerate() {
            let k = k as u64;
            match slot {
                Slot::Missing { frame: n, lost } => {
                    assert!((10..=16).contains(&k) && *n == k && *lost, "{k}: {slot:?}")
                }
                // A loss longer than the buffer's delay runs it empty.
                Slot::Empty => assert!((10..=16).contains(&k), "{k}"),
                Slot::Frame(n, _) => assert_eq!(*n, k),
                other => panic!("{k}: {other:?}"),
            }
        }
        let s = jb.stats();
        assert_eq!(s.lost, 7, "{s:?}");
        assert_eq!(out[start + 40], Slot::Empty, "then the stream ended");
    }

    #[test]
    fn a_redundant_copy_fills_a_hole_and_is_otherwise_ignored() {
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        let mut out = Vec::new();
        for n in 0u64..10 {
            if n != 3 && n < 6 {
                jb.push(at(n * 20), n, n, Codec::Pcm16, frame(n));
                // Each packet carries the one before it.
                if n > 0 {
                    jb.push_redundant(n - 1, Codec::Pcm16, frame(n - 1));
                }
            }
            out.push(jb.pop(at(n * 20)));
        }
        let out: Vec<Slot> = out
            .into_iter()
            .skip_while(|s| *s == Slot::Waiting)
            .collect();
        let Slot::Frame(3, f) = &out[3] else {
            panic!("{out:?}")
        };
        assert!(f.recovered && f.data == frame(3));
        assert!(matches!(&out[2], Slot::Frame(2, f) if !f.recovered));
        let s = jb.stats();
        assert_eq!(
            (s.received, s.lost, s.duplicate, s.missing),
            (5, 1, 0, 0),
            "{s:?}"
        );
        // A copy of a frame already played is dropped.
        jb.push_redundant(1, Codec::Pcm16, frame(1));
        assert_eq!(jb.peek(1), None);
    }

    #[test]
    fn late_and_duplicate_frames_are_counted_not_played() {
        let mut jb = JitterBuffer::new();
        let mut arrivals: Vec<(u64, u64)> =
            (0..30).filter(|&n| n != 7).map(|n| (n, n * 20)).collect();
        arrivals.push((5, 101)); // duplicate, still buffered
        arrivals.push((7, 400)); // long after its slot
        let out = play(&mut jb, &arrivals, 700);
        let s = jb.stats();
        assert_eq!((s.duplicate, s.late), (1, 1), "{s:?}");
        assert!(!played(&out).contains(&7));
    }

    #[test]
    fn the_delay_adapts_to_jitter_within_bounds() {
        let mut jb = JitterBuffer::new();
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
        let mut calm = JitterBuffer::new();
        play(
            &mut calm,
            &(0..300).map(|n| (n, n * 20)).collect::<Vec<_>>(),
            6000,
        );
        assert_eq!(calm.target(), MIN_DELAY);
    }

    #[test]
    fn a_muted_peer_is_not_loss_and_resumes_cleanly() {
        let mut jb = JitterBuffer::new();
        // 0..20, then 1 s of mute (no packets, no sequence numbers used),
        // then 20..40.
        let arrivals: Vec<(u64, u64)> = (0..40)
            .map(|n| (n, n * 20 + if n >= 20 { 1000 } else { 0 }))
            .collect();
        let out = play(&mut jb, &arrivals, 2000);
        let s = jb.stats();
        assert_eq!((s.lost, s.missing), (0, 0), "{s:?}");
        assert!(s.underruns >= 40, "{s:?}");
        assert_eq!(played(&out), (0..40).collect::<Vec<_>>());
    }

    #[test]
    fn a_burst_is_excess_and_only_a_huge_one_is_skipped() {
        let mut jb = JitterBuffer::new();
        // 30 frames arrive at once after a stall: all kept, the excess
        // told (the playout works it off), nothing skipped.
        let arrivals: Vec<(u64, u64)> = (0..30).map(|n| (n, 0)).collect();
        let t0 = Instant::now();
        for &(n, _) in &arrivals {
            jb.push(t0, n, n, Codec::Pcm16, frame(n));
        }
        assert!(jb.excess() >= 25, "{}", jb.excess());
        let out = play(&mut jb, &[], 800);
        assert_eq!(played(&out), (0..30).collect::<Vec<_>>());
        assert_eq!(jb.stats().skipped, 0);
        // Two seconds at once: the oldest beyond the limit are skipped.
        let mut jb = JitterBuffer::new();
        for n in 0..100 {
            jb.push(t0, n, n, Codec::Pcm16, frame(n));
        }
        let Slot::Frame(first, _) = jb.pop(t0 + Duration::from_millis(100)) else {
            panic!()
        };
        assert_eq!(first, 100 - HARD_LIMIT as u64);
        assert_eq!(jb.stats().skipped, 100 - HARD_LIMIT as u64);
    }

    #[test]
    fn frames_dtx_left_out_are_not_loss_and_keep_their_time() {
        let mut jb = JitterBuffer::new();
        let t0 = Instant::now();
        let at = |ms| t0 + Duration::from_millis(ms);
        // Frames 0..10 sent, 10..15 left out by DTX (no packets), 15..25
        // sent: packets 0..20, contiguous; frame 17's packet lost.
        let mut out = Vec::new();
        let mut seq = 0;
        for f in 0u64..30 {
            if !(10..15).contains(&f) && f < 25 {
                if f != 17 {
                    jb.push(at(f * 20), seq, f, Codec::Pcm16, frame(f));
                }
                seq += 1;
            }
            out.push(jb.pop(at(f * 20 + 1)));
        }
        let out: Vec<Slot> = out
            .into_iter()
            .skip_while(|s| *s == Slot::Waiting)
            .collect();
        // The pause plays at its time: frame 15 comes 15 slots after 0,
        // not right after 9 (no new talkspurt, no shift).
        assert!(matches!(&out[15], Slot::Frame(15, _)), "{:?}", &out[15]);
        for (f, slot) in out.iter().enumerate().take(15).skip(10) {
            assert!(
                matches!(slot, Slot::Empty | Slot::Missing { lost: false, .. }),
                "{f}: {slot:?}"
            );
        }
        assert_eq!(
            out[17],
            Slot::Missing {
                frame: 17,
                lost: true
            }
        );
        let s = jb.stats();
        assert_eq!((s.lost, s.missing), (1, 1), "{s:?}");
    }
}

//! The one playout path, sans-IO: received frames go into the jitter
//! buffer, and every 20 ms [`Playout::pop`] gives the 20 ms of PCM16 to
//! play, whatever happened on the network: the decoded frame, a frame
//! rebuilt from the next one's FEC (Opus), a concealed one (Opus's own
//! concealment, or [`crate::conceal`]'s pitch repetition for PCM16), or
//! silence. The speaker and `--output-wav` both take what it gives, so a
//! recording is what the user heard and as long as the call.

use web_time::Instant;

use crate::codec::{Codec, Decoder};
use crate::conceal::Concealer;
use crate::jitter::{JitterBuffer, JitterStats, Slot};

/// Frames of concealment after the stream went quiet before plain
/// silence (Opus fades by itself; PCM16's concealment is silent by then).
const QUIET_CONCEAL: u32 = 3;

/// Quiet frames left out in one tick at most.
pub const TRIM_PER_TICK: usize = 2;
/// Ticks over which the buffer's lowest excess is its surplus (200 ms).
pub const SURPLUS_WINDOW: u32 = 10;
/// Quiet frames of a pause always played before any is left out.
const PAUSE_KEPT: u32 = 3;
/// A frame this quiet (RMS, of 32768) is left out when the delay is above
/// its target (about −47 dBFS).
const QUIET_RMS: f64 = 150.0;

fn is_quiet(pcm: &[i16]) -> bool {
    let e: f64 = pcm.iter().map(|&x| f64::from(x).powi(2)).sum();
    (e / pcm.len().max(1) as f64).sqrt() < QUIET_RMS
}

/// What the playout did.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PlayoutStats {
    /// The jitter buffer's counters (loss, jitter, delay target).
    pub jitter: JitterStats,
    /// Frames played as received.
    pub played: u64,
    /// Lost frames rebuilt: from a redundant copy or from Opus's FEC.
    pub recovered: u64,
    /// Lost frames concealed.
    pub concealed: u64,
    /// Frames concealed while nothing was buffered: the end of a
    /// talkspurt faded out (or a loss longer than the buffer).
    pub faded: u64,
    /// Frames the partner's DTX did not send, filled in.
    pub dtx: u64,
    /// Quiet frames left out to bring the delay back to the target.
    pub trimmed: u64,
    /// Frames that would not decode (concealed too).
    pub undecodable: u64,
    /// The codec of the last frame played.
    pub codec: Option<Codec>,
    /// Playout delay now: the buffer's frames, milliseconds.
    pub delay_ms: f64,
}

/// See the module docs.
#[derive(Debug)]
pub struct Playout {
    rate: u32,
    n: usize,
    jitter: JitterBuffer,
    decoder: Option<Decoder>,
    concealer: Concealer,
    /// Slots in a row with nothing buffered.
    quiet: u32,
    /// The lowest excess of the buffer in this window, the window's ticks
    /// so far, and the surplus frames to work off (the last window's).
    low: usize,
    window: u32,
    surplus: usize,
    /// Quiet frames played in a row.
    pause: u32,
    stats: PlayoutStats,
}

impl Playout {
    /// A playout at `rate` (8000 or 16000), 20 ms frames.
    pub fn new(rate: u32) -> Playout {
        Playout {
            rate,
            n: (rate / 50) as usize,
            jitter: JitterBuffer::new(),
            decoder: None,
            concealer: Concealer::new(rate),
            quiet: QUIET_CONCEAL + 1,
            low: usize::MAX,
            window: 0,
            surplus: 0,
            pause: 0,
            stats: PlayoutStats::default(),
        }
    }

    /// Takes one received frame ([`crate::session::Event::Audio`]): frame
    /// index `frame`, from the packet of sequence number `seq`.
    pub fn push(
        &mut self,
        now: Instant,
        seq: u64,
        frame: u64,
        codec: Codec,
        data: Vec<u8>,
        redundant: bool,
    ) {
        if redundant {
            self.jitter.push_redundant(frame, codec, data);
        } else {
            self.jitter.push(now, seq, frame, codec, data);
        }
    }

    /// Counters.
    pub fn stats(&self) -> PlayoutStats {
        let mut s = self.stats.clone();
        s.jitter = self.jitter.stats().clone();
        s.delay_ms = (self.jitter.depth() as f64 * 20.0).max(s.jitter.target_ms);
        s
    }

    /// The next 20 ms to play (call every 20 ms); always a whole frame.
    /// While the buffer has held more than its target for a while (its
    /// lowest excess over [`SURPLUS_WINDOW`] ticks: a frame arriving just
    /// before or after the tick is no surplus), quiet frames are left out
    /// (up to [`TRIM_PER_TICK`] a tick), which nobody hears; speech is
    /// played whole.
    pub fn pop(&mut self, now: Instant) -> Vec<i16> {
        self.low = self.low.min(self.jitter.excess());
        self.window += 1;
        if self.window >= SURPLUS_WINDOW {
            self.surplus = self.low;
            self.low = usize::MAX;
            self.window = 0;
        }
        let mut pcm = self.pop_one(now);
        let mut trimmed = 0;
        loop {
            self.pause = if is_quiet(&pcm) { self.pause + 1 } else { 0 };
            // Only inside a pause (not the quiet start of a word, nor the
            // first frames of the pause, which PESQ and ears both notice).
            if trimmed >= TRIM_PER_TICK || self.surplus == 0 || self.pause <= PAUSE_KEPT {
                return pcm;
            }
            pcm = self.pop_one(now);
            trimmed += 1;
            self.surplus -= 1;
            self.stats.trimmed += 1;
        }
    }

    fn pop_one(&mut self, now: Instant) -> Vec<i16> {
        match self.jitter.pop(now) {
            Slot::Waiting => vec![0; self.n],
            Slot::Frame(_, f) => {
                self.quiet = 0;
                let decoded = self
                    .decoder_for(f.codec)
                    .and_then(|d| d.decode(&f.data).ok());
                let Some(mut pcm) = decoded else {
                    self.stats.undecodable += 1;
                    return self.conceal();
                };
                if f.recovered {
                    self.stats.recovered += 1;
                } else {
                    self.stats.played += 1;
                }
                self.stats.codec = Some(f.codec);
                self.concealer.good(&mut pcm);
                pcm
            }
            // Not sent (DTX): Opus fills the silence with its comfort
            // noise, as its decoder expects for frames not sent.
            Slot::Missing { lost: false, .. } => {
                self.stats.dtx += 1;
                self.conceal()
            }
            Slot::Missing { frame, lost: true } => {
                self.quiet = 0;
                let next = self.jitter.peek(frame + 1).cloned();
                if let Some(next) = next {
                    if let Some(mut pcm) = self
                        .decoder_for(next.codec)
                        .and_then(|d| d.recover(&next.data))
                    {
                        self.stats.recovered += 1;
                        self.concealer.good(&mut pcm);
                        return pcm;
                    }
                }
                self.stats.concealed += 1;
                self.conceal()
            }
            Slot::Empty => {
                self.quiet += 1;
                if self.quiet > QUIET_CONCEAL {
                    return vec![0; self.n];
                }
                // The end of a talkspurt, or a loss longer than the
                // buffer: fade out the same way.
                self.stats.faded += 1;
                self.conceal()
            }
        }
    }

    /// A frame in place of a missing one.
    fn conceal(&mut self) -> Vec<i16> {
        match self.decoder.as_mut() {
            Some(d) if d.codec() == Codec::Opus => {
                let pcm = d.conceal().unwrap_or_else(|| vec![0; self.n]);
                // Opus conceals itself; PCM16's concealer keeps its history
                // current all the same.
                let mut copy = pcm.clone();
                self.concealer.good(&mut copy);
                pcm
            }
            _ => self.concealer.lost(),
        }
    }

    /// The decoder for `codec` (a new one if the codec changed).
    fn decoder_for(&mut self, codec: Codec) -> Option<&mut Decoder> {
        if self.decoder.as_ref().is_none_or(|d| d.codec() != codec) {
            self.decoder = Decoder::new(codec, self.rate).ok();
        }
        self.decoder.as_mut()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::codec::{to_bytes, Encoder};
    use std::time::Duration;

    fn voiced(n: usize, k: usize) -> Vec<i16> {
        (k * n..(k + 1) * n)
            .map(|i| {
                let t = i as f32 / 8000.0;
                ((t * 200.0 * std::f32::consts::TAU).sin() * 7000.0) as i16
            })
            .collect()
    }

    /// Plays `frames` frames, frame k arriving at k×20 ms unless `lost`
    /// says otherwise; returns everything played over `ticks` slots.
    fn run(codec: Codec, frames: usize, lost: &[usize], ticks: usize) -> (Vec<i16>, PlayoutStats) {
        let t0 = Instant::now();
        let mut enc = Encoder::new(codec, 8000).unwrap();
        let mut p = Playout::new(8000);
        let mut out = Vec::new();
        for k in 0..ticks {
            let now = t0 + Duration::from_millis(k as u64 * 20);
            if k < frames {
                let data = enc.encode(&to_bytes(&voiced(160, k))).unwrap();
                if !lost.contains(&k) {
                    p.push(now, k as u64, k as u64, codec, data, false);
                }
            }
            out.extend(p.pop(now));
        }
        (out, p.stats())
    }

    #[test]
    fn every_slot_gives_a_frame_so_the_output_is_as_long_as_the_call() {
        for &codec in Codec::built() {
            let (out, s) = run(codec, 100, &[10, 11, 40, 70], 130);
            assert_eq!(out.len(), 130 * 160, "{codec:?}");
            assert_eq!(s.jitter.lost, 4);
            assert_eq!(s.played, 96, "{s:?}");
            assert_eq!(s.concealed + s.recovered, 4, "{s:?}");
            // The end of the stream faded out.
            assert_eq!(s.faded, u64::from(QUIET_CONCEAL), "{s:?}");
        }
    }

    #[test]
    fn pcm16_without_loss_is_bit_exact_after_the_start_delay() {
        let (out, s) = run(Codec::Pcm16, 50, &[], 60);
        // Whole frames of silence, then the first frame (which starts at
        // a zero crossing).
        let start = out.iter().position(|&x| x != 0).unwrap() / 160 * 160;
        let sent: Vec<i16> = (0..50).flat_map(|k| voiced(160, k)).collect();
        assert_eq!(&out[start..start + sent.len()], &sent[..]);
        assert_eq!((s.concealed, s.recovered), (0, 0), "{s:?}");
    }

    #[test]
    #[cfg(feature = "opus")]
    fn opus_rebuilds_a_lost_frame_from_the_next_ones_fec() {
        // With the next frame already buffered (40 ms delay), the loss is
        // recovered, not concealed.
        let (_, s) = run(Codec::Opus, 100, &[30], 110);
        assert_eq!((s.recovered, s.concealed), (1, 0), "{s:?}");
        assert_eq!(s.codec, Some(Codec::Opus));
    }

    #[test]
    fn a_concealed_pcm16_loss_is_not_silence() {
        let (out, s) = run(Codec::Pcm16, 50, &[20], 60);
        assert_eq!(s.concealed, 1);
        let start = out.iter().position(|&x| x != 0).unwrap();
        let hole = &out[start + 20 * 160..start + 21 * 160];
        let energy: f64 = hole.iter().map(|&x| f64::from(x).powi(2)).sum::<f64>() / 160.0;
        assert!(energy.sqrt() > 2000.0, "rms {}", energy.sqrt());
    }

    #[test]
    fn a_burst_is_worked_off_in_the_quiet_and_speech_plays_whole() {
        let t0 = Instant::now();
        let mut p = Playout::new(8000);
        // Speech, a pause of 20 silent frames, speech; the first 12 frames
        // arrive at once (a backlog), then one every 20 ms.
        let frame = |k: usize| -> Vec<u8> {
            if (15..35).contains(&k) {
                vec![0; 320]
            } else {
                to_bytes(&voiced(160, k))
            }
        };
        for k in 0..12 {
            p.push(t0, k as u64, k as u64, Codec::Pcm16, frame(k), false);
        }
        let mut out = Vec::new();
        for tick in 0..60u64 {
            let now = t0 + Duration::from_millis(tick * 20);
            let k = tick as usize + 12;
            if k < 50 {
                p.push(now, k as u64, k as u64, Codec::Pcm16, frame(k), false);
            }
            out.push(p.pop(now + Duration::from_millis(40)));
        }
        let s = p.stats();
        // The pause shrank; every speech frame played, in order, intact.
        assert!(s.trimmed >= 8, "{s:?}");
        assert_eq!(s.jitter.skipped, 0);
        let loud: Vec<Vec<u8>> = out
            .iter()
            .filter(|f| !is_quiet(f))
            .map(|f| to_bytes(f))
            .collect();
        let want: Vec<Vec<u8>> = (0..50)
            .filter(|k| !(15..35).contains(k))
            .map(frame)
            .collect();
        // (Then the stream ended, and its end was faded out.)
        assert!(loud.len() >= want.len());
        assert!(
            loud[..want.len()] == want[..],
            "speech frames altered or out of order"
        );
        assert_eq!(s.jitter.skipped, 0);
    }
}

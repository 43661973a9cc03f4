//! Loss reports and what a sender does about them, as plain state
//! machines. The receiver measures the share of the partner's audio
//! packets lost between two reports (RFC 3550 §6.4.1's "fraction lost",
//! over end-to-end sequence numbers) and sends it, sealed, in its
//! keep-alive; the sender smooths what it hears and picks its protection:
//! Opus's in-band FEC sized to the loss, and copies of earlier frames in
//! each packet (RFC 2198's idea) when the loss is high.

use crate::codec::Codec;

/// The receiving side's meter.
#[derive(Debug, Clone, Default)]
pub struct LossMeter {
    highest: Option<u64>,
    /// The first sequence number heard.
    first: Option<u64>,
    /// The highest sequence number at the last report.
    base: Option<u64>,
    /// Packets received since the last report.
    received: u64,
}

impl LossMeter {
    /// An authentic audio packet arrived.
    pub fn on_packet(&mut self, seq: u64) {
        self.highest = Some(self.highest.map_or(seq, |h| h.max(seq)));
        self.first.get_or_insert(seq);
        self.received += 1;
    }

    /// The fraction lost since the last report, in 256ths (`None` when
    /// nothing was expected: the partner is muted or silent), and a new
    /// interval begins.
    pub fn report(&mut self) -> Option<u8> {
        let highest = self.highest?;
        let expected = match self.base {
            Some(b) => highest.saturating_sub(b),
            // The first interval: from the first packet heard.
            None => highest - self.first.unwrap_or(highest) + 1,
        };
        let received = std::mem::take(&mut self.received);
        self.base = Some(highest);
        if expected == 0 {
            return None;
        }
        let lost = expected.saturating_sub(received);
        Some(((lost * 256 / expected).min(255)) as u8)
    }
}

/// How a sender protects its audio.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Protection {
    /// Earlier frames carried in each packet.
    pub redundancy: usize,
    /// The loss (percent) Opus's FEC is told to expect (0: no FEC).
    pub expected_loss: u8,
}

/// The sending side: smooths the partner's reports, picks protection.
#[derive(Debug, Clone, Default)]
pub struct Adapter {
    /// Smoothed loss, percent.
    smoothed: f64,
    reports: u64,
}

impl Adapter {
    /// A report (256ths) arrived; returns the protection for `codec`.
    pub fn on_report(&mut self, fraction: u8, codec: Codec) -> Protection {
        let p = f64::from(fraction) * 100.0 / 256.0;
        // Rise fast, fall slowly: a burst of loss is protected within a
        // few reports, and protection stays a while after it. Not faster:
        // one report covers ~50 packets, so at 5 % loss a single one often
        // says 8-10 % (measured across the NAT test: at 0.5 the smoothed
        // loss reached Opus's copies and the call went past 64 kbit/s).
        let k = if p > self.smoothed { 0.3 } else { 0.15 };
        self.smoothed = if self.reports == 0 {
            p
        } else {
            self.smoothed + k * (p - self.smoothed)
        };
        self.reports += 1;
        protection_for(codec, self.smoothed)
    }

    /// The smoothed loss the partner reports, percent.
    pub fn loss_percent(&self) -> f64 {
        self.smoothed
    }
}

/// The protection for `codec` at `loss` percent. Opus: FEC sized to the
/// loss from 1 %, and one earlier frame per packet from 9 % (beyond what
/// FEC rebuilds well; the bandwidth goal is for lower loss). PCM16, which
/// has no FEC: one earlier frame from 2 %, two from 10 %.
pub fn protection_for(codec: Codec, loss: f64) -> Protection {
    match codec {
        Codec::Opus => Protection {
            redundancy: usize::from(loss >= 9.0),
            expected_loss: if loss < 1.0 {
                0
            } else {
                loss.ceil().min(40.0) as u8
            },
        },
        Codec::Pcm16 => Protection {
            redundancy: if loss >= 10.0 {
                2
            } else {
                usize::from(loss >= 2.0)
            },
            expected_loss: 0,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_meter_reports_the_share_lost_per_interval() {
        let mut m = LossMeter::default();
        assert_eq!(m.report(), None, "nothing heard yet");
        for s in 0..100 {
            if s % 10 != 3 {
                m.on_packet(s);
            }
        }
        // 10 of 100 lost: 25.6/256.
        assert_eq!(m.report(), Some(25));
        for s in 100..200 {
            if s % 10 != 3 {
                m.on_packet(s);
            }
        }
        assert_eq!(m.report(), Some(25));
        assert_eq!(m.report(), None, "a muted partner expects nothing");
        // Reordered and duplicated packets do not make negative loss.
        for s in [201, 200, 202, 202, 203] {
            m.on_packet(s);
        }
        assert_eq!(m.report(), Some(0));
    }

    #[test]
    fn protection_follows_the_reported_loss() {
        let mut a = Adapter::default();
        assert_eq!(a.on_report(0, Codec::Opus), Protection::default());
        // 5 %: Opus FEC for 5 %, no copies; PCM16 one copy.
        let five = (0.05 * 256.0) as u8;
        let mut p = Protection::default();
        for _ in 0..10 {
            p = a.on_report(five, Codec::Opus);
        }
        assert_eq!(
            p,
            Protection {
                redundancy: 0,
                expected_loss: 5
            }
        );
        assert_eq!(protection_for(Codec::Pcm16, 5.0).redundancy, 1);
        // 12 %: copies too; PCM16 two.
        assert_eq!(
            protection_for(Codec::Opus, 12.0),
            Protection {
                redundancy: 1,
                expected_loss: 12
            }
        );
        assert_eq!(protection_for(Codec::Pcm16, 12.0).redundancy, 2);
        // The loss stops: protection fades out over some reports.
        let after = a.on_report(0, Codec::Opus);
        assert!(after.expected_loss > 0, "not dropped at once: {after:?}");
        for _ in 0..30 {
            p = a.on_report(0, Codec::Opus);
        }
        assert_eq!(p, Protection::default());
        assert!(a.loss_percent() < 1.0);
    }
}

//! The replay window (RFC 3711 §3.3.2) over end-to-end sequence numbers.

/// Window width, in packets.
pub(crate) const WINDOW: u64 = 64;

/// Why a sequence number was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum ReplayError {
    /// Seen before, inside the window.
    #[error("replayed packet")]
    Replayed,
    /// Older than the window.
    #[error("packet older than the replay window")]
    TooOld,
}

/// The highest accepted number and which of the 64 before it were seen.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct ReplayWindow {
    highest: Option<u64>,
    /// Bit `k` set: `highest - k` was seen.
    mask: u64,
}

impl ReplayWindow {
    /// Would `seq` be accepted? Does not change the window: call
    /// [`ReplayWindow::mark`] only once the packet is authenticated.
    pub(crate) fn check(&self, seq: u64) -> Result<(), ReplayError> {
        let Some(h) = self.highest else { return Ok(()) };
        if seq > h {
            return Ok(());
        }
        let back = h - seq;
        if back >= WINDOW {
            return Err(ReplayError::TooOld);
        }
        if self.mask & (1u64 << back) != 0 {
            return Err(ReplayError::Replayed);
        }
        Ok(())
    }

    /// Records `seq` as seen (after authentication).
    pub(crate) fn mark(&mut self, seq: u64) {
        match self.highest {
            None => {
                self.highest = Some(seq);
                self.mask = 1;
            }
            Some(h) if seq > h => {
                let shift = seq - h;
                self.mask = if shift >= WINDOW {
                    0
                } else {
                    self.mask << shift
                };
                self.mask |= 1;
                self.highest = Some(seq);
            }
            Some(h) => {
                let back = h - seq;
                if back < WINDOW {
                    self.mask |= 1u64 << back;
                }
            }
        }
    }

    /// The highest accepted sequence number.
    pub(crate) fn highest(&self) -> Option<u64> {
        self.highest
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn accept(w: &mut ReplayWindow, seq: u64) -> Result<(), ReplayError> {
        w.check(seq)?;
        w.mark(seq);
        Ok(())
    }

    #[test]
    fn in_order_then_replay() {
        let mut w = ReplayWindow::default();
        for s in 0..200 {
            accept(&mut w, s).unwrap();
        }
        assert_eq!(accept(&mut w, 199), Err(ReplayError::Replayed));
        assert_eq!(accept(&mut w, 150), Err(ReplayError::Replayed));
        assert_eq!(accept(&mut w, 136), Err(ReplayError::Replayed)); // 63 back
        assert_eq!(accept(&mut w, 135), Err(ReplayError::TooOld)); // 64 back
    }

    #[test]
    fn reordering_inside_the_window_is_fine_once() {
        let mut w = ReplayWindow::default();
        accept(&mut w, 10).unwrap();
        accept(&mut w, 70).unwrap(); // 10 is now 60 back: still inside
        accept(&mut w, 40).unwrap();
        assert_eq!(accept(&mut w, 40), Err(ReplayError::Replayed));
        assert_eq!(accept(&mut w, 10), Err(ReplayError::Replayed));
        assert_eq!(accept(&mut w, 6), Err(ReplayError::TooOld)); // 64 back
        accept(&mut w, 7).unwrap(); // 63 back: the window's edge
        accept(&mut w, 100).unwrap();
        assert_eq!(accept(&mut w, 36), Err(ReplayError::TooOld));
        accept(&mut w, 37).unwrap();
    }

    #[test]
    fn a_big_jump_clears_the_mask() {
        let mut w = ReplayWindow::default();
        accept(&mut w, 0).unwrap();
        accept(&mut w, 1_000_000).unwrap();
        assert_eq!(accept(&mut w, 0), Err(ReplayError::TooOld));
        accept(&mut w, 999_999).unwrap();
        assert_eq!(w.highest(), Some(1_000_000));
    }

    #[test]
    fn check_does_not_move_the_window() {
        let mut w = ReplayWindow::default();
        accept(&mut w, 5).unwrap();
        w.check(500).unwrap();
        accept(&mut w, 4).unwrap();
    }

    #[test]
    fn matches_a_naive_model() {
        // Every accept/refuse decision equals a set-based model over a
        // pseudo-random walk of sequence numbers.
        let mut w = ReplayWindow::default();
        let mut seen = std::collections::HashSet::new();
        let mut highest: Option<u64> = None;
        let mut x: u64 = 12345;
        let mut base: u64 = 1000;
        for _ in 0..50_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            base += x % 3;
            let seq = (base + (x >> 8) % 90).saturating_sub(70);
            let model = match highest {
                Some(h) if seq + WINDOW <= h => Err(ReplayError::TooOld),
                _ if seen.contains(&seq) => Err(ReplayError::Replayed),
                _ => Ok(()),
            };
            let got = accept(&mut w, seq);
            assert_eq!(got, model, "seq {seq} highest {highest:?}");
            if got.is_ok() {
                seen.insert(seq);
                highest = Some(highest.map_or(seq, |h| h.max(seq)));
            }
        }
    }
}

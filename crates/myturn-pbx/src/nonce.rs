//! Stateless digest nonces: `<issued, hex>.<HMAC-SHA256(secret, issued)>`.
//!
//! The registrar keeps no per-challenge state (a flood of unauthenticated
//! REGISTERs costs no memory), yet can tell its own fresh nonces from
//! forged ones and from old ones (answered `stale=true`, RFC 7616 §3.3).

use std::time::{Duration, Instant};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use subtle::ConstantTimeEq;

/// How a nonce from a client checks out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum NonceCheck {
    Fresh,
    /// Ours, but older than the lifetime: re-challenge with `stale=true`.
    Stale,
    /// Not made by this registrar.
    Forged,
}

/// Makes and checks nonces.
#[derive(Clone)]
pub(crate) struct Nonces {
    key: [u8; 32],
    epoch: Instant,
    lifetime: Duration,
}

impl std::fmt::Debug for Nonces {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Nonces")
            .field("lifetime", &self.lifetime)
            .finish_non_exhaustive()
    }
}

impl Nonces {
    pub(crate) fn new(key: [u8; 32], epoch: Instant, lifetime: Duration) -> Self {
        Nonces {
            key,
            epoch,
            lifetime,
        }
    }

    fn mac(&self, issued: &str) -> String {
        #[allow(clippy::expect_used)]
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.key).expect("any key length");
        m.update(issued.as_bytes());
        const HEX: &[u8; 16] = b"0123456789abcdef";
        let mut s = String::with_capacity(32);
        for b in m.finalize().into_bytes().iter().take(16) {
            s.push(char::from(HEX[usize::from(b >> 4)]));
            s.push(char::from(HEX[usize::from(b & 15)]));
        }
        s
    }

    /// A new nonce issued at `now`.
    pub(crate) fn issue(&self, now: Instant) -> String {
        let issued = format!(
            "{:x}",
            now.saturating_duration_since(self.epoch).as_millis()
        );
        format!("{issued}.{}", self.mac(&issued))
    }

    /// Checks a nonce at `now`.
    pub(crate) fn check(&self, nonce: &str, now: Instant) -> NonceCheck {
        let Some((issued, mac)) = nonce.split_once('.') else {
            return NonceCheck::Forged;
        };
        if issued.is_empty() || issued.len() > 16 {
            return NonceCheck::Forged;
        }
        let want = self.mac(issued);
        if !bool::from(want.as_bytes().ct_eq(mac.as_bytes())) {
            return NonceCheck::Forged;
        }
        let Ok(ms) = u64::from_str_radix(issued, 16) else {
            return NonceCheck::Forged;
        };
        let age = now
            .saturating_duration_since(self.epoch)
            .saturating_sub(Duration::from_millis(ms));
        if age > self.lifetime {
            NonceCheck::Stale
        } else {
            NonceCheck::Fresh
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fresh_stale_forged() {
        let t0 = Instant::now();
        let n = Nonces::new([7; 32], t0, Duration::from_secs(30));
        let nonce = n.issue(t0 + Duration::from_secs(5));
        assert_eq!(
            n.check(&nonce, t0 + Duration::from_secs(6)),
            NonceCheck::Fresh
        );
        assert_eq!(
            n.check(&nonce, t0 + Duration::from_secs(36)),
            NonceCheck::Stale
        );
        let other = Nonces::new([8; 32], t0, Duration::from_secs(30));
        assert_eq!(other.check(&nonce, t0), NonceCheck::Forged);
        let mut tampered = nonce.clone();
        tampered.replace_range(0..1, "f");
        assert_eq!(n.check(&tampered, t0), NonceCheck::Forged);
        for junk in ["", ".", "x.y", "zz.00", "1", "ffffffffffffffffff.00"] {
            assert_eq!(n.check(junk, t0), NonceCheck::Forged, "{junk}");
        }
    }
}

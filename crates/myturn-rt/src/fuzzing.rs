//! A fixed, non-random RNG for the fuzz bodies (`fuzz/`) and their smoke
//! tests: the sans-IO cores take their randomness injected, and fuzzing
//! must be deterministic. Never for real keys.

use rand_core::{CryptoRng, RngCore};

/// A 64-bit linear congruential generator (Knuth's MMIX constants),
/// seeded with its field. It implements [`CryptoRng`] only so that cores
/// asking for a cryptographic RNG can be fuzzed; it is not one.
#[derive(Debug)]
pub struct Counter(pub u64);

impl RngCore for Counter {
    fn next_u32(&mut self) -> u32 {
        self.next_u64() as u32
    }
    fn next_u64(&mut self) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        self.0
    }
    fn fill_bytes(&mut self, dest: &mut [u8]) {
        for b in dest {
            *b = (self.next_u64() >> 56) as u8;
        }
    }
    fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core::Error> {
        self.fill_bytes(dest);
        Ok(())
    }
}

impl CryptoRng for Counter {}

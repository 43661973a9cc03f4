//! The flood guard's settings: a token bucket's shape ([`Limit`]), an IP
//! network ([`Net`], parsed from `ADDRESS/PREFIX`) and [`FloodConfig`],
//! the part of the PBX's `Config` that [`crate::guard`] enforces.

use std::net::IpAddr;
use std::time::Duration;

/// A token bucket's shape: `rate` tokens a second, at most `burst` saved.
/// A rate of 0 turns the bucket off (unlimited).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limit {
    /// Tokens added per second; 0: no limit.
    pub rate: u32,
    /// The most tokens saved up (and the start).
    pub burst: u32,
}

impl Limit {
    /// `rate` a second with room for `burst`.
    pub const fn new(rate: u32, burst: u32) -> Limit {
        Limit { rate, burst }
    }

    /// No limit.
    pub const OFF: Limit = Limit { rate: 0, burst: 0 };

    pub(crate) fn is_off(self) -> bool {
        self.rate == 0
    }
}

/// An IP network: an address and a prefix length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Net {
    addr: IpAddr,
    prefix: u8,
}

impl Net {
    /// `addr/prefix` (the prefix capped at the address's length).
    pub fn new(addr: IpAddr, prefix: u8) -> Net {
        let max = if addr.is_ipv4() { 32 } else { 128 };
        Net {
            addr,
            prefix: prefix.min(max),
        }
    }

    /// Whether `ip` is inside (an IPv4-mapped IPv6 address counts as its
    /// IPv4 address).
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl std::str::FromStr for Net {
    type Err = String;

    /// `ADDRESS` or `ADDRESS/PREFIX` (such as `10.0.0.0/8` or `::1`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("`{s}` is not an address or ADDRESS/PREFIX (such as 10.0.0.0/8)");
        let (addr, prefix) = match s.trim().split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s.trim(), None),
        };
        let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(bad)?,
            None => max,
        };
        Ok(Net::new(addr, prefix))
    }
}

impl std::fmt::Display for Net {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.addr, self.prefix)
    }
}

/// How the flood guard is set up (part of the PBX's `Config`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FloodConfig {
    /// Datagrams a second per source, with a burst. Past it the source is
    /// blocked.
    pub requests: Limit,
    /// Answers a second to a source that has not proved a password, with a
    /// burst. Past it such a source gets no answer.
    pub answers: Limit,
    /// How long a source stays proven after its credentials passed.
    pub proven_for: Duration,
    /// Networks exempt from every limit and block.
    pub trusted: Vec<Net>,
    /// Most sources tracked at once.
    pub max_sources: usize,
}

impl Default for FloodConfig {
    /// 50 requests/s with a burst of 200; 10 answers/s with a burst of 20
    /// to unproven sources; proven for 15 minutes; nothing trusted;
    /// 100,000 sources.
    fn default() -> Self {
        FloodConfig {
            requests: Limit::new(50, 200),
            answers: Limit::new(10, 20),
            proven_for: Duration::from_secs(15 * 60),
            trusted: Vec::new(),
            max_sources: 100_000,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nets_contain_their_addresses() {
        let n = Net::new("10.1.0.0".parse().unwrap(), 16);
        assert!(n.contains("10.1.255.3".parse().unwrap()));
        assert!(!n.contains("10.2.0.1".parse().unwrap()));
        assert!(n.contains("::ffff:10.1.2.3".parse().unwrap()));
        assert!(!n.contains("2001:db8::1".parse().unwrap()));
        let all = Net::new("0.0.0.0".parse().unwrap(), 0);
        assert!(all.contains("203.0.113.9".parse().unwrap()));
        assert_eq!("10.1.0.0/16".parse::<Net>(), Ok(n));
        assert_eq!(
            "::1".parse::<Net>().map(|n| n.to_string()).as_deref(),
            Ok("::1/128")
        );
        assert!("10.0.0.0/33".parse::<Net>().is_err());
        assert!("nonsense".parse::<Net>().is_err());
        let one = Net::new("2001:db8::1".parse().unwrap(), 200);
        assert_eq!(one.to_string(), "2001:db8::1/128");
        assert!(one.contains("2001:db8::1".parse().unwrap()));
        assert!(!one.contains("2001:db8::2".parse().unwrap()));
    }
}

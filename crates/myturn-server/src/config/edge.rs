//! The values of the edge's flags (issue #26): a per-source rate limit
//! (`RATE/BURST`, or `off`) and a list of trusted networks (or `none`).

use myturn_pbx::core::{Limit, Net};

/// `RATE[/BURST]` a second (`BURST` defaults to 4 × `RATE`), or `off`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit(pub Limit);

impl std::str::FromStr for RateLimit {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("off") || s == "0" {
            return Ok(RateLimit(Limit::OFF));
        }
        let bad = || format!("`{s}` is not RATE or RATE/BURST (such as 50/200), or off");
        let (rate, burst) = match s.split_once('/') {
            Some((r, b)) => (r, Some(b)),
            None => (s, None),
        };
        let rate: u32 = rate
            .trim()
            .parse()
            .ok()
            .filter(|r| *r > 0)
            .ok_or_else(bad)?;
        let burst = match burst {
            Some(b) => b.trim().parse().ok().filter(|b| *b >= 1).ok_or_else(bad)?,
            None => rate.saturating_mul(4),
        };
        Ok(RateLimit(Limit::new(rate, burst)))
    }
}

/// Comma-separated addresses or `ADDRESS/PREFIX` ranges, or `none`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nets(pub Vec<Net>);

impl std::str::FromStr for Nets {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        if s.is_empty() || s.eq_ignore_ascii_case("none") {
            return Ok(Nets(Vec::new()));
        }
        s.split(',')
            .map(str::parse)
            .collect::<Result<_, _>>()
            .map(Nets)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_and_nets_parse_or_say_what_was_expected() {
        assert_eq!("50/200".parse(), Ok(RateLimit(Limit::new(50, 200))));
        assert_eq!("25".parse(), Ok(RateLimit(Limit::new(25, 100))));
        assert_eq!("off".parse(), Ok(RateLimit(Limit::OFF)));
        assert_eq!("0".parse(), Ok(RateLimit(Limit::OFF)));
        for bad in ["", "x", "10/0", "-1", "5/x"] {
            let e = bad.parse::<RateLimit>().unwrap_err();
            assert!(e.contains("RATE/BURST"), "{bad}: {e}");
        }
        let n: Nets = "127.0.0.0/8, ::1,192.0.2.7".parse().unwrap();
        assert_eq!(n.0.len(), 3);
        assert!(n.0[1].contains("::1".parse().unwrap()));
        assert_eq!("none".parse::<Nets>(), Ok(Nets(Vec::new())));
        assert!("10.0.0.0/40".parse::<Nets>().is_err());
    }
}

//! The brute-force guard: failed authentications counted per source IP
//! within [`Config::fail_window`], and the IPs that reached
//! [`Config::fail_limit`] ignored for [`Config::block_for`]. Counts that no
//! longer matter are forgotten every 10 s.

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::ctx::Ctx;
use crate::report::Event;

/// How often counts that no longer matter are forgotten.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(10);

/// Failed authentications from one IP.
#[derive(Debug, Default)]
struct Failures {
    times: VecDeque<Instant>,
    blocked_until: Option<Instant>,
}

/// Failures and blocks, by source IP.
#[derive(Debug)]
pub(crate) struct Blocklist {
    failures: HashMap<IpAddr, Failures>,
    next_housekeeping: Instant,
}

impl Blocklist {
    /// Nothing counted yet, at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Blocklist {
            failures: HashMap::new(),
            next_housekeeping: now + HOUSEKEEPING_EVERY,
        }
    }

    /// Whether `ip` is blocked at `now` (a block that ran out is lifted,
    /// its count started afresh).
    pub(crate) fn is_blocked(&mut self, ip: IpAddr, now: Instant) -> bool {
        match self.failures.get_mut(&ip) {
            Some(f) => match f.blocked_until {
                Some(t) if t > now => true,
                Some(_) => {
                    f.blocked_until = None;
                    f.times.clear();
                    false
                }
                None => false,
            },
            None => false,
        }
    }

    /// Counts a failed authentication by `who` from `ip`; blocks the IP
    /// past the limit.
    pub(crate) fn failed(&mut self, cx: &mut Ctx<'_>, now: Instant, ip: IpAddr, who: &str) {
        cx.sh.stats.auth_failures += 1;
        let window = cx.cfg.fail_window;
        let f = self.failures.entry(ip).or_default();
        f.times.push_back(now);
        while f
            .times
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            f.times.pop_front();
        }
        let n = f.times.len() as u32;
        tracing::info!(%ip, user = %who, failures = n, "SIP authentication failed");
        if n >= cx.cfg.fail_limit {
            f.blocked_until = Some(now + cx.cfg.block_for);
            cx.sh.stats.blocks += 1;
            tracing::warn!(%ip, failures = n, block_secs = cx.cfg.block_for.as_secs(), "SIP source blocked after repeated authentication failures");
            cx.sh.events.push_back(Event::Blocked { ip, failures: n });
        }
    }

    /// IPs blocked at `now`.
    pub(crate) fn blocked(&self, now: Instant) -> Vec<IpAddr> {
        self.failures
            .iter()
            .filter(|(_, f)| f.blocked_until.is_some_and(|t| t > now))
            .map(|(ip, _)| *ip)
            .collect()
    }

    /// When [`Blocklist::handle_timeout`] must next run.
    pub(crate) fn poll_timeout(&self) -> Instant {
        self.next_housekeeping
    }

    /// Every 10 s: forgets failure counts that no longer matter.
    pub(crate) fn handle_timeout(&mut self, cfg: &Config, now: Instant) {
        if now < self.next_housekeeping {
            return;
        }
        self.next_housekeeping = now + HOUSEKEEPING_EVERY;
        let window = cfg.fail_window;
        self.failures.retain(|_, f| {
            f.blocked_until.is_some_and(|t| t > now)
                || f.times
                    .back()
                    .is_some_and(|t| now.duration_since(*t) <= window)
        });
    }
}

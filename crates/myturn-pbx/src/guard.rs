//! The flood guard: one table of source IPs, checked before a datagram is
//! parsed, as Kamailio's `pike` and `htable` do it.
//!
//! * **Rate** ([`FloodConfig::requests`]): a token bucket per source. A
//!   source that empties it is blocked for [`Config::block_for`]; while it
//!   goes on sending above the rate the block is renewed, so a flood never
//!   gets through again by waiting the block out.
//! * **No reflection** ([`FloodConfig::answers`]): answers to a source
//!   that has not proved an account's password come from a second, small
//!   bucket; past it the source is told nothing (Kamailio's `sanity`
//!   drops, `pike` ignores). A source whose digest credentials passed is
//!   *proven* for [`FloodConfig::proven_for`] and answered freely.
//! * **Digest failures** ([`Config::fail_limit`] within
//!   [`Config::fail_window`]) block the same way, in the same table.
//! * **Trusted** networks ([`FloodConfig::trusted`]: trunks, a Kamailio in
//!   front, monitoring) skip all of it.
//!
//! A blocked source's datagram costs one hash lookup and a little
//! arithmetic, and never reaches the parser. Entries that no longer matter
//! are forgotten every 10 s; the table holds at most
//! [`FloodConfig::max_sources`] (a spoofed-source flood cannot grow it
//! without bound: sources beyond it pass unlimited, and are counted).

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use crate::config::Config;
use crate::limits::{FloodConfig, Limit};
use crate::report::{Event, Stats};

/// How often entries that no longer matter are forgotten.
const HOUSEKEEPING_EVERY: Duration = Duration::from_secs(10);

/// Why a source is blocked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum BlockReason {
    /// It sent faster than [`FloodConfig::requests`].
    Flood,
    /// [`Config::fail_limit`] failed authentications.
    AuthFailures,
}

impl BlockReason {
    /// `flood` or `auth_failures` (logs, metrics labels, the admin API).
    pub fn as_str(self) -> &'static str {
        match self {
            BlockReason::Flood => "flood",
            BlockReason::AuthFailures => "auth_failures",
        }
    }
}

/// A blocked source, as the admin view lists it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Blocked {
    /// The source IP.
    pub ip: IpAddr,
    /// Why.
    pub reason: BlockReason,
    /// When the block began (renewals keep it).
    pub since: Instant,
    /// When it ends, unless renewed.
    pub until: Instant,
    /// Datagrams dropped since.
    pub packets: u64,
    /// Their bytes.
    pub bytes: u64,
}

/// A block in force.
#[derive(Debug, Clone, Copy)]
struct Block {
    reason: BlockReason,
    since: Instant,
    until: Instant,
    packets: u64,
    bytes: u64,
}

/// What the guard knows of one source.
#[derive(Debug)]
struct Source {
    /// Request tokens left.
    tokens: f32,
    /// Answer tokens left (unproven sources).
    answers: f32,
    /// When the buckets were last filled.
    refilled: Instant,
    proven_until: Option<Instant>,
    /// Failed authentications within the window (boxed, like the block:
    /// most sources have neither, and every source costs memory; a boxed
    /// deque is one word here, a bare one four).
    #[allow(clippy::box_collection)]
    failures: Option<Box<VecDeque<Instant>>>,
    block: Option<Box<Block>>,
}

impl Source {
    fn new(f: &FloodConfig, now: Instant) -> Source {
        Source {
            tokens: f.requests.burst as f32,
            answers: f.answers.burst as f32,
            refilled: now,
            proven_until: None,
            failures: None,
            block: None,
        }
    }

    fn refill(&mut self, f: &FloodConfig, now: Instant) {
        let dt = now.saturating_duration_since(self.refilled).as_secs_f32();
        if dt <= 0.0 {
            return;
        }
        self.refilled = now;
        let fill = |v: f32, l: Limit| (v + dt * l.rate as f32).min(l.burst as f32);
        self.tokens = fill(self.tokens, f.requests);
        self.answers = fill(self.answers, f.answers);
    }

    /// Nothing left to remember at `now`.
    fn idle(&self, f: &FloodConfig, window: Duration, now: Instant) -> bool {
        self.block.is_none()
            && self.proven_until.is_none_or(|t| t <= now)
            && self
                .failures
                .as_ref()
                .and_then(|f| f.back())
                .is_none_or(|t| now.duration_since(*t) > window)
            && (f.requests.is_off() || self.tokens >= f.requests.burst as f32)
            && (f.answers.is_off() || self.answers >= f.answers.burst as f32)
    }
}

/// The table of sources.
#[derive(Debug)]
pub(crate) struct Guard {
    sources: HashMap<IpAddr, Source>,
    next_housekeeping: Instant,
}

impl Guard {
    /// Nothing known yet, at `now`.
    pub(crate) fn new(now: Instant) -> Self {
        Guard {
            sources: HashMap::new(),
            next_housekeeping: now + HOUSEKEEPING_EVERY,
        }
    }

    fn trusted(cfg: &Config, ip: IpAddr) -> bool {
        cfg.flood.trusted.iter().any(|n| n.contains(ip))
    }

    /// The entry for `ip`, made when there is room.
    fn entry(&mut self, cfg: &Config, now: Instant, ip: IpAddr) -> Option<&mut Source> {
        if self.sources.len() >= cfg.flood.max_sources && !self.sources.contains_key(&ip) {
            self.forget_idle(cfg, now);
            if self.sources.len() >= cfg.flood.max_sources {
                return None;
            }
        }
        // One lookup on the common path.
        let s = self
            .sources
            .entry(ip)
            .or_insert_with(|| Source::new(&cfg.flood, now));
        s.refill(&cfg.flood, now);
        Some(s)
    }

    /// A datagram of `len` bytes from `ip` at `now`: `true` to parse it,
    /// `false` to drop it unread (counted). Blocks a source that runs out
    /// of tokens; renews the block of one that keeps flooding.
    pub(crate) fn admit(
        &mut self,
        cfg: &Config,
        stats: &mut Stats,
        events: &mut VecDeque<Event>,
        now: Instant,
        ip: IpAddr,
        len: usize,
    ) -> bool {
        if cfg.flood.requests.is_off() && self.sources.is_empty() {
            return true; // nothing limited, nobody blocked
        }
        if Self::trusted(cfg, ip) {
            return true;
        }
        let block_for = cfg.block_for;
        let limited = !cfg.flood.requests.is_off();
        let Some(s) = self.entry(cfg, now, ip) else {
            stats.untracked += 1;
            return true;
        };
        if let Some(b) = s.block.as_mut() {
            if b.until > now {
                b.packets += 1;
                b.bytes += len as u64;
                stats.blocked_packets += 1;
                stats.blocked_bytes += len as u64;
                if limited {
                    s.tokens = (s.tokens - 1.0).max(0.0);
                }
                return false;
            }
            // The block ran out. Still sending above the rate: renewed.
            if limited && b.reason == BlockReason::Flood && s.tokens < 1.0 {
                b.until = now + block_for;
                b.packets += 1;
                b.bytes += len as u64;
                stats.blocked_packets += 1;
                stats.blocked_bytes += len as u64;
                return false;
            }
            s.block = None;
            s.failures = None;
        }
        if !limited {
            return true;
        }
        if s.tokens >= 1.0 {
            s.tokens -= 1.0;
            return true;
        }
        s.block = Some(Box::new(Block {
            reason: BlockReason::Flood,
            since: now,
            until: now + block_for,
            packets: 1,
            bytes: len as u64,
        }));
        stats.flood_blocks += 1;
        stats.blocked_packets += 1;
        stats.blocked_bytes += len as u64;
        tracing::warn!(%ip, rate = cfg.flood.requests.rate, burst = cfg.flood.requests.burst,
            block_secs = block_for.as_secs(), "SIP source blocked: flooding");
        events.push_back(Event::Flooding { ip });
        false
    }

    /// Whether an answer may go to `ip` at `now`: it is trusted, proven,
    /// or its answer bucket has a token (taken). Counts a refusal.
    pub(crate) fn may_answer(
        &mut self,
        cfg: &Config,
        stats: &mut Stats,
        now: Instant,
        ip: IpAddr,
    ) -> bool {
        if cfg.flood.answers.is_off() || Self::trusted(cfg, ip) {
            return true;
        }
        let Some(s) = self.entry(cfg, now, ip) else {
            return true;
        };
        if s.proven_until.is_some_and(|t| t > now) {
            return true;
        }
        if s.answers >= 1.0 {
            s.answers -= 1.0;
            return true;
        }
        stats.unanswered += 1;
        false
    }

    /// `ip`'s credentials passed at `now`: answered freely for a while.
    pub(crate) fn proved(&mut self, cfg: &Config, now: Instant, ip: IpAddr) {
        if Self::trusted(cfg, ip) {
            return;
        }
        let until = now + cfg.flood.proven_for;
        if let Some(s) = self.entry(cfg, now, ip) {
            s.proven_until = Some(until);
        }
    }

    /// Whether `ip` is blocked at `now`.
    pub(crate) fn is_blocked(&self, ip: IpAddr, now: Instant) -> bool {
        self.sources
            .get(&ip)
            .and_then(|s| s.block.as_ref())
            .is_some_and(|b| b.until > now)
    }

    /// Counts a failed authentication by `who` from `ip`; blocks the IP
    /// past the limit.
    pub(crate) fn failed(
        &mut self,
        cfg: &Config,
        stats: &mut Stats,
        events: &mut VecDeque<Event>,
        now: Instant,
        ip: IpAddr,
        who: &str,
    ) {
        stats.auth_failures += 1;
        if Self::trusted(cfg, ip) {
            tracing::info!(%ip, user = %who, "SIP authentication failed (trusted source)");
            return;
        }
        let window = cfg.fail_window;
        let Some(s) = self.entry(cfg, now, ip) else {
            return;
        };
        let failures = s.failures.get_or_insert_with(Box::default);
        failures.push_back(now);
        while failures
            .front()
            .is_some_and(|t| now.duration_since(*t) > window)
        {
            failures.pop_front();
        }
        let n = failures.len() as u32;
        tracing::info!(%ip, user = %who, failures = n, "SIP authentication failed");
        if n >= cfg.fail_limit && s.block.as_ref().is_none_or(|b| b.until <= now) {
            s.block = Some(Box::new(Block {
                reason: BlockReason::AuthFailures,
                since: now,
                until: now + cfg.block_for,
                packets: 0,
                bytes: 0,
            }));
            stats.blocks += 1;
            tracing::warn!(%ip, failures = n, block_secs = cfg.block_for.as_secs(), "SIP source blocked after repeated authentication failures");
            events.push_back(Event::Blocked { ip, failures: n });
        }
    }

    /// Lifts `ip`'s block (an operator's unblock); its counts start
    /// afresh. `true` if it was blocked.
    pub(crate) fn unblock(&mut self, cfg: &Config, now: Instant, ip: IpAddr) -> bool {
        let Some(s) = self.sources.get_mut(&ip) else {
            return false;
        };
        let was = s.block.take().is_some_and(|b| b.until > now);
        *s = Source::new(&cfg.flood, now);
        was
    }

    /// Sources blocked at `now`, oldest block first.
    pub(crate) fn blocked(&self, now: Instant) -> Vec<Blocked> {
        let mut v: Vec<Blocked> = self
            .sources
            .iter()
            .filter_map(|(ip, s)| {
                let b = s.block.as_deref()?;
                (b.until > now).then_some(Blocked {
                    ip: *ip,
                    reason: b.reason,
                    since: b.since,
                    until: b.until,
                    packets: b.packets,
                    bytes: b.bytes,
                })
            })
            .collect();
        v.sort_by_key(|b| (b.since, b.ip));
        v
    }

    /// How many sources are blocked at `now`.
    pub(crate) fn blocked_count(&self, now: Instant) -> usize {
        self.sources
            .values()
            .filter(|s| s.block.as_ref().is_some_and(|b| b.until > now))
            .count()
    }

    /// Sources tracked now.
    pub(crate) fn tracked(&self) -> usize {
        self.sources.len()
    }

    /// When [`Guard::handle_timeout`] must next run.
    pub(crate) fn poll_timeout(&self) -> Instant {
        self.next_housekeeping
    }

    fn forget_idle(&mut self, cfg: &Config, now: Instant) {
        let window = cfg.fail_window;
        self.sources.retain(|_, s| {
            s.refill(&cfg.flood, now);
            let lapsed = s.block.as_ref().is_some_and(|b| b.until <= now);
            let flooding = s
                .block
                .as_ref()
                .is_some_and(|b| b.reason == BlockReason::Flood)
                && s.tokens < 1.0;
            if lapsed && !flooding {
                s.block = None;
            }
            !s.idle(&cfg.flood, window, now)
        });
    }

    /// Every 10 s: forgets sources that no longer matter.
    pub(crate) fn handle_timeout(&mut self, cfg: &Config, now: Instant) {
        if now < self.next_housekeeping {
            return;
        }
        self.next_housekeeping = now + HOUSEKEEPING_EVERY;
        self.forget_idle(cfg, now);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::limits::Net;

    fn cfg(requests: Limit, answers: Limit) -> Config {
        let mut c = Config::new("127.0.0.1:5060".parse().unwrap());
        c.flood.requests = requests;
        c.flood.answers = answers;
        c
    }

    #[test]
    fn a_flood_is_blocked_and_stays_blocked_while_it_lasts() {
        let c = cfg(Limit::new(10, 20), Limit::OFF);
        let (mut st, mut ev) = (Stats::default(), VecDeque::new());
        let t0 = Instant::now();
        let mut g = Guard::new(t0);
        let ip: IpAddr = "192.0.2.7".parse().unwrap();
        let passed = (0..100)
            .filter(|_| g.admit(&c, &mut st, &mut ev, t0, ip, 100))
            .count();
        assert_eq!(passed, 20, "the burst, then nothing");
        assert_eq!(st.flood_blocks, 1);
        assert_eq!(st.blocked_packets, 80);
        assert_eq!(st.blocked_bytes, 8_000);
        assert!(matches!(ev.pop_front(), Some(Event::Flooding { .. })));
        // Still flooding (1,000/s) when the block runs out: renewed.
        let mut t = t0;
        for _ in 0..70_000 {
            t += Duration::from_millis(1);
            assert!(!g.admit(&c, &mut st, &mut ev, t, ip, 100));
        }
        assert_eq!(st.flood_blocks, 1, "renewed, not blocked again");
        let b = g.blocked(t);
        assert_eq!(b.len(), 1);
        assert_eq!(b[0].since, t0);
        assert_eq!(b[0].reason, BlockReason::Flood);
        // It stops; once the block ends, it is heard again.
        let later = t + c.block_for + Duration::from_secs(1);
        assert!(g.admit(&c, &mut st, &mut ev, later, ip, 100));
        assert!(g.blocked(later).is_empty());
        // Another source was never affected.
        assert!(g.admit(&c, &mut st, &mut ev, t0, "192.0.2.8".parse().unwrap(), 1));
    }

    #[test]
    fn trusted_sources_are_never_limited() {
        let mut c = cfg(Limit::new(1, 1), Limit::new(1, 1));
        c.flood.trusted = vec![Net::new("198.51.100.0".parse().unwrap(), 24)];
        let (mut st, mut ev) = (Stats::default(), VecDeque::new());
        let t0 = Instant::now();
        let mut g = Guard::new(t0);
        let ip: IpAddr = "198.51.100.20".parse().unwrap();
        for _ in 0..1_000 {
            assert!(g.admit(&c, &mut st, &mut ev, t0, ip, 10));
            assert!(g.may_answer(&c, &mut st, t0, ip));
            g.failed(&c, &mut st, &mut ev, t0, ip, "x");
        }
        assert!(!g.is_blocked(ip, t0));
        assert_eq!(g.tracked(), 0);
    }

    #[test]
    fn unproven_sources_get_a_few_answers_proven_ones_all() {
        let c = cfg(Limit::OFF, Limit::new(2, 5));
        let mut st = Stats::default();
        let t0 = Instant::now();
        let mut g = Guard::new(t0);
        let ip: IpAddr = "203.0.113.5".parse().unwrap();
        let n = (0..50)
            .filter(|_| g.may_answer(&c, &mut st, t0, ip))
            .count();
        assert_eq!(n, 5);
        assert_eq!(st.unanswered, 45);
        // Refills at its rate.
        let t1 = t0 + Duration::from_secs(1);
        let n = (0..50)
            .filter(|_| g.may_answer(&c, &mut st, t1, ip))
            .count();
        assert_eq!(n, 2);
        // Proven: answered freely, until it lapses.
        g.proved(&c, t1, ip);
        assert!((0..1000).all(|_| g.may_answer(&c, &mut st, t1, ip)));
        let t2 = t1 + c.flood.proven_for + Duration::from_secs(100);
        assert_eq!(
            (0..50)
                .filter(|_| g.may_answer(&c, &mut st, t2, ip))
                .count(),
            5
        );
    }

    #[test]
    fn digest_failures_block_in_the_same_table_and_unblock_lifts() {
        let c = cfg(Limit::new(100, 100), Limit::OFF);
        let (mut st, mut ev) = (Stats::default(), VecDeque::new());
        let t0 = Instant::now();
        let mut g = Guard::new(t0);
        let ip: IpAddr = "192.0.2.1".parse().unwrap();
        for _ in 0..5 {
            g.failed(&c, &mut st, &mut ev, t0, ip, "alice");
        }
        assert!(g.is_blocked(ip, t0));
        assert_eq!(g.blocked(t0)[0].reason, BlockReason::AuthFailures);
        assert!(!g.admit(&c, &mut st, &mut ev, t0, ip, 10));
        assert_eq!(g.blocked_count(t0), 1);
        assert!(g.unblock(&c, t0, ip));
        assert!(!g.unblock(&c, t0, ip));
        assert!(g.admit(&c, &mut st, &mut ev, t0, ip, 10));
        // Housekeeping forgets what no longer matters.
        let later = t0 + Duration::from_secs(30);
        g.handle_timeout(&c, later);
        assert_eq!(g.tracked(), 0);
    }

    #[test]
    fn the_table_is_bounded() {
        let mut c = cfg(Limit::new(1, 1), Limit::OFF);
        c.flood.max_sources = 100;
        let (mut st, mut ev) = (Stats::default(), VecDeque::new());
        let t0 = Instant::now();
        let mut g = Guard::new(t0);
        for i in 0..1_000u32 {
            let ip = IpAddr::from(std::net::Ipv4Addr::from(0x0a00_0000 + i));
            g.admit(&c, &mut st, &mut ev, t0, ip, 10);
        }
        assert_eq!(g.tracked(), 100);
        assert_eq!(st.untracked, 900);
    }
}

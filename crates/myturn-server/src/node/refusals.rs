//! Refused tokens, told once per client and window: the first refusal
//! from an address is logged at once, the rest are counted, and the
//! count is logged when the window closes (or the server stops). A
//! brute-force attempt costs one line a minute, not one per request.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long refusals from one client are counted before they are logged.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Clients tracked at once; past this, refusals from new ones go untold
/// (bounded memory under a spray of addresses).
const MOST: usize = 10_000;

/// Which token was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Token {
    /// The admin token (`/v1/admin/…`).
    Admin,
    /// A user's access or refresh token.
    User,
}

impl Token {
    /// As the log spells it.
    pub fn as_str(self) -> &'static str {
        match self {
            Token::Admin => "admin",
            Token::User => "user",
        }
    }
}

/// The open windows, per client and token kind.
#[derive(Debug, Default)]
pub struct Refusals {
    open: Mutex<HashMap<(IpAddr, Token), (Instant, u64)>>,
}

impl Refusals {
    /// Notes one refusal at `now`: logs it if it opens a window (closing
    /// any window past its end first).
    pub fn note(&self, ip: IpAddr, token: Token, now: Instant) {
        self.flush(now);
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some((_, n)) = open.get_mut(&(ip, token)) {
            *n += 1;
            return;
        }
        if open.len() >= MOST {
            return;
        }
        open.insert((ip, token), (now, 1));
        drop(open);
        tracing::warn!(
            security = true,
            client = %ip,
            token = token.as_str(),
            count = 1u64,
            "token refused"
        );
    }

    /// Closes the windows past their end at `now`, logging each count
    /// beyond the first refusal (already logged).
    pub fn flush(&self, now: Instant) {
        self.close(|since| now.saturating_duration_since(since) >= WINDOW);
    }

    /// Closes every window (the server stops).
    pub fn flush_all(&self) {
        self.close(|_| true);
    }

    fn close(&self, done: impl Fn(Instant) -> bool) {
        let mut closed = Vec::new();
        self.open.lock().unwrap_or_else(|e| e.into_inner()).retain(
            |&(ip, token), &mut (since, n)| {
                let keep = !done(since);
                if !keep && n > 1 {
                    closed.push((ip, token, n, since));
                }
                keep
            },
        );
        for (ip, token, n, since) in closed {
            tracing::warn!(
                security = true,
                client = %ip,
                token = token.as_str(),
                count = n,
                window_secs = since.elapsed().as_secs().min(WINDOW.as_secs()),
                "tokens refused"
            );
        }
    }

    /// Tests: refusals counted in the open window of `ip`'s `token`.
    pub fn counted(&self, ip: IpAddr, token: Token) -> u64 {
        self.open
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&(ip, token))
            .map_or(0, |&(_, n)| n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_window_per_client_and_kind() {
        let r = Refusals::default();
        let (a, b): (IpAddr, IpAddr) = ("192.0.2.1".parse().unwrap(), "192.0.2.2".parse().unwrap());
        let t0 = Instant::now();
        for _ in 0..5 {
            r.note(a, Token::Admin, t0);
        }
        r.note(a, Token::User, t0);
        r.note(b, Token::Admin, t0);
        assert_eq!(r.counted(a, Token::Admin), 5);
        assert_eq!(r.counted(a, Token::User), 1);
        assert_eq!(r.counted(b, Token::Admin), 1);
        // Past the window the count is told and a new window opens.
        r.note(a, Token::Admin, t0 + WINDOW);
        assert_eq!(r.counted(a, Token::Admin), 1);
        assert_eq!(r.counted(b, Token::Admin), 0);
        r.flush_all();
        assert_eq!(r.counted(a, Token::Admin), 0);
    }
}

//! Digest state for one challenger, as a UAC keeps it: the challenge a
//! 401 or 407 carried, and the nonce count of the answers to it.

use rsip::headers::{self as h, UntypedHeader};
use rsip::Header;

use crate::digest::{self, Challenge};
use crate::msg::Message;

/// The challenge of a registrar (401) or proxy (407) and its nonce count.
#[derive(Debug, Clone)]
pub(super) struct Auth {
    challenge: Challenge,
    proxy: bool,
    nc: u32,
}

impl Auth {
    /// The strongest challenge of a 401 (`WWW-Authenticate`) or, for any
    /// other status, a 407 (`Proxy-Authenticate`); `None` when it has none
    /// this crate can answer.
    pub(super) fn from_challenge(resp: &Message) -> Option<Auth> {
        let code = resp.status().unwrap_or(0);
        let name = if code == 401 {
            "WWW-Authenticate"
        } else {
            "Proxy-Authenticate"
        };
        Challenge::choose(resp.headers(name)).map(|challenge| Auth {
            challenge,
            proxy: code == 407,
            nc: 0,
        })
    }

    /// `stale=true`: the nonce expired, the credentials were right.
    pub(super) fn stale(&self) -> bool {
        self.challenge.stale
    }

    /// The next (Proxy-)Authorization header for `method uri`.
    pub(super) fn header(
        &mut self,
        user: &str,
        password: &str,
        method: &str,
        uri: &str,
        cnonce: &str,
    ) -> Header {
        self.nc += 1;
        let v = digest::respond(
            &self.challenge,
            user,
            password,
            method,
            uri,
            cnonce,
            self.nc,
        )
        .to_header_value();
        if self.proxy {
            h::ProxyAuthorization::new(v).into()
        } else {
            h::Authorization::new(v).into()
        }
    }
}

//! How a request presents its credentials: the `Authorization: Bearer`
//! header, or for WebSockets opened by browsers (which cannot set
//! headers) the `bearer.<token>` subprotocol; and the admin token check.
//! A token in the URL is never looked at.

use axum::http::{header, HeaderMap};
use myturn_wire::WS_BEARER_PREFIX;

use super::error::ApiError;
use crate::core::tokens::{AdminToken, Jwt};

/// Where a request may present its token.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Carrier {
    /// `Authorization: Bearer <token>` only (HTTP requests).
    Header,
    /// The header, or the `bearer.<token>` WebSocket subprotocol (for
    /// browsers, which cannot set headers on a WebSocket).
    HeaderOrSubprotocol,
}

/// The token a request presents. A token in the URL is never looked at.
pub(crate) fn presented_token(headers: &HeaderMap, carrier: Carrier) -> Result<String, ApiError> {
    if let Some(v) = headers.get(header::AUTHORIZATION) {
        return v
            .to_str()
            .ok()
            .and_then(bearer)
            .map(str::to_owned)
            .ok_or_else(|| {
                ApiError::Unauthorized("the Authorization header must be `Bearer <token>`".into())
            });
    }
    let missing = match carrier {
        Carrier::Header => {
            return Err(ApiError::Unauthorized(
                "missing `Authorization: Bearer <token>` header".into(),
            ))
        }
        Carrier::HeaderOrSubprotocol => "missing credentials: send `Authorization: Bearer <token>` or offer the `bearer.<token>` subprotocol",
    };
    headers
        .get_all(header::SEC_WEBSOCKET_PROTOCOL)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .find_map(|p| p.trim().strip_prefix(WS_BEARER_PREFIX).map(str::to_owned))
        .filter(|t| !t.is_empty())
        .ok_or_else(|| ApiError::Unauthorized(missing.into()))
}

/// Checks an admin request: refused as disabled when no admin token is
/// configured (before asking for one that cannot work), else the
/// presented token must match.
pub(crate) fn check_admin(
    admin: Option<&AdminToken>,
    headers: &HeaderMap,
    carrier: Carrier,
) -> Result<(), ApiError> {
    let Some(admin) = admin else {
        return Err(ApiError::Forbidden(
            "the admin API is disabled: start the server with MYTURN_ADMIN_TOKEN or --admin-token-file".into(),
        ));
    };
    if admin.matches(&presented_token(headers, carrier)?) {
        Ok(())
    } else {
        Err(ApiError::Unauthorized("invalid admin token".into()))
    }
}

/// Extracts the token of an `Authorization: Bearer <token>` header value.
pub fn bearer(value: &str) -> Option<&str> {
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim())
        .filter(|t| !t.is_empty())
}

/// Entry point shared by the `jwt` fuzz target and its smoke test:
/// verifying arbitrary bytes as a token must never panic, and must never
/// accept anything not signed with the key.
pub(crate) fn fuzz_verify(data: &[u8]) {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(0);
    let jwt = Jwt::new(&mut rng, 60);
    if let Ok(s) = std::str::from_utf8(data) {
        assert!(jwt.verify(s, 0).is_err(), "an unsigned token was accepted");
        let _ = bearer(s);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{rngs::StdRng, SeedableRng};

    use crate::clock::unix_now as now;

    #[test]
    fn fuzz_body_survives_token_like_inputs() {
        let mut rng = StdRng::seed_from_u64(3);
        let jwt = Jwt::new(&mut rng, 60);
        let good = jwt.issue("alice", 1, 1, now());
        let bytes = good.as_bytes();
        for i in 0..bytes.len() {
            for b in [b'.', b'A', b'=', 0xff, b'{'] {
                let mut v = bytes.to_vec();
                v[i] = b;
                fuzz_verify(&v);
                fuzz_verify(&v[..i]);
            }
        }
    }

    #[test]
    fn admin_token_rules() {
        assert!(AdminToken::new("short").is_err());
        let t = AdminToken::new("0123456789abcdef").unwrap();
        assert!(t.matches("0123456789abcdef"));
        assert!(!t.matches("0123456789abcdeF"));
        assert!(!t.matches(""));
        assert_eq!(bearer("Bearer abc"), Some("abc"));
        assert_eq!(bearer("bearer  abc "), Some("abc"));
        assert_eq!(bearer("Basic abc"), None);
        assert_eq!(bearer("Bearer "), None);
    }

    #[test]
    fn token_from_header_or_subprotocol() {
        use Carrier::*;
        let mut h = HeaderMap::new();
        assert!(presented_token(&h, HeaderOrSubprotocol).is_err());
        h.insert(
            header::SEC_WEBSOCKET_PROTOCOL,
            "myturn.v1, bearer.abc.def.ghi".parse().unwrap(),
        );
        assert_eq!(
            presented_token(&h, HeaderOrSubprotocol).unwrap(),
            "abc.def.ghi"
        );
        assert!(presented_token(&h, Header).is_err());
        h.insert(header::AUTHORIZATION, "Bearer xyz".parse().unwrap());
        assert_eq!(presented_token(&h, HeaderOrSubprotocol).unwrap(), "xyz");
        h.insert(header::AUTHORIZATION, "Basic xyz".parse().unwrap());
        assert!(presented_token(&h, HeaderOrSubprotocol).is_err());
    }
}

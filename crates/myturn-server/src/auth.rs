//! Credentials: HS256 JWT access tokens, rotating refresh tokens grouped in
//! session families, and the admin bearer token.
//!
//! The JWT signing key is 256 random bits made at start-up and never
//! written anywhere: no user data outlives the process, tokens included.
//! Refresh tokens are 256 random bits; only their SHA-256 is kept.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use std::collections::HashMap;
use subtle::ConstantTimeEq;

use axum::http::{header, HeaderMap};
use myturn_wire::WS_BEARER_PREFIX;

use crate::error::ApiError;
use crate::registry::UserId;

/// The `aud` claim of every access token.
pub const AUDIENCE: &str = "myturn";

/// Claims of an access token.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Claims {
    /// The nickname.
    pub sub: String,
    /// The registration ([`UserId`]) the token belongs to.
    pub uid: UserId,
    /// The session family (refresh-token lineage).
    pub sid: u64,
    /// Issued at, Unix seconds.
    pub iat: u64,
    /// Expires at, Unix seconds.
    pub exp: u64,
    /// Audience, always [`AUDIENCE`].
    pub aud: String,
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    /// Expired.
    #[error("the access token has expired; refresh it with POST /v1/session/refresh")]
    Expired,
    /// Bad signature, wrong audience, malformed.
    #[error("the access token is invalid")]
    Invalid,
    /// Unknown refresh token.
    #[error("unknown refresh token")]
    UnknownRefresh,
    /// A refresh token presented twice: the whole family is revoked.
    #[error("this refresh token was already used; the session has been revoked")]
    RefreshReused,
}

/// Signs and checks access tokens.
pub struct Jwt {
    enc: EncodingKey,
    dec: DecodingKey,
    validation: Validation,
    /// Access-token lifetime in seconds.
    pub ttl_secs: u64,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("ttl_secs", &self.ttl_secs)
            .finish_non_exhaustive()
    }
}

impl Jwt {
    /// A signer with a fresh random key.
    pub fn new(rng: &mut dyn RngCore, ttl_secs: u64) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        let mut validation = Validation::new(Algorithm::HS256);
        validation.set_audience(&[AUDIENCE]);
        validation.set_required_spec_claims(&["exp", "sub", "aud"]);
        validation.leeway = 0;
        // Expiry is checked against the caller's clock in `verify`.
        validation.validate_exp = false;
        Jwt {
            enc: EncodingKey::from_secret(&key),
            dec: DecodingKey::from_secret(&key),
            validation,
            ttl_secs,
        }
    }

    /// Mints a token issued at `now_unix`.
    pub fn issue(&self, name: &str, uid: UserId, sid: u64, now_unix: u64) -> String {
        let claims = Claims {
            sub: name.to_owned(),
            uid,
            sid,
            iat: now_unix,
            exp: now_unix + self.ttl_secs,
            aud: AUDIENCE.to_owned(),
        };
        // Encoding HS256 with a byte key cannot fail for these claims.
        jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &self.enc).unwrap_or_default()
    }

    /// Checks signature and audience, and expiry against `now_unix` (the
    /// caller's clock, not the library's).
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Claims, TokenError> {
        match jsonwebtoken::decode::<Claims>(token, &self.dec, &self.validation) {
            // As jsonwebtoken with no leeway: valid through `exp` itself.
            Ok(d) if d.claims.exp < now_unix => Err(TokenError::Expired),
            Ok(d) => Ok(d.claims),
            Err(e) if matches!(e.kind(), jsonwebtoken::errors::ErrorKind::ExpiredSignature) => {
                Err(TokenError::Expired)
            }
            Err(_) => Err(TokenError::Invalid),
        }
    }
}

struct RefreshEntry {
    family: u64,
    spent: bool,
}

/// Session families and their refresh tokens.
#[derive(Default)]
pub struct Sessions {
    tokens: HashMap<[u8; 32], RefreshEntry>,
    /// family → owner; a family missing here is revoked.
    families: HashMap<u64, UserId>,
    next_family: u64,
    /// Times a spent refresh token was presented again.
    pub reuse_detected: u64,
}

impl std::fmt::Debug for Sessions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sessions")
            .field("families", &self.families.len())
            .field("tokens", &self.tokens.len())
            .finish()
    }
}

fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

impl Sessions {
    /// Opens a new family for `uid`; returns (family, first refresh token).
    pub fn open(&mut self, uid: UserId, rng: &mut dyn RngCore) -> (u64, String) {
        self.next_family += 1;
        let family = self.next_family;
        self.families.insert(family, uid);
        (family, self.mint(family, rng))
    }

    fn mint(&mut self, family: u64, rng: &mut dyn RngCore) -> String {
        let mut raw = [0u8; 32];
        rng.fill_bytes(&mut raw);
        let token = URL_SAFE_NO_PAD.encode(raw);
        self.tokens.insert(
            hash(&token),
            RefreshEntry {
                family,
                spent: false,
            },
        );
        token
    }

    /// The family a refresh token belongs to (spent or not).
    pub fn family_of(&self, token: &str) -> Option<u64> {
        self.tokens.get(&hash(token)).map(|e| e.family)
    }

    /// `true` if the family is live and belongs to `uid`.
    pub fn is_live(&self, family: u64, uid: UserId) -> bool {
        self.families.get(&family) == Some(&uid)
    }

    /// Spends a refresh token and mints its successor. Presenting a spent
    /// token revokes the whole family (theft detection).
    pub fn rotate(
        &mut self,
        token: &str,
        rng: &mut dyn RngCore,
    ) -> Result<(UserId, u64, String), TokenError> {
        let h = hash(token);
        let entry = self.tokens.get_mut(&h).ok_or(TokenError::UnknownRefresh)?;
        let family = entry.family;
        if entry.spent {
            self.reuse_detected += 1;
            self.revoke(family);
            return Err(TokenError::RefreshReused);
        }
        entry.spent = true;
        let uid = *self
            .families
            .get(&family)
            .ok_or(TokenError::UnknownRefresh)?;
        let next = self.mint(family, rng);
        Ok((uid, family, next))
    }

    /// Revokes one family: all its tokens stop working.
    pub fn revoke(&mut self, family: u64) {
        self.families.remove(&family);
        self.tokens.retain(|_, e| e.family != family);
    }

    /// Revokes every family of a user (logout, kick, expiry).
    pub fn revoke_user(&mut self, uid: UserId) {
        let gone: Vec<u64> = self
            .families
            .iter()
            .filter(|(_, &u)| u == uid)
            .map(|(&f, _)| f)
            .collect();
        for f in gone {
            self.revoke(f);
        }
    }
}

/// The admin bearer token, compared in constant time.
#[derive(Clone)]
pub struct AdminToken([u8; 32]);

impl std::fmt::Debug for AdminToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AdminToken(<redacted>)")
    }
}

impl AdminToken {
    /// Shortest accepted admin token.
    pub const MIN_LEN: usize = 16;

    /// Wraps a configured token; refuses short ones.
    pub fn new(token: &str) -> Result<Self, String> {
        let t = token.trim();
        if t.len() < Self::MIN_LEN {
            return Err(format!(
                "the admin token must be at least {} characters",
                Self::MIN_LEN
            ));
        }
        Ok(AdminToken(hash(t)))
    }

    /// Constant-time check.
    pub fn matches(&self, presented: &str) -> bool {
        bool::from(self.0.ct_eq(&hash(presented)))
    }
}

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
#[doc(hidden)]
pub fn fuzz_verify(data: &[u8]) {
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

    fn now() -> u64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs()
    }

    #[test]
    fn tokens_round_trip_and_expire() {
        let mut rng = StdRng::seed_from_u64(1);
        let jwt = Jwt::new(&mut rng, 60);
        let t = jwt.issue("alice", 7, 3, now());
        let c = jwt.verify(&t, now()).unwrap();
        assert_eq!(
            (c.sub.as_str(), c.uid, c.sid, c.aud.as_str()),
            ("alice", 7, 3, AUDIENCE)
        );
        assert_eq!(c.exp - c.iat, 60);
        let old = jwt.issue("alice", 7, 3, now() - 120);
        assert_eq!(jwt.verify(&old, now()), Err(TokenError::Expired));
        let other = Jwt::new(&mut rng, 60);
        assert_eq!(other.verify(&t, now()), Err(TokenError::Invalid));
        assert_eq!(jwt.verify("not.a.jwt", now()), Err(TokenError::Invalid));
        // Tampered payload.
        let mut parts: Vec<&str> = t.split('.').collect();
        let forged = URL_SAFE_NO_PAD
            .encode(br#"{"sub":"bob","uid":8,"sid":3,"iat":1,"exp":99999999999,"aud":"myturn"}"#);
        parts[1] = &forged;
        assert_eq!(
            jwt.verify(&parts.join("."), now()),
            Err(TokenError::Invalid)
        );
    }

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
    fn alg_none_is_refused() {
        let mut rng = StdRng::seed_from_u64(1);
        let jwt = Jwt::new(&mut rng, 60);
        let h = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        let p = URL_SAFE_NO_PAD.encode(format!(
            r#"{{"sub":"a","uid":1,"sid":1,"iat":1,"exp":{},"aud":"myturn"}}"#,
            now() + 100
        ));
        assert_eq!(
            jwt.verify(&format!("{h}.{p}."), now()),
            Err(TokenError::Invalid)
        );
    }

    #[test]
    fn refresh_rotates_and_reuse_revokes_the_family() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut s = Sessions::default();
        let (fam, r1) = s.open(42, &mut rng);
        let (uid, fam2, r2) = s.rotate(&r1, &mut rng).unwrap();
        assert_eq!((uid, fam2), (42, fam));
        assert!(s.is_live(fam, 42));
        assert!(!s.is_live(fam, 43));
        // r1 again: theft. The family dies, r2 with it.
        assert_eq!(
            s.rotate(&r1, &mut rng).unwrap_err(),
            TokenError::RefreshReused
        );
        assert!(!s.is_live(fam, 42));
        assert_eq!(
            s.rotate(&r2, &mut rng).unwrap_err(),
            TokenError::UnknownRefresh
        );
        assert_eq!(s.reuse_detected, 1);
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

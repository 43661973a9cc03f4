//! Access tokens: HS256 JWTs, signed with a key made at start-up.
//!
//! The signing key is 256 random bits never written anywhere: no user
//! data outlives the process, tokens included. Checking a token needs no
//! state, so a store checks it before taking any lock; expiry is checked
//! against the caller's clock, not the library's.

use jsonwebtoken::{Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::RngCore;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;

use super::state::UserId;

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

/// Why a configured admin token is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AdminTokenError {
    /// Shorter than the minimum.
    #[error("the admin token must be at least {0} characters")]
    TooShort(usize),
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
    pub fn new(token: &str) -> Result<Self, AdminTokenError> {
        let t = token.trim();
        if t.len() < Self::MIN_LEN {
            return Err(AdminTokenError::TooShort(Self::MIN_LEN));
        }
        Ok(AdminToken(sha256(t)))
    }

    /// Constant-time check.
    pub fn matches(&self, presented: &str) -> bool {
        bool::from(self.0.ct_eq(&sha256(presented)))
    }
}

fn sha256(s: &str) -> [u8; 32] {
    use sha2::{Digest, Sha256};
    Sha256::digest(s.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use base64::Engine as _;
    use rand::{rngs::StdRng, SeedableRng};

    use crate::clock::unix_now as now;

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
}

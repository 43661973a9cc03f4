//! Access tokens: HS256 JWTs.
//!
//! By default the signing key is 256 random bits made at start-up and
//! never written anywhere: no user data outlives the process, tokens
//! included. Nodes that share a state store share keys instead
//! (`--jwt-key-file`, see [`Jwt::from_keys`]): the first key signs, and
//! the others are still accepted (rotation), each token naming its key
//! (`kid`). Checking a token needs no state, so a store checks it before
//! taking any lock; expiry is checked against the caller's clock, not the
//! library's.

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
    RefreshReused {
        /// Whose session it was (for the log; empty if they are gone).
        user: String,
    },
}

/// Signs and checks access tokens.
pub struct Jwt {
    /// The signing key and its id.
    enc: (EncodingKey, Option<String>),
    /// Every key accepted, by id (the signing one first).
    dec: Vec<(Option<String>, DecodingKey)>,
    validation: Validation,
    /// Access-token lifetime in seconds.
    pub ttl_secs: u64,
}

impl std::fmt::Debug for Jwt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Jwt")
            .field("ttl_secs", &self.ttl_secs)
            .field("keys", &self.dec.len())
            .finish_non_exhaustive()
    }
}

/// Why the shared keys are refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// No key at all.
    #[error("no key: give at least one line of 32 bytes or more (such as 64 hex characters)")]
    Empty,
    /// A key shorter than 32 bytes.
    #[error("key {0} is shorter than 32 bytes; use 64 hex characters (32 random bytes) or more")]
    Short(usize),
}

/// The shortest shared key, in bytes.
pub const MIN_KEY_LEN: usize = 32;

fn validation() -> Validation {
    let mut validation = Validation::new(Algorithm::HS256);
    validation.set_audience(&[AUDIENCE]);
    validation.set_required_spec_claims(&["exp", "sub", "aud"]);
    validation.leeway = 0;
    // Expiry is checked against the caller's clock in `verify`.
    validation.validate_exp = false;
    validation
}

/// A key's id: the first 8 hex digits of its SHA-256.
fn kid(key: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(key)
        .iter()
        .take(4)
        .map(|b| format!("{b:02x}"))
        .collect()
}

impl Jwt {
    /// A signer with a fresh random key (one node, nothing shared).
    pub fn new(rng: &mut dyn RngCore, ttl_secs: u64) -> Self {
        let mut key = [0u8; 32];
        rng.fill_bytes(&mut key);
        Jwt {
            enc: (EncodingKey::from_secret(&key), None),
            dec: vec![(None, DecodingKey::from_secret(&key))],
            validation: validation(),
            ttl_secs,
        }
    }

    /// A signer from shared keys: the first signs, every one is accepted
    /// (keep an old key listed until its tokens expired: `ttl_secs`).
    pub fn from_keys(keys: &[Vec<u8>], ttl_secs: u64) -> Result<Self, KeyError> {
        let first = keys.first().ok_or(KeyError::Empty)?;
        if let Some(i) = keys.iter().position(|k| k.len() < MIN_KEY_LEN) {
            return Err(KeyError::Short(i + 1));
        }
        Ok(Jwt {
            enc: (EncodingKey::from_secret(first), Some(kid(first))),
            dec: keys
                .iter()
                .map(|k| (Some(kid(k)), DecodingKey::from_secret(k)))
                .collect(),
            validation: validation(),
            ttl_secs,
        })
    }

    /// The keys of a key file: one per line, blank lines and `#` comments
    /// skipped; each line's bytes are the key (64 hex characters are 64
    /// bytes of key, which is fine).
    pub fn parse_keys(text: &str) -> Vec<Vec<u8>> {
        text.lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(|l| l.as_bytes().to_vec())
            .collect()
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
        let mut header = Header::new(Algorithm::HS256);
        header.kid = self.enc.1.clone();
        // Encoding HS256 with a byte key cannot fail for these claims.
        jsonwebtoken::encode(&header, &claims, &self.enc.0).unwrap_or_default()
    }

    /// Checks signature and audience, and expiry against `now_unix` (the
    /// caller's clock, not the library's).
    pub fn verify(&self, token: &str, now_unix: u64) -> Result<Claims, TokenError> {
        let kid = jsonwebtoken::decode_header(token)
            .map_err(|_| TokenError::Invalid)?
            .kid;
        let key = self
            .dec
            .iter()
            .find(|(k, _)| *k == kid)
            .map(|(_, d)| d)
            .ok_or(TokenError::Invalid)?;
        match jsonwebtoken::decode::<Claims>(token, key, &self.validation) {
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
    fn shared_keys_rotate() {
        let old = b"0123456789abcdef0123456789abcdef-old".to_vec();
        let new = b"0123456789abcdef0123456789abcdef-new".to_vec();
        let before = Jwt::from_keys(std::slice::from_ref(&old), 60).unwrap();
        let after = Jwt::from_keys(&[new.clone(), old.clone()], 60).unwrap();
        let t_old = before.issue("alice", 1, 1, now());
        let t_new = after.issue("alice", 1, 1, now());
        // The rotated node signs with the new key and still takes the old.
        assert!(after.verify(&t_old, now()).is_ok());
        assert!(after.verify(&t_new, now()).is_ok());
        // A node not rotated yet refuses the new key's tokens.
        assert_eq!(before.verify(&t_new, now()), Err(TokenError::Invalid));
        // Once the old key is dropped, its tokens die.
        let later = Jwt::from_keys(&[new], 60).unwrap();
        assert_eq!(later.verify(&t_old, now()), Err(TokenError::Invalid));
        assert_eq!(
            Jwt::from_keys(&[b"short".to_vec()], 60).unwrap_err(),
            KeyError::Short(1)
        );
        assert_eq!(Jwt::from_keys(&[], 60).unwrap_err(), KeyError::Empty);
        assert_eq!(
            Jwt::parse_keys("# rotated 2026-12-01\nAAAA\n\n  BBBB  \n"),
            vec![b"AAAA".to_vec(), b"BBBB".to_vec()]
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

//! Session families and their rotating refresh tokens.
//!
//! A registration opens a family; each refresh spends its token and mints
//! the next one. Refresh tokens are 256 random bits, kept only as their
//! SHA-256. A spent token presented again means it was stolen (or the
//! thief already used it): the whole family is revoked, whichever of the
//! two holds the live token.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use rand::RngCore;
use sha2::{Digest, Sha256};

use crate::core::state::{RefreshEntry, State, UserId};
use crate::core::tokens::TokenError;

/// The SHA-256 of a token, as refresh tokens are kept.
pub(crate) fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// Opens a new family for `uid`; returns (family, first refresh token).
pub(crate) fn open(st: &mut dyn State, uid: UserId, rng: &mut dyn RngCore) -> (u64, String) {
    let family = st.open_family(uid);
    (family, mint(st, family, rng))
}

fn mint(st: &mut dyn State, family: u64, rng: &mut dyn RngCore) -> String {
    let mut raw = [0u8; 32];
    rng.fill_bytes(&mut raw);
    let token = URL_SAFE_NO_PAD.encode(raw);
    st.put_refresh_token(
        hash(&token),
        RefreshEntry {
            family,
            spent: false,
        },
    );
    token
}

/// `true` if the family is live and belongs to `uid`.
pub(crate) fn is_live(st: &dyn State, family: u64, uid: UserId) -> bool {
    st.family_owner(family) == Some(uid)
}

/// What spending a refresh token did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Rotated {
    /// Spent: the successor, for `uid` in `family`.
    Next {
        /// The family's owner.
        uid: UserId,
        /// The family.
        family: u64,
        /// The new refresh token.
        token: String,
    },
    /// Refused; `revoked` names the family a reuse revoked.
    Refused {
        /// Why.
        error: TokenError,
        /// The family revoked by a reuse.
        revoked: Option<u64>,
    },
}

/// Spends a refresh token and mints its successor. Presenting a spent
/// token revokes the whole family (theft detection).
pub(crate) fn rotate(st: &mut dyn State, token: &str, rng: &mut dyn RngCore) -> Rotated {
    let h = hash(token);
    let refused = |error, revoked| Rotated::Refused { error, revoked };
    let Some(entry) = st.refresh_token(&h) else {
        return refused(TokenError::UnknownRefresh, None);
    };
    if entry.spent {
        let user = st
            .family_owner(entry.family)
            .and_then(|u| st.user(u))
            .map(|u| u.name.clone())
            .unwrap_or_default();
        st.close_family(entry.family);
        return refused(TokenError::RefreshReused { user }, Some(entry.family));
    }
    st.put_refresh_token(
        h,
        RefreshEntry {
            spent: true,
            ..entry
        },
    );
    let Some(uid) = st.family_owner(entry.family) else {
        return refused(TokenError::UnknownRefresh, None);
    };
    Rotated::Next {
        uid,
        family: entry.family,
        token: mint(st, entry.family, rng),
    }
}

/// Revokes every family of a user (logout, kick, expiry).
pub(crate) fn revoke_user(st: &mut dyn State, uid: UserId) {
    for f in st.families_of(uid) {
        st.close_family(f);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::state::MemState;
    use rand::{rngs::StdRng, SeedableRng};

    #[test]
    fn refresh_rotates_and_reuse_revokes_the_family() {
        let mut rng = StdRng::seed_from_u64(2);
        let mut s = MemState::default();
        let (fam, r1) = open(&mut s, 42, &mut rng);
        let Rotated::Next {
            uid,
            family: fam2,
            token: r2,
        } = rotate(&mut s, &r1, &mut rng)
        else {
            panic!("not rotated");
        };
        assert_eq!((uid, fam2), (42, fam));
        assert!(is_live(&s, fam, 42));
        assert!(!is_live(&s, fam, 43));
        // r1 again: theft. The family dies, r2 with it.
        assert_eq!(
            rotate(&mut s, &r1, &mut rng),
            Rotated::Refused {
                error: TokenError::RefreshReused {
                    user: String::new()
                },
                revoked: Some(fam)
            }
        );
        assert!(!is_live(&s, fam, 42));
        assert_eq!(
            rotate(&mut s, &r2, &mut rng),
            Rotated::Refused {
                error: TokenError::UnknownRefresh,
                revoked: None
            }
        );
    }
}

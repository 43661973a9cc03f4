//! Pairing as a user asks for it: set a status, find the partner.

use std::time::Duration;

use myturn_wire::{
    normalize_interests, validate_media_key, MeResponse, PeerResponse, RequestedStatus, Status,
};

use super::account::me;
use crate::core::context::Ctx;
use crate::core::error::CoreError;
use crate::core::rules::pairs;
use crate::core::state::UserId;
use crate::core::usecase::UseCase;

/// `PUT /v1/me/status`: `ready` (with the next call's media key and,
/// optionally, interests), `ready_to_talk` or `busy`. See `docs/api.md`
/// for the flow.
#[derive(Debug, Clone)]
pub struct SetStatus {
    /// Who.
    pub uid: UserId,
    /// The status asked for.
    pub status: RequestedStatus,
    /// With `ready`: the fingerprint of the next call's media key.
    pub media_key: Option<String>,
    /// With `ready`: new interests (`None`: keep this session's).
    pub interests: Option<Interests>,
}

/// Interests as a `ready` gives them (not yet normalised).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Interests {
    /// The tags, as typed.
    pub tags: Vec<String>,
    /// Seconds to wait for a shared one, if less than the server's.
    pub wait_secs: Option<u64>,
    /// Never fall back to the plain draw.
    pub only: bool,
}

impl SetStatus {
    /// A status change without interests.
    pub fn to(uid: UserId, status: RequestedStatus) -> Self {
        SetStatus {
            uid,
            status,
            media_key: None,
            interests: None,
        }
    }
}

/// Normalises and checks a `ready`'s interests against the rule and the
/// operator's list; answers them with the wait to use.
fn accept(cx: &Ctx<'_>, i: Interests) -> Result<(Vec<String>, Duration, bool), CoreError> {
    let tags = normalize_interests(&i.tags)?;
    if let Some(bad) = tags.iter().find(|t| cx.rules.blocklist.refuses(t)) {
        return Err(CoreError::InterestRefused(bad.clone()));
    }
    let most = cx.cfg().interest_wait;
    let wait = i
        .wait_secs
        .map_or(most, |s| Duration::from_secs(s).min(most));
    Ok((tags, wait, i.only))
}

impl UseCase for SetStatus {
    type Output = MeResponse;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<MeResponse, CoreError> {
        let SetStatus {
            uid,
            status,
            media_key,
            interests,
        } = self;
        if let Some(key) = &media_key {
            if status != RequestedStatus::Ready {
                return Err(CoreError::InvalidBody(
                    "media_key goes with \"ready\" only".into(),
                ));
            }
            validate_media_key(key).map_err(CoreError::InvalidMediaKey)?;
        }
        let interests = match interests {
            Some(_) if status != RequestedStatus::Ready => {
                return Err(CoreError::InvalidBody(
                    "interests go with \"ready\" only".into(),
                ))
            }
            Some(i) => Some(accept(cx, i)?),
            None => None,
        };
        let was = cx.st.user(uid).ok_or(CoreError::UserGone)?.status;
        if status == RequestedStatus::Ready {
            // A new draw: the last call's key never carries over.
            cx.st.user_mut(uid).ok_or(CoreError::UserGone)?.media_key = media_key;
        }
        if let Some((tags, wait, only)) = interests {
            // Already waiting: moves to the new draws (and may be paired).
            pairs::set_interests(cx, uid, tags, wait, only)?;
        }
        if !(was == Status::Ready && status == RequestedStatus::Ready) {
            pairs::set_status(cx, uid, status.into())?;
        }
        me(cx, uid)
    }
}

/// `GET /v1/me/peer`: the partner once paired, `None` while waiting.
#[derive(Debug, Clone)]
pub struct PeerOf {
    /// Who asks.
    pub uid: UserId,
}

impl UseCase for PeerOf {
    type Output = Option<PeerResponse>;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<Option<PeerResponse>, CoreError> {
        pairs::peer_of(cx.st, self.uid)
    }
}

//! Pairing as a user asks for it: set a status, find the partner.

use myturn_wire::{validate_media_key, MeResponse, PeerResponse, RequestedStatus};

use super::account::me;
use crate::core::context::Ctx;
use crate::core::error::CoreError;
use crate::core::rules::pairs;
use crate::core::state::UserId;
use crate::core::usecase::UseCase;

/// `PUT /v1/me/status`: `ready` (with the next call's media key),
/// `ready_to_talk` or `busy`. See `docs/api.md` for the flow.
#[derive(Debug, Clone)]
pub struct SetStatus {
    /// Who.
    pub uid: UserId,
    /// The status asked for.
    pub status: RequestedStatus,
    /// With `ready`: the fingerprint of the next call's media key.
    pub media_key: Option<String>,
}

impl UseCase for SetStatus {
    type Output = MeResponse;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<MeResponse, CoreError> {
        let SetStatus {
            uid,
            status,
            media_key,
        } = self;
        if let Some(key) = &media_key {
            if status != RequestedStatus::Ready {
                return Err(CoreError::InvalidBody(
                    "media_key goes with \"ready\" only".into(),
                ));
            }
            validate_media_key(key).map_err(CoreError::InvalidMediaKey)?;
        }
        if status == RequestedStatus::Ready {
            // A new draw: the last call's key never carries over.
            cx.st.user_mut(uid).ok_or(CoreError::UserGone)?.media_key = media_key;
        }
        pairs::set_status(cx, uid, status.into())?;
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

//! The lobby chat: lines and typing indicators among everyone waiting
//! (status `ready`: the pool and the waiting room), and the admins.

use myturn_wire::{validate_text, ServerEvent, LOBBY_MAX_LEN};

use super::account::limit;
use crate::core::context::Ctx;
use crate::core::effects::Delivery;
use crate::core::error::{CoreError, Limit};
use crate::core::rules::limits;
use crate::core::state::{LimitKey, StateExt, UserId};
use crate::core::usecase::UseCase;

/// How admins sign lobby lines.
pub const MODERATOR: &str = "moderator";

/// Who says a lobby line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speaker {
    /// A user in the lobby.
    User(UserId),
    /// An admin, signed [`MODERATOR`].
    Moderator,
}

/// A lobby line, to everyone waiting and to the admins. A user must be in
/// the lobby (status `ready`) and within the chat rate limit.
#[derive(Debug, Clone)]
pub struct LobbySay {
    /// Who says it.
    pub speaker: Speaker,
    /// What.
    pub text: String,
}

impl UseCase for LobbySay {
    type Output = ();
    fn apply(self, cx: &mut Ctx<'_>) -> Result<(), CoreError> {
        let LobbySay { speaker, text } = self;
        validate_text(&text, LOBBY_MAX_LEN)?;
        let (from, admin) = match speaker {
            Speaker::Moderator => (MODERATOR.to_owned(), true),
            Speaker::User(uid) => {
                if !cx.st.in_lobby(uid) {
                    return Err(CoreError::NotInLobby);
                }
                limit(cx, LimitKey::Lobby(uid), Limit::LobbyLines)?;
                (cx.st.name_of(uid).ok_or(CoreError::UserGone)?, false)
            }
        };
        cx.fx.deliveries.push(Delivery::Lobby {
            members: cx.st.lobby().collect(),
            event: ServerEvent::LobbyMessage {
                from,
                admin,
                text,
                at: cx.now.unix_ms,
            },
        });
        Ok(())
    }
}

/// A typing indicator from `uid`, to the rest of the lobby (dropped
/// outside it or above one a second).
#[derive(Debug, Clone)]
pub struct Typing {
    /// Who types.
    pub uid: UserId,
}

impl UseCase for Typing {
    type Output = ();
    fn apply(self, cx: &mut Ctx<'_>) -> Result<(), CoreError> {
        let uid = self.uid;
        let key = LimitKey::Typing(uid);
        let enabled = cx.cfg().rate_limits;
        if !cx.st.in_lobby(uid) || limits::check(cx.st, enabled, key, cx.now.unix_ms).is_err() {
            return Ok(());
        }
        let Some(from) = cx.st.name_of(uid) else {
            return Ok(());
        };
        cx.fx.deliveries.push(Delivery::Lobby {
            members: cx.st.lobby().filter(|&u| u != uid).collect(),
            event: ServerEvent::LobbyTyping { from },
        });
        Ok(())
    }
}

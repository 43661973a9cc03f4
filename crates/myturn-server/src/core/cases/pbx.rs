//! What a node's built-in PBX saw, for the admins: SIP bindings made and
//! gone, and its media figures. The node watches its PBX and runs these;
//! like every other change, they reach the admins as deliveries, on every
//! node.

use myturn_wire::{AdminEvent, RelayFigures};

use crate::core::context::Ctx;
use crate::core::error::CoreError;
use crate::core::rules::admin;
use crate::core::usecase::UseCase;

/// A user registered over SIP at `contact` (`Some`), or their binding
/// went (`None`). Answers whether the user's record changed (a refresh
/// of the same binding, or a name no longer registered, changes
/// nothing).
#[derive(Debug, Clone)]
pub struct SipBinding {
    /// The SIP username (the nickname).
    pub name: String,
    /// The binding's contact, or `None` once it is gone.
    pub contact: Option<String>,
}

impl UseCase for SipBinding {
    type Output = bool;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<bool, CoreError> {
        let SipBinding { name, contact } = self;
        let Some(id) = cx.st.user_by_name(&name) else {
            return Ok(false);
        };
        let Some(u) = cx.st.user_mut(id) else {
            return Ok(false);
        };
        if u.sip_contact == contact {
            return Ok(false);
        }
        let registered = contact.is_some();
        u.sip_contact = contact;
        if registered {
            admin::tell_user(cx, id, |user| AdminEvent::SipRegistered { user });
        } else {
            admin::tell_user(cx, id, |user| AdminEvent::SipUnregistered { user });
        }
        Ok(true)
    }
}

/// A node's PBX and media figures changed: the admins hear them.
#[derive(Debug, Clone)]
pub struct RelayChanged {
    /// The node (`--node-id`).
    pub node: String,
    /// Its figures now.
    pub figures: RelayFigures,
}

impl UseCase for RelayChanged {
    type Output = ();
    fn apply(self, cx: &mut Ctx<'_>) -> Result<(), CoreError> {
        cx.fx.tell_admins(AdminEvent::Relay {
            node: self.node,
            figures: self.figures,
        });
        Ok(())
    }
}

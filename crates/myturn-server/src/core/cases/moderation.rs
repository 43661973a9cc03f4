//! Moderation: reports, the waiting room's admissions, kicks and bans.

use myturn_wire::{validate_name, validate_text, LeaveReason, ServerEvent, REPORT_MAX_LEN};

use super::account::{limit, me};
use crate::core::context::Ctx;
use crate::core::error::{CoreError, Limit};
use crate::core::rules::{pairs, users};
use crate::core::state::{name_key, LimitKey, StateExt, UserId};
use crate::core::usecase::UseCase;

/// Longest ban, in seconds (a year).
pub const MAX_BAN_SECS: u64 = 365 * 24 * 3600;
/// Reports kept; the oldest go first.
pub const MAX_REPORTS: usize = 10_000;

fn no_user(name: &str) -> CoreError {
    CoreError::NotFound(format!("no user named {name:?}"))
}

/// `POST /v1/me/report`: about the current partner, else the last one.
/// Answers the reported name.
#[derive(Debug, Clone)]
pub struct Report {
    /// Who reports.
    pub uid: UserId,
    /// Why.
    pub reason: String,
}

impl UseCase for Report {
    type Output = String;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<String, CoreError> {
        let Report { uid, reason } = self;
        validate_text(&reason, REPORT_MAX_LEN)?;
        limit(cx, LimitKey::Report(uid), Limit::Requests)?;
        let reported = pairs::report_target(cx.st, uid).ok_or(CoreError::NoPartner)?;
        let reporter = me(cx, uid)?.name;
        let at = cx.now.unix();
        cx.st.add_report(
            myturn_wire::Report {
                reporter,
                reported: reported.clone(),
                reason,
                at,
            },
            MAX_REPORTS,
        );
        Ok(reported)
    }
}

/// Whom an admin lets out of the waiting room.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admit {
    /// One user, by name.
    One(String),
    /// Everyone waiting.
    All,
}

impl UseCase for Admit {
    type Output = Vec<String>;
    /// `POST /v1/admin/admit` (with `--admission moderated`): answers who
    /// was admitted.
    fn apply(self, cx: &mut Ctx<'_>) -> Result<Vec<String>, CoreError> {
        if !cx.cfg().moderated {
            return Err(CoreError::NotModerated);
        }
        let ids = match self {
            Admit::One(name) => {
                let id = cx.st.user_by_name(&name).ok_or_else(|| no_user(&name))?;
                pairs::admit(cx, id)?;
                vec![id]
            }
            Admit::All => pairs::admit_all(cx),
        };
        Ok(ids.iter().filter_map(|&id| cx.st.name_of(id)).collect())
    }
}

/// `DELETE /v1/admin/users/{name}`: removes a user, who hears `kicked`.
/// Answers the name as registered.
#[derive(Debug, Clone)]
pub struct Kick {
    /// Who.
    pub name: String,
}

impl UseCase for Kick {
    type Output = String;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<String, CoreError> {
        let id = cx
            .st
            .user_by_name(&self.name)
            .ok_or_else(|| no_user(&self.name))?;
        users::remove(cx, id, LeaveReason::Kicked, Some(ServerEvent::Kicked))
    }
}

/// `POST /v1/admin/bans`: bans a name for `seconds` and removes its user,
/// if online.
#[derive(Debug, Clone)]
pub struct Ban {
    /// The name.
    pub name: String,
    /// For how long.
    pub seconds: u64,
}

/// What a ban did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Banned {
    /// The ban in force.
    pub ban: myturn_wire::Ban,
    /// Whether a user by that name was online (and is removed).
    pub online: bool,
}

impl UseCase for Ban {
    type Output = Banned;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<Banned, CoreError> {
        let Ban { name, seconds } = self;
        validate_name(&name)?;
        if seconds == 0 || seconds > MAX_BAN_SECS {
            return Err(CoreError::InvalidBody(format!(
                "seconds must be 1 to {MAX_BAN_SECS}"
            )));
        }
        let until = cx.now.unix() + seconds;
        // Ban first: from here on the name cannot register again.
        cx.st.set_ban(name_key(&name), until);
        let online = match cx.st.user_by_name(&name) {
            Some(id) => users::remove(
                cx,
                id,
                LeaveReason::Banned,
                Some(ServerEvent::Banned { until }),
            )
            .is_ok(),
            None => false,
        };
        Ok(Banned {
            ban: myturn_wire::Ban {
                name: name_key(&name),
                until,
            },
            online,
        })
    }
}

/// `DELETE /v1/admin/bans/{name}`.
#[derive(Debug, Clone)]
pub struct Unban {
    /// The name.
    pub name: String,
}

impl UseCase for Unban {
    type Output = ();
    fn apply(self, cx: &mut Ctx<'_>) -> Result<(), CoreError> {
        if cx.st.lift_ban(&name_key(&self.name)) {
            Ok(())
        } else {
            Err(CoreError::NotFound(format!(
                "{:?} is not banned",
                self.name
            )))
        }
    }
}

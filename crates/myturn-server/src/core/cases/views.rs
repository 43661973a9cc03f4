//! What admins, the PBX sync and `/metrics` read: read-only use cases.

use myturn_wire::{AdminPairs, AdminUser, AdminUsers, Status};

use crate::core::context::Ctx;
use crate::core::error::CoreError;
use crate::core::rules::admin;
use crate::core::usecase::UseCase;
use myturn_wire::Role;

use crate::core::state::{PbxUser, State, User};

/// Every user, by name.
#[derive(Debug, Clone)]
pub struct Users;

impl UseCase for Users {
    type Output = AdminUsers;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<AdminUsers, CoreError> {
        let mut users: Vec<AdminUser> = cx.st.users().map(admin::user_row).collect();
        users.sort_by_key(|u| u.name.to_ascii_lowercase());
        Ok(AdminUsers {
            users,
            moderated: cx.cfg().moderated,
        })
    }
}

/// Every current pair once, as (caller, callee), by the caller's id.
pub(crate) fn pairs_of(st: &dyn State) -> Vec<(&User, &User)> {
    let mut v: Vec<(&User, &User)> = st
        .users()
        .filter_map(|u| {
            let p = u.pair.as_ref()?;
            if p.role != Role::Caller {
                return None;
            }
            Some((u, st.user(p.peer)?))
        })
        .collect();
    v.sort_by_key(|(c, _)| c.id);
    v
}

/// Every pair once.
#[derive(Debug, Clone)]
pub struct Pairs;

impl UseCase for Pairs {
    type Output = AdminPairs;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<AdminPairs, CoreError> {
        let pairs = pairs_of(cx.st)
            .into_iter()
            .filter_map(|(c, _)| admin::pair_row(cx.st, c.id))
            .collect();
        Ok(AdminPairs { pairs })
    }
}

/// Reports, oldest first.
#[derive(Debug, Clone)]
pub struct Reports;

impl UseCase for Reports {
    type Output = myturn_wire::Reports;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<myturn_wire::Reports, CoreError> {
        Ok(myturn_wire::Reports {
            reports: cx.st.reports(),
        })
    }
}

/// Bans in force now (ended ones are forgotten).
#[derive(Debug, Clone)]
pub struct Bans;

impl UseCase for Bans {
    type Output = myturn_wire::Bans;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<myturn_wire::Bans, CoreError> {
        let now = cx.now.unix();
        Ok(myturn_wire::Bans {
            bans: cx.st.bans_in_force(now),
        })
    }
}

/// What the PBX must hold, ordered by extension.
pub(crate) fn pbx_users_of(st: &dyn State) -> Vec<PbxUser> {
    let mut v: Vec<PbxUser> = st
        .users()
        .map(|u| PbxUser {
            name: u.name.clone(),
            extension: u.extension,
            secret: u.sip_password.clone(),
        })
        .collect();
    v.sort_by_key(|u| u.extension);
    v
}

/// What the PBX must hold.
#[derive(Debug, Clone)]
pub struct PbxUsers;

impl UseCase for PbxUsers {
    type Output = Vec<PbxUser>;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<Vec<PbxUser>, CoreError> {
        Ok(pbx_users_of(cx.st))
    }
}

/// Users registered.
#[derive(Debug, Clone)]
pub struct UserCount;

impl UseCase for UserCount {
    type Output = usize;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<usize, CoreError> {
        Ok(cx.st.user_count())
    }
}

/// The interests of the users waiting now, the most-given first.
#[derive(Debug, Clone)]
pub struct Interests;

impl UseCase for Interests {
    type Output = myturn_wire::AdminInterests;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<myturn_wire::AdminInterests, CoreError> {
        let mut counts: std::collections::HashMap<&str, u64> = Default::default();
        let mut with = 0;
        for u in cx.st.pool().iter().filter_map(|&id| cx.st.user(id)) {
            with += u64::from(!u.interests.is_empty());
            for t in &u.interests {
                *counts.entry(t.as_str()).or_default() += 1;
            }
        }
        let mut top: Vec<myturn_wire::TagCount> = counts
            .into_iter()
            .map(|(tag, waiting)| myturn_wire::TagCount {
                tag: tag.to_owned(),
                waiting,
            })
            .collect();
        top.sort_by(|a, b| b.waiting.cmp(&a.waiting).then_with(|| a.tag.cmp(&b.tag)));
        top.truncate(20);
        Ok(myturn_wire::AdminInterests {
            waiting: cx.st.pool_len() as u64,
            with_interests: with,
            top,
        })
    }
}

/// Figures for `/metrics` and the console.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Figures {
    /// Users per status, in [`Status::ALL`] order.
    pub by_status: Vec<(Status, u64)>,
    /// Users waiting in the pool.
    pub waiting: u64,
    /// Pairs made since start.
    pub pairings_total: u64,
}

/// Figures for `/metrics`.
#[derive(Debug, Clone)]
pub struct Counts;

impl UseCase for Counts {
    type Output = Figures;
    fn apply(self, cx: &mut Ctx<'_>) -> Result<Figures, CoreError> {
        let by_status = cx.st.status_counts();
        Ok(Figures {
            by_status,
            waiting: cx.st.pool_len() as u64,
            pairings_total: cx.st.pairings_total(),
        })
    }
}

//! Pair bookkeeping: statuses, the pool, the lobby, and pairs made and
//! ended. Whom to pair with is the matching policy's choice
//! ([`MatchPolicy`](crate::core::matching::MatchPolicy)); this module
//! asks it, then writes both sides of the pair in one step, so both
//! always agree on it and nobody is ever in two pairs.
//!
//! Status flow (see `docs/api.md`): `ready` ends a current pair and
//! enters the pool (paired at once if someone suitable waits); `busy`
//! leaves the pool or ends the pair; `ready_to_talk` needs a pair, and
//! when both sides are ready to talk both become `in_call`.

use std::time::{Duration, Instant};

use myturn_wire::{LeaveReason, PeerInfo, PeerResponse, Role, ServerEvent, Status};
use rand::Rng;

use super::liveness::is_live;
use crate::core::context::Ctx;
use crate::core::error::CoreError;
use crate::core::matching::{Candidate, Seeker};
use crate::core::state::{PairId, PairSide, State, UserId};

/// Sets a user's status, keeps the lobby in step, and tells them.
fn set(cx: &mut Ctx<'_>, id: UserId, status: Status) {
    let Some(u) = cx.st.user_mut(id) else { return };
    if u.status == status {
        return;
    }
    u.status = status;
    cx.st.set_in_lobby(id, status == Status::Ready);
    cx.fx.tell(id, ServerEvent::Status { status });
}

/// Ends `id`'s pair: the partner goes back to `busy` and hears why.
fn dissolve(cx: &mut Ctx<'_>, id: UserId, reason: LeaveReason) {
    let Some(pair) = cx.st.user_mut(id).and_then(|u| u.pair.take()) else {
        return;
    };
    if let Some(peer) = cx.st.user_mut(pair.peer) {
        peer.pair = None;
    }
    cx.fx.tell(pair.peer, ServerEvent::PeerLeft { reason });
    set(cx, pair.peer, Status::Busy);
}

/// Takes `id` out of the pool and out of its pair, for `reason` (a user
/// on the way out).
pub(crate) fn leave(cx: &mut Ctx<'_>, id: UserId, reason: LeaveReason) {
    cx.st.pool_remove(id);
    dissolve(cx, id, reason);
}

/// Changes a user's status; see the module docs.
pub(crate) fn set_status(cx: &mut Ctx<'_>, id: UserId, wanted: Status) -> Result<(), CoreError> {
    let current = cx.st.user(id).ok_or(CoreError::UserGone)?.status;
    match wanted {
        Status::Busy => {
            leave(cx, id, LeaveReason::HungUp);
            set(cx, id, Status::Busy);
        }
        Status::Ready => {
            if current == Status::Ready {
                return Ok(());
            }
            dissolve(cx, id, LeaveReason::HungUp);
            set(cx, id, Status::Ready);
            if cx.st.user(id).is_some_and(|u| u.admitted) {
                enter_pool(cx, id);
            }
        }
        Status::ReadyToTalk => {
            let pair = cx
                .st
                .user(id)
                .and_then(|u| u.pair)
                .ok_or(CoreError::NotPaired)?;
            if matches!(current, Status::ReadyToTalk | Status::InCall) {
                return Ok(());
            }
            set(cx, id, Status::ReadyToTalk);
            cx.fx.tell(pair.peer, ServerEvent::PeerReadyToTalk);
            if cx.st.user(pair.peer).map(|u| u.status) == Some(Status::ReadyToTalk) {
                set(cx, id, Status::InCall);
                set(cx, pair.peer, Status::InCall);
            }
        }
        // Server-set states; the wire type does not let clients ask.
        Status::Paired | Status::InCall => {}
    }
    Ok(())
}

/// Puts a ready user in the pool, or pairs them at once with the partner
/// the matching policy picks among those waiting.
fn enter_pool(cx: &mut Ctx<'_>, id: UserId) {
    let seeker = Seeker {
        id,
        last_partner: cx.st.user(id).and_then(|u| u.last_partner),
    };
    let (now, window) = (cx.now.mono, cx.cfg().liveness);
    let candidates: Vec<Candidate> = cx
        .st
        .pool()
        .iter()
        .map(|&c| match cx.st.user(c) {
            Some(u) => Candidate {
                id: c,
                live: is_live(u, now, window),
                last_partner: u.last_partner,
            },
            None => Candidate {
                id: c,
                live: false,
                last_partner: None,
            },
        })
        .collect();
    let picked = cx
        .rules
        .matching
        .pick(&seeker, &candidates, &mut *cx.rng)
        .and_then(|i| candidates.get(i));
    match picked {
        Some(other) => make_pair(cx, id, other.id),
        None => cx.st.pool_insert(id),
    }
}

/// Pairs `id` (the newcomer) with `other` (taken out of the pool): roles
/// drawn at random, one pair id for both sides, both told.
fn make_pair(cx: &mut Ctx<'_>, id: UserId, other: UserId) {
    cx.st.pool_remove(other);
    let my_role = if cx.rng.gen::<bool>() {
        Role::Caller
    } else {
        Role::Callee
    };
    cx.st.count_pairing();
    let mut raw = [0u8; 16];
    cx.rng.fill_bytes(&mut raw);
    let pair_id = PairId(raw);
    let name = |st: &dyn State, x| st.user(x).map(|u| u.name.clone());
    let names = [name(cx.st, id), name(cx.st, other)];
    let sides = [
        (id, other, my_role, &names[1]),
        (other, id, my_role.opposite(), &names[0]),
    ];
    for &(me, them, role, them_name) in &sides {
        if let Some(u) = cx.st.user_mut(me) {
            u.last_partner_name = them_name.clone();
            u.pair = Some(PairSide {
                peer: them,
                role,
                since_unix: cx.now.unix(),
                since: cx.now.mono,
                pair_id,
            });
            u.last_partner = Some(them);
        }
    }
    for &(me, them, role, _) in &sides {
        set(cx, me, Status::Paired);
        if let Some(peer) = cx.st.user(them) {
            let event = ServerEvent::Paired {
                peer: peer_info(peer),
                role,
                pair_id: pair_id.to_hex(),
            };
            cx.fx.tell(me, event);
        }
    }
}

fn peer_info(peer: &crate::core::state::User) -> PeerInfo {
    PeerInfo {
        name: peer.name.clone(),
        extension: peer.extension.to_string(),
        media_key: peer.media_key.clone(),
    }
}

/// The partner and role of a user, for `GET /v1/me/peer`: `Some` once
/// paired, `None` while waiting, [`CoreError::NotReady`] if the user is
/// not looking.
pub(crate) fn peer_of(st: &dyn State, id: UserId) -> Result<Option<PeerResponse>, CoreError> {
    let u = st.user(id).ok_or(CoreError::UserGone)?;
    match (u.status, u.pair) {
        (Status::Ready, _) => Ok(None),
        (Status::Busy, _) | (_, None) => Err(CoreError::NotReady),
        (_, Some(p)) => {
            let peer = st.user(p.peer).ok_or(CoreError::UserGone)?;
            Ok(Some(PeerResponse {
                peer: peer_info(peer),
                role: p.role,
                peer_status: peer.status,
                pair_id: p.pair_id.to_hex(),
            }))
        }
    }
}

/// Who a report by `id` is about: the current partner, else the last.
pub(crate) fn report_target(st: &dyn State, id: UserId) -> Option<String> {
    let u = st.user(id)?;
    match u.pair {
        Some(p) => st.user(p.peer).map(|p| p.name.clone()),
        None => u.last_partner_name.clone(),
    }
}

/// Lets a user out of the waiting room. If they are `ready`, they enter
/// the pool at once (and may be paired). Admission lasts until logout.
pub(crate) fn admit(cx: &mut Ctx<'_>, id: UserId) -> Result<(), CoreError> {
    let u = cx.st.user_mut(id).ok_or(CoreError::UserGone)?;
    if u.admitted {
        return Ok(());
    }
    u.admitted = true;
    let ready = u.status == Status::Ready;
    cx.fx.tell(id, ServerEvent::Admitted);
    if ready {
        enter_pool(cx, id);
    }
    Ok(())
}

/// Admits everyone in the waiting room, in random order (so who gets
/// paired with whom stays uniform). Returns who was admitted.
pub(crate) fn admit_all(cx: &mut Ctx<'_>) -> Vec<UserId> {
    let mut waiting: Vec<UserId> = cx
        .st
        .lobby()
        .filter(|&id| cx.st.user(id).is_some_and(|u| !u.admitted))
        .collect();
    waiting.sort_unstable();
    rand::seq::SliceRandom::shuffle(waiting.as_mut_slice(), &mut *cx.rng);
    for &id in &waiting {
        let _ = admit(cx, id);
    }
    waiting
}

/// Pairs users left waiting side by side in the pool: one was passed over
/// while the other's liveness was in doubt (a stream reconnecting, late
/// pongs) and has since come back. Run periodically.
pub(crate) fn rematch(cx: &mut Ctx<'_>) {
    let (now, window) = (cx.now.mono, cx.cfg().liveness);
    let mut waiting: Vec<UserId> = cx
        .st
        .pool()
        .iter()
        .copied()
        .filter(|&id| cx.st.user(id).is_some_and(|u| is_live(u, now, window)))
        .collect();
    waiting.sort_unstable();
    for id in waiting {
        if cx.st.pool().contains(&id) {
            cx.st.pool_remove(id);
            enter_pool(cx, id);
        }
    }
}

/// Takes a ghost out of the pool, or out of its pair (the partner hears
/// `peer_left` `disconnected`), and sets it `busy`.
pub(crate) fn drop_ghost(cx: &mut Ctx<'_>, id: UserId) {
    leave(cx, id, LeaveReason::Disconnected);
    if cx.st.user(id).is_some_and(|u| u.status != Status::Busy) {
        set(cx, id, Status::Busy);
    }
    if let Some(u) = cx.st.user_mut(id) {
        u.stream_lost_at = None;
    }
}

/// Pairs older than `timeout` whose call has not started (not both
/// `ready_to_talk`), each named once by the side holding it up: the callee
/// if it never said `ready_to_talk`, else the caller.
pub(crate) fn unanswered(st: &dyn State, now: Instant, timeout: Duration) -> Vec<UserId> {
    let mut out: Vec<UserId> = st
        .users()
        .filter_map(|u| {
            let pair = u.pair?;
            if u.status == Status::InCall || now.saturating_duration_since(pair.since) <= timeout {
                return None;
            }
            let peer = st.user(pair.peer)?;
            let (callee, caller) = match pair.role {
                Role::Callee => (u, peer),
                Role::Caller => (peer, u),
            };
            let laggard = if callee.status == Status::Paired {
                callee
            } else {
                caller
            };
            (laggard.id == u.id).then_some(u.id)
        })
        .collect();
    out.sort_unstable();
    out
}

/// Ends the pair `id` holds up (see [`unanswered`]): both sides hear
/// `peer_left` `no_answer` and go `busy`; a live client draws again.
pub(crate) fn drop_unanswered(cx: &mut Ctx<'_>, id: UserId) {
    if cx.st.user(id).and_then(|u| u.pair).is_none() {
        return;
    }
    dissolve(cx, id, LeaveReason::NoAnswer);
    cx.fx.tell(
        id,
        ServerEvent::PeerLeft {
            reason: LeaveReason::NoAnswer,
        },
    );
    set(cx, id, Status::Busy);
}

#[cfg(test)]
#[path = "pairs_tests.rs"]
mod tests;

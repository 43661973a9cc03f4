//! Pair bookkeeping: statuses, the pool and its draws (the plain one and
//! one per interest), the lobby, and pairs made and ended. Whom to pair
//! with is the matching policy's choice
//! ([`MatchPolicy`](crate::core::matching::MatchPolicy)); this module
//! hands it the draws, then writes both sides of the pair in one step, so
//! both always agree on it and nobody is ever in two pairs.
//!
//! Status flow (see `docs/api.md`): `ready` ends a current pair and
//! enters the pool (paired at once if someone suitable waits); `busy`
//! leaves the pool or ends the pair; `ready_to_talk` needs a pair, and
//! when both sides are ready to talk both become `in_call`.

use std::collections::HashSet;
use std::time::Duration;

use myturn_wire::{AdminEvent, LeaveReason, PeerInfo, PeerResponse, Role, ServerEvent, Status};
use rand::Rng;

use super::admin::{in_waiting_room, tell_pair, tell_user};
use super::liveness::is_live;
use crate::core::context::Ctx;
use crate::core::effects::{PairMade, Told};
use crate::core::error::CoreError;
use crate::core::matching::{Candidate, Draw, DrawView, Match, Seeker};
use crate::core::state::{
    elapsed, later, DrawKey, Due, Millis, PairId, PairSide, State, User, UserId,
};

/// Sets a user's status, keeps the lobby in step, and tells them and
/// the admins (and, when the user enters or leaves the waiting room, the
/// admins that too).
fn set(cx: &mut Ctx<'_>, id: UserId, status: Status) {
    let Some(u) = cx.st.user_mut(id) else { return };
    if u.status == status {
        return;
    }
    let was_waiting = in_waiting_room(u);
    u.status = status;
    let waiting = in_waiting_room(u);
    cx.st.set_in_lobby(id, status == Status::Ready);
    cx.fx.tell(id, ServerEvent::Status { status });
    tell_user(cx, id, |user| AdminEvent::UserStatus { user });
    match (was_waiting, waiting) {
        (false, true) => tell_user(cx, id, |user| AdminEvent::WaitingRoomJoined { user }),
        (true, false) => tell_user(cx, id, |user| AdminEvent::WaitingRoomLeft { user }),
        _ => {}
    }
}

/// A user's name, empty when gone.
fn name_of(st: &dyn State, id: UserId) -> String {
    st.user(id).map(|u| u.name.clone()).unwrap_or_default()
}

/// Ends `id`'s pair: the partner goes back to `busy` and hears why.
fn dissolve(cx: &mut Ctx<'_>, id: UserId, reason: LeaveReason) {
    let Some(pair) = cx.st.user_mut(id).and_then(|u| u.pair.take()) else {
        return;
    };
    if let Some(peer) = cx.st.user_mut(pair.peer) {
        peer.pair = None;
    }
    let now = cx.now.unix_ms;
    let names = [name_of(cx.st, id), name_of(cx.st, pair.peer)];
    let (paired, call) = (
        elapsed(now, pair.since),
        pair.call_since.map(|t| elapsed(now, t)),
    );
    let [mine, theirs] = names.clone();
    let (caller, callee) = match pair.role {
        Role::Caller => (mine, theirs),
        Role::Callee => (theirs, mine),
    };
    cx.fx.tell_admins(AdminEvent::PairEnded {
        pair_id: pair.pair_id.to_hex(),
        caller,
        callee,
        reason,
        paired_secs: paired.as_secs(),
        call_secs: call.map(|c| c.as_secs()),
    });
    cx.fx.story.push(Told::PairEnded {
        pair_id: pair.pair_id.to_hex(),
        names,
        reason,
        paired,
        call,
    });
    cx.fx.tell(pair.peer, ServerEvent::PeerLeft { reason });
    set(cx, pair.peer, Status::Busy);
}

/// Takes `id` out of the pool and out of its pair, for `reason` (a user
/// on the way out).
pub(crate) fn leave(cx: &mut Ctx<'_>, id: UserId, reason: LeaveReason) {
    leave_draws(cx.st, id);
    if let Some(u) = cx.st.user_mut(id) {
        u.waiting_since = None;
        u.in_plain_draw = false;
    }
    dissolve(cx, id, reason);
}

/// Sets the interests `id` is paired on (normalised and checked by the
/// caller), with its wait and whether it ever falls back. A user waiting
/// in the pool moves to the new draws at once, keeping its place in time.
pub(crate) fn set_interests(
    cx: &mut Ctx<'_>,
    id: UserId,
    interests: Vec<String>,
    wait: Duration,
    only: bool,
) -> Result<(), CoreError> {
    let waiting = cx.st.in_pool(id);
    if waiting {
        leave_draws(cx.st, id);
    }
    let u = cx.st.user_mut(id).ok_or(CoreError::UserGone)?;
    let changed = u.interests != interests;
    u.interests = interests;
    u.interest_wait = wait;
    u.only_interests = only;
    u.in_plain_draw = false;
    if changed {
        tell_user(cx, id, |user| AdminEvent::UserInterests { user });
    }
    if waiting {
        enter_pool(cx, id);
    }
    Ok(())
}

/// When `u`'s interest wait runs out, if it is waiting for one (with
/// interests, not `only_interests`, not yet in the plain draw).
fn fallback_at(u: &User) -> Option<Millis> {
    if u.interests.is_empty() || u.only_interests || u.in_plain_draw {
        return None;
    }
    Some(later(u.waiting_since?, u.interest_wait))
}

/// Whether `u` belongs in the plain draw at `now`.
fn plain_at(u: &User, now: Millis) -> bool {
    u.interests.is_empty() || u.in_plain_draw || fallback_at(u).is_some_and(|t| t <= now)
}

/// Puts a waiting user in the pool and its draws.
fn join_draws(cx: &mut Ctx<'_>, id: UserId) {
    let now = cx.now.unix_ms;
    let Some(u) = cx.st.user_mut(id) else { return };
    let plain = plain_at(u, now);
    u.in_plain_draw = plain;
    let (tags, fallback) = (u.interests.clone(), fallback_at(u));
    cx.st.pool_insert(id);
    for t in tags {
        cx.st.draw_insert(&DrawKey::Tag(t), id);
    }
    if plain {
        cx.st.draw_insert(&DrawKey::Plain, id);
    }
    if let Some(at) = fallback {
        cx.fx.wake(at);
    }
}

/// Takes a user out of the pool and every draw.
fn leave_draws(st: &mut dyn State, id: UserId) {
    st.pool_remove(id);
    st.draw_remove(&DrawKey::Plain, id);
    let tags = st.user(id).map(|u| u.interests.clone()).unwrap_or_default();
    for t in tags {
        st.draw_remove(&DrawKey::Tag(t), id);
    }
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
            let peer = cx
                .st
                .user(id)
                .and_then(|u| u.pair.as_ref())
                .map(|p| p.peer)
                .ok_or(CoreError::NotPaired)?;
            if matches!(current, Status::ReadyToTalk | Status::InCall) {
                return Ok(());
            }
            set(cx, id, Status::ReadyToTalk);
            cx.fx.tell(peer, ServerEvent::PeerReadyToTalk);
            if cx.st.user(peer).map(|u| u.status) == Some(Status::ReadyToTalk) {
                set(cx, id, Status::InCall);
                set(cx, peer, Status::InCall);
                call_started(cx, id, peer);
            }
        }
        // Server-set states; the wire type does not let clients ask.
        Status::Paired | Status::InCall => {}
    }
    Ok(())
}

/// Notes on both sides when the call was set up, for the story.
fn call_started(cx: &mut Ctx<'_>, id: UserId, peer: UserId) {
    let now = cx.now.unix_ms;
    let mut told = None;
    for x in [id, peer] {
        if let Some(p) = cx.st.user_mut(x).and_then(|u| u.pair.as_mut()) {
            p.call_since = Some(now);
            told = Some((p.pair_id, p.since));
        }
    }
    tell_pair(cx, id, |pair| AdminEvent::CallStarted { pair });
    if let Some((pair_id, since)) = told {
        cx.fx.story.push(Told::CallStarted {
            pair_id: pair_id.to_hex(),
            names: [name_of(cx.st, id), name_of(cx.st, peer)],
            setup: elapsed(now, since),
        });
    }
}

/// A draw's members as the matching policy reads them: each record is
/// looked up only when the policy asks for it.
struct Members<'a> {
    st: &'a dyn State,
    ids: Vec<UserId>,
    now: Millis,
    window: Duration,
}

impl DrawView for Members<'_> {
    fn len(&self) -> usize {
        self.ids.len()
    }

    fn candidate(&self, index: usize) -> Option<Candidate> {
        let &c = self.ids.get(index)?;
        let found = self.st.user(c);
        if found.is_none() && self.st.reading() {
            return None;
        }
        Some(match found {
            Some(u) => Candidate {
                id: c,
                live: is_live(u, self.now, self.window),
                last_partner: u.last_partner,
                has_interests: !u.interests.is_empty(),
            },
            None => Candidate {
                id: c,
                live: false,
                last_partner: None,
                has_interests: false,
            },
        })
    }
}

/// Puts a ready user in the pool, or pairs them at once with the partner
/// the matching policy picks among those waiting.
fn enter_pool(cx: &mut Ctx<'_>, id: UserId) {
    let (now, window) = (cx.now.unix_ms, cx.cfg().liveness);
    let Some(u) = cx.st.user_mut(id) else { return };
    let since = *u.waiting_since.get_or_insert(now);
    let seeker = Seeker {
        id,
        last_partner: u.last_partner,
        has_interests: !u.interests.is_empty(),
        plain: plain_at(u, now),
    };
    let tags = u.interests.clone();
    let st: &dyn State = &*cx.st;
    // Who shares an interest, each once, in the order of the tags.
    let mut seen = HashSet::new();
    let mut shared = Vec::new();
    for t in &tags {
        for &c in st.draw(&DrawKey::Tag(t.clone())) {
            if c != id && seen.insert(c) {
                shared.push(c);
            }
        }
    }
    let plain = if seeker.plain {
        st.draw(&DrawKey::Plain)
            .iter()
            .copied()
            .filter(|&c| c != id)
            .collect()
    } else {
        Vec::new()
    };
    let members = |ids| Members {
        st,
        ids,
        now,
        window,
    };
    let (shared, plain) = (members(shared), members(plain));
    let picked = cx
        .rules
        .matching
        .pick(&seeker, &shared, &plain, &mut *cx.rng);
    let other = picked.and_then(|m: Match| match m.draw {
        Draw::Shared => shared.ids.get(m.index).map(|&c| (c, m)),
        Draw::Plain => plain.ids.get(m.index).map(|&c| (c, m)),
    });
    match other {
        Some((other, m)) => make_pair(cx, id, other, m, since),
        None => join_draws(cx, id),
    }
}

/// The interests two users share, in the first one's order.
fn shared_interests(st: &dyn State, a: UserId, b: UserId) -> Vec<String> {
    let (Some(a), Some(b)) = (st.user(a), st.user(b)) else {
        return Vec::new();
    };
    a.interests
        .iter()
        .filter(|t| b.interests.contains(t))
        .cloned()
        .collect()
}

/// Pairs `id` (the newcomer, waiting since `since`) with `other` (taken
/// out of the pool): roles drawn at random, one pair id for both sides,
/// both told.
fn make_pair(cx: &mut Ctx<'_>, id: UserId, other: UserId, m: Match, since: Millis) {
    let now = cx.now.unix_ms;
    let other_since = cx.st.user(other).and_then(|u| u.waiting_since);
    leave_draws(cx.st, other);
    let my_role = if cx.rng.gen::<bool>() {
        Role::Caller
    } else {
        Role::Callee
    };
    cx.st.count_pairing();
    let mut raw = [0u8; 16];
    cx.rng.fill_bytes(&mut raw);
    let pair_id = PairId(raw);
    let shared = shared_interests(cx.st, id, other);
    cx.fx.pairings.push(PairMade {
        kind: m.kind,
        waited: [
            elapsed(now, since),
            other_since.map_or(Duration::ZERO, |t| elapsed(now, t)),
        ],
    });
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
                since: cx.now.unix_ms,
                pair_id,
                shared: shared.clone(),
                call_since: None,
            });
            u.last_partner = Some(them);
            u.waiting_since = None;
            u.in_plain_draw = false;
        }
    }
    cx.fx.story.push(Told::Paired {
        pair_id: pair_id.to_hex(),
        names: [
            names[0].clone().unwrap_or_default(),
            names[1].clone().unwrap_or_default(),
        ],
        shared: shared.clone(),
        kind: m.kind,
    });
    tell_pair(cx, id, |pair| AdminEvent::PairMade { pair });
    for &(me, them, role, _) in &sides {
        set(cx, me, Status::Paired);
        if let Some(peer) = cx.st.user(them) {
            let event = ServerEvent::Paired {
                peer: peer_info(peer),
                role,
                pair_id: pair_id.to_hex(),
                shared_interests: shared.clone(),
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
    match (u.status, &u.pair) {
        (Status::Ready, _) => Ok(None),
        (Status::Busy, _) | (_, None) => Err(CoreError::NotReady),
        (_, Some(p)) => {
            let peer = st.user(p.peer).ok_or(CoreError::UserGone)?;
            Ok(Some(PeerResponse {
                peer: peer_info(peer),
                role: p.role,
                peer_status: peer.status,
                pair_id: p.pair_id.to_hex(),
                shared_interests: p.shared.clone(),
            }))
        }
    }
}

/// Who a report by `id` is about: the current partner, else the last.
pub(crate) fn report_target(st: &dyn State, id: UserId) -> Option<String> {
    let u = st.user(id)?;
    match &u.pair {
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
    tell_user(cx, id, |user| AdminEvent::UserAdmitted { user });
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

/// Pairs users left waiting side by side in a draw: one was passed over
/// while the other's liveness was in doubt (a stream reconnecting, late
/// pongs) and has since come back. Only draws holding two users or more
/// can hold such a pair. Run periodically.
pub(crate) fn rematch(cx: &mut Ctx<'_>) {
    let (now, window) = (cx.now.unix_ms, cx.cfg().liveness);
    let mut waiting: Vec<UserId> = Vec::new();
    for key in cx.st.crowded_draws() {
        waiting.extend(
            cx.st
                .draw(&key)
                .iter()
                .copied()
                .filter(|&id| cx.st.user(id).is_some_and(|u| is_live(u, now, window))),
        );
    }
    waiting.sort_unstable();
    waiting.dedup();
    for id in waiting {
        reenter(cx, id);
    }
}

/// A waiting user looks again (out of the pool, back in, paired if it can
/// be now).
fn reenter(cx: &mut Ctx<'_>, id: UserId) {
    if cx.st.in_pool(id) {
        leave_draws(cx.st, id);
        enter_pool(cx, id);
    }
}

/// [`Due::Fallback`](crate::core::state::Due::Fallback)'s key: when a
/// waiting user's interest wait runs out.
pub(crate) fn fallback_key(u: &User) -> Option<Millis> {
    fallback_at(u)
}

/// Users whose interest wait has run out by now join the plain draw (and
/// are paired with anyone there), oldest deadline first. Answers the
/// next deadline still to come.
pub(crate) fn fall_back(cx: &mut Ctx<'_>) -> Option<Millis> {
    let now = cx.now.unix_ms;
    let mut due: Vec<(Millis, UserId)> = cx
        .st
        .due(Due::Fallback, now, &fallback_key)
        .into_iter()
        .filter_map(|id| Some((fallback_at(cx.st.user(id)?)?, id)))
        .filter(|&(t, _)| t <= now)
        .collect();
    due.sort_unstable();
    for &(_, id) in &due {
        reenter(cx, id);
    }
    // The next wait to run out, from the index the sweeps keep (not a
    // read of every waiting user).
    cx.st.next_due(Due::Fallback, now, &fallback_key)
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

/// [`Due::Unanswered`](crate::core::state::Due::Unanswered)'s key: when
/// the pair of a user not yet in the call was made.
pub(crate) fn unanswered_key(u: &User) -> Option<Millis> {
    match &u.pair {
        Some(p) if u.status != Status::InCall => Some(p.since),
        _ => None,
    }
}

/// Pairs older than `timeout` whose call has not started (not both
/// `ready_to_talk`), each named once by the side holding it up: the callee
/// if it never said `ready_to_talk`, else the caller.
pub(crate) fn unanswered(st: &dyn State, now: Millis, timeout: Duration) -> Vec<UserId> {
    let by = now.saturating_sub(u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX));
    let mut out: Vec<UserId> = st
        .due(Due::Unanswered, by, &unanswered_key)
        .into_iter()
        .filter_map(|id| {
            let u = st.user(id)?;
            let pair = u.pair.as_ref()?;
            if u.status == Status::InCall || elapsed(now, pair.since) <= timeout {
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
    if cx.st.user(id).and_then(|u| u.pair.as_ref()).is_none() {
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

#[cfg(test)]
#[path = "interests_tests.rs"]
mod interests_tests;

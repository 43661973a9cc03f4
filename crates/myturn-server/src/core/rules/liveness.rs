//! Who is still there: activity for the lease, open long-polls and event
//! streams (and the nodes holding them), and the users a sweep must act
//! on.

use std::time::Duration;

use myturn_wire::Status;

use crate::core::error::CoreError;
use crate::core::state::{elapsed, Due, Millis, State, User, UserId};

/// Whether `u` may be handed out as a partner at `now`: users with an
/// event stream must have been heard within `window` and have it open;
/// users who never opened one (HTTP only) rely on the lease.
pub(crate) fn is_live(u: &User, now: Millis, window: Duration) -> bool {
    if u.streams > 0 {
        return elapsed(now, u.last_seen) <= window;
    }
    u.stream_lost_at.is_none()
}

/// Records activity for the lease.
pub(crate) fn touch(st: &mut dyn State, id: UserId, now: Millis) -> Result<(), CoreError> {
    st.user_mut(id).ok_or(CoreError::UserGone)?.last_seen = now;
    Ok(())
}

/// A long-poll of `id` opened, to last until `until` (`None`: it closed).
/// Either way it is activity; while one is open the user is not silent.
pub(crate) fn watch(st: &mut dyn State, id: UserId, until: Option<Millis>, now: Millis) {
    if let Some(u) = st.user_mut(id) {
        u.last_seen = now;
        if let Some(t) = until {
            u.watching_until = u.watching_until.max(t);
        }
    }
}

/// An event stream of `id` opened on `node` (a reconnect ends the grace).
pub(crate) fn stream_opened(st: &mut dyn State, id: UserId, node: &str, now: Millis) {
    if let Some(u) = st.user_mut(id) {
        u.last_seen = now;
        u.streams += 1;
        u.stream_lost_at = None;
        u.stream_node = Some(node.to_owned());
    }
}

/// An event stream of `id` closed, lost at `at`; the last one starts the
/// grace.
pub(crate) fn stream_closed(st: &mut dyn State, id: UserId, at: Millis, now: Millis) {
    if let Some(u) = st.user_mut(id) {
        u.last_seen = now;
        u.streams = u.streams.saturating_sub(1);
        if u.streams == 0 {
            u.stream_lost_at = Some(at);
            u.stream_node = None;
        }
    }
}

/// The node holding `id`'s streams is gone: they closed at `at`.
pub(crate) fn node_gone(st: &mut dyn State, id: UserId, at: Millis) {
    if let Some(u) = st.user_mut(id) {
        u.streams = 0;
        u.stream_lost_at = Some(at);
        u.stream_node = None;
    }
}

/// Users looking for or in a call whose event stream closed more than
/// `grace` ago and did not come back, by id. Users who never opened a
/// stream (HTTP only) are never ghosts: the lease covers them.
pub(crate) fn ghosts(st: &dyn State, now: Millis, grace: Duration) -> Vec<UserId> {
    let by = now.saturating_sub(u64::try_from(grace.as_millis()).unwrap_or(u64::MAX));
    let mut out: Vec<UserId> = st
        .due(Due::StreamLost, by, &|u| stream_lost_key(u))
        .into_iter()
        .filter(|&id| {
            st.user(id)
                .is_some_and(|u| stream_lost_key(u).is_some_and(|t| elapsed(now, t) > grace))
        })
        .collect();
    out.sort_unstable();
    out
}

/// [`Due::StreamLost`]'s key.
pub(crate) fn stream_lost_key(u: &User) -> Option<Millis> {
    if u.status == Status::Busy || u.streams > 0 {
        return None;
    }
    u.stream_lost_at
}

/// [`Due::Silent`]'s key: the last activity of a user with no stream.
pub(crate) fn silent_key(u: &User) -> Option<Millis> {
    (u.streams == 0).then_some(u.last_seen)
}

/// Users silent for longer than `lease` with nothing open (no long-poll,
/// no event stream), oldest first.
pub(crate) fn silent_since(st: &dyn State, now: Millis, lease: Duration) -> Vec<UserId> {
    let by = now.saturating_sub(u64::try_from(lease.as_millis()).unwrap_or(u64::MAX));
    let mut v: Vec<(Millis, UserId)> = st
        .due(Due::Silent, by, &|u| silent_key(u))
        .into_iter()
        .filter_map(|id| st.user(id))
        .filter(|u| u.streams == 0 && now > u.watching_until && elapsed(now, u.last_seen) > lease)
        .map(|u| (u.last_seen, u.id))
        .collect();
    v.sort();
    v.into_iter().map(|(_, id)| id).collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rules::testing::Harness;

    #[test]
    fn silent_users_are_found_unless_watching() {
        let mut h = Harness::new(1);
        let t0 = h.t0.unix_ms;
        let a = h.add("alice");
        let b = h.add("bob");
        watch(&mut h.st, b, Some(t0 + 60_000), t0);
        let later = t0 + 31_000;
        assert_eq!(silent_since(&h.st, later, Duration::from_secs(30)), vec![a]);
        touch(&mut h.st, a, later).unwrap();
        assert!(silent_since(&h.st, later, Duration::from_secs(30)).is_empty());
        // Bob's long-poll ran out at 60 s, and he is silent since 0 s.
        assert_eq!(
            silent_since(&h.st, t0 + 61_000, Duration::from_secs(30)),
            vec![b]
        );
    }

    #[test]
    fn a_stream_on_a_node_that_died_counts_as_closed_then() {
        let mut h = Harness::new(2);
        let t0 = h.t0.unix_ms;
        let a = h.add("alice");
        h.status(a, Status::Ready).unwrap();
        stream_opened(&mut h.st, a, "n1", t0);
        assert_eq!(h.st.users_on_node("n1"), vec![a]);
        assert!(ghosts(&h.st, t0 + 10_000, Duration::from_secs(3)).is_empty());
        node_gone(&mut h.st, a, t0 + 1_000);
        assert!(h.st.users_on_node("n1").is_empty());
        assert!(ghosts(&h.st, t0 + 4_000, Duration::from_secs(3)).is_empty());
        assert_eq!(ghosts(&h.st, t0 + 4_001, Duration::from_secs(3)), vec![a]);
    }
}

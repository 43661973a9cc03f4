//! Who is still there: activity for the lease, open long-polls and event
//! streams, and the users a sweep must act on.

use std::time::Duration;

use myturn_wire::Status;

use crate::core::error::CoreError;
use crate::core::state::{elapsed, Millis, State, User, UserId};

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

/// Counts an open (or closed) long-poll or event stream: a user with one
/// is alive.
pub(crate) fn watch(st: &mut dyn State, id: UserId, open: bool, now: Millis) {
    if let Some(u) = st.user_mut(id) {
        u.last_seen = now;
        if open {
            u.watchers += 1;
        } else {
            u.watchers = u.watchers.saturating_sub(1);
        }
    }
}

/// An event stream of `id` opened (a reconnect ends the grace).
pub(crate) fn stream_opened(st: &mut dyn State, id: UserId) {
    if let Some(u) = st.user_mut(id) {
        u.streams += 1;
        u.stream_lost_at = None;
    }
}

/// An event stream of `id` closed, lost at `at`; the last one starts the
/// grace.
pub(crate) fn stream_closed(st: &mut dyn State, id: UserId, at: Millis) {
    if let Some(u) = st.user_mut(id) {
        u.streams = u.streams.saturating_sub(1);
        if u.streams == 0 {
            u.stream_lost_at = Some(at);
        }
    }
}

/// Users looking for or in a call whose event stream closed more than
/// `grace` ago and did not come back, by id. Users who never opened a
/// stream (HTTP only) are never ghosts: the lease covers them.
pub(crate) fn ghosts(st: &dyn State, now: Millis, grace: Duration) -> Vec<UserId> {
    let mut out: Vec<UserId> = st
        .users()
        .filter(|u| {
            u.status != Status::Busy
                && u.streams == 0
                && u.stream_lost_at.is_some_and(|t| elapsed(now, t) > grace)
        })
        .map(|u| u.id)
        .collect();
    out.sort_unstable();
    out
}

/// Users silent for longer than `lease` with nothing open (no long-poll,
/// no event stream), oldest first.
pub(crate) fn silent_since(st: &dyn State, now: Millis, lease: Duration) -> Vec<UserId> {
    let mut v: Vec<(Millis, UserId)> = st
        .users()
        .filter(|u| u.watchers == 0 && elapsed(now, u.last_seen) > lease)
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
        watch(&mut h.st, b, true, t0);
        let later = t0 + 31_000;
        assert_eq!(silent_since(&h.st, later, Duration::from_secs(30)), vec![a]);
        touch(&mut h.st, a, later).unwrap();
        assert!(silent_since(&h.st, later, Duration::from_secs(30)).is_empty());
    }
}

//! Users' bookkeeping: a new user with a free extension and a fresh SIP
//! secret, and the one way out (logout, kick, ban, lease).

use myturn_wire::{AdminEvent, LeaveReason, ServerEvent, Status};
use rand::{distributions::Alphanumeric, Rng};

use super::{pairs, sessions};
use crate::core::context::Ctx;
use crate::core::effects::Delivery;
use crate::core::error::CoreError;
use crate::core::state::{State, User, UserId, FIRST_EXTENSION, LAST_EXTENSION};

/// Length of a generated SIP password: 24 alphanumeric characters carry
/// 24 × log2(62) ≈ 142 bits.
pub(crate) const SIP_PASSWORD_LEN: usize = 24;

/// Adds a user with a fresh extension and SIP secret. The name must
/// already be valid (see [`myturn_wire::validate_name`]).
pub(crate) fn add(cx: &mut Ctx<'_>, name: &str) -> Result<UserId, CoreError> {
    if cx.st.user_by_name(name).is_some() {
        return Err(CoreError::NameTaken(name.to_owned()));
    }
    let max = cx.cfg().max_users;
    if cx.st.user_count() >= max {
        return Err(CoreError::Full(max));
    }
    let extension = free_extension(cx.st)?;
    let sip_password: String = (&mut *cx.rng)
        .sample_iter(&Alphanumeric)
        .take(SIP_PASSWORD_LEN)
        .map(char::from)
        .collect();
    let id = cx.st.next_user_id();
    cx.st.insert_user(User {
        id,
        name: name.to_owned(),
        extension,
        sip_password,
        status: Status::Busy,
        since_unix: cx.now.unix(),
        last_seen: cx.now.unix_ms,
        pair: None,
        last_partner: None,
        last_partner_name: None,
        admitted: !cx.cfg().moderated,
        media_key: None,
        watching_until: 0,
        streams: 0,
        stream_node: None,
        stream_lost_at: None,
        interests: Vec::new(),
        interest_wait: cx.cfg().interest_wait,
        only_interests: false,
        waiting_since: None,
        in_plain_draw: false,
        sip_contact: None,
    });
    Ok(id)
}

/// The next free extension after the cursor, wrapping around the range.
fn free_extension(st: &mut dyn State) -> Result<u32, CoreError> {
    let span = (LAST_EXTENSION - FIRST_EXTENSION + 1) as usize;
    if st.user_count() >= span {
        return Err(CoreError::NoExtension);
    }
    loop {
        let cursor = st.extension_cursor();
        let ext = *cursor;
        *cursor = if ext >= LAST_EXTENSION {
            FIRST_EXTENSION
        } else {
            ext + 1
        };
        if st.user_by_extension(ext).is_none() {
            return Ok(ext);
        }
    }
}

/// Removes a user everywhere: the pool, their pair (the partner is told
/// why and goes `busy`), their sessions, their streams, the PBX. Every way
/// out goes through here. Returns the name as registered.
pub(crate) fn remove(
    cx: &mut Ctx<'_>,
    id: UserId,
    reason: LeaveReason,
    farewell: Option<ServerEvent>,
) -> Result<String, CoreError> {
    if cx.st.user(id).is_none() {
        return Err(CoreError::UserGone);
    }
    cx.fx.deliveries.push(Delivery::Left {
        user: id,
        reason,
        farewell,
    });
    pairs::leave(cx, id, reason);
    let user = cx.st.remove_user(id).ok_or(CoreError::UserGone)?;
    cx.fx.tell_admins(AdminEvent::UserLeft {
        name: user.name.clone(),
        reason,
    });
    sessions::revoke_user(cx.st, id);
    cx.fx.pbx_changed = true;
    Ok(user.name)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::rules::testing::Harness;
    use crate::core::state::StateExt;

    #[test]
    fn extensions_count_up_and_are_unique() {
        let mut h = Harness::new(1);
        let a = h.add("alice");
        let b = h.add("bob");
        assert_eq!(h.st.user(a).unwrap().extension, 111_000);
        assert_eq!(h.st.user(b).unwrap().extension, 111_001);
        remove(&mut h.cx(), a, LeaveReason::LoggedOut, None).unwrap();
        let c = h.add("carol");
        assert_eq!(h.st.user(c).unwrap().extension, 111_002);
        assert_eq!(h.st.by_extension(111_001).unwrap().name, "bob");
    }

    #[test]
    fn extension_wraps_and_skips_those_in_use() {
        let mut h = Harness::new(1);
        let a = h.add("alice");
        *h.st.extension_cursor() = LAST_EXTENSION;
        let b = h.add("bob");
        assert_eq!(h.st.user(b).unwrap().extension, LAST_EXTENSION);
        let c = h.add("carol");
        // 111000 is alice's: skipped.
        assert_eq!(h.st.user(c).unwrap().extension, 111_001);
        assert_eq!(h.st.user(a).unwrap().extension, 111_000);
    }

    #[test]
    fn names_are_unique_regardless_of_case() {
        let mut h = Harness::new(1);
        h.add("Alice");
        assert_eq!(
            super::add(&mut h.cx(), "aLICE").unwrap_err(),
            CoreError::NameTaken("aLICE".into())
        );
        assert_eq!(h.st.find("ALICE").unwrap().name, "Alice");
    }

    #[test]
    fn sip_passwords_are_long_random_and_distinct() {
        let mut h = Harness::new(7);
        let mut seen = std::collections::HashSet::new();
        for i in 0..200 {
            let id = h.add(&format!("user{i}"));
            let pw = h.st.user(id).unwrap().sip_password.clone();
            assert_eq!(pw.len(), SIP_PASSWORD_LEN);
            assert!(pw.bytes().all(|b| b.is_ascii_alphanumeric()));
            assert!(seen.insert(pw));
        }
    }

    #[test]
    fn max_users_is_enforced() {
        let mut h = Harness::new(1);
        h.rules.cfg.max_users = 2;
        h.add("aaa");
        h.add("bbb");
        assert_eq!(
            super::add(&mut h.cx(), "ccc").unwrap_err(),
            CoreError::Full(2)
        );
    }
}

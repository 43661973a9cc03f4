//! What the admins hear: the rows of `GET /v1/admin/users` and
//! `GET /v1/admin/pairs`, built once here for both the views and the
//! [`AdminEvent`]s each change delivers (so an event's row is exactly the
//! row a refresh would read).

use myturn_wire::{AdminEvent, AdminPair, AdminUser, Role, Status};

use crate::core::context::Ctx;
use crate::core::state::{State, User, UserId};

/// A user's row.
pub(crate) fn user_row(u: &User) -> AdminUser {
    AdminUser {
        name: u.name.clone(),
        status: u.status,
        extension: u.extension.to_string(),
        since: u.since_unix,
        admitted: u.admitted,
        interests: u.interests.clone(),
        sip_contact: u.sip_contact.clone(),
    }
}

/// The row of the pair `id` is in (from either side), if any.
pub(crate) fn pair_row(st: &dyn State, id: UserId) -> Option<AdminPair> {
    let u = st.user(id)?;
    let p = u.pair.as_ref()?;
    let peer = st.user(p.peer)?;
    let (caller, callee) = match p.role {
        Role::Caller => (u, peer),
        Role::Callee => (peer, u),
    };
    Some(AdminPair {
        caller: caller.name.clone(),
        callee: callee.name.clone(),
        since: p.since / 1000,
        in_call: caller.status == Status::InCall && callee.status == Status::InCall,
        shared_interests: p.shared.clone(),
        pair_id: p.pair_id.to_hex(),
        call_since: p.call_since.map(|t| t / 1000),
    })
}

/// Whether `u` waits in the waiting room: `ready`, not admitted (only
/// moderated admission leaves anyone unadmitted).
pub(crate) fn in_waiting_room(u: &User) -> bool {
    !u.admitted && u.status == Status::Ready
}

/// Tells the admins `event` about `id`'s current row (nothing if gone).
pub(crate) fn tell_user(cx: &mut Ctx<'_>, id: UserId, event: fn(AdminUser) -> AdminEvent) {
    if let Some(u) = cx.st.user(id) {
        let row = user_row(u);
        cx.fx.tell_admins(event(row));
    }
}

/// Tells the admins `event` about the pair `id` is in (nothing if none).
pub(crate) fn tell_pair(cx: &mut Ctx<'_>, id: UserId, event: fn(AdminPair) -> AdminEvent) {
    if let Some(pair) = pair_row(cx.st, id) {
        cx.fx.tell_admins(event(pair));
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use myturn_wire::{LeaveReason, RelayFigures};

    use super::*;
    use crate::core::cases::account::{Logout, Register};
    use crate::core::cases::moderation::{Admit, Ban, Kick};
    use crate::core::cases::pbx::{RelayChanged, SipBinding};
    use crate::core::effects::Delivery;
    use crate::core::rules::testing::Harness;
    use crate::core::rules::{pairs, users};
    use crate::core::usecase::UseCase;

    /// The admin events among `d`, in order.
    fn admin(d: &[Delivery]) -> Vec<AdminEvent> {
        d.iter()
            .filter_map(|x| match x {
                Delivery::Admin(e) => Some(e.clone()),
                _ => None,
            })
            .collect()
    }

    /// The admin events `h` wrote since the last call.
    fn heard(h: &mut Harness) -> Vec<AdminEvent> {
        admin(&h.take())
    }

    fn run<U: UseCase>(h: &mut Harness, case: U) -> U::Output {
        case.apply(&mut h.cx()).unwrap()
    }

    fn register(h: &mut Harness, name: &str) -> UserId {
        let ip = Ipv4Addr::LOCALHOST.into();
        run(
            h,
            Register {
                name: name.into(),
                ip,
            },
        );
        h.st.user_by_name(name).unwrap()
    }

    /// The (name, status) of each user-row event, with its kind.
    fn rows(events: &[AdminEvent]) -> Vec<(&'static str, String, Status)> {
        events
            .iter()
            .filter_map(|e| {
                let (kind, u) = match e {
                    AdminEvent::UserRegistered { user } => ("registered", user),
                    AdminEvent::UserStatus { user } => ("status", user),
                    AdminEvent::UserInterests { user } => ("interests", user),
                    AdminEvent::WaitingRoomJoined { user } => ("waiting_joined", user),
                    AdminEvent::WaitingRoomLeft { user } => ("waiting_left", user),
                    AdminEvent::UserAdmitted { user } => ("admitted", user),
                    AdminEvent::SipRegistered { user } => ("sip_registered", user),
                    AdminEvent::SipUnregistered { user } => ("sip_unregistered", user),
                    _ => return None,
                };
                Some((kind, u.name.clone(), u.status))
            })
            .collect()
    }

    #[test]
    fn a_registration_tells_the_admins_the_new_row() {
        let mut h = Harness::new(1);
        let a = register(&mut h, "alice");
        let events = heard(&mut h);
        let row = user_row(h.st.user(a).unwrap());
        assert_eq!(events, vec![AdminEvent::UserRegistered { user: row }]);
    }

    #[test]
    fn each_status_change_tells_the_admins_once() {
        let mut h = Harness::new(1);
        let a = register(&mut h, "alice");
        h.take();
        h.status(a, Status::Ready).unwrap();
        assert_eq!(
            rows(&heard(&mut h)),
            vec![("status", "alice".into(), Status::Ready)]
        );
        // Ready again changes nothing: nothing to tell.
        h.status(a, Status::Ready).unwrap();
        assert!(heard(&mut h).is_empty());
        h.status(a, Status::Busy).unwrap();
        assert_eq!(
            rows(&heard(&mut h)),
            vec![("status", "alice".into(), Status::Busy)]
        );
    }

    #[test]
    fn a_pair_is_told_made_started_and_ended() {
        let mut h = Harness::new(3);
        let a = register(&mut h, "alice");
        let b = register(&mut h, "bob");
        h.status(a, Status::Ready).unwrap();
        h.take();
        h.status(b, Status::Ready).unwrap();
        let events = heard(&mut h);
        let made: Vec<&AdminPair> = events
            .iter()
            .filter_map(|e| match e {
                AdminEvent::PairMade { pair } => Some(pair),
                _ => None,
            })
            .collect();
        assert_eq!(made.len(), 1, "{events:?}");
        let pair = made[0].clone();
        assert_eq!(Some(&pair), pair_row(&h.st, a).as_ref());
        let mut names = [pair.caller.clone(), pair.callee.clone()];
        names.sort();
        assert_eq!(names, ["alice".to_owned(), "bob".to_owned()]);
        assert!(!pair.in_call && pair.call_since.is_none());
        // Both users' rows went `paired` too.
        let statuses = rows(&events);
        for n in ["alice", "bob"] {
            assert!(
                statuses.contains(&("status", n.into(), Status::Paired)),
                "{statuses:?}"
            );
        }

        h.status(a, Status::ReadyToTalk).unwrap();
        assert!(!heard(&mut h)
            .iter()
            .any(|e| matches!(e, AdminEvent::CallStarted { .. })));
        h.status(b, Status::ReadyToTalk).unwrap();
        let started: Vec<AdminPair> = heard(&mut h)
            .into_iter()
            .filter_map(|e| match e {
                AdminEvent::CallStarted { pair } => Some(pair),
                _ => None,
            })
            .collect();
        assert_eq!(started.len(), 1);
        assert!(started[0].in_call);
        assert_eq!(started[0].pair_id, pair.pair_id);
        assert_eq!(started[0].call_since, Some(h.t0.unix()));

        h.status(a, Status::Busy).unwrap();
        let ended: Vec<AdminEvent> = heard(&mut h)
            .into_iter()
            .filter(|e| matches!(e, AdminEvent::PairEnded { .. }))
            .collect();
        assert_eq!(
            ended,
            vec![AdminEvent::PairEnded {
                pair_id: pair.pair_id.clone(),
                caller: pair.caller.clone(),
                callee: pair.callee.clone(),
                reason: LeaveReason::HungUp,
                paired_secs: 0,
                call_secs: Some(0),
            }]
        );
    }

    #[test]
    fn every_way_out_tells_the_admins_who_left_and_why() {
        let mut h = Harness::new(5);
        let a = register(&mut h, "alice");
        register(&mut h, "bob");
        register(&mut h, "carol");
        let d = register(&mut h, "dave");
        h.take();
        run(&mut h, Logout { uid: a });
        run(&mut h, Kick { name: "bob".into() });
        run(
            &mut h,
            Ban {
                name: "carol".into(),
                seconds: 60,
            },
        );
        users::remove(&mut h.cx(), d, LeaveReason::Expired, None).unwrap();
        let left: Vec<(String, LeaveReason)> = heard(&mut h)
            .into_iter()
            .filter_map(|e| match e {
                AdminEvent::UserLeft { name, reason } => Some((name, reason)),
                _ => None,
            })
            .collect();
        assert_eq!(
            left,
            vec![
                ("alice".into(), LeaveReason::LoggedOut),
                ("bob".into(), LeaveReason::Kicked),
                ("carol".into(), LeaveReason::Banned),
                ("dave".into(), LeaveReason::Expired),
            ]
        );
    }

    #[test]
    fn a_leaver_in_a_pair_ends_it_before_leaving() {
        let mut h = Harness::new(3);
        let a = register(&mut h, "alice");
        let b = register(&mut h, "bob");
        h.status(a, Status::Ready).unwrap();
        h.status(b, Status::Ready).unwrap();
        h.take();
        run(&mut h, Logout { uid: a });
        let events = heard(&mut h);
        let ended = events.iter().position(|e| {
            matches!(
                e,
                AdminEvent::PairEnded {
                    reason: LeaveReason::LoggedOut,
                    ..
                }
            )
        });
        let left = events
            .iter()
            .position(|e| matches!(e, AdminEvent::UserLeft { name, .. } if name == "alice"));
        assert!(
            matches!((ended, left), (Some(x), Some(y)) if x < y),
            "{events:?}"
        );
        assert!(rows(&events).contains(&("status", "bob".into(), Status::Busy)));
    }

    #[test]
    fn the_waiting_room_is_told_joined_left_and_admitted() {
        let mut h = Harness::new(1);
        h.rules.cfg.moderated = true;
        let a = register(&mut h, "alice");
        h.take();
        h.status(a, Status::Ready).unwrap();
        assert_eq!(
            rows(&heard(&mut h)),
            vec![
                ("status", "alice".into(), Status::Ready),
                ("waiting_joined", "alice".into(), Status::Ready),
            ]
        );
        h.status(a, Status::Busy).unwrap();
        assert_eq!(
            rows(&heard(&mut h)),
            vec![
                ("status", "alice".into(), Status::Busy),
                ("waiting_left", "alice".into(), Status::Busy),
            ]
        );
        h.status(a, Status::Ready).unwrap();
        h.take();
        assert_eq!(run(&mut h, Admit::One("alice".into())), vec!["alice"]);
        let events = heard(&mut h);
        assert_eq!(
            rows(&events),
            vec![("admitted", "alice".into(), Status::Ready)]
        );
        let AdminEvent::UserAdmitted { user } = &events[0] else {
            panic!("{events:?}");
        };
        assert!(user.admitted);
        // Admitted: going busy and ready again is no waiting room.
        h.status(a, Status::Busy).unwrap();
        h.status(a, Status::Ready).unwrap();
        assert!(rows(&heard(&mut h)).iter().all(|r| r.0 == "status"));
    }

    #[test]
    fn open_admission_has_no_waiting_room_to_tell() {
        let mut h = Harness::new(1);
        let a = register(&mut h, "alice");
        h.take();
        h.status(a, Status::Ready).unwrap();
        assert_eq!(
            rows(&heard(&mut h)),
            vec![("status", "alice".into(), Status::Ready)]
        );
    }

    #[test]
    fn new_interests_are_told_and_the_same_ones_are_not() {
        let mut h = Harness::new(1);
        let a = register(&mut h, "alice");
        h.take();
        let wait = h.rules.cfg.interest_wait;
        let tags = vec!["chess".to_owned()];
        pairs::set_interests(&mut h.cx(), a, tags.clone(), wait, false).unwrap();
        let events = heard(&mut h);
        let [AdminEvent::UserInterests { user }] = &events[..] else {
            panic!("{events:?}");
        };
        assert_eq!(user.interests, tags);
        pairs::set_interests(&mut h.cx(), a, tags, wait, false).unwrap();
        assert!(heard(&mut h).is_empty());
    }

    #[test]
    fn sip_bindings_are_told_made_and_gone_once_each() {
        let mut h = Harness::new(1);
        let a = register(&mut h, "alice");
        h.take();
        let bind = |contact: Option<&str>| SipBinding {
            name: "alice".into(),
            contact: contact.map(str::to_owned),
        };
        let contact = "sip:alice@192.0.2.7:5070";
        assert!(run(&mut h, bind(Some(contact))));
        let events = heard(&mut h);
        let [AdminEvent::SipRegistered { user }] = &events[..] else {
            panic!("{events:?}");
        };
        assert_eq!(user.sip_contact.as_deref(), Some(contact));
        assert_eq!(h.st.user(a).unwrap().sip_contact.as_deref(), Some(contact));
        // A refresh of the same binding is no change.
        assert!(!run(&mut h, bind(Some(contact))));
        assert!(heard(&mut h).is_empty());
        assert!(run(&mut h, bind(None)));
        let events = heard(&mut h);
        let [AdminEvent::SipUnregistered { user }] = &events[..] else {
            panic!("{events:?}");
        };
        assert_eq!(user.sip_contact, None);
        // Nobody by that name: nothing to change or tell.
        let ghost = SipBinding {
            name: "nobody".into(),
            contact: Some(contact.into()),
        };
        assert!(!run(&mut h, ghost));
        assert!(heard(&mut h).is_empty());
    }

    #[test]
    fn relay_figures_are_told_as_given() {
        let mut h = Harness::new(1);
        let figures = RelayFigures {
            calls: 1,
            packets: 500,
            bytes: 86_000,
            dropped: 2,
            ports_free: 9,
            ports_capacity: 10,
            sip_bindings: 2,
        };
        run(
            &mut h,
            RelayChanged {
                node: "n1".into(),
                figures,
            },
        );
        assert_eq!(
            heard(&mut h),
            vec![AdminEvent::Relay {
                node: "n1".into(),
                figures
            }]
        );
    }
}

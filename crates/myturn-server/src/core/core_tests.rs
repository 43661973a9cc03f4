//! The core's own tests: use cases through [`Core::apply`].

use std::net::IpAddr;
use std::time::Duration;

use myturn_wire::{LeaveReason, RequestedStatus, ServerEvent};

use super::cases::account::{Authenticate, Refresh, Register, Session};
use super::cases::moderation::Kick;
use super::cases::status::SetStatus;
use super::*;
use crate::clock::{Clock, SystemClock};

fn ip() -> IpAddr {
    std::net::Ipv4Addr::LOCALHOST.into()
}

fn register(core: &mut Core, name: &str, now: At, fx: &mut Effects) -> CreateUser {
    core.apply(
        Register {
            name: name.into(),
            ip: ip(),
        },
        now,
        fx,
    )
    .unwrap()
}

type CreateUser = myturn_wire::CreateUserResponse;

fn authenticate(core: &mut Core, token: &str, now: At) -> Result<Session, CoreError> {
    let claims = core.verify(token, now)?;
    core.apply(Authenticate { claims }, now, &mut Effects::default())
}

fn ready(core: &mut Core, uid: UserId, now: At, fx: &mut Effects) {
    let s = SetStatus::to(uid, RequestedStatus::Ready);
    core.apply(s, now, fx).unwrap();
}

#[test]
fn one_clock_drives_token_expiry() {
    let mut core = Core::new(
        CoreConfig {
            token_ttl: 10,
            ..CoreConfig::default()
        },
        Some(1),
    );
    let now = SystemClock.now();
    let mut fx = Effects::default();
    let r = register(&mut core, "alice", now, &mut fx);
    // The user's wake-ups open, and the admins hear the new row.
    assert!(matches!(
        fx.deliveries[..],
        [
            Delivery::Joined(_),
            Delivery::Admin(myturn_wire::AdminEvent::UserRegistered { .. })
        ]
    ));
    assert!(fx.pbx_changed);
    assert!(authenticate(&mut core, &r.token, now.after(Duration::from_secs(10))).is_ok());
    let late = authenticate(&mut core, &r.token, now.after(Duration::from_secs(11)));
    assert_eq!(late, Err(CoreError::Token(TokenError::Expired)));
}

#[test]
fn a_reused_refresh_token_revokes_its_family() {
    let mut core = Core::new(CoreConfig::default(), Some(2));
    let now = SystemClock.now();
    let mut fx = Effects::default();
    let r = register(&mut core, "alice", now, &mut fx);
    let refresh = || Refresh {
        token: r.refresh_token.clone(),
        ip: ip(),
    };
    let mut fx = Effects::default();
    core.apply(refresh(), now, &mut fx).unwrap();
    assert!(fx.deliveries.is_empty());
    let again = core.apply(refresh(), now, &mut fx);
    assert_eq!(
        again,
        Err(CoreError::Token(TokenError::RefreshReused {
            user: "alice".into()
        }))
    );
    assert!(matches!(fx.deliveries[..], [Delivery::FamilyRevoked(_)]));
    assert_eq!(
        authenticate(&mut core, &r.token, now)
            .unwrap_err()
            .to_string(),
        error::SESSION_ENDED
    );
}

#[test]
fn a_kick_says_goodbye_then_tells_the_partner() {
    let mut core = Core::new(CoreConfig::default(), Some(3));
    let now = SystemClock.now();
    let mut fx = Effects::default();
    let a = register(&mut core, "alice", now, &mut fx);
    let b = register(&mut core, "bob", now, &mut fx);
    let a = authenticate(&mut core, &a.token, now).unwrap().uid;
    let b = authenticate(&mut core, &b.token, now).unwrap().uid;
    ready(&mut core, a, now, &mut fx);
    ready(&mut core, b, now, &mut fx);
    let mut fx = Effects::default();
    let kick = |name: &str| Kick { name: name.into() };
    assert_eq!(core.apply(kick("ALICE"), now, &mut fx).unwrap(), "alice");
    assert_eq!(
        fx.deliveries[0],
        Delivery::Left {
            user: a,
            reason: LeaveReason::Kicked,
            farewell: Some(ServerEvent::Kicked)
        }
    );
    assert!(fx.deliveries.contains(&Delivery::Event(
        b,
        ServerEvent::PeerLeft {
            reason: LeaveReason::Kicked
        }
    )));
    assert!(fx.pbx_changed);
    assert!(matches!(
        core.apply(kick("alice"), now, &mut fx),
        Err(CoreError::NotFound(_))
    ));
}

#[test]
fn a_command_runs_the_same_use_case() {
    let mut core = Core::new(CoreConfig::default(), Some(4));
    let now = SystemClock.now();
    let mut fx = Effects::default();
    let cmd: Command = Register {
        name: "alice".into(),
        ip: ip(),
    }
    .into();
    assert_eq!(cmd.name(), "Register");
    let reply = core.execute(cmd, now, &mut fx).unwrap();
    let out = <Register as Listed>::output(reply).unwrap();
    assert_eq!(out.name, "alice");
    let reply = core
        .execute(cases::views::UserCount.into(), now, &mut fx)
        .unwrap();
    assert_eq!(<Register as Listed>::output(reply.clone()), None);
    assert_eq!(<cases::views::UserCount as Listed>::output(reply), Some(1));
}

//! The core as a sans-IO state machine: driven with injected time (no
//! sleeping, no sockets), and behind the in-memory store from many threads
//! at once, where every user must hear about their pairs in the order they
//! happened.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, Waker};
use std::time::{Duration, Instant};

use myturn_server::clock::At;
use myturn_server::core::cases::{account, moderation, status, streams, views};
use myturn_server::core::{Core, CoreConfig, CoreError, Delivery, Effects, Listed, UserId};
use myturn_server::store::{Deliver, MemoryStore, PbxNotify, Store};
use myturn_wire::{
    Ban, CreateUserResponse, LeaveReason, MeResponse, PeerResponse, RequestedStatus, ServerEvent,
    Status,
};

const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The core, driven by the use cases these tests name, each one
/// `Core::apply`.
struct Driver(Core);

impl Driver {
    fn register(
        &mut self,
        n: &str,
        ip: IpAddr,
        at: At,
        fx: &mut Effects,
    ) -> Result<CreateUserResponse, CoreError> {
        self.0
            .apply(account::Register { name: n.into(), ip }, at, fx)
    }
    fn authenticate(&mut self, token: &str, at: At) -> Result<account::Session, CoreError> {
        let claims = self.0.verify(token, at)?;
        self.0.apply(
            account::Authenticate { claims },
            at,
            &mut Effects::default(),
        )
    }
    fn stream_opened(&mut self, uid: UserId, at: At) {
        let _ = self.0.apply(
            streams::StreamOpened {
                uid,
                node: "n1".into(),
            },
            at,
            &mut Effects::default(),
        );
    }
    fn stream_closed(&mut self, uid: UserId, at: At, last_heard: Instant) {
        let last_heard = at.unix_ms_of(last_heard);
        let closed = streams::StreamClosed { uid, last_heard };
        let _ = self.0.apply(closed, at, &mut Effects::default());
    }
    fn heard(&mut self, uid: UserId, at: At) -> Result<(), CoreError> {
        self.0
            .apply(streams::Heard { uid }, at, &mut Effects::default())
    }
    fn set_status(
        &mut self,
        uid: UserId,
        s: RequestedStatus,
        key: Option<String>,
        at: At,
        fx: &mut Effects,
    ) -> Result<MeResponse, CoreError> {
        let set = status::SetStatus {
            media_key: key,
            ..status::SetStatus::to(uid, s)
        };
        self.0.apply(set, at, fx)
    }
    fn peer_of(&mut self, uid: UserId) -> Result<Option<PeerResponse>, CoreError> {
        self.0
            .apply(status::PeerOf { uid }, never(), &mut Effects::default())
    }
    fn me(&mut self, uid: UserId) -> Result<MeResponse, CoreError> {
        self.0
            .apply(account::Me { uid }, never(), &mut Effects::default())
    }
    fn sweep(&mut self, at: At, fx: &mut Effects) -> streams::Swept {
        self.0.apply(streams::Sweep, at, fx).unwrap()
    }
    fn user_count(&mut self) -> usize {
        self.0
            .apply(views::UserCount, never(), &mut Effects::default())
            .unwrap()
    }
    fn ban(
        &mut self,
        n: &str,
        seconds: u64,
        at: At,
        fx: &mut Effects,
    ) -> Result<(Ban, bool), CoreError> {
        let b = self.0.apply(
            moderation::Ban {
                name: n.into(),
                seconds,
            },
            at,
            fx,
        )?;
        Ok((b.ban, b.online))
    }
}

/// For the use cases that read no time.
fn never() -> At {
    At::new(Instant::now(), 0)
}

fn config() -> CoreConfig {
    CoreConfig {
        liveness: Duration::from_secs(3),
        lease: Duration::from_secs(60),
        stream_grace: Duration::from_secs(3),
        answer_timeout: Duration::from_secs(45),
        rate_limits: false,
        ..CoreConfig::default()
    }
}

fn events_for(fx: &Effects, uid: u64) -> Vec<ServerEvent> {
    fx.deliveries
        .iter()
        .filter_map(|d| match d {
            Delivery::Event(u, e) if *u == uid => Some(e.clone()),
            _ => None,
        })
        .collect()
}

#[test]
fn the_core_runs_on_injected_time() {
    let mut core = Driver(Core::new(config(), Some(9)));
    let t0 = At::new(Instant::now(), 1_800_000_000_000);
    let at = |s: u64| t0.after(Duration::from_secs(s));
    let mut fx = Effects::default();
    let alice = core.register("alice", IP, t0, &mut fx).unwrap();
    let bob = core.register("bob", IP, t0, &mut fx).unwrap();
    let a = core.authenticate(&alice.token, t0).unwrap().uid;
    let b = core.authenticate(&bob.token, t0).unwrap().uid;
    core.stream_opened(a, t0);
    core.stream_opened(b, t0);
    core.set_status(a, RequestedStatus::Ready, None, t0, &mut fx)
        .unwrap();
    core.set_status(b, RequestedStatus::Ready, None, t0, &mut fx)
        .unwrap();
    assert!(core.peer_of(a).unwrap().is_some());
    for s in [a, b] {
        core.set_status(s, RequestedStatus::ReadyToTalk, None, at(1), &mut fx)
            .unwrap();
    }
    assert_eq!(core.me(a).unwrap().status, Status::InCall);

    // Alice's stream dies at 1 s; within the grace nothing happens.
    core.stream_closed(a, at(1), at(1).mono);
    core.heard(b, at(3)).unwrap();
    let mut fx = Effects::default();
    assert!(core.sweep(at(3), &mut fx).ghosts.is_empty());
    assert!(fx.deliveries.is_empty());
    // Past it, alice leaves the call and bob hears why.
    let swept = core.sweep(at(5), &mut fx);
    assert_eq!(swept.ghosts, vec!["alice".to_owned()]);
    assert!(events_for(&fx, b).contains(&ServerEvent::PeerLeft {
        reason: LeaveReason::Disconnected
    }));
    assert_eq!(core.me(a).unwrap().status, Status::Busy);

    // Bob's stream stays open (a watcher): the lease spares him. Alice
    // has none and is last heard at 1 s: out at 61 s, not before.
    let mut fx = Effects::default();
    assert!(core.sweep(at(60), &mut fx).expired.is_empty());
    let swept = core.sweep(at(62), &mut fx);
    assert_eq!(swept.expired, vec!["alice".to_owned()]);
    assert!(fx.pbx_changed);
    assert!(core.authenticate(&alice.token, at(62)).is_err());
    assert_eq!(core.user_count(), 1);

    // Tokens expire on the core's clock, not the wall clock: bob's token
    // (900 s) is good at 900 s and refused at 901 s.
    assert!(core.authenticate(&bob.token, at(900)).is_ok());
    assert!(core.authenticate(&bob.token, at(901)).is_err());
}

#[test]
fn bans_and_rate_limits_follow_the_injected_clock() {
    let mut core = Driver(Core::new(
        CoreConfig {
            rate_limits: true,
            ..config()
        },
        Some(10),
    ));
    let t0 = At::new(Instant::now(), 1_800_000_000_000);
    let mut fx = Effects::default();
    let (ban, online) = core.ban("mallory", 60, t0, &mut fx).unwrap();
    assert_eq!(
        (ban.until, online),
        (1_800_000_000 + 60, false),
        "the end is the core's wall clock plus the length"
    );
    assert_eq!(
        core.register("Mallory", IP, t0, &mut fx).unwrap_err(),
        CoreError::Banned { remaining_secs: 60 }
    );
    let later = t0.after(Duration::from_secs(61));
    assert!(core.register("mallory", IP, later, &mut fx).is_ok());
    // Registrations per IP: 10 at once, then one every 6 s.
    let other: IpAddr = Ipv4Addr::new(192, 0, 2, 7).into();
    for i in 0..10 {
        core.register(&format!("user{i}"), other, t0, &mut fx)
            .unwrap();
    }
    assert!(matches!(
        core.register("user10", other, t0, &mut fx),
        Err(CoreError::RateLimited { .. })
    ));
    assert!(core
        .register("user10", other, t0.after(Duration::from_secs(6)), &mut fx)
        .is_ok());
}

/// Records what each user hears, in delivery order.
#[derive(Debug, Default)]
struct Recorder(Mutex<HashMap<u64, Vec<ServerEvent>>>);

impl Deliver for Recorder {
    fn deliver(&self, deliveries: Vec<Delivery>) -> usize {
        let mut heard = self.0.lock().unwrap();
        for d in deliveries {
            if let Delivery::Event(u, e) = d {
                heard.entry(u).or_default().push(e);
            }
        }
        0
    }
}

#[derive(Debug, Default)]
struct NoPbx;

impl PbxNotify for NoPbx {
    fn changed(&self) -> u64 {
        0
    }
}

/// Runs a use case through the store; its answer.
fn run<U: Listed>(store: &MemoryStore, cmd: myturn_server::core::Command, at: At) -> U::Output {
    U::output(now_or_never(store.execute(cmd, at)).unwrap().reply).unwrap()
}

/// Checks a token with the store's core's signer.
fn store_core_verify(store: &MemoryStore, token: &str) -> myturn_server::core::Claims {
    let mut claims = None;
    store.inspect(&mut |c| claims = Some(c.verify(token, never()).unwrap()));
    claims.unwrap()
}

/// The in-memory store answers at the first poll.
fn now_or_never<T>(f: impl Future<Output = T>) -> T {
    let mut f = std::pin::pin!(f);
    match f.as_mut().poll(&mut Context::from_waker(Waker::noop())) {
        Poll::Ready(v) => v,
        Poll::Pending => panic!("the in-memory store must answer at once"),
    }
}

#[test]
fn concurrent_use_cases_are_heard_in_the_order_they_happened() {
    let sink = Arc::new(Recorder::default());
    let store = Arc::new(MemoryStore::new(
        Core::new(config(), Some(11)),
        sink.clone(),
        Arc::new(NoPbx),
    ));
    let now = || At::new(Instant::now(), 1_800_000_000_000);
    let mut users = Vec::new();
    for i in 0..16 {
        let register = account::Register {
            name: format!("user{i}"),
            ip: IP,
        };
        let r = run::<account::Register>(&store, register.into(), now());
        let claims = store_core_verify(&store, &r.token);
        users.push(
            run::<account::Authenticate>(&store, account::Authenticate { claims }.into(), now())
                .uid,
        );
    }
    let threads: Vec<_> = users
        .chunks(2)
        .enumerate()
        .map(|(t, mine)| {
            let (store, mine) = (store.clone(), mine.to_vec());
            std::thread::spawn(move || {
                for round in 0..300 {
                    for (k, &u) in mine.iter().enumerate() {
                        // Mostly draws; now and then a hang-up.
                        let status = if (round + k + t) % 5 == 0 {
                            RequestedStatus::Busy
                        } else {
                            RequestedStatus::Ready
                        };
                        let set = status::SetStatus::to(u, status);
                        let _ = now_or_never(store.execute(set.into(), now()));
                    }
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let heard = sink.0.lock().unwrap();
    let mut pairs = 0;
    for u in &users {
        // Paired, then the pair ends (the partner left, or this user
        // moved on), then maybe paired again: never out of that order.
        let mut in_pair = false;
        for e in heard.get(u).into_iter().flatten() {
            match e {
                ServerEvent::Paired { .. } => {
                    assert!(!in_pair, "user {u} paired twice without the pair ending");
                    in_pair = true;
                    pairs += 1;
                }
                ServerEvent::PeerLeft { .. } => {
                    assert!(in_pair, "user {u} heard peer_left outside a pair");
                    in_pair = false;
                }
                ServerEvent::Status {
                    status: Status::Ready | Status::Busy,
                } => in_pair = false,
                _ => {}
            }
        }
    }
    assert!(pairs > 100, "the threads hardly paired ({pairs})");
}

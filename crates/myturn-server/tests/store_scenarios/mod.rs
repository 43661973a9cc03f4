//! The store conformance suite: every scenario runs, unchanged, against
//! each `Store` (the in-memory one in `tests/store_memory.rs`, Redis in
//! `tests/interop/store_redis.rs`). They drive the store only through
//! `Store::execute`, at injected times, and judge by replies and by what
//! each user hears.
#![allow(dead_code)]

use std::collections::HashMap;
use std::future::Future;
use std::net::{IpAddr, Ipv4Addr};
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use myturn_server::clock::At;
use myturn_server::core::cases::{account, lobby, moderation, status, streams, views};
use myturn_server::core::matching::PairKind;
use myturn_server::core::{
    Command, CoreConfig, CoreError, Delivery, Jwt, Listed, Rules, TokenError, UserId,
};
use myturn_server::store::{Deliver, PbxNotify, Store, StoreError};
use myturn_wire::{LeaveReason, RequestedStatus, Role, ServerEvent, Status};

pub const IP: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

/// The configuration every scenario's store runs with.
pub fn config() -> CoreConfig {
    CoreConfig {
        liveness: Duration::from_secs(3),
        lease: Duration::from_secs(60),
        stream_grace: Duration::from_secs(3),
        answer_timeout: Duration::from_secs(45),
        rate_limits: false,
        interest_wait: Duration::from_secs(8),
        ..CoreConfig::default()
    }
}

/// Records what each user hears, in delivery order, and the PBX's pokes.
#[derive(Debug, Default)]
pub struct Recorder {
    pub heard: Mutex<HashMap<UserId, Vec<ServerEvent>>>,
    pub all: Mutex<Vec<Delivery>>,
}

impl Deliver for Recorder {
    fn deliver(&self, deliveries: Vec<Delivery>) -> usize {
        let mut heard = self.heard.lock().unwrap();
        for d in &deliveries {
            if let Delivery::Event(u, e) = d {
                heard.entry(*u).or_default().push(e.clone());
            }
        }
        self.all.lock().unwrap().extend(deliveries);
        0
    }
}

#[derive(Debug, Default)]
pub struct Pokes(pub std::sync::atomic::AtomicU64);

impl PbxNotify for Pokes {
    fn changed(&self) -> u64 {
        self.0.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1
    }
}

/// A store under test, built by its suite's file.
pub type Build = Box<
    dyn Fn(
        CoreConfig,
        Arc<Recorder>,
        Arc<Pokes>,
    ) -> Pin<Box<dyn Future<Output = (Arc<dyn Store>, Arc<Jwt>)> + Send>>,
>;

/// The rules both stores run: `cfg`, a signer seeded from `seed`.
pub fn rules(cfg: CoreConfig, seed: u64) -> Rules {
    use rand::SeedableRng;
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    Rules {
        jwt: Arc::new(Jwt::new(&mut rng, cfg.token_ttl)),
        cfg,
        matching: Default::default(),
        blocklist: Default::default(),
    }
}

/// A scenario's world: the store, what users heard, the time.
pub struct World {
    pub store: Arc<dyn Store>,
    pub jwt: Arc<Jwt>,
    pub rec: Arc<Recorder>,
    pub pokes: Arc<Pokes>,
    pub t0: At,
}

impl World {
    pub async fn new(build: &Build, cfg: CoreConfig) -> World {
        let (rec, pokes) = (Arc::new(Recorder::default()), Arc::new(Pokes::default()));
        let (store, jwt) = build(cfg, rec.clone(), pokes.clone()).await;
        World {
            store,
            jwt,
            rec,
            pokes,
            t0: At::new(Instant::now(), 1_800_000_000_000),
        }
    }

    pub fn at(&self, secs: u64) -> At {
        self.t0.after(Duration::from_secs(secs))
    }

    pub async fn run<U: Listed>(&self, case: U, at: At) -> Result<U::Output, CoreError> {
        match self.store.execute(case.into(), at).await {
            Ok(out) => Ok(U::output(out.reply).expect("the reply of its own command")),
            Err(StoreError::Refused(e)) => Err(e),
            Err(e) => panic!("store failed: {e}"),
        }
    }

    pub async fn exec(&self, cmd: Command, at: At) -> myturn_server::store::Outcome {
        self.store.execute(cmd, at).await.unwrap()
    }

    /// Registers `name` at `at`: its id and tokens.
    pub async fn register(&self, name: &str, at: At) -> (UserId, myturn_wire::CreateUserResponse) {
        let r = self
            .run(
                account::Register {
                    name: name.into(),
                    ip: IP,
                },
                at,
            )
            .await
            .unwrap();
        let claims = self.jwt.verify(&r.token, at.unix()).unwrap();
        (claims.uid, r)
    }

    pub async fn ready(&self, uid: UserId, at: At) -> myturn_wire::MeResponse {
        self.run(status::SetStatus::to(uid, RequestedStatus::Ready), at)
            .await
            .unwrap()
    }

    pub async fn ready_with(&self, uid: UserId, tags: &[&str], only: bool, at: At) {
        let set = status::SetStatus {
            interests: Some(status::Interests {
                tags: tags.iter().map(|s| (*s).to_owned()).collect(),
                wait_secs: None,
                only,
            }),
            ..status::SetStatus::to(uid, RequestedStatus::Ready)
        };
        self.run(set, at).await.unwrap();
    }

    pub async fn busy(&self, uid: UserId, at: At) {
        self.run(status::SetStatus::to(uid, RequestedStatus::Busy), at)
            .await
            .unwrap();
    }

    pub async fn peer(&self, uid: UserId, at: At) -> Option<myturn_wire::PeerResponse> {
        self.run(status::PeerOf { uid }, at).await.unwrap()
    }

    pub async fn sweep(&self, at: At) -> streams::Swept {
        self.run(streams::Sweep, at).await.unwrap()
    }

    pub fn heard(&self, uid: UserId) -> Vec<ServerEvent> {
        self.rec
            .heard
            .lock()
            .unwrap()
            .get(&uid)
            .cloned()
            .unwrap_or_default()
    }
}

// ---- the scenarios ----------------------------------------------------

pub async fn users_names_extensions_and_sessions(build: &Build) {
    let w = World::new(build, config()).await;
    let (a, ra) = w.register("Alice", w.t0).await;
    let (b, rb) = w.register("bob", w.t0).await;
    assert_ne!(a, b);
    assert_eq!(ra.sip.extension, "111000");
    assert_eq!(rb.sip.extension, "111001");
    assert_eq!(ra.sip.password.len(), 24);
    let taken = w
        .run(
            account::Register {
                name: "ALICE".into(),
                ip: IP,
            },
            w.t0,
        )
        .await;
    assert_eq!(taken.unwrap_err(), CoreError::NameTaken("ALICE".into()));
    let claims = w.jwt.verify(&ra.token, w.t0.unix()).unwrap();
    let s = w.run(account::Authenticate { claims }, w.t0).await.unwrap();
    assert_eq!(
        (s.uid, s.name.as_str(), s.status),
        (a, "Alice", Status::Busy)
    );
    assert_eq!(w.run(views::UserCount, w.t0).await.unwrap(), 2);
    // Logging out frees the name and the extension's user.
    assert_eq!(
        w.run(account::Logout { uid: a }, w.t0).await.unwrap(),
        "Alice"
    );
    let claims = w.jwt.verify(&ra.token, w.t0.unix()).unwrap();
    assert_eq!(
        w.run(account::Authenticate { claims }, w.t0)
            .await
            .unwrap_err()
            .code(),
        "unauthorized"
    );
    let (_, again) = w.register("alice", w.t0).await;
    assert_eq!(again.sip.extension, "111002");
    let pbx = w.run(views::PbxUsers, w.t0).await.unwrap();
    let exts: Vec<u32> = pbx.iter().map(|u| u.extension).collect();
    assert_eq!(exts, vec![111_001, 111_002]);
    assert!(w.pokes.0.load(std::sync::atomic::Ordering::Relaxed) >= 3);
}

pub async fn a_reused_refresh_token_revokes_its_family(build: &Build) {
    let w = World::new(build, config()).await;
    let (_, r) = w.register("alice", w.t0).await;
    let refresh = || account::Refresh {
        token: r.refresh_token.clone(),
        ip: IP,
    };
    let pair = w.run(refresh(), w.t0).await.unwrap();
    assert_ne!(pair.refresh_token, r.refresh_token);
    let again = w.run(refresh(), w.t0).await;
    assert_eq!(
        again.unwrap_err(),
        CoreError::Token(TokenError::RefreshReused {
            user: "alice".into()
        })
    );
    assert!(w
        .rec
        .all
        .lock()
        .unwrap()
        .iter()
        .any(|d| matches!(d, Delivery::FamilyRevoked(_))));
    // The thief's new token is dead too.
    let next = account::Refresh {
        token: pair.refresh_token,
        ip: IP,
    };
    assert_eq!(
        w.run(next, w.t0).await.unwrap_err(),
        CoreError::Token(TokenError::UnknownRefresh)
    );
    let claims = w.jwt.verify(&r.token, w.t0.unix()).unwrap();
    assert_eq!(
        w.run(account::Authenticate { claims }, w.t0)
            .await
            .unwrap_err(),
        CoreError::SessionEnded
    );
}

pub async fn two_ready_users_are_paired_and_both_hear_it(build: &Build) {
    let w = World::new(build, config()).await;
    let (a, _) = w.register("alice", w.t0).await;
    let (b, _) = w.register("bob", w.t0).await;
    assert_eq!(w.ready(a, w.t0).await.status, Status::Ready);
    assert!(w.peer(a, w.t0).await.is_none());
    assert_eq!(w.ready(b, w.t0).await.status, Status::Paired);
    let (pa, pb) = (
        w.peer(a, w.t0).await.unwrap(),
        w.peer(b, w.t0).await.unwrap(),
    );
    assert_eq!(
        (pa.peer.name.as_str(), pb.peer.name.as_str()),
        ("bob", "alice")
    );
    assert_eq!(pa.role, pb.role.opposite());
    assert_eq!(pa.pair_id, pb.pair_id);
    for u in [a, b] {
        assert!(w
            .heard(u)
            .iter()
            .any(|e| matches!(e, ServerEvent::Paired { .. })));
    }
    // Ready to talk on both sides: in call.
    for u in [a, b] {
        w.run(status::SetStatus::to(u, RequestedStatus::ReadyToTalk), w.t0)
            .await
            .unwrap();
    }
    let pairs = w.run(views::Pairs, w.t0).await.unwrap();
    assert_eq!(pairs.pairs.len(), 1);
    assert!(pairs.pairs[0].in_call);
    let caller = if pa.role == Role::Caller {
        "alice"
    } else {
        "bob"
    };
    assert_eq!(pairs.pairs[0].caller, caller);
    // A hang-up frees the partner, who hears why.
    w.busy(a, w.t0).await;
    assert!(w.heard(b).contains(&ServerEvent::PeerLeft {
        reason: LeaveReason::HungUp
    }));
    let counts = w.run(views::Counts, w.t0).await.unwrap();
    assert_eq!(counts.pairings_total, 1);
}

pub async fn the_same_two_are_not_paired_again_while_someone_else_waits(build: &Build) {
    let w = World::new(build, config()).await;
    let (a, _) = w.register("alice", w.t0).await;
    let (b, _) = w.register("bob", w.t0).await;
    let (d, _) = w.register("dave", w.t0).await;
    w.ready_with(a, &["x1", "y1"], false, w.t0).await;
    w.ready_with(b, &["x1"], false, w.t0).await;
    assert_eq!(w.peer(a, w.t0).await.unwrap().peer.name, "bob");
    w.busy(a, w.t0).await;
    // Bob and dave wait, sharing nothing with each other but each a tag
    // with alice, who was last with bob: she gets dave.
    w.ready_with(b, &["x1"], true, w.t0).await;
    w.ready_with(d, &["y1"], true, w.t0).await;
    assert!(w.peer(b, w.t0).await.is_none());
    w.ready_with(a, &["x1", "y1"], false, w.t0).await;
    assert_eq!(w.peer(a, w.t0).await.unwrap().peer.name, "dave");
    // Nobody else waits: the last partner is taken rather than waiting.
    w.busy(a, w.t0).await;
    w.ready_with(a, &["x1"], false, w.t0).await;
    assert_eq!(w.peer(a, w.t0).await.unwrap().peer.name, "bob");
}

pub async fn interests_pair_by_a_shared_one_then_fall_back(build: &Build) {
    let w = World::new(build, config()).await;
    let (a, _) = w.register("alice", w.t0).await;
    let (b, _) = w.register("bob", w.t0).await;
    let (c, _) = w.register("carol", w.t0).await;
    let (d, _) = w.register("dave", w.t0).await;
    w.ready_with(a, &["Music"], false, w.t0).await;
    w.ready(b, w.t0).await;
    assert!(w.peer(b, w.t0).await.is_none(), "within alice's wait");
    w.ready_with(c, &["chess", "music"], false, w.at(1)).await;
    let pc = w.peer(c, w.at(1)).await.unwrap();
    assert_eq!(pc.peer.name, "alice");
    assert_eq!(pc.shared_interests, vec!["music".to_owned()]);
    // Dave gives a tag nobody shares; bob waits plain: they meet at dave's
    // fallback, exactly when his 8 s run out.
    w.ready_with(d, &["jazz"], false, w.at(2)).await;
    let out = w
        .exec(
            streams::Sweep.into(),
            w.t0.after(Duration::from_millis(9_999)),
        )
        .await;
    assert!(out.pairings.is_empty());
    assert_eq!(out.wake_at, Some(w.at(10).unix_ms));
    let out = w.exec(streams::Sweep.into(), w.at(10)).await;
    assert_eq!(out.pairings.len(), 1);
    assert_eq!(out.pairings[0].kind, PairKind::Fallback);
    assert_eq!(w.peer(d, w.at(10)).await.unwrap().peer.name, "bob");
    let interests = w.run(views::Interests, w.at(10)).await.unwrap();
    assert_eq!(interests.waiting, 0);
}

pub async fn only_interests_never_fall_back(build: &Build) {
    let mut cfg = config();
    cfg.lease = Duration::from_secs(86_400);
    let w = World::new(build, cfg).await;
    let (a, _) = w.register("alice", w.t0).await;
    let (b, _) = w.register("bob", w.t0).await;
    w.ready_with(a, &["jazz"], true, w.t0).await;
    w.ready(b, w.t0).await;
    for s in [8, 60, 3600] {
        w.sweep(w.at(s)).await;
        assert!(w.peer(a, w.at(s)).await.is_none(), "at {s} s");
    }
    let v = w.run(views::Interests, w.at(3600)).await.unwrap();
    assert_eq!((v.waiting, v.with_interests), (2, 1));
    assert_eq!(v.top[0].tag, "jazz");
}

pub async fn a_closed_stream_past_the_grace_ends_the_pair(build: &Build) {
    let w = World::new(build, config()).await;
    let (a, _) = w.register("alice", w.t0).await;
    let (b, _) = w.register("bob", w.t0).await;
    for u in [a, b] {
        w.run(
            streams::StreamOpened {
                uid: u,
                node: "n1".into(),
            },
            w.t0,
        )
        .await
        .unwrap();
        w.ready(u, w.t0).await;
    }
    assert!(w.peer(a, w.t0).await.is_some());
    w.run(
        streams::StreamClosed {
            uid: a,
            last_heard: w.at(1).unix_ms,
        },
        w.at(1),
    )
    .await
    .unwrap();
    w.run(streams::Heard { uid: b }, w.at(3)).await.unwrap();
    assert!(w.sweep(w.at(3)).await.ghosts.is_empty());
    assert_eq!(w.sweep(w.at(5)).await.ghosts, vec!["alice".to_owned()]);
    assert!(w.heard(b).contains(&ServerEvent::PeerLeft {
        reason: LeaveReason::Disconnected
    }));
}

pub async fn a_dead_nodes_streams_close_with_it(build: &Build) {
    let w = World::new(build, config()).await;
    let (a, _) = w.register("alice", w.t0).await;
    let (b, _) = w.register("bob", w.t0).await;
    w.run(
        streams::StreamOpened {
            uid: a,
            node: "n2".into(),
        },
        w.t0,
    )
    .await
    .unwrap();
    w.run(
        streams::StreamOpened {
            uid: b,
            node: "n1".into(),
        },
        w.t0,
    )
    .await
    .unwrap();
    w.ready(a, w.t0).await;
    w.ready(b, w.t0).await;
    let gone = w
        .run(
            streams::NodeGone {
                node: "n2".into(),
                at: w.at(1).unix_ms,
            },
            w.at(2),
        )
        .await
        .unwrap();
    assert_eq!(gone, vec!["alice".to_owned()]);
    w.run(streams::Heard { uid: b }, w.at(4)).await.unwrap();
    assert_eq!(w.sweep(w.at(5)).await.ghosts, vec!["alice".to_owned()]);
    assert!(w.heard(b).contains(&ServerEvent::PeerLeft {
        reason: LeaveReason::Disconnected
    }));
}

pub async fn silent_users_expire_and_unanswered_pairs_end(build: &Build) {
    let w = World::new(build, config()).await;
    let (_alice, _) = w.register("alice", w.t0).await;
    let (b, _) = w.register("bob", w.t0).await;
    let (c, _) = w.register("carol", w.t0).await;
    let (d, _) = w.register("dave", w.t0).await;
    // Bob keeps a long-poll open; alice says nothing after 0 s.
    w.run(
        streams::Watch {
            uid: b,
            until: Some(w.at(90).unix_ms),
        },
        w.t0,
    )
    .await
    .unwrap();
    w.ready(c, w.at(10)).await;
    w.ready(d, w.at(10)).await;
    // carol and dave never got ready to talk: ended after 45 s.
    assert!(w.sweep(w.at(54)).await.unanswered.is_empty());
    let swept = w.sweep(w.at(56)).await;
    assert_eq!(swept.unanswered.len(), 1);
    for u in [c, d] {
        assert!(w.heard(u).contains(&ServerEvent::PeerLeft {
            reason: LeaveReason::NoAnswer
        }));
        // They are still there (a request at 56 s).
        w.run(
            streams::Watch {
                uid: u,
                until: None,
            },
            w.at(56),
        )
        .await
        .unwrap();
    }
    assert!(w.sweep(w.at(60)).await.expired.is_empty());
    let swept = w.sweep(w.at(61)).await;
    assert_eq!(swept.expired, vec!["alice".to_owned()]);
    assert_eq!(w.run(views::UserCount, w.at(61)).await.unwrap(), 3);
}

pub async fn an_authenticated_request_counts_as_activity(build: &Build) {
    let w = World::new(build, config()).await;
    let (a, ra) = w.register("alice", w.t0).await;
    let (_b, _) = w.register("bob", w.t0).await;
    // Alice's requests at 30 s and 50 s keep her for the lease after the
    // last one; bob, silent, goes when his runs out.
    for at in [30, 50] {
        let claims = w.jwt.verify(&ra.token, w.at(at).unix()).unwrap();
        let s = w.run(account::Authenticate { claims }, w.at(at)).await;
        assert_eq!(s.unwrap().uid, a);
    }
    assert!(w.sweep(w.at(60)).await.expired.is_empty());
    assert_eq!(w.sweep(w.at(61)).await.expired, vec!["bob".to_owned()]);
    assert!(w.sweep(w.at(110)).await.expired.is_empty());
    assert_eq!(w.sweep(w.at(111)).await.expired, vec!["alice".to_owned()]);
    assert_eq!(w.run(views::UserCount, w.at(111)).await.unwrap(), 0);
}

pub async fn the_figures_count_users_by_status(build: &Build) {
    let w = World::new(build, config()).await;
    let figures = |f: views::Figures| {
        f.by_status
            .iter()
            .map(|(s, n)| (s.as_str(), *n))
            .filter(|&(_, n)| n > 0)
            .collect::<Vec<_>>()
    };
    let (a, _) = w.register("alice", w.t0).await;
    let (b, _) = w.register("bob", w.t0).await;
    let (c, _) = w.register("carol", w.t0).await;
    w.ready(a, w.t0).await;
    let f = w.run(views::Counts, w.t0).await.unwrap();
    assert_eq!(figures(f.clone()), vec![("busy", 2), ("ready", 1)]);
    assert_eq!(f.waiting, 1);
    w.ready(b, w.t0).await;
    let f = w.run(views::Counts, w.t0).await.unwrap();
    assert_eq!(figures(f.clone()), vec![("busy", 1), ("paired", 2)]);
    assert_eq!((f.waiting, f.pairings_total), (0, 1));
    // Alice leaves: bob goes back to busy; carol is gone too.
    w.run(account::Logout { uid: a }, w.t0).await.unwrap();
    w.run(account::Logout { uid: c }, w.t0).await.unwrap();
    let f = w.run(views::Counts, w.t0).await.unwrap();
    assert_eq!(figures(f), vec![("busy", 1)]);
}

pub async fn moderation_bans_kicks_reports_and_admits(build: &Build) {
    let mut cfg = config();
    cfg.moderated = true;
    let w = World::new(build, cfg).await;
    let (a, _) = w.register("alice", w.t0).await;
    let (b, _) = w.register("bob", w.t0).await;
    let (m, _) = w.register("mallory", w.t0).await;
    for u in [a, b] {
        w.ready(u, w.t0).await;
    }
    assert!(
        w.peer(a, w.t0).await.is_none(),
        "the waiting room holds them"
    );
    let admitted = w.run(moderation::Admit::All, w.t0).await.unwrap();
    assert_eq!(admitted.len(), 2);
    assert!(w.peer(a, w.t0).await.is_some());
    let reported = w
        .run(
            moderation::Report {
                uid: a,
                reason: "rude".into(),
            },
            w.t0,
        )
        .await
        .unwrap();
    assert_eq!(reported, "bob");
    assert_eq!(w.run(views::Reports, w.t0).await.unwrap().reports.len(), 1);
    let banned = w
        .run(
            moderation::Ban {
                name: "Mallory".into(),
                seconds: 60,
            },
            w.t0,
        )
        .await
        .unwrap();
    assert!(banned.online);
    assert!(w
        .rec
        .all
        .lock()
        .unwrap()
        .iter()
        .any(|d| matches!(d, Delivery::Left { user, .. } if *user == m)));
    let again = w
        .run(
            account::Register {
                name: "mallory".into(),
                ip: IP,
            },
            w.at(1),
        )
        .await;
    assert_eq!(again.unwrap_err(), CoreError::Banned { remaining_secs: 59 });
    assert_eq!(w.run(views::Bans, w.at(1)).await.unwrap().bans.len(), 1);
    w.run(
        moderation::Unban {
            name: "MALLORY".into(),
        },
        w.at(1),
    )
    .await
    .unwrap();
    assert!(w.run(views::Bans, w.at(1)).await.unwrap().bans.is_empty());
    assert_eq!(
        w.run(moderation::Kick { name: "bob".into() }, w.at(1))
            .await
            .unwrap(),
        "bob"
    );
    assert!(w.heard(a).contains(&ServerEvent::PeerLeft {
        reason: LeaveReason::Kicked
    }));
}

pub async fn the_lobby_and_its_rate_limit(build: &Build) {
    let mut cfg = config();
    cfg.rate_limits = true;
    let w = World::new(build, cfg).await;
    let (a, _) = w.register("alice", w.t0).await;
    let (b, _) = w.register("bob", w.t0).await;
    let say = |uid: UserId| lobby::LobbySay {
        speaker: lobby::Speaker::User(uid),
        text: "hi".into(),
    };
    assert_eq!(
        w.run(say(a), w.t0).await.unwrap_err(),
        CoreError::NotInLobby
    );
    w.ready_with(a, &["x1"], true, w.t0).await;
    w.ready_with(b, &["y1"], true, w.t0).await;
    let before = w.rec.all.lock().unwrap().len();
    for _ in 0..5 {
        w.run(say(a), w.t0).await.unwrap();
    }
    assert!(matches!(
        w.run(say(a), w.t0).await,
        Err(CoreError::RateLimited { .. })
    ));
    let lines: Vec<Vec<UserId>> = w.rec.all.lock().unwrap()[before..]
        .iter()
        .filter_map(|d| match d {
            Delivery::Lobby { members, .. } => {
                let mut m = members.clone();
                m.sort_unstable();
                Some(m)
            }
            _ => None,
        })
        .collect();
    assert_eq!(lines.len(), 5);
    let mut both = vec![a, b];
    both.sort_unstable();
    assert!(lines.iter().all(|m| *m == both));
    // Two seconds later one more line is allowed.
    w.run(say(a), w.at(2)).await.unwrap();
}

/// Many tasks at once (on a store shared by them): a perfect matching,
/// and every user hears its pairs and their ends in order.
pub async fn concurrent_draws_make_a_perfect_matching(build: &Build) {
    let w = Arc::new(World::new(build, config()).await);
    let mut users = Vec::new();
    for i in 0..16 {
        users.push(w.register(&format!("user{i}"), w.t0).await.0);
    }
    let mut tasks = Vec::new();
    for (t, mine) in users.chunks(2).enumerate() {
        let (w, mine) = (w.clone(), mine.to_vec());
        tasks.push(tokio::spawn(async move {
            for round in 0..30 {
                for (k, &u) in mine.iter().enumerate() {
                    let s = if (round + k + t) % 5 == 0 {
                        RequestedStatus::Busy
                    } else {
                        RequestedStatus::Ready
                    };
                    let _ = w.run(status::SetStatus::to(u, s), w.t0).await;
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let heard = w.rec.heard.lock().unwrap().clone();
    let mut pairs = 0;
    for u in &users {
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
    assert!(pairs > 20, "the tasks hardly paired ({pairs})");
    let listed = w.run(views::Pairs, w.t0).await.unwrap();
    let mut seen = std::collections::HashSet::new();
    for p in &listed.pairs {
        assert!(seen.insert(p.caller.clone()) && seen.insert(p.callee.clone()));
    }
}

/// Every scenario, in one list, for the suites: `$build` is an
/// `Option<Build>` (`None`: the store cannot run here; the test returns).
#[macro_export]
macro_rules! store_suite {
    ($build:expr) => {
        $crate::store_suite!(@ $build;
            users_names_extensions_and_sessions,
            a_reused_refresh_token_revokes_its_family,
            two_ready_users_are_paired_and_both_hear_it,
            the_same_two_are_not_paired_again_while_someone_else_waits,
            interests_pair_by_a_shared_one_then_fall_back,
            only_interests_never_fall_back,
            a_closed_stream_past_the_grace_ends_the_pair,
            a_dead_nodes_streams_close_with_it,
            silent_users_expire_and_unanswered_pairs_end,
            an_authenticated_request_counts_as_activity,
            the_figures_count_users_by_status,
            moderation_bans_kicks_reports_and_admits,
            the_lobby_and_its_rate_limit,
            concurrent_draws_make_a_perfect_matching,
        );
    };
    (@ $build:expr; $($name:ident,)*) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                let Some(build) = $build else { return };
                store_scenarios::$name(&build).await;
            }
        )*
    };
}

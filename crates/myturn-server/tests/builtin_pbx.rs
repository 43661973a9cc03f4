//! The server with its default built-in PBX, over real HTTP and real UDP:
//! users get credentials from the API, register two myturn-sip agents with
//! them, call each other by extension, and lose their binding the moment
//! they log out.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::Live;
use myturn_sip::driver::SipHandle;
use myturn_sip::ua::{EndedBy, Event};
use myturn_testkit::sip::{ended, expect, failed};
use serde_json::Value;

async fn env() -> Live {
    common::live(&common::config()).await
}

/// An agent with `user`'s credentials from the API, on a fresh loopback
/// port, for the server's built-in PBX.
async fn agent(env: &Live, user: &Value) -> SipHandle {
    assert_eq!(Some(common::sip::domain(user)), env.app.sip_addr());
    common::sip::agent(user).await
}

use common::sip::offer;

async fn admin_sip_conf(env: &Live) -> String {
    env.admin_get("/v1/admin/sip-conf").await.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn agents_register_call_by_extension_and_logout_drops_the_binding() {
    let env = env().await;
    let alice = env.register("alice").await;
    let bob = env.register("bob").await;
    let mut a = agent(&env, &alice).await;
    let mut b = agent(&env, &bob).await;
    for h in [&mut a, &mut b] {
        h.register().await.unwrap();
        expect(h, "Registered", |e| match e {
            Event::Registered { .. } => Some(()),
            Event::RegistrationFailed { code, reason } => panic!("{code} {reason}"),
            _ => None,
        })
        .await;
    }
    let view = admin_sip_conf(&env).await;
    assert!(view.contains("[alice]") && view.contains("[bob]"), "{view}");
    assert!(
        !view.contains(alice["sip"]["password"].as_str().unwrap()),
        "secrets redacted"
    );

    let ext = bob["sip"]["extension"].as_str().unwrap();
    let ca = a.invite(ext, &offer(4000)).await.unwrap();
    let cb = expect(&mut b, "IncomingCall", |e| match e {
        Event::IncomingCall {
            call,
            from_user,
            offer,
            ..
        } => {
            assert_eq!(from_user, "alice");
            // The relay (on by default) anchors the media: bob is told to
            // send to a relay port, the media key untouched.
            let o = offer.as_ref().unwrap();
            assert!((20_000..30_000).contains(&o.media.port()), "{o:?}");
            assert_eq!(o.key.as_deref(), Some("a2V5"));
            Some(*call)
        }
        _ => None,
    })
    .await;
    // The relay's view names the call's two users, so the console can
    // show each pair's relay figures.
    // (The view is refreshed every 100 ms.)
    let mut media = Value::Null;
    for _ in 0..50 {
        media = env.admin_get("/v1/admin/media").await;
        if media["calls"].as_array().is_some_and(|c| !c.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        media["calls"][0]["users"],
        serde_json::json!(["alice", "bob"]),
        "{media}"
    );
    b.answer(cb, &offer(5000)).await.unwrap();
    expect(&mut a, "Answered", |e| match e {
        Event::Answered { call, answer, .. } if *call == ca => {
            let port = answer.as_ref().unwrap().media.port();
            assert!((20_000..30_000).contains(&port), "{answer:?}");
            Some(())
        }
        _ => None,
    })
    .await;
    a.hangup(ca).await.unwrap();
    ended(&mut b, "CallEnded", EndedBy::Remote).await;

    // Bob logs out: his binding goes at once, so a call to his extension
    // now fails as "not found" (the extension is gone with him).
    let r = env.delete("/v1/me", bob["token"].as_str().unwrap()).await;
    assert!(r.status().is_success());
    let mut gone = false;
    for _ in 0..50 {
        if !admin_sip_conf(&env).await.contains("[bob]") {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(gone, "bob still in the PBX");
    let c2 = a.invite(ext, &offer(4002)).await.unwrap();
    failed(&mut a, "404", c2, 404).await;
    let metrics = env.metrics().await;
    assert!(
        metrics.contains("myturn_sip_calls_routed_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("myturn_sip_calls_not_found_total 1"),
        "{metrics}"
    );
    assert!(metrics.contains("myturn_sip_bindings 1"), "{metrics}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sip_register_right_after_http_registration_always_finds_the_account() {
    // The API answers only once the built-in PBX holds the new account, so
    // a client that REGISTERs the moment it has its credentials is never
    // refused, even with many registering at once.
    let mut cfg = common::config();
    cfg.rate_limits = myturn_server::Switch::Off; // 20 registrations from one IP
    let env = std::sync::Arc::new(common::live(&cfg).await);
    let mut tasks = Vec::new();
    for i in 0..20 {
        let env = env.clone();
        tasks.push(tokio::spawn(async move {
            let name = format!("user{i:02}");
            let user = env.register(&name).await;
            // The account is in the PBX's directory by the time the API
            // answers.
            let directory = env.app.state.pbx.directory().unwrap();
            assert!(
                directory.iter().any(|a| a.username == name),
                "{name} not yet in the PBX when its credentials came back"
            );
            let mut h = agent(&env, &user).await;
            h.register().await.unwrap();
            expect(&mut h, "Registered", |e| match e {
                Event::Registered { .. } => Some(()),
                Event::RegistrationFailed { code, reason } => panic!("user{i:02}: {code} {reason}"),
                _ => None,
            })
            .await;
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

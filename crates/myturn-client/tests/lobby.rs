//! The lobby chat over the event stream, as the Wait screen uses it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use myturn_client::api::Api;
use myturn_client::events::Events;
use myturn_wire::ServerEvent;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_users_chat_in_the_lobby() {
    let mut cfg = myturn_server::Config::defaults();
    cfg.sip_listen = "127.0.0.1:0".parse().unwrap();
    // Moderated: both wait in the waiting room instead of being paired.
    cfg.admission = myturn_server::Admission::Moderated;
    let app = myturn_server::App::new(&cfg, None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(app.serve(listener, std::future::pending()));

    let (a, b) =
        tokio::try_join!(Api::register(&base, "ola"), Api::register(&base, "ewa")).unwrap();
    let (ea, mut eb) = tokio::try_join!(Events::connect(&a), Events::connect(&b)).unwrap();
    a.status(myturn_wire::RequestedStatus::Ready, None)
        .await
        .unwrap();
    b.status(myturn_wire::RequestedStatus::Ready, None)
        .await
        .unwrap();
    ea.lobby_say("czy ktoś tu jest?").unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        while let Some(ev) = eb.incoming.recv().await {
            if let ServerEvent::LobbyMessage { from, text, .. } = ev {
                return (from, text);
            }
        }
        panic!("stream closed");
    })
    .await
    .unwrap();
    assert_eq!(got, ("ola".to_owned(), "czy ktoś tu jest?".to_owned()));
    a.logout().await.unwrap();
    b.logout().await.unwrap();
}

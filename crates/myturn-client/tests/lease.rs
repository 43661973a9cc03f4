//! A call outlives the server's lease: the client says "still here" while
//! only SIP and media flow, so neither side is logged out mid-call.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::Duration;

use myturn_client::call::Client;
use myturn_media::session::Event as MediaEvent;
use myturn_server::core::cases::views::UserCount;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_call_longer_than_the_lease_keeps_both_users() {
    let mut cfg = myturn_server::Config::defaults();
    cfg.sip_listen = "127.0.0.1:0".parse().unwrap();
    cfg.lease = 2;
    let app = myturn_server::App::new(&cfg, None).unwrap();
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(app.clone().serve(listener, std::future::pending()));
    let ip = "127.0.0.1".parse().unwrap();
    let every = Duration::from_millis(500);
    let (mut a, mut b) = tokio::try_join!(
        Client::connect_with_keep_alive(&base, "anna", ip, 8000, None, every),
        Client::connect_with_keep_alive(&base, "bert", ip, 8000, None, every)
    )
    .unwrap();
    let (ca, mut cb) = tokio::try_join!(a.ready_and_call(), b.ready_and_call()).unwrap();
    // Silent towards the HTTP API for three leases, but for the keep-alive.
    tokio::time::sleep(Duration::from_secs(6)).await;
    assert_eq!(
        app.state.run(UserCount).await.unwrap(),
        2,
        "nobody was logged out"
    );
    ca.media.send_text("still there?".into()).await.unwrap();
    let got = tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(MediaEvent::Text(t)) = cb.media.events.recv().await {
                return t;
            }
        }
    })
    .await
    .unwrap();
    assert_eq!(got, "still there?");
    a.hang_up(&ca).await.unwrap();
    a.quit().await.unwrap();
    b.quit().await.unwrap();
    assert_eq!(app.state.run(UserCount).await.unwrap(), 0);
}

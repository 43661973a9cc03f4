//! SIP agents for the built-in PBX: one with a user's credentials from
//! the API, and a small SDP offer.

use std::net::SocketAddr;

use myturn_sip::driver::{self, SipHandle};
use myturn_sip::sdp::Sdp;
use myturn_sip::ua::Config as UaConfig;
use serde_json::Value;

/// The PBX address the API handed `user`.
pub fn domain(user: &Value) -> SocketAddr {
    user["sip"]["domain"].as_str().unwrap().parse().unwrap()
}

/// An agent with `user`'s credentials from the API, on a fresh loopback
/// port (not yet registered).
pub async fn agent(user: &Value) -> SipHandle {
    let sip = &user["sip"];
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let cfg = UaConfig::new(
        socket.local_addr().unwrap(),
        domain(user),
        sip["username"].as_str().unwrap(),
        sip["password"].as_str().unwrap(),
    );
    driver::start(socket, cfg, Box::new(rand_core::OsRng)).unwrap()
}

/// An SDP offer for media on loopback `port`, with a media key.
pub fn offer(port: u16) -> String {
    Sdp::new(
        format!("127.0.0.1:{port}").parse().unwrap(),
        8000,
        Some("a2V5".into()),
        3,
    )
    .render()
}

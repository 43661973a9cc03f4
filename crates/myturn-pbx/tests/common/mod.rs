//! What the PBX's real-UDP tests share: the built-in PBX in the test
//! process, on a free loopback port, with the accounts a test gives.
#![allow(dead_code)]

pub mod flood;

use std::net::SocketAddr;
use std::time::Instant;

use myturn_pbx::core::{Account, Config, Pbx};
use myturn_pbx::driver::{self, PbxHandle};
use myturn_sip::digest::Algorithm;
use tokio::sync::watch;

/// An account of the directory.
pub fn account(username: &str, extension: &str, password: &str) -> Account {
    Account {
        username: username.into(),
        extension: extension.into(),
        password: password.into(),
    }
}

/// alice (111000) and bob (111001).
pub fn accounts() -> Vec<Account> {
    vec![
        account("alice", "111000", "Alice-pw-0001"),
        account("bob", "111001", "Bob-pw-000002"),
    ]
}

/// A running PBX; stops when dropped.
pub struct Running {
    pub addr: SocketAddr,
    pub handle: PbxHandle,
    _stop: watch::Sender<bool>,
    _accounts: watch::Sender<Vec<Account>>,
}

/// The PBX on a free loopback port, with [`accounts`]. SIPp 3.6 computes
/// MD5 only, so its tests run the PBX with `algorithms` chosen by the
/// caller.
pub async fn pbx(algorithms: Vec<Algorithm>) -> Running {
    pbx_with(algorithms, accounts()).await
}

/// [`pbx`] with these accounts.
pub async fn pbx_with(algorithms: Vec<Algorithm>, accounts: Vec<Account>) -> Running {
    pbx_configured(accounts, |cfg| cfg.algorithms = algorithms).await
}

/// The PBX on a free loopback port with these accounts and the
/// configuration `setup` makes of the defaults.
pub async fn pbx_configured(accounts: Vec<Account>, setup: impl FnOnce(&mut Config)) -> Running {
    let socket = tokio::net::UdpSocket::bind("127.0.0.1:0").await.unwrap();
    let addr = socket.local_addr().unwrap();
    let mut cfg = Config::new(addr);
    setup(&mut cfg);
    let core = Pbx::new(cfg, Box::new(rand_core::OsRng), Instant::now());
    let (acc_tx, acc_rx) = watch::channel(accounts);
    let (stop, stop_rx) = watch::channel(false);
    let handle = PbxHandle::new(addr);
    driver::spawn(socket, core, handle.clone(), acc_rx, stop_rx);
    Running {
        addr,
        handle,
        _stop: stop,
        _accounts: acc_tx,
    }
}

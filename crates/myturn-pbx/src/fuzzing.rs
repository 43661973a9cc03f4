//! The fuzz target body (`fuzz/fuzz_targets/pbx_receive.rs`), also run by
//! the stable test suite. Must never panic.

use std::net::{Ipv4Addr, SocketAddr};
use std::time::{Duration, Instant};

use myturn_sip::fuzzing::Counter;

use crate::core::{Account, Config, Pbx};

/// One datagram through a PBX that has accounts, then timers.
pub fn receive(data: &[u8]) {
    let now = Instant::now();
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 5060));
    let mut pbx = Pbx::new(Config::new(addr), Box::new(Counter(3)), now);
    pbx.set_accounts([Account {
        username: "alice".into(),
        extension: "111000".into(),
        password: "pw".into(),
    }]);
    let from = SocketAddr::from((Ipv4Addr::LOCALHOST, 5070));
    pbx.handle_datagram(now, from, data);
    pbx.handle_datagram(now, from, data);
    pbx.handle_timeout(now + Duration::from_secs(40));
    while pbx.poll_transmit().is_some() {}
    while pbx.poll_event().is_some() {}
}

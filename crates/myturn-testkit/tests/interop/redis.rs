//! `myturn_testkit::redis`: the server answers on its URL's port, and a
//! key written before a graceful restart or a kill is there after it.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use myturn_testkit::redis::{ping, Redis};
use myturn_testkit::skip;

/// Sends one inline command, returns the first reply's bytes.
fn cmd(r: &Redis, line: &str) -> String {
    let mut s = TcpStream::connect(r.addr()).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    s.write_all(format!("{line}\r\n").as_bytes()).unwrap();
    let mut buf = [0u8; 256];
    let n = s.read(&mut buf).unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[test]
fn redis_keeps_its_data_over_a_restart_and_a_kill() {
    if !skip::installed("redis-server") {
        return;
    }
    let mut r = Redis::start();
    assert!(r.url().starts_with("redis://127.0.0.1:"));
    assert_eq!(
        cmd(&r, "CONFIG GET appendonly"),
        "*2\r\n$10\r\nappendonly\r\n$3\r\nyes\r\n"
    );
    assert_eq!(cmd(&r, "SET k1 v1"), "+OK\r\n");
    r.restart();
    assert_eq!(cmd(&r, "GET k1"), "$2\r\nv1\r\n");
    assert_eq!(cmd(&r, "SET k2 v2"), "+OK\r\n");
    r.kill();
    assert!(!ping(r.addr()), "a killed server still answers");
    r.resume();
    assert_eq!(cmd(&r, "GET k2"), "$2\r\nv2\r\n");
    r.stop();
    assert!(!r.running() && !ping(r.addr()));
}

//! Small networks made of Linux network namespaces, veth pairs and
//! nftables, for tests that must leave loopback. Only documentation
//! addresses (198.51.100.0/24) and private ranges inside namespaces the
//! test made; everything is removed on drop.
//!
//! Needs root, iproute2 and nftables. Without them a test prints SKIPPED;
//! when the peers are [`required`](crate::skip::required) that is a
//! failure.

mod bridge;
mod homes;
mod veth;

pub use homes::{Homes, Jitter, Nat, Site};
pub use veth::Veth;

use std::process::{Command, Stdio};

use crate::skip::missing;

/// Runs a command quietly; true on success.
pub fn sh(args: &[&str]) -> bool {
    Command::new(args[0])
        .args(&args[1..])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs a command, failing the test (with its stderr) if it fails.
pub fn run(args: &[&str]) {
    let out = Command::new(args[0]).args(&args[1..]).output().unwrap();
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Whether namespaces can be made here (tried with a namespace named
/// `probe`, removed again); [`missing`] when not.
pub fn available(probe: &str) -> bool {
    if sh(&["ip", "netns", "add", probe]) && sh(&["nft", "--version"]) {
        let _ = sh(&["ip", "netns", "del", probe]);
        return true;
    }
    let _ = sh(&["ip", "netns", "del", probe]);
    missing("cannot make a network namespace with nftables (needs root, iproute2, nftables)")
}

/// Loads an nftables ruleset inside `ns`.
pub fn nft(ns: &str, ruleset: &str) {
    let path = std::env::temp_dir().join(format!("{ns}-{}.nft", ruleset.len()));
    std::fs::write(&path, ruleset).unwrap();
    run(&[
        "ip",
        "netns",
        "exec",
        ns,
        "nft",
        "-f",
        path.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_file(path);
}

/// Runs `args` inside the namespace `ns` (see [`run`]).
pub fn run_in(ns: &str, args: &[&str]) {
    let mut all = vec!["ip", "netns", "exec", ns];
    all.extend_from_slice(args);
    run(&all);
}

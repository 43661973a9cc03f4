//! The jitter bridge: a namespace between a client and its router whose
//! userspace bridge (`jitter/bridge.py`, AF_PACKET sockets) holds each UDP
//! frame for a random time, so datagrams arrive late and out of order.
//! This kernel has neither `tc netem` nor nft's `queue`.

use std::io::{BufRead, BufReader, Read};
use std::process::{Child, Command, Stdio};

use super::{run, run_in, sh};

/// A running bridge; stopped, and its namespace removed, on drop.
#[derive(Debug)]
pub struct Bridge {
    ns: String,
    child: Child,
}

impl Bridge {
    /// Makes namespace `ns` holding `inner[0]` and `inner[1]`, the peers
    /// of the new veths `outer[0]` (the router's end) and `outer[1]` (the
    /// client's), which the caller moves to their namespaces and brings
    /// up; then starts the bridge between the inner ends with a delay of
    /// `delay_ms.0..=delay_ms.1` per UDP frame.
    pub fn start(ns: &str, outer: [&str; 2], inner: [&str; 2], delay_ms: (u32, u32)) -> Bridge {
        run(&["ip", "netns", "add", ns]);
        for (o, i) in outer.iter().zip(inner) {
            run(&["ip", "link", "add", o, "type", "veth", "peer", "name", i]);
            run(&["ip", "link", "set", i, "netns", ns]);
            run_in(ns, &["ip", "link", "set", i, "promisc", "on", "up"]);
        }
        let script = concat!(env!("CARGO_MANIFEST_DIR"), "/jitter/bridge.py");
        let mut child = Command::new("ip")
            .args(["netns", "exec", ns, "python3", script, inner[0], inner[1]])
            .args([delay_ms.0.to_string(), delay_ms.1.to_string()])
            .arg(std::process::id().to_string())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        let mut line = String::new();
        if let Some(out) = child.stdout.as_mut() {
            let _ = BufReader::new(out).read_line(&mut line);
        }
        assert_eq!(line.trim(), "ready", "the jitter bridge did not start");
        Bridge {
            ns: ns.to_owned(),
            child,
        }
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = sh(&["kill", &self.child.id().to_string()]);
        let mut said = String::new();
        if let Some(out) = self.child.stdout.as_mut() {
            let _ = out.read_to_string(&mut said);
        }
        let _ = self.child.wait();
        eprintln!("jitter bridge: {}", said.trim());
        let _ = sh(&["ip", "netns", "del", &self.ns]);
    }
}

//! A SIP flood from one loopback address, shared by the flood test
//! (`tests/interop/flood.rs`) and the benchmark (`benches/pbx.rs`): a
//! sender paced to an offered rate (or as fast as it goes) and a reader
//! that notes when each answer came back, both on plain blocking sockets
//! in threads of their own. Bounded in count and time; stops by itself.
#![allow(dead_code)]

use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// What a flood sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mix {
    /// Garbage, and unauthenticated REGISTER, INVITE and OPTIONS, in turn.
    Attack,
    /// OPTIONS only (a monitoring probe).
    Options,
}

/// How it went.
#[derive(Debug, Clone, Default)]
pub struct Outcome {
    /// Datagrams sent.
    pub sent: u64,
    /// When each answer arrived, since the flood began.
    pub answers: Vec<Duration>,
    /// How long the flood lasted.
    pub lasted: Duration,
}

impl Outcome {
    /// Answers that arrived at or after `t` into the flood.
    pub fn answers_after(&self, t: Duration) -> usize {
        self.answers.iter().filter(|a| **a >= t).count()
    }
}

fn payloads(mix: Mix, from: SocketAddr, to: SocketAddr) -> Vec<Vec<u8>> {
    (0..64u32)
        .map(|n| {
            let kind = match mix {
                Mix::Options => 3,
                Mix::Attack => n % 4,
            };
            let head = |method: &str, ruri: String| {
                format!(
                    "{method} {ruri} SIP/2.0\r\nVia: SIP/2.0/UDP {from};branch=z9hG4bKfl{n}\r\n\
                     From: <sip:scan{n}@{from}>;tag=f{n}\r\nTo: <sip:{n}@{to}>\r\nCall-ID: flood{n}@{from}\r\n\
                     CSeq: 1 {method}\r\nContact: <sip:scan@{from}>\r\nMax-Forwards: 70\r\nContent-Length: 0\r\n\r\n"
                )
            };
            match kind {
                0 => format!("\u{1}garbage {n} \u{7f}\r\n\r\n").into_bytes(),
                1 => head("REGISTER", format!("sip:{to}")).into_bytes(),
                2 => head("INVITE", format!("sip:{}@{to}", 100 + n)).into_bytes(),
                _ => head("OPTIONS", format!("sip:{to}")).into_bytes(),
            }
        })
        .collect()
}

/// Floods `to` from `from` (port chosen) with `mix` at `rate` datagrams a
/// second (0: as fast as the socket takes them) for `duration`, and
/// collects the answers until `linger` after it.
pub fn flood(
    from: IpAddr,
    to: SocketAddr,
    mix: Mix,
    rate: u64,
    duration: Duration,
    linger: Duration,
) -> Outcome {
    let sock = UdpSocket::bind((from, 0)).unwrap();
    let local = sock.local_addr().unwrap();
    let reader = sock.try_clone().unwrap();
    reader
        .set_read_timeout(Some(Duration::from_millis(50)))
        .unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let t0 = Instant::now();
    let stopped = stop.clone();
    let read = std::thread::spawn(move || {
        let mut buf = vec![0u8; 65_535];
        let mut answers = Vec::new();
        while !stopped.load(Ordering::Relaxed) {
            if let Ok(n) = reader.recv(&mut buf) {
                if buf[..n].starts_with(b"SIP/2.0 ") {
                    answers.push(t0.elapsed());
                }
            }
        }
        answers
    });
    let msgs = payloads(mix, local, to);
    let mut sent = 0u64;
    while t0.elapsed() < duration && sent < 50_000_000 {
        // What is due by now at the offered rate, then a millisecond's rest.
        let due = match rate {
            0 => sent + 256,
            r => (t0.elapsed().as_secs_f64() * r as f64) as u64 + 1,
        };
        while sent < due {
            let m = &msgs[(sent % msgs.len() as u64) as usize];
            let _ = sock.send_to(m, to);
            sent += 1;
        }
        if rate > 0 {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    let lasted = t0.elapsed();
    std::thread::sleep(linger);
    stop.store(true, Ordering::Relaxed);
    Outcome {
        sent,
        answers: read.join().unwrap(),
        lasted,
    }
}

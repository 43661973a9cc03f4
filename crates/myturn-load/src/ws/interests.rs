//! `myturn-load ws --interests TAGS`: the interest draw against the plain
//! draw, timed in the same run next to a pool of every other user.

use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _};
use myturn_wire::{AdmitRequest, RequestedStatus, SetStatusRequest};
use serde_json::json;

use super::{admin, admit, pct, ready_all, ready_with, User, WsArgs};
use crate::ops::mix;

fn body(interests: Vec<String>, only: bool) -> SetStatusRequest {
    let mut r = SetStatusRequest::new(RequestedStatus::Ready);
    r.interests = Some(interests);
    r.only_interests = only;
    r
}

/// Fills the pool with everyone after the timed pairs, then times pairs
/// alternately with a shared tag and plain.
pub(super) async fn run(
    args: &WsArgs,
    http: &reqwest::Client,
    bases: &[String],
    users: &[User],
    open_secs: f64,
    rss_before: Option<u64>,
    rss_idle: Option<u64>,
) -> anyhow::Result<()> {
    // The pool: each waits on three tags nobody else has, never falling
    // back, so none of them can be drawn by the timed pairs. They go ready
    // in the waiting room and are admitted all at once (admitting everyone
    // admits who waits there).
    let pool = &users[2 * args.pairs..];
    let t_pool = Instant::now();
    let own = |i: usize| {
        body(
            ["a", "b", "c"].map(|s| format!("solo{i}{s}")).to_vec(),
            true,
        )
    };
    ensure!(
        ready_all(http, bases, pool, own).await?,
        "a pool user's ready was refused"
    );
    let all = AdmitRequest {
        name: None,
        all: true,
    };
    admin(http, &bases[0], &args.admin_token, "/v1/admin/admit", &all).await?;
    let pool_secs = t_pool.elapsed().as_secs_f64();
    let tags = args.interests as u64;
    let (mut shared_ms, mut plain_ms) = (Vec::new(), Vec::new());
    let (mut shared_cycle, mut plain_cycle) = (0.0, 0.0);
    // How long the first side's `PUT ready` took (it waits alone).
    let (mut shared_first, mut plain_first) = (Vec::new(), Vec::new());
    for p in 0..args.pairs {
        let (a, b) = (&users[2 * p], &users[2 * p + 1]);
        let with_tags = p % 2 == 0;
        let pick = |k: u64| format!("t{}", mix(p as u64 * 8 + k) % tags);
        let (ba, bb) = if with_tags {
            (
                body(vec![pick(0), pick(1), pick(2)], false),
                body(vec![pick(0), pick(3), pick(4)], false),
            )
        } else {
            (body(Vec::new(), false), body(Vec::new(), false))
        };
        let t_cycle = Instant::now();
        for u in [a, b] {
            admit(http, &bases[0], &args.admin_token, &u.name).await?;
        }
        let t0 = Instant::now();
        ensure!(ready_with(http, &bases[a.node], &a.token, &ba).await? == 200);
        let (mut ra, mut rb) = (a.paired.clone(), b.paired.clone());
        let t1 = Instant::now();
        let first_ms = t1.saturating_duration_since(t0).as_secs_f64() * 1e3;
        if with_tags {
            shared_first.push(first_ms);
        } else {
            plain_first.push(first_ms);
        }
        ensure!(ready_with(http, &bases[b.node], &b.token, &bb).await? == 200);
        let out = if with_tags {
            &mut shared_ms
        } else {
            &mut plain_ms
        };
        for r in [&mut ra, &mut rb] {
            let at = tokio::time::timeout(Duration::from_secs(5), r.wait_for(Option::is_some))
                .await
                .context("no paired event within 5 s")??
                .unwrap_or(t1);
            out.push(at.saturating_duration_since(t1).as_secs_f64() * 1e3);
        }
        let cycle = t_cycle.elapsed().as_secs_f64();
        if with_tags {
            shared_cycle += cycle;
        } else {
            plain_cycle += cycle;
        }
    }
    let n_shared = shared_ms.len() as f64 / 2.0;
    let n_plain = plain_ms.len() as f64 / 2.0;
    let (s50, s99) = (pct(&mut shared_ms, 0.5), pct(&mut shared_ms, 0.99));
    let (p50, p99) = (pct(&mut plain_ms, 0.5), pct(&mut plain_ms, 0.99));
    let per_conn = match (rss_before, rss_idle) {
        (Some(b), Some(a)) => Some(a.saturating_sub(b) as f64 * 1024.0 / users.len() as f64),
        _ => None,
    };
    let out = json!({
        "users": users.len(), "nodes": bases.len(), "pool": pool.len(), "tags": tags,
        "streams_opened_per_s": users.len() as f64 / open_secs,
        "bytes_per_idle_stream": per_conn,
        "pool_ready_per_s": pool.len() as f64 / pool_secs,
        "shared_push_ms": {"samples": shared_ms.len(), "p50": s50, "p99": s99},
        "plain_push_ms": {"samples": plain_ms.len(), "p50": p50, "p99": p99},
        "shared_over_plain": {"p50": s50 / p50.max(1e-9), "p99": s99 / p99.max(1e-9)},
        "first_ready_ms": {"shared_p50": pct(&mut shared_first, 0.5), "shared_p99": pct(&mut shared_first, 0.99), "plain_p50": pct(&mut plain_first, 0.5), "plain_p99": pct(&mut plain_first, 0.99)},
        "sequential_pairings_per_s": {"shared": n_shared / shared_cycle.max(1e-9), "plain": n_plain / plain_cycle.max(1e-9)},
    });
    if args.json {
        println!("{out}");
    } else {
        println!(
            "{} streams over {} node(s), {} waiting in the pool ({:.0} ready/s), tags out of {tags}",
            users.len(),
            bases.len(),
            pool.len(),
            pool.len() as f64 / pool_secs
        );
        println!("pairing push, shared tag: p50 {s50:.2} ms, p99 {s99:.2} ms; plain: p50 {p50:.2} ms, p99 {p99:.2} ms");
        println!(
            "one pair at a time: shared {:.0} pairings/s, plain {:.0} pairings/s",
            n_shared / shared_cycle.max(1e-9),
            n_plain / plain_cycle.max(1e-9)
        );
    }
    Ok(())
}

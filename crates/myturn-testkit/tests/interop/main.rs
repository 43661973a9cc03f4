//! The testkit's own real-peer checks: a peer starter does what its
//! `//!` promises (here: redis-server keeps its data over a restart and
//! a kill, from its AOF).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod redis;

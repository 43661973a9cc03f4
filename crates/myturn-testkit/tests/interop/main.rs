//! The testkit's own real-peer checks: a peer starter does what its
//! `//!` promises (here: redis-server keeps its data over a restart and
//! a kill, from its AOF).

mod redis;

//! # myturn-sip
//!
//! WIP
pub mod msg;

//! The use cases, grouped by what they are about. Each is a struct of its
//! inputs implementing [`UseCase`](crate::core::command::UseCase), listed
//! once in [`Command`](crate::core::command::Command).

pub mod account;
pub mod lobby;
pub mod moderation;
pub mod pbx;
pub mod status;
pub mod streams;
pub mod views;

//! The bookkeeping the use cases share, over any
//! [`State`](crate::core::state::State): users, session families, pairs,
//! liveness and rate limits. Each function keeps its records consistent
//! and writes what the world must learn into the context's effects.

pub(crate) mod admin;
pub(crate) mod limits;
pub(crate) mod liveness;
pub(crate) mod pairs;
pub(crate) mod sessions;
#[cfg(test)]
pub(crate) mod testing;
pub(crate) mod users;

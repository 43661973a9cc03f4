//! The full-screen interface: the four screens the original design
//! planned (Login, Main, Wait, Convo), as a view-model that turns keys
//! into actions and flow [`Progress`](crate::call::Progress) into
//! screens, and a renderer for ratatui. [`run`] drives it on a real
//! terminal; the unit tests drive the model and render into ratatui's
//! `TestBackend`.
//!
//! `state` is the view-model, `keys` turns key presses into actions,
//! `render` draws each screen, `event_loop` is the terminal runner, and
//! `stderr` keeps other code's stderr lines off the screen.

mod event_loop;
mod keys;
mod render;
mod state;
mod stderr;
#[cfg(test)]
mod tests;

pub use event_loop::run;

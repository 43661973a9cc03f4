//! The real-peer tests of myturn-web, one test target (`interop`): the
//! WebAssembly build of the media core, run by Node.js exactly as a page
//! loads it (`wasm-bindgen --target nodejs`), in a call with the native
//! core of the terminal client, and its SIP agent registering over SIP
//! over WebSocket with a real server's built-in PBX; and the page's
//! committed module is what the source builds. `.ci/run` installs the wasm target,
//! `wasm-bindgen-cli` and Node; when one is missing the test prints
//! SKIPPED, or fails under CI (`CI` set) or with `MYTURN_REQUIRE_INTEROP=1`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod node;
mod page;
mod sip_ws;

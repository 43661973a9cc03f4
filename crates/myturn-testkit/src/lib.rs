//! Test support for the myTurn crates: a dev-only crate (`publish =
//! false`), used from `[dev-dependencies]` by the tests and benchmarks of
//! the other crates, never by their libraries.
//!
//! What it holds, one copy each:
//!
//! * **The skip rule** ([`skip`]): a test whose real peer is missing
//!   prints `SKIPPED: …` and returns, unless `CI` is set or
//!   `MYTURN_REQUIRE_INTEROP=1`, where it fails.
//! * **Real peers, started one way**: a process guard that kills the
//!   peer's whole process group on drop and shows its log when the test
//!   fails ([`Peer`]), free ports ([`ports`]), waiting for a port or a log
//!   line ([`wait`], [`Peer::wait_for_line`]), a temporary directory for
//!   its config ([`Scratch`]); and each peer: [`sipp`], [`kamailio`]
//!   (fixtures) and [`kamailio_node`] (a complete config such as the shipped one),
//!   [`rtpengine`], [`baresip`], [`nginx`], [`chromium`], [`redis`]
//!   (`redis-server` with AOF on, stopped and restarted on its data).
//! * **Fixtures**: SIPp scenarios as `.xml` files in `sipp/` and Kamailio
//!   scripts as `.cfg` files in `kamailio/`, beside this crate's `src/`;
//!   per-run values go on the peer's own command line where it has a way
//!   (SIPp's `-key`/`-set`/`-d`, Kamailio's `-A`), else into `{{name}}`
//!   placeholders ([`Template`]).
//! * **Network namespaces** ([`netns`]): a namespace on a veth, homes
//!   behind NAT routers.
//! * **Speech quality** ([`pesq`]): espeak-ng speech, PESQ scores, and
//!   the Opus (opus-tools) and zeroed-frames references.
//! * **Benchmark timing** ([`bench`](mod@bench)).
//! * **The layering check** ([`layering`]): module dependencies inside each
//!   library crate point one way (run by `tests/layering.rs`).
//! * Behind features (each a module of the same name, so a crate builds
//!   only the dependencies it asks for): `sip`, myturn-sip's tokio agent
//!   in tests; `tls`, a CA of the test's own (rcgen) with server
//!   certificates as PEM files, and rustls clients that trust it; `http`,
//!   JSON over real HTTP (reqwest) from a server the test started.
//!
//! It depends on no myTurn crate but, behind `sip`, myturn-sip. Not on
//! myturn-server in particular: the server's own tests are to use this
//! crate, and a testkit that depended on the server would make every
//! crate's test build (the SIP agent's, the media engine's) compile the
//! whole server for a process guard. Starting a server in the test
//! process stays a few lines in each crate's `tests/common`.
//!
//! A test uses it as
//!
//! ```no_run
//! use myturn_testkit::sipp::{Scenario, Sipp};
//! use myturn_testkit::{skip, Scratch};
//!
//! if !skip::installed("sipp") {
//!     return; // SKIPPED here, a failure under CI
//! }
//! let dir = Scratch::new();
//! let sipp = Sipp::new(dir.path(), Scenario::Registrar)
//!     .key("algorithm", "MD5")
//!     .key("user", "111000")
//!     .key("password", "s3cret")
//!     .traced_once()
//!     .spawn();
//! // ... drive our side ...
//! let (code, log) = sipp.wait(std::time::Duration::from_secs(20));
//! assert_eq!(code, Some(0), "SIPp failed: {log}");
//! ```
// Test support: its helpers fail the calling test by panicking, as an
// assert! in the test itself would.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

pub mod baresip;
pub mod bench;
pub mod chromium;
#[cfg(feature = "http")]
pub mod http;
pub mod kamailio;
pub mod kamailio_node;
pub mod layering;
pub mod netns;
pub mod nginx;
pub mod pesq;
pub mod ports;
pub mod process;
pub mod redis;
pub mod rtpengine;
pub mod scratch;
#[cfg(feature = "sip")]
pub mod sip;
pub mod sipp;
pub mod skip;
pub mod template;
#[cfg(feature = "tls")]
pub mod tls;
pub mod wait;
pub mod wasm;

pub use process::Peer;
pub use scratch::Scratch;
pub use template::Template;

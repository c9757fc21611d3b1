//! Conformance and migration runs against Apache httpd 2.4.
//!
//! - Conformance: recorded case files (`../shared/conformance/FORMAT.md`,
//!   `fixtures/conformance/`) run against htgate in this process, any
//!   server started by a command template, or a local Apache; checked
//!   against their recorded answers, or recorded from Apache into the case
//!   files. This is what the `oracle` script does, in Rust, with no Python
//!   and no Apache needed to check. `htgate conformance` and the test
//!   suite run cases through the same `runner`.
//! - Replay (`replay`): real traffic from Apache access logs sent to a
//!   running Apache and an htgate side by side, every difference reported
//!   per site, as text, JSON and one HTML page.

mod apache;
pub mod case;
mod client;
mod expect;
mod process;
mod pycompat;
pub mod replay;
mod report;
mod runner;
mod servers;
mod summary;
mod workdir;

pub use apache::Apache;
pub use client::Client;
pub use expect::write as write_expect;
pub use report::{Report, Verdict};
pub use runner::{check_runnable, load_cases, run_all, run_case, runnable, CaseRun, RunOptions};
pub use servers::{fill_template, quick_options, CommandTemplate, InProcess, Running, Starter};
pub use workdir::{build as build_workdir, make_base, Workdir};

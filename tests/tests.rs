//! The single integration-test binary (`autotests = false`): every test
//! module of the crate is declared here.

mod conformance;
mod diagnostics;
mod hosting;
mod parser_props;

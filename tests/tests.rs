//! The single integration-test binary (`autotests = false`): every test
//! module of the crate is declared here.

mod architecture;
mod cli;
mod cluster;
mod cluster_folder;
mod cms;
mod conformance;
mod conformance_cli;

/// Helpers shared by the hosting and reload tests.
mod support {
    pub(crate) mod cms;
    pub(crate) mod files;
    pub(crate) mod pki;
    pub(crate) mod probe;
    pub(crate) mod protocols;
}

mod diagnostics;
mod explain;
mod hardening;
mod hosting;
mod http3;
mod isolation;
mod lint;
mod ops;
mod parser_props;
mod php_fairness;
mod protections;
mod proxy;
mod reload;
mod replay;

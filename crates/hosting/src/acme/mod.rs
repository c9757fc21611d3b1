//! Automatic certificates over ACME (HTTP-01).
//!
//! [`AcmeManager`] keeps one certificate per DNS name issued and renewed
//! through an ACME CA (Let's Encrypt, or pebble in the tests) using
//! instant-acme. The HTTP server answers the CA's validation requests for
//! `/.well-known/acme-challenge/<token>` from [`Challenges`] before any
//! `.htaccess` runs, so a customer's rewrite rules cannot break issuance.
//!
//! Modules: `settings` (what the operator configures), `error` (plain-words
//! failures), `challenges` (pending HTTP-01 answers), `store` (certificates
//! and the account on disk, written atomically), `schedule` (renewal time,
//! back-off, which names HTTP-01 can prove), `issue` (one ACME order),
//! `manager` (the public façade and the background loop), `on_demand`
//! (certificates ordered at a name's first handshake, behind an `ask` URL
//! and rate limits) and `pebble` (a test harness around a local pebble CA).

mod challenges;
mod error;
mod issue;
mod manager;
pub(crate) mod on_demand;
// Test scaffolding (a pebble CA started for a test): never in the binary.
#[cfg(any(test, feature = "test-support"))]
pub mod pebble;
// Which ACME profile an order asks for.
mod profiles;
// The CA's suggested renewal window (ARI, RFC 9773).
mod renewal_info;
mod schedule;
mod settings;
mod store;

#[cfg(test)]
mod on_demand_tests;
#[cfg(test)]
mod pebble_tests;

// Renewal information and profiles against pebble behind a double of the
// CA's directory (the installed pebble offers neither).
#[cfg(test)]
mod ari_tests;
#[cfg(test)]
mod directory_double;

pub(crate) use challenges::Challenges;
pub use manager::AcmeManager;
pub use on_demand::{OnDemand, OnDemandSettings};
pub(crate) use settings::AcmeSettings;
pub(crate) use store::stored_domains;
pub(crate) use store::write_atomic;
pub(crate) use store::StoredCert;

// What `htgate cert list/check` shows of automatic certificates.
pub use manager::DomainStatus;
pub use renewal_info::{certificate_id, RenewalPlan};

/// The path prefix served by htgate itself before any .htaccess runs.
pub const CHALLENGE_PREFIX: &str = "/.well-known/acme-challenge/";

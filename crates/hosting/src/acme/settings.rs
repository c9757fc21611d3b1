//! What the operator configures for ACME.

use std::path::PathBuf;
use std::time::Duration;

/// How to talk to the CA and where to keep what it gives us.
#[derive(Debug, Clone)]
pub struct AcmeSettings {
    /// The CA's directory URL, e.g. [`LETS_ENCRYPT_PRODUCTION`].
    pub directory_url: String,
    /// Account contacts, `"mailto:..."`.
    pub contact: Vec<String>,
    /// Account + certificates live here (`account.toml`,
    /// `certificates/<domain>/{fullchain,privkey}.pem`).
    pub storage: PathBuf,
    /// Extra PEM root to trust for the ACME server's HTTPS (pebble). `None`
    /// uses the platform's trust store.
    pub ca_root: Option<PathBuf>,
    /// Renew this long before expiry; `None` = renew when a third of the
    /// lifetime is left (so 90-day and 45-day certificates both work).
    pub renew_before: Option<Duration>,
    /// First back-off after a failure, doubled each time, capped at 24 h.
    pub retry_base: Duration,
    /// The ACME profile orders ask for when the site sets none (`None`:
    /// the CA's default).
    pub profile: Option<String>,
    /// The shortest wait between two fetches of a certificate's renewal
    /// information (the CA's Retry-After is honoured above it, up to
    /// 24 h); 1 h, lowered by the tests.
    pub renewal_info_recheck: Duration,
}

impl AcmeSettings {
    /// Settings with the defaults: no contact, platform roots, renew at a
    /// third of the lifetime left, first retry after 60 s.
    pub fn new(directory_url: impl Into<String>, storage: impl Into<PathBuf>) -> Self {
        AcmeSettings {
            directory_url: directory_url.into(),
            contact: Vec::new(),
            storage: storage.into(),
            ca_root: None,
            renew_before: None,
            retry_base: Duration::from_secs(60),
            profile: None,
            renewal_info_recheck: Duration::from_secs(60 * 60),
        }
    }
}

//! ACME Renewal Information (ARI, RFC 9773): when the CA suggests
//! renewing a certificate.
//!
//! When the directory lists `renewalInfo`, each stored certificate's
//! suggested window is fetched (at most once per the CA's Retry-After,
//! clamped to [`AcmeSettings::renewal_info_recheck`]..24 h) and the
//! renewal happens at a uniformly random instant inside it (RFC 9773
//! §4.2: spreads the CA's load). The instant is kept while the window
//! stays the same and picked again when it changes; a window that moved
//! so that it has already begun (the CA's way of asking for a renewal
//! now, e.g. before a revocation) or has already ended renews at once.
//!
//! What was learnt is kept next to the certificate
//! (`certificates/<domain>/renewal-info.toml`): a restart keeps the
//! chosen instants (no renewal storm, no burst of fetches), and
//! `htgate cert check`, another process, shows them. Without
//! `renewalInfo`, or while no answer is known, the third-of-lifetime rule
//! of [`super::schedule::renewal_due`] applies unchanged.

use std::path::{Path, PathBuf};
use std::time::Duration;

use instant_acme::{Account, CertificateIdentifier};
use rustls_pki_types::{CertificateDer, Der};
use serde::{Deserialize, Serialize};

use super::error::describe;
use super::schedule::renewal_due;
use super::settings::AcmeSettings;
use super::store::{cert_dir, write_atomic, StoredCert};

/// The record's file in the certificate's folder.
const RECORD_FILE: &str = "renewal-info.toml";

/// The longest wait between two fetches, whatever the CA's Retry-After:
/// a window moved for a revocation is noticed within a day.
pub(crate) const RECHECK_MAX: Duration = Duration::from_secs(24 * 60 * 60);

/// Bound on one fetch, so a CA that does not answer cannot stall the loop.
const FETCH_TIMEOUT: Duration = Duration::from_secs(30);

/// What is known about one certificate's renewal information.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct RenewalRecord {
    /// The certificate it is about (RFC 9773 identifier `aki.serial`): a
    /// new certificate makes the record stale.
    pub cert_id: String,
    /// Whether the directory lists `renewalInfo` at all.
    pub offered: bool,
    /// The CA's suggested window, Unix seconds.
    pub window: Option<Window>,
    /// The instant chosen inside the window (or "now" when it moved into
    /// the past), Unix seconds.
    pub renew_at: Option<i64>,
    /// The CA's page explaining the window, if it gave one.
    pub explanation_url: Option<String>,
    /// When to ask the CA again, Unix seconds.
    pub next_fetch: i64,
    /// Why the last fetch failed; cleared by a success.
    pub last_error: Option<String>,
}

/// A suggested renewal window, Unix seconds, `start < end`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Window {
    pub start: i64,
    pub end: i64,
}

/// When a certificate is renewed, and why (what `htgate cert check` shows).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RenewalPlan {
    /// From the CA's renewal information.
    Suggested {
        window_start: i64,
        window_end: i64,
        renew_at: i64,
        explanation_url: Option<String>,
    },
    /// The third-of-lifetime (or `renew_before_days`) rule; `why` says
    /// why the CA's window is not used.
    Lifetime { renew_at: i64, why: String },
}

impl RenewalPlan {
    pub fn renew_at(&self) -> i64 {
        match self {
            RenewalPlan::Suggested { renew_at, .. } | RenewalPlan::Lifetime { renew_at, .. } => {
                *renew_at
            }
        }
    }

    /// One line for people: the window and the chosen time, or the rule.
    pub fn describe(&self) -> String {
        use htgate_util::fmt_time;
        match self {
            RenewalPlan::Suggested {
                window_start,
                window_end,
                renew_at,
                explanation_url,
            } => {
                let why = explanation_url
                    .as_deref()
                    .map(|u| format!(" (the CA explains: {u})"))
                    .unwrap_or_default();
                format!(
                    "renewal at {} (the CA's renewal window is {} to {}){why}",
                    fmt_time(*renew_at),
                    fmt_time(*window_start),
                    fmt_time(*window_end)
                )
            }
            RenewalPlan::Lifetime { renew_at, why } => {
                format!(
                    "renewal at {} (a third of the lifetime left; {why})",
                    fmt_time(*renew_at)
                )
            }
        }
    }
}

/// The plan for `cert` given what is stored about it.
pub(crate) fn plan(
    cert: &StoredCert,
    record: Option<&RenewalRecord>,
    renew_before: Option<Duration>,
) -> RenewalPlan {
    let lifetime = renewal_due(cert.not_before, cert.not_after, renew_before);
    let id = identifier(cert).map(|id| id.to_string());
    let record = record.filter(|r| id.as_ref().is_ok_and(|id| *id == r.cert_id));
    let why = match (record, id) {
        (_, Err(e)) => format!("the CA cannot be asked about this certificate: {e}"),
        (None, Ok(_)) => "renewal information not fetched yet".to_string(),
        (Some(r), _) if !r.offered => "the CA offers no renewal information (ARI)".to_string(),
        (
            Some(RenewalRecord {
                window: Some(w),
                renew_at: Some(at),
                explanation_url,
                ..
            }),
            _,
        ) => {
            return RenewalPlan::Suggested {
                window_start: w.start,
                window_end: w.end,
                renew_at: *at,
                explanation_url: explanation_url.clone(),
            }
        }
        (Some(r), _) => format!(
            "fetching the CA's renewal information failed: {}",
            r.last_error.as_deref().unwrap_or("no answer")
        ),
    };
    RenewalPlan::Lifetime {
        renew_at: lifetime,
        why,
    }
}

/// RFC 9773 §4.1 identifier of a certificate: its Authority Key Identifier
/// and serial number.
pub(crate) fn identifier(cert: &StoredCert) -> Result<CertificateIdentifier<'static>, String> {
    leaf_identifier(cert.chain.first().ok_or("the chain holds no certificate")?)
}

/// The RFC 9773 identifier (`aki.serial`, base64url) of a leaf
/// certificate: what renewal information is asked for and what a renewal
/// order's `replaces` names.
pub fn certificate_id(leaf: &CertificateDer<'_>) -> Result<String, String> {
    leaf_identifier(leaf).map(|id| id.to_string())
}

fn leaf_identifier(leaf: &CertificateDer<'_>) -> Result<CertificateIdentifier<'static>, String> {
    let (_, parsed) =
        x509_parser::parse_x509_certificate(leaf).map_err(|e| format!("leaf certificate: {e}"))?;
    let aki = parsed
        .iter_extensions()
        .find_map(|ext| match ext.parsed_extension() {
            x509_parser::extensions::ParsedExtension::AuthorityKeyIdentifier(aki) => {
                aki.key_identifier.as_ref().map(|k| k.0)
            }
            _ => None,
        })
        .ok_or("the certificate has no Authority Key Identifier")?;
    Ok(CertificateIdentifier::new(
        Der::from_slice(aki),
        Der::from_slice(parsed.tbs_certificate.raw_serial()),
    )
    .into_owned())
}

fn record_path(storage: &Path, domain: &str) -> Option<PathBuf> {
    cert_dir(storage, domain).map(|dir| dir.join(RECORD_FILE))
}

/// The stored record for `domain` (whatever certificate it is about).
pub(crate) fn load(storage: &Path, domain: &str) -> Option<RenewalRecord> {
    let text = std::fs::read_to_string(record_path(storage, domain)?).ok()?;
    toml::from_str(&text).ok()
}

/// Stores `record` (best effort: without it the next start fetches again).
pub(crate) fn save(storage: &Path, domain: &str, record: &RenewalRecord) {
    let Some(path) = record_path(storage, domain) else {
        return;
    };
    let result = toml::to_string(record)
        .map_err(|e| std::io::Error::other(e.to_string()))
        .and_then(|text| write_atomic(&path, text.as_bytes(), 0o644));
    if let Err(e) = result {
        tracing::warn!(
            domain,
            "cannot store the renewal information in {}: {e}",
            path.display()
        );
    }
}

/// Whether `record` (for the current certificate) should be fetched again.
pub(crate) fn fetch_due(cert: &StoredCert, record: Option<&RenewalRecord>, now: i64) -> bool {
    let Ok(id) = identifier(cert) else {
        // Without an identifier there is nothing to ask; the lifetime rule.
        return false;
    };
    match record {
        Some(r) if r.cert_id == id.to_string() => r.next_fetch <= now,
        _ => true,
    }
}

/// Asks the CA about `cert`: the new record, and whether the CA answered
/// at all (when it did not, the rest of the pass does not ask it either).
/// `previous` (if about the same certificate) keeps the chosen instant.
pub(crate) async fn fetch(
    account: &Account,
    settings: &AcmeSettings,
    cert: &StoredCert,
    previous: Option<&RenewalRecord>,
    now: i64,
) -> (RenewalRecord, bool) {
    let id = match identifier(cert) {
        Ok(id) => id,
        Err(e) => {
            let record = RenewalRecord {
                cert_id: String::new(),
                offered: true,
                window: None,
                renew_at: None,
                explanation_url: None,
                next_fetch: later(now, RECHECK_MAX),
                last_error: Some(e),
            };
            return (record, true);
        }
    };
    let failed = |error: String| not_fetched(cert, previous, settings, now, error);
    let (info, retry_after) =
        match tokio::time::timeout(FETCH_TIMEOUT, account.renewal_info(&id)).await {
            Err(_) => {
                let error = format!("no answer within {}s", FETCH_TIMEOUT.as_secs());
                return (failed(error), false);
            }
            Ok(Err(instant_acme::Error::Unsupported(_))) => {
                let record = RenewalRecord {
                    cert_id: id.to_string(),
                    offered: false,
                    window: None,
                    renew_at: None,
                    explanation_url: None,
                    next_fetch: later(now, RECHECK_MAX),
                    last_error: None,
                };
                return (record, true);
            }
            Ok(Err(e)) => {
                // An answer that is no window (a problem document, bad
                // JSON) still shows the CA is there.
                let answered = matches!(
                    e,
                    instant_acme::Error::Api(_)
                        | instant_acme::Error::Json(_)
                        | instant_acme::Error::Str(_)
                );
                return (failed(describe(&e)), answered);
            }
            Ok(Ok(answer)) => answer,
        };
    let window = Window {
        start: info.suggested_window.start.unix_timestamp(),
        end: info.suggested_window.end.unix_timestamp(),
    };
    if window.end <= window.start {
        // RFC 9773 §4.2: such a window is invalid; decide ourselves.
        let error = format!(
            "the suggested window ends ({}) before it starts ({})",
            htgate_util::fmt_time(window.end),
            htgate_util::fmt_time(window.start)
        );
        return (failed(error), true);
    }
    if window.end > cert.not_after {
        // Following it could let the certificate expire before renewal.
        let error = format!(
            "the suggested window ends ({}) after the certificate expires ({})",
            htgate_util::fmt_time(window.end),
            htgate_util::fmt_time(cert.not_after)
        );
        return (failed(error), true);
    }
    let cert_id = id.to_string();
    let previous = previous.filter(|p| p.cert_id == cert_id);
    let renew_at = choose(window, previous, now, random_u64());
    let recheck_min = settings.renewal_info_recheck;
    let record = RenewalRecord {
        cert_id,
        offered: true,
        window: Some(window),
        renew_at: Some(renew_at),
        explanation_url: info.explanation_url,
        next_fetch: later(
            now,
            retry_after.clamp(recheck_min, RECHECK_MAX.max(recheck_min)),
        ),
        last_error: None,
    };
    (record, true)
}

/// The record when the CA could not be asked (or gave no usable window):
/// what was known about this certificate is kept (a CA briefly down does
/// not undo the chosen instant), asked again after the shortest wait.
pub(crate) fn not_fetched(
    cert: &StoredCert,
    previous: Option<&RenewalRecord>,
    settings: &AcmeSettings,
    now: i64,
    error: String,
) -> RenewalRecord {
    let cert_id = identifier(cert)
        .map(|id| id.to_string())
        .unwrap_or_default();
    let mut record = previous
        .filter(|p| p.cert_id == cert_id)
        .cloned()
        .unwrap_or(RenewalRecord {
            cert_id,
            offered: true,
            window: None,
            renew_at: None,
            explanation_url: None,
            next_fetch: 0,
            last_error: None,
        });
    record.offered = true;
    record.next_fetch = later(now, settings.renewal_info_recheck);
    record.last_error = Some(error);
    record
}

/// Logs what a fetch changed (a new window, a failure); an unchanged
/// answer is only a debug line.
pub(crate) fn log_change(domain: &str, before: Option<&RenewalRecord>, after: &RenewalRecord) {
    use htgate_util::fmt_time;
    if let Some(error) = &after.last_error {
        tracing::warn!(domain, error = %error, next_fetch = %fmt_time(after.next_fetch), "cannot fetch the CA's renewal information (ARI); the known window or the third-of-lifetime rule applies");
        return;
    }
    let same = before.is_some_and(|b| {
        b.cert_id == after.cert_id && b.window == after.window && b.offered == after.offered
    });
    match (after.window, after.renew_at) {
        (Some(w), Some(at)) if !same => tracing::info!(
            domain,
            window_start = %fmt_time(w.start),
            window_end = %fmt_time(w.end),
            renew_at = %fmt_time(at),
            explanation = ?after.explanation_url,
            "the CA's renewal window (ARI)"
        ),
        _ => tracing::debug!(
            domain,
            offered = after.offered,
            "renewal information unchanged"
        ),
    }
}

/// The renewal instant for `window`: the previous choice while the window
/// is unchanged; "now" when the window has ended, or has moved and already
/// begun (a CA asking for an early renewal); otherwise a uniformly random
/// instant inside it (RFC 9773 §4.2), which renews at once if it is past.
pub(crate) fn choose(
    window: Window,
    previous: Option<&RenewalRecord>,
    now: i64,
    random: u64,
) -> i64 {
    if let Some(p) = previous {
        if p.window == Some(window) {
            if let Some(at) = p.renew_at {
                return at;
            }
        }
    }
    let moved = previous.is_some_and(|p| p.window.is_some() && p.window != Some(window));
    if window.end <= now || (moved && window.start <= now) {
        return now;
    }
    let span = u64::try_from(window.end - window.start).unwrap_or(1).max(1);
    window.start + i64::try_from(random % span).unwrap_or(0)
}

fn later(now: i64, wait: Duration) -> i64 {
    now.saturating_add(i64::try_from(wait.as_secs()).unwrap_or(i64::MAX))
}

/// A random number from the TLS stack's system randomness (no extra
/// dependency); 0 if it fails, which only means the window's start.
fn random_u64() -> u64 {
    let mut bytes = [0u8; 8];
    match rustls::crypto::ring::default_provider()
        .secure_random
        .fill(&mut bytes)
    {
        Ok(()) => u64::from_le_bytes(bytes),
        Err(_) => 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: i64 = 1_800_000_000;
    const HOUR: i64 = 3600;

    fn record(window: Window, renew_at: i64) -> RenewalRecord {
        RenewalRecord {
            cert_id: "aki.serial".into(),
            offered: true,
            window: Some(window),
            renew_at: Some(renew_at),
            explanation_url: None,
            next_fetch: NOW,
            last_error: None,
        }
    }

    #[test]
    fn a_future_window_gives_an_instant_inside_it() {
        let w = Window {
            start: NOW + 10 * HOUR,
            end: NOW + 20 * HOUR,
        };
        for random in [0, 1, 35_999, 36_000, u64::MAX, 123_456_789] {
            let at = choose(w, None, NOW, random);
            assert!((w.start..w.end).contains(&at), "{random} -> {at}");
        }
        // Spread over the window, not stuck at one end.
        let picks: Vec<i64> = (0..4).map(|i| choose(w, None, NOW, i * 9000)).collect();
        assert_eq!(
            picks,
            vec![w.start, w.start + 9000, w.start + 18000, w.start + 27000]
        );
    }

    #[test]
    fn the_choice_is_kept_while_the_window_is_unchanged_and_redrawn_when_it_moves() {
        let w = Window {
            start: NOW + 10 * HOUR,
            end: NOW + 20 * HOUR,
        };
        let prev = record(w, NOW + 12 * HOUR);
        assert_eq!(choose(w, Some(&prev), NOW, 999), NOW + 12 * HOUR);
        let moved = Window {
            start: NOW + 30 * HOUR,
            end: NOW + 40 * HOUR,
        };
        let at = choose(moved, Some(&prev), NOW, 7);
        assert_eq!(at, moved.start + 7);
    }

    #[test]
    fn a_window_moved_into_the_past_renews_at_once() {
        let w = Window {
            start: NOW + 10 * HOUR,
            end: NOW + 20 * HOUR,
        };
        let prev = record(w, NOW + 12 * HOUR);
        let past = Window {
            start: NOW - 2 * HOUR,
            end: NOW - HOUR,
        };
        assert_eq!(choose(past, Some(&prev), NOW, 5), NOW);
        assert_eq!(choose(past, None, NOW, 5), NOW, "ended: at once");
        // Moved so that it has begun: at once (the CA wants it early).
        let begun = Window {
            start: NOW - HOUR,
            end: NOW + HOUR,
        };
        assert_eq!(choose(begun, Some(&prev), NOW, u64::MAX), NOW);
        // First seen while it runs (e.g. after an upgrade): RFC 9773's
        // random instant, so many certificates do not all renew at once.
        let at = choose(begun, None, NOW, 5400);
        assert_eq!(at, NOW - HOUR + 5400);
    }

    #[test]
    fn plans_say_which_rule_applies() {
        let generated =
            rcgen::generate_simple_self_signed(vec!["a.test".to_string()]).expect("rcgen");
        let cert = StoredCert::from_pem(
            "a.test",
            generated.cert.pem(),
            generated.key_pair.serialize_pem(),
        )
        .expect("valid pair");
        // rcgen's self-signed certificates carry no AKI: no identifier,
        // so the lifetime rule.
        let lifetime = renewal_due(cert.not_before, cert.not_after, None);
        let p = plan(&cert, None, None);
        assert_eq!(p.renew_at(), lifetime);
        assert!(
            p.describe().contains("no Authority Key Identifier"),
            "{}",
            p.describe()
        );
        assert!(!fetch_due(&cert, None, NOW));
    }
}

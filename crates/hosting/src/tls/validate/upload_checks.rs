//! Checks that only apply to a new upload (not to `inspect`): the leaf's
//! purpose and the validity dates, and how dates are shown.

use super::{CertInfo, UploadError, ValidatedCert, DAY, EXPIRY_WARNING_DAYS};
use x509_parser::prelude::{FromDer, X509Certificate};

/// A leaf whose extended key usage excludes TLS servers (an e-mail or
/// code-signing certificate) is refused by every browser.
pub(super) fn check_purpose(cert: &ValidatedCert) -> Result<(), UploadError> {
    let Some(leaf) = cert.chain.first() else {
        return Ok(());
    };
    let Ok((_, x509)) = X509Certificate::from_der(leaf.as_ref()) else {
        return Ok(());
    };
    match x509.extended_key_usage() {
        Ok(Some(eku)) if !eku.value.server_auth && !eku.value.any => {
            Err(UploadError::NotForWebsites {
                subject: cert.leaf.label(),
            })
        }
        _ => Ok(()),
    }
}

/// Validity dates of the leaf and of the needed intermediates; warnings for
/// what expires soon and for expired certificates that are not needed.
pub(super) fn check_dates(
    cert: &mut ValidatedCert,
    needed: usize,
    now: i64,
) -> Result<(), UploadError> {
    let leaf = &cert.leaf;
    if leaf.not_after < now {
        return Err(UploadError::Expired {
            subject: leaf.label(),
            date: rfc3339(leaf.not_after),
        });
    }
    if leaf.not_before > now {
        return Err(UploadError::NotYetValid {
            subject: leaf.label(),
            date: rfc3339(leaf.not_before),
        });
    }
    let mut warnings = expiry_warning(leaf, "certificate", now)
        .into_iter()
        .collect::<Vec<_>>();
    for (pos, info) in cert.intermediates.iter().enumerate() {
        let is_needed = pos + 1 < needed;
        if info.not_after < now {
            if is_needed {
                return Err(UploadError::IntermediateExpired {
                    subject: info.label(),
                    date: rfc3339(info.not_after),
                });
            }
            warnings.push(format!(
                "the unneeded certificate \"{}\" in the chain expired on {}; better leave it out",
                info.label(),
                rfc3339(info.not_after)
            ));
        } else if info.not_before > now && is_needed {
            return Err(UploadError::NotYetValid {
                subject: info.label(),
                date: rfc3339(info.not_before),
            });
        } else if is_needed {
            warnings.extend(expiry_warning(info, "intermediate certificate", now));
        }
    }
    cert.warnings.extend(warnings);
    Ok(())
}

fn expiry_warning(info: &CertInfo, what: &str, now: i64) -> Option<String> {
    let left = info.not_after - now;
    if left >= EXPIRY_WARNING_DAYS * DAY {
        return None;
    }
    let days = left / DAY;
    let when = match days {
        0 => "in less than a day".to_string(),
        1 => "in 1 day".to_string(),
        n => format!("in {n} days"),
    };
    Some(format!(
        "the {what} \"{}\" expires {when} (on {}); renew it soon",
        info.label(),
        rfc3339(info.not_after)
    ))
}

/// A unix time as an RFC 3339 UTC timestamp, e.g. "2025-03-01T12:00:00Z".
pub(crate) fn rfc3339(unix: i64) -> String {
    match chrono::DateTime::from_timestamp(unix, 0) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => format!("unix time {unix}"),
    }
}

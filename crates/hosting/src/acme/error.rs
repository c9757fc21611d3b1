//! ACME failures, worded for the operator reading a log line or
//! `htgate cert check`.

use std::path::PathBuf;
use std::time::Duration;

/// Why a certificate could not be obtained.
#[derive(Debug, thiserror::Error)]
pub enum AcmeError {
    #[error("the ACME directory {url} is unreachable: {detail}")]
    DirectoryUnreachable { url: String, detail: String },

    #[error("cannot trust the ACME server's root {}: {detail}", path.display())]
    CaRoot { path: PathBuf, detail: String },

    #[error("the ACME server {url} refused to create or load the account: {detail}")]
    AccountRefused { url: String, detail: String },

    #[error("the CA could not validate {domain}: fetching {url} failed: {detail}")]
    ChallengeFailed {
        domain: String,
        /// The URL the CA fetched (http://<domain>/.well-known/acme-challenge/<token>).
        url: String,
        /// The CA's problem detail.
        detail: String,
    },

    #[error("the CA offered no HTTP-01 challenge for {domain}")]
    NoHttp01Challenge { domain: String },

    #[error("the order for {domain} is invalid: {detail}")]
    OrderInvalid { domain: String, detail: String },

    #[error("timed out after {}s while {stage} for {domain}", after.as_secs())]
    Timeout {
        domain: String,
        stage: &'static str,
        after: Duration,
    },

    #[error("the ACME server failed while {stage} for {domain}: {detail}")]
    Protocol {
        domain: String,
        stage: &'static str,
        detail: String,
    },

    #[error("the certificate the CA returned for {domain} is unusable: {detail}")]
    BadCertificate { domain: String, detail: String },

    #[error("storage failure: cannot {action} {}: {source}", path.display())]
    Storage {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    #[error("cluster store failure while ordering {domain}: {detail}")]
    Cluster { domain: String, detail: String },

    #[error("no order for {domain}: the ACME profile {profile:?} is not offered by {directory}: {listed}")]
    UnknownProfile {
        domain: String,
        profile: String,
        directory: String,
        /// What the directory lists, in words.
        listed: String,
    },

    #[error("{domain} cannot get a certificate over HTTP-01: {reason}")]
    NotEligible {
        domain: String,
        reason: &'static str,
    },
}

impl AcmeError {
    pub(crate) fn storage(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        AcmeError::Storage {
            action,
            path: path.into(),
            source,
        }
    }
}

/// An instant-acme error in plain words: the CA's problem detail and type
/// for API errors, the whole cause chain otherwise (hyper's top-level
/// message alone, "client error (Connect)", says nothing useful).
pub(crate) fn describe(err: &instant_acme::Error) -> String {
    match err {
        instant_acme::Error::Api(problem) => describe_problem(problem),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(cause) = source {
                let cause_text = cause.to_string();
                if !text.contains(&cause_text) {
                    text.push_str(": ");
                    text.push_str(&cause_text);
                }
                source = cause.source();
            }
            text
        }
    }
}

/// A problem document as "detail (type) [subproblems]".
pub(crate) fn describe_problem(problem: &instant_acme::Problem) -> String {
    let mut text = problem
        .detail
        .clone()
        .unwrap_or_else(|| "no detail given".to_string());
    if let Some(kind) = &problem.r#type {
        text.push_str(&format!(" ({kind})"));
    }
    for sub in &problem.subproblems {
        text.push_str(&format!("; {sub}"));
    }
    text
}

/// Whether the CA refused the order's `replaces` (RFC 9773 §5): the
/// certificate was already replaced, or the CA could not use the
/// identifier (`malformed`), or instant-acme saw the CA ignore it or the
/// directory lacks `renewalInfo`. The order is then placed once more
/// without it: naming the old certificate is a courtesy, not a need.
pub(crate) fn refused_replaces(err: &instant_acme::Error) -> bool {
    match err {
        instant_acme::Error::Api(p) => p
            .r#type
            .as_deref()
            .is_some_and(|t| t.ends_with(":alreadyReplaced") || t.ends_with(":malformed")),
        instant_acme::Error::Unsupported(_) => true,
        instant_acme::Error::Other(e) => e.to_string().contains("replaces field mismatch"),
        _ => false,
    }
}

/// Whether the CA's answer means the stored account does not exist there
/// (pebble restarted, or the account was deactivated): worth creating a new one.
pub(crate) fn is_unknown_account(err: &instant_acme::Error) -> bool {
    matches!(err, instant_acme::Error::Api(p)
        if p.r#type.as_deref().is_some_and(|t| t.ends_with(":accountDoesNotExist")))
}

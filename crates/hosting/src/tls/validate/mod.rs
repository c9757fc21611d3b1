//! Validation of uploaded certificates.
//!
//! Shared-hosting customers upload a certificate chain (often
//! `fullchain.pem`) and a private key.  Before anything is installed we check
//! what browsers will check, and every problem becomes an [`UploadError`]
//! whose message says, in plain words, what is wrong, with which certificate
//! (by its subject) and what to do about it.
//!
//! The order of the checks matters for the quality of the message: the file
//! format first, then the key, then the chain (which certificate is the
//! site's, in which order the others come, whether one is missing), and only
//! then names and dates.

mod chain;
mod der;
mod error;
mod key;
mod names;
mod parse;
mod pem;
mod trust;
mod upload_checks;

#[cfg(test)]
pub(crate) mod testutil;

#[cfg(test)]
mod tests;

pub use error::FileKind;
pub(crate) use error::UploadError;
pub(crate) use names::{name_matches, uncovered};
pub use trust::Trust;

use chain::{certify, chain_end, order_chain, pick_leaf, reject_leftovers};
use key::load_signing_key;
use parse::{dedup, has_san_dns, parse_certificates};
use pem::{read_certificates, read_key};
use rustls::sign::CertifiedKey;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::sync::Arc;
use upload_checks::{check_dates, check_purpose};
use x509_parser::prelude::X509Certificate;

/// Uploads larger than this are not certificates: a long chain is ~10 KB.
/// The limit also bounds the work done on hostile input.
pub(crate) const MAX_UPLOAD_BYTES: usize = 1 << 20;

/// How close to expiry a certificate must be before we warn about it.
pub(crate) const EXPIRY_WARNING_DAYS: i64 = 14;

const DAY: i64 = 86_400;

/// Facts about one certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertInfo {
    /// A readable one-line DN, e.g. `CN=example.com`.
    pub subject: String,
    pub issuer: String,
    /// SAN DNS names (the CN when there is no SAN DNS name), lowercase.
    pub dns_names: Vec<String>,
    /// Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
    pub self_signed: bool,
    pub is_ca: bool,
    /// "ECDSA P-256", "RSA 2048", "Ed25519"…
    pub key_type: String,
}

impl CertInfo {
    /// How messages name this certificate: its subject, or its names when
    /// the subject is empty (some CAs now issue certificates without one).
    pub fn label(&self) -> String {
        if !self.subject.is_empty() {
            self.subject.clone()
        } else if self.dns_names.is_empty() {
            "(certificate without a name)".to_string()
        } else {
            format!("certificate for {}", self.dns_names.join(", "))
        }
    }
}

/// A certificate chain and key that passed validation.
#[derive(Debug)]
pub struct ValidatedCert {
    /// Leaf first, then the intermediates in issuing order (reordered if
    /// the upload had them in another order).
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// The chain with a ring signing key, ready for a certificate resolver.
    pub certified: Arc<CertifiedKey>,
    pub leaf: CertInfo,
    /// Everything after the leaf, in chain order (a root sent at the end is
    /// included, with `self_signed` set).
    pub intermediates: Vec<CertInfo>,
    /// True when the upload's order was fixed.
    pub reordered: bool,
    /// Things the customer should know that do not stop the upload.
    pub warnings: Vec<String>,
}

/// Full validation: PEM syntax, key, chain, names, dates.
pub fn validate(
    cert_pem: &[u8],
    key_pem: &[u8],
    domains: &[String],
    now: i64,
    trust: &Trust,
) -> Result<ValidatedCert, UploadError> {
    let Checked { mut cert, needed } = check(cert_pem, key_pem, trust)?;
    if cert.leaf.self_signed {
        return Err(UploadError::SelfSigned {
            subject: cert.leaf.label(),
        });
    }
    check_purpose(&cert)?;
    let missing = uncovered(&cert.leaf, domains);
    if !missing.is_empty() {
        return Err(UploadError::NamesNotCovered {
            missing,
            names: cert.leaf.dns_names.clone(),
        });
    }
    check_dates(&mut cert, needed, now)?;
    path_verdict(&cert, trust, now)?;
    Ok(cert)
}

/// The accept/reject decision, after the checks above have found what
/// they can say in the customer's words: rustls' own path validation
/// (webpki), which also checks what they do not (an intermediate without
/// the CA flag or the right key usage, path length and name
/// constraints).  A chain that ends at a root browsers do not trust was
/// accepted above with a warning: that root counts as an anchor here, so
/// only the chain's structure is judged.
fn path_verdict(cert: &ValidatedCert, trust: &Trust, now: i64) -> Result<(), UploadError> {
    let Some((leaf, rest)) = cert.chain.split_first() else {
        return Ok(());
    };
    let mut anchors = trust.webpki.clone();
    if let Some(last) = rest.last() {
        if cert.intermediates.last().is_some_and(|i| i.self_signed) {
            if let Ok(ta) = webpki::anchor_from_trusted_cert(last) {
                anchors.push(ta.to_owned());
            }
        }
    }
    let ee = webpki::EndEntityCert::try_from(leaf).map_err(|e| UploadError::PathRejected {
        reason: path_reason(&e),
    })?;
    let time = rustls_pki_types::UnixTime::since_unix_epoch(std::time::Duration::from_secs(
        u64::try_from(now).unwrap_or(0),
    ));
    ee.verify_for_usage(
        webpki::ALL_VERIFICATION_ALGS,
        &anchors,
        rest,
        time,
        webpki::KeyUsage::server_auth(),
        None,
        None,
    )
    .map(drop)
    .map_err(|e| UploadError::PathRejected {
        reason: path_reason(&e),
    })
}

/// webpki's reason in the customer's words.
fn path_reason(e: &webpki::Error) -> String {
    use webpki::Error as E;
    match e {
        E::CaUsedAsEndEntity => "the site certificate is marked as a certificate authority (CA:TRUE); certificate authorities issue site certificates, they are not one".into(),
        E::EndEntityUsedAsCa => "a certificate in the chain that issued another is not a certificate authority (it lacks CA:TRUE or the keyCertSign key usage)".into(),
        E::PathLenConstraintViolated => "an intermediate certificate's path length constraint does not allow this chain".into(),
        E::NameConstraintViolation => "a certificate authority in the chain is not allowed to issue certificates for these names (name constraints)".into(),
        E::UnknownIssuer => "the chain does not lead to a certificate authority that browsers trust".into(),
        E::RequiredEkuNotFoundContext(_) => "a certificate in the chain is not allowed for TLS server authentication (extended key usage)".into(),
        E::CertExpired { .. } => "a certificate in the chain has expired".into(),
        E::CertNotValidYet { .. } => "a certificate in the chain is not valid yet".into(),
        other => format!("{other:?}"),
    }
}

/// Same parsing/chain/key checks as [`validate`] but without the domain and
/// date checks, and a self-signed leaf is accepted (`leaf.self_signed`
/// tells): used to inspect an installed certificate (list/expiry/fallback).
pub(crate) fn inspect(
    cert_pem: &[u8],
    key_pem: &[u8],
    trust: &Trust,
) -> Result<ValidatedCert, UploadError> {
    check(cert_pem, key_pem, trust).map(|c| c.cert)
}

/// The result of the checks shared by `validate` and `inspect`.
struct Checked {
    cert: ValidatedCert,
    /// How many chain certificates (from the leaf) browsers need: those
    /// after are unneeded (a root, or certificates above a trusted CA), so
    /// their expiry does not matter.
    needed: usize,
}

/// One uploaded certificate: its block number in the file, DER and parse.
struct Uploaded<'a> {
    block: usize,
    der: &'a CertificateDer<'static>,
    x509: X509Certificate<'a>,
    info: CertInfo,
}

fn check(cert_pem: &[u8], key_pem: &[u8], trust: &Trust) -> Result<Checked, UploadError> {
    let mut warnings = Vec::new();
    let blocks = read_certificates(cert_pem)?;
    let ders = dedup(blocks, &mut warnings);
    let certs = parse_certificates(&ders)?;
    let key = read_key(key_pem)?;
    let signing_key = load_signing_key(&key)?;
    let leaf = pick_leaf(&certs, signing_key.as_ref())?;
    let order = order_chain(&certs, leaf)?;
    let needed = chain_end(&certs, &order, trust, &mut warnings)?;
    reject_leftovers(&certs, &order)?;

    let reordered = order.iter().enumerate().any(|(pos, &i)| pos != i);
    if reordered {
        warnings.push(
            "the certificates were not in the right order (your site's certificate must come \
             first, then each intermediate); the order was fixed"
                .to_string(),
        );
    }
    if !has_san_dns(&certs[leaf].x509) {
        warnings.push(format!(
            "the certificate \"{}\" has no DNS names in its Subject Alternative Name extension; \
             modern browsers ignore the common name and may reject it",
            certs[leaf].info.label()
        ));
    }
    let chain: Vec<CertificateDer<'static>> = order.iter().map(|&i| certs[i].der.clone()).collect();
    let certified = certify(&certs[leaf], chain.clone(), signing_key)?;
    let intermediates = order[1..].iter().map(|&i| certs[i].info.clone()).collect();
    Ok(Checked {
        cert: ValidatedCert {
            chain,
            key,
            certified,
            leaf: certs[leaf].info.clone(),
            intermediates,
            reordered,
            warnings,
        },
        needed,
    })
}

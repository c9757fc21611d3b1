//! The uploaded certificates parsed: duplicates dropped, each one's
//! [`CertInfo`] (subject, names, dates, key type).

use super::key::spki_key_type;
use super::{CertInfo, UploadError, Uploaded};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, GeneralName, X509Certificate, X509Error};

/// Drops exact duplicates (a pasted intermediate twice is harmless, but
/// would otherwise look like an unrelated certificate).
pub(super) fn dedup(
    blocks: Vec<CertificateDer<'static>>,
    warnings: &mut Vec<String>,
) -> Vec<CertificateDer<'static>> {
    let mut out: Vec<CertificateDer<'static>> = Vec::with_capacity(blocks.len());
    let mut dropped = 0;
    for der in blocks {
        if out.contains(&der) {
            dropped += 1;
        } else {
            out.push(der);
        }
    }
    if dropped > 0 {
        warnings.push(format!(
            "the certificate file contained {dropped} duplicate certificate(s); the copies were removed"
        ));
    }
    out
}

pub(super) fn parse_certificates<'a>(
    ders: &'a [CertificateDer<'static>],
) -> Result<Vec<Uploaded<'a>>, UploadError> {
    ders.iter()
        .enumerate()
        .map(|(i, der)| {
            let bad = |reason: String| UploadError::BadCertificate {
                block: i + 1,
                reason,
            };
            match X509Certificate::from_der(der.as_ref()) {
                Ok((rest, _)) if !rest.is_empty() => {
                    Err(bad("there is extra data after the certificate".to_string()))
                }
                Ok((_, x509)) => {
                    let info = cert_info(&x509);
                    Ok(Uploaded {
                        block: i + 1,
                        der,
                        x509,
                        info,
                    })
                }
                Err(e) => Err(bad(x509_problem(e))),
            }
        })
        .collect()
}

fn x509_problem(e: x509_parser::nom::Err<X509Error>) -> String {
    match e {
        x509_parser::nom::Err::Incomplete(_) => "the data is cut short".to_string(),
        x509_parser::nom::Err::Error(e) | x509_parser::nom::Err::Failure(e) => e.to_string(),
    }
}

fn cert_info(x509: &X509Certificate<'_>) -> CertInfo {
    CertInfo {
        subject: x509.subject().to_string(),
        issuer: x509.issuer().to_string(),
        dns_names: dns_names(x509),
        not_before: x509.validity().not_before.timestamp(),
        not_after: x509.validity().not_after.timestamp(),
        self_signed: is_self_signed(x509),
        is_ca: x509.is_ca(),
        key_type: spki_key_type(x509.public_key()),
    }
}

/// Self-signed means the certificate names itself as issuer and its own key
/// verifies its signature (a self-issued CA key rollover is not).
fn is_self_signed(x509: &X509Certificate<'_>) -> bool {
    x509.subject().as_raw() == x509.issuer().as_raw() && x509.verify_signature(None).is_ok()
}

fn san_dns(x509: &X509Certificate<'_>) -> Vec<String> {
    match x509.subject_alternative_name() {
        Ok(Some(san)) => san
            .value
            .general_names
            .iter()
            .filter_map(|n| match n {
                GeneralName::DNSName(d) => Some(d.to_ascii_lowercase()),
                _ => None,
            })
            .collect(),
        _ => Vec::new(),
    }
}

pub(super) fn has_san_dns(x509: &X509Certificate<'_>) -> bool {
    !san_dns(x509).is_empty()
}

fn dns_names(x509: &X509Certificate<'_>) -> Vec<String> {
    let san = san_dns(x509);
    if !san.is_empty() {
        return san;
    }
    x509.subject()
        .iter_common_name()
        .filter_map(|cn| cn.as_str().ok())
        .map(|cn| cn.to_ascii_lowercase())
        .collect()
}

//! The chain: which uploaded certificate is the site's, the order of the
//! others (with their signatures checked), where the chain ends, what does
//! not belong to it, and the consistency of chain and key.

use super::key::key_belongs_to;
use super::{Trust, UploadError, Uploaded};
use rustls::sign::{CertifiedKey, SigningKey};
use rustls_pki_types::CertificateDer;
use std::sync::Arc;
use x509_parser::prelude::X509Error;

/// Which certificate is the site's (the leaf): the one the key belongs to,
/// which must be the single non-CA certificate.
pub(super) fn pick_leaf(
    certs: &[Uploaded<'_>],
    key: &dyn SigningKey,
) -> Result<usize, UploadError> {
    let leaves: Vec<usize> = (0..certs.len()).filter(|&i| !certs[i].info.is_ca).collect();
    let owner = (0..certs.len()).find(|&i| key_belongs_to(key, &certs[i].x509));
    let label = |i: usize| certs[i].info.label();
    if leaves.len() > 1 {
        return Err(UploadError::MultipleLeaves {
            subjects: leaves.iter().map(|&i| label(i)).collect(),
            key_owner: owner.map(label),
        });
    }
    match (owner, leaves.first()) {
        (Some(o), _) if !certs[o].info.is_ca => Ok(o),
        (Some(o), Some(&l)) => Err(UploadError::KeyBelongsToCa {
            ca: label(o),
            leaf: label(l),
        }),
        // `openssl req -x509` marks its certificate as a CA: alone and
        // signed by itself, it is a self-signed site certificate.
        (Some(o), None) if certs.len() == 1 && certs[o].info.self_signed => {
            Err(UploadError::SelfSigned { subject: label(o) })
        }
        (Some(o), None) => Err(UploadError::LeafIsCa { subject: label(o) }),
        (None, Some(&l)) => Err(UploadError::KeyMismatch { leaf: label(l) }),
        (None, None) => Err(UploadError::NoSiteCertificate {
            subjects: (0..certs.len()).map(label).collect(),
        }),
    }
}

/// Orders the chain from the leaf by following issuer → subject links among
/// the uploaded certificates, checking each signature.
pub(super) fn order_chain(certs: &[Uploaded<'_>], leaf: usize) -> Result<Vec<usize>, UploadError> {
    let mut order = vec![leaf];
    let mut used = vec![false; certs.len()];
    used[leaf] = true;
    while let Some(&current) = order.last() {
        let cert = &certs[current];
        if cert.info.self_signed {
            break;
        }
        let candidates: Vec<usize> = (0..certs.len())
            .filter(|&j| {
                !used[j] && certs[j].x509.subject().as_raw() == cert.x509.issuer().as_raw()
            })
            .collect();
        let Some(&first) = candidates.first() else {
            break;
        };
        // Two CA certificates may share a name (a re-keyed CA): the issuer is
        // the one whose key verifies the signature.
        let verified = candidates.iter().copied().find(|&j| {
            cert.x509
                .verify_signature(Some(certs[j].x509.public_key()))
                .is_ok()
        });
        match verified {
            Some(j) => {
                used[j] = true;
                order.push(j);
            }
            None => return Err(signature_error(cert, &certs[first])),
        }
    }
    Ok(order)
}

fn signature_error(cert: &Uploaded<'_>, issuer: &Uploaded<'_>) -> UploadError {
    let subject = cert.info.label();
    let issuer_label = issuer.info.label();
    match cert.x509.verify_signature(Some(issuer.x509.public_key())) {
        Err(X509Error::SignatureUnsupportedAlgorithm) => UploadError::UnsupportedSignature {
            subject,
            issuer: issuer_label,
        },
        _ => UploadError::BadSignature {
            subject,
            issuer: issuer_label,
        },
    }
}

/// Checks that the ordered chain reaches something browsers trust, and
/// returns how many certificates (from the leaf) are needed for that.  The
/// chain is complete when a certificate is issued by a trust anchor, when a
/// certificate after the leaf is itself an anchor, or when it ends with a
/// self-signed certificate.
pub(super) fn chain_end(
    certs: &[Uploaded<'_>],
    order: &[usize],
    trust: &Trust,
    warnings: &mut Vec<String>,
) -> Result<usize, UploadError> {
    let needed = order.iter().enumerate().find_map(|(pos, &i)| {
        if pos > 0 && trust.is_anchor(&certs[i].x509) {
            Some(pos)
        } else if trust.issued(&certs[i].x509) {
            Some(pos + 1)
        } else {
            None
        }
    });
    let last = &certs[order[order.len() - 1]];
    let needed = match needed {
        Some(n) => n,
        None if last.info.self_signed && order.len() > 1 => {
            warnings.push(format!(
                "the chain ends with the root certificate \"{}\", which is not one that browsers \
                 trust; visitors will see a security warning unless their devices trust it",
                last.info.label()
            ));
            order.len() - 1
        }
        None if last.info.self_signed => order.len(),
        // The chain has intermediates, and the last one's issuer is
        // unknown: a missing intermediate or an untrusted (private) root,
        // which the upload cannot tell apart.
        None if order.len() > 1 => {
            return Err(UploadError::UntrustedIssuer {
                issuer: last.info.issuer.clone(),
                subject: last.info.label(),
            })
        }
        None => {
            return Err(UploadError::MissingIntermediate {
                missing: last.info.issuer.clone(),
                subject: last.info.label(),
            })
        }
    };
    for &i in &order[needed.min(order.len())..] {
        warnings.push(format!(
            "the certificate \"{}\" at the end of the chain is not needed (browsers already have \
             the root); it does no harm, but you may leave it out",
            certs[i].info.label()
        ));
    }
    Ok(needed)
}

/// Certificates the chain did not use do not belong to this site.
pub(super) fn reject_leftovers(certs: &[Uploaded<'_>], order: &[usize]) -> Result<(), UploadError> {
    let extra: Vec<String> = (0..certs.len())
        .filter(|i| !order.contains(i))
        .map(|i| certs[i].info.label())
        .collect();
    if extra.is_empty() {
        return Ok(());
    }
    Err(UploadError::UnrelatedCertificates {
        leaf: certs[order[0]].info.label(),
        extra,
    })
}

/// The chain with its signing key, checked with rustls' own consistency test
/// (the one the server relies on).
pub(super) fn certify(
    leaf: &Uploaded<'_>,
    chain: Vec<CertificateDer<'static>>,
    signing_key: Arc<dyn SigningKey>,
) -> Result<Arc<CertifiedKey>, UploadError> {
    let certified = CertifiedKey::new(chain, signing_key);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(Arc::new(certified))
        }
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            Err(UploadError::KeyMismatch {
                leaf: leaf.info.label(),
            })
        }
        Err(e) => Err(UploadError::BadCertificate {
            block: leaf.block,
            reason: format!("it cannot be used for TLS: {e}"),
        }),
    }
}

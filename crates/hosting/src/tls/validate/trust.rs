//! Trust anchors: the roots browsers trust (plus extra roots), and whether
//! an uploaded certificate is one of them or was issued by one.

use super::der::{der_sequence, name_contents};
use rustls_pki_types::CertificateDer;
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo, X509Certificate};

/// Trust anchors: the certificate authorities whose certificates need no
/// intermediate above them.  Mozilla's roots (as browsers have them) plus any
/// extra roots, e.g. a test CA.
#[derive(Debug, Clone)]
pub struct Trust {
    anchors: Vec<Anchor>,
    /// The same roots as webpki verifies with (Mozilla's keep their name
    /// constraints).
    pub(super) webpki: Vec<rustls_pki_types::TrustAnchor<'static>>,
}

#[derive(Debug, Clone)]
struct Anchor {
    /// Contents of the subject Name (no SEQUENCE header), as webpki keeps it.
    subject: Vec<u8>,
    /// The complete SubjectPublicKeyInfo DER (with its SEQUENCE header).
    spki: Vec<u8>,
}

impl Trust {
    /// Mozilla's root certificates (webpki-roots).
    pub fn mozilla() -> Self {
        let anchors = webpki_roots::TLS_SERVER_ROOTS
            .iter()
            .map(|ta| Anchor {
                subject: ta.subject.as_ref().to_vec(),
                // webpki stores the SPKI without its outer header; put it back
                // so x509-parser can read it for signature checks.
                spki: der_sequence(ta.subject_public_key_info.as_ref()),
            })
            .collect();
        Trust {
            anchors,
            webpki: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        }
    }

    /// Mozilla's roots plus `ders`.  A DER that is not a certificate is
    /// skipped (and logged): a bad extra root must not make every upload fail.
    pub(crate) fn with_extra_roots(ders: Vec<CertificateDer<'static>>) -> Self {
        let mut trust = Self::mozilla();
        for der in &ders {
            match X509Certificate::from_der(der.as_ref()) {
                Ok((_, cert)) => {
                    trust.anchors.push(Anchor {
                        subject: name_contents(cert.subject()).to_vec(),
                        spki: cert.public_key().raw.to_vec(),
                    });
                    if let Ok(ta) = webpki::anchor_from_trusted_cert(der) {
                        trust.webpki.push(ta.to_owned());
                    }
                }
                Err(e) => tracing::warn!("ignoring an extra trust root that cannot be parsed: {e}"),
            }
        }
        trust
    }

    /// True when `cert` itself is one of the anchors (same name and key).
    pub(super) fn is_anchor(&self, cert: &X509Certificate<'_>) -> bool {
        let subject = name_contents(cert.subject());
        let spki = cert.public_key().raw;
        self.anchors
            .iter()
            .any(|a| a.subject == subject && a.spki == spki)
    }

    /// True when `cert` was signed by one of the anchors.
    pub(super) fn issued(&self, cert: &X509Certificate<'_>) -> bool {
        let issuer = name_contents(cert.issuer());
        self.anchors
            .iter()
            .filter(|a| a.subject == issuer)
            .any(|a| match SubjectPublicKeyInfo::from_der(&a.spki) {
                Ok((_, spki)) => cert.verify_signature(Some(&spki)).is_ok(),
                Err(_) => false,
            })
    }
}

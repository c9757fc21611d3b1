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

use rustls::sign::{CertifiedKey, SigningKey};
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use std::fmt;
use std::path::PathBuf;
use std::sync::Arc;
use x509_parser::asn1_rs::{Any, Class};
use x509_parser::prelude::{
    FromDer, GeneralName, SubjectPublicKeyInfo, X509Certificate, X509Error, X509Name,
};

/// Uploads larger than this are not certificates: a long chain is ~10 KB.
/// The limit also bounds the work done on hostile input.
pub const MAX_UPLOAD_BYTES: usize = 1 << 20;

/// How close to expiry a certificate must be before we warn about it.
pub const EXPIRY_WARNING_DAYS: i64 = 14;

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

/// Trust anchors: the certificate authorities whose certificates need no
/// intermediate above them.  Mozilla's roots (as browsers have them) plus any
/// extra roots, e.g. a test CA.
#[derive(Debug, Clone)]
pub struct Trust {
    anchors: Vec<Anchor>,
    /// The same roots as webpki verifies with (Mozilla's keep their name
    /// constraints).
    webpki: Vec<rustls_pki_types::TrustAnchor<'static>>,
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
    pub fn with_extra_roots(ders: Vec<CertificateDer<'static>>) -> Self {
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
    fn is_anchor(&self, cert: &X509Certificate<'_>) -> bool {
        let subject = name_contents(cert.subject());
        let spki = cert.public_key().raw;
        self.anchors
            .iter()
            .any(|a| a.subject == subject && a.spki == spki)
    }

    /// True when `cert` was signed by one of the anchors.
    fn issued(&self, cert: &X509Certificate<'_>) -> bool {
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

/// Which uploaded file a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileKind {
    Certificate,
    Key,
}

impl FileKind {
    fn pem_label(self) -> &'static str {
        match self {
            FileKind::Certificate => "CERTIFICATE",
            FileKind::Key => "PRIVATE KEY",
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            FileKind::Certificate => "certificate file",
            FileKind::Key => "key file",
        })
    }
}

/// Why an upload was refused.  `Display` is the sentence shown to the
/// customer.
#[derive(Debug, thiserror::Error)]
pub enum UploadError {
    #[error("the {file} is too large ({size} bytes); certificates and keys are only a few kilobytes, so check that you picked the right file")]
    TooLarge { file: FileKind, size: usize },

    #[error("the {file} is empty; upload the file itself (a PEM file is text that starts with \"-----BEGIN {}-----\")", .file.pem_label())]
    Empty { file: FileKind },

    #[error("the certificate file holds a certificate signing request (CSR), not a certificate; send the CSR to your certificate authority and upload the certificate it issues for it")]
    RequestNotCertificate,

    #[error("the {file} is not in PEM format: it should be text with lines like \"-----BEGIN {}-----\"; if you have a binary .der, .pfx or .p12 file, convert it first (for example: openssl pkcs12 -in site.pfx -nodes -out site.pem)", .file.pem_label())]
    NotPem { file: FileKind },

    #[error("the {file} has a damaged PEM block (block {block}: {problem}); upload the file exactly as you received it, without editing it")]
    BrokenPem {
        file: FileKind,
        block: usize,
        problem: String,
    },

    #[error("the certificate file contains no certificate (no \"-----BEGIN CERTIFICATE-----\" block){}", swapped_hint(.found_key, "a private key"))]
    NoCertificate { found_key: bool },

    #[error("the key file contains no private key (no \"-----BEGIN PRIVATE KEY-----\" block){}", swapped_hint(.found_certificate, "certificates"))]
    NoPrivateKey { found_certificate: bool },

    #[error("the private key is protected by a passphrase; upload it without one (openssl pkey -in key.pem -out key-nopass.pem)")]
    EncryptedKey,

    #[error("certificate block {block} of the certificate file is not a valid X.509 certificate ({reason}); upload the certificate exactly as your certificate authority delivered it")]
    BadCertificate { block: usize, reason: String },

    #[error("the private key is a {key_type} key, which is not supported; use an RSA key of 2048 to 8192 bits, an ECDSA P-256 or P-384 key, or an Ed25519 key, and have the certificate issued for that key")]
    UnsupportedKey { key_type: String },

    #[error("the private key{} could not be read: it is damaged; upload the key file exactly as it was created together with the certificate request (CSR)", key_type_suffix(.key_type))]
    UnreadableKey { key_type: Option<String> },

    #[error("the private key does not belong to the certificate \"{leaf}\"; upload the private key that was created together with this certificate's request (CSR), or the certificate that was issued for this key")]
    KeyMismatch { leaf: String },

    #[error("the private key belongs to \"{ca}\", a certificate authority's certificate in the chain, not to your site's certificate \"{leaf}\"; upload the private key of \"{leaf}\"")]
    KeyBelongsToCa { ca: String, leaf: String },

    #[error("the private key belongs to \"{subject}\", which is a certificate authority's certificate, not a certificate for a web site; upload your site's certificate and its key")]
    LeafIsCa { subject: String },

    #[error("the certificate file contains only certificate authority certificates ({}), not your site's own certificate; upload your site's certificate first, followed by these intermediates", quoted(.subjects))]
    NoSiteCertificate { subjects: Vec<String> },

    #[error("the certificate file contains more than one site certificate ({}){}; upload only one site certificate, followed by its intermediates", quoted(.subjects), key_owner_hint(.key_owner))]
    MultipleLeaves {
        subjects: Vec<String>,
        key_owner: Option<String>,
    },

    #[error("the certificate \"{subject}\" names \"{issuer}\" as its issuer, but the uploaded certificate \"{issuer}\" did not sign it (the signature does not verify); the chain mixes certificates from different issuances, so download the intermediates for this certificate again from your certificate authority")]
    BadSignature { subject: String, issuer: String },

    #[error("the signature on the certificate \"{subject}\" by \"{issuer}\" uses an algorithm that cannot be checked (and that many browsers reject); ask your certificate authority for a certificate signed with RSA/SHA-256 or ECDSA")]
    UnsupportedSignature { subject: String, issuer: String },

    #[error("the certificate chain was rejected: {reason}; browsers would reject it too, so ask your certificate authority for a correct chain")]
    PathRejected { reason: String },

    #[error("the certificate chain is incomplete: the intermediate certificate \"{missing}\" that issued \"{subject}\" is missing; upload the full chain (leaf first, then the intermediates), e.g. fullchain.pem")]
    MissingIntermediate { missing: String, subject: String },

    #[error("the chain ends at \"{subject}\", issued by \"{issuer}\", which is neither in the upload nor a certificate authority that browsers trust: if \"{issuer}\" is an intermediate certificate, upload the full chain; if it is a private (untrusted) root, browsers will reject this certificate and it cannot serve a public site")]
    UntrustedIssuer { issuer: String, subject: String },

    #[error("the certificate file contains certificates that do not belong to the chain of \"{leaf}\": {}; remove them and upload only your site's certificate followed by its intermediates", quoted(.extra))]
    UnrelatedCertificates { leaf: String, extra: Vec<String> },

    #[error("the certificate \"{subject}\" is self-signed (not issued by a certificate authority), so browsers show a security warning for it; upload a certificate from a certificate authority (for example Let's Encrypt)")]
    SelfSigned { subject: String },

    #[error("the certificate \"{subject}\" is not meant for web sites (its extended key usage does not allow TLS server authentication); upload a TLS/SSL server certificate")]
    NotForWebsites { subject: String },

    #[error("the certificate does not cover {}: it is only valid for {}; get a certificate that includes every domain of the site", .missing.join(", "), names_or_none(.names))]
    NamesNotCovered {
        missing: Vec<String>,
        names: Vec<String>,
    },

    #[error("the certificate \"{subject}\" expired on {date}; renew it with your certificate authority and upload the new certificate")]
    Expired { subject: String, date: String },

    #[error("the certificate \"{subject}\" is not valid yet: it becomes valid on {date}; upload it after that time, or check that you picked the right certificate")]
    NotYetValid { subject: String, date: String },

    #[error("the intermediate certificate \"{subject}\" in the chain expired on {date}; download the current intermediate certificates from your certificate authority and upload the full chain again")]
    IntermediateExpired { subject: String, date: String },

    #[error("the installed certificate in {} is incomplete ({missing} is missing); upload the certificate and key again", .dir.display())]
    Incomplete { dir: PathBuf, missing: &'static str },

    #[error("the server cannot read {} ({detail}): the files of a site's upload folder must be readable by the user htgate runs as; `htgate cert install` gives them to the owner of the folder that holds it", .path.display())]
    Unreadable { path: PathBuf, detail: String },

    #[error("the certificate could not be {action} because of a server problem ({}: {source}); please try again or contact support", .path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

fn swapped_hint(found: &bool, what: &str) -> String {
    if *found {
        format!("; it contains {what} instead, so the two files may have been swapped")
    } else {
        String::new()
    }
}

fn key_type_suffix(key_type: &Option<String>) -> String {
    key_type
        .as_ref()
        .map(|t| format!(" ({t})"))
        .unwrap_or_default()
}

fn key_owner_hint(owner: &Option<String>) -> String {
    owner
        .as_ref()
        .map(|o| format!("; the private key belongs to \"{o}\""))
        .unwrap_or_default()
}

fn quoted(list: &[String]) -> String {
    list.iter()
        .map(|s| format!("\"{s}\""))
        .collect::<Vec<_>>()
        .join(", ")
}

fn names_or_none(names: &[String]) -> String {
    if names.is_empty() {
        "no domain name at all".to_string()
    } else {
        names.join(", ")
    }
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
pub fn inspect(
    cert_pem: &[u8],
    key_pem: &[u8],
    trust: &Trust,
) -> Result<ValidatedCert, UploadError> {
    check(cert_pem, key_pem, trust).map(|c| c.cert)
}

/// RFC 6125 matching of a certificate name against a host name,
/// case-insensitive.  A wildcard is only allowed as the whole leftmost label
/// and stands for exactly one label: "*.example.com" matches
/// "www.example.com" but neither "example.com" nor "a.b.example.com".
pub fn name_matches(cert_name: &str, host: &str) -> bool {
    // A trailing dot is the same host (absolute form).
    let cert_name = cert_name.trim_end_matches('.').to_ascii_lowercase();
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    if cert_name.is_empty() || host.is_empty() || host.contains('*') {
        return false;
    }
    match cert_name.strip_prefix("*.") {
        Some(base) => {
            // "*.com" would cover a whole top-level domain: never valid.
            if base.contains('*') || !base.contains('.') {
                return false;
            }
            match host.split_once('.') {
                Some((label, rest)) => !label.is_empty() && rest == base,
                None => false,
            }
        }
        // Partial-label wildcards ("w*.example.com") are not honoured by
        // browsers, so they match nothing.
        None => !cert_name.contains('*') && cert_name == host,
    }
}

/// Which of `domains` the leaf does not cover.  A site domain may itself be
/// a wildcard ("*.example.com"); only the identical wildcard name covers it.
pub fn uncovered(leaf: &CertInfo, domains: &[String]) -> Vec<String> {
    domains
        .iter()
        .filter(|domain| !covers(leaf, domain))
        .cloned()
        .collect()
}

fn covers(leaf: &CertInfo, domain: &str) -> bool {
    if domain.starts_with("*.") {
        let wanted = domain.trim_end_matches('.').to_ascii_lowercase();
        leaf.dns_names
            .iter()
            .any(|n| n.trim_end_matches('.') == wanted)
    } else {
        leaf.dns_names.iter().any(|n| name_matches(n, domain))
    }
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

// ---------------------------------------------------------------------------
// PEM

/// The PEM sections of one uploaded file, in order.  Text outside sections
/// is ignored (as OpenSSL does), but a broken section is an error.
fn pem_sections(data: &[u8], file: FileKind) -> Result<Vec<(SectionKind, Vec<u8>)>, UploadError> {
    if data.len() > MAX_UPLOAD_BYTES {
        return Err(UploadError::TooLarge {
            file,
            size: data.len(),
        });
    }
    if data.iter().all(u8::is_ascii_whitespace) {
        return Err(UploadError::Empty { file });
    }
    if !contains(data, b"-----BEGIN ") {
        return Err(UploadError::NotPem { file });
    }
    let mut out = Vec::new();
    for item in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(data) {
        match item {
            Ok(section) => out.push(section),
            Err(e) => {
                return Err(UploadError::BrokenPem {
                    file,
                    block: out.len() + 1,
                    problem: pem_problem(&e),
                })
            }
        }
    }
    Ok(out)
}

/// The PEM parser's error in words (its own Display shows byte arrays).
fn pem_problem(e: &rustls_pki_types::pem::Error) -> String {
    use rustls_pki_types::pem::Error;
    match e {
        Error::MissingSectionEnd { end_marker } => format!(
            "the \"-----END {}-----\" line is missing",
            String::from_utf8_lossy(end_marker).trim()
        ),
        Error::IllegalSectionStart { line } => format!(
            "the line \"{}\" is not a valid BEGIN line",
            String::from_utf8_lossy(line).trim()
        ),
        Error::Base64Decode(_) => {
            "the text between its BEGIN and END lines is not valid base64".to_string()
        }
        Error::SectionTooLarge => "it is far too large".to_string(),
        other => other.to_string(),
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn read_certificates(cert_pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, UploadError> {
    let sections = pem_sections(cert_pem, FileKind::Certificate)?;
    let found_key = sections.iter().any(|(kind, _)| is_key_section(*kind));
    let certs: Vec<_> = sections
        .into_iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der))
        .collect();
    if certs.is_empty() {
        if contains(cert_pem, b"CERTIFICATE REQUEST-----") {
            return Err(UploadError::RequestNotCertificate);
        }
        return Err(UploadError::NoCertificate { found_key });
    }
    Ok(certs)
}

fn is_key_section(kind: SectionKind) -> bool {
    matches!(
        kind,
        SectionKind::PrivateKey | SectionKind::RsaPrivateKey | SectionKind::EcPrivateKey
    )
}

/// The first private key (PKCS#8, PKCS#1 or SEC1) of the key file.
fn read_key(key_pem: &[u8]) -> Result<PrivateKeyDer<'static>, UploadError> {
    // Checked before parsing: a legacy encrypted PEM key has header lines
    // that the PEM parser would report as damaged base64.
    if contains(key_pem, b"-----BEGIN ENCRYPTED PRIVATE KEY-----")
        || contains(key_pem, b"Proc-Type: 4,ENCRYPTED")
    {
        return Err(UploadError::EncryptedKey);
    }
    let sections = pem_sections(key_pem, FileKind::Key)?;
    let found_certificate = sections
        .iter()
        .any(|(kind, _)| *kind == SectionKind::Certificate);
    sections
        .into_iter()
        .find_map(|(kind, der)| htgate_server::tls::private_key(kind, der))
        .ok_or(UploadError::NoPrivateKey { found_certificate })
}

// ---------------------------------------------------------------------------
// Certificates and key

/// Drops exact duplicates (a pasted intermediate twice is harmless, but
/// would otherwise look like an unrelated certificate).
fn dedup(
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

fn parse_certificates<'a>(
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

fn has_san_dns(x509: &X509Certificate<'_>) -> bool {
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

/// The contents of a Name (without its SEQUENCE header), the form in which
/// webpki keeps trust anchor subjects.
fn name_contents<'a>(name: &X509Name<'a>) -> &'a [u8] {
    match Any::from_der(name.as_raw()) {
        Ok((_, any)) => any.data,
        Err(_) => name.as_raw(),
    }
}

/// Wraps `contents` in a DER SEQUENCE header.
fn der_sequence(contents: &[u8]) -> Vec<u8> {
    let len = contents.len();
    let mut out = vec![0x30];
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .iter()
            .copied()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend_from_slice(&bytes);
    }
    out.extend_from_slice(contents);
    out
}

const OID_RSA: &str = "1.2.840.113549.1.1.1";
const OID_RSA_PSS: &str = "1.2.840.113549.1.1.10";
const OID_EC: &str = "1.2.840.10045.2.1";
const OID_ED25519: &str = "1.3.101.112";
const OID_ED448: &str = "1.3.101.113";
const OID_DSA: &str = "1.2.840.10040.4.1";

fn curve_name(oid: Option<&str>) -> String {
    match oid {
        Some("1.2.840.10045.3.1.7") => "P-256".to_string(),
        Some("1.3.132.0.34") => "P-384".to_string(),
        Some("1.3.132.0.35") => "P-521".to_string(),
        Some("1.3.132.0.10") => "secp256k1".to_string(),
        Some(other) => format!("curve {other}"),
        None => "(unknown curve)".to_string(),
    }
}

/// "RSA 2048", "ECDSA P-256", "Ed25519"… from an algorithm OID, its
/// parameter OID (the curve) and, for RSA, the modulus size.
fn algorithm_name(alg: &str, param: Option<&str>, rsa_bits: Option<usize>) -> String {
    let rsa = |name: &str| match rsa_bits {
        Some(bits) => format!("{name} {bits}"),
        None => name.to_string(),
    };
    match alg {
        OID_RSA => rsa("RSA"),
        OID_RSA_PSS => rsa("RSA-PSS"),
        OID_EC => format!("ECDSA {}", curve_name(param)),
        OID_ED25519 => "Ed25519".to_string(),
        OID_ED448 => "Ed448".to_string(),
        OID_DSA => "DSA".to_string(),
        other => format!("unknown ({other})"),
    }
}

fn spki_key_type(spki: &SubjectPublicKeyInfo<'_>) -> String {
    let alg = spki.algorithm.algorithm.to_id_string();
    let param = spki
        .algorithm
        .parameters
        .as_ref()
        .and_then(|p| p.as_oid().ok())
        .map(|o| o.to_id_string());
    let bits = match spki.parsed() {
        Ok(x509_parser::public_key::PublicKey::RSA(rsa)) => Some(integer_bits(rsa.modulus)),
        _ => None,
    };
    algorithm_name(&alg, param.as_deref(), bits)
}

/// Bit length of a big-endian unsigned integer (leading zeros ignored).
fn integer_bits(bytes: &[u8]) -> usize {
    let trimmed: Vec<u8> = bytes.iter().copied().skip_while(|&b| b == 0).collect();
    match trimmed.first() {
        Some(first) => trimmed.len() * 8 - first.leading_zeros() as usize,
        None => 0,
    }
}

/// The DER elements inside a constructed value, in order.
fn der_children(contents: &[u8]) -> Vec<Any<'_>> {
    let mut out = Vec::new();
    let mut rest = contents;
    while !rest.is_empty() {
        match Any::from_der(rest) {
            Ok((next, any)) => {
                out.push(any);
                rest = next;
            }
            Err(_) => break,
        }
    }
    out
}

/// The contents of the single DER value in `der`.
fn der_contents(der: &[u8]) -> Option<&[u8]> {
    Any::from_der(der).ok().map(|(_, any)| any.data)
}

/// The modulus size of a PKCS#1 RSAPrivateKey (version, modulus, …).
fn pkcs1_bits(der: &[u8]) -> Option<usize> {
    let children = der_children(der_contents(der)?);
    children.get(1).map(|m| integer_bits(m.data))
}

/// What kind of key the key file holds, best effort, for messages about keys
/// the signer cannot load.
fn key_file_type(key: &PrivateKeyDer<'_>) -> Option<String> {
    match key {
        PrivateKeyDer::Pkcs1(k) => Some(algorithm_name(
            OID_RSA,
            None,
            pkcs1_bits(k.secret_pkcs1_der()),
        )),
        PrivateKeyDer::Sec1(k) => {
            // ECPrivateKey: version, privateKey, [0] parameters (the curve).
            let children = der_children(der_contents(k.secret_sec1_der())?);
            let curve = children
                .iter()
                .find(|c| c.class() == Class::ContextSpecific && c.tag().0 == 0)
                .and_then(|c| Any::from_der(c.data).ok())
                .and_then(|(_, oid)| oid.as_oid().ok().map(|o| o.to_id_string()));
            Some(algorithm_name(OID_EC, curve.as_deref(), None))
        }
        PrivateKeyDer::Pkcs8(k) => {
            // PrivateKeyInfo: version, AlgorithmIdentifier, privateKey.
            let children = der_children(der_contents(k.secret_pkcs8_der())?);
            let alg = der_children(children.get(1)?.data);
            let oid = alg.first()?.as_oid().ok()?.to_id_string();
            let param = alg
                .get(1)
                .and_then(|p| p.as_oid().ok())
                .map(|o| o.to_id_string());
            let bits = children.get(2).and_then(|k| pkcs1_bits(k.data));
            Some(algorithm_name(&oid, param.as_deref(), bits))
        }
        _ => None,
    }
}

/// The key types ring can sign with.
fn supported_key_type(key_type: &str) -> bool {
    if let Some(bits) = key_type.strip_prefix("RSA ") {
        return bits
            .parse::<usize>()
            .is_ok_and(|b| (2048..=8192).contains(&b));
    }
    matches!(key_type, "ECDSA P-256" | "ECDSA P-384" | "Ed25519")
}

fn load_signing_key(key: &PrivateKeyDer<'static>) -> Result<Arc<dyn SigningKey>, UploadError> {
    let provider = rustls::crypto::ring::default_provider();
    provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|_| match key_file_type(key) {
            Some(t) if !supported_key_type(&t) => UploadError::UnsupportedKey { key_type: t },
            key_type => UploadError::UnreadableKey { key_type },
        })
}

/// Whether `key` is the private key of `cert`: same SubjectPublicKeyInfo.
/// Compared directly (as `CertifiedKey::keys_match` does) so that this works
/// on every uploaded certificate, including ones webpki would not parse.
fn key_belongs_to(key: &dyn SigningKey, cert: &X509Certificate<'_>) -> bool {
    key.public_key()
        .is_some_and(|spki| spki.as_ref() == cert.public_key().raw)
}

/// Which certificate is the site's (the leaf): the one the key belongs to,
/// which must be the single non-CA certificate.
fn pick_leaf(certs: &[Uploaded<'_>], key: &dyn SigningKey) -> Result<usize, UploadError> {
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
fn order_chain(certs: &[Uploaded<'_>], leaf: usize) -> Result<Vec<usize>, UploadError> {
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
fn chain_end(
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
fn reject_leftovers(certs: &[Uploaded<'_>], order: &[usize]) -> Result<(), UploadError> {
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
fn certify(
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

// ---------------------------------------------------------------------------
// Checks that only apply to a new upload

/// A leaf whose extended key usage excludes TLS servers (an e-mail or
/// code-signing certificate) is refused by every browser.
fn check_purpose(cert: &ValidatedCert) -> Result<(), UploadError> {
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
fn check_dates(cert: &mut ValidatedCert, needed: usize, now: i64) -> Result<(), UploadError> {
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
pub fn rfc3339(unix: i64) -> String {
    match chrono::DateTime::from_timestamp(unix, 0) {
        Some(t) => t.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
        None => format!("unix time {unix}"),
    }
}

/// Certificate chains for tests, shared with the `upload` tests.
#[cfg(test)]
pub(crate) mod testutil {
    use super::Trust;
    use rcgen::{
        BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
        KeyUsagePurpose,
    };

    /// 2025-06-15, inside rcgen's default validity (1975–4096).
    pub(crate) const NOW: i64 = 1_750_000_000;

    pub(crate) struct Issued {
        pub cert: Certificate,
        pub key: KeyPair,
    }

    impl Issued {
        pub fn pem(&self) -> String {
            self.cert.pem()
        }
        pub fn key_pem(&self) -> String {
            self.key.serialize_pem()
        }
    }

    fn dn(cn: &str) -> DistinguishedName {
        let mut dn = DistinguishedName::new();
        dn.push(DnType::CommonName, cn);
        dn
    }

    pub(crate) fn ca_params(cn: &str) -> CertificateParams {
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(cn);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        params
    }

    pub(crate) fn leaf_params(names: &[&str]) -> CertificateParams {
        let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names.clone()).expect("leaf params");
        params.distinguished_name = dn(names.first().map(String::as_str).unwrap_or("leaf"));
        params
    }

    pub(crate) fn self_sign(params: CertificateParams) -> Issued {
        let key = KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("self-signed");
        Issued { cert, key }
    }

    pub(crate) fn sign(params: CertificateParams, issuer: &Issued) -> Issued {
        sign_with(params, issuer, KeyPair::generate().expect("key"))
    }

    pub(crate) fn sign_with(params: CertificateParams, issuer: &Issued, key: KeyPair) -> Issued {
        let cert = params
            .signed_by(&key, &issuer.cert, &issuer.key)
            .expect("signed");
        Issued { cert, key }
    }

    /// Test root → intermediate, both ECDSA P-256.
    pub(crate) struct Pki {
        pub root: Issued,
        pub int: Issued,
    }

    pub(crate) fn pki() -> Pki {
        let root = self_sign(ca_params("htgate Test Root"));
        let int = sign(ca_params("htgate Test Intermediate"), &root);
        Pki { root, int }
    }

    impl Pki {
        pub fn leaf(&self, names: &[&str]) -> Issued {
            sign(leaf_params(names), &self.int)
        }
        pub fn trust(&self) -> Trust {
            Trust::with_extra_roots(vec![self.root.cert.der().clone()])
        }
        /// Leaf then intermediate, as a CA delivers fullchain.pem.
        pub fn fullchain(&self, leaf: &Issued) -> String {
            format!("{}{}", leaf.pem(), self.int.pem())
        }
    }

    pub(crate) fn strings(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::testutil::*;
    use super::*;

    const SITE: [&str; 2] = ["example.com", "www.example.com"];

    fn check_ok(cert: &str, key: &str, pki: &Pki) -> ValidatedCert {
        validate(
            cert.as_bytes(),
            key.as_bytes(),
            &strings(&SITE),
            NOW,
            &pki.trust(),
        )
        .expect("valid upload")
    }

    fn check_err(cert: &str, key: &str, pki: &Pki) -> UploadError {
        validate(
            cert.as_bytes(),
            key.as_bytes(),
            &strings(&SITE),
            NOW,
            &pki.trust(),
        )
        .expect_err("invalid upload")
    }

    fn unix(t: &rcgen::Certificate) -> (i64, i64) {
        let (_, x) = X509Certificate::from_der(t.der().as_ref()).expect("parse");
        (
            x.validity().not_before.timestamp(),
            x.validity().not_after.timestamp(),
        )
    }

    #[test]
    fn valid_chain_is_accepted_in_order() {
        let pki = pki();
        let leaf = pki.leaf(&SITE);
        let v = check_ok(&pki.fullchain(&leaf), &leaf.key_pem(), &pki);
        assert!(!v.reordered);
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);
        assert_eq!(
            v.chain,
            vec![leaf.cert.der().clone(), pki.int.cert.der().clone()]
        );
        assert_eq!(v.leaf.subject, "CN=example.com");
        assert_eq!(v.leaf.issuer, "CN=htgate Test Intermediate");
        assert_eq!(v.leaf.dns_names, strings(&SITE));
        assert_eq!(v.leaf.key_type, "ECDSA P-256");
        assert!(!v.leaf.is_ca && !v.leaf.self_signed);
        assert_eq!(v.intermediates.len(), 1);
        assert!(v.intermediates[0].is_ca);
        assert!(v.certified.keys_match().is_ok());
        assert_eq!(v.certified.cert, v.chain);
    }

    #[test]
    fn root_at_the_end_is_accepted_with_a_warning() {
        let pki = pki();
        let leaf = pki.leaf(&SITE);
        let upload = format!("{}{}", pki.fullchain(&leaf), pki.root.pem());
        let v = check_ok(&upload, &leaf.key_pem(), &pki);
        assert!(!v.reordered);
        assert_eq!(v.chain.len(), 3);
        assert!(v.intermediates[1].self_signed);
        assert_eq!(v.warnings.len(), 1, "{:?}", v.warnings);
        assert!(
            v.warnings[0].contains("\"CN=htgate Test Root\""),
            "{:?}",
            v.warnings
        );
        assert!(v.warnings[0].contains("not needed"), "{:?}", v.warnings);
    }

    #[test]
    fn reversed_chain_is_reordered() {
        let pki = pki();
        let leaf = pki.leaf(&SITE);
        let upload = format!("{}{}{}", pki.root.pem(), pki.int.pem(), leaf.pem());
        let v = check_ok(&upload, &leaf.key_pem(), &pki);
        assert!(v.reordered);
        let expected = vec![
            leaf.cert.der().clone(),
            pki.int.cert.der().clone(),
            pki.root.cert.der().clone(),
        ];
        assert_eq!(v.chain, expected);
        assert!(
            v.warnings.iter().any(|w| w.contains("the order was fixed")),
            "{:?}",
            v.warnings
        );

        let upload = format!("{}{}", pki.int.pem(), leaf.pem());
        let v = check_ok(&upload, &leaf.key_pem(), &pki);
        assert!(v.reordered);
        assert_eq!(v.chain[0], *leaf.cert.der());
        assert!(v.certified.keys_match().is_ok());
    }

    #[test]
    fn duplicate_intermediate_is_dropped_with_a_warning() {
        let pki = pki();
        let leaf = pki.leaf(&SITE);
        let upload = format!("{}{}", pki.fullchain(&leaf), pki.int.pem());
        let v = check_ok(&upload, &leaf.key_pem(), &pki);
        assert_eq!(v.chain.len(), 2);
        assert!(
            v.warnings.iter().any(|w| w.contains("duplicate")),
            "{:?}",
            v.warnings
        );
    }

    #[test]
    fn wrong_key_is_rejected() {
        let pki = pki();
        let leaf = pki.leaf(&SITE);
        let other = pki.leaf(&SITE);
        let err = check_err(&pki.fullchain(&leaf), &other.key_pem(), &pki);
        assert!(matches!(err, UploadError::KeyMismatch { .. }), "{err}");
        assert!(err.to_string().starts_with(
            "the private key does not belong to the certificate \"CN=example.com\"; upload the private key"
        ), "{err}");
    }

    #[test]
    fn key_of_the_intermediate_is_named() {
        let pki = pki();
        let leaf = pki.leaf(&SITE);
        let err = check_err(&pki.fullchain(&leaf), &pki.int.key_pem(), &pki);
        assert!(matches!(err, UploadError::KeyBelongsToCa { .. }), "{err}");
        assert!(
            err.to_string().contains("\"CN=htgate Test Intermediate\""),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("upload the private key of \"CN=example.com\""),
            "{err}"
        );

        // Only CA certificates and the intermediate's key: no site certificate.
        let err = check_err(&pki.int.pem(), &pki.int.key_pem(), &pki);
        assert!(matches!(err, UploadError::LeafIsCa { .. }), "{err}");
        let err = check_err(&pki.int.pem(), &leaf.key_pem(), &pki);
        assert!(
            matches!(err, UploadError::NoSiteCertificate { .. }),
            "{err}"
        );
        assert!(
            err.to_string().contains("not your site's own certificate"),
            "{err}"
        );
    }

    #[test]
    fn two_leaves_are_rejected() {
        let pki = pki();
        let leaf = pki.leaf(&SITE);
        let old = pki.leaf(&["old.example.com"]);
        let upload = format!("{}{}{}", leaf.pem(), old.pem(), pki.int.pem());
        let err = check_err(&upload, &leaf.key_pem(), &pki);
        assert!(matches!(err, UploadError::MultipleLeaves { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "the certificate file contains more than one site certificate (\"CN=example.com\", \
             \"CN=old.example.com\"); the private key belongs to \"CN=example.com\"; upload only \
             one site certificate, followed by its intermediates"
        );
    }

    #[test]
    fn expired_and_not_yet_valid_leaves_are_rejected() {
        let pki = pki();
        let mut params = leaf_params(&SITE);
        params.not_before = rcgen::date_time_ymd(2019, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        let leaf = sign(params, &pki.int);
        let err = check_err(&pki.fullchain(&leaf), &leaf.key_pem(), &pki);
        assert!(matches!(err, UploadError::Expired { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "the certificate \"CN=example.com\" expired on 2020-01-01T00:00:00Z; renew it with \
             your certificate authority and upload the new certificate"
        );
        // inspect() does not look at dates.
        let v = inspect(
            pki.fullchain(&leaf).as_bytes(),
            leaf.key_pem().as_bytes(),
            &pki.trust(),
        )
        .expect("inspect");
        assert_eq!(v.leaf.not_after, 1_577_836_800);

        let mut params = leaf_params(&SITE);
        params.not_before = rcgen::date_time_ymd(2040, 1, 1);
        params.not_after = rcgen::date_time_ymd(2041, 1, 1);
        let leaf = sign(params, &pki.int);
        let err = check_err(&pki.fullchain(&leaf), &leaf.key_pem(), &pki);
        assert!(matches!(err, UploadError::NotYetValid { .. }), "{err}");
        assert!(
            err.to_string()
                .contains("becomes valid on 2040-01-01T00:00:00Z"),
            "{err}"
        );
    }

    #[test]
    fn expiring_soon_warns() {
        let pki = pki();
        let leaf = pki.leaf(&SITE);
        let (_, not_after) = unix(&leaf.cert);
        let now = not_after - 5 * DAY - 3600;
        let v = validate(
            pki.fullchain(&leaf).as_bytes(),
            leaf.key_pem().as_bytes(),
            &strings(&SITE),
            now,
            &pki.trust(),
        )
        .expect("still valid");
        assert_eq!(v.warnings.len(), 2, "{:?}", v.warnings); // leaf and intermediate
        assert!(
            v.warnings[0].contains("\"CN=example.com\" expires in 5 days"),
            "{:?}",
            v.warnings
        );
    }

    #[test]
    fn expired_intermediate_is_rejected() {
        let pki = pki();
        let mut params = ca_params("htgate Old Intermediate");
        params.not_before = rcgen::date_time_ymd(2010, 1, 1);
        params.not_after = rcgen::date_time_ymd(2020, 1, 1);
        let int = sign(params, &pki.root);
        let leaf = sign(leaf_params(&SITE), &int);
        let upload = format!("{}{}", leaf.pem(), int.pem());
        let err = check_err(&upload, &leaf.key_pem(), &pki);
        assert!(
            matches!(err, UploadError::IntermediateExpired { .. }),
            "{err}"
        );
        assert!(err.to_string().starts_with(
            "the intermediate certificate \"CN=htgate Old Intermediate\" in the chain expired on 2020-01-01T00:00:00Z"
        ), "{err}");
    }

    #[test]
    fn missing_intermediate_is_rejected_naming_the_issuer() {
        let pki = pki();
        let leaf = pki.leaf(&SITE);
        let err = check_err(&leaf.pem(), &leaf.key_pem(), &pki);
        assert!(
            matches!(err, UploadError::MissingIntermediate { .. }),
            "{err}"
        );
        assert_eq!(
            err.to_string(),
            "the certificate chain is incomplete: the intermediate certificate \"CN=htgate Test \
             Intermediate\" that issued \"CN=example.com\" is missing; upload the full chain \
             (leaf first, then the intermediates), e.g. fullchain.pem"
        );
        // With only Mozilla's roots the chain ends at an issuer that may be
        // a missing intermediate or an untrusted root: the message says
        // both, not "intermediate missing".
        let err = validate(
            pki.fullchain(&leaf).as_bytes(),
            leaf.key_pem().as_bytes(),
            &strings(&SITE),
            NOW,
            &Trust::mozilla(),
        )
        .expect_err("untrusted");
        assert!(matches!(err, UploadError::UntrustedIssuer { .. }), "{err}");
        assert!(
            err.to_string().starts_with(
                "the chain ends at \"CN=htgate Test Intermediate\", issued by \"CN=htgate Test Root\", which is neither in the upload nor a certificate authority that browsers trust"
            ),
            "{err}"
        );
    }

    #[test]
    fn unrelated_certificate_is_rejected() {
        let pki = pki();
        let leaf = pki.leaf(&SITE);
        let stranger = self_sign(ca_params("Some Other CA"));
        let upload = format!("{}{}", pki.fullchain(&leaf), stranger.pem());
        let err = check_err(&upload, &leaf.key_pem(), &pki);
        assert!(
            matches!(err, UploadError::UnrelatedCertificates { .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("chain of \"CN=example.com\": \"CN=Some Other CA\"; remove them"),
            "{err}"
        );
    }

    #[test]
    fn signature_from_an_impostor_issuer_is_rejected() {
        let pki = pki();
        let leaf = pki.leaf(&SITE);
        // Same name as the real intermediate, different key.
        let impostor = sign(ca_params("htgate Test Intermediate"), &pki.root);
        let upload = format!("{}{}", leaf.pem(), impostor.pem());
        let err = check_err(&upload, &leaf.key_pem(), &pki);
        assert!(matches!(err, UploadError::BadSignature { .. }), "{err}");
        assert!(err.to_string().starts_with(
            "the certificate \"CN=example.com\" names \"CN=htgate Test Intermediate\" as its issuer, but"
        ), "{err}");
    }

    /// What the customer-worded checks do not look at, path validation
    /// does: a root whose path length allows no intermediate, and an
    /// intermediate whose name constraints exclude the site's name.
    #[test]
    fn path_length_and_name_constraints_are_enforced() {
        // root -> strict (path length 0) -> deep -> leaf: "deep" is one
        // intermediate too many under "strict"
        let root = self_sign(ca_params("htgate Root"));
        let mut strict_params = ca_params("htgate Strict Intermediate");
        strict_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Constrained(0));
        let strict = sign(strict_params, &root);
        let deep = sign(ca_params("htgate Too Deep Intermediate"), &strict);
        let leaf = sign(leaf_params(&SITE), &deep);
        let trust = Trust::with_extra_roots(vec![root.cert.der().clone()]);
        let err = validate(
            format!("{}{}{}", leaf.pem(), deep.pem(), strict.pem()).as_bytes(),
            leaf.key_pem().as_bytes(),
            &strings(&SITE),
            NOW,
            &trust,
        )
        .expect_err("path length");
        assert!(matches!(err, UploadError::PathRejected { .. }), "{err}");
        assert!(err.to_string().contains("path length"), "{err}");

        let root = self_sign(ca_params("htgate Root"));
        let mut int_params = ca_params("htgate Constrained Intermediate");
        int_params.name_constraints = Some(rcgen::NameConstraints {
            permitted_subtrees: vec![rcgen::GeneralSubtree::DnsName("other.test".into())],
            excluded_subtrees: Vec::new(),
        });
        let int = sign(int_params, &root);
        let leaf = sign(leaf_params(&SITE), &int);
        let trust = Trust::with_extra_roots(vec![root.cert.der().clone()]);
        let err = validate(
            format!("{}{}", leaf.pem(), int.pem()).as_bytes(),
            leaf.key_pem().as_bytes(),
            &strings(&SITE),
            NOW,
            &trust,
        )
        .expect_err("name constraints");
        assert!(err.to_string().contains("name constraints"), "{err}");
    }

    #[test]
    fn self_signed_leaf_is_rejected_but_inspectable() {
        let pki = pki();
        let leaf = self_sign(leaf_params(&SITE));
        let err = check_err(&leaf.pem(), &leaf.key_pem(), &pki);
        assert!(matches!(err, UploadError::SelfSigned { .. }), "{err}");
        assert!(
            err.to_string().contains("browsers show a security warning"),
            "{err}"
        );
        let v = inspect(
            leaf.pem().as_bytes(),
            leaf.key_pem().as_bytes(),
            &pki.trust(),
        )
        .expect("inspect");
        assert!(v.leaf.self_signed);
    }

    #[test]
    fn certificate_for_other_purposes_is_rejected() {
        let pki = pki();
        let mut params = leaf_params(&SITE);
        params.extended_key_usages = vec![rcgen::ExtendedKeyUsagePurpose::EmailProtection];
        let leaf = sign(params, &pki.int);
        let err = check_err(&pki.fullchain(&leaf), &leaf.key_pem(), &pki);
        assert!(matches!(err, UploadError::NotForWebsites { .. }), "{err}");
    }

    #[test]
    fn uncovered_domain_is_rejected() {
        let pki = pki();
        let leaf = pki.leaf(&["example.com"]);
        let err = check_err(&pki.fullchain(&leaf), &leaf.key_pem(), &pki);
        assert!(matches!(err, UploadError::NamesNotCovered { .. }), "{err}");
        assert_eq!(
            err.to_string(),
            "the certificate does not cover www.example.com: it is only valid for example.com; \
             get a certificate that includes every domain of the site"
        );
    }

    #[test]
    fn wildcard_names() {
        assert!(name_matches("*.example.com", "sub.example.com"));
        assert!(name_matches("*.Example.COM", "SUB.example.com."));
        assert!(!name_matches("*.example.com", "example.com"));
        assert!(!name_matches("*.example.com", "a.b.example.com"));
        assert!(!name_matches("*.com", "example.com"));
        assert!(!name_matches("w*.example.com", "www.example.com"));
        assert!(!name_matches("a.*.example.com", "a.b.example.com"));
        assert!(name_matches("Example.com", "example.COM"));
        assert!(!name_matches("", ""));

        let pki = pki();
        let leaf = pki.leaf(&["*.example.com"]);
        let v = inspect(
            pki.fullchain(&leaf).as_bytes(),
            leaf.key_pem().as_bytes(),
            &pki.trust(),
        )
        .expect("inspect");
        let domains = strings(&[
            "sub.example.com",
            "example.com",
            "a.b.example.com",
            "*.example.com",
            "*.other.com",
        ]);
        assert_eq!(
            uncovered(&v.leaf, &domains),
            strings(&["example.com", "a.b.example.com", "*.other.com"])
        );
        // A wildcard site domain needs the identical wildcard name.
        let plain = pki.leaf(&["www.example.com"]);
        let v = inspect(
            pki.fullchain(&plain).as_bytes(),
            plain.key_pem().as_bytes(),
            &pki.trust(),
        )
        .expect("inspect");
        assert_eq!(
            uncovered(&v.leaf, &strings(&["*.example.com"])),
            strings(&["*.example.com"])
        );
    }

    /// Uploads whose old messages misled: an empty file ("not PEM ...
    /// .pfx"), a CSR ("contains no certificate"), a plain `openssl req
    /// -x509` certificate ("belongs to a certificate authority's
    /// certificate").
    #[test]
    fn empty_files_csrs_and_openssl_self_signed_certificates_are_named() {
        let pki = pki();
        let leaf = pki.leaf(&SITE);
        let (cert, key) = (pki.fullchain(&leaf), leaf.key_pem());
        let err = check_err("", &key, &pki);
        assert!(
            matches!(
                err,
                UploadError::Empty {
                    file: FileKind::Certificate
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string().starts_with("the certificate file is empty"),
            "{err}"
        );
        let err = check_err(&cert, "\n\n", &pki);
        assert!(
            matches!(
                err,
                UploadError::Empty {
                    file: FileKind::Key
                }
            ),
            "{err}"
        );

        let key_pair = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(vec!["www.example.com".to_string()]).expect("params");
        let csr = params
            .serialize_request(&key_pair)
            .expect("csr")
            .pem()
            .expect("pem");
        let err = check_err(&csr, &key_pair.serialize_pem(), &pki);
        assert!(matches!(err, UploadError::RequestNotCertificate), "{err}");
        assert!(
            err.to_string()
                .contains("certificate signing request (CSR)"),
            "{err}"
        );

        // as `openssl req -x509` makes it: CA:TRUE, signed by itself
        let mut params =
            rcgen::CertificateParams::new(vec!["www.example.com".to_string()]).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let own = params.self_signed(&key_pair).expect("self-signed");
        let err = check_err(&own.pem(), &key_pair.serialize_pem(), &pki);
        assert!(matches!(err, UploadError::SelfSigned { .. }), "{err}");
        assert!(err.to_string().contains("is self-signed"), "{err}");
    }

    #[test]
    fn malformed_uploads_are_named_precisely() {
        let pki = pki();
        let leaf = pki.leaf(&SITE);
        let (cert, key) = (pki.fullchain(&leaf), leaf.key_pem());

        let err = check_err("hello, world", &key, &pki);
        assert!(
            matches!(
                err,
                UploadError::NotPem {
                    file: FileKind::Certificate
                }
            ),
            "{err}"
        );
        assert!(
            err.to_string()
                .starts_with("the certificate file is not in PEM format"),
            "{err}"
        );
        let err = check_err(&cert, "\x30\x7f\x01\x00", &pki);
        assert!(
            matches!(
                err,
                UploadError::NotPem {
                    file: FileKind::Key
                }
            ),
            "{err}"
        );

        let truncated = &cert[..cert.len() - 30];
        let err = check_err(truncated, &key, &pki);
        assert!(
            matches!(err, UploadError::BrokenPem { block: 2, .. }),
            "{err}"
        );
        assert!(
            err.to_string()
                .contains("\"-----END CERTIFICATE-----\" line is missing"),
            "{err}"
        );

        let err = check_err(&key, &key, &pki);
        assert!(
            matches!(err, UploadError::NoCertificate { found_key: true }),
            "{err}"
        );
        assert!(err.to_string().contains("swapped"), "{err}");
        let err = check_err(&cert, &cert, &pki);
        assert!(
            matches!(
                err,
                UploadError::NoPrivateKey {
                    found_certificate: true
                }
            ),
            "{err}"
        );

        let encrypted = "-----BEGIN ENCRYPTED PRIVATE KEY-----\nMIIBvTBXBgkqhkiG9w0BBQ0w\n-----END ENCRYPTED PRIVATE KEY-----\n";
        let err = check_err(&cert, encrypted, &pki);
        assert_eq!(
            err.to_string(),
            "the private key is protected by a passphrase; upload it without one (openssl pkey \
             -in key.pem -out key-nopass.pem)"
        );
        let legacy = "-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED\nDEK-Info: AES-128-CBC,00\n\nAAAA\n-----END RSA PRIVATE KEY-----\n";
        assert!(matches!(
            check_err(&cert, legacy, &pki),
            UploadError::EncryptedKey
        ));

        // Valid PEM around a damaged second certificate.
        let der = pki.int.cert.der();
        let damaged = crate::tls::upload::pem_encode("CERTIFICATE", &der[..der.len() / 2]);
        let err = check_err(&format!("{}{damaged}", leaf.pem()), &key, &pki);
        assert!(
            matches!(err, UploadError::BadCertificate { block: 2, .. }),
            "{err}"
        );
        assert!(
            err.to_string().starts_with(
                "certificate block 2 of the certificate file is not a valid X.509 certificate"
            ),
            "{err}"
        );

        let junk_key = crate::tls::upload::pem_encode("PRIVATE KEY", b"not a key");
        let err = check_err(&cert, &junk_key, &pki);
        assert!(
            matches!(err, UploadError::UnreadableKey { key_type: None }),
            "{err}"
        );
    }

    const P521_PKCS8: &str = "-----BEGIN PRIVATE KEY-----
MIHuAgEAMBAGByqGSM49AgEGBSuBBAAjBIHWMIHTAgEBBEIAVyFaH9dwOumW5/Lx
jofhLU4Ct5RW05AIPDbrKEnpRKe8XrEL+XYo5puxRhu+7jeNVHRIye9Q7EQQSfYC
BMWvjTGhgYkDgYYABABJwywEnkoM2QmrhlCGpMYQLjOm7r+QdVSYl4uI4ZxW8DCh
Vo0tMk4WKvDohIL6QdE/qARo3O5uUHU9r2AoS0+zsgEVGQpKtyyG0UWTcnRVScZz
M+p3NLtqf4TNAET0n/4LD2aiCtm6XqziWbs6Zcy+0t0+rx0pRPXGt5p9yM+N6G3U
FQ==
-----END PRIVATE KEY-----
";

    const P521_SEC1: &str = "-----BEGIN EC PRIVATE KEY-----
MIHcAgEBBEIBTuLQ/L1G8EyvtbYFy8k3rjyHJstAnD3xEJTPSwtJsA2lvOceR/Cj
8dDm8ux+j6aO4uXCazMtV8Ti1ihF5gbN9UCgBwYFK4EEACOhgYkDgYYABACMMunC
XHQCDLaClMbwKPF+wI90+Tow9P+qpBK4QlHNwZGBZIcK+hE9RVu3fYgyfAH/qJKl
NSuBFGSWXDWqGU8dtQFGU7Yl14gEBHdICeDuKH6Iqy/WEOvr2NN5iVPv93M2aM0B
Wh7w6NNA5hhy16iur4eHTwAJrN1LYoA5qZ+odIF+Tw==
-----END EC PRIVATE KEY-----
";

    #[test]
    fn unsupported_key_type_is_named() {
        let pki = pki();
        let leaf = pki.leaf(&SITE);
        for key in [P521_PKCS8, P521_SEC1] {
            let err = check_err(&pki.fullchain(&leaf), key, &pki);
            assert!(matches!(err, UploadError::UnsupportedKey { .. }), "{err}");
            assert!(
                err.to_string()
                    .starts_with("the private key is a ECDSA P-521 key, which is not supported"),
                "{err}"
            );
        }
    }

    #[test]
    fn ed25519_and_p384_leaves() {
        let pki = pki();
        for (alg, name) in [
            (&rcgen::PKCS_ED25519, "Ed25519"),
            (&rcgen::PKCS_ECDSA_P384_SHA384, "ECDSA P-384"),
        ] {
            let key = rcgen::KeyPair::generate_for(alg).expect("key");
            let leaf = sign_with(leaf_params(&SITE), &pki.int, key);
            let v = check_ok(&pki.fullchain(&leaf), &leaf.key_pem(), &pki);
            assert_eq!(v.leaf.key_type, name);
        }
    }

    // Made once with openssl (RSA 2048, 100 years): rcgen on ring cannot
    // generate RSA keys.
    const RSA_ROOT: &str = "-----BEGIN CERTIFICATE-----
MIIDXzCCAkegAwIBAgIUXR6LseitmvrHp7P/LvqTAfjuNc4wDQYJKoZIhvcNAQEL
BQAwNjEVMBMGA1UECgwMaHRnYXRlIHRlc3RzMR0wGwYDVQQDDBRodGdhdGUgVGVz
dCBSU0EgUm9vdDAgFw0yNjExMjMxNTU2MDVaGA8yMTI2MTAzMDE1NTYwNVowNjEV
MBMGA1UECgwMaHRnYXRlIHRlc3RzMR0wGwYDVQQDDBRodGdhdGUgVGVzdCBSU0Eg
Um9vdDCCASIwDQYJKoZIhvcNAQEBBQADggEPADCCAQoCggEBAKplgiVU7JbkPkmO
BICTkBcU2E3bLTkdHxwebAj8rRLg9aBoA1XDVvG2sSYcqWtDeh5M1vnfNtaBaENU
BKVfeQzkcNDYTjqmrHt+wQDM5LzKKci/B+pXpgmU/5c9zFM3t5YHAvVj73qVXpPE
Le7BK76pFxXE4NWSZsiqB/62fUzWaVPDBdiBZDw1K7DkNlg9dOBRepHAXQB8cwdW
8NipoVXPXBZTW07wDtvw9MJqVKJ+0QgSTBDAb+0jC1QfzSO4HXGi0Lh91v5NiIi6
S4UOdzXBMvFUE4+Lzol8CaODIaJYgb6UWNb8Fh2Zgx3S0DOt4os5hEaxcy7YaoPc
fT+ImZsCAwEAAaNjMGEwHQYDVR0OBBYEFPWZOlod1SW97I5bJPIYyCLJv11cMB8G
A1UdIwQYMBaAFPWZOlod1SW97I5bJPIYyCLJv11cMA8GA1UdEwEB/wQFMAMBAf8w
DgYDVR0PAQH/BAQDAgEGMA0GCSqGSIb3DQEBCwUAA4IBAQCqGCPqdBfqGXmipJZj
MgzSwF7SOYVm62psgGF0cmfICuWqssx4GYWw7UZOSoTtjaenfnVvufRCm3UfUPU1
pfj+MvuUd2iC/6N0n7AkBs/5VAu1cOW11WhJ35yZz5F2i3ehD3fC62/33YlyLoDe
TLt/eTzxaiYe2VlwuWq/a4LRGYzLr9JkS0uyeEKmVdQsJW4sbH8eqFo+T6UzNS6V
eXeAPxX6UEF4GKodoHekcsN5cOfTuvC2RUZzZV3EEvMuuycyfD5mRljBRCEaF09s
J/8NSPnr46CCXpocnS27YK1wW1e4tO8QekHJoKExvRqndAaRgrHqU0jBYeJvA6jj
jKx3
-----END CERTIFICATE-----
";

    const RSA_LEAF: &str = "-----BEGIN CERTIFICATE-----
MIIDiDCCAnCgAwIBAgIUPt8zH1NCZdzGfIRVRtaZYY1uVX4wDQYJKoZIhvcNAQEL
BQAwNjEVMBMGA1UECgwMaHRnYXRlIHRlc3RzMR0wGwYDVQQDDBRodGdhdGUgVGVz
dCBSU0EgUm9vdDAgFw0yNjExMjMxNTU2MDVaGA8yMTI2MTAzMDE1NTYwNVowGjEY
MBYGA1UEAwwPcnNhLmV4YW1wbGUuY29tMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A
MIIBCgKCAQEAyPgHTRhqtieMzzIFvNvMYgDk7qtwmBw/0x6CRmcWpurfrk5/OPiz
9SqPzq6qqG751TKWR5IkffP1oBB/BuV3B0PXcQxG+KRkQewAyFvbR1194QNA4G5r
0u0YZ0qcL4+j3qBxwrwz9FpX3CoTXkcFHGYckAEIZe+RdxfLKFjNO4qUnfF8Ac/g
62aDme7/bv2eX4g2LMvzcWQOe3/rN/oZTmTaXLvKFwd5V+Y+v6MfxZNxRImGyS62
pgwmmg5UFhp9c1vnDQ/hAydjxhfE4tbDfwhUu++3mH6/zJ90oc6Uhd3LAKt46GbP
DArDq49G5Bmcaq+F52c/jCsRvAHIdsXY/wIDAQABo4GnMIGkMAwGA1UdEwEB/wQC
MAAwDgYDVR0PAQH/BAQDAgWgMBMGA1UdJQQMMAoGCCsGAQUFBwMBMC8GA1UdEQQo
MCaCD3JzYS5leGFtcGxlLmNvbYITd3d3LnJzYS5leGFtcGxlLmNvbTAdBgNVHQ4E
FgQUijhpvZTkUJw0Y2+c+CpL1SKr6AQwHwYDVR0jBBgwFoAU9Zk6Wh3VJb3sjlsk
8hjIIsm/XVwwDQYJKoZIhvcNAQELBQADggEBAFlKSqdzfazt/q96/asjXaP62xIQ
i8QQdiawmxDOFmv1PN/BexH6+9GhpuKtxIAv2h0rcguv0k4TRRRsGVzVL/gq4vWL
x7YTmrixKI62XcxLFsHkI7WA65uJ0+NitOXypqTJl8bI0ENORtA+NAVPbdUX/E3t
rPOQTTOF93ctPAwXKUDCjKhjZF+6i4buc6R9QZmP6bKHeKylJqNznZcSaFjz6tjJ
zKHXBY3GS9Zk3m90SWtidrI6gk3Zo0gsTCcrbkB8XEvMbevUnx95JLLIMEwn4San
D6KjIMrtWvMd7KWvPV/Z5TP5Y346aM4dlRPf5P2skl3pTuplaGVfrWGsvbE=
-----END CERTIFICATE-----
";

    const RSA_KEY: &str = "-----BEGIN PRIVATE KEY-----
MIIEvQIBADANBgkqhkiG9w0BAQEFAASCBKcwggSjAgEAAoIBAQDI+AdNGGq2J4zP
MgW828xiAOTuq3CYHD/THoJGZxam6t+uTn84+LP1Ko/OrqqobvnVMpZHkiR98/Wg
EH8G5XcHQ9dxDEb4pGRB7ADIW9tHXX3hA0DgbmvS7RhnSpwvj6PeoHHCvDP0Wlfc
KhNeRwUcZhyQAQhl75F3F8soWM07ipSd8XwBz+DrZoOZ7v9u/Z5fiDYsy/NxZA57
f+s3+hlOZNpcu8oXB3lX5j6/ox/Fk3FEiYbJLramDCaaDlQWGn1zW+cND+EDJ2PG
F8Ti1sN/CFS777eYfr/Mn3ShzpSF3csAq3joZs8MCsOrj0bkGZxqr4XnZz+MKxG8
Ach2xdj/AgMBAAECggEAHosWTlD0BEPV3QuaNE4nguGQlEwkAZ+RfQb5ql+H4Xh4
Ob1JDUyRynoHKdSsBTX7QbwS0O/Ux1ETjJnVOc7Cx1eNNRY2QcXM+E6OU+Ukr3T1
vllIkT4sTv36eSsCunZsjlejfS2DVpOAdOqZek5K6DpbWZt+k5d/FogxjSvp4oQe
mXDyM8UYFwYvnLp6qe9/X33lJl1j1IbBz1AaTvQv1ro93GMiorY4sPpRsJHtxuEI
Cswa2N1vrj/s3V9aEQ7eBGbYEoIluGZIQytIcLJwOpd8APtOn9OIHRtSA01g2DJo
4TX83a9wSFQTNwva4DSPYTyqn2aHQkkw4kjC/CJYyQKBgQDvdZVs0erZO2hfi4+H
fRlDcI0RWnfm9TtRgwoi4Ok/Gp0b/aw0fubb8pncisIXo1hw7GWgMWN01dP+14sl
3dXNLYPY7xAIOAUx3xlqTxFpU70KkOAbOnrlazHjKvNh/8o7kDxVkhiwr2P0Z/Nf
0qvtEWvUqWPtKG7V7rjHIrsPSwKBgQDW2c8aEytc3Faxg2igH57FqCgdRGE0AhgT
HPWH8CjdAYfm6bBQsPWLja0F3vEGz4stI32D9UyITgPMKLKkCRtgAd2pwlcxfnbv
M+Wc5bhtEV5CdEcg6tcxc3FGWOCxnRlMZrAcT8/WURf6fd1tbYHhVewGz5W+/DAN
AOmRIiVonQKBgCE7OTRz4VqqUu7HiHCuHL5uNTWOT4t+xu+l9tcmTVhTkjAbQTW7
0r/9Z/riStNK+PAa7nOPxxSkxBnewdHMempSAbUuYBQz6gykwHsvY+QxGdAIkQFW
WU3TVYYIJOSZwfAIMUdS0hhbDs0RTAYlT3TD8Sn/I/36mX8Y9Q21tS4HAoGAQG6V
g1ZYXMLfZODp0YtqDBC/5vcIx5YRLjozEA9f0deRsBhI/gnzuWRFjUsssUQwktrf
22EHEKGE1gcme7cXdJVaqnxTtc4dUOMZaxIhWuQohnlkk2SaIIRkZhplWB6q5ZSu
H+93fuhW7pIsg5KhrrgbzncWi24J4vxxD0tUOKkCgYEAl12GuqPOJTC8wGzXLYYn
qHqLRCLFCOC+chosGdxWKEaBfhGbykR960rzhgLt0Db9H6LHJJn3q7KiGR/Fl2Ce
NrrUeqERcJQIGvcaVeuLzNpy+yQ6/tRNf/dUpKk1ZVdjATnH6+8ISZFnr74EZi3n
rIp95i1XJZrylTHwgY87eXo=
-----END PRIVATE KEY-----
";

    fn rsa_trust() -> Trust {
        let root = CertificateDer::from_pem_slice(RSA_ROOT.as_bytes()).expect("root pem");
        Trust::with_extra_roots(vec![root])
    }

    #[test]
    fn rsa_chain_from_openssl() {
        let trust = rsa_trust();
        let info = inspect(RSA_LEAF.as_bytes(), RSA_KEY.as_bytes(), &trust).expect("inspect");
        let now = info.leaf.not_before + DAY;
        let domains = strings(&["rsa.example.com", "www.rsa.example.com"]);
        // The leaf is issued directly by the (trusted) root.
        let v = validate(
            RSA_LEAF.as_bytes(),
            RSA_KEY.as_bytes(),
            &domains,
            now,
            &trust,
        )
        .expect("valid RSA upload");
        assert_eq!(v.leaf.key_type, "RSA 2048");
        assert_eq!(v.leaf.issuer, "O=htgate tests, CN=htgate Test RSA Root");
        assert!(v.warnings.is_empty(), "{:?}", v.warnings);

        // Root first: reordered, root kept at the end with a warning.
        let upload = format!("{RSA_ROOT}{RSA_LEAF}");
        let v = validate(upload.as_bytes(), RSA_KEY.as_bytes(), &domains, now, &trust)
            .expect("valid RSA upload");
        assert!(v.reordered);
        assert_eq!(v.intermediates[0].key_type, "RSA 2048");

        // An ECDSA key with the RSA certificate.
        let other = pki().leaf(&SITE);
        let err = validate(
            RSA_LEAF.as_bytes(),
            other.key_pem().as_bytes(),
            &domains,
            now,
            &trust,
        )
        .expect_err("mismatch");
        assert!(matches!(err, UploadError::KeyMismatch { .. }), "{err}");
        assert!(err.to_string().contains("\"CN=rsa.example.com\""), "{err}");
    }

    /// A tiny deterministic generator, so the garbage is reproducible.
    fn lcg(seed: &mut u64) -> u8 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (*seed >> 33) as u8
    }

    #[test]
    fn truncated_and_garbage_input_never_panics() {
        let pki = pki();
        let leaf = pki.leaf(&SITE);
        let cert = pki.fullchain(&leaf);
        let key = leaf.key_pem();
        let trust = pki.trust();
        let domains = strings(&SITE);
        let run = |c: &[u8], k: &[u8]| {
            let _ = validate(c, k, &domains, NOW, &trust);
        };
        for cut in (0..cert.len()).step_by(7) {
            run(&cert.as_bytes()[..cut], key.as_bytes());
        }
        for cut in (0..key.len()).step_by(5) {
            run(cert.as_bytes(), &key.as_bytes()[..cut]);
        }
        // Damaged DER inside well-formed PEM reaches the X.509 and key parsers.
        let der = leaf.cert.der().as_ref().to_vec();
        let key_der = leaf.key.serialize_der();
        let mut seed = 42;
        for i in 0..der.len() {
            let cut = crate::tls::upload::pem_encode("CERTIFICATE", &der[..i]);
            run(cut.as_bytes(), key.as_bytes());
            let mut flipped = der.clone();
            flipped[i] ^= lcg(&mut seed) | 1;
            let flipped = crate::tls::upload::pem_encode("CERTIFICATE", &flipped);
            run(flipped.as_bytes(), key.as_bytes());
        }
        for i in 0..key_der.len() {
            let cut = crate::tls::upload::pem_encode("PRIVATE KEY", &key_der[..i]);
            run(cert.as_bytes(), cut.as_bytes());
            let sec1 = crate::tls::upload::pem_encode("EC PRIVATE KEY", &key_der[..i]);
            run(cert.as_bytes(), sec1.as_bytes());
        }
        for len in [0, 1, 10, 100, 1000, 5000] {
            let bytes: Vec<u8> = (0..len).map(|_| lcg(&mut seed)).collect();
            run(&bytes, &bytes);
            let mut armored = b"-----BEGIN CERTIFICATE-----\n".to_vec();
            armored.extend_from_slice(&bytes);
            run(&armored, &armored);
        }
        let huge = vec![b'A'; MAX_UPLOAD_BYTES + 1];
        assert!(matches!(
            validate(&huge, key.as_bytes(), &domains, NOW, &trust),
            Err(UploadError::TooLarge { .. })
        ));
    }
}

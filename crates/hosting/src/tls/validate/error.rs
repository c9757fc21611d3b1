//! Why an upload was refused: [`UploadError`], whose `Display` is the
//! sentence shown to the customer, and the file it is about.

use std::fmt;
use std::path::PathBuf;

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

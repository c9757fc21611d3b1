//! Reading the uploaded PEM files: their sections, the certificates of the
//! certificate file and the private key of the key file.

use super::{FileKind, UploadError, MAX_UPLOAD_BYTES};
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

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

pub(super) fn read_certificates(
    cert_pem: &[u8],
) -> Result<Vec<CertificateDer<'static>>, UploadError> {
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
pub(super) fn read_key(key_pem: &[u8]) -> Result<PrivateKeyDer<'static>, UploadError> {
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

//! Certificates: loading PEM files, making self-signed ones, rustls configs.
//!
//! The listeners use [`provider`] (aws-lc-rs) explicitly; clients that ask
//! rustls for the process-wide default (instant-acme's HTTP client, the
//! etcd client) get *ring*, installed by [`install_default_provider`]:
//! with both providers built in, rustls cannot pick one by itself.

use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls_pki_types::pem::{PemObject, SectionKind};
use rustls_pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs1KeyDer, PrivatePkcs8KeyDer, PrivateSec1KeyDer,
};
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Why a certificate, key or TLS configuration could not be had.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("invalid PEM data in {}: {message}", path.display())]
    Pem { path: PathBuf, message: String },
    #[error("no certificate found in {}", path.display())]
    NoCertificate { path: PathBuf },
    #[error("no private key found in {}", path.display())]
    NoPrivateKey { path: PathBuf },
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
    #[error("the certificate chain is empty")]
    EmptyChain,
    #[error("invalid certificate: {0}")]
    BadCertificate(String),
    #[error("unsupported or invalid private key: {0}")]
    BadKey(String),
    #[error("the private key does not match the certificate")]
    KeyMismatch,
    #[error("cannot build the TLS configuration: {0}")]
    Config(String),
}

/// The PEM sections of one file, in order.  Text outside sections is
/// ignored (as OpenSSL does), but a broken section is an error.
fn pem_sections(path: &Path) -> Result<Vec<(SectionKind, Vec<u8>)>, TlsError> {
    let data = std::fs::read(path).map_err(|source| TlsError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let mut out = Vec::new();
    for item in <(SectionKind, Vec<u8>) as PemObject>::pem_slice_iter(&data) {
        match item {
            Ok(section) => out.push(section),
            Err(e) => {
                return Err(TlsError::Pem {
                    path: path.to_path_buf(),
                    message: e.to_string(),
                })
            }
        }
    }
    Ok(out)
}

/// A PEM section as a private key, if it is one of the unencrypted kinds
/// (PKCS#8, PKCS#1 RSA, SEC1 EC).
pub fn private_key(kind: SectionKind, der: Vec<u8>) -> Option<PrivateKeyDer<'static>> {
    match kind {
        SectionKind::PrivateKey => Some(PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(der))),
        SectionKind::RsaPrivateKey => Some(PrivateKeyDer::Pkcs1(PrivatePkcs1KeyDer::from(der))),
        SectionKind::EcPrivateKey => Some(PrivateKeyDer::Sec1(PrivateSec1KeyDer::from(der))),
        _ => None,
    }
}

/// Reads a certificate chain (leaf first) from `cert` and the first private
/// key (PKCS#8, PKCS#1 or SEC1) from `key`.  Both may name the same file.
pub fn load_pem_files(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let certs: Vec<CertificateDer<'static>> = pem_sections(cert)?
        .into_iter()
        .filter(|(kind, _)| *kind == SectionKind::Certificate)
        .map(|(_, der)| CertificateDer::from(der))
        .collect();
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: cert.to_path_buf(),
        });
    }
    let key_der = pem_sections(key)?
        .into_iter()
        .find_map(|(kind, der)| private_key(kind, der))
        .ok_or_else(|| TlsError::NoPrivateKey {
            path: key.to_path_buf(),
        })?;
    Ok((certs, key_der))
}

/// A fresh self-signed certificate (ECDSA P-256) for `names` (DNS names or
/// IP addresses); no names means "localhost".
pub fn self_signed(
    names: &[String],
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsError> {
    let names: Vec<String> = if names.is_empty() {
        vec!["localhost".to_string()]
    } else {
        names.to_vec()
    };
    let generated =
        rcgen::generate_simple_self_signed(names).map_err(|e| TlsError::Generate(e.to_string()))?;
    let cert = generated.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(generated.key_pair.serialize_der()));
    Ok((vec![cert], key))
}

/// The ALPN protocols offered, in order of preference.
pub(crate) const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// TLS 1.2 sessions remembered for clients that resume by session ID
/// rather than by ticket (a few hundred bytes each).
const SESSION_CACHE_ENTRIES: usize = 8192;

/// The cryptography of the TLS listeners: aws-lc-rs (rustls's default
/// provider). Its RSA-2048 signatures cost about half of *ring*'s, and a
/// full handshake with an RSA certificate is mostly that signature
/// (benches/RESULTS.md, W7-rsa). Everything else that speaks TLS (the
/// ACME client, certificate checks) keeps *ring*; signing keys for
/// served certificates come from here, since the handshake signs with
/// the key object the resolver hands out.
pub fn provider() -> rustls::crypto::CryptoProvider {
    rustls::crypto::aws_lc_rs::default_provider()
}

/// Makes *ring* the process-wide default provider, for the clients that
/// use the default (idempotent: a default already there stays).
pub fn install_default_provider() {
    let _ = rustls::crypto::ring::default_provider().install_default();
}

/// A chain and its key, ready to be served (a [`provider`] signing key),
/// with the key checked against the leaf.
pub fn certified_key(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<CertifiedKey>, TlsError> {
    if certs.is_empty() {
        return Err(TlsError::EmptyChain);
    }
    let signing_key = provider()
        .key_provider
        .load_private_key(key)
        .map_err(|e| TlsError::BadKey(e.to_string()))?;
    let certified = CertifiedKey::new(certs, signing_key);
    match certified.keys_match() {
        Ok(()) => {}
        // The ring keys always expose their public key; a key type that
        // cannot is not a mismatch, just unverifiable.
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {}
        Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch)) => {
            return Err(TlsError::KeyMismatch)
        }
        Err(e) => return Err(TlsError::BadCertificate(e.to_string())),
    }
    Ok(Arc::new(certified))
}

/// A server configuration whose certificate is chosen per handshake by
/// `resolver` (SNI): [`provider`], TLS 1.2 and 1.3, ALPN `h2` then
/// `http/1.1`.
pub fn server_config_with_resolver(
    resolver: Arc<dyn rustls::server::ResolvesServerCert>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(resolver);
    config.alpn_protocols = ALPN_PROTOCOLS.iter().map(|p| p.to_vec()).collect();
    // Resumption: a resumed handshake needs no certificate signature and
    // costs a fraction of a full one.  Stateless tickets (TLS 1.3 and
    // 1.2; ChaCha20-Poly1305 keys made at start and rotated every 6 h,
    // never written anywhere), and a session cache for TLS 1.2 clients
    // that resume by session ID.
    config.ticketer =
        rustls::crypto::aws_lc_rs::Ticketer::new().map_err(|e| TlsError::Config(e.to_string()))?;
    config.session_storage = rustls::server::ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
    Ok(Arc::new(config))
}

/// A server configuration for one certificate chain and key: [`provider`],
/// TLS 1.2 and 1.3, no client authentication, ALPN `h2` then `http/1.1`.
/// Fails clearly when the key cannot be used or does not belong to the
/// leaf certificate.
pub fn server_config(
    certs: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<Arc<rustls::ServerConfig>, TlsError> {
    let certified = certified_key(certs, key)?;
    server_config_with_resolver(Arc::new(SingleCertAndKey::from(Arc::unwrap_or_clone(
        certified,
    ))))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn pem(label: &str, der: &[u8]) -> String {
        // A minimal base64 encoder keeps the test free of extra crates.
        const A: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
        let mut b64 = String::new();
        for chunk in der.chunks(3) {
            let n = match chunk.len() {
                3 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8) | u32::from(chunk[2]),
                2 => (u32::from(chunk[0]) << 16) | (u32::from(chunk[1]) << 8),
                _ => u32::from(chunk[0]) << 16,
            };
            for i in 0..4 {
                if i <= chunk.len() {
                    b64.push(A[((n >> (18 - 6 * i)) & 63) as usize] as char);
                } else {
                    b64.push('=');
                }
            }
        }
        let mut out = format!("-----BEGIN {label}-----\n");
        for line in b64.as_bytes().chunks(64) {
            out.push_str(std::str::from_utf8(line).unwrap_or_default());
            out.push('\n');
        }
        out.push_str(&format!("-----END {label}-----\n"));
        out
    }

    fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
        let p = dir.join(name);
        let mut f = std::fs::File::create(&p).expect("create test file");
        f.write_all(text.as_bytes()).expect("write test file");
        p
    }

    #[test]
    fn self_signed_round_trip() {
        let (certs, key) = self_signed(&[]).expect("self-signed");
        assert_eq!(certs.len(), 1);
        let cfg = server_config(certs, key).expect("config");
        assert_eq!(
            cfg.alpn_protocols,
            vec![b"h2".to_vec(), b"http/1.1".to_vec()]
        );
    }

    /// Moves TLS records between the two ends until neither has more.
    fn pump(client: &mut rustls::ClientConnection, server: &mut rustls::ServerConnection) {
        for _ in 0..20 {
            let mut moved = false;
            let mut buf = Vec::new();
            client.write_tls(&mut buf).expect("client writes");
            let mut rd = &buf[..];
            while !rd.is_empty() {
                moved = true;
                server.read_tls(&mut rd).expect("server reads");
                server.process_new_packets().expect("server handshake");
            }
            buf.clear();
            server.write_tls(&mut buf).expect("server writes");
            let mut rd = &buf[..];
            while !rd.is_empty() {
                moved = true;
                client.read_tls(&mut rd).expect("client reads");
                client.process_new_packets().expect("client handshake");
            }
            if !moved {
                return;
            }
        }
    }

    #[test]
    fn sessions_resume_with_tickets_and_by_session_id() {
        use rustls::HandshakeKind;
        let (certs, key) = self_signed(&["localhost".to_string()]).expect("self-signed");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(certs[0].clone()).expect("root");
        let server_cfg = server_config(certs, key).expect("config");
        assert!(server_cfg.ticketer.enabled());
        for version in [&rustls::version::TLS13, &rustls::version::TLS12] {
            for tickets in [true, false] {
                let mut client_cfg = rustls::ClientConfig::builder_with_provider(Arc::new(
                    rustls::crypto::ring::default_provider(),
                ))
                .with_protocol_versions(&[version])
                .expect("versions")
                .with_root_certificates(roots.clone())
                .with_no_client_auth();
                if !tickets {
                    client_cfg.resumption = rustls::client::Resumption::default()
                        .tls12_resumption(rustls::client::Tls12Resumption::SessionIdOnly);
                }
                let client_cfg = Arc::new(client_cfg);
                let mut kinds = Vec::new();
                for _ in 0..2 {
                    let name = rustls_pki_types::ServerName::try_from("localhost").expect("name");
                    let mut c =
                        rustls::ClientConnection::new(client_cfg.clone(), name).expect("client");
                    let mut s = rustls::ServerConnection::new(server_cfg.clone()).expect("server");
                    pump(&mut c, &mut s);
                    assert!(!c.is_handshaking() && !s.is_handshaking());
                    kinds.push(s.handshake_kind());
                }
                if version == &rustls::version::TLS13 && !tickets {
                    // the setting is about TLS 1.2 (1.3 always uses tickets)
                    continue;
                }
                assert_eq!(
                    kinds,
                    [Some(HandshakeKind::Full), Some(HandshakeKind::Resumed)],
                    "{version:?}, tickets {tickets}"
                );
            }
        }
    }

    #[test]
    fn self_signed_with_names_and_ip() {
        let names = vec!["example.test".to_string(), "127.0.0.1".to_string()];
        let (certs, key) = self_signed(&names).expect("self-signed");
        server_config(certs, key).expect("config");
    }

    #[test]
    fn mismatched_key_is_rejected() {
        let (certs, _) = self_signed(&[]).expect("a");
        let (_, other_key) = self_signed(&[]).expect("b");
        let err = server_config(certs, other_key).expect_err("must fail");
        assert!(matches!(err, TlsError::KeyMismatch), "{err}");
        assert_eq!(
            err.to_string(),
            "the private key does not match the certificate"
        );
    }

    #[test]
    fn empty_chain_is_rejected() {
        let (_, key) = self_signed(&[]).expect("a");
        assert!(matches!(
            server_config(Vec::new(), key),
            Err(TlsError::EmptyChain)
        ));
    }

    #[test]
    fn pem_files_round_trip() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (certs, key) = self_signed(&[]).expect("self-signed");
        let cert_pem = pem("CERTIFICATE", certs[0].as_ref());
        let key_pem = pem("PRIVATE KEY", key.secret_der());
        let cert_path = write(dir.path(), "cert.pem", &cert_pem);
        let key_path = write(dir.path(), "key.pem", &key_pem);
        let (c2, k2) = load_pem_files(&cert_path, &key_path).expect("load");
        assert_eq!(c2, certs);
        assert_eq!(k2.secret_der(), key.secret_der());
        server_config(c2, k2).expect("config");

        // Both in one file, with text around the sections.
        let both = write(
            dir.path(),
            "both.pem",
            &format!("subject=CN=x\n{cert_pem}some words\n{key_pem}"),
        );
        let (c3, _) = load_pem_files(&both, &both).expect("load combined");
        assert_eq!(c3, certs);
    }

    #[test]
    fn pem_file_errors_name_the_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let missing = dir.path().join("missing.pem");
        let err = load_pem_files(&missing, &missing).expect_err("unreadable");
        assert!(matches!(err, TlsError::Read { .. }));
        assert!(err.to_string().contains("missing.pem"), "{err}");

        let garbage = write(dir.path(), "garbage.pem", "this is not a certificate\n");
        let err = load_pem_files(&garbage, &garbage).expect_err("no cert");
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{err}");
        assert!(err.to_string().contains("garbage.pem"), "{err}");

        let (certs, _) = self_signed(&[]).expect("self-signed");
        let cert_only = write(
            dir.path(),
            "cert.pem",
            &pem("CERTIFICATE", certs[0].as_ref()),
        );
        let err = load_pem_files(&cert_only, &cert_only).expect_err("no key");
        assert!(matches!(err, TlsError::NoPrivateKey { .. }), "{err}");
        assert!(err.to_string().starts_with("no private key found in "));

        let broken = write(
            dir.path(),
            "broken.pem",
            "-----BEGIN CERTIFICATE-----\nAAAA\n",
        );
        let err = load_pem_files(&broken, &broken).expect_err("broken");
        assert!(matches!(err, TlsError::Pem { .. }), "{err}");
        assert!(err.to_string().contains("broken.pem"), "{err}");
    }
}

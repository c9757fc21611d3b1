//! Keys: naming key types ("RSA 2048", "ECDSA P-256"…) of certificates and
//! key files, loading the private key for signing, and whether a key
//! belongs to a certificate.

use super::der::{der_children, der_contents, integer_bits};
use super::UploadError;
use rustls::sign::SigningKey;
use rustls_pki_types::PrivateKeyDer;
use std::sync::Arc;
use x509_parser::asn1_rs::{Any, Class};
use x509_parser::prelude::{FromDer, SubjectPublicKeyInfo, X509Certificate};

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

pub(super) fn spki_key_type(spki: &SubjectPublicKeyInfo<'_>) -> String {
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

/// The key types htgate serves: what browsers accept for TLS and public
/// CAs issue for (aws-lc-rs could also sign with P-521, which Chrome
/// refuses in TLS: such an upload would break the site for most visitors).
fn supported_key_type(key_type: &str) -> bool {
    if let Some(bits) = key_type.strip_prefix("RSA ") {
        return bits
            .parse::<usize>()
            .is_ok_and(|b| (2048..=8192).contains(&b));
    }
    matches!(key_type, "ECDSA P-256" | "ECDSA P-384" | "Ed25519")
}

pub(super) fn load_signing_key(
    key: &PrivateKeyDer<'static>,
) -> Result<Arc<dyn SigningKey>, UploadError> {
    if let Some(t) = key_file_type(key).filter(|t| !supported_key_type(t)) {
        return Err(UploadError::UnsupportedKey { key_type: t });
    }
    // The provider the handshakes sign with.
    htgate_server::tls::provider()
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
pub(super) fn key_belongs_to(key: &dyn SigningKey, cert: &X509Certificate<'_>) -> bool {
    key.public_key()
        .is_some_and(|spki| spki.as_ref() == cert.public_key().raw)
}

//! Certificate chains for tests, shared with the `upload` tests.

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
    pub(crate) fn pem(&self) -> String {
        self.cert.pem()
    }
    pub(crate) fn key_pem(&self) -> String {
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
    pub(crate) fn leaf(&self, names: &[&str]) -> Issued {
        sign(leaf_params(names), &self.int)
    }
    pub(crate) fn trust(&self) -> Trust {
        Trust::with_extra_roots(vec![self.root.cert.der().clone()])
    }
    /// Leaf then intermediate, as a CA delivers fullchain.pem.
    pub(crate) fn fullchain(&self, leaf: &Issued) -> String {
        format!("{}{}", leaf.pem(), self.int.pem())
    }
}

pub(crate) fn strings(names: &[&str]) -> Vec<String> {
    names.iter().map(|s| s.to_string()).collect()
}

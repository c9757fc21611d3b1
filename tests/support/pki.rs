//! Test certificates made with rcgen: a root, intermediates, leaves with
//! chosen names and validity.

use rcgen::{
    BasicConstraints, Certificate, CertificateParams, DistinguishedName, DnType, IsCa, KeyPair,
    KeyUsagePurpose,
};
use std::time::Duration;
use time::OffsetDateTime;

/// A certificate and its key.
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
    pub(crate) fn der(&self) -> Vec<u8> {
        self.cert.der().to_vec()
    }
}

fn params(cn: &str, names: &[&str], ca: bool, valid_for: Duration) -> CertificateParams {
    let mut p = CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
        .expect("params");
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    p.distinguished_name = dn;
    let now = OffsetDateTime::now_utc();
    p.not_before = now - time::Duration::hours(1);
    p.not_after = now + time::Duration::seconds(valid_for.as_secs() as i64);
    if ca {
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        p.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    }
    p
}

const YEAR: Duration = Duration::from_secs(365 * 86_400);

/// A self-signed root CA.
pub(crate) fn root(cn: &str) -> Issued {
    let key = KeyPair::generate().expect("key");
    let cert = params(cn, &[], true, YEAR * 10)
        .self_signed(&key)
        .expect("root");
    Issued { cert, key }
}

/// An intermediate CA signed by `issuer`.
pub(crate) fn intermediate(cn: &str, issuer: &Issued) -> Issued {
    let key = KeyPair::generate().expect("key");
    let cert = params(cn, &[], true, YEAR * 5)
        .signed_by(&key, &issuer.cert, &issuer.key)
        .expect("intermediate");
    Issued { cert, key }
}

/// A leaf for `names` signed by `issuer`, valid for `valid_for` from now.
pub(crate) fn leaf(names: &[&str], issuer: &Issued, valid_for: Duration) -> Issued {
    leaf_with_key(names, issuer, valid_for, KeyPair::generate().expect("key"))
}

fn leaf_with_key(names: &[&str], issuer: &Issued, valid_for: Duration, key: KeyPair) -> Issued {
    let cert = params(
        names.first().copied().unwrap_or("leaf"),
        names,
        false,
        valid_for,
    )
    .signed_by(&key, &issuer.cert, &issuer.key)
    .expect("leaf");
    Issued { cert, key }
}

/// As [`leaf`] with an RSA-2048 key, made by `openssl` (ring cannot make
/// RSA keys; openssl is installed by `.ci/run`).
pub(crate) fn leaf_rsa(names: &[&str], issuer: &Issued, valid_for: Duration) -> Issued {
    let out = std::process::Command::new("openssl")
        .args([
            "genpkey",
            "-algorithm",
            "RSA",
            "-pkeyopt",
            "rsa_keygen_bits:2048",
        ])
        .output()
        .expect("openssl genpkey runs");
    assert!(out.status.success(), "openssl genpkey failed");
    let pem = String::from_utf8(out.stdout).expect("PEM");
    let key = KeyPair::from_pem_and_sign_algo(&pem, &rcgen::PKCS_RSA_SHA256).expect("RSA key");
    leaf_with_key(names, issuer, valid_for, key)
}

/// A self-signed leaf (the shared default certificate of the tests).
pub(crate) fn self_signed(names: &[&str]) -> Issued {
    let key = KeyPair::generate().expect("key");
    let cert = params(names.first().copied().unwrap_or("x"), names, false, YEAR)
        .self_signed(&key)
        .expect("self-signed");
    Issued { cert, key }
}

pub(crate) const DAY: Duration = Duration::from_secs(86_400);

/// Installs `leaf` (chain: leaf, then `inter`) into the upload folder
/// `dir/folder` as a customer's tooling does: the key first, then the
/// chain, each written aside and renamed into place.
pub(crate) fn install_upload(dir: &std::path::Path, folder: &str, leaf: &Issued, inter: &Issued) {
    let put = |name: &str, text: &str| {
        let tmp = format!("{folder}/.{name}.tmp");
        super::files::write(dir, &tmp, text);
        std::fs::rename(dir.join(&tmp), dir.join(folder).join(name)).expect("mv");
    };
    put("privkey.pem", &leaf.key_pem());
    put("fullchain.pem", &format!("{}{}", leaf.pem(), inter.pem()));
}

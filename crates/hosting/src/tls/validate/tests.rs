//! Tests of upload validation: accepted chains, and the message of every
//! refusal.

use super::testutil::*;
use super::*;
use rustls_pki_types::pem::PemObject;
use x509_parser::prelude::FromDer;

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

//! Certificates and the ACME account on disk.
//!
//! Layout under `storage` (folders 0700, private files 0600):
//! `account.toml`, `certificates/<domain>/fullchain.pem`,
//! `certificates/<domain>/privkey.pem`. Every file is written to a temporary
//! sibling, fsynced and renamed, so a crash or a full disk never leaves a
//! half-written certificate for the TLS layer to load.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use serde::{Deserialize, Serialize};

use super::error::AcmeError;
use super::schedule::skip_reason;

const CHAIN_FILE: &str = "fullchain.pem";
const KEY_FILE: &str = "privkey.pem";
pub(crate) const ACCOUNT_FILE: &str = "account.toml";

/// A certificate chain and its key as stored for one domain.
pub struct StoredCert {
    pub domain: String,
    pub chain_pem: String,
    pub key_pem: String,
    /// Leaf first.
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
    /// Validity of the leaf, Unix seconds.
    pub not_before: i64,
    pub not_after: i64,
}

impl StoredCert {
    /// Parse and check a chain + key pair: the chain must hold a parsable
    /// leaf, and the key must be the leaf's (a mismatched pair would make
    /// every handshake fail, so it is refused here rather than served).
    pub(crate) fn from_pem(
        domain: &str,
        chain_pem: String,
        key_pem: String,
    ) -> Result<StoredCert, String> {
        let chain = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("certificate chain PEM: {e}"))?;
        let leaf = chain.first().ok_or("the chain holds no certificate")?;
        let (_, parsed) = x509_parser::parse_x509_certificate(leaf)
            .map_err(|e| format!("leaf certificate: {e}"))?;
        let not_before = parsed.validity().not_before.timestamp();
        let not_after = parsed.validity().not_after.timestamp();
        let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
            .map_err(|e| format!("private key PEM: {e}"))?;
        let provider = rustls::crypto::ring::default_provider();
        rustls::sign::CertifiedKey::from_der(chain.clone(), key.clone_key(), &provider)
            .map_err(|e| format!("key does not fit the certificate: {e}"))?;
        Ok(StoredCert {
            domain: domain.to_string(),
            chain_pem,
            key_pem,
            chain,
            key,
            not_before,
            not_after,
        })
    }

    /// The leaf's serial number in hex (what `htgate cert list` shows).
    #[cfg(test)]
    pub(crate) fn serial_hex(&self) -> String {
        self.chain
            .first()
            .and_then(|leaf| x509_parser::parse_x509_certificate(leaf).ok())
            .map(|(_, cert)| cert.raw_serial_as_string())
            .unwrap_or_default()
    }
}

impl Clone for StoredCert {
    fn clone(&self) -> Self {
        StoredCert {
            domain: self.domain.clone(),
            chain_pem: self.chain_pem.clone(),
            key_pem: self.key_pem.clone(),
            chain: self.chain.clone(),
            key: self.key.clone_key(),
            not_before: self.not_before,
            not_after: self.not_after,
        }
    }
}

// Written by hand so that a debug print never shows the private key.
impl fmt::Debug for StoredCert {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StoredCert")
            .field("domain", &self.domain)
            .field("chain_len", &self.chain.len())
            .field("not_before", &self.not_before)
            .field("not_after", &self.not_after)
            .finish_non_exhaustive()
    }
}

/// The folder of one domain's certificate; `None` for names that are not
/// plain DNS names (which also keeps `..` and `/` out of the path).
pub(crate) fn cert_dir(storage: &Path, domain: &str) -> Option<PathBuf> {
    if skip_reason(domain).is_some() {
        return None;
    }
    Some(storage.join("certificates").join(domain))
}

/// The stored certificate for `domain`; `None` when absent or unusable
/// (an unusable pair is logged and will be replaced by a new order).
pub(crate) fn load_cert(storage: &Path, domain: &str) -> Option<StoredCert> {
    let dir = cert_dir(storage, domain)?;
    let chain_pem = fs::read_to_string(dir.join(CHAIN_FILE)).ok()?;
    let key_pem = fs::read_to_string(dir.join(KEY_FILE)).ok()?;
    match StoredCert::from_pem(domain, chain_pem, key_pem) {
        Ok(cert) => Some(cert),
        Err(reason) => {
            tracing::warn!(domain, folder = %dir.display(), %reason, "stored certificate is unusable; a new one will be ordered");
            None
        }
    }
}

/// Domains with a certificate folder in storage.
pub(crate) fn stored_domains(storage: &Path) -> Vec<String> {
    let Ok(entries) = fs::read_dir(storage.join("certificates")) else {
        return Vec::new();
    };
    entries
        .filter_map(|e| e.ok()?.file_name().into_string().ok())
        .filter(|name| skip_reason(name).is_none())
        .collect()
}

/// Store a chain and key for `domain`. The key is renamed into place before
/// the chain: a crash in between leaves a pair that `load_cert` refuses
/// (mismatched), never a new chain served with an old key unnoticed.
pub(crate) fn save_cert(storage: &Path, cert: &StoredCert) -> Result<(), AcmeError> {
    let dir = cert_dir(storage, &cert.domain).ok_or_else(|| {
        AcmeError::storage(
            "choose a folder for",
            storage.join("certificates").join(&cert.domain),
            io::Error::new(io::ErrorKind::InvalidInput, "not a DNS name"),
        )
    })?;
    private_dir(storage)?;
    private_dir(&storage.join("certificates"))?;
    private_dir(&dir)?;
    let key_path = dir.join(KEY_FILE);
    write_atomic(&key_path, cert.key_pem.as_bytes(), 0o600)
        .map_err(|e| AcmeError::storage("write", &key_path, e))?;
    let chain_path = dir.join(CHAIN_FILE);
    write_atomic(&chain_path, cert.chain_pem.as_bytes(), 0o644)
        .map_err(|e| AcmeError::storage("write", &chain_path, e))?;
    Ok(())
}

/// The account file: the credentials and the directory they belong to, so
/// that switching from staging to production makes a new account instead of
/// sending the staging key to production.
#[derive(Serialize, Deserialize)]
struct AccountFile {
    directory_url: String,
    credentials: instant_acme::AccountCredentials,
}

/// The stored account credentials for `directory_url`, if any.
pub(crate) fn load_account(
    storage: &Path,
    directory_url: &str,
) -> Result<Option<instant_acme::AccountCredentials>, AcmeError> {
    let path = storage.join(ACCOUNT_FILE);
    let text = match fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(AcmeError::storage("read", path, e)),
    };
    let file: AccountFile = toml::from_str(&text).map_err(|e| {
        AcmeError::storage(
            "read",
            &path,
            io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        )
    })?;
    if file.directory_url != directory_url {
        tracing::info!(stored = %file.directory_url, configured = directory_url, "stored ACME account belongs to another CA; creating a new one");
        return Ok(None);
    }
    Ok(Some(file.credentials))
}

/// Store account credentials (0600: they hold the account's private key).
pub(crate) fn save_account(
    storage: &Path,
    directory_url: &str,
    credentials: instant_acme::AccountCredentials,
) -> Result<(), AcmeError> {
    let path = storage.join(ACCOUNT_FILE);
    let file = AccountFile {
        directory_url: directory_url.to_string(),
        credentials,
    };
    let text = toml::to_string(&file).map_err(|e| {
        AcmeError::storage(
            "encode",
            &path,
            io::Error::new(io::ErrorKind::InvalidData, e.to_string()),
        )
    })?;
    private_dir(storage)?;
    write_atomic(&path, text.as_bytes(), 0o600).map_err(|e| AcmeError::storage("write", &path, e))
}

/// Create `dir` if needed and make it 0700 (keys live below it).
fn private_dir(dir: &Path) -> Result<(), AcmeError> {
    fs::create_dir_all(dir).map_err(|e| AcmeError::storage("create folder", dir, e))?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
        .map_err(|e| AcmeError::storage("restrict folder", dir, e))
}

/// Replace `path` with `bytes` atomically: temp file in the same folder
/// (created with `mode`, so a key is never readable by others even briefly),
/// fsync, rename, fsync the folder so the rename itself survives a crash.
/// On failure the temp file is removed and `path` is untouched.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8], mode: u32) -> io::Result<()> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let parent = path
        .parent()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no parent folder"))?;
    let name = path
        .file_name()
        .ok_or_else(|| io::Error::new(io::ErrorKind::InvalidInput, "no file name"))?
        .to_string_lossy();
    let tmp = parent.join(format!(
        ".{name}.tmp-{}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let result = (|| {
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&tmp)?;
        // The umask may have narrowed `mode`; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&tmp, path)?;
        File::open(parent)?.sync_all()
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path)
            .map(|m| m.permissions().mode() & 0o777)
            .unwrap_or(0)
    }

    fn listing(dir: &Path) -> Vec<String> {
        let mut names: Vec<String> = fs::read_dir(dir)
            .expect("read folder")
            .filter_map(|e| e.ok()?.file_name().into_string().ok())
            .collect();
        names.sort();
        names
    }

    fn self_signed(domain: &str) -> StoredCert {
        let generated =
            rcgen::generate_simple_self_signed(vec![domain.to_string()]).expect("rcgen");
        StoredCert::from_pem(
            domain,
            generated.cert.pem(),
            generated.key_pair.serialize_pem(),
        )
        .expect("a fresh self-signed pair is valid")
    }

    #[test]
    fn write_atomic_replaces_whole_files_and_cleans_up_on_failure() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let path = tmp.path().join("privkey.pem");
        write_atomic(&path, b"first", 0o600).expect("first write");
        write_atomic(&path, b"second, longer", 0o600).expect("second write");
        assert_eq!(fs::read(&path).expect("read"), b"second, longer");
        assert_eq!(mode(&path), 0o600);
        assert_eq!(
            listing(tmp.path()),
            vec!["privkey.pem"],
            "no temp file left"
        );

        // A rename that cannot happen (the target is a non-empty folder)
        // fails without leaving the temp file behind.
        let blocked = tmp.path().join("blocked");
        fs::create_dir(&blocked).expect("mkdir");
        fs::write(blocked.join("inside"), b"x").expect("write");
        assert!(write_atomic(&blocked, b"data", 0o600).is_err());
        assert_eq!(listing(tmp.path()), vec!["blocked", "privkey.pem"]);
    }

    #[test]
    fn certificates_are_stored_private_and_read_back() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let storage = tmp.path().join("acme");
        let cert = self_signed("example.com");
        save_cert(&storage, &cert).expect("save");
        let dir = storage.join("certificates").join("example.com");
        assert_eq!(mode(&storage), 0o700);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join("privkey.pem")), 0o600);
        assert_eq!(listing(&dir), vec!["fullchain.pem", "privkey.pem"]);
        let loaded = load_cert(&storage, "example.com").expect("stored");
        assert_eq!(loaded.chain, cert.chain);
        assert_eq!(loaded.key_pem, cert.key_pem);
        assert!(loaded.not_after > loaded.not_before);
        assert_eq!(stored_domains(&storage), vec!["example.com"]);
        assert!(load_cert(&storage, "../acme").is_none());
    }

    #[test]
    fn a_key_that_does_not_fit_the_chain_is_refused() {
        let a = self_signed("a.example");
        let b = self_signed("b.example");
        let err = StoredCert::from_pem("a.example", a.chain_pem, b.key_pem).expect_err("mismatch");
        assert!(err.contains("does not fit"), "{err}");
    }
}

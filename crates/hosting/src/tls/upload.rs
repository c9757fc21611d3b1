//! Installing a validated certificate upload into a site's certificate
//! folder, and loading it back.
//!
//! The folder holds `fullchain.pem` (leaf first, then the intermediates) and
//! `privkey.pem` (mode 0600).  Each file is replaced atomically (temporary
//! file in the same folder, fsync, rename), and nothing is written before
//! the upload passed validation, so a bad upload never replaces a working
//! certificate.

use super::validate::{inspect, validate, Trust, UploadError, ValidatedCert, MAX_UPLOAD_BYTES};
use rustls_pki_types::PrivateKeyDer;
use std::fs::{self, File, OpenOptions};
use std::io::{ErrorKind, Read, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

pub const CHAIN_FILE: &str = "fullchain.pem";
pub const KEY_FILE: &str = "privkey.pem";

/// Validates the upload, then installs it into `dir` as `fullchain.pem`
/// (leaf first, fixed order) and `privkey.pem` (0600).  `dir` is created
/// (0700) when missing.  On any validation error nothing in `dir` changes.
pub fn install(
    dir: &Path,
    cert_pem: &[u8],
    key_pem: &[u8],
    domains: &[String],
    now: i64,
    trust: &Trust,
) -> Result<ValidatedCert, UploadError> {
    install_owned(dir, cert_pem, key_pem, domains, now, trust, None)
}

/// Who the installed files belong to: the user the server runs as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Owner {
    pub uid: u32,
    pub gid: u32,
}

impl Owner {
    /// The owner of the folder that holds a site's upload folder
    /// (`certificates_dir`): the server's user, which must be able to
    /// read what root installs there.
    pub fn of_upload_parent(dir: &Path) -> Option<Owner> {
        use std::os::unix::fs::MetadataExt;
        let m = fs::metadata(dir.parent()?).ok()?;
        Some(Owner {
            uid: m.uid(),
            gid: m.gid(),
        })
    }
}

/// [`install`], the folder and both files given to `owner` before they are
/// put in place (`htgate cert install` run as root for a server that runs
/// as another user: root's 0600 key would be unreadable to it).
pub fn install_owned(
    dir: &Path,
    cert_pem: &[u8],
    key_pem: &[u8],
    domains: &[String],
    now: i64,
    trust: &Trust,
    owner: Option<Owner>,
) -> Result<ValidatedCert, UploadError> {
    let validated = validate(cert_pem, key_pem, domains, now, trust)?;
    let chain_pem: String = validated
        .chain
        .iter()
        .map(|der| pem_encode("CERTIFICATE", der.as_ref()))
        .collect();
    let key_pem = key_to_pem(&validated.key);
    create_dir(dir)?;
    give(dir, owner)?;
    let chain_tmp = write_temp(dir, CHAIN_FILE, chain_pem.as_bytes(), 0o644)?;
    let key_tmp = match write_temp(dir, KEY_FILE, key_pem.as_bytes(), 0o600) {
        Ok(t) => t,
        Err(e) => {
            let _ = fs::remove_file(&chain_tmp);
            return Err(e);
        }
    };
    if let Err(e) = give(&chain_tmp, owner).and_then(|()| give(&key_tmp, owner)) {
        let _ = fs::remove_file(&chain_tmp);
        let _ = fs::remove_file(&key_tmp);
        return Err(e);
    }
    swap_in(dir, &chain_tmp, &key_tmp)?;
    Ok(validated)
}

/// Loads what is installed in `dir`; `Ok(None)` when the folder (or both
/// files) does not exist.  Validity dates are not checked here: the caller
/// decides what to do with an expired certificate (see `leaf.not_after`).
pub fn load_installed(dir: &Path, trust: &Trust) -> Result<Option<ValidatedCert>, UploadError> {
    let chain_path = dir.join(CHAIN_FILE);
    let key_path = dir.join(KEY_FILE);
    let chain = read_optional(&chain_path)?;
    let key = read_optional(&key_path)?;
    match (chain, key) {
        (None, None) => Ok(None),
        (Some(_), None) => Err(UploadError::Incomplete {
            dir: dir.to_path_buf(),
            missing: KEY_FILE,
        }),
        (None, Some(_)) => Err(UploadError::Incomplete {
            dir: dir.to_path_buf(),
            missing: CHAIN_FILE,
        }),
        (Some(chain), Some(key)) => inspect(&chain, &key, trust).map(Some),
    }
}

fn io_error(action: &'static str, path: &Path, source: std::io::Error) -> UploadError {
    UploadError::Io {
        action,
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a file, `None` when it does not exist.  Reads at most one byte more
/// than an upload may have, so a huge file is refused without loading it.
fn read_optional(path: &Path) -> Result<Option<Vec<u8>>, UploadError> {
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == ErrorKind::NotFound => return Ok(None),
        Err(e) if e.kind() == ErrorKind::PermissionDenied => {
            return Err(UploadError::Unreadable {
                path: path.to_path_buf(),
                detail: describe_access(path),
            })
        }
        Err(e) => return Err(io_error("read", path, e)),
    };
    let mut data = Vec::new();
    file.take(MAX_UPLOAD_BYTES as u64 + 1)
        .read_to_end(&mut data)
        .map_err(|e| io_error("read", path, e))?;
    Ok(Some(data))
}

/// Gives `path` to `owner` unless it has it already.
pub fn give(path: &Path, owner: Option<Owner>) -> Result<(), UploadError> {
    use std::os::unix::fs::MetadataExt;
    let Some(o) = owner else { return Ok(()) };
    let m = fs::symlink_metadata(path).map_err(|e| io_error("saved", path, e))?;
    if m.uid() == o.uid && m.gid() == o.gid {
        return Ok(());
    }
    std::os::unix::fs::chown(path, Some(o.uid), Some(o.gid)).map_err(|e| io_error("saved", path, e))
}

fn create_dir(dir: &Path) -> Result<(), UploadError> {
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| io_error("saved", dir, e))
}

/// Distinguishes temporary files of concurrent installs in one process
/// (the pid alone only separates processes).
static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `data` to a new hidden temporary file next to `name` and fsyncs it.
fn write_temp(dir: &Path, name: &str, data: &[u8], mode: u32) -> Result<PathBuf, UploadError> {
    let n = TEMP_COUNTER.fetch_add(1, Ordering::Relaxed);
    let path = dir.join(format!(".{name}.tmp-{}-{n}", std::process::id()));
    // A leftover from a crashed run with the same pid is ours to replace;
    // create_new then never follows a planted symlink.
    let _ = fs::remove_file(&path);
    let result = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&path)
        .and_then(|mut f| {
            f.write_all(data)?;
            f.sync_all()
        });
    match result {
        Ok(()) => Ok(path),
        Err(e) => {
            let _ = fs::remove_file(&path);
            Err(io_error("saved", &path, e))
        }
    }
}

/// Renames both temporary files over the installed ones.  Two renames are
/// not one atomic step: the key goes first and, if the chain rename then
/// fails, the old key is put back so the pair never stays mismatched.
fn swap_in(dir: &Path, chain_tmp: &Path, key_tmp: &Path) -> Result<(), UploadError> {
    let key_path = dir.join(KEY_FILE);
    let chain_path = dir.join(CHAIN_FILE);
    let backup = dir.join(format!(".{KEY_FILE}.old-{}", std::process::id()));
    let _ = fs::remove_file(&backup);
    let have_backup = fs::hard_link(&key_path, &backup).is_ok();
    let cleanup = |backup_too: bool| {
        let _ = fs::remove_file(chain_tmp);
        let _ = fs::remove_file(key_tmp);
        if backup_too {
            let _ = fs::remove_file(&backup);
        }
    };
    if let Err(e) = fs::rename(key_tmp, &key_path) {
        cleanup(have_backup);
        return Err(io_error("saved", &key_path, e));
    }
    if let Err(e) = fs::rename(chain_tmp, &chain_path) {
        if have_backup {
            let _ = fs::rename(&backup, &key_path);
        }
        cleanup(have_backup);
        return Err(io_error("saved", &chain_path, e));
    }
    if have_backup {
        let _ = fs::remove_file(&backup);
    }
    // The renames are durable only once the directory itself is synced.
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|e| io_error("saved", dir, e))
}

fn key_to_pem(key: &PrivateKeyDer<'_>) -> String {
    match key {
        PrivateKeyDer::Pkcs1(k) => pem_encode("RSA PRIVATE KEY", k.secret_pkcs1_der()),
        PrivateKeyDer::Sec1(k) => pem_encode("EC PRIVATE KEY", k.secret_sec1_der()),
        other => pem_encode("PRIVATE KEY", other.secret_der()),
    }
}

/// PEM text for one DER block (RFC 7468: base64, 64 columns).
pub(crate) fn pem_encode(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut b64 = Vec::with_capacity(der.len().div_ceil(3) * 4);
    for chunk in der.chunks(3) {
        let bytes = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(bytes[0]) << 16) | (u32::from(bytes[1]) << 8) | u32::from(bytes[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                b64.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]);
            } else {
                b64.push(b'=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in b64.chunks(64) {
        // The alphabet is ASCII, so every byte is a char.
        out.extend(line.iter().map(|&b| b as char));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

/// Owner and mode of `path`, for "cannot read" messages.
pub fn describe_access(path: &Path) -> String {
    use std::os::unix::fs::MetadataExt;
    match fs::metadata(path) {
        Ok(m) => format!(
            "owner uid {}, group gid {}, mode {:04o}",
            m.uid(),
            m.gid(),
            m.mode() & 0o7777
        ),
        Err(e) => e.to_string(),
    }
}

/// Whether the user `owner` can read `path` by its mode bits (its
/// supplementary groups aside): what `cert check` asks for the server's
/// user, since root, which runs it, reads everything.
/// A folder counts when it can be entered (its `x` bit).
pub fn readable_by(path: &Path, owner: Owner) -> bool {
    use std::os::unix::fs::MetadataExt;
    let Ok(m) = fs::metadata(path) else {
        return true; // missing: not this check's problem
    };
    // r for a file, x for a folder; the bit for "others", shifted below
    let want = if m.is_dir() { 0o1 } else { 0o4 };
    let mode = m.mode();
    let shift = if m.uid() == owner.uid {
        6
    } else if m.gid() == owner.gid {
        3
    } else {
        0
    };
    owner.uid == 0 || (mode >> shift) & want != 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tls::validate::testutil::*;
    use std::os::unix::fs::PermissionsExt;

    const SITE: [&str; 1] = ["example.com"];

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn install_writes_both_files_with_a_private_key_file() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("certs/example.com");
        let pki = pki();
        let leaf = pki.leaf(&SITE);
        // Out of order on purpose: the installed file must be leaf first.
        let upload = format!("{}{}", pki.int.pem(), leaf.pem());
        let v = install(
            &dir,
            upload.as_bytes(),
            leaf.key_pem().as_bytes(),
            &strings(&SITE),
            NOW,
            &pki.trust(),
        )
        .expect("install");
        assert!(v.reordered);
        assert_eq!(mode(&dir), 0o700);
        assert_eq!(mode(&dir.join(KEY_FILE)), 0o600);
        let chain = fs::read_to_string(dir.join(CHAIN_FILE)).expect("chain");
        assert_eq!(chain, pki.fullchain(&leaf));
        let key = fs::read_to_string(dir.join(KEY_FILE)).expect("key");
        assert_eq!(key, pem_encode("PRIVATE KEY", &leaf.key.serialize_der()));
        // No temporary or backup files are left behind.
        let mut names: Vec<String> = fs::read_dir(&dir)
            .expect("read_dir")
            .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        assert_eq!(names, vec![CHAIN_FILE, KEY_FILE]);
    }

    #[test]
    fn invalid_install_leaves_previous_files_untouched() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path();
        let pki = pki();
        let leaf = pki.leaf(&SITE);
        install(
            dir,
            pki.fullchain(&leaf).as_bytes(),
            leaf.key_pem().as_bytes(),
            &strings(&SITE),
            NOW,
            &pki.trust(),
        )
        .expect("first install");
        let before = (
            fs::read(dir.join(CHAIN_FILE)).expect("c"),
            fs::read(dir.join(KEY_FILE)).expect("k"),
        );

        let other = pki.leaf(&SITE);
        let bad_uploads: [(String, String); 3] = [
            (pki.fullchain(&leaf), other.key_pem()),  // wrong key
            (other.pem(), other.key_pem()),           // missing intermediate
            ("garbage".to_string(), other.key_pem()), // not PEM
        ];
        for (cert, key) in &bad_uploads {
            install(
                dir,
                cert.as_bytes(),
                key.as_bytes(),
                &strings(&SITE),
                NOW,
                &pki.trust(),
            )
            .expect_err("invalid upload");
            let after = (
                fs::read(dir.join(CHAIN_FILE)).expect("c"),
                fs::read(dir.join(KEY_FILE)).expect("k"),
            );
            assert_eq!(before, after);
        }
        assert_eq!(fs::read_dir(dir).expect("read_dir").count(), 2);
    }

    #[test]
    fn load_installed_round_trip() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("site");
        let pki = pki();
        let trust = pki.trust();
        assert!(load_installed(&dir, &trust).expect("missing dir").is_none());
        fs::create_dir(&dir).expect("mkdir");
        assert!(load_installed(&dir, &trust).expect("empty dir").is_none());

        let leaf = pki.leaf(&SITE);
        let installed = install(
            &dir,
            pki.fullchain(&leaf).as_bytes(),
            leaf.key_pem().as_bytes(),
            &strings(&SITE),
            NOW,
            &trust,
        )
        .expect("install");
        let loaded = load_installed(&dir, &trust).expect("load").expect("some");
        assert_eq!(loaded.chain, installed.chain);
        assert_eq!(loaded.key.secret_der(), installed.key.secret_der());
        assert_eq!(loaded.leaf, installed.leaf);
        assert_eq!(loaded.intermediates, installed.intermediates);
        assert!(!loaded.reordered);
        assert!(loaded.certified.keys_match().is_ok());

        fs::remove_file(dir.join(KEY_FILE)).expect("rm key");
        let err = load_installed(&dir, &trust).expect_err("incomplete");
        assert!(
            matches!(
                err,
                UploadError::Incomplete {
                    missing: KEY_FILE,
                    ..
                }
            ),
            "{err}"
        );
    }

    #[test]
    fn pem_encoding_round_trips() {
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::CertificateDer;
        for len in 0..70 {
            let der: Vec<u8> = (0..len).map(|i| (i * 37 % 256) as u8).collect();
            let pem = pem_encode("CERTIFICATE", &der);
            let back = CertificateDer::from_pem_slice(pem.as_bytes()).expect("parse");
            assert_eq!(back.as_ref(), der.as_slice());
        }
    }
}

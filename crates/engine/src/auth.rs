//! HTTP Basic authentication as Apache's mod_auth_basic, mod_authn_file
//! and mod_authz_groupfile do it: `AuthType Basic`, `AuthName`,
//! `AuthUserFile` (htpasswd: bcrypt, Apache's MD5 `$apr1$`, `{SHA}`,
//! crypt(3) `$1$`/`$5$`/`$6$`/DES), `AuthGroupFile`.
//!
//! Password and group files are read once and kept until their size or
//! modification time changes (Apache reads them on every request).

pub(crate) use super::passwords::verify;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

/// Files remembered at most (a customer cannot grow this without bound).
const MAX_CACHED_FILES: usize = 4096;
/// Bigger password or group files are refused (a mistake, or an attack).
const MAX_FILE_BYTES: u64 = 16 * 1024 * 1024;

/// A parsed password file (`user:hash`) or group file (`group: u1 u2`).
#[derive(Debug, Default)]
pub(crate) struct Table {
    pub entries: HashMap<String, String>,
}

type Key = (u64, Option<SystemTime>, u64);
type Cache = Mutex<HashMap<PathBuf, (Key, Arc<Table>)>>;

fn cache() -> &'static Cache {
    static CACHE: OnceLock<Cache> = OnceLock::new();
    CACHE.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Why a file cannot be used.
#[derive(Debug)]
pub(crate) enum FileError {
    Unreadable(String),
    /// SECURITY: on a shared host a customer's `AuthUserFile` must be the
    /// site owner's own file, not another account's or the system's.
    WrongOwner {
        file_uid: u32,
        site_uid: u32,
    },
    TooBig,
}

impl std::fmt::Display for FileError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            FileError::Unreadable(e) => write!(f, "cannot be read: {e}"),
            FileError::WrongOwner { file_uid, site_uid } => write!(
                f,
                "is owned by uid {file_uid}, not by the site's owner (uid {site_uid})"
            ),
            FileError::TooBig => write!(f, "is larger than {MAX_FILE_BYTES} bytes"),
        }
    }
}

/// Reads `path` (cached by inode, size and mtime), parsed with `parse`;
/// with `may_read` false (an async worker) a file that is not
/// cached is not read: `Ok(None)`, the caller asks for the blocking pool.
pub(crate) fn load_with(
    path: &Path,
    site_uid: u32,
    parse: fn(&str) -> Table,
    may_read: bool,
) -> Result<Option<Arc<Table>>, FileError> {
    let meta = std::fs::metadata(path).map_err(|e| FileError::Unreadable(e.to_string()))?;
    if meta.uid() != site_uid && meta.uid() != 0 {
        return Err(FileError::WrongOwner {
            file_uid: meta.uid(),
            site_uid,
        });
    }
    if meta.len() > MAX_FILE_BYTES {
        return Err(FileError::TooBig);
    }
    let key = (meta.ino(), meta.modified().ok(), meta.len());
    if let Ok(c) = cache().lock() {
        if let Some((k, t)) = c.get(path) {
            if *k == key {
                return Ok(Some(t.clone()));
            }
        }
    }
    if !may_read {
        return Ok(None);
    }
    let text = std::fs::read(path).map_err(|e| FileError::Unreadable(e.to_string()))?;
    let table = Arc::new(parse(&String::from_utf8_lossy(&text)));
    if let Ok(mut c) = cache().lock() {
        if c.len() >= MAX_CACHED_FILES {
            c.clear();
        }
        c.insert(path.to_path_buf(), (key, table.clone()));
    }
    Ok(Some(table))
}

/// How long a verified password is remembered (as mod_authn_socache
/// does): a valid login does not pay the hash's cost (bcrypt, SHA-crypt:
/// whatever cost the file's author chose) on every request.
pub(crate) const VERIFIED_TTL: std::time::Duration = std::time::Duration::from_secs(300);
/// Verified credentials remembered at most.
const MAX_VERIFIED: usize = 10_000;

type Verified = Mutex<HashMap<[u8; 32], std::time::Instant>>;

fn verified() -> &'static (ring::hmac::Key, Verified) {
    static V: OnceLock<(ring::hmac::Key, Verified)> = OnceLock::new();
    V.get_or_init(|| {
        // A random key per process: the table holds keyed digests, never
        // a password or a digest that could be attacked offline without
        // the process's memory.
        let rng = ring::rand::SystemRandom::new();
        let key = ring::hmac::Key::generate(ring::hmac::HMAC_SHA256, &rng)
            .unwrap_or_else(|_| ring::hmac::Key::new(ring::hmac::HMAC_SHA256, &[0u8; 32]));
        (key, Mutex::new(HashMap::new()))
    })
}

fn credential_digest(file: &Path, user: &str, hash: &str, password: &str) -> [u8; 32] {
    let (key, _) = verified();
    let mut ctx = ring::hmac::Context::with_key(key);
    for part in [
        file.as_os_str().as_encoded_bytes(),
        user.as_bytes(),
        hash.as_bytes(),
        password.as_bytes(),
    ] {
        ctx.update(&(part.len() as u64).to_be_bytes());
        ctx.update(part);
    }
    let mut out = [0u8; 32];
    out.copy_from_slice(ctx.sign().as_ref());
    out
}

/// Whether `password` was verified against `hash` (the entry of `user` in
/// `file`) within [`VERIFIED_TTL`].  A changed hash (a new password)
/// never matches an old entry.
pub(crate) fn verified_before(file: &Path, user: &str, hash: &str, password: &str) -> bool {
    let d = credential_digest(file, user, hash, password);
    let Ok(t) = verified().1.lock() else {
        return false;
    };
    t.get(&d).is_some_and(|at| at.elapsed() < VERIFIED_TTL)
}

/// Remembers a verified password (see [`verified_before`]).
pub(crate) fn remember_verified(file: &Path, user: &str, hash: &str, password: &str) {
    let d = credential_digest(file, user, hash, password);
    if let Ok(mut t) = verified().1.lock() {
        if t.len() >= MAX_VERIFIED {
            t.retain(|_, at| at.elapsed() < VERIFIED_TTL);
            if t.len() >= MAX_VERIFIED {
                t.clear();
            }
        }
        t.insert(d, std::time::Instant::now());
    }
}

/// An htpasswd file: `user:hash` lines; `#` comments and blank lines
/// skipped (as `ap_cfg_getline` + authn_file do).
pub(crate) fn parse_passwords(text: &str) -> Table {
    let mut entries = HashMap::new();
    for line in text.lines() {
        let line = line.trim_end_matches('\r');
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((user, hash)) = line.split_once(':') {
            // the first entry for a user wins (authn_file stops there)
            entries
                .entry(user.to_string())
                .or_insert_with(|| hash.trim_end().to_string());
        }
    }
    Table { entries }
}

/// A group file: `group: user user…` lines (a group may span lines).
pub(crate) fn parse_groups(text: &str) -> Table {
    let mut entries: HashMap<String, String> = HashMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some((group, users)) = line.split_once(':') {
            let e = entries.entry(group.trim().to_string()).or_default();
            e.push(' ');
            e.push_str(users.trim());
        }
    }
    Table { entries }
}

/// Whether `user` is in `group` of a parsed group file.
pub(crate) fn in_group(groups: &Table, group: &str, user: &str) -> bool {
    groups
        .entries
        .get(group)
        .is_some_and(|users| users.split_whitespace().any(|u| u == user))
}

/// The user and password of a `Basic` Authorization header.
pub(crate) fn basic_credentials(header: &str) -> Option<(String, String)> {
    use base64::Engine;
    let (scheme, rest) = header.trim().split_once(' ')?;
    if !scheme.eq_ignore_ascii_case("basic") {
        return None;
    }
    let raw = base64::engine::general_purpose::STANDARD
        .decode(rest.trim())
        .ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (user, pass) = text.split_once(':')?;
    Some((user.to_string(), pass.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    // Made with Apache's own `htpasswd -nb{m,B,s,d,5}`.
    const FILE: &str = "alice:$apr1$Xt6LuH8u$kY3F80x6Fobdl2o1eL0UU0
bob:$2y$05$EpLK/0BD3hN9bcPqiGs3n.ptr/zxEzf3LePf3TE5o9hFmFfHnGQOu
carol:{SHA}QY7lFvHLCVxQ/y8Qp2GSiJwoHzo=
dave:jX4i34wFHcDkU
# a comment
erin:$6$e4bGlM2GiSKKS4vh$OHGBgiZiMYzr6RfsplnahvEx5eid7K/93lV8Z7x7hRRNLiKXprbz.v97CCgPe8fIVu4.VwVC7ImsbGhRuQYBw/
";

    #[test]
    fn every_htpasswd_format_verifies() {
        let t = parse_passwords(FILE);
        for (user, pw) in [
            ("alice", "secret1"),
            ("bob", "secret2"),
            ("carol", "secret3"),
            ("dave", "secret4"),
            ("erin", "secret5"),
        ] {
            let hash = &t.entries[user];
            assert!(verify(pw, hash), "{user}");
            assert!(!verify("wrong", hash), "{user} with a wrong password");
            assert!(!verify("", hash), "{user} with no password");
        }
        assert!(!verify("plain", "plain"), "no plain text on Unix");
    }

    #[test]
    fn groups_and_credentials() {
        let g = parse_groups("admins: alice bob\nadmins: carol\nstaff:dave\n");
        assert!(in_group(&g, "admins", "carol"));
        assert!(in_group(&g, "staff", "dave"));
        assert!(!in_group(&g, "staff", "alice"));
        assert_eq!(
            basic_credentials("Basic YWxpY2U6c2VjcmV0MQ=="),
            Some(("alice".into(), "secret1".into()))
        );
        assert_eq!(basic_credentials("Bearer x"), None);
        assert_eq!(basic_credentials("Basic !!!"), None);
    }
}

//! A site: its document root, names, server-level defaults and the cache of
//! compiled `.htaccess` files, one per directory.
//!
//! A compiled file is reused as long as the file's identity (inode, size,
//! modification time) is unchanged, so an edit is seen on the next request
//! and nothing is ever parsed on the request path twice.

use super::compile::{compile_source, Compiled};
use super::config::Merged;
use crate::server::mime::MimeTable;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

/// The name of the per-directory file (`AccessFileName`).
pub const ACCESS_FILE_NAME: &str = ".htaccess";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileKey {
    ino: u64,
    dev: u64,
    size: u64,
    mtime: Option<SystemTime>,
}

struct CacheEntry {
    key: FileKey,
    compiled: Arc<Compiled>,
}

/// Compiled `.htaccess` files by path.
#[derive(Default)]
pub struct HtaccessCache {
    entries: Mutex<HashMap<PathBuf, CacheEntry>>,
}

/// What a directory's `.htaccess` gives.
pub enum Htaccess {
    None,
    Ok(Arc<Compiled>),
    /// The file exists but has errors (or cannot be read): 500.
    Broken(Arc<Compiled>),
    Unreadable(String),
}

impl HtaccessCache {
    /// Looks up (and compiles if new or changed) the `.htaccess` of `dir`.
    pub fn get(&self, dir: &Path) -> Htaccess {
        let path = dir.join(ACCESS_FILE_NAME);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Htaccess::None,
            Err(e) if e.raw_os_error() == Some(20) => return Htaccess::None, // ENOTDIR
            Err(e) => return Htaccess::Unreadable(format!("{}: {e}", path.display())),
        };
        if !meta.is_file() {
            return Htaccess::Unreadable(format!("{}: not a regular file", path.display()));
        }
        let key = FileKey {
            ino: meta.ino(),
            dev: meta.dev(),
            size: meta.len(),
            mtime: meta.modified().ok(),
        };
        if let Ok(map) = self.entries.lock() {
            if let Some(e) = map.get(&path) {
                if e.key == key {
                    return wrap(e.compiled.clone());
                }
            }
        }
        let source = match std::fs::read(&path) {
            Ok(s) => s,
            Err(e) => return Htaccess::Unreadable(format!("{}: {e}", path.display())),
        };
        let compiled = Arc::new(compile_source(&source));
        for d in compiled.diagnostics.iter().filter(|d| d.is_error()) {
            tracing::error!(target: "htaccess", "{}", d.one_line(&path.display().to_string()));
        }
        if let Ok(mut map) = self.entries.lock() {
            map.insert(
                path,
                CacheEntry {
                    key,
                    compiled: compiled.clone(),
                },
            );
        }
        wrap(compiled)
    }
}

fn wrap(c: Arc<Compiled>) -> Htaccess {
    if c.has_errors() {
        Htaccess::Broken(c)
    } else {
        Htaccess::Ok(c)
    }
}

/// One virtual host.
pub struct Site {
    /// The document root, absolute, without a trailing slash.
    pub docroot: String,
    /// ServerName first, then ServerAliases (lower-case).
    pub server_names: Vec<String>,
    /// The port the plain listener is known as (80 normally).
    pub http_port: u16,
    /// The port the TLS listener is known as (443 normally).
    pub https_port: u16,
    pub server_default: Arc<Merged>,
    pub cache: HtaccessCache,
    pub mime: MimeTable,
    /// Send X-Debug-Final-Uri / X-Debug-Final-Query.
    pub debug_headers: bool,
    /// Keep client-sent HTTPS / X-Forwarded-Proto / Forwarded headers.
    pub pass_client_https_headers: bool,
}

impl Site {
    pub fn new(docroot: &Path, server_names: Vec<String>) -> Site {
        let root = docroot.to_string_lossy().trim_end_matches('/').to_string();
        Site {
            docroot: if root.is_empty() { "/".into() } else { root },
            server_names: server_names
                .into_iter()
                .map(|n| n.to_ascii_lowercase())
                .collect(),
            http_port: 80,
            https_port: 443,
            server_default: Arc::new(Merged::server_default(true)),
            cache: HtaccessCache::default(),
            mime: MimeTable::builtin(),
            debug_headers: false,
            pass_client_https_headers: false,
        }
    }

    /// Whether `host` (lower-case, no port) is one of this site's names.
    pub fn is_own_name(&self, host: &str) -> bool {
        self.server_names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(host))
    }
}

//! A site: its document root, names, server-level defaults and the cache of
//! compiled `.htaccess` files, one per directory.
//!
//! Each directory's compiled program sits behind its own `ArcSwap`: a reload
//! replaces it atomically, and a request that already holds the old one
//! finishes with it (a request also remembers what it saw per directory,
//! so it never mixes two versions of one file).  How freshness is ensured
//! depends on [`Validation`]: quick mode stats the file on every look-up;
//! config mode trusts the cache and is told about changes by the watcher
//! (plus a periodic re-check for missed events).  Either way the identity
//! of the file (inode, device, size, mtime) decides whether to recompile.

use super::compile::{compile_source_with, Compiled, Modules};
use super::config::Merged;
use arc_swap::{ArcSwap, ArcSwapOption};
use htgate_content::mime::MimeTable;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// A bigger `.htaccess` is refused (Apache has no limit; the largest file
/// of the real-world corpus is 55 KB).
pub(crate) const MAX_HTACCESS_BYTES: u64 = 1024 * 1024;
/// A bigger `.htaccess` is compiled on the blocking pool the first time
/// (and after each change), not on an async worker.
pub(crate) const INLINE_COMPILE_BYTES: u64 = 16 * 1024;

/// The name of the per-directory file (`AccessFileName`).
pub const ACCESS_FILE_NAME: &str = ".htaccess";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileKey {
    ino: u64,
    dev: u64,
    size: u64,
    mtime: Option<SystemTime>,
}

/// What a directory's `.htaccess` gives.
#[derive(Clone)]
pub enum Htaccess {
    None,
    Ok(Arc<Compiled>),
    /// The file exists but has errors (or cannot be read): 500.
    Broken(Arc<Compiled>),
    Unreadable(Arc<str>),
}

/// How the cache learns that a file changed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Validation {
    /// Stat the file at every look-up (quick mode: no watcher).
    EveryRequest,
    /// Trust the cache; the watcher calls [`HtaccessCache::reload_dir`] and
    /// friends.
    Watched,
}

/// What a broken edit does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OnError {
    /// Apache: 500 for requests under that directory.
    #[default]
    Apache,
    /// Keep serving the last version that compiled; log the error.
    KeepLastGood,
}

/// One directory's state: the file identity it was built from.
struct DirState {
    key: Option<FileKey>,
    htaccess: Htaccess,
}

/// What a reload did, for the log and the tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ReloadOutcome {
    Unchanged,
    Compiled { errors: usize },
    KeptLastGood { errors: usize },
    Removed,
    Unreadable,
}

/// How long quick mode ([`Validation::EveryRequest`]) trusts what it read
/// of a `.htaccess` before it stats the file again: an edit is served
/// within this time, and a request does not pay one stat per directory
/// level.
pub const RECHECK: Duration = Duration::from_secs(1);

/// One directory's slot in the cache: its current state, when quick mode
/// last looked at the file, and the settings last merged onto it.
pub struct DirEntry {
    dir: Box<str>,
    state: ArcSwap<DirState>,
    /// Nanoseconds from the cache's `epoch` to the last stat of the file.
    checked: AtomicU64,
    merged: ArcSwapOption<MergeMemo>,
}

/// The parent's settings with this directory's `.htaccess` merged on
/// (`Merged::merge`), remembered for the next request with the same
/// parent and the same compiled file: every request of a directory then
/// shares one merged config instead of building its own.
struct MergeMemo {
    parent: Arc<Merged>,
    compiled: Arc<Compiled>,
    merged: Arc<Merged>,
}

impl DirEntry {
    /// The directory, as the walk names it.
    pub fn dir(&self) -> &str {
        &self.dir
    }

    /// `compiled` (this directory's file as the request saw it) merged
    /// onto `parent`: the remembered result when both are the same
    /// objects as last time, else `build()`'s, remembered.
    pub(crate) fn merged_on(
        &self,
        parent: &Arc<Merged>,
        compiled: &Arc<Compiled>,
        build: impl FnOnce() -> Merged,
    ) -> Arc<Merged> {
        if let Some(m) = &*self.merged.load() {
            if Arc::ptr_eq(&m.parent, parent) && Arc::ptr_eq(&m.compiled, compiled) {
                return m.merged.clone();
            }
        }
        let merged = Arc::new(build());
        self.merged.store(Some(Arc::new(MergeMemo {
            parent: parent.clone(),
            compiled: compiled.clone(),
            merged: merged.clone(),
        })));
        merged
    }
}

/// What one request has seen of the disk, shared by its internal
/// redirects and sub-requests: each directory's `.htaccess` as the request
/// first saw it (so it never mixes two versions of one file), and its stat
/// results.  No allocation per directory: the slots are the cache's.
#[derive(Default)]
pub struct Seen {
    dirs: Vec<(Arc<DirEntry>, Htaccess)>,
    pub stats: super::stat_cache::RequestStats,
}

impl Seen {
    /// `dir`'s `.htaccess` for this request, and its cache slot.
    /// `None` with `inline`: the file must first be compiled off the async
    /// workers (see [`HtaccessCache::lookup_within`]).
    pub fn htaccess(
        &mut self,
        cache: &HtaccessCache,
        dir: &str,
        inline: bool,
    ) -> Option<(Arc<DirEntry>, Htaccess)> {
        if let Some((e, h)) = self.dirs.iter().find(|(e, _)| &*e.dir == dir) {
            return Some((e.clone(), h.clone()));
        }
        let now = self.stats.now();
        let (e, h) = cache.lookup_within(dir, now, inline)?;
        self.dirs.push((e.clone(), h.clone()));
        Some((e, h))
    }
}

/// Whether `dir`'s `.htaccess` is over [`INLINE_COMPILE_BYTES`] and not
/// the file last compiled (`old_key`): compiling it is blocking work.
fn large_and_changed(dir: &Path, old_key: Option<FileKey>) -> bool {
    let Ok(meta) = std::fs::metadata(dir.join(ACCESS_FILE_NAME)) else {
        return false;
    };
    let key = Some(FileKey {
        ino: meta.ino(),
        dev: meta.dev(),
        size: meta.len(),
        mtime: meta.modified().ok(),
    });
    meta.is_file() && meta.len() > INLINE_COMPILE_BYTES && key != old_key
}

/// The compiled program of `source`, shared by every directory (of every
/// site) whose `.htaccess` has exactly these bytes: a host with 10,000
/// WordPress sites holds one WordPress program, not 10,000 copies of its
/// regexes.  Compiling depends on nothing but the bytes and the modules
/// (diagnostics name the file only when shown), so sharing is invisible.
/// Entries are weak: a program no directory uses any more is freed, and
/// dead entries are swept when the table has doubled since the last sweep.
fn compile_shared(source: Vec<u8>, modules: Modules) -> Arc<Compiled> {
    type Table = HashMap<(Modules, Box<[u8]>), std::sync::Weak<Compiled>>;
    static SHARED: std::sync::OnceLock<std::sync::Mutex<(Table, usize)>> =
        std::sync::OnceLock::new();
    let shared = SHARED.get_or_init(|| std::sync::Mutex::new((HashMap::new(), 64)));
    let key = (modules, source.into_boxed_slice());
    if let Ok(t) = shared.lock() {
        if let Some(c) = t.0.get(&key).and_then(std::sync::Weak::upgrade) {
            return c;
        }
    }
    // Compiled outside the lock: another thread may compile the same bytes
    // at the same time; the last one stored wins, both are correct.
    let compiled = Arc::new(compile_source_with(&key.1, modules));
    if let Ok(mut t) = shared.lock() {
        let (table, sweep_at) = &mut *t;
        table.insert(key, Arc::downgrade(&compiled));
        if table.len() >= *sweep_at {
            table.retain(|_, w| w.strong_count() > 0);
            *sweep_at = (table.len() * 2).max(64);
        }
    }
    compiled
}

/// Compiled `.htaccess` files by directory.
pub struct HtaccessCache {
    entries: RwLock<HashMap<PathBuf, Arc<DirEntry>, super::stat_cache::FxBuild>>,
    validation: Validation,
    on_error: OnError,
    /// Quick mode's [`RECHECK`] (zero: stat at every look-up).
    recheck: Duration,
    epoch: Instant,
    /// Which optional modules the site has (`<IfModule>`).
    modules: Modules,
}

impl Default for HtaccessCache {
    fn default() -> Self {
        HtaccessCache::new(Validation::EveryRequest, OnError::Apache)
    }
}

impl HtaccessCache {
    pub fn new(validation: Validation, on_error: OnError) -> HtaccessCache {
        HtaccessCache {
            entries: RwLock::new(HashMap::default()),
            validation,
            on_error,
            recheck: match validation {
                Validation::EveryRequest => RECHECK,
                Validation::Watched => Duration::ZERO,
            },
            epoch: Instant::now(),
            modules: Modules::default(),
        }
    }

    /// Sets the optional modules (before the first file is compiled).
    pub fn set_modules(&mut self, modules: Modules) {
        self.modules = modules;
    }

    pub fn modules(&self) -> Modules {
        self.modules
    }

    /// How long quick mode trusts a look-up (zero: not at all).
    pub fn set_recheck(&mut self, recheck: Duration) {
        self.recheck = recheck;
    }

    fn entry(&self, dir: &Path) -> Option<Arc<DirEntry>> {
        self.entries.read().ok()?.get(dir).cloned()
    }

    fn since_epoch(&self, now: Instant) -> u64 {
        u64::try_from(now.saturating_duration_since(self.epoch).as_nanos()).unwrap_or(u64::MAX)
    }

    /// The `.htaccess` of `dir` (compiled if new or, depending on the
    /// validation mode, changed).
    pub fn get(&self, dir: &Path) -> Htaccess {
        self.lookup_within(&dir.to_string_lossy(), Instant::now(), false)
            .map_or(Htaccess::None, |(_, h)| h)
    }

    /// The `.htaccess` of `dir` at `now`, and its slot.  Watched: as the
    /// watcher last left it.  Every request: stat'ed again once
    /// [`RECHECK`] has passed since the last look, compiled again when
    /// its identity changed.
    /// With `inline`, `None` instead of compiling a `.htaccess` over
    /// [`INLINE_COMPILE_BYTES`] (a cold compile of thousands of rules takes
    /// milliseconds: the blocking pool's work, not an async worker's);
    /// otherwise always `Some`.
    pub(crate) fn lookup_within(
        &self,
        dir: &str,
        now: Instant,
        inline: bool,
    ) -> Option<(Arc<DirEntry>, Htaccess)> {
        let path = Path::new(dir);
        let t = self.since_epoch(now);
        if let Some(entry) = self.entry(path) {
            if self.validation == Validation::Watched {
                let h = entry.state.load().htaccess.clone();
                return Some((entry, h));
            }
            let last = entry.checked.load(Ordering::Relaxed);
            let recheck = u64::try_from(self.recheck.as_nanos()).unwrap_or(u64::MAX);
            if t.saturating_sub(last) < recheck {
                let h = entry.state.load().htaccess.clone();
                return Some((entry, h));
            }
            let old = entry.state.load_full();
            if inline && large_and_changed(path, old.key) {
                return None;
            }
            let (new, _) = self.read_state(path, Some(&old), false);
            entry.checked.store(t, Ordering::Relaxed);
            let h = match new {
                Some(new) => {
                    let h = new.htaccess.clone();
                    entry.state.store(Arc::new(new));
                    h
                }
                None => old.htaccess.clone(),
            };
            return Some((entry, h));
        }
        if inline && large_and_changed(path, None) {
            return None;
        }
        let (state, _) = self.read_state(path, None, false);
        let state = state.unwrap_or(DirState {
            key: None,
            htaccess: Htaccess::None,
        });
        let h = state.htaccess.clone();
        let fresh = Arc::new(DirEntry {
            dir: dir.into(),
            state: ArcSwap::from_pointee(state),
            checked: AtomicU64::new(t),
            merged: ArcSwapOption::empty(),
        });
        let entry = match self.entries.write() {
            Ok(mut map) => map
                .entry(path.to_path_buf())
                .or_insert_with(|| fresh.clone())
                .clone(),
            Err(_) => fresh,
        };
        Some((entry, h))
    }

    /// Re-reads `dir`'s `.htaccess` now (the watcher saw a change) and
    /// logs what happened.  Directories never looked up are not loaded:
    /// they will be at their first request.
    pub(crate) fn reload_dir(&self, dir: &Path) -> ReloadOutcome {
        let Some(entry) = self.entry(dir) else {
            return ReloadOutcome::Unchanged;
        };
        let old = entry.state.load_full();
        let (new, outcome) = self.read_state(dir, Some(&old), true);
        if let Some(new) = new {
            entry.state.store(Arc::new(new));
        }
        match outcome {
            ReloadOutcome::Unchanged => {}
            ReloadOutcome::Removed => htgate_telemetry::metrics::reload("htaccess", true),
            ReloadOutcome::Compiled { errors } => {
                htgate_telemetry::metrics::reload("htaccess", errors == 0)
            }
            ReloadOutcome::KeptLastGood { .. } | ReloadOutcome::Unreadable => {
                htgate_telemetry::metrics::reload("htaccess", false)
            }
        }
        outcome
    }

    /// Re-checks every cached directory under `prefix` (a folder was
    /// created, renamed or removed).
    pub(crate) fn reload_under(&self, prefix: &Path) -> usize {
        let dirs: Vec<PathBuf> = match self.entries.read() {
            Ok(map) => map
                .keys()
                .filter(|d| d.starts_with(prefix))
                .cloned()
                .collect(),
            Err(_) => return 0,
        };
        for d in &dirs {
            self.reload_dir(d);
        }
        dirs.len()
    }

    /// Re-checks every cached directory (the periodic fallback for missed
    /// events); returns how many changed.
    pub(crate) fn reload_all(&self) -> usize {
        let dirs: Vec<PathBuf> = match self.entries.read() {
            Ok(map) => map.keys().cloned().collect(),
            Err(_) => return 0,
        };
        dirs.iter()
            .filter(|d| self.reload_dir(d) != ReloadOutcome::Unchanged)
            .count()
    }

    /// Forgets everything (the root itself was replaced).
    pub fn clear(&self) {
        if let Ok(mut map) = self.entries.write() {
            map.clear();
        }
    }

    /// Stats and, when the identity changed, compiles.  `None`: unchanged.
    fn read_state(
        &self,
        dir: &Path,
        old: Option<&DirState>,
        log: bool,
    ) -> (Option<DirState>, ReloadOutcome) {
        let path = dir.join(ACCESS_FILE_NAME);
        let meta = match std::fs::metadata(&path) {
            Ok(m) => m,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound || e.raw_os_error() == Some(20) => {
                // ENOTDIR counts as "no file" too.
                if old.is_some_and(|o| o.key.is_none()) {
                    return (None, ReloadOutcome::Unchanged);
                }
                if log && old.is_some() {
                    tracing::info!(target: "reload", file = %path.display(), "removed");
                }
                let state = DirState {
                    key: None,
                    htaccess: Htaccess::None,
                };
                return (Some(state), ReloadOutcome::Removed);
            }
            Err(e) => {
                return (
                    Some(unreadable(&path, &e.to_string())),
                    ReloadOutcome::Unreadable,
                )
            }
        };
        if !meta.is_file() {
            return (
                Some(unreadable(&path, "not a regular file")),
                ReloadOutcome::Unreadable,
            );
        }
        let key = Some(FileKey {
            ino: meta.ino(),
            dev: meta.dev(),
            size: meta.len(),
            mtime: meta.modified().ok(),
        });
        if old.is_some_and(|o| o.key == key) {
            return (None, ReloadOutcome::Unchanged);
        }
        let started = Instant::now();
        if meta.len() > MAX_HTACCESS_BYTES {
            // SECURITY: a customer cannot make the server read and compile
            // an arbitrarily large file on every reload.
            return (
                Some(unreadable(
                    &path,
                    &format!("larger than {MAX_HTACCESS_BYTES} bytes"),
                )),
                ReloadOutcome::Unreadable,
            );
        }
        let source = match std::fs::read(&path) {
            Ok(s) => s,
            Err(e) => {
                return (
                    Some(unreadable(&path, &e.to_string())),
                    ReloadOutcome::Unreadable,
                )
            }
        };
        let compiled = compile_shared(source, self.modules);
        let took = started.elapsed();
        let shown = path.display().to_string();
        let errors: Vec<String> = compiled
            .diagnostics
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.one_line(&shown))
            .collect();
        for e in &errors {
            tracing::error!(target: "htaccess", "{e}");
        }
        if !errors.is_empty() && self.on_error == OnError::KeepLastGood {
            if let Some(Htaccess::Ok(good)) = old.map(|o| &o.htaccess) {
                tracing::warn!(target: "reload", file = %shown, errors = errors.len(), "has errors: keeping the last good version (on_htaccess_error = \"keep-last-good\")");
                let state = DirState {
                    key,
                    htaccess: Htaccess::Ok(good.clone()),
                };
                return (
                    Some(state),
                    ReloadOutcome::KeptLastGood {
                        errors: errors.len(),
                    },
                );
            }
        }
        if log || old.is_some() {
            tracing::info!(
                target: "reload",
                file = %shown,
                compile_us = took.as_micros() as u64,
                errors = errors.len(),
                "{}",
                if errors.is_empty() { "reloaded" } else { "reloaded with errors: requests under it get 500" }
            );
        }
        let htaccess = if compiled.has_errors() {
            Htaccess::Broken(compiled)
        } else {
            Htaccess::Ok(compiled)
        };
        (
            Some(DirState { key, htaccess }),
            ReloadOutcome::Compiled {
                errors: errors.len(),
            },
        )
    }
}

fn unreadable(path: &Path, why: &str) -> DirState {
    let msg = format!("{}: {why}", path.display());
    tracing::error!(target: "htaccess", "{msg}");
    DirState {
        key: None,
        htaccess: Htaccess::Unreadable(Arc::from(msg.as_str())),
    }
}

/// The server-level settings every site starts from, built once: each
/// holds compiled `<Files>` regexes, and 10,000 hosted sites need not
/// hold 10,000 copies.  `owner_only`: the hosted variant
/// ([`Site::enforce_symlink_owner`]).
fn shared_default(owner_only: bool) -> Arc<Merged> {
    static PLAIN: std::sync::OnceLock<Arc<Merged>> = std::sync::OnceLock::new();
    static OWNER_ONLY: std::sync::OnceLock<Arc<Merged>> = std::sync::OnceLock::new();
    if owner_only {
        OWNER_ONLY
            .get_or_init(|| {
                let mut m = Merged::server_default(true);
                m.symlinks_owner_only = true;
                Arc::new(m)
            })
            .clone()
    } else {
        PLAIN
            .get_or_init(|| Arc::new(Merged::server_default(true)))
            .clone()
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
    /// stat() results shared by requests (directories for a second).
    pub stats: super::stat_cache::StatCache,
    pub mime: MimeTable,
    /// Send X-Debug-Final-Uri / X-Debug-Final-Query.
    pub debug_headers: bool,
    /// Keep client-sent HTTPS / X-Forwarded-Proto / Forwarded headers.
    pub pass_client_https_headers: bool,
    /// PHP through PHP-FPM; `None`: `.php` files are plain files (as in an
    /// Apache without PHP).
    pub php: Option<PhpSite>,
    /// `TraceEnable on`: TRACE is echoed (Apache's default, the reference
    /// environment's).  Hosted sites have it off, as Debian's
    /// security.conf sets it: TRACE answers 405.
    pub trace_enable: bool,
    /// See [`Site::deny_php_source`].
    pub php_source_denied: bool,
    /// What the site may use of the shared process.
    pub limits: super::limits::SiteLimits,
}

/// A site's PHP-FPM pool and what its `.htaccess` files may ask of PHP.
pub struct PhpSite {
    pub pool: htgate_fastcgi::Pool,
    /// `php_value`/`php_flag` are passed as `PHP_VALUE` (else a directory
    /// that sets one answers 500, as Apache without mod_php does).
    pub allow_values: bool,
    /// The site's limit on PHP requests running at once.
    pub gate: super::php_gate::PhpGate,
}

impl PhpSite {
    /// The PHP of site `name` on `upstream`: `timeout` is the answer's
    /// (`php_timeout_seconds`), `settings` the body and fair-sharing ones.
    pub fn new(
        name: Arc<String>,
        upstream: htgate_fastcgi::Upstream,
        timeout: std::time::Duration,
        settings: &super::php_gate::PhpSettings,
        allow_values: bool,
    ) -> PhpSite {
        let limits = htgate_fastcgi::Limits {
            response_timeout: timeout,
            max_body_bytes: super::limits::MAX_BODY_BYTES,
            body: settings.body_policy(),
            ..Default::default()
        };
        PhpSite {
            pool: htgate_fastcgi::Pool::new(upstream, limits),
            allow_values,
            gate: super::php_gate::PhpGate::new(name, settings),
        }
    }
}

/// A site's name for logs when it has no other: its root.
fn root_name(docroot: &Path) -> String {
    docroot.to_string_lossy().into_owned()
}

impl Site {
    /// Applies one change the file watcher reported under this site's
    /// root: a `.htaccess` compiled again, a folder's cached look-ups
    /// re-checked, a replaced root forgotten.  Returns how many cached
    /// `.htaccess` files a rescan found changed.
    pub fn apply_change(&self, change: &Change) -> usize {
        match change {
            Change::Htaccess(dir) => {
                self.cache.reload_dir(dir);
                0
            }
            Change::Tree(dir) => {
                self.stats.invalidate_under(dir);
                let n = self.cache.reload_under(dir);
                tracing::debug!(target: "reload", dir = %dir.display(), checked = n, "folder changed");
                0
            }
            Change::Root(root) => {
                tracing::info!(target: "reload", root = %root.display(), "document root replaced: every .htaccess is read again");
                self.cache.clear();
                self.stats.clear();
                0
            }
            Change::Rescan => {
                self.stats.clear();
                self.cache.reload_all()
            }
            Change::File(_) => 0,
        }
    }

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
            server_default: shared_default(false),
            cache: HtaccessCache::default(),
            stats: super::stat_cache::StatCache::default(),
            mime: MimeTable::builtin(),
            debug_headers: false,
            pass_client_https_headers: false,
            php: None,
            trace_enable: false,
            php_source_denied: false,
            limits: super::limits::SiteLimits::single_site(&root_name(docroot)),
        }
    }

    /// Runs `.php` files through `php` (Debian's php-fpm `<FilesMatch>`
    /// sections join the server-level settings).
    pub fn enable_php(&mut self, php: PhpSite) {
        let mut base = (*self.server_default).clone();
        base.files.extend(super::php::php_server_sections());
        self.server_default = Arc::new(base);
        self.php = Some(php);
        let mut m = self.cache.modules();
        m.proxy_fcgi = true;
        self.cache.set_modules(m);
    }

    /// `.php` files answer 403 instead of being sent as they are (a hosted
    /// site without PHP-FPM; quick mode keeps Apache-without-PHP's
    /// behaviour for the conformance cases).  Checked by the handler, not
    /// as a `<Files>` denial, so that a missing `index.php` still lets
    /// mod_dir go on to a listing.
    pub fn deny_php_source(&mut self) {
        self.php_source_denied = true;
    }

    /// A hosted site: symlinks are followed only to files of the link's
    /// owner, whatever `Options` say (see `Merged::symlinks_owner_only`).
    pub fn enforce_symlink_owner(&mut self) {
        if Arc::ptr_eq(&self.server_default, &shared_default(false)) {
            self.server_default = shared_default(true);
            return;
        }
        let mut base = (*self.server_default).clone();
        base.symlinks_owner_only = true;
        self.server_default = Arc::new(base);
    }

    /// Whether `php_value`/`php_flag` lines may be passed to PHP here.
    pub(crate) fn php_values_allowed(&self) -> bool {
        self.php.as_ref().is_some_and(|p| p.allow_values)
    }

    /// Whether `host` (lower-case, no port) is one of this site's names.
    pub(crate) fn is_own_name(&self, host: &str) -> bool {
        self.server_names
            .iter()
            .any(|n| n.eq_ignore_ascii_case(host))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(dir: &Path, text: &str) {
        // A rename gives the file a new identity even within one mtime tick.
        let tmp = dir.join(".htaccess.tmp");
        std::fs::write(&tmp, text).expect("write");
        std::fs::rename(&tmp, dir.join(ACCESS_FILE_NAME)).expect("rename");
    }

    #[test]
    fn watched_cache_changes_only_on_reload_and_keeps_the_last_good_version() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = HtaccessCache::new(Validation::Watched, OnError::KeepLastGood);
        write(dir.path(), "Header set X-A 1\n");
        assert!(matches!(cache.get(dir.path()), Htaccess::Ok(_)));
        write(dir.path(), "RewriteRule ^(unclosed\n");
        // Watched: nothing changes until the watcher says so.
        assert!(matches!(cache.get(dir.path()), Htaccess::Ok(_)));
        assert_eq!(
            cache.reload_dir(dir.path()),
            ReloadOutcome::KeptLastGood { errors: 1 }
        );
        assert!(matches!(cache.get(dir.path()), Htaccess::Ok(_)));
        // The same broken file is not compiled again.
        assert_eq!(cache.reload_dir(dir.path()), ReloadOutcome::Unchanged);
        std::fs::remove_file(dir.path().join(ACCESS_FILE_NAME)).expect("rm");
        assert_eq!(cache.reload_dir(dir.path()), ReloadOutcome::Removed);
        assert!(matches!(cache.get(dir.path()), Htaccess::None));
    }

    #[test]
    fn apache_mode_serves_the_broken_file_as_broken() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = HtaccessCache::new(Validation::Watched, OnError::Apache);
        write(dir.path(), "Header set X-A 1\n");
        assert!(matches!(cache.get(dir.path()), Htaccess::Ok(_)));
        write(dir.path(), "RewriteRule ^(unclosed\n");
        assert_eq!(
            cache.reload_dir(dir.path()),
            ReloadOutcome::Compiled { errors: 1 }
        );
        assert!(matches!(cache.get(dir.path()), Htaccess::Broken(_)));
    }

    #[test]
    fn every_request_mode_sees_an_edit_without_reload() {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cache = HtaccessCache::default();
        cache.set_recheck(Duration::ZERO);
        assert!(matches!(cache.get(dir.path()), Htaccess::None));
        write(dir.path(), "Header set X-A 1\n");
        assert!(matches!(cache.get(dir.path()), Htaccess::Ok(_)));
    }

    #[test]
    fn every_request_mode_looks_again_after_the_recheck_time() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = HtaccessCache::default();
        let d = dir.path().to_string_lossy().into_owned();
        let t0 = Instant::now();
        assert!(matches!(
            cache.lookup_within(&d, t0, false).expect("found").1,
            Htaccess::None
        ));
        write(dir.path(), "Header set X-A 1\n");
        assert!(matches!(
            cache.lookup_within(&d, t0, false).expect("found").1,
            Htaccess::None
        ));
        assert!(matches!(
            cache
                .lookup_within(&d, t0 + RECHECK, false)
                .expect("found")
                .1,
            Htaccess::Ok(_)
        ));
    }

    #[test]
    fn merged_settings_are_shared_until_the_file_or_the_parent_changes() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = HtaccessCache::new(Validation::Watched, OnError::Apache);
        write(dir.path(), "Options -Indexes\n");
        let d = dir.path().to_string_lossy().into_owned();
        let (entry, h) = cache
            .lookup_within(&d, Instant::now(), false)
            .expect("found");
        let Htaccess::Ok(c) = h else {
            panic!("compiles")
        };
        let parent = Arc::new(Merged::server_default(true));
        let mut builds = 0;
        let mut merge = |p: &Arc<Merged>, c: &Arc<Compiled>| {
            entry.merged_on(p, c, || {
                builds += 1;
                p.merge(&c.config, "/x/")
            })
        };
        let a = merge(&parent, &c);
        let b = merge(&parent, &c);
        assert!(Arc::ptr_eq(&a, &b));
        let other = Arc::new(Merged::server_default(false));
        let _ = merge(&other, &c);
        write(dir.path(), "Options +Indexes\n");
        cache.reload_dir(dir.path());
        let Htaccess::Ok(c2) = cache
            .lookup_within(&d, Instant::now(), false)
            .expect("found")
            .1
        else {
            panic!("compiles")
        };
        let _ = merge(&other, &c2);
        assert_eq!(builds, 3);
    }
}

/// What changed, as the server cares about it. Paths are as watched (not
/// canonicalized unless the watched path was).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Change {
    /// The `.htaccess` file of this directory was written, created,
    /// replaced (rename over), or removed.
    Htaccess(PathBuf),
    /// A directory appeared, vanished or was renamed (its old and new names
    /// each reported): everything cached under it must be re-checked.
    Tree(PathBuf),
    /// A watched single file (certificate, key, htgate.toml) changed / was
    /// replaced / removed; or an entry of a watched folder changed (the
    /// entry's path), or a watched folder itself came or went (its path).
    File(PathBuf),
    /// A watched root itself changed identity (a symlinked root was
    /// re-pointed, or the root was replaced, removed, or appeared).
    Root(PathBuf),
    /// Events may have been lost (queue overflow, watch limit, error), or a
    /// polling period passed: re-check everything.
    Rescan,
}

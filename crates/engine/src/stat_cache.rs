//! stat() results for the request path: shared within a request, and
//! cached briefly across requests.
//!
//! Apache stats every component of the path on every request (and
//! mod_rewrite's `-f`/`-d` stat the same file again).  htgate asks
//! [`StatCache`] instead, with one `lstat` per path (a second `stat` only
//! for a symbolic link), and:
//!
//! - within one request, a path is stat'ed once ([`Main::stat_path`]
//!   remembers the last results, so `-f` and `-d` on `%{REQUEST_FILENAME}`
//!   reuse the directory walk's answer);
//! - across requests, what [`StatPolicy`] allows is kept for its time to
//!   live: directories for 1 s by default, so a request for a deep path
//!   costs one `lstat` (its last component) instead of one per level.
//!   Regular files and missing paths are not kept by default: a file that
//!   one request writes (an upload, a generated thumbnail that the next
//!   request is redirected to) must be found by the next request, as in
//!   Apache.  The watcher drops what it knows changed
//!   ([`StatCache::invalidate_under`], from `hosting::reload`), so a
//!   renamed or removed folder is seen at once in config mode; quick mode
//!   has no watcher and sees it within the time to live.

use super::request::{FileKind, Main};
use std::collections::HashMap;
use std::fs::Metadata;
use std::path::Path;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

/// What one path is, as `lstat` (and `stat` for a link) found it.
#[derive(Debug, Clone)]
pub struct PathStat {
    /// What the path names, symbolic links followed (`stat`).
    pub kind: FileKind,
    /// `stat`'s answer (`None` when it failed).
    pub meta: Option<Arc<Metadata>>,
    /// `lstat`'s answer when the path itself is a symbolic link.
    pub link: Option<Arc<Metadata>>,
    /// Why `stat` failed (errno; `EINVAL` when the error had none).
    pub errno: Option<i32>,
}

const EINVAL: i32 = 22;
const ENOENT: i32 = 2;

fn kind_of(m: &Metadata) -> FileKind {
    if m.is_file() {
        FileKind::File
    } else if m.is_dir() {
        FileKind::Dir
    } else {
        FileKind::Other
    }
}

impl PathStat {
    /// What a path that does not exist gives (ENOENT).
    pub fn missing() -> PathStat {
        PathStat {
            kind: FileKind::Missing,
            meta: None,
            link: None,
            errno: Some(ENOENT),
        }
    }

    /// Asks the filesystem: `lstat`, and `stat` only when the path is a
    /// symbolic link (for anything else both give the same answer).
    pub fn read(path: &str) -> PathStat {
        let failed = |e: std::io::Error, link| PathStat {
            kind: FileKind::Missing,
            meta: None,
            link,
            errno: Some(e.raw_os_error().unwrap_or(EINVAL)),
        };
        match std::fs::symlink_metadata(path) {
            Ok(lm) if lm.file_type().is_symlink() => {
                let link = Some(Arc::new(lm));
                match std::fs::metadata(path) {
                    Ok(m) => PathStat {
                        kind: kind_of(&m),
                        meta: Some(Arc::new(m)),
                        link,
                        errno: None,
                    },
                    Err(e) => failed(e, link),
                }
            }
            Ok(m) => PathStat {
                kind: kind_of(&m),
                meta: Some(Arc::new(m)),
                link: None,
                errno: None,
            },
            Err(e) => failed(e, None),
        }
    }

    pub fn is_symlink(&self) -> bool {
        self.link.is_some()
    }
}

/// How long results are kept across requests, by what was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatPolicy {
    pub dirs: Duration,
    /// Regular files and anything else that exists.
    pub files: Duration,
    pub missing: Duration,
    /// More entries than this and the cache starts over (a bound on
    /// memory, whatever paths requests name).
    pub max_entries: usize,
}

impl Default for StatPolicy {
    fn default() -> StatPolicy {
        StatPolicy {
            dirs: Duration::from_secs(1),
            files: Duration::ZERO,
            missing: Duration::ZERO,
            max_entries: 100_000,
        }
    }
}

impl StatPolicy {
    /// Nothing is kept across requests (Apache's behaviour).
    pub fn off() -> StatPolicy {
        StatPolicy {
            dirs: Duration::ZERO,
            ..StatPolicy::default()
        }
    }

    /// Everything is kept for an hour: for benches that measure the engine
    /// without the filesystem.
    pub fn forever() -> StatPolicy {
        let hour = Duration::from_secs(3600);
        StatPolicy {
            dirs: hour,
            files: hour,
            missing: hour,
            max_entries: 100_000,
        }
    }

    fn ttl(&self, kind: FileKind) -> Duration {
        match kind {
            FileKind::Dir => self.dirs,
            FileKind::File | FileKind::Other => self.files,
            FileKind::Missing => self.missing,
        }
    }

    fn keeps_anything(&self) -> bool {
        !(self.dirs.is_zero() && self.files.is_zero() && self.missing.is_zero())
    }
}

struct Cached {
    at: Instant,
    stat: PathStat,
}

/// A fast hasher for path keys (rustc's `FxHasher`).  SipHash's
/// protection against chosen collisions is not needed here: the keys are
/// paths that exist on disk (directories, by default), not arbitrary
/// request text, and the maps are bounded.
#[derive(Default, Clone, Copy)]
pub(crate) struct FxHasher(u64);

impl FxHasher {
    #[inline]
    fn add(&mut self, word: u64) {
        self.0 = (self.0.rotate_left(5) ^ word).wrapping_mul(0x517c_c1b7_2722_0a95);
    }
}

impl std::hash::Hasher for FxHasher {
    #[inline]
    fn write(&mut self, bytes: &[u8]) {
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            self.add(u64::from_le_bytes(w));
        }
        let rest = chunks.remainder();
        if !rest.is_empty() {
            let mut w = [0u8; 8];
            w[..rest.len()].copy_from_slice(rest);
            self.add(u64::from_le_bytes(w) ^ ((rest.len() as u64) << 56));
        }
    }

    #[inline]
    fn write_u8(&mut self, i: u8) {
        self.add(u64::from(i));
    }

    #[inline]
    fn write_usize(&mut self, i: usize) {
        self.add(i as u64);
    }

    #[inline]
    fn finish(&self) -> u64 {
        self.0
    }
}

/// [`FxHasher`]'s builder, for `HashMap`s keyed by paths.
pub(crate) type FxBuild = std::hash::BuildHasherDefault<FxHasher>;

/// One site's stat results shared by its requests.
pub struct StatCache {
    policy: StatPolicy,
    map: RwLock<HashMap<Box<str>, Cached, FxBuild>>,
}

impl Default for StatCache {
    fn default() -> StatCache {
        StatCache::new(StatPolicy::default())
    }
}

impl StatCache {
    pub fn new(policy: StatPolicy) -> StatCache {
        StatCache {
            policy,
            map: RwLock::new(HashMap::default()),
        }
    }

    pub fn policy(&self) -> StatPolicy {
        self.policy
    }

    /// `path`'s stat at `now`; the flag says whether the answer is kept
    /// across requests (then a request need not remember it itself).
    pub fn stat(&self, path: &str, now: Instant) -> (PathStat, bool) {
        if !self.policy.keeps_anything() {
            return (PathStat::read(path), false);
        }
        let mut stale = false;
        if let Ok(map) = self.map.read() {
            if let Some(c) = map.get(path) {
                if now.saturating_duration_since(c.at) < self.policy.ttl(c.stat.kind) {
                    return (c.stat.clone(), true);
                }
                stale = true;
            }
        }
        let stat = PathStat::read(path);
        if self.policy.ttl(stat.kind).is_zero() {
            if stale {
                if let Ok(mut map) = self.map.write() {
                    map.remove(path);
                }
            }
            return (stat, false);
        }
        if let Ok(mut map) = self.map.write() {
            if map.len() >= self.policy.max_entries {
                map.clear();
            }
            map.insert(
                path.into(),
                Cached {
                    at: now,
                    stat: stat.clone(),
                },
            );
        }
        (stat, true)
    }

    /// Forgets `prefix` and everything under it (the watcher saw a folder
    /// created, renamed or removed there).
    pub(crate) fn invalidate_under(&self, prefix: &Path) {
        if let Ok(mut map) = self.map.write() {
            map.retain(|k, _| !Path::new(&**k).starts_with(prefix));
        }
    }

    /// Forgets everything (a document root was replaced, or a periodic
    /// re-check).
    pub fn clear(&self) {
        if let Ok(mut map) = self.map.write() {
            map.clear();
        }
    }

    pub fn len(&self) -> usize {
        self.map.read().map(|m| m.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// How many stat results one request remembers (a request touches a few
/// paths: the walk's last component, the `-f`/`-d` subjects, index files).
const REQUEST_MEMO: usize = 16;

/// What one request has seen of the disk, for its internal redirects and
/// sub-requests: stat results not kept by the site's cache, and the time
/// the request started (one clock read for every cache check).
#[derive(Default)]
pub struct RequestStats {
    now: Option<Instant>,
    seen: Vec<(Box<str>, PathStat)>,
}

impl RequestStats {
    pub fn now(&mut self) -> Instant {
        *self.now.get_or_insert_with(Instant::now)
    }
}

impl Main<'_> {
    /// stat of `path` for a file test of the site's rules (`-f`, `-d`,
    /// `-s`, `-l`, `-x`, `filesize()`, `-e`…).  SECURITY: a hosted site's
    /// tests see only its own folders (`SiteLimits::confine`), and a
    /// symbolic link only when it points to a file of the link's owner;
    /// anything else is "does not exist", so one customer cannot probe
    /// another's files.  Unconfined (quick mode): Apache's answer.
    #[inline]
    pub fn test_path(&mut self, path: &str) -> PathStat {
        if self.site.limits.confine.is_none() {
            return self.stat_path(path);
        }
        self.confined_test_path(path)
    }

    fn confined_test_path(&mut self, path: &str) -> PathStat {
        if !self.site.limits.may_look_at(path) {
            return PathStat::missing();
        }
        let st = self.stat_path(path);
        use std::os::unix::fs::MetadataExt;
        match (&st.link, &st.meta) {
            (Some(link), Some(target)) if link.uid() != target.uid() => PathStat::missing(),
            _ => st,
        }
    }

    /// stat of `path` for this request: what the request already saw,
    /// else the site's cache, else the filesystem.
    pub(crate) fn stat_path(&mut self, path: &str) -> PathStat {
        let memo = &mut self.htaccess_seen.stats;
        if let Some((_, s)) = memo.seen.iter().find(|(p, _)| &**p == path) {
            return s.clone();
        }
        let now = memo.now();
        let (stat, shared) = self.site.stats.stat(path, now);
        let memo = &mut self.htaccess_seen.stats;
        if !shared && memo.seen.len() < REQUEST_MEMO {
            memo.seen.push((path.into(), stat.clone()));
        }
        stat
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_lstat_for_plain_paths_and_links_followed() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).expect("mkdir");
        std::fs::write(d.join("f.txt"), "x").expect("write");
        std::os::unix::fs::symlink(d.join("sub"), d.join("link")).expect("symlink");
        std::os::unix::fs::symlink(d.join("nowhere"), d.join("dangling")).expect("symlink");
        let p = |rel: &str| d.join(rel).display().to_string();
        let s = PathStat::read(&p("f.txt"));
        assert_eq!(s.kind, FileKind::File);
        assert!(!s.is_symlink() && s.errno.is_none());
        let s = PathStat::read(&p("link"));
        assert_eq!(s.kind, FileKind::Dir);
        assert!(s.is_symlink());
        let s = PathStat::read(&p("dangling"));
        assert_eq!(s.kind, FileKind::Missing);
        assert!(s.is_symlink());
        assert_eq!(s.errno, Some(2));
        let s = PathStat::read(&p("f.txt/x"));
        assert_eq!((s.kind, s.errno), (FileKind::Missing, Some(20)));
    }

    #[test]
    fn default_policy_keeps_only_directories_and_forgets_on_invalidation() {
        let dir = tempfile::tempdir().expect("tempdir");
        let d = dir.path();
        std::fs::create_dir(d.join("sub")).expect("mkdir");
        let sub = d.join("sub").display().to_string();
        let file = d.join("f").display().to_string();
        let cache = StatCache::default();
        let now = Instant::now();
        assert!(cache.stat(&sub, now).1, "a directory is kept");
        assert!(!cache.stat(&file, now).1, "a missing path is not");
        std::fs::write(d.join("f"), "x").expect("write");
        assert_eq!(cache.stat(&file, now).0.kind, FileKind::File);
        std::fs::remove_dir(d.join("sub")).expect("rmdir");
        // still the kept answer until the time to live is over...
        assert_eq!(cache.stat(&sub, now).0.kind, FileKind::Dir);
        assert_eq!(
            cache.stat(&sub, now + Duration::from_secs(2)).0.kind,
            FileKind::Missing
        );
        // ...or the watcher says the folder changed
        std::fs::create_dir(d.join("sub")).expect("mkdir");
        assert!(cache.stat(&sub, now).1);
        std::fs::remove_dir(d.join("sub")).expect("rmdir");
        cache.invalidate_under(d);
        assert_eq!(cache.stat(&sub, now).0.kind, FileKind::Missing);
        assert!(cache.is_empty());
    }

    #[test]
    fn off_keeps_nothing() {
        let dir = tempfile::tempdir().expect("tempdir");
        let cache = StatCache::new(StatPolicy::off());
        let p = dir.path().display().to_string();
        assert!(!cache.stat(&p, Instant::now()).1);
        assert!(cache.is_empty());
    }
}

//! Where a response's bytes come from: small files read whole and kept in
//! memory by identity ([`ContentCache`]), larger or unsettled ones
//! streamed from the file.

use super::{system_time_us, USEC};
use bytes::Bytes;
use std::path::Path;
use std::sync::OnceLock;
use std::time::SystemTime;

/// Files up to this size are read whole and may be kept in memory.
pub(crate) const SMALL_FILE: u64 = 256 * 1024;
/// Memory for kept files, all sites together.
const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Files kept at most (bounds the map for many tiny files).
const CACHE_ENTRIES: usize = 32 * 1024;
/// How old a file's timestamps must be before its content is kept.
pub(crate) const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);

/// What identifies one version of a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Identity {
    pub(super) dev: u64,
    pub(super) ino: u64,
    pub(super) size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    pub(super) fn of(m: &std::fs::Metadata) -> Identity {
        use std::os::unix::fs::MetadataExt;
        Identity {
            dev: m.dev(),
            ino: m.ino(),
            size: m.size(),
            mtime: (m.mtime(), m.mtime_nsec()),
            ctime: (m.ctime(), m.ctime_nsec()),
        }
    }

    /// Both timestamps at least [`SETTLED`] before `now` (unix seconds
    /// and nanoseconds).
    pub(super) fn settled(&self, now: SystemTime) -> bool {
        let now = system_time_us(now) / USEC;
        let limit = now - SETTLED.as_secs() as i64;
        self.mtime.0 < limit && self.ctime.0 < limit
    }
}

/// Small files' contents by path, each valid for one [`Identity`].
pub(crate) struct ContentCache {
    map: std::sync::RwLock<std::collections::HashMap<std::path::PathBuf, (Identity, Bytes)>>,
    bytes: std::sync::atomic::AtomicUsize,
}

impl ContentCache {
    fn new() -> ContentCache {
        ContentCache {
            map: std::sync::RwLock::new(std::collections::HashMap::new()),
            bytes: std::sync::atomic::AtomicUsize::new(0),
        }
    }

    /// The process-wide cache.
    pub(super) fn global() -> &'static ContentCache {
        static CACHE: OnceLock<ContentCache> = OnceLock::new();
        CACHE.get_or_init(ContentCache::new)
    }

    pub(super) fn get(&self, path: &Path, id: &Identity) -> Option<Bytes> {
        let map = self.map.read().ok()?;
        match map.get(path) {
            Some((kept, data)) if kept == id => Some(data.clone()),
            _ => None,
        }
    }

    pub(super) fn insert(&self, path: &Path, id: Identity, data: Bytes) {
        use std::sync::atomic::Ordering::Relaxed;
        let Ok(mut map) = self.map.write() else {
            return;
        };
        let len = data.len();
        if let Some((_, old)) = map.insert(path.to_path_buf(), (id, data)) {
            self.bytes.fetch_sub(old.len(), Relaxed);
        }
        self.bytes.fetch_add(len, Relaxed);
        // Over budget: drop entries (in the map's arbitrary order) until
        // within it again.
        while self.bytes.load(Relaxed) > CACHE_BYTES || map.len() > CACHE_ENTRIES {
            let Some(victim) = map.keys().find(|k| k.as_path() != path).cloned() else {
                break;
            };
            if let Some((_, old)) = map.remove(&victim) {
                self.bytes.fetch_sub(old.len(), Relaxed);
            }
        }
    }
}

/// Where a body's bytes come from.
pub(super) enum Source {
    Memory(Bytes),
    /// A file opened when its body is first polled (see
    /// [`FileBody`](super::body::FileBody)).
    File(std::path::PathBuf, Identity),
}

/// Opens `path`, which the caller stat'ed as `meta`: from memory when the
/// kept copy has that identity; a small settled file is read whole (one
/// trip to the blocking pool) and kept; a larger or unsettled one, or one
/// that changed since `meta`, is streamed by a body that opens it again when
/// polled (here it is opened and closed only to learn whether it can be:
/// Apache answers 403 when it cannot).
pub(super) async fn open_source(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<Source> {
    let id = Identity::of(meta);
    let cache = ContentCache::global();
    if id.size <= SMALL_FILE {
        if let Some(data) = cache.get(path, &id) {
            return Ok(Source::Memory(data));
        }
    }
    // A small file still being written (not settled) is streamed like a
    // large one: read whole here, it would sit in memory for every
    // request, whether or not the client ever takes it.
    if id.size <= SMALL_FILE && id.settled(SystemTime::now()) {
        let owned = path.to_path_buf();
        let read = tokio::task::spawn_blocking(move || read_small(&owned, &id))
            .await
            .map_err(std::io::Error::other)??;
        if let Some((data, keep)) = read {
            if keep {
                cache.insert(path, id, data.clone());
            }
            return Ok(Source::Memory(data));
        }
    }
    // Opened and closed on the blocking thread: a descriptor handed back
    // to this task would stay open until the task runs again, which under
    // a burst of requests is long enough to pile thousands of them up.
    let owned = path.to_path_buf();
    tokio::task::spawn_blocking(move || std::fs::File::open(&owned).map(drop))
        .await
        .map_err(std::io::Error::other)??;
    Ok(Source::File(path.to_path_buf(), id))
}

/// Reads a whole small file if it still has identity `id` (before and
/// after the read); the flag says whether it may be kept.  `None`: it
/// changed (the caller streams it, as for a large file).
fn read_small(path: &Path, id: &Identity) -> std::io::Result<Option<(Bytes, bool)>> {
    use std::io::Read;
    let mut f = std::fs::File::open(path)?;
    if Identity::of(&f.metadata()?) != *id {
        return Ok(None);
    }
    let mut buf = Vec::with_capacity(usize::try_from(id.size).unwrap_or(0));
    (&mut f)
        .take(id.size.saturating_add(1))
        .read_to_end(&mut buf)?;
    if buf.len() as u64 != id.size || Identity::of(&f.metadata()?) != *id {
        return Ok(None);
    }
    Ok(Some((Bytes::from(buf), id.settled(SystemTime::now()))))
}

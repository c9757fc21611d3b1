//! Rendered directory listings, kept briefly by directory identity.
//!
//! A listing costs a sub-request per entry (Apache's
//! `ap_sub_req_lookup_dirent`), so it is built on the blocking pool; the
//! page is then kept, keyed by the folder's identity (inode, modification
//! time: an entry added, removed or renamed changes it), the request's
//! query (sort order, pattern), its configuration and its user, for
//! [`TTL`], so a listing hammered by clients is built once per interval
//! and answered inline.  What can be stale for at most [`TTL`]: the size
//! and date of a file changed in place; an entry added or removed shows
//! once the folder's own stat is taken again (the stat cache keeps
//! folders for 1 s).

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime};

/// How long a rendered listing is kept.
pub(crate) const TTL: Duration = Duration::from_secs(2);
/// Bytes of listings kept at most (all sites).
const MAX_BYTES: usize = 32 * 1024 * 1024;
/// A bigger page is not kept.
const MAX_PAGE: usize = 4 * 1024 * 1024;

/// What a listing depends on.
#[derive(Clone, PartialEq, Eq, Hash)]
pub(crate) struct Key {
    pub dir: String,
    pub ino: u64,
    pub mtime: Option<SystemTime>,
    pub query: Option<String>,
    /// The address of the request's merged configuration (shared
    /// `Arc`s: the same folder and `.htaccess` versions give the same one).
    pub conf: usize,
    pub user: Option<String>,
}

struct Cache {
    pages: HashMap<Key, (Instant, bytes::Bytes)>,
    bytes: usize,
}

fn cache() -> &'static Mutex<Cache> {
    static C: OnceLock<Mutex<Cache>> = OnceLock::new();
    C.get_or_init(|| {
        Mutex::new(Cache {
            pages: HashMap::new(),
            bytes: 0,
        })
    })
}

/// The page kept for `key`, if still fresh.
pub(crate) fn get(key: &Key) -> Option<bytes::Bytes> {
    let c = cache().lock().ok()?;
    c.pages
        .get(key)
        .filter(|(at, _)| at.elapsed() < TTL)
        .map(|(_, page)| page.clone())
}

/// Keeps `page` for `key`.
pub(crate) fn put(key: Key, page: bytes::Bytes) {
    if page.len() > MAX_PAGE {
        return;
    }
    let Ok(mut c) = cache().lock() else {
        return;
    };
    if c.bytes + page.len() > MAX_BYTES {
        c.pages.retain(|_, (at, _)| at.elapsed() < TTL);
        c.bytes = c.pages.values().map(|(_, p)| p.len()).sum();
        if c.bytes + page.len() > MAX_BYTES {
            c.pages.clear();
            c.bytes = 0;
        }
    }
    c.bytes += page.len();
    if let Some((_, old)) = c.pages.insert(key, (Instant::now(), page)) {
        c.bytes -= old.len();
    }
}

//! Static file responses as Apache 2.4's default handler gives them:
//! `ETag` (`FileETag MTime Size`), `Last-Modified`, `Accept-Ranges`,
//! conditional requests (`ap_meets_conditions`), byte ranges
//! (`modules/http/byterange_filter.c`) and a streamed body.
//!
//! The decisions are plain functions over strings and numbers
//! ([`make_etag`], [`evaluate_preconditions`], [`if_range_matches`],
//! [`parse_ranges`], [`multipart_layout`]); [`serve_file`] only gathers
//! their inputs, opens the file and builds the response.
//!
//! Small files (up to [`SMALL_FILE`]) are read whole in one trip to the
//! blocking pool (instead of one each for the open, the seek and every
//! read) and kept in memory ([`ContentCache`]) by path and identity: a
//! request whose stat (made by the engine for this very request) shows
//! the same device, inode, size, mtime and ctime is answered from memory
//! without a system call.  Any write, replacement, truncation or `chmod`
//! changes that identity.  A file is kept only once its timestamps are
//! older than [`SETTLED`], so that a filesystem with coarse timestamps
//! cannot hide a second write within the same tick.

use super::status_page::{error_body, ERROR_CONTENT_TYPE};
use super::{empty_body, full_body, Body};
use bytes::Bytes;
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use std::collections::VecDeque;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};
use std::time::{SystemTime, UNIX_EPOCH};

/// What to send: a regular file the caller has already found and stat'ed.
pub struct FileToServe<'a> {
    pub path: &'a Path,
    pub meta: &'a std::fs::Metadata,
    /// `None` → no Content-Type header at all (Apache with no known type).
    pub content_type: Option<&'a str>,
    /// Normally 200; Apache can serve a file with another status
    /// (an `ErrorDocument` file, for instance).
    pub status: StatusCode,
}

/// Bytes read from the file per body chunk, at most.
const CHUNK: usize = 64 * 1024;
/// The first chunk of a streamed body: small, since a client that does not
/// take the response (an HTTP/2 stream whose window stays shut) leaves it
/// buffered; the chunks then double up to [`CHUNK`].
const FIRST_CHUNK: usize = 16 * 1024;
/// Files up to this size are read whole and may be kept in memory.
pub const SMALL_FILE: u64 = 256 * 1024;
/// Memory for kept files, all sites together.
const CACHE_BYTES: usize = 64 * 1024 * 1024;
/// Files kept at most (bounds the map for many tiny files).
const CACHE_ENTRIES: usize = 32 * 1024;
/// How old a file's timestamps must be before its content is kept.
pub const SETTLED: std::time::Duration = std::time::Duration::from_secs(2);
/// Apache's defaults for `MaxRanges`, `MaxRangeOverlaps`,
/// `MaxRangeReversals`: past them the whole file is sent.
const MAX_RANGES: usize = 200;
const MAX_OVERLAPS: u32 = 20;
const MAX_REVERSALS: u32 = 20;
/// The byterange filter hands its output down every 32 ranges, after which
/// the response has no Content-Length (it is chunked).
const RANGES_WITH_LENGTH: usize = 32;
const USEC: i64 = 1_000_000;

// ---------------------------------------------------------------------------
// Time

/// Microseconds since the epoch (negative before it), saturating.
pub fn system_time_us(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros())
            .map(|us| -us)
            .unwrap_or(i64::MIN),
    }
}

// ---------------------------------------------------------------------------
// Validators and preconditions

/// Apache 2.4's default entity tag (`FileETag MTime Size`):
/// `"<size hex>-<mtime in microseconds hex>"`, weak (`W/`) unless the file
/// was last modified more than a second before `now_us`.
pub fn make_etag(size: u64, mtime_us: i64, now_us: i64) -> String {
    let weak = if now_us.saturating_sub(mtime_us) > USEC {
        ""
    } else {
        "W/"
    };
    // Apache prints both as unsigned long.
    format!("{weak}\"{size:x}-{:x}\"", mtime_us as u64)
}

/// What the response's validators are, for the precondition checks.
#[derive(Debug, Clone, Copy)]
pub struct Validators<'a> {
    /// The ETag header value sent (possibly weak).
    pub etag: &'a str,
    /// Last-Modified, in seconds since the epoch.
    pub mtime: i64,
    /// The request time, in seconds since the epoch.
    pub now: i64,
}

/// The request's conditional headers (each the comma-joined value of all
/// its fields, as Apache keeps them).
#[derive(Debug, Clone, Copy, Default)]
pub struct Conditions<'a> {
    pub if_match: Option<&'a str>,
    pub if_unmodified_since: Option<&'a str>,
    pub if_none_match: Option<&'a str>,
    pub if_modified_since: Option<&'a str>,
    pub if_range: Option<&'a str>,
    /// A `Range` header is present.
    pub has_range: bool,
    /// GET or HEAD (Apache's `M_GET`).
    pub get_or_head: bool,
}

/// The outcome of `ap_meets_conditions`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Precondition {
    /// Serve the entity (or the ranges of it).
    Proceed,
    /// 304 Not Modified.
    NotModified,
    /// 412 Precondition Failed.
    Failed,
}

/// Whether an entity tag `tok` is in the list `line` (Apache's
/// `find_list_item` for ETags).  Strong comparison fails on weak tags;
/// weak comparison ignores `W/`.  As in Apache, the scan stops at the
/// first list item that is not a tag of the kind looked for.
pub fn etag_in_list(line: &str, tok: &str, strong: bool) -> bool {
    let tok = if strong {
        if !tok.starts_with('"') {
            return false;
        }
        tok
    } else {
        match tok.strip_prefix("W/") {
            Some(t) if t.starts_with('"') => t,
            _ if tok.starts_with('"') => tok,
            _ => return false,
        }
    };
    let bytes = line.as_bytes();
    let mut pos = 0;
    loop {
        while pos < bytes.len() && (bytes[pos] == b',' || bytes[pos].is_ascii_whitespace()) {
            pos += 1;
        }
        if pos >= bytes.len() {
            return false;
        }
        let mut start = pos;
        if !strong && bytes[pos..].starts_with(b"W/\"") {
            start += 2;
        }
        if bytes[start] != b'"' {
            return false;
        }
        // The item runs to the next comma outside a quoted string.
        let mut end = start + 1;
        let mut in_quotes = true;
        while end < bytes.len() {
            match bytes[end] {
                b'\\' if in_quotes => end += 1,
                b'"' => in_quotes = !in_quotes,
                b',' if !in_quotes => break,
                _ => {}
            }
            end += 1;
        }
        let end = end.min(bytes.len());
        if line[start..end].trim_end() == tok {
            return true;
        }
        pos = end;
    }
}

/// Apache's `ap_condition_if_range`: does `If-Range` let the ranges
/// through?  An entity tag must equal the ETag sent exactly (so a weak one
/// never does); a date must equal Last-Modified and be at least a minute
/// older than the request.
pub fn if_range_matches(if_range: &str, v: &Validators<'_>) -> bool {
    if if_range.starts_with('"') {
        if_range == v.etag
    } else {
        let rtime = htgate_util::date::parse_http_date(if_range).unwrap_or(0);
        rtime == v.mtime && v.now >= v.mtime + 60
    }
}

/// Apache's `ap_meets_conditions` for a 2xx response, with its rules:
/// If-Match (strong) → 412; If-Unmodified-Since → 412; If-None-Match
/// (weak for GET/HEAD without Range, else strong) → 304 for GET/HEAD, else
/// 412; If-Modified-Since → 304 for GET/HEAD.  A 304 needs every present
/// 304-condition to agree (a passed If-Unmodified-Since or a failing
/// If-Modified-Since turns it off, as in Apache), and If-Range with Range
/// always proceeds.  Date matches within a minute of the modification are
/// weak and do not count with Range.
pub fn evaluate_preconditions(c: &Conditions<'_>, v: &Validators<'_>) -> Precondition {
    let mut not_modified: i8 = -1;
    // A date-based match is only weak within 60 s of the modification.
    let weak_date = v.now < v.mtime + 60;

    if let Some(if_match) = c.if_match {
        if !(if_match.starts_with('*') || etag_in_list(if_match, v.etag, true)) {
            return Precondition::Failed;
        }
    }

    if let Some(ius) = c.if_unmodified_since {
        let ius = htgate_util::date::parse_http_date(ius).unwrap_or(0);
        let modified = ius != 0 && v.mtime > ius;
        if modified && !(weak_date && c.has_range) {
            return Precondition::Failed;
        }
        not_modified = 0;
    }

    if let Some(inm) = c.if_none_match {
        let matched = if inm.starts_with('*') {
            true
        } else if c.get_or_head {
            etag_in_list(inm, v.etag, c.has_range)
        } else {
            etag_in_list(inm, v.etag, true)
        };
        if !matched {
            not_modified = 0;
        } else if c.get_or_head {
            if not_modified != 0 {
                not_modified = 1;
            }
        } else {
            return Precondition::Failed;
        }
    }

    if let Some(ims) = c.if_modified_since {
        let ims = htgate_util::date::parse_http_date(ims).unwrap_or(0);
        let matched = ims >= v.mtime && ims <= v.now && !(weak_date && c.has_range);
        if !matched {
            not_modified = 0;
        } else if c.get_or_head && not_modified != 0 {
            not_modified = 1;
        }
    }

    if c.if_range.is_some() && c.has_range {
        return Precondition::Proceed;
    }
    if not_modified == 1 {
        Precondition::NotModified
    } else {
        Precondition::Proceed
    }
}

// ---------------------------------------------------------------------------
// Ranges

/// The result of reading a Range header against a file length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RangeDecision {
    /// No usable Range: send the whole entity with its status.
    Full,
    /// 206 with these inclusive `(first, last)` byte ranges, in the order
    /// Apache sends them (adjacent and overlapping ones merged).
    Partial(Vec<(u64, u64)>),
    /// 416: no range overlaps the file.
    Unsatisfiable,
}

/// `strtol(s, &end, 10)` as `apr_strtoff` does it, requiring `end` to be
/// the end of the string: leading white space and a sign are allowed, an
/// empty string is 0, overflow is an error.
fn strtoff(s: &str) -> Option<i64> {
    let t = s.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let (neg, digits) = match t.as_bytes().first() {
        Some(b'-') => (true, &t[1..]),
        Some(b'+') => (false, &t[1..]),
        _ => (false, t),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        // With no digits strtol leaves `end` at the start of the string,
        // which is only the end for an empty string.
        return if s.is_empty() { Some(0) } else { None };
    }
    let mut n: i64 = 0;
    for b in digits.bytes() {
        n = n.checked_mul(10)?.checked_add(i64::from(b - b'0'))?;
    }
    Some(if neg { -n } else { n })
}

/// Parses the part of a Range header after `bytes=` against a length
/// `clength > 0`, as Apache 2.4's `ap_set_byterange` does, and applies the
/// default MaxRanges/MaxRangeOverlaps/MaxRangeReversals limits.  Ranges are
/// not sorted; each is merged into the previous one when they overlap or
/// touch.  A syntactically bad range makes the whole header ignored, as
/// does a set of ranges longer in total than the file.
pub fn parse_ranges(spec: &str, clength: u64) -> RangeDecision {
    let Ok(clength) = i64::try_from(clength) else {
        return RangeDecision::Full;
    };
    if clength <= 0 {
        return RangeDecision::Full;
    }
    let mut merged: Vec<(i64, i64)> = Vec::new();
    let mut unsatisfiable = false;
    let (mut ostart, mut oend, mut sum_lengths) = (0i64, 0i64, 0i64);
    let mut in_merge = false;
    let (mut overlaps, mut reversals) = (0u32, 0u32);

    // ap_getword(',') : a word, then every following comma is skipped.
    let mut rest = spec;
    loop {
        let (cur, after) = match rest.find(',') {
            Some(i) => (&rest[..i], rest[i..].trim_start_matches(',')),
            None => (rest, ""),
        };
        rest = after;
        if cur.is_empty() {
            break;
        }
        let Some(dash) = cur.find('-') else {
            return RangeDecision::Full;
        };
        let (mut start, mut end);
        if dash == 0 {
            // "-N": the last N bytes.
            let Some(number) = strtoff(&cur[1..]) else {
                return RangeDecision::Full;
            };
            if number < 1 {
                return RangeDecision::Full;
            }
            start = clength.saturating_sub(number);
            end = clength - 1;
        } else {
            let Some(number) = strtoff(&cur[..dash]) else {
                return RangeDecision::Full;
            };
            start = number;
            let tail = &cur[dash + 1..];
            if !tail.is_empty() {
                let Some(number) = strtoff(tail) else {
                    return RangeDecision::Full;
                };
                end = number;
                if start > end {
                    return RangeDecision::Full;
                }
            } else {
                end = clength - 1;
                // "0-" means the whole file as one range, whatever else
                // was asked for.
                if start == 0 {
                    merged.clear();
                    sum_lengths = 0;
                    in_merge = true;
                    ostart = 0;
                    oend = end;
                    break;
                }
            }
        }
        if start < 0 {
            start = 0;
        }
        if start >= clength {
            unsatisfiable = true;
            continue;
        }
        if end >= clength {
            end = clength - 1;
        }
        if !in_merge {
            ostart = start;
            oend = end;
            in_merge = true;
            continue;
        }
        in_merge = false;
        if start >= ostart && end <= oend {
            in_merge = true;
        }
        if start < ostart && end >= ostart - 1 {
            ostart = start;
            reversals += 1;
            in_merge = true;
        }
        if end >= oend && start <= oend + 1 {
            oend = end;
            in_merge = true;
        }
        if in_merge {
            overlaps += 1;
        } else {
            merged.push((ostart, oend));
            sum_lengths += oend - ostart + 1;
            in_merge = true;
            ostart = start;
            oend = end;
        }
    }
    if in_merge {
        merged.push((ostart, oend));
        sum_lengths += oend - ostart + 1;
    } else if merged.is_empty() && unsatisfiable {
        return RangeDecision::Unsatisfiable;
    }
    if sum_lengths > clength
        || merged.is_empty()
        || merged.len() > MAX_RANGES
        || overlaps > MAX_OVERLAPS
        || reversals > MAX_REVERSALS
    {
        return RangeDecision::Full;
    }
    // All values are within 0..clength here.
    RangeDecision::Partial(
        merged
            .into_iter()
            .map(|(s, e)| (s as u64, e as u64))
            .collect(),
    )
}

/// One piece of a response body: literal bytes or a byte range of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Chunk {
    Bytes(Bytes),
    File { start: u64, len: u64 },
}

/// The process-wide multipart boundary (`ap_multipart_boundary`: random
/// hex made once at start-up).
pub fn multipart_boundary() -> &'static str {
    static BOUNDARY: OnceLock<String> = OnceLock::new();
    BOUNDARY.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        // RandomState is seeded from the OS; hashing the clock on top
        // makes each process's boundary differ.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_i64(system_time_us(SystemTime::now()));
        h.write_u32(std::process::id());
        format!("{:x}", h.finish())
    })
}

/// The body of a multipart/byteranges response, exactly as Apache's
/// byterange filter writes it, and its total length.
pub fn multipart_layout(
    ranges: &[(u64, u64)],
    content_type: Option<&str>,
    clength: u64,
    boundary: &str,
) -> (Vec<Chunk>, u64) {
    let bound_head = match content_type {
        Some(ct) => format!("\r\n--{boundary}\r\nContent-type: {ct}\r\nContent-range: bytes "),
        None => format!("\r\n--{boundary}\r\nContent-range: bytes "),
    };
    let mut chunks = Vec::with_capacity(ranges.len() * 2 + 1);
    let mut total = 0u64;
    for &(start, end) in ranges {
        let head = format!("{bound_head}{start}-{end}/{clength}\r\n\r\n");
        total += head.len() as u64 + (end - start + 1);
        chunks.push(Chunk::Bytes(Bytes::from(head)));
        chunks.push(Chunk::File {
            start,
            len: end - start + 1,
        });
    }
    let tail = format!("\r\n--{boundary}--\r\n");
    total += tail.len() as u64;
    chunks.push(Chunk::Bytes(Bytes::from(tail)));
    (chunks, total)
}

// ---------------------------------------------------------------------------
// Small files in memory

/// What identifies one version of a file's content.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Identity {
    dev: u64,
    ino: u64,
    size: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl Identity {
    fn of(m: &std::fs::Metadata) -> Identity {
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
    fn settled(&self, now: SystemTime) -> bool {
        let now = system_time_us(now) / USEC;
        let limit = now - SETTLED.as_secs() as i64;
        self.mtime.0 < limit && self.ctime.0 < limit
    }
}

/// Small files' contents by path, each valid for one [`Identity`].
pub struct ContentCache {
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
    pub fn global() -> &'static ContentCache {
        static CACHE: OnceLock<ContentCache> = OnceLock::new();
        CACHE.get_or_init(ContentCache::new)
    }

    fn get(&self, path: &Path, id: &Identity) -> Option<Bytes> {
        let map = self.map.read().ok()?;
        match map.get(path) {
            Some((kept, data)) if kept == id => Some(data.clone()),
            _ => None,
        }
    }

    fn insert(&self, path: &Path, id: Identity, data: Bytes) {
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

    /// Bytes kept (for tests and the status page).
    pub fn kept_bytes(&self) -> usize {
        self.bytes.load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Where a body's bytes come from.
enum Source {
    Memory(Bytes),
    /// A file opened when its body is first polled (see [`FileBody`]).
    File(std::path::PathBuf, Identity),
}

/// Opens `path`, which the caller stat'ed as `meta`: from memory when the
/// kept copy has that identity; a small settled file is read whole (one
/// trip to the blocking pool) and kept; a larger or unsettled one, or one
/// that changed since `meta`, is streamed by a body that opens it again when
/// polled (here it is opened and closed only to learn whether it can be:
/// Apache answers 403 when it cannot).
async fn open_source(path: &Path, meta: &std::fs::Metadata) -> std::io::Result<Source> {
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

/// The body of `chunks` over content in memory.
fn memory_body(data: &Bytes, chunks: Vec<Chunk>) -> Body {
    let mut frames: Vec<Bytes> = Vec::with_capacity(chunks.len());
    for c in chunks {
        match c {
            Chunk::Bytes(b) => frames.push(b),
            Chunk::File { start, len } => {
                let start = usize::try_from(start).unwrap_or(usize::MAX).min(data.len());
                let end = start
                    .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
                    .min(data.len());
                frames.push(data.slice(start..end));
            }
        }
    }
    if frames.len() == 1 {
        if let Some(one) = frames.pop() {
            return full_body(one);
        }
    }
    let left: u64 = frames.iter().map(|b| b.len() as u64).sum();
    MemoryBody {
        frames: frames.into(),
        left,
    }
    .boxed()
}

/// Frames already in memory (multipart byte ranges of a small file).
struct MemoryBody {
    frames: VecDeque<Bytes>,
    left: u64,
}

impl http_body::Body for MemoryBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        match this.frames.pop_front() {
            Some(b) => {
                this.left = this.left.saturating_sub(b.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

// ---------------------------------------------------------------------------
// The streamed body

/// A body that sends literal chunks and file ranges.  The file is opened
/// lazily, when the body is first asked for bytes of it, so a response
/// built but not sending holds no descriptor (the listener asks a body
/// only once its client address has a place for it: `sending.rs`); it is
/// closed as soon as its last byte is read.  Reads
/// go to the blocking pool (`pread`, no seek state), [`FIRST_CHUNK`] bytes
/// first, then doubling up to [`CHUNK`].  A read error, a file that became
/// shorter, or a file replaced since its headers were made (another inode
/// or size: the `Content-Length` and `ETag` came from the earlier stat)
/// ends the body with an error (the connection then drops it).
struct FileBody {
    path: std::path::PathBuf,
    id: Identity,
    file: Option<Arc<std::fs::File>>,
    state: FileState,
    chunks: VecDeque<Chunk>,
    /// Offset and bytes left of the current file range.
    pos: u64,
    remaining: u64,
    /// Bytes still to send in total.
    left: u64,
    /// Size of the next read.
    next: usize,
}

enum FileState {
    /// Between reads (the file may or may not be open yet).
    Idle,
    Opening(tokio::task::JoinHandle<std::io::Result<std::fs::File>>),
    Reading(tokio::task::JoinHandle<std::io::Result<Vec<u8>>>),
    Done,
}

/// Opens `path` and checks it is still the file `id` was taken from.
fn open_same(path: &Path, id: &Identity) -> std::io::Result<std::fs::File> {
    let f = std::fs::File::open(path)?;
    let now = Identity::of(&f.metadata()?);
    if (now.dev, now.ino, now.size) != (id.dev, id.ino, id.size) {
        return Err(std::io::Error::other(
            "file replaced since its response headers were made",
        ));
    }
    Ok(f)
}

/// Reads up to `want` bytes at `pos`.
fn read_at(file: &std::fs::File, pos: u64, want: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; want];
    let n = loop {
        match file.read_at(&mut buf, pos) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    buf.truncate(n);
    Ok(buf)
}

impl FileBody {
    fn new(path: std::path::PathBuf, id: Identity, chunks: Vec<Chunk>) -> FileBody {
        let left = chunks
            .iter()
            .map(|c| match c {
                Chunk::Bytes(b) => b.len() as u64,
                Chunk::File { len, .. } => *len,
            })
            .sum();
        FileBody {
            path,
            id,
            file: None,
            state: FileState::Idle,
            chunks: chunks.into(),
            pos: 0,
            remaining: 0,
            left,
            next: FIRST_CHUNK,
        }
    }

    fn fail(&mut self, e: std::io::Error) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.state = FileState::Done;
        self.file = None;
        self.left = 0;
        Poll::Ready(Some(Err(e)))
    }
}

fn joined_err(e: tokio::task::JoinError) -> std::io::Error {
    std::io::Error::other(e)
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                FileState::Done => return Poll::Ready(None),
                FileState::Opening(task) => match Pin::new(task).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return this.fail(joined_err(e)),
                    Poll::Ready(Ok(Err(e))) => return this.fail(e),
                    Poll::Ready(Ok(Ok(f))) => {
                        this.file = Some(Arc::new(f));
                        this.state = FileState::Idle;
                    }
                },
                FileState::Reading(task) => match Pin::new(task).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return this.fail(joined_err(e)),
                    Poll::Ready(Ok(Err(e))) => return this.fail(e),
                    Poll::Ready(Ok(Ok(data))) => {
                        let n = data.len() as u64;
                        if n == 0 {
                            return this.fail(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "file shrank while being sent",
                            ));
                        }
                        this.pos += n;
                        this.remaining = this.remaining.saturating_sub(n);
                        this.left = this.left.saturating_sub(n);
                        this.next = this.next.saturating_mul(2).min(CHUNK);
                        this.state = FileState::Idle;
                        if this.remaining == 0
                            && !this.chunks.iter().any(|c| matches!(c, Chunk::File { .. }))
                        {
                            // The last byte of the file is read: close it
                            // now rather than when hyper drops the body.
                            this.file = None;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(data)))));
                    }
                },
                FileState::Idle if this.remaining == 0 => match this.chunks.pop_front() {
                    None => {
                        this.state = FileState::Done;
                        this.file = None;
                        return Poll::Ready(None);
                    }
                    Some(Chunk::Bytes(b)) => {
                        this.left = this.left.saturating_sub(b.len() as u64);
                        return Poll::Ready(Some(Ok(Frame::data(b))));
                    }
                    Some(Chunk::File { start, len }) => {
                        this.pos = start;
                        this.remaining = len;
                    }
                },
                FileState::Idle => match &this.file {
                    None => {
                        let path = this.path.clone();
                        let id = this.id;
                        this.state = FileState::Opening(tokio::task::spawn_blocking(move || {
                            open_same(&path, &id)
                        }));
                    }
                    Some(f) => {
                        let f = Arc::clone(f);
                        let pos = this.pos;
                        let want = usize::try_from(this.remaining)
                            .unwrap_or(usize::MAX)
                            .min(this.next);
                        this.state = FileState::Reading(tokio::task::spawn_blocking(move || {
                            read_at(&f, pos, want)
                        }));
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, FileState::Done)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

// ---------------------------------------------------------------------------
// The response

/// All values of a request header joined with ", " (Apache merges repeated
/// request headers that way), or `None` if absent.
fn joined(headers: &HeaderMap, name: &str) -> Option<String> {
    let mut out: Option<String> = None;
    for v in headers.get_all(name) {
        let s = String::from_utf8_lossy(v.as_bytes());
        match &mut out {
            None => out = Some(s.into_owned()),
            Some(o) => {
                o.push_str(", ");
                o.push_str(&s);
            }
        }
    }
    out
}

fn value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

/// The headers Apache keeps on a 304 (`ap_http_header_filter`).
const NOT_MODIFIED_KEEP: [&str; 12] = [
    "connection",
    "keep-alive",
    "etag",
    "content-location",
    "expires",
    "cache-control",
    "vary",
    "warning",
    "www-authenticate",
    "proxy-authenticate",
    "set-cookie",
    "set-cookie2",
];

fn response(status: StatusCode, headers: HeaderMap, body: Body) -> Response<Body> {
    let mut resp = Response::new(body);
    *resp.status_mut() = status;
    *resp.headers_mut() = headers;
    resp
}

/// An Apache error page (412, 416, 403) keeping the caller's headers.
fn error_page(status: StatusCode, method: &Method, mut headers: HeaderMap) -> Response<Body> {
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(ERROR_CONTENT_TYPE),
    );
    if *method == Method::HEAD {
        headers.remove(header::CONTENT_LENGTH);
        return response(status, headers, empty_body());
    }
    let body = error_body(status, None, method);
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
    response(status, headers, full_body(body))
}

/// Serves `file` as Apache's default handler would: validators, the
/// conditional request checks, byte ranges, then the body streamed from
/// the file (none for HEAD).  `headers` are response headers the caller
/// has already decided on; they are kept (on a 304 only those Apache keeps
/// on a 304).  A file that cannot be opened gives 403, as in Apache.
pub async fn serve_file(
    method: &Method,
    req_headers: &HeaderMap,
    file: FileToServe<'_>,
    headers: HeaderMap,
) -> Response<Body> {
    let mut headers = headers;
    let now_us = system_time_us(SystemTime::now());
    let size = file.meta.len();
    let mtime_us = file.meta.modified().map(system_time_us).unwrap_or(now_us);
    // Last-Modified never lies in the future (ap_rationalize_mtime).
    let lm_secs = mtime_us.min(now_us).div_euclid(USEC);
    let now_secs = now_us.div_euclid(USEC);
    let etag = make_etag(size, mtime_us, now_us);

    // Apache opens the file before looking at any condition.
    let source = match open_source(file.path, file.meta).await {
        Ok(s) => s,
        Err(e) => {
            tracing::debug!(path = %file.path.display(), error = %e, "cannot open file");
            return error_page(StatusCode::FORBIDDEN, method, headers);
        }
    };

    let get_or_head = *method == Method::GET || *method == Method::HEAD;
    let range_header = joined(req_headers, "range");
    let request_range = joined(req_headers, "request-range");
    let if_range = joined(req_headers, "if-range");
    let validators = Validators {
        etag: &etag,
        mtime: lm_secs,
        now: now_secs,
    };

    if file.status.is_success() {
        let if_match = joined(req_headers, "if-match");
        let ius = joined(req_headers, "if-unmodified-since");
        let inm = joined(req_headers, "if-none-match");
        let ims = joined(req_headers, "if-modified-since");
        let conds = Conditions {
            if_match: if_match.as_deref(),
            if_unmodified_since: ius.as_deref(),
            if_none_match: inm.as_deref(),
            if_modified_since: ims.as_deref(),
            if_range: if_range.as_deref(),
            has_range: range_header.is_some(),
            get_or_head,
        };
        match evaluate_preconditions(&conds, &validators) {
            Precondition::Proceed => {}
            Precondition::Failed => {
                return error_page(StatusCode::PRECONDITION_FAILED, method, headers);
            }
            Precondition::NotModified => {
                let mut kept = HeaderMap::new();
                for name in NOT_MODIFIED_KEEP {
                    for v in headers.get_all(name) {
                        kept.append(HeaderName::from_static(name), v.clone());
                    }
                }
                if let Some(v) = value(&etag) {
                    kept.insert(header::ETAG, v);
                }
                return response(StatusCode::NOT_MODIFIED, kept, empty_body());
            }
        }
    }

    if let Some(v) = value(&htgate_util::date::http_date(lm_secs)) {
        headers.insert(header::LAST_MODIFIED, v);
    }
    if let Some(v) = value(&etag) {
        headers.insert(header::ETAG, v);
    }
    headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
    // A Content-Type already in `headers` was set by mod_headers (`Header
    // set Content-Type …`), an output filter that runs after the type was
    // decided: it wins.
    if !headers.contains_key(header::CONTENT_TYPE) {
        if let Some(ct) = file.content_type.and_then(value) {
            headers.insert(header::CONTENT_TYPE, ct);
        }
    }

    // The byterange filter: only for 200, a "bytes=" Range (or the old
    // Request-Range), and an If-Range that matches.
    let decision = match range_header.as_deref().or(request_range.as_deref()) {
        Some(r)
            if file.status == StatusCode::OK
                && r.len() >= 6
                && r.as_bytes()[..6].eq_ignore_ascii_case(b"bytes=")
                && !if_range.as_deref().is_some_and(|ir| {
                    range_header.is_some() && !if_range_matches(ir, &validators)
                }) =>
        {
            parse_ranges(&r[6..], size)
        }
        _ => RangeDecision::Full,
    };

    let (status, chunks, length) = match decision {
        RangeDecision::Full => (
            file.status,
            vec![Chunk::File {
                start: 0,
                len: size,
            }],
            Some(size),
        ),
        RangeDecision::Unsatisfiable => {
            headers.remove(header::LAST_MODIFIED);
            headers.remove(header::ETAG);
            headers.remove(header::ACCEPT_RANGES);
            if let Some(v) = value(&format!("bytes */{size}")) {
                headers.insert(header::CONTENT_RANGE, v);
            }
            return error_page(StatusCode::RANGE_NOT_SATISFIABLE, method, headers);
        }
        RangeDecision::Partial(ranges) => match ranges.as_slice() {
            [(start, end)] => {
                if let Some(v) = value(&format!("bytes {start}-{end}/{size}")) {
                    headers.insert(header::CONTENT_RANGE, v);
                }
                let len = end - start + 1;
                (
                    StatusCode::PARTIAL_CONTENT,
                    vec![Chunk::File { start: *start, len }],
                    Some(len),
                )
            }
            _ => {
                let boundary = multipart_boundary();
                let (chunks, total) = multipart_layout(&ranges, file.content_type, size, boundary);
                let x = request_range.is_some()
                    || joined(req_headers, "user-agent").is_some_and(|ua| ua.contains("MSIE 3"));
                let ct = format!(
                    "multipart/{}byteranges; boundary={boundary}",
                    if x { "x-" } else { "" }
                );
                if let Some(v) = value(&ct) {
                    headers.insert(header::CONTENT_TYPE, v);
                }
                let length = (ranges.len() <= RANGES_WITH_LENGTH).then_some(total);
                (StatusCode::PARTIAL_CONTENT, chunks, length)
            }
        },
    };
    match length {
        Some(len) => {
            headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));
        }
        None => {
            headers.remove(header::CONTENT_LENGTH);
        }
    }
    let body = if *method == Method::HEAD || length == Some(0) {
        empty_body()
    } else {
        match source {
            Source::Memory(data) => memory_body(&data, chunks),
            Source::File(path, id) => FileBody::new(path, id, chunks).boxed(),
        }
    };
    response(status, headers, body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use htgate_util::date::http_date;

    const NOW: i64 = 1_700_000_000;

    fn v(etag: &str) -> Validators<'_> {
        Validators {
            etag,
            mtime: NOW - 3600,
            now: NOW,
        }
    }

    fn get() -> Conditions<'static> {
        Conditions {
            get_or_head: true,
            ..Conditions::default()
        }
    }

    #[test]
    fn etag_format() {
        let mtime = 1_700_000_000_123_456i64;
        assert_eq!(
            make_etag(0x2aa6, mtime, mtime + 5 * USEC),
            format!("\"2aa6-{:x}\"", mtime)
        );
        assert_eq!(make_etag(10, 0x10, 0x10 + 10 * USEC), "\"a-10\"");
        // Modified within the last second (or in the future): weak.
        assert_eq!(make_etag(10, 0x10, 0x10 + USEC), "W/\"a-10\"");
        assert_eq!(make_etag(0, 100, 50), "W/\"0-64\"");
    }

    #[test]
    fn etag_lists() {
        assert!(etag_in_list("\"a\"", "\"a\"", true));
        assert!(etag_in_list("\"x\", \"a\"", "\"a\"", true));
        assert!(!etag_in_list("W/\"a\"", "\"a\"", true));
        assert!(!etag_in_list("\"a\"", "W/\"a\"", true));
        assert!(etag_in_list("W/\"a\"", "\"a\"", false));
        assert!(etag_in_list("\"a\"", "W/\"a\"", false));
        assert!(etag_in_list(" ,\"b\" ,  W/\"a\" ", "\"a\"", false));
        // Apache stops at the first item of the wrong kind.
        assert!(!etag_in_list("W/\"x\", \"a\"", "\"a\"", true));
        assert!(!etag_in_list("\"a,b\"", "\"a\"", true));
        assert!(etag_in_list("\"a,b\"", "\"a,b\"", true));
        assert!(!etag_in_list("\"ab\"", "\"a\"", true));
        assert!(!etag_in_list("", "\"a\"", false));
        assert!(!etag_in_list("\"", "\"a\"", false));
    }

    #[test]
    fn preconditions_follow_apache() {
        let e = "\"a-b\"";
        let lm = http_date(NOW - 3600);
        let older = http_date(NOW - 7200);
        let future = http_date(NOW + 7200);
        let ev = |c: Conditions<'_>| evaluate_preconditions(&c, &v(e));
        use Precondition::*;

        assert_eq!(ev(get()), Proceed);
        // If-Match
        assert_eq!(
            ev(Conditions {
                if_match: Some("\"zz\""),
                ..get()
            }),
            Failed
        );
        assert_eq!(
            ev(Conditions {
                if_match: Some("*"),
                ..get()
            }),
            Proceed
        );
        assert_eq!(
            ev(Conditions {
                if_match: Some("\"a-b\""),
                ..get()
            }),
            Proceed
        );
        // If-Unmodified-Since
        assert_eq!(
            ev(Conditions {
                if_unmodified_since: Some(&older),
                ..get()
            }),
            Failed
        );
        assert_eq!(
            ev(Conditions {
                if_unmodified_since: Some(&lm),
                ..get()
            }),
            Proceed
        );
        assert_eq!(
            ev(Conditions {
                if_unmodified_since: Some("junk"),
                ..get()
            }),
            Proceed
        );
        // If-None-Match
        assert_eq!(
            ev(Conditions {
                if_none_match: Some("\"a-b\""),
                ..get()
            }),
            NotModified
        );
        assert_eq!(
            ev(Conditions {
                if_none_match: Some("W/\"a-b\""),
                ..get()
            }),
            NotModified
        );
        assert_eq!(
            ev(Conditions {
                if_none_match: Some("*"),
                ..get()
            }),
            NotModified
        );
        assert_eq!(
            ev(Conditions {
                if_none_match: Some("\"x\""),
                ..get()
            }),
            Proceed
        );
        let post = Conditions {
            get_or_head: false,
            ..Conditions::default()
        };
        assert_eq!(
            ev(Conditions {
                if_none_match: Some("\"a-b\""),
                ..post
            }),
            Failed
        );
        assert_eq!(
            ev(Conditions {
                if_none_match: Some("W/\"a-b\""),
                ..post
            }),
            Proceed
        );
        // If-Modified-Since
        assert_eq!(
            ev(Conditions {
                if_modified_since: Some(&lm),
                ..get()
            }),
            NotModified
        );
        assert_eq!(
            ev(Conditions {
                if_modified_since: Some(&older),
                ..get()
            }),
            Proceed
        );
        assert_eq!(
            ev(Conditions {
                if_modified_since: Some(&future),
                ..get()
            }),
            Proceed
        );
        assert_eq!(
            ev(Conditions {
                if_modified_since: Some("junk"),
                ..get()
            }),
            Proceed
        );
        assert_eq!(
            ev(Conditions {
                if_modified_since: Some(&lm),
                ..post
            }),
            Proceed
        );
        // Both 304 conditions must agree (Apache, unlike RFC 9110).
        assert_eq!(
            ev(Conditions {
                if_none_match: Some("\"a-b\""),
                if_modified_since: Some(&lm),
                ..get()
            }),
            NotModified
        );
        assert_eq!(
            ev(Conditions {
                if_none_match: Some("\"a-b\""),
                if_modified_since: Some(&older),
                ..get()
            }),
            Proceed
        );
        // If-Match failing wins over everything.
        assert_eq!(
            ev(Conditions {
                if_match: Some("\"q\""),
                if_none_match: Some("\"a-b\""),
                ..get()
            }),
            Failed
        );
        // A weak ETag never matches strongly.
        let weak = Validators {
            etag: "W/\"a-b\"",
            ..v(e)
        };
        let c = Conditions {
            if_match: Some("W/\"a-b\""),
            ..get()
        };
        assert_eq!(evaluate_preconditions(&c, &weak), Failed);
        // If-None-Match with Range compares strongly.
        let c = Conditions {
            if_none_match: Some("W/\"a-b\""),
            has_range: true,
            ..get()
        };
        assert_eq!(evaluate_preconditions(&c, &v(e)), Proceed);
        // If-Range with Range: always proceed (ranges or full body).
        let c = Conditions {
            if_none_match: Some("\"a-b\""),
            if_range: Some("\"a-b\""),
            has_range: true,
            ..get()
        };
        assert_eq!(evaluate_preconditions(&c, &v(e)), Proceed);
        // Dates within 60 s of the modification are weak: no 304 with Range.
        let fresh = Validators {
            etag: e,
            mtime: NOW - 10,
            now: NOW,
        };
        let c = Conditions {
            if_modified_since: Some(&http_date(NOW - 10)),
            has_range: true,
            ..get()
        };
        assert_eq!(evaluate_preconditions(&c, &fresh), Proceed);
        let c = Conditions {
            has_range: false,
            ..c
        };
        assert_eq!(evaluate_preconditions(&c, &fresh), NotModified);
    }

    #[test]
    fn if_range_rules() {
        let val = v("\"a-b\"");
        assert!(if_range_matches("\"a-b\"", &val));
        assert!(!if_range_matches("\"a-c\"", &val));
        assert!(!if_range_matches("W/\"a-b\"", &val));
        assert!(if_range_matches(&http_date(NOW - 3600), &val));
        assert!(!if_range_matches(&http_date(NOW - 3601), &val));
        assert!(!if_range_matches("junk", &val));
        let fresh = Validators {
            etag: "\"x\"",
            mtime: NOW - 5,
            now: NOW,
        };
        assert!(!if_range_matches(&http_date(NOW - 5), &fresh));
        let weak = Validators {
            etag: "W/\"x\"",
            mtime: NOW - 5,
            now: NOW,
        };
        assert!(!if_range_matches("W/\"x\"", &weak));
    }

    #[test]
    fn range_parsing() {
        use RangeDecision::*;
        assert_eq!(parse_ranges("0-0", 10), Partial(vec![(0, 0)]));
        assert_eq!(parse_ranges("2-5", 10), Partial(vec![(2, 5)]));
        assert_eq!(parse_ranges("5-", 10), Partial(vec![(5, 9)]));
        assert_eq!(parse_ranges("-3", 10), Partial(vec![(7, 9)]));
        assert_eq!(parse_ranges("-30", 10), Partial(vec![(0, 9)]));
        assert_eq!(parse_ranges("2-50", 10), Partial(vec![(2, 9)]));
        // "0-" is the whole file as one range, even with others.
        assert_eq!(parse_ranges("0-", 10), Partial(vec![(0, 9)]));
        assert_eq!(parse_ranges("1-2,0-", 10), Partial(vec![(0, 9)]));
        // Several ranges; touching and overlapping ones merge.
        assert_eq!(parse_ranges("0-1,4-5", 10), Partial(vec![(0, 1), (4, 5)]));
        assert_eq!(parse_ranges("0-1,2-3", 10), Partial(vec![(0, 3)]));
        assert_eq!(parse_ranges("4-5,0-4", 10), Partial(vec![(0, 5)]));
        assert_eq!(parse_ranges("4-5,0-1", 10), Partial(vec![(4, 5), (0, 1)]));
        assert_eq!(parse_ranges("0-1,,4-5", 10), Partial(vec![(0, 1), (4, 5)]));
        assert_eq!(parse_ranges("0-1, 4-5", 10), Partial(vec![(0, 1), (4, 5)]));
        // Unsatisfiable ones are dropped, all-unsatisfiable is 416.
        assert_eq!(parse_ranges("20-30,1-2", 10), Partial(vec![(1, 2)]));
        assert_eq!(parse_ranges("10-", 10), Unsatisfiable);
        assert_eq!(parse_ranges("10-20,30-40", 10), Unsatisfiable);
        // Syntax errors: the header is ignored.
        for bad in [
            "", "x", "5", "a-b", "5-3", "-0", "-", "1-2 ", "1-2,x", ",0-1", " -5", "--5",
        ] {
            assert_eq!(parse_ranges(bad, 10), Full, "{bad:?}");
        }
        assert_eq!(parse_ranges("+1-+2", 10), Partial(vec![(1, 2)]));
        assert_eq!(parse_ranges(" 1-2", 10), Partial(vec![(1, 2)]));
        assert_eq!(parse_ranges("99999999999999999999-", 10), Full);
        // Empty file: no ranges at all.
        assert_eq!(parse_ranges("0-0", 0), Full);
        // More bytes asked for than the file has: ignored.
        assert_eq!(parse_ranges("0-5,2-9,1-8", 10), Partial(vec![(0, 9)]));
        assert_eq!(parse_ranges("0-5,7-9,0-5", 10), Full);
    }

    #[test]
    fn range_limits() {
        use RangeDecision::*;
        let many: Vec<String> = (0..201).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
        assert_eq!(parse_ranges(&many.join(","), 1000), Full);
        let ok: Vec<String> = (0..200).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
        match parse_ranges(&ok.join(","), 1000) {
            Partial(r) => assert_eq!(r.len(), 200),
            other => panic!("{other:?}"),
        }
        // Reversals: each range just before the previous one.
        let rev: Vec<String> = (0..22).rev().map(|i| format!("{i}-{i}")).collect();
        assert_eq!(parse_ranges(&rev.join(","), 100), Full);
        let rev: Vec<String> = (0..21).rev().map(|i| format!("{i}-{i}")).collect();
        assert_eq!(parse_ranges(&rev.join(","), 100), Partial(vec![(0, 20)]));
    }

    #[test]
    fn multipart_output() {
        let (chunks, total) =
            multipart_layout(&[(0, 1), (4, 5)], Some("text/plain"), 10, "b0undary");
        let mut text = Vec::new();
        let file = b"0123456789";
        for c in &chunks {
            match c {
                Chunk::Bytes(b) => text.extend_from_slice(b),
                Chunk::File { start, len } => {
                    text.extend_from_slice(&file[*start as usize..(*start + *len) as usize])
                }
            }
        }
        let expected = "\r\n--b0undary\r\nContent-type: text/plain\r\nContent-range: bytes 0-1/10\r\n\r\n01\
                        \r\n--b0undary\r\nContent-type: text/plain\r\nContent-range: bytes 4-5/10\r\n\r\n45\
                        \r\n--b0undary--\r\n";
        assert_eq!(String::from_utf8(text).expect("ascii"), expected);
        assert_eq!(total, expected.len() as u64);
        let (chunks, _) = multipart_layout(&[(0, 0), (2, 2)], None, 3, "b");
        assert_eq!(
            chunks[0],
            Chunk::Bytes(Bytes::from_static(
                b"\r\n--b\r\nContent-range: bytes 0-0/3\r\n\r\n"
            ))
        );
        assert!(multipart_boundary().bytes().all(|b| b.is_ascii_hexdigit()));
    }

    async fn body_bytes(resp: Response<Body>) -> Vec<u8> {
        match resp.into_body().collect().await {
            Ok(c) => c.to_bytes().to_vec(),
            Err(e) => panic!("body error: {e}"),
        }
    }

    fn req(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, val) in pairs {
            h.append(*k, HeaderValue::from_str(val).expect("header"));
        }
        h
    }

    async fn serve(
        path: &Path,
        method: Method,
        pairs: &[(&'static str, &str)],
        ct: Option<&str>,
    ) -> Response<Body> {
        let meta = std::fs::metadata(path).expect("meta");
        let mut extra = HeaderMap::new();
        extra.insert("x-extra", HeaderValue::from_static("1"));
        extra.insert("cache-control", HeaderValue::from_static("max-age=5"));
        serve_file(
            &method,
            &req(pairs),
            FileToServe {
                path,
                meta: &meta,
                content_type: ct,
                status: StatusCode::OK,
            },
            extra,
        )
        .await
    }

    fn old_file(dir: &Path, data: &[u8]) -> std::path::PathBuf {
        let p = dir.join("f.txt");
        std::fs::write(&p, data).expect("write");
        let f = std::fs::File::options().write(true).open(&p).expect("open");
        f.set_modified(SystemTime::now() - std::time::Duration::from_secs(86_400))
            .expect("set mtime");
        p
    }

    #[tokio::test]
    async fn full_head_and_conditional_responses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let p = old_file(dir.path(), &data);

        let r = serve(&p, Method::GET, &[], Some("text/plain")).await;
        assert_eq!(r.status(), StatusCode::OK);
        let h = r.headers().clone();
        assert_eq!(h["content-length"], "200000");
        assert_eq!(h["accept-ranges"], "bytes");
        assert_eq!(h["content-type"], "text/plain");
        assert_eq!(h["x-extra"], "1");
        let etag = h["etag"].to_str().expect("etag").to_string();
        assert!(etag.starts_with("\"30d40-"), "{etag}");
        let lm = h["last-modified"].to_str().expect("lm").to_string();
        assert_eq!(body_bytes(r).await, data);

        let r = serve(&p, Method::HEAD, &[], None).await;
        assert_eq!(r.headers()["content-length"], "200000");
        assert!(r.headers().get("content-type").is_none());
        assert!(body_bytes(r).await.is_empty());

        let r = serve(&p, Method::GET, &[("if-none-match", &etag)], None).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        assert_eq!(r.headers()["etag"], etag.as_str());
        assert_eq!(r.headers()["cache-control"], "max-age=5");
        assert!(r.headers().get("last-modified").is_none());
        assert!(r.headers().get("x-extra").is_none());
        assert!(body_bytes(r).await.is_empty());

        let r = serve(&p, Method::GET, &[("if-modified-since", &lm)], None).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

        let r = serve(&p, Method::POST, &[("if-none-match", &etag)], None).await;
        assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
        assert_eq!(r.headers()["content-type"], ERROR_CONTENT_TYPE);
        assert!(String::from_utf8(body_bytes(r).await)
            .expect("utf-8")
            .contains("<title>412 Precondition Failed</title>"));

        let r = serve(&p, Method::GET, &[("if-match", "\"nope\"")], None).await;
        assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    }

    #[tokio::test]
    async fn range_responses() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data = b"0123456789".repeat(10_000);
        let p = old_file(dir.path(), &data);

        let r = serve(
            &p,
            Method::GET,
            &[("range", "bytes=70000-")],
            Some("text/plain"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(r.headers()["content-range"], "bytes 70000-99999/100000");
        assert_eq!(r.headers()["content-length"], "30000");
        assert_eq!(body_bytes(r).await, &data[70000..]);

        let r = serve(
            &p,
            Method::GET,
            &[("range", "BYTES=1-2,5-6")],
            Some("text/plain"),
        )
        .await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        let ct = r.headers()["content-type"]
            .to_str()
            .expect("ct")
            .to_string();
        let boundary = multipart_boundary();
        assert_eq!(ct, format!("multipart/byteranges; boundary={boundary}"));
        let len: usize = r.headers()["content-length"]
            .to_str()
            .expect("cl")
            .parse()
            .expect("n");
        let body = body_bytes(r).await;
        assert_eq!(body.len(), len);
        assert_eq!(
            String::from_utf8(body).expect("ascii"),
            format!(
                "\r\n--{boundary}\r\nContent-type: text/plain\r\nContent-range: bytes 1-2/100000\r\n\r\n12\
                 \r\n--{boundary}\r\nContent-type: text/plain\r\nContent-range: bytes 5-6/100000\r\n\r\n56\
                 \r\n--{boundary}--\r\n"
            )
        );

        let r = serve(&p, Method::GET, &[("range", "bytes=200000-")], None).await;
        assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(r.headers()["content-range"], "bytes */100000");
        assert!(r.headers().get("etag").is_none());
        assert!(String::from_utf8(body_bytes(r).await)
            .expect("utf-8")
            .contains("None of the range-specifier values"));

        let r = serve(&p, Method::GET, &[("range", "bytes=oops")], None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(body_bytes(r).await.len(), 100_000);

        let r = serve(&p, Method::GET, &[("range", "items=0-1")], None).await;
        assert_eq!(r.status(), StatusCode::OK);

        // If-Range with the right ETag gives the range, a wrong one the file.
        let etag = serve(&p, Method::HEAD, &[], None).await.headers()["etag"]
            .to_str()
            .expect("etag")
            .to_string();
        let r = serve(
            &p,
            Method::GET,
            &[("range", "bytes=0-3"), ("if-range", &etag)],
            None,
        )
        .await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(body_bytes(r).await, b"0123");
        let r = serve(
            &p,
            Method::GET,
            &[("range", "bytes=0-3"), ("if-range", "\"x\"")],
            None,
        )
        .await;
        assert_eq!(r.status(), StatusCode::OK);

        // HEAD gets the 206 headers without a body.
        let r = serve(&p, Method::HEAD, &[("range", "bytes=0-3")], None).await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(r.headers()["content-length"], "4");
        assert!(body_bytes(r).await.is_empty());
    }

    #[tokio::test]
    async fn other_status_and_unreadable_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = old_file(dir.path(), b"not found page");
        let meta = std::fs::metadata(&p).expect("meta");
        let r = serve_file(
            &Method::GET,
            &req(&[("range", "bytes=0-1"), ("if-none-match", "*")]),
            FileToServe {
                path: &p,
                meta: &meta,
                content_type: Some("text/html"),
                status: StatusCode::NOT_FOUND,
            },
            HeaderMap::new(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::NOT_FOUND);
        assert_eq!(body_bytes(r).await, b"not found page");

        let gone = dir.path().join("gone");
        let r = serve_file(
            &Method::GET,
            &HeaderMap::new(),
            FileToServe {
                path: &gone,
                meta: &meta,
                content_type: None,
                status: StatusCode::OK,
            },
            HeaderMap::new(),
        )
        .await;
        assert_eq!(r.status(), StatusCode::FORBIDDEN);
    }

    /// Descriptors this process holds on `path`.
    fn fds_on(path: &Path) -> usize {
        let want = std::fs::canonicalize(path).expect("canonical");
        std::fs::read_dir("/proc/self/fd")
            .expect("/proc/self/fd")
            .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
            .filter(|target| *target == want)
            .count()
    }

    #[tokio::test]
    async fn a_large_file_is_opened_only_when_its_body_is_polled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
        let p = old_file(dir.path(), &data);
        // Built, never polled: headers from the stat, no descriptor.
        let r = serve(&p, Method::GET, &[], None).await;
        assert_eq!(fds_on(&p), 0, "a response not sending holds no file");
        assert_eq!(r.headers()["content-length"], "1000000");
        assert!(r.headers().contains_key("etag"));
        let mut body = r.into_body();
        // The first poll opens it, and reads a small first chunk.
        let first = body.frame().await.expect("frame").expect("data");
        let first = first.into_data().expect("data frame");
        assert_eq!(first.len(), FIRST_CHUNK);
        assert_eq!(fds_on(&p), 1);
        // Dropped mid-way: closed (a read in flight would hold it briefly).
        drop(body);
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(fds_on(&p), 0);
        // Read to the end: every byte, and the file is closed with the last.
        let r = serve(&p, Method::GET, &[], None).await;
        let mut body = r.into_body();
        let mut got = Vec::new();
        while let Some(f) = body.frame().await {
            got.extend_from_slice(&f.expect("frame").into_data().expect("data"));
        }
        assert_eq!(got, data);
        assert_eq!(fds_on(&p), 0);
        // HEAD, 304 and a range open nothing until polled, and are right.
        let r = serve(&p, Method::HEAD, &[], None).await;
        assert_eq!(r.headers()["content-length"], "1000000");
        assert!(body_bytes(r).await.is_empty());
        let etag = serve(&p, Method::GET, &[], None).await.headers()["etag"]
            .to_str()
            .expect("etag")
            .to_string();
        let r = serve(&p, Method::GET, &[("if-none-match", &etag)], None).await;
        assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
        let r = serve(
            &p,
            Method::GET,
            &[("range", "bytes=500000-500009,999990-")],
            None,
        )
        .await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(fds_on(&p), 0);
        let text = body_bytes(r).await;
        let text = String::from_utf8_lossy(&text);
        assert!(
            text.contains("Content-range: bytes 500000-500009/1000000"),
            "{text}"
        );
        assert!(
            text.contains("Content-range: bytes 999990-999999/1000000"),
            "{text}"
        );
        assert_eq!(fds_on(&p), 0);
        let r = serve(&p, Method::GET, &[("range", "bytes=10-19")], None).await;
        assert_eq!(body_bytes(r).await, data[10..20].to_vec());
        // Replaced after its headers were made: the body fails rather than
        // sending another file under the old length and ETag.
        let r = serve(&p, Method::GET, &[], None).await;
        let q = dir.path().join("g.txt");
        std::fs::write(&q, vec![1u8; 1_000_000]).expect("write");
        std::fs::rename(&q, &p).expect("replace");
        assert!(r.into_body().collect().await.is_err());
    }

    #[tokio::test]
    async fn shrinking_file_ends_the_body_with_an_error() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = old_file(dir.path(), &vec![7u8; 300_000]);
        let r = serve(&p, Method::GET, &[], None).await;
        std::fs::write(&p, b"short").expect("truncate");
        assert!(r.into_body().collect().await.is_err());
    }

    #[tokio::test]
    async fn a_small_file_still_being_written_is_streamed_lazily() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("fresh.txt");
        std::fs::write(&p, vec![b'f'; 100_000]).expect("write");
        let r = serve(&p, Method::GET, &[], None).await;
        // Not read into memory when the response is built: no copy kept,
        // no descriptor held until the body is polled.
        let id = Identity::of(&std::fs::metadata(&p).expect("meta"));
        assert!(ContentCache::global().get(&p, &id).is_none());
        assert_eq!(fds_on(&p), 0);
        assert_eq!(body_bytes(r).await, vec![b'f'; 100_000]);
        assert_eq!(fds_on(&p), 0);
    }

    #[tokio::test]
    async fn small_files_are_kept_by_identity_once_settled() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("k.txt");
        std::fs::write(&p, "one\n").expect("write");
        let id = Identity::of(&std::fs::metadata(&p).expect("meta"));
        let now = SystemTime::now();
        assert!(!id.settled(now), "just written");
        assert!(id.settled(now + SETTLED + std::time::Duration::from_secs(1)));
        // A kept copy answers while the identity is the same: the body
        // shows it came from memory.
        let cache = ContentCache::global();
        cache.insert(&p, id, Bytes::from_static(b"mem\n"));
        let r = serve(&p, Method::GET, &[], None).await;
        assert_eq!(body_bytes(r).await, b"mem\n");
        let r = serve(&p, Method::GET, &[("range", "bytes=1-2")], None).await;
        assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
        assert_eq!(body_bytes(r).await, b"em");
        // Any change of the file (here its mtime, and so its ctime) and
        // the file is read again.
        let f = std::fs::File::options().write(true).open(&p).expect("open");
        f.set_modified(now - std::time::Duration::from_secs(60))
            .expect("set mtime");
        let r = serve(&p, Method::GET, &[], None).await;
        assert_eq!(body_bytes(r).await, b"one\n");
        assert!(
            cache.get(&p, &id).is_some(),
            "the old copy stays until replaced"
        );
    }

    #[tokio::test]
    async fn empty_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = old_file(dir.path(), b"");
        let r = serve(&p, Method::GET, &[("range", "bytes=0-")], None).await;
        assert_eq!(r.status(), StatusCode::OK);
        assert_eq!(r.headers()["content-length"], "0");
        assert_eq!(
            r.headers()["etag"]
                .to_str()
                .expect("etag")
                .split('-')
                .next(),
            Some("\"0")
        );
        assert!(body_bytes(r).await.is_empty());
    }
}

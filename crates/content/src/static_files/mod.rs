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

mod body;
mod conditional;
mod ranges;
mod source;
#[cfg(test)]
mod tests;

pub(crate) use body::Chunk;
#[cfg(test)]
use conditional::etag_in_list;
pub use conditional::Conditions;
pub(crate) use conditional::{
    evaluate_preconditions, if_range_matches, make_etag, Precondition, Validators,
};
pub(crate) use ranges::{multipart_boundary, multipart_layout, parse_ranges, RangeDecision};
#[cfg(test)]
use source::{ContentCache, SETTLED};

use super::status_page::{error_body, ERROR_CONTENT_TYPE};
use super::{empty_body, full_body, Body};
use body::{memory_body, FileBody};
use http::{header, HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use ranges::RANGES_WITH_LENGTH;
use source::{open_source, Source};
use std::path::Path;
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

const USEC: i64 = 1_000_000;

// ---------------------------------------------------------------------------
// Time

/// Microseconds since the epoch (negative before it), saturating.
pub(crate) fn system_time_us(t: SystemTime) -> i64 {
    match t.duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros())
            .map(|us| -us)
            .unwrap_or(i64::MIN),
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

//! Validators and conditional requests: the default `ETag`, entity tag
//! lists, `If-Range` and `ap_meets_conditions`.

use super::USEC;

/// Apache 2.4's default entity tag (`FileETag MTime Size`):
/// `"<size hex>-<mtime in microseconds hex>"`, weak (`W/`) unless the file
/// was last modified more than a second before `now_us`.
pub(crate) fn make_etag(size: u64, mtime_us: i64, now_us: i64) -> String {
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
pub(crate) struct Validators<'a> {
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
pub(crate) enum Precondition {
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
pub(crate) fn etag_in_list(line: &str, tok: &str, strong: bool) -> bool {
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
pub(crate) fn if_range_matches(if_range: &str, v: &Validators<'_>) -> bool {
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
pub(crate) fn evaluate_preconditions(c: &Conditions<'_>, v: &Validators<'_>) -> Precondition {
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

//! Byte ranges as Apache's byterange filter handles them: parsing the
//! `Range` header (`ap_set_byterange`) and the multipart/byteranges body.

use super::body::Chunk;
use super::system_time_us;
use bytes::Bytes;
use std::sync::OnceLock;
use std::time::SystemTime;

/// Apache's defaults for `MaxRanges`, `MaxRangeOverlaps`,
/// `MaxRangeReversals`: past them the whole file is sent.
const MAX_RANGES: usize = 200;
const MAX_OVERLAPS: u32 = 20;
const MAX_REVERSALS: u32 = 20;
/// The byterange filter hands its output down every 32 ranges, after which
/// the response has no Content-Length (it is chunked).
pub(super) const RANGES_WITH_LENGTH: usize = 32;

/// The result of reading a Range header against a file length.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RangeDecision {
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
pub(crate) fn parse_ranges(spec: &str, clength: u64) -> RangeDecision {
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

/// The process-wide multipart boundary (`ap_multipart_boundary`: random
/// hex made once at start-up).
pub(crate) fn multipart_boundary() -> &'static str {
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
pub(crate) fn multipart_layout(
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

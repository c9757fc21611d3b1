//! Text helpers of the listing, byte for byte as Apache's: link escaping
//! (`ap_os_escape_path`), sizes (`apr_strfsize`), dates and cut
//! descriptions.

use super::options::{WidthMode, SUPPRESS_ICON, SUPPRESS_LAST_MOD, SUPPRESS_SIZE};

/// `ap_os_escape_path`: %-escapes (lower-case hex) all but alphanumerics
/// and `$-_.+!*'(),:;@&=/~`; unless `partial`, a `./` goes in front
/// when a `:` comes before any `/` (so `a:b` is not read as a scheme).
pub(super) fn os_escape_path(s: &[u8], partial: bool) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(s.len() + 8);
    if !partial {
        let colon = s.iter().position(|&b| b == b':');
        let slash = s.iter().position(|&b| b == b'/');
        if let Some(c) = colon {
            if slash.map_or(true, |sl| c < sl) {
                out.extend_from_slice(b"./");
            }
        }
    }
    for &b in s {
        if b.is_ascii_alphanumeric() || b"$-_.+!*'(),:;@&=/~".contains(&b) {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
        }
    }
    out
}

/// `apr_strfsize`: at most four characters (`  2 `, `1.5K`, ` 12M`).
pub(super) fn strfsize(size: i64) -> String {
    if size < 0 {
        return "  - ".into();
    }
    if size < 973 {
        return format!("{size:>3} ");
    }
    let ord = b"KMGTPE";
    let mut o = 0usize;
    let mut size = size;
    loop {
        let mut remain = size & 1023;
        size >>= 10;
        if size >= 973 {
            o += 1;
            continue;
        }
        let unit = char::from(ord[o.min(ord.len() - 1)]);
        if size < 9 || (size == 9 && remain < 973) {
            remain = ((remain * 5) + 256) / 512;
            if remain >= 10 {
                size += 1;
                remain = 0;
            }
            return format!("{size}.{remain}{unit}");
        }
        if remain >= 512 {
            size += 1;
        }
        return format!("{size:>3}{unit}");
    }
}

#[derive(Clone, Copy)]
pub(super) enum Zone {
    Local,
    #[cfg(test)]
    Utc,
}

pub(super) fn format_time(us: i64, old: bool, zone: Zone) -> String {
    let fmt = if old {
        "%d-%b-%Y %H:%M"
    } else {
        "%Y-%m-%d %H:%M"
    };
    let Some(t) = chrono::DateTime::from_timestamp_micros(us) else {
        return String::new();
    };
    match zone {
        Zone::Local => t.with_timezone(&chrono::Local).format(fmt).to_string(),
        #[cfg(test)]
        Zone::Utc => t.format(fmt).to_string(),
    }
}

/// `terminate_description`: cut to the column width, counting an HTML
/// tag as nothing and an entity as one character, ending a cut with `>`.
pub(super) fn terminate_description(
    desc: &str,
    opts: u32,
    width: usize,
    adjust: WidthMode,
) -> Vec<u8> {
    let d = desc.as_bytes();
    let mut maxsize = width as i64;
    if adjust == WidthMode::Unset {
        if opts & SUPPRESS_ICON != 0 {
            maxsize += 6;
        }
        if opts & SUPPRESS_LAST_MOD != 0 {
            maxsize += 19;
        }
        if opts & SUPPRESS_SIZE != 0 {
            maxsize += 7;
        }
    }
    let mut x = 0usize;
    while x < d.len() && (maxsize > 0 || d[x] == b'<') {
        if d[x] == b'<' {
            while x < d.len() && d[x] != b'>' {
                x += 1;
            }
            if x >= d.len() {
                maxsize = 0;
                break;
            }
        } else if d[x] == b'&' {
            maxsize -= 1;
            while x < d.len() && d[x] != b';' {
                x += 1;
            }
            if x >= d.len() {
                maxsize = 0;
                break;
            }
        } else {
            maxsize -= 1;
        }
        x += 1;
    }
    let mut out = d.to_vec();
    if maxsize == 0 && x < d.len() && x > 0 {
        out[x - 1] = b'>';
        out.truncate(x);
    }
    out
}

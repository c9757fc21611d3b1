//! The few Python built-ins whose exact behaviour the oracle's results depend
//! on (`/work/shared/conformance/oracle` is Python 3): `str.splitlines`,
//! `str.isspace`/`strip`/`split`, `int()`, `bytes.decode(..., "backslashreplace")`,
//! `urllib.parse.unquote_to_bytes`, `round`, `email.utils.parsedate_tz` and
//! `calendar.timegm`.  Ported so that the Rust runner parses case files and
//! normalises answers exactly as the oracle does, edge cases included.

use std::sync::OnceLock;

use regex::Regex;

/// `str.isspace()` for one character: Unicode White_Space plus the four
/// ASCII separators U+001C..U+001F that Python also counts as whitespace
/// (bidirectional class B/S).  This is also what `\s` matches in the
/// oracle's `str` regexes.
pub(crate) fn is_space(c: char) -> bool {
    c.is_whitespace() || ('\u{1c}'..='\u{1f}').contains(&c)
}

/// `str.strip()`.
pub(crate) fn strip(s: &str) -> &str {
    s.trim_matches(is_space)
}

/// `str.lstrip()`.
pub(crate) fn lstrip(s: &str) -> &str {
    s.trim_start_matches(is_space)
}

/// `str.split()` (no argument): runs of whitespace separate, no empty items.
pub(crate) fn split_ws(s: &str) -> Vec<&str> {
    s.split(is_space).filter(|p| !p.is_empty()).collect()
}

/// `str.split(None, 1)`: the first word and, if anything follows, the rest
/// with its leading whitespace removed (trailing whitespace kept).
pub(crate) fn split_ws_once(s: &str) -> Vec<&str> {
    let s = lstrip(s);
    if s.is_empty() {
        return Vec::new();
    }
    match s.find(is_space) {
        None => vec![s],
        Some(i) => {
            let rest = lstrip(&s[i..]);
            if rest.is_empty() {
                vec![&s[..i]]
            } else {
                vec![&s[..i], rest]
            }
        }
    }
}

/// `bytes.strip()`: ASCII whitespace only (space, \t, \n, \r, \v, \f).
pub(crate) fn bytes_strip(b: &[u8]) -> &[u8] {
    let ws = |c: &u8| matches!(c, b' ' | b'\t' | b'\n' | b'\r' | 0x0b | 0x0c);
    let start = b.iter().position(|c| !ws(c)).unwrap_or(b.len());
    let end = b.iter().rposition(|c| !ws(c)).map_or(start, |i| i + 1);
    &b[start..end]
}

/// `str.splitlines(keepends=True)`: Python splits on \n, \r, \r\n, \v, \f,
/// \x1c, \x1d, \x1e, \x85, U+2028 and U+2029, keeping each terminator.
pub(crate) fn splitlines_keepends(s: &str) -> Vec<&str> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut it = s.char_indices().peekable();
    while let Some((i, c)) = it.next() {
        let end = match c {
            '\r' => match it.peek() {
                Some(&(j, '\n')) => {
                    it.next();
                    j + 1
                }
                _ => i + 1,
            },
            '\n' | '\u{0b}' | '\u{0c}' | '\u{1c}' | '\u{1d}' | '\u{1e}' | '\u{85}' | '\u{2028}'
            | '\u{2029}' => i + c.len_utf8(),
            _ => continue,
        };
        out.push(&s[start..end]);
        start = end;
    }
    if start < s.len() {
        out.push(&s[start..]);
    }
    out
}

fn nd_regex() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| Regex::new(r"^\p{Nd}$").expect("valid regex"))
}

/// The value of a Unicode decimal digit (general category Nd), which is
/// what Python's `\d` matches and `int()` accepts.  Nd characters come in
/// runs of ten, zero first, so the value is the offset from the run's start
/// modulo 10.
pub(crate) fn decimal_value(c: char) -> Option<u32> {
    if c.is_ascii_digit() {
        return Some(c as u32 - '0' as u32);
    }
    let is_nd = |c: char| {
        let mut buf = [0u8; 4];
        nd_regex().is_match(c.encode_utf8(&mut buf))
    };
    if !is_nd(c) {
        return None;
    }
    let mut start = c as u32;
    while let Some(prev) = start.checked_sub(1).and_then(char::from_u32) {
        if !is_nd(prev) {
            break;
        }
        start -= 1;
    }
    Some((c as u32 - start) % 10)
}

/// `str.isdigit()`, restricted to decimal digits (Python also counts
/// superscripts and the like, which `int()` then rejects anyway).
pub(crate) fn is_digit_str(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| decimal_value(c).is_some())
}

/// Python's `int(s, radix)` for `str` arguments (radix 10 or 16):
/// surrounding whitespace, a sign, `0x` with radix 16, single underscores
/// between digits, Unicode decimal digits.  `None` where Python raises
/// ValueError.  Values beyond i128 saturate (Python has no limit; such
/// numbers only ever compare as "far away" here).
pub(crate) fn py_int(s: &str, radix: u32) -> Option<i128> {
    let s = strip(s);
    let (neg, mut s) = match s.chars().next() {
        Some('-') => (true, &s[1..]),
        Some('+') => (false, &s[1..]),
        _ => (false, s),
    };
    let mut after_prefix = false;
    if radix == 16 && (s.starts_with("0x") || s.starts_with("0X")) {
        s = &s[2..];
        after_prefix = true;
    }
    let mut value: i128 = 0;
    let mut ndigits = 0;
    let mut prev_underscore = false;
    for (k, c) in s.chars().enumerate() {
        if c == '_' {
            // An underscore may follow a digit, or directly the base prefix.
            if prev_underscore || (k == 0 && !after_prefix) {
                return None;
            }
            prev_underscore = true;
            continue;
        }
        let d = match decimal_value(c) {
            Some(d) => d,
            None if radix == 16 && c.is_ascii_hexdigit() => c.to_digit(16)?,
            None => return None,
        };
        prev_underscore = false;
        ndigits += 1;
        value = value
            .saturating_mul(radix as i128)
            .saturating_add(d as i128);
    }
    if ndigits == 0 || prev_underscore {
        return None;
    }
    Some(if neg { -value } else { value })
}

/// `int(b, 16)` for a `bytes` argument: as `py_int`, but only ASCII is
/// acceptable (Python rejects any other byte).
pub(crate) fn py_int_bytes(b: &[u8], radix: u32) -> Option<i128> {
    if !b.is_ascii() {
        return None;
    }
    py_int(std::str::from_utf8(b).ok()?, radix)
}

/// The oracle's `decode_value`: UTF-8, or with invalid bytes written as
/// `\xNN` (Python's "backslashreplace" error handler).
pub(crate) fn decode_value(b: &[u8]) -> String {
    let mut out = String::new();
    let mut rest = b;
    loop {
        match std::str::from_utf8(rest) {
            Ok(s) => {
                out.push_str(s);
                return out;
            }
            Err(e) => {
                let good = e.valid_up_to();
                out.push_str(std::str::from_utf8(&rest[..good]).expect("valid prefix"));
                let bad = e.error_len().unwrap_or(rest.len() - good);
                for byte in &rest[good..good + bad] {
                    out.push_str(&format!("\\x{byte:02x}"));
                }
                rest = &rest[good + bad..];
            }
        }
    }
}

/// `urllib.parse.unquote_to_bytes(s)`: `%XX` with two hex digits becomes
/// that byte; any other `%` stays as it is.
pub(crate) fn unquote_to_bytes(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && b[i + 1].is_ascii_hexdigit()
            && b[i + 2].is_ascii_hexdigit()
        {
            let hex = std::str::from_utf8(&b[i + 1..i + 3]).expect("ascii");
            out.push(u8::from_str_radix(hex, 16).expect("hex"));
            i += 3;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// Python's `round(x)` for a float: to the nearest integer, ties to even.
pub(crate) fn py_round(x: f64) -> f64 {
    x.round_ties_even()
}

/// Python slice index normalisation (`seq[i:]` with a possibly negative or
/// out-of-range `i`).
pub(crate) fn slice_index(i: i128, len: usize) -> usize {
    let len = len as i128;
    let i = if i < 0 { i + len } else { i };
    i.clamp(0, len) as usize
}

/// `seq[start:end]` with Python's index rules.
pub(crate) fn py_slice(b: &[u8], start: i128, end: i128) -> &[u8] {
    let s = slice_index(start, b.len());
    let e = slice_index(end, b.len());
    if s >= e {
        &[]
    } else {
        &b[s..e]
    }
}

/// `bytes.find(sub, start)` with Python's index rules; -1 when absent.
pub(crate) fn py_find(b: &[u8], sub: &[u8], start: i128) -> i128 {
    let len = b.len() as i128;
    let s = if start < 0 {
        (start + len).max(0)
    } else {
        start
    };
    if s > len {
        return -1;
    }
    let s = s as usize;
    b[s..]
        .windows(sub.len())
        .position(|w| w == sub)
        .map_or(-1, |p| (s + p) as i128)
}

/// `calendar.timegm` for (year, month, day, hour, minute, second), with
/// `datetime.date`'s range check on the year (ValueError: `None`).
pub(crate) fn timegm(y: i128, mo: i128, d: i128, h: i128, mi: i128, s: i128) -> Option<i128> {
    if !(1..=9999).contains(&y) || !(1..=12).contains(&mo) {
        return None;
    }
    // Days from 1970-01-01 to the first of the month (Howard Hinnant's
    // days_from_civil), then Python's plain arithmetic for the rest, so
    // that out-of-range days or hours overflow into the next unit as there.
    let yy = if mo <= 2 { y - 1 } else { y };
    let era = yy.div_euclid(400);
    let yoe = yy - era * 400;
    let mp = (mo + 9) % 12;
    let doy = (153 * mp + 2) / 5;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let first = era * 146097 + doe - 719468;
    let days = first + d - 1;
    Some(((days * 24 + h) * 60 + mi) * 60 + s)
}

const MONTHNAMES: [&str; 24] = [
    "jan",
    "feb",
    "mar",
    "apr",
    "may",
    "jun",
    "jul",
    "aug",
    "sep",
    "oct",
    "nov",
    "dec",
    "january",
    "february",
    "march",
    "april",
    "may",
    "june",
    "july",
    "august",
    "september",
    "october",
    "november",
    "december",
];
const DAYNAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// `email.utils.parsedate_tz(data)[:6]`: (year, month, day, hour, minute,
/// second), ported line by line from CPython's `email._parseaddr
/// ._parsedate_tz`.  The time-zone part is dropped because the oracle
/// slices it off (`[:9]`) before `calendar.timegm`.
pub(crate) fn parsedate(data: &str) -> Option<[i128; 6]> {
    let mut data: Vec<String> = split_ws(data).into_iter().map(String::from).collect();
    if data.is_empty() {
        return None;
    }
    if data[0].ends_with(',') || DAYNAMES.contains(&data[0].to_lowercase().as_str()) {
        data.remove(0);
    } else if let Some(i) = data[0].rfind(',') {
        data[0] = data[0][i + 1..].to_string();
    }
    if data.len() == 3 {
        let stuff: Vec<String> = data[0].split('-').map(String::from).collect();
        if stuff.len() == 3 {
            let mut d = stuff;
            d.extend(data[1..].iter().cloned());
            data = d;
        }
    }
    if data.len() == 4 {
        let s = data[3].clone();
        let i = s.find('+').or_else(|| s.find('-'));
        match i {
            Some(i) if i > 0 => {
                data.truncate(3);
                data.push(s[..i].to_string());
                data.push(s[i..].to_string());
            }
            _ => data.push(String::new()),
        }
    }
    if data.len() < 5 {
        return None;
    }
    data.truncate(5);
    let [mut dd, mut mm, mut yy, mut tm, mut tz]: [String; 5] = data.try_into().ok()?;
    if dd.is_empty() || mm.is_empty() || yy.is_empty() {
        return None;
    }
    mm = mm.to_lowercase();
    if !MONTHNAMES.contains(&mm.as_str()) {
        let old_dd = std::mem::take(&mut dd);
        dd = mm;
        mm = old_dd.to_lowercase();
        if !MONTHNAMES.contains(&mm.as_str()) {
            return None;
        }
    }
    let mut month = MONTHNAMES.iter().position(|m| *m == mm)? as i128 + 1;
    if month > 12 {
        month -= 12;
    }
    if dd.ends_with(',') {
        dd.pop();
    }
    if yy.find(':').is_some_and(|i| i > 0) {
        std::mem::swap(&mut yy, &mut tm);
    }
    if yy.ends_with(',') {
        yy.pop();
        if yy.is_empty() {
            return None;
        }
    }
    // `yy[0].isdigit()`; an empty yy would make Python raise IndexError,
    // which cannot happen here (yy is a non-empty word at this point).
    if !yy
        .chars()
        .next()
        .is_some_and(|c| decimal_value(c).is_some())
    {
        std::mem::swap(&mut yy, &mut tz);
    }
    if tm.ends_with(',') {
        tm.pop();
    }
    let parts: Vec<&str> = tm.split(':').collect();
    let (thh, tmm, tss): (&str, &str, &str) = match parts.as_slice() {
        [h, m] => (h, m, "0"),
        [h, m, s] => (h, m, s),
        [one] if one.contains('.') => {
            let p: Vec<&str> = one.split('.').collect();
            match p.as_slice() {
                [h, m] => (h, m, "0"),
                [h, m, s] => (h, m, s),
                _ => return None,
            }
        }
        _ => return None,
    };
    let mut year = py_int(&yy, 10)?;
    let day = py_int(&dd, 10)?;
    let hour = py_int(thh, 10)?;
    let minute = py_int(tmm, 10)?;
    let second = py_int(tss, 10)?;
    if year < 100 {
        year += if year > 68 { 1900 } else { 2000 };
    }
    Some([year, month, day, hour, minute, second])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splitlines_matches_python() {
        // Values from Python 3: "a\nb\r\nc\rd\x0ce\x1cf\u2028g".splitlines(True)
        assert_eq!(
            splitlines_keepends("a\nb\r\nc\rd\x0ce\x1cf\u{2028}g"),
            vec!["a\n", "b\r\n", "c\r", "d\x0c", "e\x1c", "f\u{2028}", "g"]
        );
        assert_eq!(splitlines_keepends("x\n"), vec!["x\n"]);
        assert!(splitlines_keepends("").is_empty());
        assert_eq!(splitlines_keepends("\r\r\n"), vec!["\r", "\r\n"]);
    }

    #[test]
    fn whitespace_helpers() {
        assert_eq!(strip("\x1c a b \u{a0}"), "a b");
        assert_eq!(split_ws(" a  b\tc "), vec!["a", "b", "c"]);
        assert_eq!(
            split_ws_once("GET   http://x/ y "),
            vec!["GET", "http://x/ y "]
        );
        assert_eq!(split_ws_once("GET "), vec!["GET"]);
        assert!(split_ws_once("  ").is_empty());
        assert_eq!(bytes_strip(b" \t x y\r\n"), b"x y");
        assert_eq!(bytes_strip(b"   "), b"");
    }

    #[test]
    fn int_like_python() {
        assert_eq!(py_int(" 12 ", 10), Some(12));
        assert_eq!(py_int("1_000", 10), Some(1000));
        assert_eq!(py_int("1__0", 10), None);
        assert_eq!(py_int("_1", 10), None);
        assert_eq!(py_int("1_", 10), None);
        assert_eq!(py_int("-5", 10), Some(-5));
        assert_eq!(py_int("", 10), None);
        assert_eq!(py_int("\u{0663}\u{0664}", 10), Some(34)); // Arabic-Indic 3 4
        assert_eq!(py_int("\u{ff18}\u{ff10}", 10), Some(80)); // fullwidth 8 0
        assert_eq!(py_int_bytes(b"1a", 16), Some(26));
        assert_eq!(py_int_bytes(b"0x1A", 16), Some(26));
        assert_eq!(py_int_bytes(b"0x_1a", 16), Some(26));
        assert_eq!(py_int_bytes(b" ff ", 16), Some(255));
        assert_eq!(py_int_bytes(b"g", 16), None);
        assert_eq!(py_int_bytes(b"0x", 16), None);
        assert_eq!(decimal_value('\u{1d7d9}'), Some(1)); // MATHEMATICAL DOUBLE-STRUCK ONE
        assert_eq!(decimal_value('\u{b2}'), None); // superscript two is not Nd
    }

    #[test]
    fn decode_and_unquote() {
        assert_eq!(decode_value(b"caf\xc3\xa9"), "café");
        assert_eq!(decode_value(b"a\xffb\xe2\x82"), "a\\xffb\\xe2\\x82");
        assert_eq!(unquote_to_bytes("/a%20b%2"), b"/a b%2".to_vec());
        assert_eq!(unquote_to_bytes("%%41%zz%c3%A9"), b"%A%zz\xc3\xa9".to_vec());
        assert_eq!(unquote_to_bytes("é%"), "é%".as_bytes().to_vec());
    }

    #[test]
    fn slices_like_python() {
        assert_eq!(py_slice(b"abcdef", 1, 3), b"bc");
        assert_eq!(py_slice(b"abcdef", -2, 100), b"ef");
        assert_eq!(py_slice(b"abcdef", 4, -4), b"");
        assert_eq!(py_find(b"a\r\nb\r\n", b"\r\n", 0), 1);
        assert_eq!(py_find(b"a\r\nb\r\n", b"\r\n", 2), 4);
        assert_eq!(py_find(b"a\r\nb\r\n", b"\r\n", -2), 4);
        assert_eq!(py_find(b"a\r\n", b"\r\n", 9), -1);
        assert_eq!(py_round(2.5), 2.0);
        assert_eq!(py_round(3.5), 4.0);
        assert_eq!(py_round(-0.5), -0.0);
    }

    #[test]
    fn dates_like_python() {
        // calendar.timegm(email.utils.parsedate_tz(s)[:9]) in Python 3.11.
        let t = |s: &str| parsedate(s).and_then(|p| timegm(p[0], p[1], p[2], p[3], p[4], p[5]));
        assert_eq!(t("Thu, 01 Jan 1970 00:00:00 GMT"), Some(0));
        assert_eq!(t("Sun, 06 Nov 1994 08:49:37 GMT"), Some(784111777));
        assert_eq!(t("Sunday, 06-Nov-94 08:49:37 GMT"), Some(784111777));
        assert_eq!(t("Sun Nov  6 08:49:37 1994"), Some(784111777));
        assert_eq!(t("6 Nov 1994 08:49 +0200"), Some(784111740));
        assert_eq!(t("Mon, 23 Nov 2026 14:58:57 GMT"), Some(1795445937));
        assert_eq!(t("Mon, 31 Feb 2026 25:00:00 GMT"), Some(1772586000));
        assert_eq!(t("garbage"), None);
        assert_eq!(t(""), None);
        assert_eq!(t("Mon, 01 Jan 0000 00:00:00 GMT"), Some(946684800)); // year 0 -> 2000
    }
}

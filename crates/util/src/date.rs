//! HTTP dates as Apache writes and reads them: `apr_rfc822_date` and
//! `apr_date_parse_http`.  Reading stays Apache's own code, not
//! httpdate's parser: Apache accepts forms httpdate refuses (a one-digit
//! day, trailing `; length=N` from old browsers, leading blanks) and
//! refuses dates httpdate accepts, and a precondition that parses
//! differently answers differently (304 against 200).

use std::time::{Duration, UNIX_EPOCH};

/// 9999-12-31 23:59:59 UTC, the last second httpdate formats.
const LAST_HTTPDATE: u64 = 253_402_300_799;

/// Days since 1970-01-01 → (year, month 1-12, day 1-31).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = (if mp < 10 { mp + 3 } else { mp - 9 }) as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

const DAY_NAMES: [&str; 7] = ["Thu", "Fri", "Sat", "Sun", "Mon", "Tue", "Wed"];
const MONTH_NAMES: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `apr_rfc822_date`: "Sun, 06 Nov 1994 08:49:37 GMT" for seconds since
/// the epoch.  Never panics, whatever the value.
pub fn http_date(secs: i64) -> String {
    // httpdate formats the years 1970..=9999 (every real clock and
    // file); a file's mtime may be anything (`touch -d 1960-01-01`),
    // which httpdate cannot represent, so those are formatted here.
    if let Ok(unsigned) = u64::try_from(secs) {
        if unsigned <= LAST_HTTPDATE {
            return httpdate::fmt_http_date(UNIX_EPOCH + Duration::from_secs(unsigned));
        }
    }
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    let wday = DAY_NAMES[days.rem_euclid(7) as usize];
    let month = MONTH_NAMES[(m as usize).saturating_sub(1) % 12];
    format!(
        "{wday}, {d:02} {month} {y} {:02}:{:02}:{:02} GMT",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// `apr_date_checkmask`: `@` upper-case letter, `$` lower-case letter,
/// `#` digit, `~` digit or space, `*` anything from here on, other
/// characters literally; the data must end where the mask ends.
fn checkmask(data: &[u8], mask: &[u8]) -> bool {
    for (i, &m) in mask.iter().enumerate() {
        let d = data.get(i).copied().unwrap_or(0);
        let ok = match m {
            b'*' => return true,
            b'@' => d.is_ascii_uppercase(),
            b'$' => d.is_ascii_lowercase(),
            b'#' => d.is_ascii_digit(),
            b'~' => d == b' ' || d.is_ascii_digit(),
            _ => d == m,
        };
        if !ok {
            return false;
        }
    }
    data.len() == mask.len()
}

/// `apr_date_parse_http`: RFC 1123, RFC 850 and asctime dates (anything
/// after the time is ignored, as Apache does), to seconds since the epoch.
/// `None` where Apache gets `APR_DATE_BAD`.
pub fn parse_http_date(date: &str) -> Option<i64> {
    let date = date.trim_start_matches(|c: char| c.is_ascii_whitespace());
    if date.is_empty() {
        return None;
    }
    // Skip the weekday: everything up to and including the first space.
    let d = &date.as_bytes()[date.find(' ')? + 1..];
    let num = |i: usize| -> i64 { i64::from(d[i].wrapping_sub(b'0')) };
    let (mut year, mday, mon_at, time_at);
    if checkmask(d, b"## @$$ #### ##:##:## *") {
        year = ((num(7) * 10 + num(8)) - 19) * 100;
        if year < 0 {
            return None;
        }
        year += num(9) * 10 + num(10);
        mday = num(0) * 10 + num(1);
        mon_at = 3;
        time_at = 12;
    } else if checkmask(d, b"##-@$$-## ##:##:## *") {
        year = num(7) * 10 + num(8);
        if year < 70 {
            year += 100;
        }
        mday = num(0) * 10 + num(1);
        mon_at = 3;
        time_at = 10;
    } else if checkmask(d, b"@$$ ~# ##:##:## ####*") {
        year = ((num(16) * 10 + num(17)) - 19) * 100;
        if year < 0 {
            return None;
        }
        year += num(18) * 10 + num(19);
        mday = if d[4] == b' ' { 0 } else { num(4) * 10 } + num(5);
        mon_at = 0;
        time_at = 7;
    } else if checkmask(d, b"# @$$ #### ##:##:## *") {
        year = ((num(6) * 10 + num(7)) - 19) * 100;
        if year < 0 {
            return None;
        }
        year += num(8) * 10 + num(9);
        mday = num(0);
        mon_at = 2;
        time_at = 11;
    } else {
        return None;
    }
    if mday <= 0 || mday > 31 {
        return None;
    }
    let hour = num(time_at) * 10 + num(time_at + 1);
    let min = num(time_at + 3) * 10 + num(time_at + 4);
    let sec = num(time_at + 6) * 10 + num(time_at + 7);
    if hour > 23 || min > 59 || sec > 61 {
        return None;
    }
    let mon = MONTH_NAMES
        .iter()
        .position(|m| m.as_bytes() == &d[mon_at..mon_at + 3])? as i64;
    if mday == 31 && matches!(mon, 3 | 5 | 8 | 10) {
        return None;
    }
    // February, with the leap year rule on years since 1900.
    if mon == 1
        && (mday > 29
            || (mday == 29 && ((year & 3) != 0 || (year % 100 == 0 && year % 400 != 100))))
    {
        return None;
    }
    // apr_time_exp_get: days since 1 March 1900, then since 1970.
    const DAYOFFSET: [i64; 12] = [306, 337, 0, 31, 61, 92, 122, 153, 184, 214, 245, 275];
    let y = if mon < 2 { year - 1 } else { year };
    let mut days = y * 365 + y / 4 - y / 100 + (y / 100 + 3) / 4;
    days += DAYOFFSET[mon as usize] + mday - 1;
    days -= 25508;
    let secs = ((days * 24 + hour) * 60 + min) * 60 + sec;
    if secs < 0 {
        return None;
    }
    Some(secs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        assert_eq!(http_date(784111777), "Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(http_date(0), "Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(http_date(951782400), "Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(
            parse_http_date("Sunday, 06-Nov-94 08:49:37 GMT"),
            Some(784111777)
        );
        assert_eq!(parse_http_date("Sun Nov  6 08:49:37 1994"), Some(784111777));
        assert_eq!(
            parse_http_date("Sun, 6 Nov 1994 08:49:37 GMT"),
            Some(784111777)
        );
        // Old IE appended "; length=N": Apache ignores what follows.
        assert_eq!(
            parse_http_date("Sun, 06 Nov 1994 08:49:37 GMT; length=12"),
            Some(784111777)
        );
        assert_eq!(
            parse_http_date("  Tue, 29 Feb 2000 00:00:00 GMT"),
            Some(951782400)
        );
        assert_eq!(parse_http_date("Mon, 29 Feb 1999 00:00:00 GMT"), None);
        assert_eq!(parse_http_date("Mon, 31 Apr 1999 00:00:00 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 nov 1994 08:49:37 GMT"), None);
        assert_eq!(parse_http_date("Sun, 06 Nov 1994 24:49:37 GMT"), None);
        assert_eq!(parse_http_date("Wed, 31 Dec 1969 23:59:59 GMT"), None);
        assert_eq!(parse_http_date("garbage"), None);
        assert_eq!(parse_http_date(""), None);
        assert_eq!(parse_http_date("x \u{e9}\u{e9}\u{e9}"), None);
        for s in [0i64, 1, 86_399, 1_234_567_890, 1_765_000_000] {
            assert_eq!(parse_http_date(&http_date(s)), Some(s));
        }
    }

    #[test]
    fn dates_outside_httpdates_range() {
        assert_eq!(http_date(-1), "Wed, 31 Dec 1969 23:59:59 GMT");
        assert_eq!(http_date(253_402_300_799), "Fri, 31 Dec 9999 23:59:59 GMT");
        assert_eq!(http_date(253_402_300_800), "Sat, 01 Jan 10000 00:00:00 GMT");
        let _ = http_date(i64::MIN);
        let _ = http_date(i64::MAX);
    }
}

//! The listing's sort order (`dsortf`) and the string comparisons it
//! uses: natural order for `VersionSort`, `strcasecmp` for `IgnoreCase`.

use super::entries::Ent;
use super::options::{IGNORE_CASE, VERSION_SORT};
use std::cmp::Ordering;

/// Sort order (`dsortf`).
pub(super) fn compare(e1: &Ent, e2: &Ent, key: u8, ascending: bool, opts: u32) -> Ordering {
    match (e1.parent, e2.parent) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    if e1.isdir != e2.isdir {
        return if e1.isdir {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let (c1, c2) = if ascending { (e1, e2) } else { (e2, e1) };
    let version = opts & VERSION_SORT != 0;
    let ignore_case = opts & IGNORE_CASE != 0;
    match key {
        b'M' => match c1.lm.cmp(&c2.lm) {
            Ordering::Equal => {}
            o => return o,
        },
        b'S' => match c1.size.cmp(&c2.size) {
            Ordering::Equal => {}
            o => return o,
        },
        b'D' => {
            let d1 = c1.desc.as_deref().unwrap_or("").as_bytes();
            let d2 = c2.desc.as_deref().unwrap_or("").as_bytes();
            let r = if version {
                strnatcmp(d1, d2, false)
            } else {
                d1.cmp(d2)
            };
            if r != Ordering::Equal {
                return r;
            }
        }
        _ => {}
    }
    let (n1, n2) = (c1.name.as_bytes(), c2.name.as_bytes());
    let mut result = Ordering::Equal;
    if version {
        if ignore_case {
            result = strnatcmp(n1, n2, true);
        }
        if result == Ordering::Equal {
            result = strnatcmp(n1, n2, false);
        }
    }
    if result == Ordering::Equal && ignore_case {
        result = strcasecmp(n1, n2);
    }
    if result == Ordering::Equal {
        result = n1.cmp(n2);
    }
    result
}

/// `apr_strnatcmp` / `apr_strnatcasecmp` (Martin Pool's natural order);
/// bytes compare as C `char`, which is signed on the platforms we run.
fn strnatcmp(a: &[u8], b: &[u8], fold: bool) -> Ordering {
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    let (mut ai, mut bi) = (0usize, 0usize);
    loop {
        let mut ca = at(a, ai);
        let mut cb = at(b, bi);
        while ca.is_ascii_whitespace() || ca == 0x0b {
            ai += 1;
            ca = at(a, ai);
        }
        while cb.is_ascii_whitespace() || cb == 0x0b {
            bi += 1;
            cb = at(b, bi);
        }
        if ca.is_ascii_digit() && cb.is_ascii_digit() {
            let fractional = ca == b'0' || cb == b'0';
            let r = if fractional {
                compare_left(&a[ai..], &b[bi..])
            } else {
                compare_right(&a[ai..], &b[bi..])
            };
            if r != Ordering::Equal {
                return r;
            }
        }
        if ca == 0 && cb == 0 {
            return Ordering::Equal;
        }
        if fold {
            ca = ca.to_ascii_uppercase();
            cb = cb.to_ascii_uppercase();
        }
        match (ca as i8).cmp(&(cb as i8)) {
            Ordering::Equal => {}
            o => return o,
        }
        ai += 1;
        bi += 1;
    }
}

fn compare_right(a: &[u8], b: &[u8]) -> Ordering {
    let mut bias = Ordering::Equal;
    let mut i = 0;
    loop {
        let ca = a.get(i).copied().unwrap_or(0);
        let cb = b.get(i).copied().unwrap_or(0);
        match (ca.is_ascii_digit(), cb.is_ascii_digit()) {
            (false, false) => return bias,
            (false, true) => return Ordering::Less,
            (true, false) => return Ordering::Greater,
            _ => {
                if bias == Ordering::Equal {
                    bias = ca.cmp(&cb);
                }
            }
        }
        i += 1;
    }
}

fn compare_left(a: &[u8], b: &[u8]) -> Ordering {
    let mut i = 0;
    loop {
        let ca = a.get(i).copied().unwrap_or(0);
        let cb = b.get(i).copied().unwrap_or(0);
        match (ca.is_ascii_digit(), cb.is_ascii_digit()) {
            (false, false) => return Ordering::Equal,
            (false, true) => return Ordering::Less,
            (true, false) => return Ordering::Greater,
            _ => match ca.cmp(&cb) {
                Ordering::Equal => {}
                o => return o,
            },
        }
        i += 1;
    }
}

/// C `strcasecmp` in the C locale.
fn strcasecmp(a: &[u8], b: &[u8]) -> Ordering {
    a.iter()
        .map(u8::to_ascii_lowercase)
        .cmp(b.iter().map(u8::to_ascii_lowercase))
}

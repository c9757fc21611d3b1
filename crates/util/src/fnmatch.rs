//! `apr_fnmatch`: shell wildcards (`*`, `?`, `[...]`, `\` escapes) for
//! `<Files>`, `Require`/ap_expr `-fnmatch`/`-strmatch`/`-strcmatch`,
//! and mod_autoindex's patterns.
//!
//! One implementation for the whole server, and a linear one: the
//! classic recursive matcher backtracks exponentially on patterns with
//! many stars (`*a*a*a*a*b` against a long name), which a customer's
//! `.htaccess` may hold.  Here only the last `*` is ever resumed (a
//! later star makes every earlier choice irrelevant), so a match takes
//! at most pattern × name steps, and the steps are charged to the
//! request's budget (`engine::budget`).  Nothing is refused: a pattern
//! with many stars matches exactly as fnmatch(3) says (an earlier
//! version gave up above eight stars and so failed open in a deny
//! block).

use crate::budget;

/// `APR_FNM_*` flags.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Flags {
    /// `APR_FNM_NOESCAPE`: a backslash is an ordinary character.
    pub noescape: bool,
    /// `APR_FNM_PATHNAME`: wildcards and brackets never match `/`.
    pub pathname: bool,
    /// `APR_FNM_PERIOD`: a leading `.` (of the name, or of a path segment
    /// with `pathname`) is matched only by a literal `.`.
    pub period: bool,
    /// `APR_FNM_CASE_BLIND`: ASCII letters match either case.
    pub casefold: bool,
}

impl Flags {
    pub const NONE: Flags = Flags {
        noescape: false,
        pathname: false,
        period: false,
        casefold: false,
    };
}

/// Whether `name` matches `pattern`.  Once the running request's budget
/// is spent nothing matches (the request then ends with a 500 whatever it
/// decided, so a `<Files>` deny block cannot fail open).
pub fn fnmatch(pattern: &[u8], name: &[u8], flags: Flags) -> bool {
    let (matched, steps) = matches(pattern, name, flags);
    budget::charge(budget::Work::Wildcard, steps) && matched
}

fn eq_byte(a: u8, b: u8, casefold: bool) -> bool {
    a == b || (casefold && a.eq_ignore_ascii_case(&b))
}

/// Whether `name[i]` is a period that only a literal `.` may match.
fn special_period(name: &[u8], i: usize, flags: Flags) -> bool {
    flags.period
        && name.get(i) == Some(&b'.')
        && (i == 0 || (flags.pathname && name[i - 1] == b'/'))
}

/// The match and the number of steps it took.
fn matches(pat: &[u8], name: &[u8], flags: Flags) -> (bool, u64) {
    let (mut p, mut i) = (0usize, 0usize);
    let mut steps: u64 = 1;
    // Where to resume after the last '*': (pattern index, name index).
    let mut star: Option<(usize, usize)> = None;
    loop {
        steps += 1;
        if p < pat.len() {
            if pat[p] == b'*' {
                // A star never swallows a special period.
                if special_period(name, i, flags) {
                    return (false, steps);
                }
                while p < pat.len() && pat[p] == b'*' {
                    p += 1;
                }
                star = Some((p, i));
                continue;
            }
            if let Some(&c) = name.get(i) {
                if let Some(np) = match_one(pat, p, c, special_period(name, i, flags), flags) {
                    p = np;
                    i += 1;
                    continue;
                }
            }
        } else if i == name.len() {
            return (true, steps);
        }
        match star {
            Some((sp, si))
                if si < name.len()
                    && !(flags.pathname && name[si] == b'/')
                    && !special_period(name, si + 1, flags) =>
            {
                star = Some((sp, si + 1));
                p = sp;
                i = si + 1;
            }
            _ => return (false, steps),
        }
    }
}

/// Matches one name byte against the pattern element at `p` (not a
/// star); the index after the element.  `period`: `c` is a leading
/// period, which only a literal `.` matches.
fn match_one(pat: &[u8], p: usize, c: u8, period: bool, flags: Flags) -> Option<usize> {
    let slash_ok = !(flags.pathname && c == b'/');
    match pat[p] {
        b'?' => (slash_ok && !period).then_some(p + 1),
        b'[' => match bracket(pat, p, c, flags) {
            Some((matched, next)) => (matched && slash_ok && !period).then_some(next),
            // An unterminated bracket is an ordinary character.
            None => eq_byte(b'[', c, flags.casefold).then_some(p + 1),
        },
        b'\\' if !flags.noescape && p + 1 < pat.len() => {
            eq_byte(pat[p + 1], c, flags.casefold).then_some(p + 2)
        }
        lit => eq_byte(lit, c, flags.casefold).then_some(p + 1),
    }
}

/// `[...]` as APR's `fnmatch_ch`: a leading `!` or `^` negates, a leading
/// `]` is literal, `a-z` ranges (`x-]` is not a range).  `None` if not
/// closed (or, with `pathname`, if it holds a `/`).
fn bracket(pat: &[u8], p: usize, c: u8, flags: Flags) -> Option<(bool, usize)> {
    let mut i = p + 1;
    let negate = matches!(pat.get(i), Some(b'!' | b'^'));
    if negate {
        i += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let mut lo = *pat.get(i)?;
        if lo == b']' && !first {
            return Some((matched != negate, i + 1));
        }
        first = false;
        if lo == b'\\' && !flags.noescape {
            i += 1;
            lo = *pat.get(i)?;
        }
        if flags.pathname && lo == b'/' {
            return None;
        }
        i += 1;
        if pat.get(i) == Some(&b'-') && pat.get(i + 1).is_some_and(|&h| h != b']') {
            let mut hi = pat[i + 1];
            i += 2;
            if hi == b'\\' && !flags.noescape {
                hi = *pat.get(i)?;
                i += 1;
            }
            if flags.pathname && hi == b'/' {
                return None;
            }
            let fold = |x: u8| {
                if flags.casefold {
                    x.to_ascii_lowercase()
                } else {
                    x
                }
            };
            if (lo..=hi).contains(&c)
                || (flags.casefold && (fold(lo)..=fold(hi)).contains(&fold(c)))
            {
                matched = true;
            }
        } else if eq_byte(lo, c, flags.casefold) {
            matched = true;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(p: &str, s: &str) -> bool {
        fnmatch(p.as_bytes(), s.as_bytes(), Flags::NONE)
    }

    #[test]
    fn basics() {
        assert!(m("*.php", "index.php"));
        assert!(m("wp-config.php", "wp-config.php"));
        assert!(!m("wp-config.php", "WP-CONFIG.PHP"));
        assert!(m(".ht*", ".htaccess"));
        assert!(m("[abc].txt", "b.txt"));
        assert!(!m("[!abc].txt", "b.txt"));
        assert!(m("[^abc].txt", "d.txt"));
        assert!(m("[a-c]?", "bz"));
        assert!(m("\\*", "*"));
        assert!(!m("\\*", "a"));
        assert!(m("[", "["));
        assert!(m("[]]", "]"));
        assert!(m("", ""));
        assert!(!m("", "a"));
        assert!(m("*", ""));
        assert!(m("a*b*c", "aXXbYYc"));
        assert!(!m("a*b*c", "aXXbYY"));
    }

    #[test]
    fn flags() {
        let path = Flags {
            pathname: true,
            ..Flags::NONE
        };
        assert!(!fnmatch(b"a*c", b"a/c", path));
        assert!(fnmatch(b"a/*", b"a/c", path));
        assert!(!fnmatch(b"a?c", b"a/c", path));
        assert!(fnmatch(b"a?c", b"a/c", Flags::NONE));
        let period = Flags {
            period: true,
            ..Flags::NONE
        };
        assert!(!fnmatch(b"*", b".hidden", period));
        assert!(!fnmatch(b"?hidden", b".hidden", period));
        assert!(fnmatch(b".*", b".hidden", period));
        assert!(fnmatch(b"\\.*", b".hidden", period));
        let noescape = Flags {
            noescape: true,
            ..Flags::NONE
        };
        assert!(fnmatch(b"a\\", b"a\\", noescape));
        assert!(!fnmatch(b"\\a", b"a", noescape));
        let fold = Flags {
            casefold: true,
            ..Flags::NONE
        };
        assert!(fnmatch(b"*.PHP", b"index.php", fold));
        assert!(fnmatch(b"[A-C]x", b"bX", fold));
    }

    #[test]
    fn many_stars_match_and_take_linear_steps() {
        // The recursive matcher took about 2^30 steps here (and the old
        // engine gave up above eight stars, failing open).
        let pattern = "*a".repeat(30) + "*b";
        let name = "a".repeat(200);
        let (matched, steps) = matches(pattern.as_bytes(), name.as_bytes(), Flags::NONE);
        assert!(!matched);
        assert!(steps <= (pattern.len() as u64 + 2) * (name.len() as u64 + 2));
        let name_b = "a".repeat(200) + "b";
        assert!(m(&pattern, &name_b));
        // Nine stars in a deny pattern still deny.
        assert!(m("*.*.*.*.*.*.*.*.*", "a.b.c.d.e.f.g.h.i"));
    }

    /// A reference: the plain recursive matcher, on short inputs.
    fn reference(p: &[u8], n: &[u8]) -> bool {
        match p.first() {
            None => n.is_empty(),
            Some(b'*') => (0..=n.len()).any(|k| reference(&p[1..], &n[k..])),
            Some(b'?') => !n.is_empty() && reference(&p[1..], &n[1..]),
            Some(&c) => !n.is_empty() && n[0] == c && reference(&p[1..], &n[1..]),
        }
    }

    proptest! {
        #[test]
        fn agrees_with_the_recursive_matcher(p in "[ab*?]{0,8}", n in "[ab]{0,10}") {
            prop_assert_eq!(m(&p, &n), reference(p.as_bytes(), n.as_bytes()));
        }
    }
}

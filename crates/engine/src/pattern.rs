//! Regular expressions with PCRE's semantics as Apache uses them.
//!
//! Apache compiles patterns with PCRE in byte mode (no UTF) and with its
//! default flags `AP_REG_DOTALL | AP_REG_DOLLAR_ENDONLY` (`util_pcre.c`):
//! `.` matches one byte including a newline, `$` matches only at the very
//! end, `\d`/`\w` are ASCII and `(?i)` folds ASCII only.  The `regex` crate
//! in bytes mode with Unicode off and `s` on gives exactly that.  Patterns that need
//! look-around or back-references (which `regex` cannot do) fall back to
//! `fancy-regex` with a backtracking limit.

use std::fmt;

/// Upper bound on the compiled size of one regex (the default of `regex` is
/// 10 MiB; one customer's pattern must not eat the server's memory).
const SIZE_LIMIT: usize = 2 * 1024 * 1024;
/// Backtracking budget for fancy-regex patterns.
const BACKTRACK_LIMIT: usize = 100_000;

/// A compiled pattern.  Behind an `Arc` so that copies (merged configs
/// copy their `<Files>`, `SetEnvIf` and header patterns) share one regex
/// and its pool of match caches: a fresh copy of a `regex::Regex` starts
/// with an empty pool and allocates its scratch space again at first use.
#[derive(Clone)]
pub enum Pattern {
    Fast(std::sync::Arc<regex::bytes::Regex>),
    Backtracking(std::sync::Arc<fancy_regex::Regex>),
}

impl fmt::Debug for Pattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Pattern::Fast(r) => write!(f, "Fast({:?})", r.as_str()),
            Pattern::Backtracking(r) => write!(f, "Backtracking({:?})", r.as_str()),
        }
    }
}

/// Captures of one match: byte ranges into the subject.
pub(crate) type Captures = Vec<Option<(usize, usize)>>;

impl Pattern {
    /// Compiles a PCRE-style pattern.  The error is the regex library's
    /// message, for the diagnostic.
    pub fn new(pcre: &str, nocase: bool) -> Result<Pattern, String> {
        let translated = translate(pcre);
        let fast = regex::bytes::RegexBuilder::new(&translated)
            .unicode(false)
            .case_insensitive(nocase)
            .dot_matches_new_line(true)
            .size_limit(SIZE_LIMIT)
            .build();
        match fast {
            Ok(r) => Ok(Pattern::Fast(std::sync::Arc::new(r))),
            Err(fast_err) => {
                let src = if nocase {
                    format!("(?is){translated}")
                } else {
                    format!("(?s){translated}")
                };
                match fancy_regex::RegexBuilder::new(&src)
                    .backtrack_limit(BACKTRACK_LIMIT)
                    .delegate_size_limit(SIZE_LIMIT)
                    .build()
                {
                    Ok(r) => Ok(Pattern::Backtracking(std::sync::Arc::new(r))),
                    Err(_) => Err(clean_error(&fast_err.to_string())),
                }
            }
        }
    }

    /// Whether this pattern needs the backtracking engine.
    pub(crate) fn is_backtracking(&self) -> bool {
        matches!(self, Pattern::Backtracking(_))
    }

    /// Searches `subject`; returns the capture ranges of the first match.
    /// A fancy-regex runtime error (backtrack limit) counts as no match.
    pub fn captures(&self, subject: &str) -> Option<Captures> {
        if !self.charge(subject) {
            return None;
        }
        match self {
            Pattern::Fast(r) => {
                let caps = r.captures(subject.as_bytes())?;
                Some(
                    (0..caps.len())
                        .map(|i| caps.get(i).map(|m| (m.start(), m.end())))
                        .collect(),
                )
            }
            Pattern::Backtracking(r) => {
                let caps = r.captures(subject).ok()??;
                Some(
                    (0..caps.len())
                        .map(|i| caps.get(i).map(|m| (m.start(), m.end())))
                        .collect(),
                )
            }
        }
    }

    /// Counts a search against the running request's budget
    /// (`budget`); `false` once it is spent.
    #[inline(always)]
    fn charge(&self, subject: &str) -> bool {
        htgate_util::budget::charge(htgate_util::budget::Work::Regex, self.units(subject))
    }

    /// What a search of `subject` costs in budget units.
    #[inline(always)]
    fn units(&self, subject: &str) -> u64 {
        use htgate_util::budget::{BACKTRACKING_SEARCH, LINEAR_SEARCH};
        let base = match self {
            Pattern::Fast(_) => LINEAR_SEARCH,
            Pattern::Backtracking(_) => BACKTRACKING_SEARCH,
        };
        base + subject.len() as u64
    }

    /// [`is_match`](Self::is_match) for a caller that charges the search
    /// itself, together with its other work (the rule loop: one charge per
    /// rule instead of two touches of the meter).  The search always runs:
    /// one search of a bounded subject past the budget, then the caller's
    /// charge fails.
    #[inline(always)]
    pub(crate) fn is_match_owing(&self, subject: &str, owed: &mut u64) -> bool {
        *owed += self.units(subject);
        self.search(subject)
    }

    /// Whether `subject` matches.  Once the request's budget is spent
    /// nothing matches (the request then ends with a 500 whatever it
    /// decided, so this cannot open anything).
    #[inline(always)]
    pub fn is_match(&self, subject: &str) -> bool {
        // The charge is inlined at the caller and the search stays small
        // enough to be inlined there too: with both in one out-of-line
        // body the compiler stopped inlining the regex crate's search
        // (about 40 instructions more per search, measured with
        // callgrind).
        self.charge(subject) && self.search(subject)
    }

    #[inline]
    fn search(&self, subject: &str) -> bool {
        match self {
            Pattern::Fast(r) => r.is_match(subject.as_bytes()),
            Pattern::Backtracking(r) => r.is_match(subject).unwrap_or(false),
        }
    }
}

/// `ap_pregsub` (util.c regsub_core), used by mod_alias's RedirectMatch and
/// mod_setenvif: `$0`..`$9` give the groups of the match (empty when a
/// group did not take part), a backslash makes the next character literal
/// (`\$1` is `$1`), everything else is copied.
pub(crate) fn pregsub(template: &str, subject: &str, caps: &Captures) -> String {
    let mut out = String::with_capacity(template.len());
    let mut chars = template.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '$' if chars.peek().is_some_and(|d| d.is_ascii_digit()) => {
                let n = chars.next().and_then(|d| d.to_digit(10)).unwrap_or(0) as usize;
                out.push_str(&capture_text(subject, caps, n));
            }
            '\\' if chars.peek().is_some() => {
                if let Some(next) = chars.next() {
                    out.push(next);
                }
            }
            _ => out.push(c),
        }
    }
    out
}

/// Text of capture `n` (empty when the group did not take part).
pub(crate) fn capture_text(subject: &str, caps: &Captures, n: usize) -> String {
    match caps.get(n).copied().flatten() {
        Some((s, e)) => String::from_utf8_lossy(&subject.as_bytes()[s..e]).into_owned(),
        None => String::new(),
    }
}

fn clean_error(msg: &str) -> String {
    // regex's messages are multi-line with a caret drawing; keep the last
    // line, which says what is wrong.
    msg.lines()
        .rev()
        .find(|l| l.trim_start().starts_with("error:"))
        .map(|l| {
            l.trim_start()
                .trim_start_matches("error:")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|| msg.lines().last().unwrap_or(msg).trim().to_string())
}

/// Rewrites PCRE syntax that `regex` reads differently: `\` before a
/// character that needs no escape (PCRE takes it literally) and `\Z`.
fn translate(pcre: &str) -> String {
    let mut out = String::with_capacity(pcre.len() + 8);
    let mut chars = pcre.chars().peekable();
    let mut in_class = false;
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) => {
                    if n.is_ascii_alphanumeric() {
                        match n {
                            'Z' if !in_class => out.push_str("(?:\\n?\\z)"),
                            'z'
                            | 'A'
                            | 'b'
                            | 'B'
                            | 'd'
                            | 'D'
                            | 'w'
                            | 'W'
                            | 's'
                            | 'S'
                            | 'n'
                            | 't'
                            | 'r'
                            | 'f'
                            | 'v'
                            | 'x'
                            | 'p'
                            | 'P'
                            | '1'..='9'
                            | '0' => {
                                out.push('\\');
                                out.push(n);
                            }
                            // PCRE: an unknown letter escape is the letter.
                            other => out.push(other),
                        }
                    } else if n.is_ascii() && !n.is_ascii_whitespace() && n != '\u{7f}' {
                        out.push('\\');
                        out.push(n);
                    } else if n == ' ' {
                        out.push_str("\\x20");
                    } else {
                        out.push(n);
                    }
                }
                None => out.push_str("\\\\"),
            },
            '[' if !in_class => {
                in_class = true;
                out.push('[');
                // A leading `]` or `^]` is literal in a class.
                if chars.peek() == Some(&'^') {
                    out.push('^');
                    chars.next();
                }
                if chars.peek() == Some(&']') {
                    out.push_str("\\]");
                    chars.next();
                }
            }
            '[' if in_class => {
                // POSIX classes like [:alpha:] stay; a lone '[' is literal.
                if chars.peek() == Some(&':') {
                    out.push('[');
                } else {
                    out.push_str("\\[");
                }
            }
            ']' if in_class => {
                in_class = false;
                out.push(']');
            }
            other => out.push(other),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pregsub_like_apache() {
        let p = Pattern::new("^/m/(\\w+)/(\\d+)$", false).expect("compiles");
        let subject = "/m/abc/12";
        let caps = p.captures(subject).expect("matches");
        assert_eq!(pregsub("/t?n=$2-$1", subject, &caps), "/t?n=12-abc");
        assert_eq!(pregsub("\\$1/$0/$7", subject, &caps), "$1//m/abc/12/");
    }

    #[test]
    fn dollar_end_only_and_dotall() {
        let p = Pattern::new("^a$", false).unwrap();
        assert!(p.is_match("a"));
        assert!(!p.is_match("a\n"), "AP_REG_DOLLAR_ENDONLY");
        assert!(!p.is_match("ab"));
        let p = Pattern::new("^x/(.*)$", false).unwrap();
        assert!(p.is_match("x/a\nb"), "AP_REG_DOTALL");
    }

    #[test]
    fn escaped_space_and_bytes() {
        let p = Pattern::new(r"^a\ b$", false).unwrap();
        assert!(p.is_match("a b"));
        let p = Pattern::new("^caf.$", false).unwrap();
        assert!(
            !p.is_match("café"),
            "`.` is one byte, as in PCRE without UTF"
        );
        let p = Pattern::new("^café$", false).unwrap();
        assert!(p.is_match("café"));
    }

    #[test]
    fn lookahead_falls_back() {
        let p = Pattern::new(r"/\.|^\.(?!well-known/)", false).unwrap();
        assert!(p.is_backtracking());
        assert!(p.is_match(".git/config"));
        assert!(!p.is_match(".well-known/security.txt"));
    }

    #[test]
    fn nocase_and_captures() {
        let p = Pattern::new("^files/(.*)$", true).unwrap();
        let caps = p.captures("FILES/B").unwrap();
        assert_eq!(capture_text("FILES/B", &caps, 1), "B");
    }

    #[test]
    fn bad_regex_is_error() {
        assert!(Pattern::new("^(unclosed$", false).is_err());
    }
}

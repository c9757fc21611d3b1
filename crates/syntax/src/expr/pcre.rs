//! The regexes of `=~` / `!~`, with PCRE semantics as close as the
//! available engines allow.
//!
//! Apache compiles them with `ap_pregcomp(.., AP_REG_EXTENDED [|ICASE])`
//! plus the default `AP_REG_DOTALL | AP_REG_DOLLAR_ENDONLY`, in PCRE's
//! byte (non-UTF) mode. So: `.` matches newlines, `$` only matches at the
//! very end, classes and case folding are ASCII. The `regex` crate's byte
//! API with Unicode off gives exactly that; patterns it cannot compile
//! (backreferences, lookaround, atomic groups, `\Z`, ...) go to
//! `fancy-regex` with a backtrack limit (PCRE's match limit: exceeding it
//! counts as no match).

/// Capture slots Apache keeps (`AP_MAX_REG_MATCH`).
pub(crate) const MAX_REG_MATCH: usize = 10;

/// Compiled-program size cap, so hostile patterns cannot eat memory.
const SIZE_LIMIT: usize = 4 * 1024 * 1024;

const BACKTRACK_LIMIT: usize = 100_000;

#[derive(Debug, Clone)]
pub(crate) enum Pcre {
    Fast(regex::bytes::Regex),
    Fancy(fancy_regex::Regex),
}

impl Pcre {
    pub(crate) fn new(pattern: &str, icase: bool) -> Result<Pcre, ()> {
        if let Ok(re) = regex::bytes::RegexBuilder::new(pattern)
            .unicode(false)
            .case_insensitive(icase)
            .dot_matches_new_line(true)
            .size_limit(SIZE_LIMIT)
            .build()
        {
            return Ok(Pcre::Fast(re));
        }
        let flags = if icase { "(?si)" } else { "(?s)" };
        fancy_regex::RegexBuilder::new(&format!("{flags}{}", translate(pattern)))
            .backtrack_limit(BACKTRACK_LIMIT)
            .delegate_size_limit(SIZE_LIMIT)
            .build()
            .map(Pcre::Fancy)
            .map_err(|_| ())
    }

    /// `re_nsub`: the number of capture groups.
    pub(crate) fn groups(&self) -> usize {
        match self {
            Pcre::Fast(re) => re.captures_len().saturating_sub(1),
            Pcre::Fancy(re) => re.captures_len().saturating_sub(1),
        }
    }

    /// Counts a search against the running request's budget
    /// (`engine::budget`; nothing matches once it is spent).
    fn charge(&self, s: &str) -> bool {
        use htgate_util::budget::{charge, Work, BACKTRACKING_SEARCH, LINEAR_SEARCH};
        let base = match self {
            Pcre::Fast(_) => LINEAR_SEARCH,
            Pcre::Fancy(_) => BACKTRACKING_SEARCH,
        };
        charge(Work::Regex, base + s.len() as u64)
    }

    pub(crate) fn is_match(&self, s: &str) -> bool {
        if !self.charge(s) {
            return false;
        }
        match self {
            Pcre::Fast(re) => re.is_match(s.as_bytes()),
            Pcre::Fancy(re) => re.is_match(s).unwrap_or(false),
        }
    }

    /// `$0`..`$9` of a match (`None` for groups that did not take part), or
    /// `None` if there is no match.
    pub(crate) fn captures(&self, s: &str) -> Option<Vec<Option<String>>> {
        if !self.charge(s) {
            return None;
        }
        let mut out = Vec::with_capacity(MAX_REG_MATCH);
        match self {
            Pcre::Fast(re) => {
                let caps = re.captures(s.as_bytes())?;
                for i in 0..MAX_REG_MATCH {
                    out.push(
                        caps.get(i)
                            .map(|m| String::from_utf8_lossy(m.as_bytes()).into_owned()),
                    );
                }
            }
            Pcre::Fancy(re) => {
                let caps = re.captures(s).ok()??;
                for i in 0..MAX_REG_MATCH {
                    out.push(caps.get(i).map(|m| m.as_str().to_string()));
                }
            }
        }
        Some(out)
    }
}

/// Rewrites PCRE escapes fancy-regex lacks: `\Z` (end, or before a final
/// newline) becomes `(?=\n?\z)`.
fn translate(pattern: &str) -> String {
    let mut out = String::with_capacity(pattern.len());
    let mut chars = pattern.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('Z') => out.push_str("(?=\\n?\\z)"),
            Some(n) => {
                out.push('\\');
                out.push(n);
            }
            None => out.push('\\'),
        }
    }
    out
}

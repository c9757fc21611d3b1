//! Matching names against the configured patterns: `IndexIgnore`, and
//! the icon, alt and description rules (`find_item`, `find_desc`).

use super::config::{DescRule, IconRule, ItemKind};
use htgate_util::fnmatch::{fnmatch, Flags};

/// `ap_strcmp_match` / `ap_strcasecmp_match`: `*` and `?` only, on bytes.
fn strcmp_match(s: &[u8], pat: &[u8], nocase: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut si, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < pat.len() && pat[pi] == b'*' {
            while pi < pat.len() && pat[pi] == b'*' {
                pi += 1;
            }
            star = Some((pi, si));
            continue;
        }
        if si == s.len() {
            if pi == pat.len() {
                return true;
            }
        } else if pi < pat.len() && (pat[pi] == b'?' || eq(pat[pi], s[si])) {
            si += 1;
            pi += 1;
            continue;
        }
        match star {
            Some((sp, ss)) if ss < s.len() => {
                star = Some((sp, ss + 1));
                pi = sp;
                si = ss + 1;
            }
            _ => return false,
        }
    }
}

/// Whether `name` is hidden by the `IndexIgnore` patterns.  As in
/// Apache only the last path segment of a pattern counts (`/a/b*` hides
/// `b…` in every directory below where it was written), matched with `*`
/// and `?` case-sensitively; the parent directory link is tested as
/// `..`.
pub(crate) fn is_ignored(name: &str, ignore: &[String]) -> bool {
    ignore.iter().any(|p| {
        let last = p.rsplit('/').next().unwrap_or(p);
        strcmp_match(name.as_bytes(), last.as_bytes(), false)
    })
}

/// `find_item`.  `path` is the entry's path (or a `^^…^^` token).
pub(super) fn find_item<'a>(
    list: &'a [IconRule],
    path: &str,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    path_only: bool,
) -> Option<&'a str> {
    let special = path.starts_with('^');
    for p in list {
        // Apache also checks the path against the directory the rule was
        // written for; the listed directory is always at or below it.
        if p.apply_to.is_empty() {
            return Some(&p.data);
        } else if p.kind == ItemKind::Path || special {
            if strcmp_match(path.as_bytes(), p.apply_to.as_bytes(), false) {
                return Some(&p.data);
            }
        } else if !path_only {
            match content_encoding {
                None => {
                    if p.kind == ItemKind::Type {
                        if let Some(ct) = content_type {
                            if strcmp_match(ct.as_bytes(), p.apply_to.as_bytes(), true) {
                                return Some(&p.data);
                            }
                        }
                    }
                }
                Some(enc) => {
                    if p.kind == ItemKind::Encoding
                        && strcmp_match(enc.as_bytes(), p.apply_to.as_bytes(), true)
                    {
                        return Some(&p.data);
                    }
                }
            }
        }
    }
    None
}

/// `find_desc`.
pub(super) fn find_desc(list: &[DescRule], full: &str) -> Option<String> {
    let only = full.rsplit('/').next().unwrap_or(full);
    for t in list {
        let name = if t.full_path { full } else { only };
        let found = if t.wildcards {
            fnmatch(t.pattern.as_bytes(), name.as_bytes(), Flags::NONE)
        } else {
            name.contains(t.pattern.as_str())
        };
        if found {
            return Some(t.description.clone());
        }
    }
    None
}

//! Apache's URL escaping and unescaping functions, byte for byte.
//!
//! Apache: `util.c` (`ap_escape_uri` = `ap_os_escape_path(p, s, 1)`,
//! `ap_unescape_url`), `gen_test_char.c` (`T_OS_ESCAPE_PATH`),
//! `mod_rewrite.c` (`escape_backref`, `escape_absolute_uri`).

const HEX_LOWER: &[u8; 16] = b"0123456789abcdef";

/// Bytes that `ap_os_escape_path` leaves alone: letters, digits and
/// `$-_.+!*'(),:;@&=/~` (gen_test_char.c: everything else is T_OS_ESCAPE_PATH).
fn is_path_safe(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'$' | b'-'
                | b'_'
                | b'.'
                | b'+'
                | b'!'
                | b'*'
                | b'\''
                | b'('
                | b')'
                | b','
                | b':'
                | b';'
                | b'@'
                | b'&'
                | b'='
                | b'/'
                | b'~'
        )
}

fn push_pct(out: &mut String, b: u8) {
    out.push('%');
    out.push(HEX_LOWER[(b >> 4) as usize] as char);
    out.push(HEX_LOWER[(b & 15) as usize] as char);
}

/// `ap_escape_uri`: %-escape every byte outside the path-safe set with
/// lower-case hex.  Case: flag-NE.
pub fn escape_uri(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &b in s.as_bytes() {
        if is_path_safe(b) {
            out.push(b as char);
        } else {
            push_pct(&mut out, b);
        }
    }
    out
}

/// `escape_absolute_uri`: escape the part after `scheme://host` of an
/// absolute URL (`skip` is the length of `scheme://`).  For `ldap` the
/// `?`-separated parts are escaped one by one.  Nothing is escaped when there
/// is no path.
pub fn escape_absolute_uri(uri: &str, skip: usize) -> String {
    let rest = match uri.get(skip..) {
        Some(r) => r,
        None => return uri.to_string(),
    };
    let Some(slash) = rest.find('/') else {
        return uri.to_string();
    };
    let host_end = skip + slash;
    let (head, path) = uri.split_at(host_end);
    if uri[..skip].eq_ignore_ascii_case("ldap://") {
        let parts: Vec<String> = path.split('?').map(escape_uri).collect();
        return format!("{head}{}", parts.join("?"));
    }
    // Not format!: this runs for every absolute redirect.
    let escaped = escape_uri(path);
    let mut out = String::with_capacity(head.len() + escaped.len());
    out.push_str(head);
    out.push_str(&escaped);
    out
}

/// How `[B]`-family flags escape back-references.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BackrefEscape {
    /// `B=chars`: only these bytes are escaped (plus controls with BCTLS).
    pub only: Option<Vec<u8>>,
    /// `BCTLS`: escape control characters and space.
    pub ctls: bool,
    /// `BNP`: a space becomes `%20` instead of `+`.
    pub no_plus: bool,
    /// `BNE=chars`: never escape these bytes.
    pub exempt: Vec<u8>,
    /// Whether plain `[B]` (escape all non-alphanumerics) is on.
    pub all: bool,
}

/// `escape_backref`: escape a back-reference for `[B]`, `[B=...]`,
/// `[BCTLS]`, `[BNP]`, `[BNE=...]`.  Case: flag-B.
pub fn escape_backref(s: &str, how: &BackrefEscape) -> String {
    rebuild_bytes(s, how)
}

fn rebuild_bytes(s: &str, how: &BackrefEscape) -> String {
    let mut out: Vec<u8> = Vec::with_capacity(s.len() + 8);
    for &b in s.as_bytes() {
        let mut escape = if let Some(only) = &how.only {
            only.contains(&b)
        } else {
            how.all && !(b.is_ascii_alphanumeric() || b == b'_')
        };
        if how.ctls && (b.is_ascii_control() || b == b' ') {
            escape = true;
        }
        if how.exempt.contains(&b) {
            escape = false;
        }
        if !escape {
            out.push(b);
        } else if b == b' ' && !how.no_plus {
            out.push(b'+');
        } else {
            out.push(b'%');
            out.push(HEX_LOWER[(b >> 4) as usize]);
            out.push(HEX_LOWER[(b & 15) as usize]);
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Why a %-decoding was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnescapeError {
    /// A `%` not followed by two hex digits: 400.
    BadEscape,
    /// `%2F` (AllowEncodedSlashes Off) or `%00`: 404.
    ForbiddenChar,
}

/// The byte of a `%xx` escape starting at `i`, if there is a valid one.
fn pct_byte(bytes: &[u8], i: usize) -> Option<u8> {
    let h = bytes.get(i + 1).copied().and_then(hex_val)?;
    let l = bytes.get(i + 2).copied().and_then(hex_val)?;
    Some(h * 16 + l)
}

fn hex_val(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

/// `ap_unescape_url` with `AllowEncodedSlashes Off`: decodes `%xx`; an
/// encoded `/` or NUL is refused (404), a malformed escape is 400.
/// Returns raw bytes (the path may not be UTF-8).
pub fn unescape_url(s: impl AsRef<[u8]>) -> Result<Vec<u8>, UnescapeError> {
    let bytes = s.as_ref();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    let mut bad = false;
    let mut forbidden = false;
    while i < bytes.len() {
        let b = bytes[i];
        if b == b'%' {
            match pct_byte(bytes, i) {
                Some(v) => {
                    if v == b'/' || v == 0 {
                        forbidden = true;
                    }
                    out.push(v);
                    i += 3;
                    continue;
                }
                None => {
                    bad = true;
                    out.push(b);
                }
            }
        } else {
            out.push(b);
        }
        i += 1;
    }
    // Apache checks the bad escape first (HTTP_BAD_REQUEST), then the
    // forbidden characters (HTTP_NOT_FOUND).
    if bad {
        Err(UnescapeError::BadEscape)
    } else if forbidden {
        Err(UnescapeError::ForbiddenChar)
    } else {
        Ok(out)
    }
}

/// `ap_normalize_path` with `AP_NORMALIZE_DECODE_UNRESERVED` and
/// `AP_NORMALIZE_MERGE_SLASHES`: decode %-escapes of unreserved characters,
/// merge `//`, resolve `.` and `..` segments.  Returns None when `..` would
/// climb above the root (400).  Case: encoded-urls.
pub fn normalize_path(raw: &str) -> Option<String> {
    // Decode unreserved characters first so that %2e%2e is seen as "..".
    let bytes = raw.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            if let Some(v) = pct_byte(bytes, i) {
                if v.is_ascii_alphanumeric() || matches!(v, b'-' | b'.' | b'_' | b'~') {
                    decoded.push(v);
                    i += 3;
                    continue;
                }
                // Keep other escapes, upper-cased hex as Apache does.
                decoded.push(b'%');
                decoded.push(bytes[i + 1].to_ascii_uppercase());
                decoded.push(bytes[i + 2].to_ascii_uppercase());
                i += 3;
                continue;
            }
        }
        decoded.push(bytes[i]);
        i += 1;
    }
    let s = String::from_utf8_lossy(&decoded).into_owned();
    if !s.starts_with('/') {
        return None;
    }
    let mut out: Vec<&str> = Vec::new();
    let segments: Vec<&str> = s[1..].split('/').collect();
    let n = segments.len();
    for (idx, seg) in segments.iter().enumerate() {
        let last = idx + 1 == n;
        match *seg {
            "" => {
                // merged slash; a trailing empty segment keeps the slash
                if last {
                    out.push("");
                }
            }
            "." => {
                if last {
                    out.push("");
                }
            }
            ".." => {
                out.pop()?;
                if last {
                    out.push("");
                }
            }
            other => out.push(other),
        }
    }
    let mut result = String::with_capacity(s.len());
    result.push('/');
    result.push_str(&out.join("/"));
    Some(result)
}

/// `ap_escape_html`: `<`, `>`, `&` and `"`.
pub fn escape_html(out: &mut Vec<u8>, s: &[u8]) {
    for &b in s {
        match b {
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'&' => out.extend_from_slice(b"&amp;"),
            b'"' => out.extend_from_slice(b"&quot;"),
            _ => out.push(b),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escape_uri_like_apache() {
        assert_eq!(escape_uri("/t.html#section2"), "/t.html%23section2");
        assert_eq!(escape_uri("/dir/café"), "/dir/caf%c3%a9");
        assert_eq!(escape_uri("a b%"), "a%20b%25");
        assert_eq!(escape_uri("x=1&y=$"), "x=1&y=$");
    }

    #[test]
    fn backref_escaping() {
        let b = BackrefEscape {
            all: true,
            ..Default::default()
        };
        assert_eq!(escape_backref("a&b=c", &b), "a%26b%3dc");
        assert_eq!(escape_backref("x y", &b), "x+y");
        assert_eq!(escape_backref("~user", &b), "%7euser");
        let bnp = BackrefEscape {
            all: true,
            no_plus: true,
            ..Default::default()
        };
        assert_eq!(escape_backref("x y", &bnp), "x%20y");
        let only = BackrefEscape {
            only: Some(b"&".to_vec()),
            ..Default::default()
        };
        assert_eq!(escape_backref("a&b c", &only), "a%26b c");
        assert_eq!(escape_backref("café", &b), "caf%c3%a9");
    }

    #[test]
    fn normalize() {
        assert_eq!(normalize_path("/sub/../t.html").as_deref(), Some("/t.html"));
        assert_eq!(
            normalize_path("/sub/%2e%2e/t.html").as_deref(),
            Some("/t.html")
        );
        assert_eq!(normalize_path("/../t.html"), None);
        assert_eq!(normalize_path("//t.html").as_deref(), Some("/t.html"));
        assert_eq!(normalize_path("/a/./b/").as_deref(), Some("/a/b/"));
        assert_eq!(normalize_path("/").as_deref(), Some("/"));
        assert_eq!(normalize_path("/a/..").as_deref(), Some("/"));
    }

    #[test]
    fn unescape() {
        assert_eq!(unescape_url("/a%20b").unwrap(), b"/a b");
        assert_eq!(unescape_url("/a%2Fb"), Err(UnescapeError::ForbiddenChar));
        assert_eq!(unescape_url("/a%00b"), Err(UnescapeError::ForbiddenChar));
        assert_eq!(unescape_url("/a%zz"), Err(UnescapeError::BadEscape));
    }
}

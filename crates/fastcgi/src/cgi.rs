//! The CGI response head at the start of STDOUT: header lines up to the
//! first empty line (`\r\n` or bare `\n` line ends, as Apache's
//! ap_scan_script_header accepts), `Status:` giving the status.

/// Finds the end of the head as STDOUT arrives, scanning each byte once.
#[derive(Debug, Default)]
pub(crate) struct HeadScanner {
    /// Start of the line not yet seen whole.
    line_start: usize,
}

impl HeadScanner {
    /// `Some((head_len, body_start))` once `buf` holds the empty line:
    /// `buf[..head_len]` are the header lines, `buf[body_start..]` is body.
    pub(crate) fn find_end(&mut self, buf: &[u8]) -> Option<(usize, usize)> {
        while let Some(offset) = buf[self.line_start..].iter().position(|&b| b == b'\n') {
            let newline = self.line_start + offset;
            let line = &buf[self.line_start..newline];
            if line.is_empty() || line == b"\r" {
                return Some((self.line_start, newline + 1));
            }
            self.line_start = newline + 1;
        }
        None
    }
}

/// A parsed head.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Head {
    pub status: u16,
    pub reason: Option<String>,
    pub headers: Vec<(String, String)>,
}

/// Parse the header lines (without the empty line). A line without a
/// colon is an error (Apache: "malformed header from script"); a line
/// starting with a space or tab continues the previous header; a name that
/// is not an HTTP token is dropped with a warning, since nothing could send
/// it on.
pub(crate) fn parse_head(head: &[u8]) -> Result<Head, String> {
    /// What a continuation line would continue.
    #[derive(PartialEq)]
    enum Last {
        Nothing,
        Header,
        /// Status or a dropped header: continuations are ignored.
        Skipped,
    }
    let mut status = None;
    let mut headers: Vec<(String, String)> = Vec::new();
    let mut last = Last::Nothing;
    for raw in head.split(|&b| b == b'\n') {
        let line = raw.strip_suffix(b"\r").unwrap_or(raw);
        if line.is_empty() {
            continue;
        }
        if matches!(line[0], b' ' | b'\t') {
            let more = String::from_utf8_lossy(trim(line));
            match (&last, headers.last_mut()) {
                (Last::Header, Some((_, value))) => {
                    if !more.is_empty() {
                        value.push(' ');
                        value.push_str(&more);
                    }
                }
                (Last::Skipped, _) => {}
                _ => return Err(format!("continuation line {more:?} before any header")),
            }
            continue;
        }
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            return Err(format!(
                "malformed CGI header line {:?} (no colon)",
                String::from_utf8_lossy(&line[..line.len().min(100)])
            ));
        };
        let name = &line[..colon];
        let value = String::from_utf8_lossy(trim(&line[colon + 1..])).into_owned();
        if name.eq_ignore_ascii_case(b"status") {
            status = Some(parse_status(&value)?);
            last = Last::Skipped;
            continue;
        }
        if name.is_empty() || !name.iter().all(|&b| is_token_byte(b)) {
            tracing::warn!(
                header = %String::from_utf8_lossy(name),
                "dropping a CGI header whose name is not an HTTP token"
            );
            last = Last::Skipped;
            continue;
        }
        // Token bytes are ASCII, so this is the name unchanged.
        headers.push((String::from_utf8_lossy(name).into_owned(), value));
        last = Last::Header;
    }
    let (status, reason) = status.unwrap_or((200, None));
    Ok(Head {
        status,
        reason,
        headers,
    })
}

/// `404`, `404 Not Found`; Apache requires a valid HTTP status.
fn parse_status(value: &str) -> Result<(u16, Option<String>), String> {
    let (code, reason) = match value.split_once([' ', '\t']) {
        Some((code, reason)) => (code, reason.trim()),
        None => (value, ""),
    };
    let status = match code.parse::<u16>() {
        Ok(s) if code.len() == 3 && (100..=599).contains(&s) => s,
        _ => return Err(format!("invalid Status {value:?} from script")),
    };
    let reason = (!reason.is_empty()).then(|| reason.to_string());
    Ok((status, reason))
}

fn trim(bytes: &[u8]) -> &[u8] {
    let start = bytes
        .iter()
        .position(|b| !matches!(b, b' ' | b'\t'))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !matches!(b, b' ' | b'\t'))
        .map_or(start, |i| i + 1);
    &bytes[start..end.max(start)]
}

/// RFC 9110 tchar.
fn is_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan(input: &[u8]) -> Option<(usize, usize)> {
        HeadScanner::default().find_end(input)
    }

    fn pairs(head: &Head) -> Vec<(&str, &str)> {
        head.headers
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }

    #[test]
    fn finds_the_end_with_crlf_lf_and_mixed() {
        assert_eq!(scan(b"A: b\r\n\r\nbody"), Some((6, 8)));
        assert_eq!(scan(b"A: b\n\nbody"), Some((5, 6)));
        assert_eq!(scan(b"A: b\n\r\nbody"), Some((5, 7)));
        assert_eq!(scan(b"A: b\r\n\nbody"), Some((6, 7)));
        assert_eq!(scan(b"\r\nbody"), Some((0, 2)));
        assert_eq!(scan(b"\nbody"), Some((0, 1)));
        assert_eq!(scan(b"A: b\r\nC: d\r\n"), None);
        assert_eq!(scan(b"A: b\r\n\r"), None);
    }

    #[test]
    fn finds_the_end_incrementally() {
        let input = b"Content-Type: text/html\r\nX-A: 1\r\n\r\n<html>";
        for split in 0..input.len() {
            let mut scanner = HeadScanner::default();
            let first = scanner.find_end(&input[..split]);
            let found = first.or_else(|| scanner.find_end(input));
            assert_eq!(found, Some((33, 35)), "split {split}");
        }
    }

    #[test]
    fn status_with_and_without_reason() {
        let head = parse_head(b"Status: 404 Not Found\r\nContent-Type: text/html\r\n").expect("ok");
        assert_eq!(head.status, 404);
        assert_eq!(head.reason.as_deref(), Some("Not Found"));
        assert_eq!(pairs(&head), vec![("Content-Type", "text/html")]);

        let head = parse_head(b"Status:302\nLocation: /x\n").expect("ok");
        assert_eq!((head.status, head.reason.as_deref()), (302, None));
        assert_eq!(pairs(&head), vec![("Location", "/x")]);

        let head = parse_head(b"status: 418 I'm a teapot  \n").expect("ok");
        assert_eq!(head.reason.as_deref(), Some("I'm a teapot"));
    }

    #[test]
    fn no_status_is_200() {
        let head = parse_head(b"Content-type: text/html; charset=UTF-8\r\n").expect("ok");
        assert_eq!((head.status, head.reason), (200, None));
        let head = parse_head(b"").expect("ok");
        assert_eq!((head.status, head.headers.len()), (200, 0));
    }

    #[test]
    fn bad_status_is_an_error() {
        for bad in ["abc", "20", "2000 x", "099", "600 Nope", ""] {
            let text = format!("Status: {bad}\n");
            assert!(parse_head(text.as_bytes()).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn keeps_repeated_headers_in_order() {
        let head = parse_head(
            b"Set-Cookie: a=1\r\nX-Powered-By: PHP\r\nSet-Cookie: b=2\r\nLocation:/y\r\n",
        )
        .expect("ok");
        assert_eq!(
            pairs(&head),
            vec![
                ("Set-Cookie", "a=1"),
                ("X-Powered-By", "PHP"),
                ("Set-Cookie", "b=2"),
                ("Location", "/y"),
            ]
        );
    }

    #[test]
    fn tolerates_missing_space_and_folds_continuations() {
        let head =
            parse_head(b"A:b\r\nB:\t c \r\nC: one\r\n  two\r\n\tthree\r\nD:\r\n").expect("ok");
        assert_eq!(
            pairs(&head),
            vec![("A", "b"), ("B", "c"), ("C", "one two three"), ("D", "")]
        );
    }

    #[test]
    fn rejects_lines_without_colon() {
        let err = parse_head(b"Content-Type: text/html\r\nGarbage line\r\n").expect_err("no colon");
        assert!(err.contains("Garbage line"), "{err}");
        assert!(parse_head(b" leading continuation\r\n").is_err());
    }

    #[test]
    fn drops_names_that_are_not_tokens() {
        let head = parse_head(b"Bad Name: x\r\n folded\r\nGood: y\r\n").expect("ok");
        assert_eq!(pairs(&head), vec![("Good", "y")]);
    }

    #[test]
    fn non_utf8_values_are_replaced_not_fatal() {
        let head = parse_head(b"X-Name: caf\xe9\r\n").expect("ok");
        assert_eq!(head.headers[0].1, "caf\u{fffd}");
    }
}

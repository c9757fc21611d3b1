//! Reading Apache access logs: a `LogFormat` string (the named formats
//! `combined`, `vhost_combined`, `common`, or any format string using
//! mod_log_config's directives) turned into a line parser, and each line
//! into the request to replay.

use regex::Regex;

/// `LogFormat` strings of Debian's apache2.conf.
pub(super) const COMBINED: &str = r#"%h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i""#;
pub(super) const VHOST_COMBINED: &str =
    r#"%v:%p %h %l %u %t "%r" %>s %O "%{Referer}i" "%{User-Agent}i""#;
pub(super) const COMMON: &str = r#"%h %l %u %t "%r" %>s %O"#;

/// What a format directive gives the replay.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Field {
    /// `%r`: the request line.
    Request,
    /// `%v` / `%V`: the virtual host's name.
    Vhost,
    /// `%p`: the server's port (443: the request came over TLS).
    Port,
    /// `%s` / `%>s`: the status Apache answered then.
    Status,
    /// `%{Name}i`: a request header.
    Header(String),
    /// Anything else: matched, not used.
    Other,
}

/// A parser for one `LogFormat`.
#[derive(Debug, Clone)]
pub struct LogParser {
    re: Regex,
    fields: Vec<Field>,
}

/// One log line's request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedRequest {
    /// Line number in the log.
    pub line: usize,
    pub method: String,
    /// The request target as logged (path and query, %-escapes kept).
    pub target: String,
    /// `%v`, when the format has it.
    pub vhost: Option<String>,
    /// `%p`, when the format has it.
    pub port: Option<u16>,
    /// The status Apache logged.
    pub status: Option<u16>,
    /// Request headers the format logged (`%{Name}i`), `-` values left out.
    pub headers: Vec<(String, String)>,
}

/// Why a line was not replayed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// The line does not fit the format.
    Malformed,
    /// Not GET or HEAD (bodies are never replayed).
    Method(String),
    /// No request line (`"-"`: a connection closed before a request).
    NoRequest,
}

impl LogParser {
    /// Builds a parser for a format name (`combined`, `vhost_combined`,
    /// `common`) or a `LogFormat` string.
    pub fn new(format: &str) -> Result<LogParser, String> {
        let format = match format {
            "combined" => COMBINED,
            "vhost_combined" => VHOST_COMBINED,
            "common" => COMMON,
            other => other,
        };
        let mut re = String::from("^");
        let mut fields = Vec::new();
        let mut chars = format.chars().peekable();
        let mut literal = String::new();
        let mut in_quotes = false;
        while let Some(c) = chars.next() {
            if c != '%' {
                if c == '"' {
                    in_quotes = !in_quotes;
                }
                literal.push(c);
                continue;
            }
            re.push_str(&regex::escape(&literal));
            literal.clear();
            // Modifiers: `<`, `>`, status lists like `!200,304`.
            let mut name = None;
            while let Some(&m) = chars.peek() {
                if m == '<' || m == '>' || m == '!' || m == ',' || m.is_ascii_digit() {
                    chars.next();
                } else if m == '{' {
                    chars.next();
                    let mut n = String::new();
                    for d in chars.by_ref() {
                        if d == '}' {
                            break;
                        }
                        n.push(d);
                    }
                    name = Some(n);
                } else {
                    break;
                }
            }
            let Some(directive) = chars.next() else {
                return Err(format!(
                    "format {format:?} ends in the middle of a directive"
                ));
            };
            if directive == '%' {
                re.push('%');
                continue;
            }
            let field = match (directive, name) {
                ('r', _) => Field::Request,
                ('v' | 'V', _) => Field::Vhost,
                ('p', None) => Field::Port,
                ('s', _) => Field::Status,
                ('i', Some(n)) => Field::Header(n),
                ('t', Some(_)) | ('t', None) => {
                    re.push_str(r"\[[^\]]*\]");
                    continue;
                }
                (c, _) if c.is_ascii_alphabetic() => Field::Other,
                (c, _) => return Err(format!("format {format:?}: unknown directive %{c}")),
            };
            // Inside quotes Apache escapes `"` and `\`, so a value is any
            // run of escaped or ordinary characters; outside, a word.
            re.push_str(if in_quotes {
                r#"((?:[^"\\]|\\.)*)"#
            } else {
                r"(\S*?)"
            });
            fields.push(field);
        }
        re.push_str(&regex::escape(&literal));
        re.push_str(r"\s*$");
        if !fields.contains(&Field::Request) {
            return Err(format!(
                "format {format:?} has no %r: the request line is needed to replay"
            ));
        }
        let re = Regex::new(&re).map_err(|e| format!("format {format:?}: {e}"))?;
        Ok(LogParser { re, fields })
    }

    /// Parses one line.
    pub fn parse(&self, line_no: usize, line: &str) -> Result<LoggedRequest, Skip> {
        let caps = self.re.captures(line).ok_or(Skip::Malformed)?;
        let mut req = LoggedRequest {
            line: line_no,
            method: String::new(),
            target: String::new(),
            vhost: None,
            port: None,
            status: None,
            headers: Vec::new(),
        };
        let mut request_line = None;
        for (i, f) in self.fields.iter().enumerate() {
            let raw = caps.get(i + 1).map_or("", |m| m.as_str());
            let value = unescape_log(raw);
            match f {
                Field::Request => request_line = Some(value),
                Field::Vhost => req.vhost = Some(value).filter(|v| v != "-"),
                Field::Port => req.port = value.parse().ok(),
                Field::Status => req.status = value.parse().ok(),
                Field::Header(n) => {
                    if value != "-" && !value.is_empty() {
                        req.headers.push((n.clone(), value));
                    }
                }
                Field::Other => {}
            }
        }
        let request_line = request_line.unwrap_or_default();
        let mut parts = request_line.split(' ');
        let (Some(method), Some(target)) = (parts.next(), parts.next()) else {
            return Err(Skip::NoRequest);
        };
        if method == "-" || target.is_empty() {
            return Err(Skip::NoRequest);
        }
        if method != "GET" && method != "HEAD" {
            return Err(Skip::Method(method.to_string()));
        }
        if !target.starts_with('/') {
            // An absolute-form target (`GET http://host/path`) or `*`:
            // replay the path of an absolute one.
            match target
                .split_once("://")
                .and_then(|(_, rest)| rest.find('/').map(|i| &rest[i..]))
            {
                Some(path) => req.target = path.to_string(),
                None => return Err(Skip::Malformed),
            }
        } else {
            req.target = target.to_string();
        }
        req.method = method.to_string();
        Ok(req)
    }
}

/// Undoes `ap_escape_logitem`: `\"`, `\\`, `\n`, `\t`… and `\xhh`.
fn unescape_log(s: &str) -> String {
    if !s.contains('\\') {
        return s.to_string();
    }
    let mut out = Vec::with_capacity(s.len());
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let c = b[i + 1];
            let simple = match c {
                b'n' => Some(b'\n'),
                b't' => Some(b'\t'),
                b'r' => Some(b'\r'),
                b'b' => Some(0x08),
                b'v' => Some(0x0b),
                b'"' => Some(b'"'),
                b'\\' => Some(b'\\'),
                _ => None,
            };
            if let Some(v) = simple {
                out.push(v);
                i += 2;
                continue;
            }
            if c == b'x' && i + 3 < b.len() + 1 {
                if let Some(v) = s
                    .get(i + 2..i + 4)
                    .and_then(|h| u8::from_str_radix(h, 16).ok())
                {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combined_line() {
        let p = LogParser::new("combined").expect("format");
        let line = r#"203.0.113.9 - - [07/Dec/2026:10:00:00 +0000] "GET /a?b=1 HTTP/1.1" 200 512 "https://ref.example/" "Mozilla/5.0 (X11; \"quoted\")""#;
        let r = p.parse(3, line).expect("parses");
        assert_eq!(r.method, "GET");
        assert_eq!(r.target, "/a?b=1");
        assert_eq!(r.status, Some(200));
        assert_eq!(r.vhost, None);
        assert_eq!(
            r.headers,
            vec![
                ("Referer".to_string(), "https://ref.example/".to_string()),
                (
                    "User-Agent".to_string(),
                    "Mozilla/5.0 (X11; \"quoted\")".to_string()
                ),
            ]
        );
    }

    #[test]
    fn vhost_combined_line_and_skips() {
        let p = LogParser::new("vhost_combined").expect("format");
        let line = r#"wp.test:443 198.51.100.7 - bob [07/Dec/2026:10:00:00 +0000] "HEAD /x HTTP/1.1" 301 0 "-" "-""#;
        let r = p.parse(1, line).expect("parses");
        assert_eq!((r.vhost.as_deref(), r.port), (Some("wp.test"), Some(443)));
        assert_eq!(r.method, "HEAD");
        assert!(r.headers.is_empty());
        let post = r#"wp.test:80 1.2.3.4 - - [07/Dec/2026:10:00:00 +0000] "POST /wp-login.php HTTP/1.1" 200 9 "-" "-""#;
        assert_eq!(p.parse(2, post), Err(Skip::Method("POST".into())));
        let none = r#"wp.test:80 1.2.3.4 - - [07/Dec/2026:10:00:00 +0000] "-" 408 0 "-" "-""#;
        assert_eq!(p.parse(3, none), Err(Skip::NoRequest));
        assert_eq!(p.parse(4, "garbage"), Err(Skip::Malformed));
    }

    #[test]
    fn custom_format_with_cookie_and_escapes() {
        let p = LogParser::new(r#"%h %t "%r" %>s "%{Cookie}i" "%{Host}i""#).expect("format");
        let line = r#"::1 [07/Dec/2026:10:00:00 +0000] "GET /caf\xc3\xa9 HTTP/1.1" 404 "a=1; b=2" "Shop.Test""#;
        let r = p.parse(1, line).expect("parses");
        assert_eq!(r.target, "/café");
        assert_eq!(r.headers[0], ("Cookie".into(), "a=1; b=2".into()));
        assert!(LogParser::new("%h %u").is_err(), "no %r");
    }
}

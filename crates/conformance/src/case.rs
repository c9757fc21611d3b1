//! `.case` files, parsed exactly as the oracle's `parse_case` does
//! (`/work/shared/conformance/oracle`, section "Case files"; the format is
//! described in FORMAT.md beside it).

use std::collections::HashSet;
use std::path::Path;
use std::sync::OnceLock;

use regex::Regex;
use serde_json::Value;

use crate::pycompat::{self, split_ws_once, splitlines_keepends, strip};

/// Response headers recorded for every request (the oracle's
/// `DEFAULT_HEADERS`), besides those a case names.
pub(crate) const DEFAULT_HEADERS: [&str; 5] = [
    "cache-control",
    "content-type",
    "set-cookie",
    "strict-transport-security",
    "vary",
];
pub(crate) const DEBUG_URI: &str = "x-debug-final-uri";
pub(crate) const DEBUG_QUERY: &str = "x-debug-final-query";

/// A regex compiled once into `cell`.
pub(crate) fn cached(cell: &'static OnceLock<Regex>, pattern: &str) -> &'static Regex {
    cell.get_or_init(|| Regex::new(pattern).expect("valid regex"))
}

/// The oracle's `MARKER`: `-- NAME --` (on the line without its "\n").
/// Whether a line is a section marker (`-- NAME --`).
pub(crate) fn is_marker(line: &str) -> bool {
    marker_re().is_match(line.trim_end_matches('\n'))
}

fn marker_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    cached(&R, r"^-- (.*?) --[ \t]*\r?$")
}

/// The oracle's `URL_RE`; Python's `\s` also matches U+001C..U+001F.
fn url_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    cached(&R, r"(?i)^(https?)://([^/?#\s\x{1c}-\x{1f}]*)(.*)$")
}

/// The oracle's `HOST_RE`: host (or bracketed IP literal) and optional port.
pub(crate) fn host_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    cached(&R, r"^(\[[0-9A-Fa-f:.]+\]|[^:\[\]]+)(?::(\d*))?$")
}

/// The oracle's `_IP_RE` (an IPv4 address or a bracketed IPv6 literal).
pub(crate) fn ip_re() -> &'static Regex {
    static R: OnceLock<Regex> = OnceLock::new();
    cached(&R, r"^(\d{1,3}(\.\d{1,3}){3}|\[[0-9a-f:.]+\])$")
}

/// The oracle's `TOKEN` (an HTTP token: method or header name).
pub(crate) fn is_token(s: &str) -> bool {
    !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+.^_`|~-".contains(c))
}

/// One request line of the `requests` section (the oracle's `Request`).
#[derive(Debug, Clone)]
pub struct Request {
    /// Line number in the case file.
    pub line: usize,
    /// The request line as written (stripped).
    pub text: String,
    pub method: String,
    pub url: String,
    /// `http` or `https` (lower case).
    pub scheme: String,
    /// host[:port] as written: the Host header.
    pub authority: String,
    /// Without port: SNI and certificate name.
    pub host: String,
    /// The request-target sent on the wire.
    pub target: String,
    /// `(name, value)` from the ` | Name: value` parts, in order.
    pub headers: Vec<(String, String)>,
}

/// One `site/PATH` file section.
#[derive(Debug, Clone)]
pub struct SiteFile {
    /// Relative path, no leading slash.
    pub path: String,
    pub content: Vec<u8>,
    /// True when the body was empty and the content is `/PATH\n`.
    pub generated: bool,
    /// Line of the section marker.
    pub line: usize,
}

/// A parsed case file (the oracle's `Case`).
#[derive(Debug, Clone)]
pub struct Case {
    /// Name used in messages (the path as given).
    pub display: String,
    /// File name without `.case`.
    pub stem: String,
    /// The lines of the file, each with its terminator.
    pub lines: Vec<String>,
    /// Site files in section order (Python's dict order, which decides
    /// nothing but is kept).
    pub files: Vec<SiteFile>,
    pub dirs: Vec<String>,
    pub requests: Vec<Request>,
    /// Extra recorded headers (lower case), without the default ones.
    pub extra_headers: Vec<String>,
    /// `(line, object)` per expect line, when the section parsed.
    pub expect: Option<Vec<(usize, Value)>>,
    /// Line of the `-- expect --` marker.
    pub expect_line: Option<usize>,
    /// Why the expect section did not parse (fatal for checking only).
    pub expect_error: Option<String>,
}

impl Case {
    pub(crate) fn file(&self, path: &str) -> Option<&SiteFile> {
        self.files.iter().find(|f| f.path == path)
    }
}

/// A malformed case file; the message starts with `file:line:`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CaseError(pub String);

impl std::fmt::Display for CaseError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

struct Section {
    name: String,
    /// 1-based line of the marker.
    line: usize,
    /// Index of the first body line.
    start: usize,
    /// Index after the last body line.
    end: usize,
}

fn err(display: &str, line: usize, msg: impl std::fmt::Display) -> CaseError {
    CaseError(format!("{display}:{line}: {msg}"))
}

/// Reads and parses a case file (the oracle's `parse_case`).
pub fn parse_case_file(path: &Path, display: &str) -> Result<Case, CaseError> {
    let raw = std::fs::read(path).map_err(|e| CaseError(format!("{display}: cannot read: {e}")))?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    parse_case_bytes(&raw, display, &stem)
}

/// Parses the bytes of a case file (the oracle's `parse_case`).
pub fn parse_case_bytes(raw: &[u8], display: &str, stem: &str) -> Result<Case, CaseError> {
    let text = std::str::from_utf8(raw).map_err(|e| {
        let line = raw[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        err(display, line, "not valid UTF-8")
    })?;
    // Python's splitlines(keepends=True), then a "\n" added to a last line
    // that lacks one (even after a lone "\r").
    let mut lines: Vec<String> = splitlines_keepends(text)
        .into_iter()
        .map(String::from)
        .collect();
    if let Some(last) = lines.last_mut() {
        if !last.ends_with('\n') {
            last.push('\n');
        }
    }
    let mut case = Case {
        display: display.to_string(),
        stem: stem.to_string(),
        lines,
        files: Vec::new(),
        dirs: Vec::new(),
        requests: Vec::new(),
        extra_headers: Vec::new(),
        expect: None,
        expect_line: None,
        expect_error: None,
    };

    let mut sections: Vec<Section> = Vec::new();
    let nlines = case.lines.len();
    for (i, ln) in case.lines.iter().enumerate() {
        if let Some(m) = marker_re().captures(ln.trim_end_matches('\n')) {
            if let Some(cur) = sections.last_mut() {
                cur.end = i;
            }
            sections.push(Section {
                name: strip(&m[1]).to_string(),
                line: i + 1,
                start: i + 1,
                end: nlines,
            });
        }
    }
    if sections.is_empty() {
        return Err(err(
            display,
            1,
            "no sections: expected '-- site/PATH --', '-- requests --' markers",
        ));
    }

    let mut seen: Vec<(&str, usize)> = Vec::new();
    let mut expect_section: Option<&Section> = None;
    let mut file_paths: HashSet<String> = HashSet::new();
    for sec in &sections {
        let body: Vec<String> = case.lines[sec.start..sec.end].to_vec();
        let name = sec.name.as_str();
        if let Some(rel) = name.strip_prefix("site/") {
            parse_site(&mut case, &mut file_paths, sec, rel, &body)?;
        } else if let Some(kind) = ["requests", "headers", "expect"]
            .into_iter()
            .find(|k| *k == name)
        {
            if let Some((_, first)) = seen.iter().find(|(k, _)| *k == kind) {
                return Err(err(
                    display,
                    sec.line,
                    format!("duplicate '-- {kind} --' section (first at line {first})"),
                ));
            }
            seen.push((kind, sec.line));
            match kind {
                "requests" => parse_requests(&mut case, sec, &body)?,
                "headers" => parse_headers(&mut case, sec, &body)?,
                _ => expect_section = Some(sec),
            }
        } else {
            return Err(err(
                display,
                sec.line,
                format!(
                    "unknown section '-- {name} --' (expected site/PATH, requests, headers or expect)"
                ),
            ));
        }
    }
    let Some(&(_, requests_line)) = seen.iter().find(|(k, _)| *k == "requests") else {
        return Err(err(display, nlines, "no '-- requests --' section"));
    };
    if case.requests.is_empty() {
        return Err(err(display, requests_line, "the requests section is empty"));
    }
    if let Some(sec) = expect_section {
        case.expect_line = Some(sec.line);
        // Only fatal for checking; recording would rewrite it.
        match parse_expect(&case, sec) {
            Ok(v) => case.expect = Some(v),
            Err(e) => case.expect_error = Some(e.0),
        }
    }
    check_tree(&case)?;
    Ok(case)
}

/// The oracle's `_parse_site`.
fn parse_site(
    case: &mut Case,
    file_paths: &mut HashSet<String>,
    sec: &Section,
    rel: &str,
    body: &[String],
) -> Result<(), CaseError> {
    let line = sec.line;
    if rel.is_empty() {
        return Err(err(&case.display, line, "empty site path"));
    }
    let is_dir = rel.ends_with('/');
    let parts: Vec<&str> = rel.trim_end_matches('/').split('/').collect();
    for p in &parts {
        if p.is_empty() || *p == "." || *p == ".." || p.contains('\\') || p.contains('\0') {
            return Err(err(
                &case.display,
                line,
                format!(
                    "bad site path {rel:?}: use a relative path without '.', '..' or empty segments"
                ),
            ));
        }
    }
    let clean = parts.join("/");
    if file_paths.contains(&clean) || case.dirs.contains(&clean) {
        return Err(err(
            &case.display,
            line,
            format!("site path {rel:?} given twice"),
        ));
    }
    let content: String = body.concat();
    if is_dir {
        if !strip(&content).is_empty() {
            return Err(err(
                &case.display,
                line,
                format!("directory section {rel:?} must have an empty body"),
            ));
        }
        case.dirs.push(clean);
        return Ok(());
    }
    // An empty (or blank) body means "the file's own path and a newline",
    // so that a 200 answer's body names the file served.
    let (content, generated) = if strip(&content).is_empty() {
        (format!("/{clean}\n").into_bytes(), true)
    } else {
        (content.into_bytes(), false)
    };
    file_paths.insert(clean.clone());
    case.files.push(SiteFile {
        path: clean,
        content,
        generated,
        line,
    });
    Ok(())
}

/// The oracle's `_check_tree`: no file may be the parent of another path.
fn check_tree(case: &Case) -> Result<(), CaseError> {
    let everything = case.files.iter().map(|f| &f.path).chain(case.dirs.iter());
    for p in everything {
        let parts: Vec<&str> = p.split('/').collect();
        for i in 1..parts.len() {
            let parent = parts[..i].join("/");
            if let Some(f) = case.file(&parent) {
                return Err(err(
                    &case.display,
                    f.line,
                    format!("site path {parent:?} is a file but {p:?} needs it to be a directory"),
                ));
            }
        }
    }
    Ok(())
}

/// The oracle's `_parse_requests`.
fn parse_requests(case: &mut Case, sec: &Section, body: &[String]) -> Result<(), CaseError> {
    for (k, ln) in body.iter().enumerate() {
        let lineno = sec.start + k + 1;
        let s = ln.trim_end_matches(['\r', '\n']);
        if strip(s).is_empty() || pycompat::lstrip(s).starts_with('#') {
            continue;
        }
        let parts: Vec<&str> = s.split(" | ").collect();
        let head = strip(parts[0]);
        let bits = split_ws_once(head);
        if bits.len() != 2 {
            return Err(err(
                &case.display,
                lineno,
                format!("a request is 'METHOD URL [| Header: value]...', got {s:?}"),
            ));
        }
        let (method, url) = (bits[0], strip(bits[1]));
        if !is_token(method) {
            return Err(err(&case.display, lineno, format!("bad method {method:?}")));
        }
        let Some(m) = url_re().captures(url) else {
            return Err(err(
                &case.display,
                lineno,
                format!("URL must start with http:// or https://, got {url:?}"),
            ));
        };
        let scheme = m[1].to_lowercase();
        let authority = m[2].to_string();
        let hm = host_re()
            .captures(&authority)
            .filter(|_| !authority.is_empty());
        let Some(hm) = hm else {
            return Err(err(
                &case.display,
                lineno,
                format!("URL {url:?} has no usable host"),
            ));
        };
        let host = hm[1].to_string();
        let mut target = m[3].to_string();
        if let Some(i) = target.find('#') {
            target.truncate(i);
        }
        if target.starts_with('?') || target.is_empty() {
            target.insert(0, '/');
        }
        let mut headers = Vec::new();
        for part in &parts[1..] {
            let (name, value) = match part.split_once(':') {
                Some((n, v)) => (strip(n), Some(v)),
                None => (strip(part), None),
            };
            let Some(value) = value.filter(|_| is_token(name)) else {
                return Err(err(
                    &case.display,
                    lineno,
                    format!("bad header part {:?}: expected 'Name: value'", strip(part)),
                ));
            };
            headers.push((name.to_string(), strip(value).to_string()));
        }
        case.requests.push(Request {
            line: lineno,
            text: strip(s).to_string(),
            method: method.to_string(),
            url: url.to_string(),
            scheme,
            authority,
            host,
            target,
            headers,
        });
    }
    Ok(())
}

/// The oracle's `_parse_headers`: names to record besides the defaults.
/// Like the oracle, a default name (content-type...) listed here is kept,
/// which matters for the content-type rule in `summarize` (a listed
/// content-type is recorded on PHP answers too).
fn parse_headers(case: &mut Case, sec: &Section, body: &[String]) -> Result<(), CaseError> {
    for (k, ln) in body.iter().enumerate() {
        let lineno = sec.start + k + 1;
        let s = strip(ln);
        if s.is_empty() || s.starts_with('#') {
            continue;
        }
        if !is_token(s) {
            return Err(err(
                &case.display,
                lineno,
                format!("bad header name {s:?} (one name a line)"),
            ));
        }
        let s = s.to_lowercase();
        if s == DEBUG_URI || s == DEBUG_QUERY || s == "location" {
            return Err(err(
                &case.display,
                lineno,
                format!("{s} is recorded anyway; do not list it"),
            ));
        }
        if !case.extra_headers.contains(&s) {
            case.extra_headers.push(s);
        }
    }
    Ok(())
}

/// The oracle's `_parse_expect`: one JSON object with a status a line.
fn parse_expect(case: &Case, sec: &Section) -> Result<Vec<(usize, Value)>, CaseError> {
    let mut out = Vec::new();
    for k in sec.start..sec.end {
        let s = strip(&case.lines[k]);
        if s.is_empty() || s.starts_with('#') {
            continue;
        }
        let obj: Value = serde_json::from_str(s).map_err(|e| {
            err(
                &case.display,
                k + 1,
                format!("expect lines must be JSON objects: {e}"),
            )
        })?;
        if !obj.as_object().is_some_and(|o| o.contains_key("status")) {
            return Err(err(
                &case.display,
                k + 1,
                "expect line is not a JSON object with a status",
            ));
        }
        out.push((k + 1, obj));
    }
    Ok(out)
}

/// The oracle's `request_hosts`: host names of the requests (URL hosts,
/// then Host header overrides), lower case, in order of first use; only
/// names fit for a config file.  The server under test gets them as
/// `{hosts}` (ServerName, then ServerAliases).
pub(crate) fn request_hosts(case: &Case) -> Vec<String> {
    static CONF_HOST: OnceLock<Regex> = OnceLock::new();
    let conf_host = cached(&CONF_HOST, r"^[a-z0-9_.-]+$");
    let mut out: Vec<String> = Vec::new();
    for r in &case.requests {
        let mut cands = vec![r.host.clone()];
        for (n, v) in &r.headers {
            if n.to_lowercase() == "host" {
                if let Some(hm) = host_re().captures(strip(v)) {
                    cands.push(hm[1].to_string());
                }
            }
        }
        for h in cands {
            let h = h.to_lowercase();
            if conf_host.is_match(&h) && !out.contains(&h) {
                out.push(h);
            }
        }
    }
    out
}

/// The oracle's `case_hosts`: every name the certificate must cover,
/// `localhost` included, sorted.
pub(crate) fn case_hosts(case: &Case) -> Vec<String> {
    let mut hosts: Vec<String> = vec!["localhost".to_string()];
    let mut add = |h: String| {
        if !hosts.contains(&h) {
            hosts.push(h);
        }
    };
    for r in &case.requests {
        add(r.host.to_lowercase());
        for (n, v) in &r.headers {
            if n.to_lowercase() == "host" {
                if let Some(hm) = host_re().captures(strip(v)) {
                    add(hm[1].to_lowercase());
                }
            }
        }
    }
    hosts.sort();
    hosts
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<Case, CaseError> {
        parse_case_bytes(text.as_bytes(), "t.case", "t")
    }

    #[test]
    fn site_sections() {
        let c = parse(
            "comment\n-- site/index.html --\n\n  \n-- site/a/b.txt --\nline 1\r\nline 2\n\
             -- site/empty/ --\n-- site/x/.htaccess --\n# nothing\n\
             -- requests --\nGET http://www.example.com/\n-- site/last.txt --\nno newline",
        )
        .expect("parses");
        let f = |p: &str| c.file(p).expect("file").clone();
        assert_eq!(f("index.html").content, b"/index.html\n");
        assert!(f("index.html").generated);
        // Byte for byte, CRLF kept.
        assert_eq!(f("a/b.txt").content, b"line 1\r\nline 2\n");
        assert!(!f("a/b.txt").generated);
        assert_eq!(f("x/.htaccess").content, b"# nothing\n");
        // A missing final newline at the end of the file is added.
        assert_eq!(f("last.txt").content, b"no newline\n");
        assert_eq!(f("last.txt").line, 13);
        assert_eq!(c.dirs, vec!["empty"]);
        assert_eq!(
            c.files.iter().map(|f| f.path.as_str()).collect::<Vec<_>>(),
            vec!["index.html", "a/b.txt", "x/.htaccess", "last.txt"]
        );
        assert!(c.expect.is_none() && c.expect_error.is_none());
    }

    #[test]
    fn requests_and_header_parts() {
        let c = parse(
            "-- requests --\n# a comment\n\n\
             GET http://www.example.com/a%20b?x=1#frag | Accept: text/html |X-Y: 1 | X-Z:  a:b  \n\
             POST HTTPS://Shop.Example.COM:8443?q\n\
             GET   http://h.example  \r\n\
             OPTIONS http://[::1]:80/ | Host: other.example:81\n",
        )
        .expect("parses");
        let r = &c.requests;
        assert_eq!(r.len(), 4);
        assert_eq!(r[0].line, 4);
        assert_eq!(r[0].method, "GET");
        assert_eq!(r[0].url, "http://www.example.com/a%20b?x=1#frag");
        // Parts are separated by " | " exactly: "|X-Y" stays in the value.
        assert_eq!(r[0].target, "/a%20b?x=1");
        assert_eq!(
            r[0].headers,
            vec![
                ("Accept".to_string(), "text/html |X-Y: 1".to_string()),
                ("X-Z".to_string(), "a:b".to_string())
            ]
        );
        assert_eq!(r[1].scheme, "https");
        assert_eq!(r[1].authority, "Shop.Example.COM:8443");
        assert_eq!(r[1].host, "Shop.Example.COM");
        assert_eq!(r[1].target, "/?q");
        assert_eq!(r[2].target, "/");
        assert_eq!(r[2].text, "GET   http://h.example");
        assert_eq!(r[3].host, "[::1]");
        assert_eq!(
            request_hosts(&c),
            vec![
                "www.example.com",
                "shop.example.com",
                "h.example",
                "other.example"
            ]
        );
    }

    #[test]
    fn headers_and_expect_sections() {
        let c = parse(
            "-- site/a.html --\n-- headers --\n# extra\nX-Frame-Options\ncontent-type\nx-frame-options\n\
             -- requests --\nGET http://h/\nGET http://h/a\n-- expect --\n\
             {\"status\":301,\"location\":\"http://h/a\"}\n# ignored\n\n\
             {\"headers\":{\"vary\":[\"a\",\"b\"]},\"status\":200}\n",
        )
        .expect("parses");
        // Listed default names are kept (once), as in the oracle.
        assert_eq!(c.extra_headers, vec!["x-frame-options", "content-type"]);
        let e = c.expect.as_ref().expect("expect");
        assert_eq!(e.len(), 2);
        assert_eq!(e[0].0, 11);
        assert_eq!(e[0].1["status"], 301);
        assert_eq!(e[1].0, 14);
        assert_eq!(e[1].1["headers"]["vary"][1], "b");
        assert_eq!(c.expect_line, Some(10));

        let c = parse("-- requests --\nGET http://h/\n-- expect --\n{\"location\":\"/\"}\n")
            .expect("parses");
        assert_eq!(
            c.expect_error.as_deref(),
            Some("t.case:4: expect line is not a JSON object with a status")
        );
    }

    #[test]
    fn errors_as_the_oracle_reports_them() {
        let e = |t: &str| parse(t).expect_err("should fail").0;
        assert_eq!(
            e("just text\n"),
            "t.case:1: no sections: expected '-- site/PATH --', '-- requests --' markers"
        );
        assert_eq!(e("-- site/a --\n"), "t.case:1: no '-- requests --' section");
        assert_eq!(
            e("-- requests --\n# none\n"),
            "t.case:1: the requests section is empty"
        );
        assert!(
            e("-- requests --\nGET http://h/\n-- requests --\nGET http://h/\n")
                .starts_with("t.case:3: duplicate '-- requests --' section (first at line 1)")
        );
        assert!(e("-- other --\n").starts_with("t.case:1: unknown section '-- other --'"));
        assert!(e("-- site/../x --\n-- requests --\nGET http://h/\n").contains("bad site path"));
        assert!(e("-- site/d/ --\nbody\n-- requests --\nGET http://h/\n")
            .contains("must have an empty body"));
        assert!(
            e("-- site/a --\n-- site/a/b --\n-- requests --\nGET http://h/\n")
                .starts_with("t.case:1: site path \"a\" is a file")
        );
        assert!(e("-- requests --\nGET ftp://h/\n").starts_with("t.case:2: URL must start"));
        assert!(e("-- requests --\nGET http:///x\n").contains("has no usable host"));
        assert!(e("-- requests --\nGET http://h/ | NoColon\n").contains("bad header part"));
        assert!(e("-- requests --\nGET\n").contains("a request is 'METHOD URL"));
        assert!(e("-- requests --\nG(T http://h/\n").contains("bad method"));
        assert!(
            e("-- headers --\nlocation\n-- requests --\nGET http://h/\n")
                .contains("recorded anyway")
        );
        assert_eq!(
            parse_case_bytes(b"-- requests --\nGET http://h/\xff\n", "t.case", "t")
                .expect_err("not UTF-8")
                .0,
            "t.case:2: not valid UTF-8"
        );
    }
}

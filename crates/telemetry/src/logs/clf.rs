//! Apache's Combined Log Format, byte for byte:
//!
//! ```text
//! %h %l %u %t "%r" %>s %b "%{Referer}i" "%{User-agent}i"
//! ```
//!
//! and, for one stream serving many sites, Debian's `vhost_combined` prefix
//! `%v:%p ` in front of it.  Request-supplied text goes through
//! [`escape_logitem`], Apache's `ap_escape_logitem`, so that a client can
//! neither break a line nor forge a field.

use std::fmt::Write;
use std::net::IpAddr;

/// What one access-log line says.
#[derive(Debug, Clone)]
pub struct Entry {
    /// `%h`: the client's address (no DNS look-ups, as `HostnameLookups Off`).
    pub remote: IpAddr,
    /// `%t`, already formatted: `[10/Oct/2000:13:55:36 -0700]`.
    pub time: std::sync::Arc<str>,
    /// `%r`: the request line as received (`GET /a?b HTTP/1.1`).
    pub request_line: Vec<u8>,
    /// `%>s`: the final status.
    pub status: u16,
    /// `%b`: response body bytes sent (`-` when 0).
    pub bytes: u64,
    /// `%{Referer}i` (`None`: the header was absent).
    pub referer: Option<Vec<u8>>,
    /// `%{User-agent}i`.
    pub user_agent: Option<Vec<u8>>,
    /// `%v:%p` of `vhost_combined`: the site's ServerName and the local port.
    pub vhost: Option<(std::sync::Arc<str>, u16)>,
}

/// `ap_escape_logitem`: `"` and `\` get a backslash; `\b \n \r \t \v` their
/// C escapes; every other control byte, DEL and every byte with the high
/// bit set becomes `\xhh` (lower-case hex, as Apache's `c2x`).
pub(crate) fn escape_logitem(raw: &[u8], out: &mut String) {
    for &b in raw {
        match b {
            b'"' => out.push_str("\\\""),
            b'\\' => out.push_str("\\\\"),
            0x08 => out.push_str("\\b"),
            b'\n' => out.push_str("\\n"),
            b'\r' => out.push_str("\\r"),
            b'\t' => out.push_str("\\t"),
            0x0b => out.push_str("\\v"),
            0x20..=0x7e => out.push(char::from(b)),
            _ => {
                let _ = write!(out, "\\x{b:02x}");
            }
        }
    }
}

/// `%t` for now, formatted once per second and thread: a busy server
/// logs thousands of lines a second, and asking for the local time zone
/// and formatting a date for each of them showed in its profile.
pub fn now() -> std::sync::Arc<str> {
    use std::cell::RefCell;
    thread_local! {
        static LAST: RefCell<(i64, std::sync::Arc<str>)> = RefCell::new((i64::MIN, "".into()));
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    LAST.with(|last| {
        let mut last = last.borrow_mut();
        if last.0 != secs {
            *last = (secs, format_time(&chrono::Local::now()).into());
        }
        last.1.clone()
    })
}

/// `%t`'s form of a local time: `[23/Nov/2026:17:51:43 +0100]`.
pub fn format_time(t: &chrono::DateTime<chrono::Local>) -> String {
    t.format("[%d/%b/%Y:%H:%M:%S %z]").to_string()
}

/// The client address as Apache prints it: an IPv4 client on a dual-stack
/// socket is shown as IPv4.
pub(crate) fn client_ip(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
        v4 => v4,
    }
}

/// An address as `IpAddr`'s `Display` writes it, IPv4 without the
/// formatting machinery.
fn push_ip(out: &mut String, ip: IpAddr) {
    match ip {
        IpAddr::V4(v4) => {
            let mut b = itoa::Buffer::new();
            for (i, o) in v4.octets().iter().enumerate() {
                if i > 0 {
                    out.push('.');
                }
                out.push_str(b.format(*o));
            }
        }
        IpAddr::V6(v6) => {
            let _ = write!(out, "{v6}");
        }
    }
}

/// A quoted header field: absent is `-` (unquoted in Apache's output it is
/// `"-"`, since the quotes belong to the format), present is escaped.
fn push_header(out: &mut String, value: Option<&[u8]>) {
    out.push('"');
    match value {
        Some(v) => escape_logitem(v, out),
        None => out.push('-'),
    }
    out.push('"');
}

impl Entry {
    /// The line, with its newline.
    #[cfg(test)]
    fn to_line(&self) -> String {
        let mut out = String::with_capacity(
            160 + self.request_line.len()
                + self.user_agent.as_ref().map_or(0, Vec::len)
                + self.referer.as_ref().map_or(0, Vec::len),
        );
        self.write_line(&mut out);
        out
    }

    /// Appends the line, with its newline, to `out`.
    pub fn write_line(&self, out: &mut String) {
        if let Some((name, port)) = &self.vhost {
            // `%v` is the configured ServerName: not request data, but
            // escaped all the same so that a line always splits the same.
            escape_logitem(name.as_bytes(), out);
            out.push(':');
            out.push_str(itoa::Buffer::new().format(*port));
            out.push(' ');
        }
        // Pushed piece by piece: `write!` costs more than the rest of the
        // line (callgrind, issue 20), and this runs for every request.
        push_ip(out, client_ip(self.remote));
        out.push_str(" - - ");
        out.push_str(&self.time);
        out.push_str(" \"");
        escape_logitem(&self.request_line, out);
        out.push_str("\" ");
        out.push_str(itoa::Buffer::new().format(self.status));
        out.push(' ');
        if self.bytes == 0 {
            out.push('-');
        } else {
            out.push_str(itoa::Buffer::new().format(self.bytes));
        }
        out.push(' ');
        push_header(out, self.referer.as_deref());
        out.push(' ');
        push_header(out, self.user_agent.as_deref());
        out.push('\n');
    }
}

/// `%r` for a request: Apache keeps the line as the client sent it; over
/// HTTP/2 (no request line) it writes `METHOD /path?query HTTP/2.0`.
pub fn request_line(method: &http::Method, uri: &http::Uri, version: http::Version) -> Vec<u8> {
    let origin = uri.scheme().is_none() && uri.authority().is_none();
    let absolute;
    let target = if version >= http::Version::HTTP_2 || origin {
        // Origin form is the path and query as sent.
        uri.path_and_query().map_or("/", |p| p.as_str())
    } else {
        // Absolute form (a proxy-style request): scheme and authority too.
        absolute = uri.to_string();
        absolute.as_str()
    };
    let version = match version {
        http::Version::HTTP_09 => "HTTP/0.9",
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    };
    let method = method.as_str();
    let mut line = Vec::with_capacity(method.len() + target.len() + version.len() + 2);
    line.extend_from_slice(method.as_bytes());
    line.push(b' ');
    line.extend_from_slice(target.as_bytes());
    line.push(b' ');
    line.extend_from_slice(version.as_bytes());
    line
}

#[cfg(test)]
mod tests {
    use super::*;

    fn esc(raw: &[u8]) -> String {
        let mut s = String::new();
        escape_logitem(raw, &mut s);
        s
    }

    #[test]
    fn escaping_is_apaches() {
        assert_eq!(esc(b"plain /a?b=c"), "plain /a?b=c");
        assert_eq!(esc(b"say \"hi\""), "say \\\"hi\\\"");
        assert_eq!(esc(b"a\\b"), "a\\\\b");
        assert_eq!(esc(b"\x08\n\r\t\x0b"), "\\b\\n\\r\\t\\v");
        assert_eq!(esc(b"\x00\x1b\x7f"), "\\x00\\x1b\\x7f");
        assert_eq!(esc("é".as_bytes()), "\\xc3\\xa9");
    }

    fn entry() -> Entry {
        Entry {
            remote: "::ffff:192.0.2.7".parse().expect("ip"),
            time: "[10/Oct/2000:13:55:36 -0700]".into(),
            request_line: b"GET /apache_pb.gif HTTP/1.0".to_vec(),
            status: 200,
            bytes: 2326,
            referer: Some(b"http://www.example.com/start.html".to_vec()),
            user_agent: Some(b"Mozilla/4.08 [en] (Win98; I ;Nav)".to_vec()),
            vhost: None,
        }
    }

    #[test]
    fn the_combined_line_of_apaches_documentation() {
        assert_eq!(
            entry().to_line(),
            "192.0.2.7 - - [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 200 2326 \"http://www.example.com/start.html\" \"Mozilla/4.08 [en] (Win98; I ;Nav)\"\n"
        );
    }

    #[test]
    fn empty_fields_and_vhost_prefix() {
        let mut e = entry();
        e.bytes = 0;
        e.referer = None;
        e.user_agent = Some(Vec::new());
        e.status = 304;
        e.vhost = Some(("example.com".into(), 443));
        assert_eq!(
            e.to_line(),
            "example.com:443 192.0.2.7 - - [10/Oct/2000:13:55:36 -0700] \"GET /apache_pb.gif HTTP/1.0\" 304 - \"-\" \"\"\n"
        );
    }

    #[test]
    fn hostile_fields_stay_on_one_line() {
        let mut e = entry();
        e.request_line = b"GET /\"x\\ HTTP/1.1".to_vec();
        e.user_agent = Some(b"evil\" 200 1 \"\n\x1b[31m".to_vec());
        let line = e.to_line();
        assert_eq!(line.matches('\n').count(), 1);
        assert!(line.contains("\"GET /\\\"x\\\\ HTTP/1.1\""), "{line}");
        assert!(
            line.ends_with("\"evil\\\" 200 1 \\\"\\n\\x1b[31m\"\n"),
            "{line}"
        );
    }

    #[test]
    fn request_lines() {
        let uri: http::Uri = "/a%20b?c=d".parse().expect("uri");
        assert_eq!(
            request_line(&http::Method::GET, &uri, http::Version::HTTP_11),
            b"GET /a%20b?c=d HTTP/1.1"
        );
        let uri: http::Uri = "https://example.com/x?y".parse().expect("uri");
        assert_eq!(
            request_line(&http::Method::POST, &uri, http::Version::HTTP_2),
            b"POST /x?y HTTP/2.0"
        );
        assert_eq!(
            request_line(&http::Method::GET, &uri, http::Version::HTTP_11),
            b"GET https://example.com/x?y HTTP/1.1"
        );
        let star: http::Uri = "*".parse().expect("uri");
        assert_eq!(
            request_line(&http::Method::OPTIONS, &star, http::Version::HTTP_10),
            b"OPTIONS * HTTP/1.0"
        );
    }

    #[test]
    fn time_format() {
        use chrono::TimeZone;
        let t = chrono::Local
            .with_ymd_and_hms(2000, 10, 10, 13, 55, 36)
            .single()
            .expect("a local time");
        let s = format_time(&t);
        assert!(s.starts_with("[10/Oct/2000:13:55:36 "), "{s}");
        assert_eq!(s.len(), "[10/Oct/2000:13:55:36 -0700]".len(), "{s}");
    }
}

//! What is compared of two answers to one replayed request: status,
//! `Location` (each server's own ports normalised away), `Content-Type`,
//! `Vary`, `Cache-Control`, the names `Set-Cookie` sets, and a digest of
//! the body — except for PHP pages, whose bodies and headers change from
//! one run to the next (times, nonces, session cookies): for those only
//! the status and the type are compared.

use ring::digest;
use serde_json::{json, Value};

use crate::client::Response;

/// One answer, as compared.
#[derive(Debug, Clone, Default)]
pub struct Answer {
    /// 0: no answer (see `error`).
    pub status: u16,
    pub location: Option<String>,
    pub content_type: Option<String>,
    pub vary: Option<String>,
    pub cache_control: Option<String>,
    /// Cookie names, in order.
    pub cookies: Vec<String>,
    /// SHA-256 of the body with the server's own ports taken out.
    pub digest: Option<String>,
    pub body_len: usize,
    /// `X-Powered-By: PHP…` was sent.
    pub powered_by_php: bool,
    pub error: Option<String>,
}

/// One field that differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldDiff {
    pub field: &'static str,
    pub apache: String,
    pub htgate: String,
}

fn joined(r: &Response, name: &str) -> Option<String> {
    let all = r.all(name);
    if all.is_empty() {
        None
    } else {
        Some(all.join(", "))
    }
}

/// `host:PORT` → `host` for the server's own ports, in a Location or a
/// body (a redirect page names the URL it points to).
fn drop_own_ports(text: &str, host: &str, ports: &[u16]) -> String {
    let mut out = text.to_string();
    for p in ports {
        for h in [host, "127.0.0.1", "localhost"] {
            out = out.replace(&format!("{h}:{p}"), h);
        }
    }
    out
}

impl Answer {
    /// Summarises a response from a server listening on `ports`, asked
    /// for `host`.
    pub(crate) fn of(r: &Response, host: &str, ports: &[u16]) -> Answer {
        if r.status == 0 {
            return Answer {
                error: r.error.clone().or(Some("no answer".into())),
                ..Answer::default()
            };
        }
        let body = String::from_utf8_lossy(&r.body);
        let normalised = drop_own_ports(&body, host, ports);
        let d = digest::digest(&digest::SHA256, normalised.as_bytes());
        let hex: String = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Answer {
            status: r.status,
            location: r.first("location").map(|l| drop_own_ports(l, host, ports)),
            content_type: joined(r, "content-type"),
            vary: joined(r, "vary"),
            cache_control: joined(r, "cache-control"),
            cookies: r
                .all("set-cookie")
                .iter()
                .filter_map(|c| c.split_once('=').map(|(n, _)| n.trim().to_string()))
                .collect(),
            digest: Some(hex[..16].to_string()),
            // Of what was compared (the server's own ports taken out).
            body_len: normalised.len(),
            powered_by_php: r
                .first("x-powered-by")
                .is_some_and(|v| v.to_ascii_lowercase().starts_with("php")),
            error: r.error.clone(),
        }
    }

    pub fn to_json(&self) -> Value {
        json!({
            "status": self.status, "location": self.location,
            "content_type": self.content_type, "vary": self.vary,
            "cache_control": self.cache_control, "cookies": self.cookies,
            "body_sha256_prefix": self.digest, "body_bytes": self.body_len,
            "error": self.error,
        })
    }
}

fn show(v: &Option<String>) -> String {
    v.clone().unwrap_or_else(|| "(absent)".into())
}

/// The fields that differ; for a PHP page only status and type.
pub fn differences(a: &Answer, h: &Answer, php: bool) -> Vec<FieldDiff> {
    let mut out = Vec::new();
    let mut push = |field: &'static str, x: String, y: String| {
        if x != y {
            out.push(FieldDiff {
                field,
                apache: x,
                htgate: y,
            });
        }
    };
    let status = |x: &Answer| {
        if x.status == 0 {
            format!("no answer ({})", x.error.clone().unwrap_or_default())
        } else {
            x.status.to_string()
        }
    };
    push("status", status(a), status(h));
    push("content-type", show(&a.content_type), show(&h.content_type));
    if php {
        return out;
    }
    push("location", show(&a.location), show(&h.location));
    push("vary", show(&a.vary), show(&h.vary));
    push(
        "cache-control",
        show(&a.cache_control),
        show(&h.cache_control),
    );
    push(
        "set-cookie names",
        a.cookies.join(", "),
        h.cookies.join(", "),
    );
    push("body", body(a), body(h));
    out
}

fn body(a: &Answer) -> String {
    match &a.digest {
        Some(d) => format!("{} bytes, sha256 {d}…", a.body_len),
        None => "(none)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn resp(status: u16, headers: &[(&str, &str)], body: &str) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.as_bytes().to_vec(),
            error: None,
            client_port: None,
        }
    }

    #[test]
    fn own_ports_are_normalised_and_php_compares_less() {
        let a = resp(
            301,
            &[("location", "http://wp.test:8080/x")],
            "<a href=\"http://wp.test:8080/x\">",
        );
        let h = resp(
            301,
            &[("location", "http://wp.test:9090/x")],
            "<a href=\"http://wp.test:9090/x\">",
        );
        let (a, h) = (
            Answer::of(&a, "wp.test", &[8080]),
            Answer::of(&h, "wp.test", &[9090]),
        );
        assert_eq!(a.location.as_deref(), Some("http://wp.test/x"));
        assert!(differences(&a, &h, false).is_empty());

        let a = resp(
            200,
            &[("content-type", "text/html"), ("set-cookie", "s=1; path=/")],
            "nonce 1",
        );
        let h = resp(
            200,
            &[("content-type", "text/html"), ("set-cookie", "t=2")],
            "nonce 2",
        );
        let (a, h) = (Answer::of(&a, "h", &[]), Answer::of(&h, "h", &[]));
        let d: Vec<&str> = differences(&a, &h, false).iter().map(|d| d.field).collect();
        assert_eq!(d, vec!["set-cookie names", "body"]);
        assert!(differences(&a, &h, true).is_empty());
    }
}

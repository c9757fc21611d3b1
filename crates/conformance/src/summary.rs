//! What is recorded from one answer and how two records are compared: the
//! oracle's `summarize` (with `_norm_location`, `_norm_root`,
//! `_cookie_expires`, `_is_php`, `unescape`) and `compare` / `fmt_val`.

use std::sync::OnceLock;

use regex::{Captures, Regex};
use serde_json::{Map, Value};

use crate::case::{cached, Case, DEBUG_QUERY, DEBUG_URI, DEFAULT_HEADERS};
use crate::client::Response;
use crate::pycompat::{decode_value, parsedate, py_int, py_round, timegm, unquote_to_bytes};

/// What a record depends on besides the answer: the document root's real
/// path and the two listener ports of this run.
#[derive(Debug, Clone)]
pub(crate) struct RunEnv {
    pub root: String,
    pub http_port: u16,
    pub https_port: u16,
}

/// The oracle's `unescape`: undo the debug headers' %-escaping (bytes read
/// as UTF-8, invalid bytes as `\xNN`).
pub(crate) fn unescape(value: &str) -> String {
    decode_value(&unquote_to_bytes(value))
}

/// The oracle's `_norm_root`.
pub(crate) fn norm_root(value: &str, env: &RunEnv) -> String {
    value.replace(&env.root, "{root}")
}

/// The oracle's `_norm_location`: `:PORT` after the host, where PORT is
/// this run's plain or TLS listener, read as 80 or 443 and dropped when it
/// is the scheme's default.
pub(crate) fn norm_location(loc: &str, env: &RunEnv) -> String {
    // r"^(https?)://([^/?#]*?):(\d+)(?=[/?#]|$)" with re.I; the look-ahead
    // only decides whether there is a match, so consuming it is the same.
    static R: OnceLock<Regex> = OnceLock::new();
    let re = cached(&R, r"(?i)^(https?)://([^/?#]*?):(\d+)(?:[/?#]|$)");
    let Some(m) = re.captures(loc) else {
        return loc.to_string();
    };
    let scheme = m[1].to_lowercase();
    let port = py_int(&m[3], 10);
    let virt = match port {
        Some(p) if p == env.http_port as i128 => Some(80),
        Some(p) if p == env.https_port as i128 => Some(443),
        _ => None,
    };
    let Some(virt) = virt else {
        return loc.to_string();
    };
    let digits = m.get(3).expect("group 3");
    let keep = if (scheme == "http" && virt == 80) || (scheme == "https" && virt == 443) {
        String::new()
    } else {
        format!(":{virt}")
    };
    format!(
        "{}{}{}",
        &loc[..digits.start() - 1],
        keep,
        &loc[digits.end()..]
    )
}

/// The seconds since the epoch of a Date header (the oracle's
/// `calendar.timegm(email.utils.parsedate_tz(date)[:9])`), or `None` where
/// the oracle falls back to `time.time()`.
fn date_base(date_header: Option<&str>) -> Option<i128> {
    let p = parsedate(date_header?)?;
    timegm(p[0], p[1], p[2], p[3], p[4], p[5])
}

const MONTHS: [&str; 12] = [
    "jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec",
];

/// The oracle's `_cookie_expires`: `expires=DATE` becomes
/// `expires={date+Ns}` when DATE is a whole number of minutes (within
/// 2 s) and less than 10 years away from the answer's Date header; other
/// dates are kept.  `now` stands for `time.time()` when the answer has no
/// usable Date header.
pub(crate) fn cookie_expires(value: &str, date_header: Option<&str>, now: f64) -> String {
    static R: OnceLock<Regex> = OnceLock::new();
    let re = cached(
        &R,
        r"(?i)(expires=)([A-Za-z]{3}, *(\d{1,2})[- ]([A-Za-z]{3})[- ](\d{2,4}) (\d{2}):(\d{2}):(\d{2}) GMT)",
    );
    re.replace_all(value, |m: &Captures<'_>| {
        let whole = m[0].to_string();
        let field = |i: usize| py_int(&m[i], 10);
        let t = (|| {
            let mut year = field(5)?;
            if year < 100 {
                year += if year < 70 { 2000 } else { 1900 };
            }
            let month = MONTHS.iter().position(|x| *x == m[4].to_lowercase())? as i128 + 1;
            timegm(year, month, field(3)?, field(6)?, field(7)?, field(8)?)
        })();
        let Some(t) = t else {
            return whole;
        };
        // int(round(t - base)): exact with an integer base, Python's
        // round-half-even with the float time.time().
        let delta: i128 = match date_base(date_header) {
            Some(base) => t - base,
            None => py_round(t as f64 - now) as i128,
        };
        let r60 = py_round(delta as f64 / 60.0) as i128 * 60;
        if (delta - r60).abs() > 2 || r60.abs() > 10 * 366 * 86400 {
            return whole;
        }
        format!("{}{{date{:+}s}}", &m[1], r60)
    })
    .into_owned()
}

/// The oracle's `_is_php`: the final resource is a `.php` file.
pub(crate) fn is_php(uri: Option<&str>, served: Option<&str>) -> bool {
    if served.is_some_and(|s| s.to_lowercase().ends_with(".php")) {
        return true;
    }
    // re.search(r"\.php(/|$)", uri, re.I); Python's `$` also matches
    // before a final "\n".
    static R: OnceLock<Regex> = OnceLock::new();
    let re = cached(&R, r"(?i)\.php(?:/|\n?\z)");
    uri.is_some_and(|u| !u.is_empty() && re.is_match(u))
}

/// The oracle's `summarize`: the record of one answer.
pub(crate) fn summarize(resp: &Response, case: &Case, env: &RunEnv, now: f64) -> Value {
    let mut out = Map::new();
    if resp.status == 0 {
        // No HTTP answer: see resp.error.
        out.insert("status".into(), Value::from(0));
        return Value::Object(out);
    }
    out.insert("status".into(), Value::from(resp.status));
    if let Some(loc) = resp.first("location") {
        let v = norm_root(&norm_location(loc, env), env);
        out.insert("location".into(), Value::from(v));
    }
    let ok = (200..300).contains(&resp.status);
    let mut uri: Option<String> = None;
    let mut served: Option<String> = None;
    if ok {
        // The one site file whose content is the body; none when two match.
        for f in &case.files {
            if !resp.body.is_empty() && resp.body == f.content {
                if served.is_some() {
                    served = None;
                    break;
                }
                served = Some(format!("/{}", f.path));
            }
        }
        if let Some(s) = &served {
            out.insert("served".into(), Value::from(s.clone()));
        }
        if let Some(u) = resp.first(DEBUG_URI) {
            let u = norm_root(&unescape(u), env);
            out.insert("uri".into(), Value::from(u.clone()));
            uri = Some(u);
        }
        if let Some(q) = resp.first(DEBUG_QUERY).filter(|q| !q.is_empty()) {
            out.insert("query".into(), Value::from(norm_root(&unescape(q), env)));
        }
    }
    let php = ok && is_php(uri.as_deref(), served.as_deref());
    let mut headers = Map::new();
    let names = DEFAULT_HEADERS.iter().map(|s| s.to_string()).chain(
        case.extra_headers
            .iter()
            .filter(|h| !DEFAULT_HEADERS.contains(&h.as_str()))
            .cloned(),
    );
    for name in names {
        let vals = resp.all(&name);
        if vals.is_empty() {
            continue;
        }
        // A redirect's or an error page's type is what a browser renders
        // it as, so it is recorded too; PHP output's type is PHP's
        // business unless the case lists content-type.
        if name == "content-type" && !case.extra_headers.contains(&name) && php {
            continue;
        }
        let vals: Vec<String> = vals
            .into_iter()
            .map(|v| {
                let v = if name == "set-cookie" {
                    cookie_expires(v, resp.first("date"), now)
                } else {
                    v.to_string()
                };
                norm_root(&v, env)
            })
            .collect();
        let v = if vals.len() == 1 {
            Value::from(vals[0].clone())
        } else {
            Value::from(vals)
        };
        headers.insert(name, v);
    }
    if !headers.is_empty() {
        out.insert("headers".into(), Value::Object(headers));
    }
    Value::Object(out)
}

/// Python's truth value of a JSON value.
fn truthy(v: &Value) -> bool {
    match v {
        Value::Null => false,
        Value::Bool(b) => *b,
        Value::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Value::String(s) => !s.is_empty(),
        Value::Array(a) => !a.is_empty(),
        Value::Object(o) => !o.is_empty(),
    }
}

/// Python's `==` on values from `json.loads` (1 == 1.0 == True).
pub(crate) fn py_eq(a: &Value, b: &Value) -> bool {
    let num = |v: &Value| match v {
        Value::Bool(b) => Some(if *b { 1.0 } else { 0.0 }),
        Value::Number(n) => n.as_f64(),
        _ => None,
    };
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => match (x.as_u64(), y.as_u64()) {
                (Some(x), Some(y)) => x == y,
                _ => x.as_f64() == y.as_f64(),
            },
        },
        (Value::Bool(_) | Value::Number(_), Value::Bool(_) | Value::Number(_)) => num(a) == num(b),
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| py_eq(p, q))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len() && x.iter().all(|(k, v)| y.get(k).is_some_and(|w| py_eq(v, w)))
        }
        _ => a == b,
    }
}

/// `dict.get(k)`: a JSON null reads as absent, like Python's None.
fn get<'a>(obj: &'a Value, k: &str) -> Option<&'a Value> {
    obj.get(k).filter(|v| !v.is_null())
}

fn opt_eq(a: Option<&Value>, b: Option<&Value>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => py_eq(a, b),
        _ => false,
    }
}

/// One differing field: (name, expected, got); `None` means absent.
pub(crate) type Diff = (String, Option<Value>, Option<Value>);

/// The oracle's `compare`: status, location, served, uri, query, any other
/// top-level keys sorted, then each header as `headers.NAME`, sorted.
pub(crate) fn compare(exp: &Value, got: &Value) -> Vec<Diff> {
    let mut diffs = Vec::new();
    let mut keys: Vec<String> = ["status", "location", "served", "uri", "query"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let mut others: Vec<String> = [exp, got]
        .iter()
        .filter_map(|v| v.as_object())
        .flat_map(|o| o.keys().cloned())
        .filter(|k| !keys.contains(k) && k != "headers")
        .collect();
    others.sort();
    others.dedup();
    keys.extend(others);
    for k in &keys {
        let (e, g) = (get(exp, k), get(got, k));
        if !opt_eq(e, g) {
            diffs.push((k.clone(), e.cloned(), g.cloned()));
        }
    }
    // `exp.get("headers") or {}`: a falsy value is no headers.  (A truthy
    // non-object makes the oracle crash; here it is one "headers" diff.)
    let headers = |v: &Value| -> Result<Map<String, Value>, Value> {
        match v.get("headers") {
            Some(h) if truthy(h) => h.as_object().cloned().ok_or_else(|| h.clone()),
            _ => Ok(Map::new()),
        }
    };
    match (headers(exp), headers(got)) {
        (Ok(eh), Ok(gh)) => {
            let mut names: Vec<&String> = eh.keys().chain(gh.keys()).collect();
            names.sort();
            names.dedup();
            for name in names {
                let (e, g) = (
                    eh.get(name).filter(|v| !v.is_null()),
                    gh.get(name).filter(|v| !v.is_null()),
                );
                if !opt_eq(e, g) {
                    diffs.push((format!("headers.{name}"), e.cloned(), g.cloned()));
                }
            }
        }
        (e, g) => diffs.push((
            "headers".into(),
            Some(e.map_or_else(|v| v, Value::Object)),
            Some(g.map_or_else(|v| v, Value::Object)),
        )),
    }
    diffs
}

/// The oracle's `fmt_val`: compact JSON with sorted keys, or `(absent)`.
pub(crate) fn fmt_val(v: Option<&Value>) -> String {
    match v {
        None => "(absent)".to_string(),
        Some(v) => serde_json::to_string(v).expect("JSON values serialise"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::parse_case_bytes;
    use serde_json::json;

    fn env() -> RunEnv {
        RunEnv {
            root: "/tmp/x/site".into(),
            http_port: 40001,
            https_port: 40002,
        }
    }

    fn resp(status: u16, headers: &[(&str, &str)], body: &[u8]) -> Response {
        Response {
            status,
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.to_string()))
                .collect(),
            body: body.to_vec(),
            error: None,
            client_port: None,
        }
    }

    fn case(extra: &str) -> Case {
        let text = format!(
            "-- site/index.html --\n-- site/a.php --\n-- site/same1.txt --\nsame\n-- site/same2.txt --\nsame\n\
             -- site/one.txt --\nonly\n{extra}-- requests --\nGET http://h/\n"
        );
        parse_case_bytes(text.as_bytes(), "t.case", "t").expect("parses")
    }

    #[test]
    fn locations_like_the_oracle() {
        // Expected values computed with the oracle's own _norm_location /
        // _norm_root for ports 40001 (plain) and 40002 (TLS).
        let cases = [
            ("http://www.example.com:40001/a", "http://www.example.com/a"),
            (
                "https://www.example.com:40001/a",
                "https://www.example.com:80/a",
            ),
            ("HTTPS://h:40002?x", "HTTPS://h?x"),
            ("http://h:40002#f", "http://h:443#f"),
            ("http://h:40003/", "http://h:40003/"),
            ("http://[::1]:40001/x", "http://[::1]/x"),
            ("http://a:b:40001/", "http://a:b/"),
            ("http://h:40001x/", "http://h:40001x/"),
            ("/rel:40001", "/rel:40001"),
            ("http://h/tmp/x/site/a", "http://h{root}/a"),
        ];
        for (loc, want) in cases {
            assert_eq!(
                norm_root(&norm_location(loc, &env()), &env()),
                want,
                "{loc}"
            );
        }
    }

    #[test]
    fn cookie_dates_like_the_oracle() {
        let date = Some("Mon, 23 Nov 2026 14:58:57 GMT");
        let cases = [
            (
                "a=1; expires=Mon, 23-Nov-2026 15:58:57 GMT; path=/",
                "a=1; expires={date+3600s}; path=/",
            ),
            (
                "a=1; Expires=Mon, 23 Nov 2026 14:57:58 GMT",
                "a=1; Expires={date-60s}",
            ),
            (
                "a=1; expires=Thu, 01 Jan 1970 00:00:00 GMT",
                "a=1; expires=Thu, 01 Jan 1970 00:00:00 GMT",
            ),
            (
                "a=1; expires=Mon, 23 Nov 2026 14:58:54 GMT",
                "a=1; expires=Mon, 23 Nov 2026 14:58:54 GMT",
            ),
            (
                "a=1; expires=Mon, 23 Nov 26 14:59:59 GMT",
                "a=1; expires={date+60s}",
            ),
            (
                "a=1; expires=Mon, 23 Xyz 2026 14:58:57 GMT",
                "a=1; expires=Mon, 23 Xyz 2026 14:58:57 GMT",
            ),
            (
                "a=1; expires=Mon, 23 Nov 2036 14:58:57 GMT",
                "a=1; expires={date+315619200s}",
            ),
        ];
        for (v, want) in cases {
            assert_eq!(cookie_expires(v, date, 0.0), want, "{v}");
        }
        // Without a Date header the answer's time is "now".
        assert_eq!(
            cookie_expires(
                "a=1; expires=Mon, 23 Nov 2026 15:58:57 GMT",
                None,
                1795445937.4
            ),
            "a=1; expires={date+3600s}"
        );
    }

    #[test]
    fn summary_of_a_2xx_answer() {
        let c = case("-- headers --\nX-Extra\n");
        let r = resp(
            200,
            &[
                ("content-type", "text/html"),
                ("x-debug-final-uri", "/index%2Ehtml%20x"),
                ("x-debug-final-query", "a=%2520&r=/tmp/x/site"),
                ("vary", "a"),
                ("vary", "b"),
                ("x-extra", "1"),
                ("x-other", "2"),
                ("location", "http://h:40001/"),
            ],
            b"/index.html\n",
        );
        assert_eq!(
            summarize(&r, &c, &env(), 0.0),
            json!({"status": 200, "location": "http://h/", "served": "/index.html",
                   "uri": "/index.html x", "query": "a=%20&r={root}",
                   "headers": {"content-type": "text/html", "vary": ["a", "b"], "x-extra": "1"}})
        );
        // Two files with that content: none is "served"; an empty query
        // header is no query; a PHP resource has no content-type.
        let r = resp(
            200,
            &[
                ("content-type", "text/plain"),
                ("x-debug-final-uri", "/a.PHP/extra"),
                ("x-debug-final-query", ""),
            ],
            b"same\n",
        );
        assert_eq!(
            summarize(&r, &c, &env(), 0.0),
            json!({"status": 200, "uri": "/a.PHP/extra"})
        );
        let r = resp(204, &[("content-type", "text/plain")], b"/a.php\n");
        assert_eq!(
            summarize(&r, &c, &env(), 0.0),
            json!({"status": 204, "served": "/a.php"})
        );
    }

    #[test]
    fn summary_of_other_answers() {
        // An error page's type is recorded; a listed content-type is
        // recorded on a PHP answer too.
        let c = case("-- headers --\ncontent-type\n");
        let r = resp(
            404,
            &[("content-type", "text/html"), ("x-debug-final-uri", "/x")],
            b"/index.html\n",
        );
        assert_eq!(
            summarize(&r, &c, &env(), 0.0),
            json!({"status": 404, "headers": {"content-type": "text/html"}})
        );
        let r = resp(
            200,
            &[
                ("content-type", "text/plain"),
                ("x-debug-final-uri", "/a.php"),
            ],
            b"x\n",
        );
        assert_eq!(
            summarize(&r, &c, &env(), 0.0),
            json!({"status": 200, "uri": "/a.php", "headers": {"content-type": "text/plain"}})
        );
        let r = resp(0, &[("content-type", "text/html")], b"");
        assert_eq!(summarize(&r, &c, &env(), 0.0), json!({"status": 0}));
        let r = resp(
            302,
            &[
                ("set-cookie", "a=1; expires=Mon, 23 Nov 2026 15:58:57 GMT"),
                ("date", "Mon, 23 Nov 2026 14:58:57 GMT"),
                ("set-cookie", "b=/tmp/x/site"),
            ],
            b"",
        );
        assert_eq!(
            summarize(&r, &c, &env(), 0.0),
            json!({"status": 302, "headers": {"set-cookie": ["a=1; expires={date+3600s}", "b={root}"]}})
        );
    }

    #[test]
    fn php_detection() {
        assert!(is_php(Some("/index.php"), None));
        assert!(is_php(Some("/x.PhP/a"), None));
        assert!(is_php(Some("/x.php\n"), None));
        assert!(!is_php(Some("/x.phpx"), None));
        assert!(!is_php(Some(""), None));
        assert!(is_php(None, Some("/A.PHP")));
        assert!(!is_php(None, None));
    }

    #[test]
    fn compare_field_by_field() {
        let exp = json!({"status": 301, "location": "/a", "headers": {"vary": "x"}, "zz": 1});
        let got =
            json!({"status": 301.0, "served": "/b", "headers": {"vary": ["x", "y"], "hsts": "1"}});
        let d = compare(&exp, &got);
        let fields: Vec<&str> = d.iter().map(|(f, _, _)| f.as_str()).collect();
        assert_eq!(
            fields,
            vec!["location", "served", "zz", "headers.hsts", "headers.vary"]
        );
        assert_eq!(fmt_val(d[0].1.as_ref()), "\"/a\"");
        assert_eq!(fmt_val(d[0].2.as_ref()), "(absent)");
        assert_eq!(fmt_val(d[4].2.as_ref()), "[\"x\",\"y\"]");
        // null is absent, {} headers are none, true == 1.
        assert!(compare(
            &json!({"status": 1, "location": null, "headers": {}}),
            &json!({"status": true})
        )
        .is_empty());
        assert_eq!(
            fmt_val(Some(&json!({"b": 1, "a": "é"}))),
            "{\"a\":\"é\",\"b\":1}"
        );
    }
}

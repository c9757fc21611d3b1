//! Apache 2.4's built-in error documents and reason phrases
//! (`modules/http/http_protocol.c`: `status_lines`,
//! `get_canned_error_string`, `ap_send_error_response`).
//!
//! Apache looks the page title up with `ap_index_of_response`, which maps
//! every status it does not know to "500 Internal Server Error"; the text
//! under the title is chosen by the real status, and statuses without a
//! text of their own get the 500 text.  Both quirks are kept.

use super::{empty_body, full_body, Body};
use bytes::Bytes;
use http::{header, HeaderValue, Method, Response, StatusCode};

/// The Content-Type of every built-in error document.
pub const ERROR_CONTENT_TYPE: &str = "text/html; charset=iso-8859-1";

/// Apache's compiled-in `ServerAdmin` (used in the 500 text).
pub(crate) const DEFAULT_SERVER_ADMIN: &str = "[no address given]";

/// The DOCTYPE of Apache 2.4.71's status pages (earlier 2.4 releases
/// wrote HTML 2.0's), byte for byte: the pages' lengths are Apache's.
const DOCTYPE_HTML_4_01: &str =
    "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\" \"http://www.w3.org/TR/html4/strict.dtd\">\n";

/// Apache's status line ("404 Not Found") for the statuses it knows.
fn status_line(code: u16) -> Option<&'static str> {
    Some(match code {
        100 => "100 Continue",
        101 => "101 Switching Protocols",
        102 => "102 Processing",
        103 => "103 Early Hints",
        200 => "200 OK",
        201 => "201 Created",
        202 => "202 Accepted",
        203 => "203 Non-Authoritative Information",
        204 => "204 No Content",
        205 => "205 Reset Content",
        206 => "206 Partial Content",
        207 => "207 Multi-Status",
        208 => "208 Already Reported",
        226 => "226 IM Used",
        300 => "300 Multiple Choices",
        301 => "301 Moved Permanently",
        302 => "302 Found",
        303 => "303 See Other",
        304 => "304 Not Modified",
        305 => "305 Use Proxy",
        307 => "307 Temporary Redirect",
        308 => "308 Permanent Redirect",
        400 => "400 Bad Request",
        401 => "401 Unauthorized",
        402 => "402 Payment Required",
        403 => "403 Forbidden",
        404 => "404 Not Found",
        405 => "405 Method Not Allowed",
        406 => "406 Not Acceptable",
        407 => "407 Proxy Authentication Required",
        408 => "408 Request Timeout",
        409 => "409 Conflict",
        410 => "410 Gone",
        411 => "411 Length Required",
        412 => "412 Precondition Failed",
        413 => "413 Request Entity Too Large",
        414 => "414 Request-URI Too Long",
        415 => "415 Unsupported Media Type",
        416 => "416 Requested Range Not Satisfiable",
        417 => "417 Expectation Failed",
        418 => "418 I'm A Teapot",
        421 => "421 Misdirected Request",
        422 => "422 Unprocessable Entity",
        423 => "423 Locked",
        424 => "424 Failed Dependency",
        425 => "425 Too Early",
        426 => "426 Upgrade Required",
        428 => "428 Precondition Required",
        429 => "429 Too Many Requests",
        431 => "431 Request Header Fields Too Large",
        451 => "451 Unavailable For Legal Reasons",
        500 => "500 Internal Server Error",
        501 => "501 Not Implemented",
        502 => "502 Bad Gateway",
        503 => "503 Service Unavailable",
        504 => "504 Gateway Timeout",
        505 => "505 HTTP Version Not Supported",
        506 => "506 Variant Also Negotiates",
        507 => "507 Insufficient Storage",
        508 => "508 Loop Detected",
        510 => "510 Not Extended",
        511 => "511 Network Authentication Required",
        _ => return None,
    })
}

/// The status line Apache uses as the error page title: unknown statuses
/// become "500 Internal Server Error" (`ap_index_of_response`).
fn title_line(status: StatusCode) -> &'static str {
    status_line(status.as_u16()).unwrap_or("500 Internal Server Error")
}

/// Apache's reason phrase ("Found", "Moved Permanently",
/// "Request Entity Too Large").  For a status Apache has no phrase for,
/// the IANA phrase if there is one, else "Unknown Reason" (what Apache
/// appends to a bare numeric status line).
pub fn reason(status: StatusCode) -> &'static str {
    match status_line(status.as_u16()) {
        // Every entry is "NNN Phrase"; get(4..) cannot fail on them.
        Some(line) => line.get(4..).unwrap_or(line),
        None => status.canonical_reason().unwrap_or("Unknown Reason"),
    }
}

/// `ap_escape_html` of a `str`: the escapes are ASCII, so the text stays
/// UTF-8.
fn html(s: &str) -> std::borrow::Cow<'_, str> {
    if !s.bytes().any(|b| matches!(b, b'<' | b'>' | b'&' | b'"')) {
        return std::borrow::Cow::Borrowed(s);
    }
    let mut out = Vec::with_capacity(s.len() + 8);
    htgate_util::escape::escape_html(&mut out, s.as_bytes());
    std::borrow::Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// Everything besides the status that Apache's error page text can show.
/// `Default` gives what a plain request without notes produces.
#[derive(Debug, Clone, Default)]
pub(crate) struct ErrorDetails<'a> {
    /// The `Location` of a redirect (3xx); missing means an empty link.
    pub location: Option<&'a str>,
    /// The request method (shown by 405, 411, 413, 501).
    pub method: &'a str,
    /// `ServerAdmin` (shown by the 500 text); `None` is Apache's default.
    pub server_admin: Option<&'a str>,
    /// The request note "error-notes" (400, 403, 411, 414, 417, 451, 501,
    /// 502 append it).
    pub error_notes: Option<&'a str>,
    /// The note "verbose-error-to" is "*": the 500 text is replaced by the
    /// error notes.
    pub verbose_error_notes: bool,
    /// The note "variant-list" (300 and 406, from mod_negotiation).
    pub variant_list: Option<&'a str>,
    /// The request's `Expect` header (417).
    pub expect: Option<&'a str>,
    /// A second error met while running an `ErrorDocument`.
    pub recursive_error: Option<StatusCode>,
    /// The `ServerSignature` block, see [`signature`]; `None` for
    /// `ServerSignature Off` (Apache's default).
    pub signature: Option<&'a str>,
}

/// `ap_psignature("<hr>\n", r)` for `ServerSignature On` (or `EMail` when
/// `admin_mail` is given): the block placed before `</body>`.
pub fn signature(banner: &str, server_name: &str, port: u16, admin_mail: Option<&str>) -> String {
    match admin_mail {
        Some(admin) => {
            let is_mailto = admin
                .get(..7)
                .is_some_and(|p| p.eq_ignore_ascii_case("mailto:"));
            format!(
                "<hr>\n<address>{banner} Server at <a href=\"{}{}\">{}</a> Port {port}</address>\n",
                if is_mailto { "" } else { "mailto:" },
                html(admin),
                html(server_name),
            )
        }
        None => format!(
            "<hr>\n<address>{banner} Server at {} Port {port}</address>\n",
            html(server_name)
        ),
    }
}

/// Apache's default error document for `status`, as sent for a request
/// with `method` (and `location` for redirects); no notes, no signature.
pub fn error_body(status: StatusCode, location: Option<&str>, method: &Method) -> Bytes {
    error_body_with(
        status,
        &ErrorDetails {
            location,
            method: method.as_str(),
            ..ErrorDetails::default()
        },
    )
}

/// `with_notes(prefix, note, suffix)`: Apache's `add_optional_notes`.
fn with_note(prefix: &str, note: Option<&str>, suffix: &str) -> String {
    format!("{prefix}{}{suffix}", note.unwrap_or(""))
}

/// `get_canned_error_string`: the text under the heading.
fn canned_text(status: StatusCode, d: &ErrorDetails<'_>) -> String {
    let method = html(d.method);
    let location = html(d.location.unwrap_or(""));
    match status.as_u16() {
        301 | 302 | 307 | 308 => {
            format!("<p>The document has moved <a href=\"{location}\">here</a>.</p>\n")
        }
        303 => format!(
            "<p>The answer to your request is located <a href=\"{location}\">here</a>.</p>\n"
        ),
        305 => "<p>This resource is only accessible through the proxy\n<br />\nYou will need \
                to configure your client to use that proxy.</p>\n"
            .to_string(),
        401 | 407 => "<p>This server could not verify that you\nare authorized to access the \
                      document\nrequested.  Either you supplied the wrong\ncredentials (e.g., \
                      bad password), or your\nbrowser doesn't understand how to supply\nthe \
                      credentials required.</p>\n"
            .to_string(),
        400 => with_note(
            "<p>Your browser sent a request that this server could not understand.<br />\n",
            d.error_notes,
            "</p>\n",
        ),
        403 => with_note(
            "<p>You don't have permission to access this resource.",
            d.error_notes,
            "</p>\n",
        ),
        404 => "<p>The requested URL was not found on this server.</p>\n".to_string(),
        405 => format!("<p>The requested method {method} is not allowed for this URL.</p>\n"),
        406 => with_note(
            "<p>An appropriate representation of the requested resource could not be found \
             on this server.</p>\n",
            d.variant_list,
            "",
        ),
        300 => with_note("", d.variant_list, ""),
        411 => with_note(
            &format!(
                "<p>A request of the requested method {method} requires a valid \
                 Content-length.<br />\n"
            ),
            d.error_notes,
            "</p>\n",
        ),
        412 => {
            "<p>The precondition on the request for this URL evaluated to false.</p>\n".to_string()
        }
        501 => with_note(
            &format!("<p>{method} not supported for current URL.<br />\n"),
            d.error_notes,
            "</p>\n",
        ),
        502 => with_note(
            "<p>The proxy server received an invalid\r\nresponse from an upstream \
             server.<br />\r\n",
            d.error_notes,
            "</p>\n",
        ),
        506 => "<p>A variant for the requested resource\n<pre>\n\n</pre>\nis itself a \
                negotiable resource. This indicates a configuration error.</p>\n"
            .to_string(),
        408 => "<p>Server timeout waiting for the HTTP request from the client.</p>\n".to_string(),
        410 => "<p>The requested resource is no longer available on this server and there \
                is no forwarding address.\nPlease remove all references to this \
                resource.</p>\n"
            .to_string(),
        413 => format!(
            "The requested resource does not allow request data with {method} requests, or \
             the amount of data provided in\nthe request exceeds the capacity limit.\n"
        ),
        414 => with_note(
            "<p>The requested URL's length exceeds the capacity\nlimit for this \
             server.<br />\n",
            d.error_notes,
            "</p>\n",
        ),
        415 => "<p>The supplied request data is not in a format\nacceptable for processing \
                by this resource.</p>\n"
            .to_string(),
        416 => "<p>None of the range-specifier values in the Range\nrequest-header field \
                overlap the current extent\nof the selected resource.</p>\n"
            .to_string(),
        417 => {
            let s1 = match d.expect {
                Some(expect) => format!(
                    "<p>The expectation given in the Expect request-header\nfield could not \
                     be met by this server.\nThe client sent<pre>\n    Expect: {}\n</pre>\n",
                    html(expect)
                ),
                None => "<p>No expectation was seen, the Expect request-header \nfield was \
                         not presented by the client.\n"
                    .to_string(),
            };
            with_note(
                &s1,
                d.error_notes,
                "</p><p>Only the 100-continue expectation is supported.</p>\n",
            )
        }
        422 => "<p>The server understands the media type of the\nrequest entity, but was \
                unable to process the\ncontained instructions.</p>\n"
            .to_string(),
        423 => "<p>The requested resource is currently locked.\nThe lock must be released \
                or proper identification\ngiven before the method can be applied.</p>\n"
            .to_string(),
        424 => "<p>The method could not be performed on the resource\nbecause the requested \
                action depended on another\naction and that other action failed.</p>\n"
            .to_string(),
        425 => "<p>The request could not be processed as TLS\nearly data and should be \
                retried.</p>\n"
            .to_string(),
        426 => "<p>The requested resource can only be retrieved\nusing SSL.  The server is \
                willing to upgrade the current\nconnection to SSL, but your client doesn't \
                support it.\nEither upgrade your client, or try requesting the page\nusing \
                https://\n"
            .to_string(),
        428 => "<p>The request is required to be conditional.</p>\n".to_string(),
        429 => {
            "<p>The user has sent too many requests\nin a given amount of time.</p>\n".to_string()
        }
        431 => "<p>The server refused this request because\nthe request header fields are \
                too large.</p>\n"
            .to_string(),
        507 => "<p>The method could not be performed on the resource\nbecause the server is \
                unable to store the\nrepresentation needed to successfully complete \
                the\nrequest.  There is insufficient free space left in\nyour storage \
                allocation.</p>\n"
            .to_string(),
        503 => "<p>The server is temporarily unable to service your\nrequest due to \
                maintenance downtime or capacity\nproblems. Please try again later.</p>\n"
            .to_string(),
        504 => "<p>The gateway did not receive a timely response\nfrom the upstream server \
                or application.</p>\n"
            .to_string(),
        508 => "<p>The server terminated an operation because\nit encountered an infinite \
                loop.</p>\n"
            .to_string(),
        510 => "<p>A mandatory extension policy in the request is not\naccepted by the \
                server for this resource.</p>\n"
            .to_string(),
        511 => "<p>The client needs to authenticate to gain\nnetwork access.</p>\n".to_string(),
        418 => "<p>The resulting entity body MAY be short and\nstout.</p>\n".to_string(),
        421 => "<p>The client needs a new connection for this\nrequest as the requested host \
                name does not match\nthe Server Name Indication (SNI) in use for \
                this\nconnection.</p>\n"
            .to_string(),
        451 => with_note(
            "<p>Access to this URL has been denied for legal reasons.<br />\n",
            d.error_notes,
            "</p>\n",
        ),
        _ => match d.error_notes {
            Some(notes) if d.verbose_error_notes => format!("{notes}<p />\n"),
            _ => format!(
                "<p>The server encountered an internal error or\nmisconfiguration and was \
                 unable to complete\nyour request.</p>\n<p>Please contact the server \
                 administrator at \n {} to inform them of the time this error occurred,\n and \
                 the actions you performed just before this error.</p>\n<p>More information \
                 about this error may be available\nin the server error log.</p>\n",
                html(d.server_admin.unwrap_or(DEFAULT_SERVER_ADMIN))
            ),
        },
    }
}

/// Apache's default error document with every detail under control.
/// 204 and 304 have no body (empty bytes).
pub(crate) fn error_body_with(status: StatusCode, details: &ErrorDetails<'_>) -> Bytes {
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return Bytes::new();
    }
    let title = title_line(status);
    // "folks decided they didn't want the error code in the H1 text"
    let h1 = title.get(4..).unwrap_or(title);
    let mut page = String::with_capacity(512);
    page.push_str(DOCTYPE_HTML_4_01);
    page.push_str("<html><head>\n<title>");
    page.push_str(title);
    page.push_str("</title>\n</head><body>\n<h1>");
    page.push_str(h1);
    page.push_str("</h1>\n");
    page.push_str(&canned_text(status, details));
    if let Some(second) = details.recursive_error {
        page.push_str("<p>Additionally, a ");
        page.push_str(title_line(second));
        page.push_str(
            "\nerror was encountered while trying to use an ErrorDocument to handle the \
             request.</p>\n",
        );
    }
    if let Some(sig) = details.signature {
        page.push_str(sig);
    }
    page.push_str("</body></html>\n");
    Bytes::from(page)
}

/// A complete default error response: status, `Content-Type`, `Location`
/// for redirects (and 201) when one is given, and the page (no body for
/// HEAD, 204 and 304).
pub fn error_response(
    status: StatusCode,
    method: &Method,
    location: Option<&str>,
) -> Response<Body> {
    let mut resp = Response::new(empty_body());
    *resp.status_mut() = status;
    if status == StatusCode::NO_CONTENT || status == StatusCode::NOT_MODIFIED {
        return resp;
    }
    let headers = resp.headers_mut();
    if status.is_redirection() || status == StatusCode::CREATED {
        if let Some(loc) = location.filter(|l| !l.is_empty()) {
            // A location that is not a valid header value is left out
            // rather than sent broken.
            if let Ok(v) = HeaderValue::from_str(loc) {
                headers.insert(header::LOCATION, v);
            }
        }
    }
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(ERROR_CONTENT_TYPE),
    );
    if *method != Method::HEAD {
        let body = error_body(status, location, method);
        headers.insert(header::CONTENT_LENGTH, HeaderValue::from(body.len()));
        *resp.body_mut() = full_body(body);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(status: u16, location: Option<&str>, method: &Method) -> String {
        let status = StatusCode::from_u16(status).expect("valid status");
        String::from_utf8(error_body(status, location, method).to_vec()).expect("utf-8")
    }

    #[test]
    fn not_found_page() {
        assert_eq!(
            text(404, None, &Method::GET),
            "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\" \"http://www.w3.org/TR/html4/strict.dtd\">\n\
             <html><head>\n\
             <title>404 Not Found</title>\n\
             </head><body>\n\
             <h1>Not Found</h1>\n\
             <p>The requested URL was not found on this server.</p>\n\
             </body></html>\n"
        );
    }

    #[test]
    fn moved_permanently_page_escapes_location() {
        assert_eq!(
            text(301, Some("http://example.com/a?b=1&c=\"<x>\""), &Method::GET),
            "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\" \"http://www.w3.org/TR/html4/strict.dtd\">\n\
             <html><head>\n\
             <title>301 Moved Permanently</title>\n\
             </head><body>\n\
             <h1>Moved Permanently</h1>\n\
             <p>The document has moved <a href=\"http://example.com/a?b=1&amp;c=&quot;&lt;x&gt;&quot;\">here</a>.</p>\n\
             </body></html>\n"
        );
        assert!(text(302, Some("/x"), &Method::GET).contains("<title>302 Found</title>"));
        assert!(text(302, None, &Method::GET).contains("<a href=\"\">here</a>"));
        assert!(text(303, Some("/y"), &Method::GET)
            .contains("<p>The answer to your request is located <a href=\"/y\">here</a>.</p>"));
    }

    #[test]
    fn method_is_shown_and_escaped() {
        assert!(text(405, None, &Method::POST)
            .contains("<p>The requested method POST is not allowed for this URL.</p>\n"));
        let m = Method::from_bytes(b"FOO").expect("method");
        assert!(text(501, None, &m).contains("<p>FOO not supported for current URL.<br />\n</p>\n"));
    }

    #[test]
    fn forbidden_and_server_error() {
        assert!(text(403, None, &Method::GET)
            .contains("<h1>Forbidden</h1>\n<p>You don't have permission to access this resource.</p>\n</body>"));
        let e = text(500, None, &Method::GET);
        assert!(e.contains("administrator at \n [no address given] to inform them"));
        assert!(e.ends_with("in the server error log.</p>\n</body></html>\n"));
    }

    #[test]
    fn unknown_status_gets_the_500_title_and_text() {
        let e = text(499, None, &Method::GET);
        assert!(e.contains("<title>500 Internal Server Error</title>"));
        assert!(e.contains("<p>The server encountered an internal error"));
        // 505 has its own title but the 500 text.
        let e = text(505, None, &Method::GET);
        assert!(e.contains("<title>505 HTTP Version Not Supported</title>"));
        assert!(e.contains("<p>The server encountered an internal error"));
    }

    #[test]
    fn every_listed_status_has_a_page() {
        for code in [
            300u16, 301, 302, 303, 304, 305, 306, 307, 308, 400, 401, 403, 404, 405, 406, 408, 410,
            411, 412, 413, 414, 415, 416, 417, 421, 429, 431, 500, 501, 502, 503, 504, 505,
        ] {
            let t = text(code, Some("/l"), &Method::GET);
            if code == 304 {
                assert!(t.is_empty());
            } else {
                assert!(t.starts_with(DOCTYPE_HTML_4_01), "{code}");
                assert!(t.ends_with("</body></html>\n"), "{code}");
            }
        }
        assert!(text(416, None, &Method::GET).contains("None of the range-specifier values"));
        assert!(text(413, None, &Method::PUT).contains(
            "</h1>\nThe requested resource does not allow request data with PUT requests"
        ));
    }

    #[test]
    fn details_are_used() {
        let d = ErrorDetails {
            method: "GET",
            error_notes: Some("bad header"),
            recursive_error: Some(StatusCode::NOT_FOUND),
            signature: Some("<hr>\n<address>Apache Server at h Port 80</address>\n"),
            ..ErrorDetails::default()
        };
        let t = String::from_utf8(error_body_with(StatusCode::BAD_REQUEST, &d).to_vec())
            .expect("utf-8");
        assert!(t.contains("could not understand.<br />\nbad header</p>\n<p>Additionally, a 404 Not Found\nerror was encountered"));
        assert!(
            t.ends_with("<hr>\n<address>Apache Server at h Port 80</address>\n</body></html>\n")
        );
        let e = ErrorDetails {
            method: "GET",
            expect: Some("x<y"),
            ..ErrorDetails::default()
        };
        let t = String::from_utf8(error_body_with(StatusCode::EXPECTATION_FAILED, &e).to_vec())
            .expect("utf-8");
        assert!(t.contains("    Expect: x&lt;y\n</pre>\n</p><p>Only the 100-continue"));
    }

    #[test]
    fn signatures() {
        assert_eq!(
            signature("Apache", "h<x", 80, None),
            "<hr>\n<address>Apache Server at h&lt;x Port 80</address>\n"
        );
        assert_eq!(
            signature("Apache", "h", 443, Some("root@h")),
            "<hr>\n<address>Apache Server at <a href=\"mailto:root@h\">h</a> Port 443</address>\n"
        );
        assert!(signature("A", "h", 1, Some("MAILTO:x")).contains("href=\"MAILTO:x\""));
    }

    #[test]
    fn reasons() {
        assert_eq!(reason(StatusCode::FOUND), "Found");
        assert_eq!(reason(StatusCode::MOVED_PERMANENTLY), "Moved Permanently");
        assert_eq!(
            reason(StatusCode::PAYLOAD_TOO_LARGE),
            "Request Entity Too Large"
        );
        assert_eq!(
            reason(StatusCode::RANGE_NOT_SATISFIABLE),
            "Requested Range Not Satisfiable"
        );
        assert_eq!(
            reason(StatusCode::from_u16(599).expect("s")),
            "Unknown Reason"
        );
    }

    #[test]
    fn error_response_shape() {
        let r = error_response(StatusCode::FOUND, &Method::GET, Some("/next"));
        assert_eq!(r.headers()[header::LOCATION], "/next");
        assert_eq!(r.headers()[header::CONTENT_TYPE], ERROR_CONTENT_TYPE);
        let len = error_body(StatusCode::FOUND, Some("/next"), &Method::GET).len();
        assert_eq!(
            r.headers()[header::CONTENT_LENGTH],
            len.to_string().as_str()
        );
        let h = error_response(StatusCode::NOT_FOUND, &Method::HEAD, None);
        assert!(h.headers().get(header::CONTENT_LENGTH).is_none());
        let n = error_response(StatusCode::NOT_MODIFIED, &Method::GET, None);
        assert!(n.headers().is_empty());
    }
}

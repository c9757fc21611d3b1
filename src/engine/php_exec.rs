//! Running a PHP request: the request goes to the site's PHP-FPM pool with
//! the client's body (streamed), and PHP's answer comes back streamed with
//! Apache's output-side modules applied to its headers.

use super::respond::{finish_php_headers, PhpCall};
use super::site::Site;
use crate::server::Body;
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;

/// What a PHP answer turned into.
pub enum Answer {
    Response(Response<Body>),
    /// `Location: /local/path` without a status: run that URL instead (as
    /// mod_cgi does), as a GET without a body.
    LocalRedirect(String),
}

/// Sends `call` to the site's pool and builds the answer.
pub async fn answer(
    site: &Site,
    call: Box<PhpCall>,
    body: Option<hyper::body::Incoming>,
    method: &Method,
    req_headers: &HeaderMap,
) -> Answer {
    let Some(php) = &site.php else {
        // the engine only asks for PHP on sites that have it
        return Answer::Response(error(StatusCode::INTERNAL_SERVER_ERROR, method));
    };
    let body: Body = match body {
        Some(b) => b.map_err(std::io::Error::other).boxed(),
        None => crate::server::empty_body(),
    };
    let script = call
        .params
        .iter()
        .find(|(k, _)| k == "SCRIPT_FILENAME")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    tracing::debug!(target: "php", script = %script, params = ?call.params, "to PHP-FPM");
    let resp = match php.pool.send(call.params.clone(), body).await {
        Ok(r) => r,
        Err(e) => {
            let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY);
            tracing::error!(
                upstream = %php.pool.upstream(),
                script = %script,
                "PHP-FPM: {e} (answering {})",
                status.as_u16()
            );
            return Answer::Response(error(status, method));
        }
    };
    let explicit = resp.status != 200;
    let mut status = if explicit {
        resp.status
    } else {
        call.default_status
    };
    let location = resp
        .headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("location"))
        .map(|(_, v)| v.clone());
    if let Some(loc) = location {
        if !explicit && status == 200 {
            if loc.starts_with('/') {
                return Answer::LocalRedirect(loc);
            }
            status = 302;
        }
    }
    let Ok(code) = StatusCode::from_u16(status) else {
        tracing::error!(script = %script, "PHP-FPM sent an invalid status {status}");
        return Answer::Response(error(StatusCode::BAD_GATEWAY, method));
    };
    let headers = finish_php_headers(&call, resp.headers);
    let mut out = Response::new(resp.body);
    *out.status_mut() = code;
    *out.headers_mut() = header_map(&headers);
    Answer::Response(match &call.filter {
        Some(f) => f.apply(out, method, req_headers),
        None => out,
    })
}

fn header_map(headers: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::new();
    for (k, v) in headers {
        // SECURITY: PHP's header values are sanitised like every other
        // header htgate sends (no CR/LF/NUL; hop-by-hop ones dropped).
        let Ok(name) = HeaderName::from_bytes(k.as_bytes()) else {
            continue;
        };
        if is_hop_by_hop(&name) {
            continue;
        }
        if let Ok(value) = HeaderValue::from_str(&super::respond::sanitize_header_value(v)) {
            map.append(name, value);
        }
    }
    map
}

/// Headers that belong to one connection, not to the answer (hyper sets
/// its own framing).
fn is_hop_by_hop(name: &HeaderName) -> bool {
    matches!(
        name.as_str(),
        "connection"
            | "keep-alive"
            | "transfer-encoding"
            | "upgrade"
            | "proxy-connection"
            | "te"
            | "trailer"
    )
}

fn error(status: StatusCode, method: &Method) -> Response<Body> {
    crate::server::status_page::error_response(status, method, None)
}

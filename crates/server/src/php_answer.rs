//! Running a PHP request: the client's body is taken in first (all of it,
//! unless the site streams bodies; at the minimum rate, else 408), then the
//! request waits for a turn under the site's PHP limit (503 with
//! `Retry-After` past the queue), goes to the site's PHP-FPM pool, and
//! PHP's answer comes back streamed with Apache's output-side modules
//! applied to its headers. The turn is held until the answer's body ends.

use super::{Body, ConnInfo};
use htgate_engine::php_gate::Refused;
use htgate_engine::respond::{finish_php_headers, PhpCall};
use htgate_engine::site::Site;
use htgate_telemetry::logs::refusal::{self, Reason};
use http::{HeaderMap, HeaderName, HeaderValue, Method, Response, StatusCode};
use http_body_util::BodyExt;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::sync::OwnedSemaphorePermit;

/// What a PHP answer turned into.
pub(crate) enum Answer {
    Response(Response<Body>),
    /// `Location: /local/path` without a status: run that URL instead (as
    /// mod_cgi does), as a GET without a body.
    LocalRedirect(String),
}

/// Sends `call` to the site's pool and builds the answer.
pub(crate) async fn answer(
    site: &Site,
    call: Box<PhpCall>,
    body: Option<crate::RequestBody>,
    method: &Method,
    req_headers: &HeaderMap,
    conn: &ConnInfo,
) -> Answer {
    let Some(php) = &site.php else {
        // the engine only asks for PHP on sites that have it
        return Answer::Response(error(StatusCode::INTERNAL_SERVER_ERROR, method));
    };
    let body: Body = match body {
        Some(b) => b.map_err(std::io::Error::other).boxed(),
        None => crate::empty_body(),
    };
    let script = call
        .params
        .iter()
        .find(|(k, _)| k == "SCRIPT_FILENAME")
        .map(|(_, v)| v.clone())
        .unwrap_or_default();
    tracing::debug!(target: "php", script = %script, params = ?call.params, "to PHP-FPM");
    let site_name = php.gate.site();
    // SECURITY: the body is read before a turn and a PHP-FPM connection are
    // taken, so a client that trickles its body holds neither.
    let prepared = match php.pool.read_body(call.params.clone(), body).await {
        Ok(p) => p,
        Err(e) => return Answer::Response(php_failure(php, &e, &script, conn, method)),
    };
    let turn = match php.gate.enter().await {
        Ok(turn) => turn,
        Err(why) => {
            let detail = match why {
                Refused::QueueFull => "503: the site's PHP limit and queue are full".to_string(),
                Refused::Timeout => format!(
                    "503: no PHP turn for the site within {}s",
                    php.gate.retry_after()
                ),
            };
            refusal::refused(site_name, Reason::PhpLimit, conn.remote, &detail);
            let mut resp = error(StatusCode::SERVICE_UNAVAILABLE, method);
            resp.headers_mut().insert(
                http::header::RETRY_AFTER,
                HeaderValue::from(php.gate.retry_after()),
            );
            return Answer::Response(resp);
        }
    };
    let resp = match php.pool.send_prepared(prepared).await {
        Ok(r) => r,
        Err(e) => return Answer::Response(php_failure(php, &e, &script, conn, method)),
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
    let mut out = Response::new(
        HoldTurn {
            body: resp.body,
            _turn: turn,
        }
        .boxed(),
    );
    *out.status_mut() = code;
    *out.headers_mut() = header_map(&headers);
    Answer::Response(match &call.filter {
        Some(f) => super::site_handler::deflate(f, out, method, req_headers),
        None => out,
    })
}

/// The answer to a request PHP could not take: logged, and counted as a
/// refusal when the client was too slow (408) or the pool full (503).
fn php_failure(
    php: &htgate_engine::site::PhpSite,
    e: &htgate_fastcgi::Error,
    script: &str,
    conn: &ConnInfo,
    method: &Method,
) -> Response<Body> {
    use htgate_fastcgi::Error;
    let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::BAD_GATEWAY);
    let upstream = php.pool.upstream();
    match e {
        Error::SlowBody(_) => refusal::refused(
            php.gate.site(),
            Reason::SlowBody,
            conn.remote,
            &format!("408 for {script}: {e}"),
        ),
        Error::Connect(..) | Error::Overloaded => refusal::refused(
            php.gate.site(),
            Reason::PhpPool,
            conn.remote,
            &format!("503 for {script}: PHP-FPM {upstream}: {e}"),
        ),
        _ => tracing::error!(
            upstream = %upstream,
            script = %script,
            "PHP-FPM: {e} (answering {})",
            status.as_u16()
        ),
    }
    let mut resp = error(status, method);
    if status == StatusCode::REQUEST_TIMEOUT {
        // the rest of the body will not be read: the connection ends
        resp.headers_mut()
            .insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    resp
}

/// PHP's answer body, holding the site's PHP turn until it ends (the
/// PHP-FPM worker is busy until then).
struct HoldTurn {
    body: Body,
    _turn: OwnedSemaphorePermit,
}

impl http_body::Body for HoldTurn {
    type Data = bytes::Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
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
        if let Ok(value) = HeaderValue::from_str(&htgate_engine::respond::sanitize_header_value(v))
        {
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
    htgate_content::status_page::error_response(status, method, None)
}

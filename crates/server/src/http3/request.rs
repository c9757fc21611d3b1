//! One HTTP/3 request: its head within the header timeout, the same
//! checks and handler as HTTP/1.1 and HTTP/2 ([`answer`]), and the answer
//! written to the stream, each write bounded by the send timeout.

use super::body::H3Body;
use super::connection::{ConnShared, StreamGuard};
use crate::listener::answer;
use crate::refusal::{self, Reason};
use crate::{Body, RequestBody};
use bytes::Bytes;
use h3::server::{RequestResolver, RequestStream};
use http::header::{self, HeaderName};
use http::{HeaderMap, HeaderValue, Method};
use http_body_util::BodyExt;
use std::sync::Arc;

type Stream<S> = RequestStream<S, Bytes>;

/// Header fields HTTP/3 forbids in a response (RFC 9114 §4.2): they
/// describe an HTTP/1 connection.  A handler may set some (an answer
/// that closes an HTTP/1 connection says `Connection: close`).
const CONNECTION_FIELDS: [HeaderName; 4] = [
    header::CONNECTION,
    header::TRANSFER_ENCODING,
    header::UPGRADE,
    HeaderName::from_static("keep-alive"),
];

/// Serves the request whose stream `resolver` holds.
pub(super) async fn serve(
    resolver: RequestResolver<h3_quinn::Connection, Bytes>,
    conn: Arc<ConnShared>,
    _running: StreamGuard,
) {
    let limits = &conn.shared.limits;
    let remote = conn.info.remote;
    let (req, stream) =
        match tokio::time::timeout(limits.header_read_timeout, resolver.resolve_request()).await {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                tracing::debug!(%remote, error = %e, "HTTP/3 request head refused");
                return;
            }
            Err(_) => {
                refusal::record(
                    Reason::HeaderTimeout,
                    remote.ip(),
                    conn.info.sni.as_deref(),
                    "HTTP/3 request head not received within the header read timeout",
                );
                return;
            }
        };
    let (mut send, recv) = stream.split();
    let method = req.method().clone();
    // A malformed length is refused by `check_request` (400) before the
    // body is read.
    let declared = content_length(req.headers()).unwrap_or_default();
    let body = H3Body::new(recv, declared, limits.max_body_bytes);
    let req = req.map(|()| RequestBody::from(body));
    let Ok(resp) = answer(
        req,
        limits,
        remote,
        &conn.info,
        &conn.shared.handler,
        &conn.in_flight,
        &conn.sending,
        None,
    )
    .await;
    if let Err(e) = respond(&mut send, resp, &method, limits.send_timeout).await {
        tracing::debug!(%remote, error = %e, "HTTP/3 answer not delivered");
        send.stop_stream(h3::error::Code::H3_INTERNAL_ERROR);
    }
}

/// The request's `Content-Length`: `Ok(None)` without one, `Err` when it
/// is malformed or its copies disagree (the request is then refused by
/// `check_request`).
pub(crate) fn content_length(headers: &HeaderMap) -> Result<Option<u64>, ()> {
    let mut found = None;
    for v in headers.get_all(header::CONTENT_LENGTH) {
        let n = v
            .to_str()
            .ok()
            .map(str::trim)
            .filter(|s| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(())?;
        if found.is_some_and(|f| f != n) {
            return Err(());
        }
        found = Some(n);
    }
    Ok(found)
}

/// Writes the answer: the head (without HTTP/1 connection fields, with
/// `Date` and a known `Content-Length` as hyper adds them), then the body
/// (none for HEAD), each write within `send_timeout`.
async fn respond(
    send: &mut Stream<h3_quinn::SendStream<Bytes>>,
    resp: http::Response<Body>,
    method: &Method,
    send_timeout: std::time::Duration,
) -> Result<(), String> {
    let (mut parts, mut body) = resp.into_parts();
    for name in &CONNECTION_FIELDS {
        parts.headers.remove(name);
    }
    if !parts.headers.contains_key(header::DATE) {
        let now = htgate_util::date::http_date(htgate_util::unix_now());
        if let Ok(v) = HeaderValue::from_str(&now) {
            parts.headers.insert(header::DATE, v);
        }
    }
    if *method != Method::HEAD && !parts.headers.contains_key(header::CONTENT_LENGTH) {
        if let Some(n) = http_body::Body::size_hint(&body).exact() {
            parts
                .headers
                .insert(header::CONTENT_LENGTH, HeaderValue::from(n));
        }
    }
    let within = |what: &'static str| {
        move |_| format!("{what}: the client took nothing within the send timeout")
    };
    let head = http::Response::from_parts(parts, ());
    tokio::time::timeout(send_timeout, send.send_response(head))
        .await
        .map_err(within("response head"))?
        .map_err(|e| e.to_string())?;
    if *method != Method::HEAD {
        while let Some(frame) = body.frame().await {
            let frame = frame.map_err(|e| e.to_string())?;
            match frame.into_data() {
                Ok(data) => {
                    if data.is_empty() {
                        continue;
                    }
                    tokio::time::timeout(send_timeout, send.send_data(data))
                        .await
                        .map_err(within("response body"))?
                        .map_err(|e| e.to_string())?;
                }
                Err(frame) => {
                    if let Ok(trailers) = frame.into_trailers() {
                        tokio::time::timeout(send_timeout, send.send_trailers(trailers))
                            .await
                            .map_err(within("trailers"))?
                            .map_err(|e| e.to_string())?;
                        return Ok(());
                    }
                }
            }
        }
    }
    tokio::time::timeout(send_timeout, send.finish())
        .await
        .map_err(within("end of stream"))?
        .map_err(|e| e.to_string())
}

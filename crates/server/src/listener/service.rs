//! The hyper service of a connection: each request checked against the
//! limits, handed to the [`Handler`] (a panic there costs a 500), and the
//! `Connection: close` of answers that end an HTTP/1 connection.

use crate::limits::{check_request, close_after, Limits};
use crate::refusal::{self, Reason};
use crate::sending::Sending;
use crate::{Body, ConnInfo, Handler, HandlerFuture};
use futures_util::FutureExt;
use htgate_content::status_page::error_response;
use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

/// Counts a request as in progress until its handler has answered.
struct InFlight(Arc<AtomicUsize>);

impl InFlight {
    fn enter(count: &Arc<AtomicUsize>) -> InFlight {
        count.fetch_add(1, Ordering::Relaxed);
        InFlight(Arc::clone(count))
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The answer to a request refused by a limit: Apache's status page, and
/// on HTTP/1 the end of the connection (an unread body may follow the
/// head, and nothing after it can be trusted to be a request).
/// Apache's `ap_status_drops_connection`: after these answers an HTTP/1
/// connection is closed (`Connection: close`), whatever KeepAlive says:
/// the request may not have been read to its end, or the server is in
/// trouble.
fn drops_connection(status: http::StatusCode) -> bool {
    use http::StatusCode as S;
    matches!(
        status,
        S::BAD_REQUEST
            | S::REQUEST_TIMEOUT
            | S::LENGTH_REQUIRED
            | S::PAYLOAD_TOO_LARGE
            | S::URI_TOO_LONG
            | S::INTERNAL_SERVER_ERROR
            | S::SERVICE_UNAVAILABLE
            | S::NOT_IMPLEMENTED
    )
}

fn refusal(
    status: http::StatusCode,
    method: &http::Method,
    version: http::Version,
) -> HandlerFuture {
    let mut resp = error_response(status, method, None);
    if version < http::Version::HTTP_2 {
        resp.headers_mut().insert(
            http::header::CONNECTION,
            http::HeaderValue::from_static("close"),
        );
    }
    Box::pin(std::future::ready(resp))
}

/// One request: refused by a limit (Apache's status page), or handed to
/// the handler; the response's body is tracked by the connection's
/// [`Sending`].  `alt_svc` is the listener's HTTP/3 advertisement.
#[allow(clippy::too_many_arguments)]
pub(crate) fn answer(
    req: http::Request<crate::RequestBody>,
    limits: &Limits,
    remote: SocketAddr,
    info: &Arc<ConnInfo>,
    handler: &Arc<dyn Handler>,
    counter: &Arc<AtomicUsize>,
    bodies: &Arc<Sending>,
    alt_svc: Option<&http::HeaderValue>,
) -> impl Future<Output = Result<http::Response<Body>, Infallible>> + Send {
    let guard = InFlight::enter(counter);
    htgate_telemetry::metrics::request_protocol(req.version());
    let alt_svc = alt_svc.cloned();
    let method = req.method().clone();
    let version = req.version();
    let close = close_after(&req);
    let bodies = Arc::clone(bodies);
    let call = match check_request(&req, limits) {
        Some(status) => {
            let host = req
                .uri()
                .host()
                .or_else(|| req.headers().get(http::header::HOST)?.to_str().ok());
            refusal::record(
                Reason::of_status(status),
                remote.ip(),
                host.or(info.sni.as_deref()),
                &format!("request answered {status}"),
            );
            Ok(refusal(status, &method, req.version()))
        }
        // The handler is the engine's code; a panic in it must cost
        // one request (a 500), not the connection or the process.
        None => {
            std::panic::catch_unwind(AssertUnwindSafe(|| handler.handle(req, Arc::clone(info))))
        }
    };
    async move {
        let outcome = match call {
            Ok(fut) => AssertUnwindSafe(fut).catch_unwind().await,
            Err(panic) => Err(panic),
        };
        let mut resp = match outcome {
            Ok(resp) => resp,
            Err(_) => {
                tracing::error!(%remote, "request handler panicked");
                error_response(http::StatusCode::INTERNAL_SERVER_ERROR, &method, None)
            }
        };
        if close || (version < http::Version::HTTP_2 && drops_connection(resp.status())) {
            resp.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
        }
        if let Some(v) = alt_svc {
            // A customer's own `Header set Alt-Svc` stays.
            resp.headers_mut().entry(http::header::ALT_SVC).or_insert(v);
        }
        drop(guard);
        Ok::<_, std::convert::Infallible>(resp.map(|b| bodies.track(b)))
    }
}

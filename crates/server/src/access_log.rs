//! The access log and the request metrics, as a [`Handler`] wrapper.
//!
//! The line is written when the response body ends (or is dropped: a
//! client that goes away mid-download, a HEAD answer), so `%b` is what was
//! handed to the connection, after compression, for static files, PHP,
//! listings and error pages alike.  Requests refused before they reach a
//! handler (an oversized head, a request hyper cannot parse) are not
//! logged.

use super::{Body, ConnInfo, Handler, HandlerFuture};
use bytes::Bytes;
use futures_util::FutureExt;
use htgate_telemetry::logs::clf::{self, Entry};
use htgate_telemetry::logs::writer::{self, Kind};
use http_body::Frame;
use http_body_util::BodyExt;
use std::panic::AssertUnwindSafe;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Instant;

/// Where a site's lines go.
#[derive(Debug, Clone)]
pub struct AccessTarget {
    pub path: Arc<Path>,
    /// `Some(ServerName)`: the line starts with `ServerName:port ` (Debian's
    /// `vhost_combined`), for a file shared by many sites.
    pub vhost: Option<Arc<str>>,
}

/// What the wrapper needs to know about a request's site.
#[derive(Debug, Clone)]
pub struct Route {
    /// The `site` label of the metrics.
    pub site: Arc<String>,
    /// `None`: the request is counted but not logged.
    pub log: Option<AccessTarget>,
}

/// Picks the route of each request (config mode: the site by Host).
pub(crate) type Router =
    dyn Fn(&http::Request<crate::RequestBody>, &ConnInfo) -> Route + Send + Sync;

/// Logs and counts what `inner` answers.
pub struct AccessLogged {
    pub inner: Arc<dyn Handler>,
    pub router: Arc<Router>,
}

impl AccessLogged {
    /// Every request to one site and one file (quick mode).
    pub fn single(inner: Arc<dyn Handler>, site: &str, log: Option<AccessTarget>) -> AccessLogged {
        let route = Route {
            site: Arc::new(site.to_string()),
            log,
        };
        AccessLogged {
            inner,
            router: Arc::new(
                move |_req: &http::Request<crate::RequestBody>, _conn: &ConnInfo| route.clone(),
            ),
        }
    }
}

/// The line being built; written once, when dropped (see the module
/// comment), with the byte count it has by then.  A request whose handler
/// never answered (the client went away first: hyper drops the handler)
/// has status 0 and no line: there is no status to log.
struct Pending {
    target: AccessTarget,
    entry: Entry,
}

impl Drop for Pending {
    fn drop(&mut self) {
        if self.entry.status != 0 {
            thread_local! {
                static LINE: std::cell::RefCell<String> = const { std::cell::RefCell::new(String::new()) };
            }
            LINE.with(|line| {
                let mut line = line.borrow_mut();
                line.clear();
                self.entry.write_line(&mut line);
                writer::send(&self.target.path, line.as_bytes(), Kind::Access);
            });
        }
    }
}

impl Handler for AccessLogged {
    fn handle(&self, req: http::Request<crate::RequestBody>, conn: Arc<ConnInfo>) -> HandlerFuture {
        let started = Instant::now();
        let route = (self.router)(&req, &conn);
        let pending = route.log.map(|target| {
            let header = |name: http::header::HeaderName| {
                req.headers().get(name).map(|v| v.as_bytes().to_vec())
            };
            Pending {
                entry: Entry {
                    remote: conn.remote.ip(),
                    time: clf::now(),
                    request_line: clf::request_line(req.method(), req.uri(), req.version()),
                    status: 0,
                    bytes: 0,
                    referer: header(http::header::REFERER),
                    user_agent: header(http::header::USER_AGENT),
                    vhost: target
                        .vhost
                        .as_ref()
                        .map(|name| (name.clone(), conn.local.port())),
                },
                target,
            }
        });
        let site = route.site;
        let fut = self.inner.handle(req, conn);
        Box::pin(async move {
            let mut pending = pending;
            let resp = match AssertUnwindSafe(fut).catch_unwind().await {
                Ok(resp) => resp,
                Err(panic) => {
                    // The connection loop answers a panic with 500: log
                    // and count that, then let it do so.
                    htgate_telemetry::metrics::request(&site, 500, started.elapsed());
                    if let Some(mut p) = pending.take() {
                        p.entry.status = 500;
                    }
                    std::panic::resume_unwind(panic);
                }
            };
            htgate_telemetry::metrics::request(&site, resp.status().as_u16(), started.elapsed());
            let Some(mut p) = pending.take() else {
                return resp;
            };
            p.entry.status = resp.status().as_u16();
            let (parts, body) = resp.into_parts();
            let body = CountingBody {
                inner: body,
                pending: Some(p),
            };
            http::Response::from_parts(parts, body.boxed())
        })
    }
}

/// Counts the body bytes handed to the connection.
struct CountingBody {
    inner: Body,
    pending: Option<Pending>,
}

impl http_body::Body for CountingBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let polled = Pin::new(&mut self.inner).poll_frame(cx);
        match &polled {
            Poll::Ready(Some(Ok(frame))) => {
                if let (Some(data), Some(p)) = (frame.data_ref(), self.pending.as_mut()) {
                    p.entry.bytes = p
                        .entry
                        .bytes
                        .saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
                }
            }
            // The end: write the line now rather than when hyper drops
            // the body.
            Poll::Ready(None) => {
                self.pending.take();
            }
            _ => {}
        }
        polled
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

//! The `.htaccess` engine: compiles each directory's `.htaccess` once
//! (`compile`, `rewrite`, `template`, `pattern`, `headers`, `access`,
//! `config`), keeps them per site (`site`), and runs a request through
//! Apache's phases with per-directory semantics (`request`,
//! `rewrite_exec`, `respond`).

pub mod access;
pub mod auth;
pub mod compile;
pub mod config;
pub mod dispatch;
pub mod escape;
pub mod headers;
pub mod lint;
pub mod pattern;
pub mod php;
pub mod php_exec;
pub mod php_gate;
pub mod request;
pub mod respond;
pub mod rewrite;
pub mod rewrite_exec;
pub mod site;
pub mod stat_cache;
pub mod template;
pub mod trace;

use crate::server::{ConnInfo, Handler, HandlerFuture};
use site::Site;
use std::sync::Arc;

/// The [`Handler`] that serves one site.
pub struct Engine {
    pub site: Arc<Site>,
}

impl Handler for Engine {
    fn handle(
        &self,
        req: http::Request<hyper::body::Incoming>,
        conn: Arc<ConnInfo>,
    ) -> HandlerFuture {
        Box::pin(serve_site(self.site.clone(), req, conn))
    }
}

/// Runs one request through `site`'s programs and answers it.  The
/// filesystem work runs inline on the worker; PHP requests then go to
/// the site's PHP-FPM pool with the request body.
pub async fn serve_site(
    site: Arc<Site>,
    req: http::Request<hyper::body::Incoming>,
    conn: Arc<ConnInfo>,
) -> http::Response<crate::server::Body> {
    let (parts, body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let protocol = match parts.version {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        _ => "HTTP/1.1",
    }
    .to_string();
    let mut head = respond::RequestHead {
        method: parts.method.clone(),
        target,
        protocol,
        headers: parts.headers.clone(),
        authority: parts.uri.authority().map(|a| a.to_string()),
    };
    let method = parts.method.clone();
    if method == http::Method::TRACE && site.trace_enable {
        return trace_echo(&head);
    }
    let req_headers = parts.headers;
    let mut body = Some(body);
    // A PHP answer with a local `Location` and no status is an internal
    // redirect (mod_cgi's rule), bounded like Apache's.
    for _ in 0..=request::MAX_RECURSION {
        // The engine runs inline on the worker, as nginx does its stat()
        // and open() of local files: a hop to the blocking pool per request
        // cost more than the work (stat results are shared within the
        // request and cached, compiled programs are shared by all requests,
        // and a cold `.htaccess` compile is bounded by the size and
        // directive caps).  A panic still answers 500 instead of dropping
        // the connection, as `spawn_blocking`'s JoinError did.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            respond::run(&site, &head, &conn)
        }));
        let outcome = match outcome {
            Ok(x) => x,
            Err(_) => {
                tracing::error!("request processing failed: the engine panicked");
                return server_error(&method);
            }
        };
        match outcome {
            respond::Outcome::Php(call) => {
                match php_exec::answer(&site, call, body.take(), &method, &req_headers, &conn).await
                {
                    php_exec::Answer::Response(r) => return r,
                    php_exec::Answer::LocalRedirect(location) => {
                        head.method = http::Method::GET;
                        head.target = location;
                        head.headers.remove(http::header::CONTENT_LENGTH);
                        head.headers.remove(http::header::CONTENT_TYPE);
                        head.headers.remove(http::header::TRANSFER_ENCODING);
                    }
                }
            }
            o => return respond::into_response(o, &method, &req_headers).await,
        }
    }
    tracing::error!(
        "request exceeded the limit of {} internal redirects (PHP Location answers)",
        request::MAX_RECURSION
    );
    server_error(&method)
}

/// `ap_send_http_trace` (TraceEnable on): the request head echoed back as
/// `message/http`, before any `.htaccess` is read.
fn trace_echo(head: &respond::RequestHead) -> http::Response<crate::server::Body> {
    let mut text = format!("TRACE {} {}\r\n", head.target, head.protocol);
    for (name, value) in head.headers.iter() {
        text.push_str(name.as_str());
        text.push_str(": ");
        text.push_str(&String::from_utf8_lossy(value.as_bytes()));
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    let mut resp = http::Response::new(crate::server::full_body(text));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("message/http"),
    );
    resp
}

fn server_error(method: &http::Method) -> http::Response<crate::server::Body> {
    crate::server::status_page::error_response(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        method,
        None,
    )
}

//! The site handler: runs a request through the engine (inline on the
//! worker, or on the blocking pool when the engine asks for it), then
//! turns the engine's decision into an answer: a file, a status page, a
//! listing, a PHP call, through mod_deflate when configured.

use super::{empty_body, full_body, php_answer, Body, ConnInfo, Handler, HandlerFuture};
use htgate_engine::respond::{sanitize_header_value, Outcome, OutputFilter};
use htgate_engine::{limits, request, respond, site::Site};
use http::{HeaderMap, HeaderName, HeaderValue as HttpValue, Method, Response, StatusCode};
use std::sync::Arc;

/// The [`Handler`] that serves one site.
pub struct Engine {
    pub site: Arc<Site>,
}

impl Handler for Engine {
    fn handle(&self, req: http::Request<crate::RequestBody>, conn: Arc<ConnInfo>) -> HandlerFuture {
        Box::pin(serve_site(self.site.clone(), req, conn))
    }
}

/// Runs one request through `site`'s programs and answers it.  The
/// filesystem work runs inline on the worker; PHP requests then go to
/// the site's PHP-FPM pool with the request body.
pub async fn serve_site(
    site: Arc<Site>,
    req: http::Request<crate::RequestBody>,
    conn: Arc<ConnInfo>,
) -> http::Response<Body> {
    let (parts, body) = req.into_parts();
    let target = parts
        .uri
        .path_and_query()
        .map(|pq| pq.as_str().to_string())
        .unwrap_or_else(|| "/".to_string());
    let protocol = match parts.version {
        http::Version::HTTP_10 => "HTTP/1.0",
        http::Version::HTTP_2 => "HTTP/2.0",
        http::Version::HTTP_3 => "HTTP/3.0",
        _ => "HTTP/1.1",
    }
    .to_string();
    let mut head = respond::RequestHead {
        method: parts.method.clone(),
        target,
        protocol,
        headers: parts.headers,
        // host[:port], without any `user@` part
        authority: parts.uri.authority().map(|a| match a.port() {
            Some(p) => format!("{}:{p}", a.host()),
            None => a.host().to_string(),
        }),
    };
    let method = parts.method.clone();
    if method == http::Method::TRACE && site.trace_enable {
        return trace_echo(&head);
    }
    // The client's own headers, kept apart only once a PHP answer's local
    // redirect changes the head (no copy of the head per request).
    let mut original: Option<http::HeaderMap> = None;
    let mut body = Some(body);
    // A PHP answer with a local `Location` and no status is an internal
    // redirect (mod_cgi's rule), bounded like Apache's.
    for _ in 0..=request::MAX_RECURSION {
        let outcome = match run_engine(&site, &head, &conn).await {
            Ok(o) => o,
            Err(resp) => return resp,
        };
        match outcome {
            respond::Outcome::Php(call) => {
                let req_headers = original.as_ref().unwrap_or(&head.headers);
                match php_answer::answer(&site, call, body.take(), &method, req_headers, &conn)
                    .await
                {
                    php_answer::Answer::Response(r) => return r,
                    php_answer::Answer::LocalRedirect(location) => {
                        if original.is_none() {
                            original = Some(head.headers.clone());
                        }
                        head.method = http::Method::GET;
                        head.target = location;
                        head.headers.remove(http::header::CONTENT_LENGTH);
                        head.headers.remove(http::header::CONTENT_TYPE);
                        head.headers.remove(http::header::TRANSFER_ENCODING);
                    }
                }
            }
            o => {
                let req_headers = original.as_ref().unwrap_or(&head.headers);
                return into_response(o, &method, req_headers).await;
            }
        }
    }
    tracing::error!(
        "request exceeded the limit of {} internal redirects (PHP Location answers)",
        request::MAX_RECURSION
    );
    server_error(&method)
}

/// Runs the engine for one request: inline on the worker, within the
/// site's share of the workers, and again on the blocking pool (within
/// the site's share of it, and a deadline) when the inline run needs work
/// that may block or take long.  `Err`: the answer already (503 over a
/// limit, 500 after a panic).
async fn run_engine(
    site: &Arc<Site>,
    head: &respond::RequestHead,
    conn: &Arc<ConnInfo>,
) -> Result<respond::Outcome, http::Response<Body>> {
    let limits = &site.limits;
    let permit = match &limits.engine {
        Some(gate) => match gate.enter().await {
            Ok(p) => Some(p),
            Err(why) => {
                return Err(over_limit(
                    site,
                    conn,
                    limits::Reason::EngineLimit,
                    why,
                    &head.method,
                ))
            }
        },
        None => None,
    };
    // The engine runs inline on the worker, as nginx does its stat()
    // and open() of local files: a hop to the blocking pool per request
    // cost more than the work.  What bounds it: the work budget
    // (`budget`), and everything that may block or take long (password
    // hashing, listings, cold compiles of large files) is asked for with
    // `Outcome::Offload` and done below.  A panic answers 500 instead of
    // dropping the connection.
    let outcome = if !limits.inline {
        // A network filesystem: any `stat` may hang (`fs_kind`).
        Ok(respond::Outcome::Offload("a site on a network filesystem"))
    } else if limits.long_runs.marked() {
        Ok(respond::Outcome::Offload(respond::LONG_RUN))
    } else {
        let o = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            respond::run_inline(site, head, conn)
        }));
        if matches!(o, Ok(respond::Outcome::Offload(r)) if r == respond::LONG_RUN) {
            limits.long_runs.mark();
        }
        o
    };
    drop(permit);
    let reason = match outcome {
        Ok(respond::Outcome::Offload(reason)) => reason,
        Ok(o) => return Ok(o),
        Err(_) => {
            tracing::error!("request processing failed: the engine panicked");
            return Err(server_error(&head.method));
        }
    };
    htgate_telemetry::metrics::blocking_job(&limits.name, reason);
    let permit = match limits.blocking.enter().await {
        Ok(p) => p,
        Err(why) => {
            return Err(over_limit(
                site,
                conn,
                limits::Reason::BlockingLimit,
                why,
                &head.method,
            ))
        }
    };
    let global = match tokio::time::timeout(
        limits::DEFAULT_QUEUE_WAIT,
        limits::global_blocking().clone().acquire_owned(),
    )
    .await
    {
        Ok(Ok(p)) => p,
        _ => {
            return Err(over_limit(
                site,
                conn,
                limits::Reason::BlockingLimit,
                limits::Refused::Timeout,
                &head.method,
            ))
        }
    };
    let (s, h, c) = (site.clone(), head.clone(), conn.clone());
    // Its log lines name the request, as on the async worker.
    let log_ctx = htgate_telemetry::logs::context::current();
    // Threads of their own, kept between jobs, at a lower priority: the
    // async workers keep the CPU when a site hammers its password file
    // (bcrypt at the cost its author chose) or lists 10,000 files.  The
    // permits move into the job: one stuck past the deadline (a hung
    // network filesystem) keeps its site's slot until it returns.
    let answer = limits::low_priority_pool().spawn_blocking(move || {
        let _held = (permit, global);
        htgate_telemetry::logs::context::scope(log_ctx, || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
                respond::run_offloaded(&s, &h, &c, reason)
            }))
        })
    });
    match tokio::time::timeout(limits.blocking_deadline, answer).await {
        Ok(Ok(Ok(outcome))) => Ok(outcome),
        Ok(_) => {
            tracing::error!("request processing failed: the engine panicked ({reason})");
            Err(server_error(&head.method))
        }
        Err(_) => {
            htgate_telemetry::logs::refusal::refused(
                &limits.name,
                limits::Reason::BlockingDeadline,
                conn.remote,
                &format!(
                    "{} {}: blocking work ({reason}) passed its deadline of {} ms; answered 503",
                    head.method,
                    head.target,
                    limits.blocking_deadline.as_millis()
                ),
            );
            Err(unavailable(&head.method))
        }
    }
}

/// A 503 for a site over one of its limits (logged and counted).
fn over_limit(
    site: &Site,
    conn: &ConnInfo,
    reason: limits::Reason,
    why: limits::Refused,
    method: &http::Method,
) -> http::Response<Body> {
    limits::refused(site, conn, reason, why);
    unavailable(method)
}

/// 503 with `Retry-After`.
fn unavailable(method: &http::Method) -> http::Response<Body> {
    let mut resp = htgate_content::status_page::error_response(
        http::StatusCode::SERVICE_UNAVAILABLE,
        method,
        None,
    );
    resp.headers_mut().insert(
        http::header::RETRY_AFTER,
        http::HeaderValue::from(limits::RETRY_AFTER_SECONDS),
    );
    resp
}

/// `ap_send_http_trace` (TraceEnable on): the request head echoed back as
/// `message/http`, before any `.htaccess` is read.
fn trace_echo(head: &respond::RequestHead) -> http::Response<Body> {
    let mut text = format!("TRACE {} {}\r\n", head.target, head.protocol);
    for (name, value) in head.headers.iter() {
        text.push_str(name.as_str());
        text.push_str(": ");
        text.push_str(&String::from_utf8_lossy(value.as_bytes()));
        text.push_str("\r\n");
    }
    text.push_str("\r\n");
    let mut resp = http::Response::new(super::full_body(text));
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("message/http"),
    );
    resp
}

fn server_error(method: &http::Method) -> http::Response<Body> {
    htgate_content::status_page::error_response(
        http::StatusCode::INTERNAL_SERVER_ERROR,
        method,
        None,
    )
}

/// Turns an outcome into a response (sends the file when there is one).
pub async fn into_response(
    outcome: Outcome,
    method: &Method,
    req_headers: &HeaderMap,
) -> Response<Body> {
    match outcome {
        // `serve_site` runs an offloaded request again; one that reaches
        // here is a bug, answered as a server error.
        Outcome::Offload(reason) => {
            tracing::error!("an offloaded request ({reason}) was not run again");
            htgate_content::status_page::error_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                method,
                None,
            )
        }
        Outcome::Filtered(inner, filter) => {
            let resp = Box::pin(into_response(*inner, method, req_headers)).await;
            deflate(&filter, resp, method, req_headers)
        }
        Outcome::File {
            path,
            meta,
            content_type,
            status,
            headers,
        } => {
            let map = to_header_map(&headers);
            let file = htgate_content::static_files::FileToServe {
                path: std::path::Path::new(&path),
                meta: &meta,
                content_type: content_type.as_deref(),
                status: StatusCode::from_u16(status).unwrap_or(StatusCode::OK),
            };
            htgate_content::static_files::serve_file(method, req_headers, file, map).await
        }
        Outcome::Plain {
            status,
            headers,
            body,
        } => {
            let mut resp = Response::new(if method == Method::HEAD {
                empty_body()
            } else {
                full_body(body)
            });
            *resp.status_mut() =
                StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            *resp.headers_mut() = to_header_map(&headers);
            resp
        }
        // serve_site runs PHP outcomes itself (they need the request body)
        Outcome::Php(_) => htgate_content::status_page::error_response(
            StatusCode::INTERNAL_SERVER_ERROR,
            method,
            None,
        ),
    }
}

fn to_header_map(headers: &[(String, String)]) -> HeaderMap {
    let mut map = HeaderMap::with_capacity(headers.len());
    for (k, v) in headers {
        if let (Ok(n), Ok(v)) = (
            HeaderName::from_bytes(k.as_bytes()),
            HttpValue::from_str(&sanitize_header_value(v)),
        ) {
            map.append(n, v);
        }
    }
    map
}

/// mod_deflate on a finished response: compress when the type is
/// listed (or SetOutputFilter) and the client accepts gzip.
pub fn deflate(
    filter: &OutputFilter,
    resp: Response<Body>,
    method: &Method,
    req_headers: &HeaderMap,
) -> Response<Body> {
    use htgate_content::compress;
    let ct = resp
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let wanted =
        filter.deflate.always == Some(true) || compress::type_matches(ct, &filter.deflate.by_type);
    if !wanted {
        return resp;
    }
    let accept: Vec<&str> = req_headers
        .get_all(http::header::ACCEPT_ENCODING)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .collect();
    let accept = accept.join(", ");
    let env = compress::FilterEnv {
        no_gzip: filter.env.no_gzip,
        gzip_only_text_html: filter.env.gzip_only_text_html,
        force_gzip: filter.env.force_gzip,
        accept_encoding: if accept.is_empty() {
            None
        } else {
            Some(&accept)
        },
        is_head: method == Method::HEAD,
    };
    let decision = compress::decide(resp.status().as_u16(), resp.headers(), &env);
    compress::apply(resp, decision)
}

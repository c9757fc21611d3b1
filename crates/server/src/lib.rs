//! The HTTP side: listeners (plain and TLS, HTTP/1.1 and HTTP/2 via ALPN),
//! the hyper service that hands each request to a [`Handler`], static file
//! responses, Apache-like status pages and the content-type table.
//!
//! Request semantics (.htaccess, rewriting, access control) live in
//! `htgate_engine`; this module knows nothing about them.

pub mod access_log;
#[cfg(any(test, feature = "test-support"))]
pub mod h3_client;
mod handshake;
pub mod http3;
pub mod limits;
pub mod listener;
mod php_answer;
mod refusal;
mod request_body;
mod sending;
pub mod site_handler;
pub mod tls;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

pub type HandlerFuture = Pin<Box<dyn Future<Output = http::Response<Body>> + Send>>;

/// Turns one request into one response.  Implemented by the engine.
pub trait Handler: Send + Sync + 'static {
    fn handle(&self, req: http::Request<crate::RequestBody>, conn: Arc<ConnInfo>) -> HandlerFuture;
}

pub use htgate_content::{empty_body, full_body, Body};
pub use htgate_engine::ConnInfo;
pub use request_body::{BodyError, RequestBody};

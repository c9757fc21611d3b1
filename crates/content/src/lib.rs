//! Rendering the engine's decisions: static files (ETag, ranges,
//! conditionals), directory listings, compression, the MIME table and
//! Apache's status pages.  Nothing here reads `.htaccess`.

pub mod autoindex;
pub mod compress;
pub mod mime;
pub mod static_files;
pub mod status_page;

use bytes::Bytes;
use http_body_util::combinators::BoxBody;

/// The response body type used everywhere.
pub type Body = BoxBody<Bytes, std::io::Error>;

/// A body from bytes.
pub fn full_body(data: impl Into<Bytes>) -> Body {
    use http_body_util::BodyExt;
    http_body_util::Full::new(data.into())
        .map_err(|never| match never {})
        .boxed()
}

/// An empty body.
pub fn empty_body() -> Body {
    full_body(Bytes::new())
}

//! The body of a client's request, whatever protocol carried it: hyper's
//! for HTTP/1.1 and HTTP/2, the QUIC stream's for HTTP/3.  Handlers (the
//! engine, PHP) read it as any `http_body::Body`.

use crate::http3::H3Body;
use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// An error reading a request body (the client went away, broke the
/// protocol, or sent more than allowed).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The request body a [`crate::Handler`] gets.
pub struct RequestBody(Source);

enum Source {
    /// HTTP/1.1 and HTTP/2 (hyper).
    Hyper(hyper::body::Incoming),
    /// HTTP/3.
    Http3(H3Body),
}

impl From<hyper::body::Incoming> for RequestBody {
    fn from(body: hyper::body::Incoming) -> RequestBody {
        RequestBody(Source::Hyper(body))
    }
}

impl From<H3Body> for RequestBody {
    fn from(body: H3Body) -> RequestBody {
        RequestBody(Source::Http3(body))
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match &mut self.get_mut().0 {
            Source::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            Source::Http3(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match &self.0 {
            Source::Hyper(b) => b.is_end_stream(),
            Source::Http3(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match &self.0 {
            Source::Hyper(b) => b.size_hint(),
            Source::Http3(b) => b.size_hint(),
        }
    }
}

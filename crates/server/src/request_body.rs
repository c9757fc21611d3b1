//! The body of a client's request, whatever protocol carried it: hyper's
//! for HTTP/1.1 and HTTP/2, the QUIC stream's for HTTP/3.  Handlers (the
//! engine, PHP) read it as any `http_body::Body`.

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{Context, Poll};

/// An error reading a request body (the client went away, broke the
/// protocol, or sent more than allowed).
pub type BodyError = Box<dyn std::error::Error + Send + Sync>;

/// The request body a [`crate::Handler`] gets.
pub enum RequestBody {
    /// HTTP/1.1 and HTTP/2 (hyper).
    Hyper(hyper::body::Incoming),
    /// HTTP/3, or any other source (tests).
    Boxed(http_body_util::combinators::BoxBody<Bytes, BodyError>),
}

impl From<hyper::body::Incoming> for RequestBody {
    fn from(body: hyper::body::Incoming) -> RequestBody {
        RequestBody::Hyper(body)
    }
}

impl RequestBody {
    /// A body from any source.
    pub fn boxed<B>(body: B) -> RequestBody
    where
        B: Body<Data = Bytes> + Send + Sync + 'static,
        B::Error: Into<BodyError>,
    {
        use http_body_util::BodyExt;
        RequestBody::Boxed(body.map_err(Into::into).boxed())
    }

    /// No body (a request without one, or a test's).
    pub fn empty() -> RequestBody {
        RequestBody::boxed(http_body_util::Empty::<Bytes>::new())
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        match self.get_mut() {
            RequestBody::Hyper(b) => Pin::new(b).poll_frame(cx).map_err(Into::into),
            RequestBody::Boxed(b) => Pin::new(b).poll_frame(cx),
        }
    }

    fn is_end_stream(&self) -> bool {
        match self {
            RequestBody::Hyper(b) => b.is_end_stream(),
            RequestBody::Boxed(b) => b.is_end_stream(),
        }
    }

    fn size_hint(&self) -> SizeHint {
        match self {
            RequestBody::Hyper(b) => b.size_hint(),
            RequestBody::Boxed(b) => b.size_hint(),
        }
    }
}

//! A request body read from an HTTP/3 request stream, bounded by the body
//! cap and checked against its `Content-Length` (RFC 9114 §4.1.2: a body
//! of another length is malformed).

use crate::BodyError;
use bytes::{Buf, Bytes};
use h3::server::RequestStream;
use http_body::{Body, Frame, SizeHint};
use std::pin::Pin;
use std::task::{ready, Context, Poll};

pub(crate) struct H3Body {
    recv: RequestStream<h3_quinn::RecvStream, Bytes>,
    /// Bytes received so far.
    seen: u64,
    /// The request's `Content-Length`, if it had one.
    declared: Option<u64>,
    /// The body cap of the listener.
    cap: u64,
    done: bool,
}

impl H3Body {
    pub(super) fn new(
        recv: RequestStream<h3_quinn::RecvStream, Bytes>,
        declared: Option<u64>,
        cap: u64,
    ) -> H3Body {
        H3Body {
            recv,
            seen: 0,
            declared,
            cap,
            done: false,
        }
    }

    fn fail(&mut self, why: String) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        self.done = true;
        // H3_REQUEST_REJECTED would invite a retry; the request is bad.
        self.recv.stop_sending(h3::error::Code::H3_MESSAGE_ERROR);
        Poll::Ready(Some(Err(why.into())))
    }
}

impl Body for H3Body {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let this = self.get_mut();
        if this.done {
            return Poll::Ready(None);
        }
        match ready!(this.recv.poll_recv_data(cx)) {
            Ok(Some(mut buf)) => {
                let data = buf.copy_to_bytes(buf.remaining());
                this.seen = this
                    .seen
                    .saturating_add(u64::try_from(data.len()).unwrap_or(u64::MAX));
                if this.seen > this.cap {
                    return this.fail(format!("request body over the cap of {} bytes", this.cap));
                }
                if this.declared.is_some_and(|d| this.seen > d) {
                    return this.fail("request body longer than its Content-Length".into());
                }
                Poll::Ready(Some(Ok(Frame::data(data))))
            }
            Ok(None) => {
                this.done = true;
                if this.declared.is_some_and(|d| this.seen != d) {
                    return Poll::Ready(Some(Err(
                        "request body shorter than its Content-Length".into()
                    )));
                }
                Poll::Ready(None)
            }
            Err(e) => {
                this.done = true;
                Poll::Ready(Some(Err(Box::new(e))))
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.done || self.declared == Some(0)
    }

    fn size_hint(&self) -> SizeHint {
        match self.declared {
            Some(n) => SizeHint::with_exact(n.saturating_sub(self.seen)),
            None => SizeHint::default(),
        }
    }
}

impl Drop for H3Body {
    fn drop(&mut self) {
        // A body the handler did not read (a static file, a redirect):
        // RFC 9114 §4.1 lets the server stop reading once it can answer,
        // and says to use H3_NO_ERROR (quinn's default code is 0, which
        // clients report as an error).
        if !self.done {
            self.recv.stop_sending(h3::error::Code::H3_NO_ERROR);
        }
    }
}

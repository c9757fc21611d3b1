//! The connection's byte stream (plain TCP or TLS), reporting reads and
//! writes to its [`ConnState`]; a connection ended by a timeout closes with
//! a reset.

use super::conn_state::ConnState;
use std::io;
use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;

pub(super) enum Stream {
    Plain(TcpStream),
    Tls(Box<tokio_rustls::server::TlsStream<TcpStream>>),
}

/// The connection's byte stream, reporting to the [`ConnState`].
pub(super) struct ConnIo {
    pub(super) inner: Stream,
    pub(super) state: Arc<ConnState>,
}

impl Drop for ConnIo {
    fn drop(&mut self) {
        if self.state.abort.load(Ordering::Relaxed) {
            let tcp = match &self.inner {
                Stream::Plain(s) => s,
                Stream::Tls(s) => s.get_ref().0,
            };
            // Failure only means a normal close instead of a reset.
            let _ = tcp.set_zero_linger();
        }
    }
}

impl AsyncRead for ConnIo {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let this = self.get_mut();
        let before = buf.filled().len();
        let res = match &mut this.inner {
            Stream::Plain(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_read(cx, buf),
        };
        match &res {
            Poll::Ready(Ok(())) => {
                this.state.read_ready();
                let n = buf.filled().len().saturating_sub(before);
                if n > 0 {
                    this.state.touch();
                    if this.state.count_read(n) {
                        this.state.over_cap.store(true, Ordering::Relaxed);
                        // The body is already larger than any request may
                        // be; hyper turns this into the end of the
                        // connection (and an error for the handler).
                        return Poll::Ready(Err(io::Error::new(
                            io::ErrorKind::InvalidData,
                            "request body over the size limit",
                        )));
                    }
                }
            }
            Poll::Pending => this.state.read_pending(),
            Poll::Ready(Err(_)) => this.state.read_ready(),
        }
        res
    }
}

impl AsyncWrite for ConnIo {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        data: &[u8],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = match &mut this.inner {
            Stream::Plain(s) => Pin::new(s).poll_write(cx, data),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write(cx, data),
        };
        match &res {
            Poll::Ready(Ok(n)) if *n > 0 => this.state.write_done(),
            Poll::Pending => this.state.write_pending(),
            _ => {}
        }
        res
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let this = self.get_mut();
        let res = match &mut this.inner {
            Stream::Plain(s) => Pin::new(s).poll_write_vectored(cx, bufs),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_write_vectored(cx, bufs),
        };
        match &res {
            Poll::Ready(Ok(n)) if *n > 0 => this.state.write_done(),
            Poll::Pending => this.state.write_pending(),
            _ => {}
        }
        res
    }

    fn is_write_vectored(&self) -> bool {
        match &self.inner {
            Stream::Plain(s) => s.is_write_vectored(),
            Stream::Tls(s) => s.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Stream::Plain(s) => Pin::new(s).poll_flush(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match &mut self.get_mut().inner {
            Stream::Plain(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tls(s) => Pin::new(s.as_mut()).poll_shutdown(cx),
        }
    }
}

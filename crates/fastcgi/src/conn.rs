//! Sockets to the upstream: one type for Unix and TCP so a pool can hold
//! either and check an idle one without blocking.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};

use super::Upstream;

#[derive(Debug)]
pub(crate) enum Stream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl Stream {
    /// Connect within `timeout`; a timeout is reported as an
    /// `io::ErrorKind::TimedOut` error.
    pub(crate) async fn connect(upstream: &Upstream, timeout: Duration) -> io::Result<Stream> {
        let connect = async {
            match upstream {
                Upstream::Unix(path) => UnixStream::connect(path).await.map(Stream::Unix),
                Upstream::Tcp(hostport) => {
                    let stream = TcpStream::connect(hostport.as_str()).await?;
                    // Records are written whole; do not let Nagle hold the
                    // last small one (the empty STDIN) back.
                    stream.set_nodelay(true)?;
                    Ok(Stream::Tcp(stream))
                }
            }
        };
        match tokio::time::timeout(timeout, connect).await {
            Ok(result) => result,
            Err(_) => Err(io::Error::new(
                io::ErrorKind::TimedOut,
                format!("connect timed out after {timeout:?}"),
            )),
        }
    }

    /// Whether an idle connection may carry another request: the server
    /// has neither closed it nor sent anything since the last END_REQUEST.
    /// Does not block (tokio's `try_read`).
    pub(crate) fn looks_alive(&self) -> bool {
        let mut probe = [0u8; 1];
        let result = match self {
            Stream::Unix(s) => s.try_read(&mut probe),
            Stream::Tcp(s) => s.try_read(&mut probe),
        };
        matches!(result, Err(e) if e.kind() == io::ErrorKind::WouldBlock)
    }
}

impl AsyncRead for Stream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Stream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Stream::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_flush(cx),
            Stream::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Stream::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Stream::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}

/// Errors that mean the server had closed the connection before it saw
/// our request: a pooled connection that went stale.
pub(crate) fn is_stale_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::BrokenPipe
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::NotConnected
            | io::ErrorKind::UnexpectedEof
    )
}

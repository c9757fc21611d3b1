//! One request on one connection, after BEGIN_REQUEST and PARAMS went out:
//! STDIN is written by a task of its own while this side reads records, so
//! a script that answers before it reads its body cannot deadlock us. The
//! head is read in [`start`]; the body is then pumped by a task into a
//! channel of one chunk (back-pressure: nothing is read ahead while the
//! client is slow). After a clean END_REQUEST the connection goes back to
//! the pool; on any other end it is closed.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Frame;
use http_body_util::BodyExt;
use tokio::io::{AsyncReadExt, ReadHalf, WriteHalf};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::body::{self, Source, WriteFailure};
use super::cgi::{self, HeadScanner};
use super::conn::{self, Stream};
use super::pool::{FreshGuard, Pool};
use super::record::{self, Record};
use super::stderr::StderrLog;
use super::{Error, Response};

/// After END_REQUEST, how long our writer may take to get the empty STDIN
/// record out (PHP stops reading at CONTENT_LENGTH, so END_REQUEST can
/// overtake it; PHP skips a leftover empty STDIN on the next request).
const WRITER_GRACE: Duration = Duration::from_millis(500);
/// Room made in the read buffer at a time.
const READ_CHUNK: usize = 16 * 1024;

/// A task that is aborted when its handle is dropped: an abandoned request
/// must not keep feeding a connection nobody reads.
struct AbortOnDrop<T>(JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

type WriterResult = Result<WriteHalf<Stream>, WriteFailure>;

enum Writer {
    Running(AbortOnDrop<WriterResult>),
    /// All of STDIN is out; the half is kept to rebuild the connection.
    Done(WriteHalf<Stream>),
    /// Writing failed or was abandoned: the connection cannot be reused.
    Broken,
}

/// Why reading records stopped.
enum ReadError {
    Eof {
        mid_record: bool,
    },
    Io(io::Error),
    Timeout,
    Protocol(String),
    /// The writer gave up for a reason that ends the request.
    Abort(Error),
}

impl ReadError {
    /// What a pooled connection the server had already closed looks like.
    fn looks_stale(&self) -> bool {
        match self {
            ReadError::Eof { mid_record } => !mid_record,
            ReadError::Io(e) => conn::is_stale_error(e),
            _ => false,
        }
    }
}

/// A failed exchange, with whether it failed as a stale connection does
/// (nothing at all received, then EOF or reset), which may be retried.
pub(crate) struct Failure {
    pub error: Error,
    pub stale: bool,
}

struct Exchange {
    pool: Pool,
    reader: ReadHalf<Stream>,
    buf: BytesMut,
    writer: Writer,
    stderr: StderrLog,
    timeout: Duration,
}

/// Run the request whose BEGIN_REQUEST and PARAMS (and, for an empty body,
/// empty STDIN) are already on `stream`: send `source` as STDIN, read the
/// CGI head and return the response with its body streaming. `fresh` is
/// held until the first response record.
pub(crate) async fn start<B>(
    pool: Pool,
    stream: Stream,
    source: Source<B>,
    fresh: Option<FreshGuard>,
) -> Result<Response, Failure>
where
    B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: std::fmt::Display,
{
    let limits = pool.limits().clone();
    let (reader, write_half) = tokio::io::split(stream);
    let writer = match source {
        Source::Empty => Writer::Done(write_half),
        source => Writer::Running(AbortOnDrop(tokio::spawn(body::write_stdin(
            write_half,
            source,
            limits.clone(),
            pool.name().to_string(),
        )))),
    };
    let mut ex = Exchange {
        stderr: StderrLog::new(pool.name().to_string()),
        pool,
        reader,
        buf: BytesMut::new(),
        writer,
        timeout: limits.response_timeout,
    };
    let mut head = BytesMut::new();
    let mut scanner = HeadScanner::default();
    let mut received = false;
    let fail = |error| Failure {
        error,
        stale: false,
    };
    loop {
        let rec = match ex.next_record().await {
            Ok(rec) => rec,
            Err(e) => {
                let stale = !received && e.looks_stale();
                return Err(Failure {
                    error: ex.error(e),
                    stale,
                });
            }
        };
        received = true;
        match rec.kind {
            record::STDOUT => {
                head.extend_from_slice(&rec.content);
                let end = scanner.find_end(&head);
                let (head_len, body_start) = match end {
                    Some((_, body_start)) if body_start > limits.max_header_bytes => {
                        return Err(fail(Error::HeaderTooLarge))
                    }
                    None if head.len() > limits.max_header_bytes => {
                        return Err(fail(Error::HeaderTooLarge))
                    }
                    None => continue,
                    Some(end) => end,
                };
                let parsed = cgi::parse_head(&head[..head_len])
                    .map_err(|why| fail(ex.protocol(format!("bad CGI response head: {why}"))))?;
                let first = head.split_off(body_start).freeze();
                drop(fresh);
                let (tx, rx) = mpsc::channel(1);
                tokio::spawn(ex.pump(tx, first));
                return Ok(Response {
                    status: parsed.status,
                    reason: parsed.reason,
                    headers: parsed.headers,
                    body: ChannelBody { rx }.boxed(),
                });
            }
            record::STDERR => ex.stderr.push(&rec.content),
            record::END_REQUEST => {
                ex.stderr.flush();
                let end =
                    record::parse_end_request(&rec.content).map_err(|w| fail(ex.protocol(w)))?;
                return Err(fail(match end.protocol_status {
                    record::OVERLOADED => Error::Overloaded,
                    record::CANT_MPX_CONN => {
                        ex.protocol("refused the request: cannot multiplex connections".into())
                    }
                    record::UNKNOWN_ROLE => {
                        ex.protocol("refused the request: responder role unknown".into())
                    }
                    _ => ex.protocol("ended the request inside the CGI response head".into()),
                }));
            }
            kind => {
                return Err(fail(
                    ex.protocol(format!("sent an unexpected record of type {kind}")),
                ))
            }
        }
    }
}

impl Exchange {
    /// The next record for our request. While the writer still runs, reads
    /// wait without a timeout (each of the writer's steps has one, and it
    /// ends the request if the client stalls); afterwards each read waits
    /// at most `response_timeout`. Cancel-safe: state lives in `self`.
    async fn next_record(&mut self) -> Result<Record, ReadError> {
        loop {
            match record::decode(&mut self.buf) {
                Err(why) => return Err(ReadError::Protocol(why)),
                Ok(Some(rec)) if rec.request_id != record::REQUEST_ID => {
                    return Err(ReadError::Protocol(format!(
                        "record of type {} for request id {} (ours is {})",
                        rec.kind,
                        rec.request_id,
                        record::REQUEST_ID
                    )))
                }
                Ok(Some(rec)) => return Ok(rec),
                Ok(None) => {}
            }
            if self.buf.capacity() - self.buf.len() < 1024 {
                self.buf.reserve(READ_CHUNK);
            }
            /// What woke us up.
            enum Step {
                Read(io::Result<usize>),
                Writer(Result<WriterResult, tokio::task::JoinError>),
            }
            let step = match &mut self.writer {
                Writer::Running(task) => tokio::select! {
                    read = self.reader.read_buf(&mut self.buf) => Step::Read(read),
                    finished = &mut task.0 => Step::Writer(finished),
                },
                _ => match tokio::time::timeout(self.timeout, self.reader.read_buf(&mut self.buf))
                    .await
                {
                    Ok(read) => Step::Read(read),
                    Err(_) => return Err(ReadError::Timeout),
                },
            };
            match step {
                Step::Read(Ok(0)) => {
                    return Err(ReadError::Eof {
                        mid_record: !self.buf.is_empty(),
                    })
                }
                Step::Read(Ok(_)) => {}
                Step::Read(Err(e)) => return Err(ReadError::Io(e)),
                Step::Writer(Ok(Ok(half))) => self.writer = Writer::Done(half),
                Step::Writer(Ok(Err(WriteFailure::Abort(e)))) => {
                    self.writer = Writer::Broken;
                    return Err(ReadError::Abort(e));
                }
                Step::Writer(Ok(Err(WriteFailure::Upstream(e)))) => {
                    // The answer may still be complete; keep reading.
                    tracing::debug!(upstream = %self.pool.name(), "sending the request body failed: {e}");
                    self.writer = Writer::Broken;
                }
                Step::Writer(Err(e)) => {
                    tracing::warn!(upstream = %self.pool.name(), "request body task failed: {e}");
                    self.writer = Writer::Broken;
                }
            }
        }
    }

    fn protocol(&self, what: String) -> Error {
        Error::Protocol(format!("FastCGI server {}: {what}", self.pool.name()))
    }

    fn error(&self, e: ReadError) -> Error {
        let name = self.pool.name().to_string();
        match e {
            ReadError::Eof { .. } => Error::Io(
                name,
                io::Error::new(
                    io::ErrorKind::UnexpectedEof,
                    "connection closed before the end of the response",
                ),
            ),
            ReadError::Io(e) => Error::Io(name, e),
            ReadError::Timeout => Error::Timeout(name, self.timeout),
            ReadError::Protocol(why) => self.protocol(why),
            ReadError::Abort(e) => e,
        }
    }

    /// Stream STDOUT into `tx` until END_REQUEST. Returning drops `self`,
    /// which closes the connection unless `finish` gave it to the pool.
    async fn pump(mut self, tx: mpsc::Sender<io::Result<Bytes>>, first: Bytes) {
        let name = self.pool.name().to_string();
        let timeout = self.timeout;
        if !first.is_empty() && !self.deliver(&tx, first).await {
            return;
        }
        loop {
            let rec = tokio::select! {
                rec = self.next_record() => Some(rec),
                () = tx.closed() => None,
            };
            let outcome = match rec {
                None => {
                    tracing::debug!(upstream = %name, "client went away; closing the FastCGI connection");
                    return;
                }
                Some(Err(e)) => Err(self.error(e)),
                Some(Ok(rec)) => match rec.kind {
                    record::STDOUT => {
                        if !rec.content.is_empty() && !self.deliver(&tx, rec.content).await {
                            return;
                        }
                        continue;
                    }
                    record::STDERR => {
                        self.stderr.push(&rec.content);
                        continue;
                    }
                    record::END_REQUEST => self.finish(&rec.content).await,
                    kind => Err(self.protocol(format!("sent an unexpected record of type {kind}"))),
                },
            };
            if let Err(e) = outcome {
                // As with Apache, it is logged and the client sees an
                // aborted response. The error must reach the body (a clean
                // end would look complete), so wait for room as for data.
                tracing::warn!(upstream = %name, "response aborted: {e}");
                let _ =
                    tokio::time::timeout(timeout, tx.send(Err(io::Error::other(e.to_string()))))
                        .await;
            }
            return;
        }
    }

    /// Hand a chunk to the client, waiting at most `response_timeout` for it
    /// to take the previous one (Apache's Timeout bounds client writes too).
    /// `false` when the client is gone or stalled.
    async fn deliver(&self, tx: &mpsc::Sender<io::Result<Bytes>>, data: Bytes) -> bool {
        match tokio::time::timeout(self.timeout, tx.send(Ok(data))).await {
            Ok(Ok(())) => true,
            Ok(Err(_)) => false,
            Err(_) => {
                tracing::debug!(upstream = %self.pool.name(), "client stalled reading the response; closing");
                false
            }
        }
    }

    /// END_REQUEST arrived: check it, and give the connection back to the
    /// pool when nothing is left unread or unsent.
    async fn finish(mut self, content: &[u8]) -> Result<(), Error> {
        self.stderr.flush();
        let end = record::parse_end_request(content).map_err(|w| self.protocol(w))?;
        if end.protocol_status != record::REQUEST_COMPLETE {
            return Err(self.protocol(format!(
                "ended the request with protocol status {}",
                end.protocol_status
            )));
        }
        if !self.buf.is_empty() {
            tracing::debug!(upstream = %self.pool.name(), "bytes after END_REQUEST; not reusing the connection");
            return Ok(());
        }
        let half = match std::mem::replace(&mut self.writer, Writer::Broken) {
            Writer::Done(half) => Some(half),
            Writer::Running(mut task) => {
                match tokio::time::timeout(WRITER_GRACE, &mut task.0).await {
                    Ok(Ok(Ok(half))) => Some(half),
                    _ => None,
                }
            }
            Writer::Broken => None,
        };
        if let Some(half) = half {
            self.pool.put(self.reader.unsplit(half));
        }
        Ok(())
    }
}

/// The response body: chunks from the pump task. Dropping it closes the
/// channel, which the pump notices and closes the connection.
struct ChannelBody {
    rx: mpsc::Receiver<io::Result<Bytes>>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = io::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, io::Error>>> {
        self.rx
            .poll_recv(cx)
            .map(|chunk| chunk.map(|result| result.map(Frame::data)))
    }
}

//! The client's request body on its way to STDIN.
//!
//! CGI needs CONTENT_LENGTH before the script runs. With
//! `BodyPolicy::buffer` every body is read completely before a connection
//! is taken (memory up to `BodyPolicy::memory_bytes`, then an unnamed temp
//! file), as nginx does: a slow client then holds nothing but its own
//! socket, never a PHP-FPM worker. Without it a body whose length is known
//! (the caller's CONTENT_LENGTH, or an exact size hint) is streamed as it
//! arrives; any other body is spooled first, as Apache's mod_proxy_fcgi
//! does for chunked requests, and CONTENT_LENGTH is added. Memory stays
//! bounded either way, and either way the client must keep up the
//! `MinRate` (408 otherwise).

use std::fmt::Display;
use std::io;
use std::os::unix::fs::FileExt;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Body;
use tokio::io::{AsyncWriteExt, WriteHalf};

use super::conn::Stream;
use super::record::{self, MAX_CONTENT, REQUEST_ID, STDIN};
use super::{Error, Limits, MinRate};

/// Spooled bodies up to this size stay in memory (the library default;
/// the server sets its own bound).
pub(crate) const SPOOL_IN_MEMORY: usize = 1 << 20;

/// The request body, ready to be sent (maybe more than once).
pub(crate) enum Source<B> {
    Empty,
    Memory(Bytes),
    /// A spooled body; read with positional reads so that a retry never
    /// shares a file offset with an abandoned attempt.
    File {
        file: Arc<std::fs::File>,
        len: u64,
    },
    /// Streamed from the client with a known length.
    Stream {
        body: B,
        len: u64,
    },
    /// A stream handed to an earlier attempt: gone.
    Taken,
}

impl<B> Source<B> {
    /// The source for one attempt; a stream can be handed out only once.
    pub(crate) fn for_attempt(&mut self) -> Source<B> {
        match self {
            Source::Empty => Source::Empty,
            Source::Memory(data) => Source::Memory(data.clone()),
            Source::File { file, len } => Source::File {
                file: Arc::clone(file),
                len: *len,
            },
            Source::Stream { .. } | Source::Taken => std::mem::replace(self, Source::Taken),
        }
    }

    /// Whether another attempt can send the body again.
    pub(crate) fn replayable(&self) -> bool {
        !matches!(self, Source::Stream { .. } | Source::Taken)
    }
}

/// Decide how to send `body`; returns the params (CONTENT_LENGTH added when
/// the body had to be measured) and the source. `upstream` names the
/// server in error messages.
pub(crate) async fn prepare<B>(
    mut params: Vec<(String, String)>,
    mut body: B,
    limits: &Limits,
    upstream: &str,
) -> Result<(Vec<(String, String)>, Source<B>), Error>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Display,
{
    let over = |len: u64| limits.max_body_bytes > 0 && len > limits.max_body_bytes;
    let known_empty = body.is_end_stream() || body.size_hint().exact() == Some(0);
    let declared = params
        .iter()
        .rev()
        .find(|(name, _)| name == "CONTENT_LENGTH")
        .map(|(_, value)| value.trim().to_string());
    // An empty CONTENT_LENGTH says nothing; drop it so that ours stands alone.
    params.retain(|(name, value)| !(name == "CONTENT_LENGTH" && value.trim().is_empty()));
    match declared.filter(|v| !v.is_empty()) {
        Some(text) => {
            let len: u64 = text
                .parse()
                .map_err(|_| Error::ClientBody(format!("invalid CONTENT_LENGTH {text:?}")))?;
            if over(len) {
                return Err(Error::BodyTooLarge);
            }
            if len == 0 && known_empty {
                return Ok((params, Source::Empty));
            }
            if limits.body.buffer {
                let source = spool(&mut body, limits, upstream, Some(len)).await?;
                return Ok((params, source));
            }
            Ok((params, Source::Stream { body, len }))
        }
        None if known_empty => Ok((params, Source::Empty)),
        None => {
            let source = match body.size_hint().exact() {
                Some(len) if !limits.body.buffer => {
                    if over(len) {
                        return Err(Error::BodyTooLarge);
                    }
                    params.push(("CONTENT_LENGTH".to_string(), len.to_string()));
                    return Ok((params, Source::Stream { body, len }));
                }
                _ => spool(&mut body, limits, upstream, None).await?,
            };
            let len = match &source {
                Source::Memory(data) => data.len() as u64,
                Source::File { len, .. } => *len,
                _ => 0,
            };
            params.push(("CONTENT_LENGTH".to_string(), len.to_string()));
            Ok((params, source))
        }
    }
}

/// Read the whole body into memory or, past `BodyPolicy::memory_bytes`, an
/// unnamed temp file (gone from the file system from the start, so nothing
/// leaks). `declared`: the Content-Length the body must match.
async fn spool<B>(
    body: &mut B,
    limits: &Limits,
    upstream: &str,
    declared: Option<u64>,
) -> Result<Source<B>, Error>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Display,
{
    let local = |e: io::Error| Error::Io(format!("{upstream} (spooling the request body)"), e);
    let mut memory = BytesMut::new();
    let mut file: Option<tokio::fs::File> = None;
    let mut total: u64 = 0;
    let mut pace = Pace::new(limits);
    while let Some(data) = next_data(body, &mut pace).await? {
        total += data.len() as u64;
        if limits.max_body_bytes > 0 && total > limits.max_body_bytes {
            return Err(Error::BodyTooLarge);
        }
        if let Some(len) = declared.filter(|len| total > *len) {
            return Err(Error::ClientBody(format!(
                "request body longer than its Content-Length {len}"
            )));
        }
        if file.is_none() && memory.len() + data.len() > limits.body.memory_bytes {
            let created = tokio::task::spawn_blocking(tempfile::tempfile)
                .await
                .map_err(io::Error::other)
                .and_then(|r| r)
                .map_err(local)?;
            let mut spool_file = tokio::fs::File::from_std(created);
            spool_file.write_all(&memory).await.map_err(local)?;
            memory = BytesMut::new();
            file = Some(spool_file);
        }
        match &mut file {
            Some(spool_file) => spool_file.write_all(&data).await.map_err(local)?,
            None => memory.extend_from_slice(&data),
        }
    }
    if let Some(len) = declared.filter(|len| total < *len) {
        return Err(Error::ClientBody(format!(
            "request body ended after {total} of {len} bytes"
        )));
    }
    match file {
        Some(mut spool_file) => {
            spool_file.flush().await.map_err(local)?;
            Ok(Source::File {
                file: Arc::new(spool_file.into_std().await),
                len: total,
            })
        }
        None if memory.is_empty() => Ok(Source::Empty),
        None => Ok(Source::Memory(memory.freeze())),
    }
}

/// How long the client's body may take: the `MinRate` deadline, and the
/// longest wait between two reads.
pub(crate) struct Pace {
    stall: Duration,
    rate: Option<(tokio::time::Instant, MinRate)>,
}

impl Pace {
    pub(crate) fn new(limits: &Limits) -> Pace {
        Pace {
            stall: limits.response_timeout,
            rate: limits
                .body
                .min_rate
                .map(|rate| (tokio::time::Instant::now() + rate.initial, rate)),
        }
    }

    /// `n` more bytes arrived: the deadline moves on by n / rate seconds,
    /// at most `initial` ahead of now.
    fn received(&mut self, n: usize) {
        if let Some((deadline, rate)) = &mut self.rate {
            let now = tokio::time::Instant::now();
            let cap = now + rate.initial;
            *deadline = if rate.bytes_per_second == 0 {
                cap
            } else {
                let earned = Duration::from_secs_f64(n as f64 / rate.bytes_per_second as f64);
                (*deadline + earned).min(cap)
            };
        }
    }

    /// When waiting for the next frame must end, and whether that is the
    /// rate's deadline (rather than the stall timeout).
    fn next_deadline(&self) -> (tokio::time::Instant, bool) {
        let stall = tokio::time::Instant::now() + self.stall;
        match self.rate {
            Some((deadline, _)) if deadline <= stall => (deadline, true),
            _ => (stall, false),
        }
    }
}

/// The next non-empty data frame of the client's body (trailers skipped),
/// within `pace`.
async fn next_data<B>(body: &mut B, pace: &mut Pace) -> Result<Option<Bytes>, Error>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Display,
{
    let (deadline, is_rate) = pace.next_deadline();
    loop {
        // The body's error becomes a String inside the poll, so it is never
        // held across an await (B::Error need not be Send).
        let frame = std::future::poll_fn(|cx| {
            Pin::new(&mut *body)
                .poll_frame(cx)
                .map(|frame| frame.map(|result| result.map_err(|e| e.to_string())))
        });
        match tokio::time::timeout_at(deadline, frame).await {
            Err(_) if is_rate => {
                let rate = pace.rate.map(|(_, r)| r.bytes_per_second).unwrap_or(0);
                return Err(Error::SlowBody(format!(
                    "the client sent its body slower than {rate} bytes/s"
                )));
            }
            Err(_) => {
                return Err(Error::ClientBody(format!(
                    "no request body data for {:?}",
                    pace.stall
                )))
            }
            Ok(None) => return Ok(None),
            Ok(Some(Err(e))) => return Err(Error::ClientBody(e)),
            Ok(Some(Ok(frame))) => match frame.into_data() {
                Ok(data) if !data.is_empty() => {
                    pace.received(data.len());
                    return Ok(Some(data));
                }
                _ => continue,
            },
        }
    }
}

/// How sending STDIN failed.
#[derive(Debug)]
pub(crate) enum WriteFailure {
    /// The request cannot go on (client body failed, over the limit, spool
    /// unreadable): fail the exchange with this.
    Abort(Error),
    /// Writing to the server failed. Its answer may still be readable (a
    /// script may answer without reading the whole body), so the reader
    /// decides; the connection is not reused.
    Upstream(io::Error),
}

/// Send the body as STDIN records of at most `MAX_CONTENT` bytes, then the
/// empty STDIN record. Each write waits at most `timeout`. Gives the write
/// half back for reuse.
pub(crate) async fn write_stdin<B>(
    mut out: WriteHalf<Stream>,
    source: Source<B>,
    limits: Limits,
    upstream: String,
) -> Result<WriteHalf<Stream>, WriteFailure>
where
    B: Body<Data = Bytes> + Send + Unpin + 'static,
    B::Error: Display,
{
    let timeout = limits.response_timeout;
    let mut buf = BytesMut::with_capacity(record::HEADER_LEN + MAX_CONTENT + 8);
    match source {
        Source::Empty | Source::Taken => {}
        Source::Memory(data) => {
            for chunk in data.chunks(MAX_CONTENT) {
                send_record(&mut out, &mut buf, chunk, timeout).await?;
            }
        }
        Source::File { file, len } => {
            let mut offset = 0u64;
            while offset < len {
                let want =
                    usize::try_from(len - offset).map_or(MAX_CONTENT, |n| n.min(MAX_CONTENT));
                let chunk = read_at(Arc::clone(&file), offset, want)
                    .await
                    .map_err(|e| {
                        WriteFailure::Abort(Error::Io(
                            format!("{upstream} (reading the spooled request body)"),
                            e,
                        ))
                    })?;
                send_record(&mut out, &mut buf, &chunk, timeout).await?;
                offset += want as u64;
            }
        }
        Source::Stream { mut body, len } => {
            let mut sent = 0u64;
            let mut pace = Pace::new(&limits);
            while let Some(data) = next_data(&mut body, &mut pace)
                .await
                .map_err(WriteFailure::Abort)?
            {
                sent += data.len() as u64;
                if sent > len {
                    return Err(WriteFailure::Abort(Error::ClientBody(format!(
                        "request body longer than its Content-Length {len}"
                    ))));
                }
                if limits.max_body_bytes > 0 && sent > limits.max_body_bytes {
                    return Err(WriteFailure::Abort(Error::BodyTooLarge));
                }
                for chunk in data.chunks(MAX_CONTENT) {
                    send_record(&mut out, &mut buf, chunk, timeout).await?;
                }
            }
            if sent < len {
                return Err(WriteFailure::Abort(Error::ClientBody(format!(
                    "request body ended after {sent} of {len} bytes"
                ))));
            }
        }
    }
    send_record(&mut out, &mut buf, &[], timeout).await?;
    Ok(out)
}

async fn send_record(
    out: &mut WriteHalf<Stream>,
    buf: &mut BytesMut,
    content: &[u8],
    timeout: Duration,
) -> Result<(), WriteFailure> {
    buf.clear();
    record::put_record(buf, STDIN, REQUEST_ID, content);
    let write = async {
        out.write_all(buf).await?;
        out.flush().await
    };
    match tokio::time::timeout(timeout, write).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(WriteFailure::Upstream(e)),
        Err(_) => Err(WriteFailure::Upstream(io::Error::new(
            io::ErrorKind::TimedOut,
            format!("the server read no request body for {timeout:?}"),
        ))),
    }
}

async fn read_at(file: Arc<std::fs::File>, offset: u64, len: usize) -> io::Result<Vec<u8>> {
    tokio::task::spawn_blocking(move || {
        let mut buf = vec![0u8; len];
        file.read_exact_at(&mut buf, offset).map(|()| buf)
    })
    .await
    .map_err(io::Error::other)?
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::BodyPolicy;
    use http_body_util::Full;

    fn buffered(memory_bytes: usize) -> Limits {
        Limits {
            body: BodyPolicy {
                buffer: true,
                memory_bytes,
                min_rate: None,
            },
            ..Limits::default()
        }
    }

    fn with_length(len: usize) -> Vec<(String, String)> {
        vec![("CONTENT_LENGTH".to_string(), len.to_string())]
    }

    #[tokio::test]
    async fn a_buffered_body_past_the_memory_bound_goes_to_a_file() {
        let data = Bytes::from(vec![7u8; 5000]);
        let body = Full::new(data.clone());
        let (_, source) = prepare(with_length(5000), body, &buffered(1024), "t")
            .await
            .expect("prepare");
        let Source::File { file, len } = source else {
            panic!("not spooled to a file");
        };
        assert_eq!(len, 5000);
        let back = read_at(file, 0, 5000).await.expect("read back");
        assert_eq!(back, data.to_vec());
        let (_, source) = prepare(with_length(5000), Full::new(data), &buffered(8192), "t")
            .await
            .expect("prepare");
        assert!(matches!(source, Source::Memory(ref m) if m.len() == 5000));
    }

    #[tokio::test]
    async fn a_buffered_body_must_match_its_content_length() {
        let short = Full::new(Bytes::from_static(b"abc"));
        let err = prepare(with_length(10), short, &buffered(1024), "t")
            .await
            .err()
            .expect("shorter than declared");
        assert_eq!(err.status(), 400);
        let long = Full::new(Bytes::from_static(b"abcdefghijkl"));
        let err = prepare(with_length(10), long, &buffered(1024), "t")
            .await
            .err()
            .expect("longer than declared");
        assert_eq!(err.status(), 400);
    }

    #[tokio::test]
    async fn the_deadline_moves_a_second_per_rate_bytes_and_never_past_the_initial_ahead() {
        let limits = Limits {
            body: BodyPolicy {
                min_rate: Some(MinRate {
                    initial: Duration::from_secs(20),
                    bytes_per_second: 500,
                }),
                ..BodyPolicy::default()
            },
            ..Limits::default()
        };
        let start = tokio::time::Instant::now();
        let mut pace = Pace::new(&limits);
        let deadline = |p: &Pace| p.rate.map(|(d, _)| d.duration_since(start));
        assert!(deadline(&pace).is_some_and(|d| d >= Duration::from_secs(20)));
        // 1 byte earns 2 ms (then capped at 20 s from now): a byte every
        // 10 s cannot keep the deadline from coming
        pace.received(1);
        let d = deadline(&pace).expect("a deadline");
        assert!(d >= Duration::from_secs(20) && d < Duration::from_millis(20_100));
        // 500 bytes earn a second, from a deadline 2 s back
        if let Some((at, _)) = &mut pace.rate {
            *at -= Duration::from_secs(2);
        }
        pace.received(500);
        let d = deadline(&pace).expect("a deadline");
        assert!(
            d >= Duration::from_secs(19) && d < Duration::from_millis(19_100),
            "{d:?}"
        );
        // a burst cannot buy more than 20 s ahead of now
        pace.received(1 << 20);
        let d = deadline(&pace).expect("a deadline");
        assert!(d <= start.elapsed() + Duration::from_secs(20), "{d:?}");
        // the rate's deadline wins over the (longer) stall timeout
        assert!(pace.next_deadline().1);
        // without a rate, the initial time is the longest wait between reads
        let mut no_rate = Pace::new(&Limits {
            body: BodyPolicy {
                min_rate: Some(MinRate {
                    initial: Duration::from_secs(3),
                    bytes_per_second: 0,
                }),
                ..BodyPolicy::default()
            },
            ..Limits::default()
        });
        no_rate.received(10);
        let d = no_rate.rate.map(|(d, _)| d.duration_since(start));
        assert!(d.is_some_and(|d| d >= Duration::from_secs(3) && d < Duration::from_secs(4)));
    }

    #[tokio::test]
    async fn a_streamed_body_with_a_known_length_is_not_read_first() {
        let limits = Limits::default();
        let body = Full::new(Bytes::from_static(b"abc"));
        let (_, source) = prepare(with_length(3), body, &limits, "t")
            .await
            .expect("prepare");
        assert!(matches!(source, Source::Stream { len: 3, .. }));
    }
}

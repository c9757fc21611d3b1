//! Connections to one upstream: idle keep-alive connections are reused
//! (newest first), a stale one is retried once on a fresh connection.
//!
//! A PHP-FPM worker serves one keep-alive connection until it is closed,
//! so every idle connection here pins a worker. Two things keep that from
//! starving requests: idle connections are closed after `IDLE_TIMEOUT`,
//! and while a request waits on a brand-new connection (possibly queued in
//! FPM's listen backlog behind those pinned workers) finished connections
//! are closed instead of kept, which frees their workers for it.

use std::fmt::{self, Display};
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use tokio::io::AsyncWriteExt;

use super::body::{self, Source};
use super::conn::{self, Stream};
use super::exchange;
use super::record::{self, REQUEST_ID, STDIN};
use super::{Error, Limits, Response, Upstream};

/// Idle connections older than this are closed.
const IDLE_TIMEOUT: Duration = Duration::from_secs(10);
/// A request that cannot be retried once sent only takes a connection idle
/// at least this long. A PHP-FPM worker that will not keep a connection
/// (pm.max_requests reached) sends END_REQUEST, finishes its request
/// shutdown, and only then shuts the socket down and discards whatever we
/// sent; a request sent in that gap is lost. The gap is normally far below
/// a millisecond; after this long the hang-up is visible to `looks_alive`.
const REUSE_SETTLE: Duration = Duration::from_millis(100);

/// A pool of connections to one upstream; clones share it.
#[derive(Clone)]
pub struct Pool {
    inner: Arc<Inner>,
}

struct Inner {
    upstream: Upstream,
    /// `upstream` as text, for messages.
    name: String,
    limits: Limits,
    idle: Mutex<IdleList>,
    opened: AtomicU64,
    reused: AtomicU64,
    retried: AtomicU64,
    /// Requests on a new connection that have not had an answer yet.
    waiting_fresh: AtomicUsize,
}

#[derive(Default)]
struct IdleList {
    conns: Vec<Idle>,
    /// A reaper task is running for this list.
    reaper: bool,
}

struct Idle {
    stream: Stream,
    since: Instant,
}

/// A request whose body has been taken in ([`Pool::read_body`]) and that
/// has not been sent yet.
pub struct Prepared<B> {
    params: Vec<(String, String)>,
    source: Source<B>,
}

impl<B> Prepared<B> {}

/// Counters, for tests and the status page.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct PoolStats {
    /// Connections opened.
    pub opened: u64,
    /// Requests sent on an idle connection.
    pub reused: u64,
    /// Requests retried on a fresh connection after a stale one failed.
    pub retried: u64,
    /// Connections idle now.
    pub idle: usize,
}

impl fmt::Debug for Pool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Pool")
            .field("upstream", &self.inner.upstream)
            .field("stats", &self.stats())
            .finish()
    }
}

impl Pool {
    pub fn new(upstream: Upstream, limits: Limits) -> Pool {
        Pool {
            inner: Arc::new(Inner {
                name: upstream.to_string(),
                upstream,
                limits,
                idle: Mutex::new(IdleList::default()),
                opened: AtomicU64::new(0),
                reused: AtomicU64::new(0),
                retried: AtomicU64::new(0),
                waiting_fresh: AtomicUsize::new(0),
            }),
        }
    }

    pub fn upstream(&self) -> &Upstream {
        &self.inner.upstream
    }

    pub fn limits(&self) -> &Limits {
        &self.inner.limits
    }

    pub fn stats(&self) -> PoolStats {
        PoolStats {
            opened: self.inner.opened.load(Ordering::Relaxed),
            reused: self.inner.reused.load(Ordering::Relaxed),
            retried: self.inner.retried.load(Ordering::Relaxed),
            idle: self.inner.idle_list().conns.len(),
        }
    }

    pub(crate) fn name(&self) -> &str {
        &self.inner.name
    }

    /// Run one request. `params` are the CGI variables in order; `body` is
    /// the client's request body (see the `body` module for how it is
    /// sent). The response's body streams; the connection returns to the
    /// pool when it has been read to the end.
    pub async fn send<B>(&self, params: Vec<(String, String)>, body: B) -> Result<Response, Error>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Display,
    {
        let prepared = self.read_body(params, body).await?;
        self.send_prepared(prepared).await
    }

    /// The first half of [`Pool::send`]: takes the client's body in as the
    /// pool's `BodyPolicy` says (with `buffer`, all of it) without touching
    /// the server, so that the caller can wait for its turn afterwards.
    pub async fn read_body<B>(
        &self,
        params: Vec<(String, String)>,
        body: B,
    ) -> Result<Prepared<B>, Error>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Display,
    {
        let inner = &self.inner;
        let (params, source) = body::prepare(params, body, &inner.limits, &inner.name).await?;
        Ok(Prepared { params, source })
    }

    /// The second half of [`Pool::send`]: a connection, the request, the
    /// answer's head.
    pub async fn send_prepared<B>(&self, prepared: Prepared<B>) -> Result<Response, Error>
    where
        B: http_body::Body<Data = Bytes> + Send + Unpin + 'static,
        B::Error: Display,
    {
        let inner = &self.inner;
        let Prepared { params, mut source } = prepared;
        let retry_after_send = idempotent(&params);
        let settled_only = !(retry_after_send && source.replayable());
        let request = self.encode_request(&params, matches!(source, Source::Empty));
        let mut fresh_only = false;
        loop {
            let (mut stream, reused) = self.checkout(fresh_only, settled_only).await?;
            let may_retry = reused && !fresh_only;
            let fresh = (!reused).then(|| FreshGuard::new(inner));
            if let Err(e) = write_all(&mut stream, &request, inner.limits.response_timeout).await {
                if may_retry && conn::is_stale_error(&e) {
                    self.note_retry(&e);
                    fresh_only = true;
                    continue;
                }
                return Err(match e.kind() {
                    std::io::ErrorKind::TimedOut => {
                        Error::Timeout(inner.name.clone(), inner.limits.response_timeout)
                    }
                    _ => Error::Io(inner.name.clone(), e),
                });
            }
            // Only a body we can send again (none, or spooled) allows a
            // retry once the request has gone out, and only for methods
            // that may run twice: the script may have started.
            let replayable = source.replayable();
            match exchange::start(self.clone(), stream, source.for_attempt(), fresh).await {
                Ok(response) => return Ok(response),
                Err(failure) if failure.stale && may_retry && replayable && retry_after_send => {
                    self.note_retry(&failure.error);
                    fresh_only = true;
                }
                Err(failure) => return Err(failure.error),
            }
        }
    }

    /// BEGIN_REQUEST, PARAMS and, for an empty body, the empty STDIN: what
    /// is written before anything is taken from the client's body.
    fn encode_request(&self, params: &[(String, String)], empty_body: bool) -> Bytes {
        let mut out = BytesMut::new();
        record::put_begin_request(&mut out, REQUEST_ID, self.inner.limits.max_idle > 0);
        for name in record::put_params(&mut out, REQUEST_ID, params) {
            tracing::warn!(
                upstream = %self.inner.name,
                "CGI variable {name} does not fit in a FastCGI record; not sent"
            );
        }
        if empty_body {
            record::put_record(&mut out, STDIN, REQUEST_ID, &[]);
        }
        out.freeze()
    }

    fn note_retry(&self, why: &dyn Display) {
        self.inner.retried.fetch_add(1, Ordering::Relaxed);
        tracing::debug!(
            upstream = %self.inner.name,
            "pooled connection was stale ({why}); retrying on a new one"
        );
    }

    /// An idle connection that still looks usable (the newest; with
    /// `settled_only`, the newest idle for `REUSE_SETTLE`), else a new one.
    /// Returns whether it was reused.
    async fn checkout(
        &self,
        fresh_only: bool,
        settled_only: bool,
    ) -> Result<(Stream, bool), Error> {
        let inner = &self.inner;
        if !fresh_only {
            loop {
                let idle = {
                    let mut list = inner.idle_list();
                    let pick = if settled_only {
                        list.conns
                            .iter()
                            .rposition(|c| c.since.elapsed() >= REUSE_SETTLE)
                    } else {
                        list.conns.len().checked_sub(1)
                    };
                    match pick {
                        Some(i) => list.conns.remove(i),
                        None => break,
                    }
                };
                if idle.since.elapsed() < IDLE_TIMEOUT && idle.stream.looks_alive() {
                    inner.reused.fetch_add(1, Ordering::Relaxed);
                    return Ok((idle.stream, true));
                }
            }
        }
        let stream = Stream::connect(&inner.upstream, inner.limits.connect_timeout)
            .await
            .map_err(|e| Error::Connect(inner.name.clone(), e))?;
        inner.opened.fetch_add(1, Ordering::Relaxed);
        Ok((stream, false))
    }

    /// Keep a connection whose request ended cleanly, if allowed.
    pub(crate) fn put(&self, stream: Stream) {
        let inner = &self.inner;
        if inner.limits.max_idle == 0 || inner.waiting_fresh.load(Ordering::SeqCst) > 0 {
            return;
        }
        // A worker that will not keep the connection (pm.max_requests
        // reached) shuts its side down right after END_REQUEST and then
        // discards what we send until we close: close it now.
        if !stream.looks_alive() {
            return;
        }
        let start_reaper = {
            let mut idle = inner.idle_list();
            let now = Instant::now();
            idle.conns
                .retain(|c| now.duration_since(c.since) < IDLE_TIMEOUT);
            if idle.conns.len() >= inner.limits.max_idle {
                // The oldest goes: the newest are used first anyway.
                idle.conns.remove(0);
            }
            idle.conns.push(Idle { stream, since: now });
            !std::mem::replace(&mut idle.reaper, true)
        };
        if start_reaper {
            match tokio::runtime::Handle::try_current() {
                Ok(runtime) => {
                    runtime.spawn(reap(Arc::downgrade(inner)));
                }
                Err(_) => inner.idle_list().reaper = false,
            }
        }
    }
}

impl Inner {
    fn idle_list(&self) -> MutexGuard<'_, IdleList> {
        // Nothing panics while holding the lock; a poisoned list is still
        // a list of sockets.
        self.idle
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// Close expired or dead idle connections (each pins a PHP-FPM worker)
/// until the list is empty or the pool is gone.
async fn reap(pool: Weak<Inner>) {
    loop {
        tokio::time::sleep(IDLE_TIMEOUT / 4).await;
        let Some(inner) = pool.upgrade() else {
            return;
        };
        let mut idle = inner.idle_list();
        let now = Instant::now();
        idle.conns
            .retain(|c| now.duration_since(c.since) < IDLE_TIMEOUT && c.stream.looks_alive());
        if idle.conns.is_empty() {
            idle.reaper = false;
            return;
        }
    }
}

/// Counts a request waiting for its first answer on a new connection.
pub(crate) struct FreshGuard(Arc<Inner>);

impl FreshGuard {
    fn new(inner: &Arc<Inner>) -> FreshGuard {
        inner.waiting_fresh.fetch_add(1, Ordering::SeqCst);
        FreshGuard(Arc::clone(inner))
    }
}

impl Drop for FreshGuard {
    fn drop(&mut self) {
        self.0.waiting_fresh.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn write_all(stream: &mut Stream, data: &[u8], timeout: Duration) -> std::io::Result<()> {
    let write = async {
        stream.write_all(data).await?;
        stream.flush().await
    };
    tokio::time::timeout(timeout, write)
        .await
        .unwrap_or_else(|_| {
            Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("the server read no request for {timeout:?}"),
            ))
        })
}

/// Whether running the request twice is harmless (RFC 9110 idempotent
/// methods), which a retry after sending it needs.
fn idempotent(params: &[(String, String)]) -> bool {
    params
        .iter()
        .rev()
        .find(|(name, _)| name == "REQUEST_METHOD")
        .is_some_and(|(_, method)| {
            matches!(
                method.as_str(),
                "GET" | "HEAD" | "OPTIONS" | "TRACE" | "PUT" | "DELETE"
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn finished_connections_are_closed_while_a_new_one_waits() {
        let pool = Pool::new(
            Upstream::Unix("/nonexistent.sock".into()),
            Limits::default(),
        );
        let (a, _a_peer) = tokio::net::UnixStream::pair().expect("pair");
        let (b, _b_peer) = tokio::net::UnixStream::pair().expect("pair");
        let waiting = FreshGuard::new(&pool.inner);
        pool.put(Stream::Unix(a));
        assert_eq!(pool.stats().idle, 0, "closed to free its PHP-FPM worker");
        drop(waiting);
        pool.put(Stream::Unix(b));
        assert_eq!(pool.stats().idle, 1);
    }

    #[tokio::test]
    async fn idle_list_is_bounded() {
        let limits = Limits {
            max_idle: 2,
            ..Limits::default()
        };
        let pool = Pool::new(Upstream::Unix("/nonexistent.sock".into()), limits);
        let mut peers = Vec::new();
        for _ in 0..5 {
            let (a, peer) = tokio::net::UnixStream::pair().expect("pair");
            peers.push(peer);
            pool.put(Stream::Unix(a));
        }
        assert_eq!(pool.stats().idle, 2);
    }

    #[test]
    fn only_idempotent_methods_may_be_resent() {
        let with = |m: &str| vec![("REQUEST_METHOD".to_string(), m.to_string())];
        assert!(idempotent(&with("GET")) && idempotent(&with("PUT")));
        assert!(!idempotent(&with("POST")) && !idempotent(&with("PATCH")));
        assert!(!idempotent(&[]));
    }
}

//! What the connection loop watches of one connection: when bytes last
//! moved, whether hyper waits for the client, how much a request read.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// What the connection loop watches: when bytes last moved, whether hyper
/// is waiting for the client, how much was read for the current request.
pub(super) struct ConnState {
    pub(super) start: Instant,
    /// Milliseconds since `start` when bytes last moved.
    last_ms: AtomicU64,
    /// 0 when hyper is not waiting for the client's bytes, else 1 + the
    /// millisecond at which a read first found nothing to read.
    read_wait: AtomicU64,
    /// Bytes read since the current request's head was handed over.
    request_bytes: AtomicU64,
    /// Past this many bytes for one HTTP/1 request, reading fails.
    max_request_bytes: u64,
    /// The connection speaks HTTP/1 (known from its first request).
    pub(super) h1: AtomicBool,
    /// Requests seen on this connection.
    pub(super) requests: AtomicU64,
    /// The connection is ended by a timeout or the end of the drain: close
    /// it with a reset, so that a response the client never read does not
    /// keep kernel memory (a FIN queued behind unsent data waits for a
    /// window the client never opens).
    pub(super) abort: AtomicBool,
    /// 0, or 1 + the millisecond since which the socket takes no byte (a
    /// write returned Pending and none succeeded since).
    write_blocked: AtomicU64,
    /// A chunked HTTP/1 body went over the body cap.
    pub(super) over_cap: AtomicBool,
}

impl ConnState {
    pub(super) fn new(max_request_bytes: u64) -> ConnState {
        ConnState {
            start: Instant::now(),
            last_ms: AtomicU64::new(0),
            read_wait: AtomicU64::new(0),
            request_bytes: AtomicU64::new(0),
            max_request_bytes,
            h1: AtomicBool::new(false),
            requests: AtomicU64::new(0),
            abort: AtomicBool::new(false),
            write_blocked: AtomicU64::new(0),
            over_cap: AtomicBool::new(false),
        }
    }

    /// A write found the socket full.
    pub(super) fn write_pending(&self) {
        let now = self.elapsed_ms().saturating_add(1);
        let _ = self
            .write_blocked
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// A write took bytes.
    pub(super) fn write_done(&self) {
        self.write_blocked.store(0, Ordering::Relaxed);
        self.touch();
    }

    /// How long the socket has taken no byte while the server had some to
    /// write.
    pub(super) fn write_blocked_for(&self) -> Duration {
        match self.write_blocked.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_millis(self.elapsed_ms().saturating_sub(since - 1)),
        }
    }

    fn elapsed_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    pub(super) fn touch(&self) {
        self.last_ms.store(self.elapsed_ms(), Ordering::Relaxed);
    }

    pub(super) fn idle_for(&self) -> Duration {
        let last = self.last_ms.load(Ordering::Relaxed);
        Duration::from_millis(self.elapsed_ms().saturating_sub(last))
    }

    /// A read found nothing: hyper now waits for the client (kept from the
    /// first such read until bytes come).
    pub(super) fn read_pending(&self) {
        let now = self.elapsed_ms().saturating_add(1);
        let _ = self
            .read_wait
            .compare_exchange(0, now, Ordering::Relaxed, Ordering::Relaxed);
    }

    /// A read returned (bytes or EOF): nobody waits any more.
    pub(super) fn read_ready(&self) {
        self.read_wait.store(0, Ordering::Relaxed);
    }

    /// How long hyper has been waiting for the client's bytes.
    pub(super) fn waiting_for_client(&self) -> Duration {
        match self.read_wait.load(Ordering::Relaxed) {
            0 => Duration::ZERO,
            since => Duration::from_millis(self.elapsed_ms().saturating_sub(since - 1)),
        }
    }

    /// Counts `n` bytes read; true when an HTTP/1 request went over the
    /// body cap with them.
    pub(super) fn count_read(&self, n: usize) -> bool {
        let n = u64::try_from(n).unwrap_or(u64::MAX);
        let total = self
            .request_bytes
            .fetch_add(n, Ordering::Relaxed)
            .saturating_add(n);
        total > self.max_request_bytes && self.h1.load(Ordering::Relaxed)
    }

    /// A request head was handed over.
    pub(super) fn request_started(&self, version: http::Version) {
        self.request_bytes.store(0, Ordering::Relaxed);
        self.h1
            .store(version < http::Version::HTTP_2, Ordering::Relaxed);
        self.requests.fetch_add(1, Ordering::Relaxed);
    }
}

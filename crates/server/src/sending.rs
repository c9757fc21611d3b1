//! Response bodies on their way to the client, per connection: how many
//! one client address may have in progress, and the send timeout.
//!
//! hyper polls a response body for its next chunk as soon as the previous
//! one was handed to the connection (HTTP/2: before the stream's window
//! has room, since hyper 1.8), and keeps that chunk until the client's
//! window lets it out.  A client that opens many streams and never opens
//! their windows (`SETTINGS_INITIAL_WINDOW_SIZE = 0`) would so make every
//! stream open its file and hold a chunk.  Two bounds stop that:
//!
//! - places: a body larger than [`SMALL_BODY`] (or of unknown size) takes
//!   one of its client address's places ([`Limits::max_sending_per_client`])
//!   before its first poll, and gives it back when it ends or is dropped.
//!   Without a place it is not polled, so its file is not opened (static
//!   files open lazily, at the first poll) and no byte of it is read;
//! - the send timeout: a body that handed out a chunk and was not asked for
//!   the next one for [`Limits::send_timeout`] is dropped (its file closed;
//!   if hyper polls it again, the stream is reset), and a connection where
//!   no body moved for that long while one waits for the client is reset
//!   by the connection loop (`listener.rs`).
//!
//! [`SMALL_BODY`]: super::limits::SMALL_BODY
//! [`Limits::max_sending_per_client`]: super::limits::Limits
//! [`Limits::send_timeout`]: super::limits::Limits

use super::limits::SMALL_BODY;
use super::Body;
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::{AcquireError, OwnedSemaphorePermit, Semaphore};

/// Past this many slots the list is swept when a body is added (it is also
/// swept at every check), so that a long keep-alive connection does not
/// grow it.
const SWEEP_AT: usize = 64;

/// One tracked body, shared by the body (hyper's) and the connection loop.
struct Slot {
    /// The body; taken (dropped) by the send timeout.
    inner: Mutex<Option<Body>>,
    /// 0, or 1 + the millisecond at which the body handed out a chunk and
    /// has not been polled since (it waits for the client).
    awaiting: AtomicU64,
    /// hyper dropped the body (it ended, or the stream or connection did).
    gone: AtomicBool,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // A poisoned lock only means a panic elsewhere while it was held; the
    // data (a body, a list) is still usable.
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The response bodies of one connection.
pub(crate) struct Sending {
    start: Instant,
    slots: Mutex<Vec<Arc<Slot>>>,
    /// Milliseconds since `start` at which a body was last polled.
    progress_ms: AtomicU64,
    /// The client address's places (shared by all its connections).
    places: Arc<Semaphore>,
}

/// What [`Sending::check`] found.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Checked {
    /// Bodies dropped because they waited for the client too long.
    pub expired: usize,
    /// Some body waits for the client, and no body moved within the
    /// timeout: the connection should end.
    pub stalled: bool,
}

impl Sending {
    pub(crate) fn new(places: Arc<Semaphore>) -> Arc<Sending> {
        Arc::new(Sending {
            start: Instant::now(),
            slots: Mutex::new(Vec::new()),
            progress_ms: AtomicU64::new(0),
            places,
        })
    }

    fn now_ms(&self) -> u64 {
        u64::try_from(self.start.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Wraps a response body.  An empty body is left alone (nothing to
    /// send, nothing held).
    pub(crate) fn track(self: &Arc<Self>, body: Body) -> Body {
        use http_body::Body as _;
        use http_body_util::BodyExt;
        if body.is_end_stream() {
            return body;
        }
        let hint = body.size_hint();
        let needs_place = !matches!(hint.exact(), Some(n) if n <= SMALL_BODY);
        let slot = Arc::new(Slot {
            inner: Mutex::new(Some(body)),
            awaiting: AtomicU64::new(0),
            gone: AtomicBool::new(false),
        });
        {
            let mut slots = lock(&self.slots);
            if slots.len() >= SWEEP_AT {
                slots.retain(|s| !s.gone.load(Ordering::Relaxed));
            }
            slots.push(Arc::clone(&slot));
        }
        Tracked {
            slot,
            conn: Arc::clone(self),
            needs_place,
            place: None,
            waiting: None,
            ended: false,
        }
        .boxed()
    }

    /// Drops the bodies that have waited for the client for `timeout`, and
    /// says whether the whole connection is stalled.
    pub(crate) fn check(&self, timeout: Duration) -> Checked {
        let now = self.now_ms();
        let limit = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let mut out = Checked::default();
        let mut waiting = false;
        let mut slots = lock(&self.slots);
        slots.retain(|s| !s.gone.load(Ordering::Relaxed));
        for s in slots.iter() {
            let since = s.awaiting.load(Ordering::Relaxed);
            if since == 0 || now.saturating_sub(since - 1) < limit {
                continue;
            }
            waiting = true;
            let dropped = lock(&s.inner).take();
            if dropped.is_some() {
                out.expired += 1;
            }
        }
        let moved = self.progress_ms.load(Ordering::Relaxed);
        out.stalled = waiting && now.saturating_sub(moved) >= limit;
        out
    }

    /// Bodies hyper still holds.
    #[cfg(test)]
    pub(crate) fn live(&self) -> usize {
        lock(&self.slots)
            .iter()
            .filter(|s| !s.gone.load(Ordering::Relaxed))
            .count()
    }
}

type Acquire = Pin<Box<dyn Future<Output = Result<OwnedSemaphorePermit, AcquireError>> + Send>>;

/// The body hyper sees.
struct Tracked {
    slot: Arc<Slot>,
    conn: Arc<Sending>,
    needs_place: bool,
    place: Option<OwnedSemaphorePermit>,
    /// Waiting for a place (in a mutex only so the body is `Sync`; it is
    /// reached through `&mut`, never locked).
    waiting: Option<Mutex<Acquire>>,
    ended: bool,
}

impl Tracked {
    /// The body is over: its place goes back at once (hyper may keep this
    /// wrapper a while longer).
    fn end(&mut self, inner: &mut Option<Body>) {
        *inner = None;
        self.ended = true;
        self.place = None;
    }
}

impl http_body::Body for Tracked {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        if this.ended {
            return Poll::Ready(None);
        }
        let now = this.conn.now_ms();
        // Being asked for more is the client's progress.
        this.slot.awaiting.store(0, Ordering::Relaxed);
        this.conn.progress_ms.fetch_max(now, Ordering::Relaxed);
        if this.needs_place && this.place.is_none() {
            let places = &this.conn.places;
            let acquire = this
                .waiting
                .get_or_insert_with(|| Mutex::new(Box::pin(Arc::clone(places).acquire_owned())));
            let acquire = acquire
                .get_mut()
                .unwrap_or_else(|poisoned| poisoned.into_inner());
            match acquire.as_mut().poll(cx) {
                Poll::Pending => return Poll::Pending,
                Poll::Ready(r) => {
                    this.waiting = None;
                    // Err: the semaphore was closed, which nothing does;
                    // the body then goes without a place.
                    this.place = r.ok();
                }
            }
        }
        let slot = Arc::clone(&this.slot);
        let mut inner = lock(&slot.inner);
        let Some(body) = inner.as_mut() else {
            this.end(&mut inner);
            return Poll::Ready(Some(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "the client took no data within the send timeout",
            ))));
        };
        match Pin::new(&mut *body).poll_frame(cx) {
            Poll::Pending => Poll::Pending,
            Poll::Ready(Some(Ok(frame))) => {
                if body.is_end_stream() {
                    this.end(&mut inner);
                }
                if frame.is_data() {
                    // The chunk now waits for the client; until the body
                    // is polled again (or dropped), it is the client's turn.
                    slot.awaiting
                        .store(now.saturating_add(1), Ordering::Relaxed);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(other) => {
                this.end(&mut inner);
                Poll::Ready(other)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.ended
    }

    fn size_hint(&self) -> SizeHint {
        if self.ended {
            return SizeHint::with_exact(0);
        }
        match lock(&self.slot.inner).as_ref() {
            Some(b) => b.size_hint(),
            None => SizeHint::with_exact(0),
        }
    }
}

impl Drop for Tracked {
    fn drop(&mut self) {
        self.slot.gone.store(true, Ordering::Relaxed);
        lock(&self.slot.inner).take();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body::Body as _;
    use http_body_util::BodyExt;
    use std::sync::atomic::AtomicUsize;

    /// A large body that counts how many of its kind have been polled
    /// (the stand-in for an open file) and are not yet dropped.
    struct Counted {
        open: Arc<AtomicUsize>,
        opened: bool,
        left: usize,
    }

    impl http_body::Body for Counted {
        type Data = Bytes;
        type Error = std::io::Error;
        fn poll_frame(
            mut self: Pin<&mut Self>,
            _cx: &mut Context<'_>,
        ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
            if !self.opened {
                self.opened = true;
                self.open.fetch_add(1, Ordering::SeqCst);
            }
            if self.left == 0 {
                return Poll::Ready(None);
            }
            let n = self.left.min(1000);
            self.left -= n;
            Poll::Ready(Some(Ok(Frame::data(Bytes::from(vec![b'x'; n])))))
        }
        fn is_end_stream(&self) -> bool {
            self.left == 0
        }
    }

    impl Drop for Counted {
        fn drop(&mut self) {
            if self.opened {
                self.open.fetch_sub(1, Ordering::SeqCst);
            }
        }
    }

    fn counted(open: &Arc<AtomicUsize>) -> Body {
        Counted {
            open: Arc::clone(open),
            opened: false,
            left: 1 << 20,
        }
        .boxed()
    }

    fn poll_once(b: &mut Body) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let waker = futures_util::task::noop_waker();
        let mut cx = Context::from_waker(&waker);
        Pin::new(b).poll_frame(&mut cx)
    }

    #[tokio::test]
    async fn bodies_past_the_client_places_wait_unpolled() {
        let open = Arc::new(AtomicUsize::new(0));
        let conn = Sending::new(Arc::new(Semaphore::new(2)));
        let mut bodies: Vec<Body> = (0..5).map(|_| conn.track(counted(&open))).collect();
        for b in bodies.iter_mut() {
            let _ = poll_once(b);
        }
        // Two have a place (and opened); three wait, never polled inside.
        assert_eq!(open.load(Ordering::SeqCst), 2);
        assert!(poll_once(&mut bodies[4]).is_pending());
        // One ends (dropped): its place goes to a waiter.
        bodies.remove(0);
        assert_eq!(open.load(Ordering::SeqCst), 1);
        let polled: usize = bodies
            .iter_mut()
            .map(|b| usize::from(poll_once(b).is_ready()))
            .sum();
        assert_eq!(polled, 2, "the two with places, nobody else");
        assert_eq!(open.load(Ordering::SeqCst), 2);
        // A small body needs no place.
        let mut small = conn.track(crate::full_body(vec![b'y'; 100]));
        assert!(poll_once(&mut small).is_ready());
    }

    #[tokio::test]
    async fn a_body_the_client_does_not_take_is_dropped_after_the_send_timeout() {
        let open = Arc::new(AtomicUsize::new(0));
        let conn = Sending::new(Arc::new(Semaphore::new(8)));
        let mut stalled = conn.track(counted(&open));
        let mut moving = conn.track(counted(&open));
        assert!(poll_once(&mut stalled).is_ready());
        assert!(poll_once(&mut moving).is_ready());
        assert_eq!(open.load(Ordering::SeqCst), 2);
        let timeout = Duration::from_millis(200);
        assert_eq!(conn.check(timeout), Checked::default());
        tokio::time::sleep(Duration::from_millis(120)).await;
        // `moving` is asked for more: the connection progresses.
        assert!(poll_once(&mut moving).is_ready());
        tokio::time::sleep(Duration::from_millis(120)).await;
        let c = conn.check(timeout);
        assert_eq!(c.expired, 1, "{c:?}");
        assert!(!c.stalled, "another body moved within the timeout");
        // The stalled body's inner body (its "file") is gone.
        assert_eq!(open.load(Ordering::SeqCst), 1);
        // Polled again, it fails (hyper resets the stream).
        assert!(matches!(poll_once(&mut stalled), Poll::Ready(Some(Err(_)))));
        drop(stalled);
        // Nothing moves any more: the connection is stalled.
        tokio::time::sleep(Duration::from_millis(250)).await;
        let c = conn.check(timeout);
        assert!(c.stalled && c.expired == 1, "{c:?}");
        assert_eq!(open.load(Ordering::SeqCst), 0);
        drop(moving);
        assert_eq!(conn.live(), 0);
        assert!(!conn.check(timeout).stalled);
    }
}

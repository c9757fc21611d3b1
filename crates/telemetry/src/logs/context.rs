//! The request an event belongs to: the site and the client, printed as
//! `request{site=… client=…}:` in front of everything logged while a
//! request runs, as Apache's error log names the virtual host and the
//! client.
//!
//! Why not a tracing span per request: the fmt layer formats a span's
//! fields when the span is created, whether anything is logged or not;
//! for a redirect that was a fifth of htgate's own work per request
//! (callgrind, hosting mode: 7,100 of 34,000 instructions, the client's
//! `SocketAddr` formatted every time). The context is a pointer kept in a
//! thread-local while the request's future is polled (and while its
//! blocking work runs), read only when an event is written.

use std::cell::RefCell;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// What locates a request in the error log.
#[derive(Debug)]
pub struct RequestContext {
    pub site: Arc<str>,
    pub client: SocketAddr,
}

thread_local! {
    static CURRENT: RefCell<Option<Arc<RequestContext>>> = const { RefCell::new(None) };
}

/// The request being served on this thread, if any.
pub fn current() -> Option<Arc<RequestContext>> {
    CURRENT.with(|c| c.borrow().clone())
}

/// Runs `f` with `ctx` as the current request (blocking work a request
/// hands to another thread).
pub fn scope<R>(ctx: Option<Arc<RequestContext>>, f: impl FnOnce() -> R) -> R {
    let prev = CURRENT.with(|c| c.replace(ctx));
    // Restored even when `f` unwinds (the blocking pool catches panics).
    struct Restore(Option<Arc<RequestContext>>);
    impl Drop for Restore {
        fn drop(&mut self) {
            let prev = self.0.take();
            CURRENT.with(|c| *c.borrow_mut() = prev);
        }
    }
    let _restore = Restore(prev);
    f()
}

pin_project_lite::pin_project! {
    /// A future polled with its request as the current one.
    pub struct InRequest<F> {
        ctx: Arc<RequestContext>,
        #[pin]
        inner: F,
    }
}

impl<F: Future> Future for InRequest<F> {
    type Output = F::Output;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let this = self.project();
        let ctx = Some(this.ctx.clone());
        let inner = this.inner;
        scope(ctx, || inner.poll(cx))
    }
}

/// `fut`, polled with `ctx` as the current request.
pub fn in_request<F: Future>(ctx: Arc<RequestContext>, fut: F) -> InRequest<F> {
    InRequest { ctx, inner: fut }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_sets_and_restores() {
        assert!(current().is_none());
        let ctx = Arc::new(RequestContext {
            site: Arc::from("a"),
            client: SocketAddr::from(([192, 0, 2, 1], 5)),
        });
        let inner = scope(Some(ctx.clone()), || {
            let nested = scope(None, || current().is_none());
            (current().map(|c| c.site.to_string()), nested)
        });
        assert_eq!(inner, (Some("a".to_string()), true));
        assert!(current().is_none());
        let unwound = std::panic::catch_unwind(|| scope(Some(ctx), || panic!("boom")));
        assert!(unwound.is_err());
        assert!(current().is_none(), "restored after a panic");
    }
}

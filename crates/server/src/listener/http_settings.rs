//! The hyper connection builder: HTTP/1 and HTTP/2 settings taken from the
//! [`Limits`].

use crate::limits::{Limits, PARSER_MAX_HEADERS};
use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;

pub(super) fn make_builder(limits: &Limits) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout)
        // The whole head must fit in the read buffer: past it hyper answers
        // 431 itself.  hyper's floor for the buffer is 8 KiB.
        .max_buf_size(limits.max_head_bytes.max(8192))
        // Room for more fields than allowed, so that a few too many get
        // our 431 page rather than hyper's bare one.
        .max_headers(PARSER_MAX_HEADERS.max(limits.max_fields + 1))
        // Without this hyper reads from the socket while the handler runs
        // (to notice an early EOF), which the body read timeout could not
        // tell from waiting for the body; with it a client that shuts down
        // its sending side after the request still gets its answer.
        .half_close(true)
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(limits.h2_max_streams)
        .max_pending_accept_reset_streams(limits.h2_max_pending_resets)
        .max_local_error_reset_streams(limits.h2_max_local_error_resets)
        // hyper's default is 400 KiB per stream: with 100 streams whose
        // windows the client keeps shut, 40 MiB per connection.
        .max_send_buf_size(limits.h2_max_send_buf)
        .max_header_list_size(u32::try_from(limits.max_head_bytes).unwrap_or(u32::MAX));
    builder
}

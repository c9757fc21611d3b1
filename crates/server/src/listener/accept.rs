//! The accept loop of one listener: room under the connection cap first,
//! then `accept`, the per-client cap, and a task per connection.

use super::connection::run_connection;
use super::stops::Stops;
use super::{Listener, Shared};
use crate::refusal::{self, Reason};
use hyper_util::server::graceful::GracefulShutdown;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// Pause after an accept error such as EMFILE before trying again.
const ACCEPT_ERROR_PAUSE: Duration = Duration::from_millis(100);

/// Errors of `accept` that concern one would-be connection only.
fn is_connection_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
    )
}

/// Accepts on one listener forever, spawning a task per connection.
pub(super) async fn accept_loop(
    listener: &Listener,
    shared: &Arc<Shared>,
    graceful: &GracefulShutdown,
    stops: &Stops,
) {
    let fallback_local = listener
        .local_addr()
        .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut at_cap = false;
    loop {
        // Room first, then accept: over the cap, clients wait in the
        // kernel's listen backlog instead of being accepted and dropped.
        if shared.limiter.available() == 0 && !at_cap {
            at_cap = true;
            tracing::warn!(
                listener = %fallback_local,
                cap = shared.limits.max_connections,
                "connection cap reached; not accepting until a connection ends"
            );
        }
        let Some(room) = shared.limiter.room().await else {
            // The semaphore is never closed; if it were, serve nothing.
            return std::future::pending().await;
        };
        if at_cap {
            at_cap = false;
            tracing::info!(listener = %fallback_local, "accepting connections again");
        }
        match listener.tcp.accept().await {
            Ok((stream, remote)) => {
                let Some(permit) = shared.limiter.admit(room, remote.ip()) else {
                    refusal::record(
                        Reason::PerClientConnections,
                        remote.ip(),
                        None,
                        &format!(
                            "connection closed: the client holds its {} connections (on {fallback_local})",
                            shared.limits.max_connections_per_ip
                        ),
                    );
                    drop(stream);
                    continue;
                };
                // The watcher is taken here, before the task runs, so a
                // shutdown that starts during the TLS handshake still
                // waits for (and then gracefully ends) this connection.
                let watcher = graceful.watcher();
                tokio::spawn(run_connection(
                    stream,
                    remote,
                    fallback_local,
                    listener.tls.clone(),
                    listener.alt_svc.clone(),
                    Arc::clone(shared),
                    watcher,
                    stops.clone(),
                    permit,
                ));
            }
            Err(e) if is_connection_error(&e) => {
                tracing::debug!(listener = %fallback_local, error = %e, "accept: connection lost");
            }
            Err(e) => {
                tracing::warn!(listener = %fallback_local, error = %e, "accept failed; retrying");
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
            }
        }
    }
}

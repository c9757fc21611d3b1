//! The end of a handshake, TLS over TCP or QUIC alike: counted by result,
//! a failure logged at debug level, a timeout recorded as a refusal.

use crate::refusal::{self, Reason};
use std::net::SocketAddr;

/// The connection if the handshake (`what`: "TLS", "QUIC") completed in
/// time; otherwise it is counted, logged, and `None`.
pub(crate) fn outcome<T, E: std::fmt::Display>(
    result: Result<Result<T, E>, tokio::time::error::Elapsed>,
    remote: SocketAddr,
    what: &str,
) -> Option<T> {
    match result {
        Ok(Ok(conn)) => {
            htgate_telemetry::metrics::tls_handshake("ok");
            Some(conn)
        }
        Ok(Err(e)) => {
            htgate_telemetry::metrics::tls_handshake("failed");
            tracing::debug!(%remote, error = %e, "{what} handshake failed");
            None
        }
        Err(_) => {
            htgate_telemetry::metrics::tls_handshake("timeout");
            refusal::record(
                Reason::TlsHandshakeTimeout,
                remote.ip(),
                None,
                &format!("{what} handshake not completed in time"),
            );
            None
        }
    }
}

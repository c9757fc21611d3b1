//! The stop signals of graceful shutdown, which every connection watches.

use tokio::sync::watch;

/// The two stop signals of a connection: `drain` (shutdown began: a
/// connection still in its TLS handshake is dropped, since it has no
/// request to finish) and `hard` (the drain is over: everything ends).
#[derive(Clone)]
pub(crate) struct Stops {
    pub(crate) drain: watch::Receiver<bool>,
    pub(crate) hard: watch::Receiver<bool>,
}

/// Waits until the flag is raised (or its sender is gone).
pub(crate) async fn raised(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|stop| *stop).await;
}

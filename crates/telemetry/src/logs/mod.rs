//! Logs: the access log in Apache's Combined Log Format (`clf`, written
//! by the server's `access_log` wrapper); the error
//! log (`error_log`: tracing, to stderr or a file); the thread that writes
//! both without ever making a request wait for a disk (`writer`); SIGUSR1
//! to reopen the files after a rotation.

pub mod clf;
pub mod context;
pub mod error_log;
pub mod refusal;
pub mod writer;

/// Installs the SIGUSR1 handler now (the signal's default action would end
/// the process, so this runs before the sockets open) and reopens every
/// log file at each one.  Must be called inside the tokio runtime.
pub fn reopen_on_sigusr1() -> Option<tokio::task::JoinHandle<()>> {
    use tokio::signal::unix::{signal, SignalKind};
    match signal(SignalKind::user_defined1()) {
        Ok(mut usr1) => Some(tokio::spawn(async move {
            while usr1.recv().await.is_some() {
                writer::reopen();
                tracing::info!(target: "logs", "SIGUSR1: log files reopened");
            }
        })),
        Err(e) => {
            eprintln!("htgate: cannot watch SIGUSR1 (log files will not be reopened): {e}");
            None
        }
    }
}

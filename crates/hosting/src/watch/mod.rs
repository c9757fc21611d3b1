//! The file watcher behind hot reload.
//!
//! Customers save `.htaccess` files (and operators certificates and
//! `htgate.toml`) in every way editors and FTP clients know: in place,
//! through a temp file renamed over, by delete and re-create, into a folder
//! just made. This module turns the raw filesystem events of all of these
//! into a few [`Change`]s the server cares about, debounced, and falls back
//! to periodic [`Change::Rescan`]s where events cannot be trusted (watch
//! limit reached, inotify errors, or filesystems without events such as NFS,
//! where the caller sets `use_events: false`).
//!
//! Layout: `plan` derives what to watch from a [`WatchSpec`]; `backend`
//! owns the inotify instances (via notify); `classify` maps raw events to
//! changes; `batch` debounces; `worker` is the thread tying them together.

mod backend;
mod batch;
mod classify;
mod noise;
mod plan;
mod worker;

#[cfg(test)]
mod tests;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::sync_channel;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use backend::{Backend, Msg};
use plan::Plan;
use worker::{Shared, State};

/// Raw events queued between notify's thread and ours. Past this the
/// events are dropped and a `Rescan` reported instead, so a flood (a
/// customer unpacking a huge archive) costs bounded memory.
const QUEUE_CAPACITY: usize = 16 * 1024;

pub(crate) use htgate_engine::site::Change;

/// What to watch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct WatchSpec {
    /// Site roots: watched recursively; only `.htaccess` files and
    /// directories matter. Symlinks inside are not followed; a symlinked
    /// root is, and re-pointing it is reported as [`Change::Root`].
    pub trees: Vec<PathBuf>,
    /// Single files: htgate.toml, cert/key files. Their parent folder is
    /// watched non-recursively and filtered by name, so replace-by-rename
    /// and delete+create are seen.
    pub files: Vec<PathBuf>,
    /// Folders whose direct contents matter (certificate upload folders): a
    /// change inside gives `File(path of the changed entry)`; editor noise
    /// ([`is_editor_noise`]) is left out.
    pub dirs: Vec<PathBuf>,
    /// Burst window: many events within it after the first → one batch.
    pub debounce: Duration,
    /// Fallback: also emit [`Change::Rescan`] every interval (None: no
    /// polling, unless events are off or broken: then every 2 s).
    pub poll_interval: Option<Duration>,
    /// false = polling only (for the benchmark and for filesystems without
    /// events).
    pub use_events: bool,
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum WatchError {
    #[error("cannot resolve relative watch paths: current directory: {0}")]
    CurrentDir(#[source] std::io::Error),
    #[error("cannot start the watcher thread: {0}")]
    Thread(#[source] std::io::Error),
}

/// A running watcher. Dropping it stops everything: the thread ends and the
/// inotify watches are removed.
pub(crate) struct Watcher {
    shared: Arc<Shared>,
    cwd: PathBuf,
    worker: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for Watcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Watcher")
            .field("cwd", &self.cwd)
            .finish_non_exhaustive()
    }
}

impl Watcher {
    /// Starts watching; `sink` is called from a background thread with each
    /// debounced batch (deduplicated, in first-seen order, never empty).
    /// Watches are in place when this returns. Paths that do not exist yet
    /// are retried every poll interval (2 s by default) and reported when
    /// they appear; a broken or exhausted inotify is not an error here but a
    /// warning and a fall back to polling.
    pub(crate) fn start(
        spec: WatchSpec,
        sink: Box<dyn Fn(Vec<Change>) + Send + 'static>,
    ) -> Result<Watcher, WatchError> {
        let cwd = std::env::current_dir().map_err(WatchError::CurrentDir)?;
        let (tx, rx) = sync_channel(QUEUE_CAPACITY);
        let overflow = Arc::new(AtomicBool::new(false));
        let backend = Backend::new(tx.clone(), Arc::clone(&overflow));
        let mut state = State::new(Plan::new(&spec, &cwd), backend);
        let mut out = Vec::new();
        state.backend.reconcile(&state.plan, &mut out);
        state.push_all(out, Instant::now());
        let shared = Arc::new(Shared {
            state: Mutex::new(state),
            stop: AtomicBool::new(false),
            overflow,
            wake: tx,
        });
        let for_worker = Arc::clone(&shared);
        let worker = std::thread::Builder::new()
            .name("htgate-watch".into())
            .spawn(move || worker::run(for_worker, rx, sink))
            .map_err(WatchError::Thread)?;
        Ok(Watcher {
            shared,
            cwd,
            worker: Some(worker),
        })
    }

    /// Replaces what is watched (config reload): watches for paths only in
    /// the old spec are removed, for paths only in the new one added, the
    /// others stay untouched so none of their events is lost. Relative
    /// paths are resolved against the directory current at `start`.
    pub(crate) fn update(&self, spec: WatchSpec) -> Result<(), WatchError> {
        let plan = Plan::new(&spec, &self.cwd);
        self.shared.state().replan(plan);
        // The polling period may have changed: let the thread re-plan its
        // timers now. A full queue means it is awake anyway.
        let _ = self.shared.wake.try_send(Msg::Wake);
        Ok(())
    }
}

impl Drop for Watcher {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::Release);
        let _ = self.shared.wake.try_send(Msg::Wake);
        if let Some(worker) = self.worker.take() {
            // Dropped from inside the sink: the thread is us and ends by
            // itself when the sink returns.
            if worker.thread().id() != std::thread::current().id() {
                let _ = worker.join();
            }
        }
        // The inotify instances go with the last `Shared`, right here or at
        // the end of the worker thread.
    }
}

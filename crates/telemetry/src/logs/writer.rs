//! The one thread that writes log files.
//!
//! Access-log lines are appended to a staging buffer under a short lock;
//! the writer thread takes everything staged a few milliseconds after the
//! first line arrives ([`GATHER`]), so a busy server pays one wake-up per
//! batch instead of one per request (a wake-up per line cost a third of
//! the throughput on a 2-core machine).  Error-log lines (rare) go through
//! a bounded channel.  Either way a request never waits for a disk: past
//! [`MAX_STAGED_BYTES`] or a full channel a line is dropped and counted
//! (`htgate_log_lines_dropped_total`).  File writes block, so they run on
//! a thread of their own rather than on the async runtime.  The thread is
//! per process, as are the files and the signal that reopens them.
//!
//! Rotation without copytruncate: `mv access.log access.log.1`, then
//! SIGUSR1: [`reopen`] makes the thread close every file and open each
//! path again at its next line, so new lines go to a new file at the old
//! path.  Every line queued after `reopen` returned goes to the new file.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{sync_channel, Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

/// Error-log lines that may wait for the disk; past this they are dropped.
const CHANNEL_LINES: usize = 16_384;

/// Access-log bytes that may wait for the disk (all files together); past
/// this a line is dropped and counted.
pub(crate) const MAX_STAGED_BYTES: usize = 8 * 1024 * 1024;

/// How long the writer thread lets lines gather after the first one of a
/// batch: the bound on how late a line reaches the file.
pub(crate) const GATHER: Duration = Duration::from_millis(5);

/// Access-log lines waiting for the writer thread, by file (keyed by the
/// path's `Arc` address: no hashing of the path per line).
#[derive(Default)]
struct Staged {
    files: HashMap<usize, (Arc<Path>, Vec<u8>)>,
    bytes: usize,
}

static STAGED: OnceLock<std::sync::Mutex<Staged>> = OnceLock::new();

fn staged() -> std::sync::MutexGuard<'static, Staged> {
    // A panic while appending leaves whole lines at worst: keep going.
    STAGED
        .get_or_init(Default::default)
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Takes everything staged so far.
fn take_staged() -> Vec<(Arc<Path>, Vec<u8>)> {
    let mut st = staged();
    st.bytes = 0;
    std::mem::take(&mut st.files).into_values().collect()
}

/// How long the thread sleeps without lines before it looks at the reopen
/// flag: the bound on how late a SIGUSR1 is acted on in a quiet server.
const IDLE_WAKE: Duration = Duration::from_millis(200);

/// At most this many lines are written between two flushes.
const BATCH: usize = 512;

/// A file that cannot be opened or written is reported at most this often.
const REPORT_EVERY: Duration = Duration::from_secs(10);

/// Which log a line belongs to (the dropped-lines counter's label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Access,
    Error,
}

impl Kind {
    pub fn as_str(self) -> &'static str {
        match self {
            Kind::Access => "access",
            Kind::Error => "error",
        }
    }
}

enum Msg {
    Line(Arc<Path>, Vec<u8>, Kind),
    /// Look at the reopen flag now.
    Wake,
    /// Access-log lines were staged: write them after [`GATHER`].
    Gather,
    /// Flush everything, then answer.
    Flush(std::sync::mpsc::Sender<()>),
}

struct Writer {
    tx: SyncSender<Msg>,
    reopen: Arc<AtomicBool>,
}

static WRITER: OnceLock<Writer> = OnceLock::new();

fn writer() -> &'static Writer {
    WRITER.get_or_init(|| {
        let (tx, rx) = sync_channel(CHANNEL_LINES);
        let reopen = Arc::new(AtomicBool::new(false));
        let flag = reopen.clone();
        let spawned = std::thread::Builder::new()
            .name("htgate-logs".into())
            .spawn(move || run(rx, flag));
        if let Err(e) = spawned {
            // The receiver is gone with the closure: every line is then
            // counted as dropped instead of written.
            eprintln!("htgate: cannot start the log writer thread: {e}");
        }
        Writer { tx, reopen }
    })
}

/// Queues one line (with its newline) for `path`; false when it was
/// dropped (no room left, or no writer).
pub fn send(path: &Arc<Path>, line: &[u8], kind: Kind) -> bool {
    if kind == Kind::Access {
        return stage(path, line);
    }
    match writer()
        .tx
        .try_send(Msg::Line(path.clone(), line.to_vec(), kind))
    {
        Ok(()) => true,
        Err(TrySendError::Full(_)) | Err(TrySendError::Disconnected(_)) => {
            crate::metrics::log_line_dropped(kind.as_str());
            false
        }
    }
}

/// Appends an access-log line to the staging buffer; the first line of a
/// batch wakes the writer thread.
fn stage(path: &Arc<Path>, line: &[u8]) -> bool {
    let first = {
        let mut st = staged();
        if st.bytes + line.len() > MAX_STAGED_BYTES {
            drop(st);
            crate::metrics::log_line_dropped(Kind::Access.as_str());
            return false;
        }
        let first = st.files.is_empty();
        st.bytes += line.len();
        let key = Arc::as_ptr(path).cast::<u8>() as usize;
        st.files
            .entry(key)
            .or_insert_with(|| (path.clone(), Vec::with_capacity(64 * 1024)))
            .1
            .extend_from_slice(line);
        first
    };
    if first {
        // Full: the thread is busy and takes the staged lines anyway.
        let _ = writer().tx.try_send(Msg::Gather);
    }
    true
}

/// Closes every log file; each is opened again (created if it was moved
/// away) at its next line.  Called on SIGUSR1.
pub fn reopen() {
    let w = writer();
    w.reopen.store(true, Ordering::SeqCst);
    // A full channel means the thread is busy and sees the flag soon.
    let _ = w.tx.try_send(Msg::Wake);
}

/// Waits (at most `within`) until every line queued so far is written.
pub fn flush(within: Duration) -> bool {
    let deadline = Instant::now() + within;
    let (ack_tx, ack_rx) = std::sync::mpsc::channel();
    let mut msg = Msg::Flush(ack_tx);
    loop {
        match writer().tx.try_send(msg) {
            Ok(()) => break,
            Err(TrySendError::Disconnected(_)) => return false,
            Err(TrySendError::Full(back)) => {
                if Instant::now() >= deadline {
                    return false;
                }
                msg = back;
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }
    ack_rx
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        .is_ok()
}

/// Opens `path` as a log file is opened: append, created `0640`.
pub(crate) fn open_log(path: &Path) -> std::io::Result<File> {
    std::fs::OpenOptions::new()
        .append(true)
        .create(true)
        .mode(0o640)
        .open(path)
}

/// Checks at start and reload that `path` can be written, so that a typo
/// or a permission problem stops the start instead of losing lines.
pub fn check_writable(path: &Path) -> std::io::Result<()> {
    open_log(path).map(drop)
}

struct Files {
    open: HashMap<Arc<Path>, BufWriter<File>>,
    /// Written since the last flush.
    dirty: HashSet<Arc<Path>>,
    /// When a file's last problem was reported.
    reported: HashMap<PathBuf, Instant>,
}

impl Files {
    fn report(&mut self, path: &Path, what: &str, e: &std::io::Error) {
        let now = Instant::now();
        let due = self
            .reported
            .get(path)
            .map_or(true, |t| now.duration_since(*t) >= REPORT_EVERY);
        if due {
            self.reported.insert(path.to_path_buf(), now);
            // Not `tracing`: the error log itself may be one of these files.
            eprintln!(
                "htgate: cannot {what} log file {}: {e} (lines are dropped)",
                path.display()
            );
        }
    }

    fn write(&mut self, path: Arc<Path>, line: &[u8], kind: Kind) {
        if !self.open.contains_key(&path) {
            match open_log(&path) {
                Ok(f) => {
                    self.open
                        .insert(path.clone(), BufWriter::with_capacity(64 * 1024, f));
                }
                Err(e) => {
                    self.report(&path, "open", &e);
                    crate::metrics::log_line_dropped(kind.as_str());
                    return;
                }
            }
        }
        let result = match self.open.get_mut(&path) {
            Some(w) => w.write_all(line),
            None => return,
        };
        match result {
            Ok(()) => {
                self.dirty.insert(path);
            }
            Err(e) => {
                self.report(&path, "write", &e);
                crate::metrics::log_line_dropped(kind.as_str());
                // Opened again at the next line (the disk may have room
                // by then).
                self.open.remove(&path);
                self.dirty.remove(&path);
            }
        }
    }

    fn flush(&mut self) {
        let dirty: Vec<Arc<Path>> = self.dirty.drain().collect();
        for path in dirty {
            let result = self.open.get_mut(&path).map(|w| w.flush());
            if let Some(Err(e)) = result {
                self.report(&path, "write", &e);
                self.open.remove(&path);
            }
        }
    }

    fn close_all(&mut self) {
        self.flush();
        // Dropping the writers closes the files (BufWriter flushes again,
        // which finds nothing to write).
        self.open.clear();
        self.reported.clear();
    }
}

fn run(rx: Receiver<Msg>, reopen: Arc<AtomicBool>) {
    let mut files = Files {
        open: HashMap::new(),
        dirty: HashSet::new(),
        reported: HashMap::new(),
    };
    let mut acks = Vec::new();
    loop {
        let first = match rx.recv_timeout(IDLE_WAKE) {
            Ok(m) => Some(m),
            Err(RecvTimeoutError::Timeout) => None,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let mut next = first;
        let mut n = 0;
        let mut gather = false;
        if next.is_none() && reopen.swap(false, Ordering::SeqCst) {
            files.close_all();
        }
        while let Some(msg) = next {
            // Looked at before every message: a line queued after
            // `reopen` returned always goes to the reopened file.
            if reopen.swap(false, Ordering::SeqCst) {
                files.close_all();
            }
            match msg {
                Msg::Line(path, line, kind) => files.write(path, &line, kind),
                Msg::Wake => {}
                Msg::Gather => gather = true,
                Msg::Flush(ack) => acks.push(ack),
            }
            n += 1;
            next = if n < BATCH { rx.try_recv().ok() } else { None };
        }
        if gather && acks.is_empty() {
            // Let the batch grow: under load one round per GATHER.
            std::thread::sleep(GATHER);
        }
        if reopen.swap(false, Ordering::SeqCst) {
            files.close_all();
        }
        for (path, lines) in take_staged() {
            files.write(path, &lines, Kind::Access);
        }
        files.flush();
        for ack in acks.drain(..) {
            let _ = ack.send(());
        }
    }
    files.close_all();
}

#[cfg(test)]
mod tests {
    use super::*;

    fn wait_for(path: &Path, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let text = std::fs::read_to_string(path).unwrap_or_default();
            if text.contains(needle) || Instant::now() >= deadline {
                return text;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    #[test]
    fn lines_are_written_and_reopen_follows_a_rename() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path: Arc<Path> = Arc::from(dir.path().join("a.log"));
        assert!(send(&path, b"one\n", Kind::Access));
        assert!(flush(Duration::from_secs(5)));
        assert_eq!(wait_for(&path, "one"), "one\n");
        let moved = dir.path().join("a.log.1");
        std::fs::rename(&path, &moved).expect("rename");
        // Still open: the line follows the file to its new name.
        assert!(send(&path, b"two\n", Kind::Access));
        assert!(flush(Duration::from_secs(5)));
        assert_eq!(wait_for(&moved, "two"), "one\ntwo\n");
        reopen();
        assert!(send(&path, b"three\n", Kind::Access));
        assert!(flush(Duration::from_secs(5)));
        assert_eq!(wait_for(&path, "three"), "three\n");
        assert_eq!(std::fs::read_to_string(&moved).expect("read"), "one\ntwo\n");
    }

    /// SECURITY.md's limits table states the staging bound.
    #[test]
    fn security_md_states_the_staging_bound() {
        let security = include_str!("../../../../SECURITY.md");
        assert_eq!(MAX_STAGED_BYTES, 8 * 1024 * 1024);
        assert!(security.contains("| Access-log lines waiting for the disk | 8 MiB"));
        assert!(security.contains("`MAX_STAGED_BYTES`"));
    }

    /// A line that would take the staged bytes past the bound is dropped
    /// (and counted), never queued: the buffer stays bounded.
    #[test]
    fn past_the_bound_a_line_is_dropped() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path: Arc<Path> = Arc::from(dir.path().join("big.log"));
        let huge = vec![b'x'; MAX_STAGED_BYTES + 1];
        assert!(!send(&path, &huge, Kind::Access));
        assert!(send(&path, b"small\n", Kind::Access));
        assert!(flush(Duration::from_secs(5)));
        assert_eq!(std::fs::read_to_string(&path).expect("read"), "small\n");
    }

    #[test]
    fn lines_of_many_files_are_batched_in_order() {
        let dir = tempfile::tempdir().expect("tempdir");
        let a: Arc<Path> = Arc::from(dir.path().join("a.log"));
        let b: Arc<Path> = Arc::from(dir.path().join("b.log"));
        for i in 0..1000 {
            assert!(send(&a, format!("a{i}\n").as_bytes(), Kind::Access));
            assert!(send(&b, format!("b{i}\n").as_bytes(), Kind::Access));
        }
        assert!(flush(Duration::from_secs(5)));
        let want_a: String = (0..1000).map(|i| format!("a{i}\n")).collect();
        let want_b: String = (0..1000).map(|i| format!("b{i}\n")).collect();
        assert_eq!(std::fs::read_to_string(&a).expect("a"), want_a);
        assert_eq!(std::fs::read_to_string(&b).expect("b"), want_b);
    }

    /// README: htgate creates its log files 0640 (no bit beyond it,
    /// whatever the umask), at the start as after a rotation.
    #[test]
    fn log_files_are_created_0640() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("new.log");
        check_writable(&path).expect("created");
        let mode = std::fs::metadata(&path).expect("stat").permissions().mode() & 0o777;
        assert_eq!(mode & !0o640, 0, "{mode:o}");
        assert_eq!(mode & 0o600, 0o600, "{mode:o}");
    }

    #[test]
    fn an_unwritable_path_is_refused_early() {
        let dir = tempfile::tempdir().expect("tempdir");
        assert!(check_writable(&dir.path().join("x.log")).is_ok());
        assert!(check_writable(&dir.path().join("missing/x.log")).is_err());
    }
}

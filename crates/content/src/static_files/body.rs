//! Response bodies over a file's content: frames from memory, or a body
//! that reads the file lazily as it is polled.

use super::source::Identity;
use super::{full_body, Body};
use bytes::Bytes;
use http_body::{Frame, SizeHint};
use http_body_util::BodyExt;
use std::collections::VecDeque;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Bytes read from the file per body chunk, at most.
const CHUNK: usize = 64 * 1024;
/// The first chunk of a streamed body: small, since a client that does not
/// take the response (an HTTP/2 stream whose window stays shut) leaves it
/// buffered; the chunks then double up to [`CHUNK`].
pub(super) const FIRST_CHUNK: usize = 16 * 1024;

/// One piece of a response body: literal bytes or a byte range of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Chunk {
    Bytes(Bytes),
    File { start: u64, len: u64 },
}

/// The body of `chunks` over content in memory.
pub(super) fn memory_body(data: &Bytes, chunks: Vec<Chunk>) -> Body {
    let mut frames: Vec<Bytes> = Vec::with_capacity(chunks.len());
    for c in chunks {
        match c {
            Chunk::Bytes(b) => frames.push(b),
            Chunk::File { start, len } => {
                let start = usize::try_from(start).unwrap_or(usize::MAX).min(data.len());
                let end = start
                    .saturating_add(usize::try_from(len).unwrap_or(usize::MAX))
                    .min(data.len());
                frames.push(data.slice(start..end));
            }
        }
    }
    if frames.len() == 1 {
        if let Some(one) = frames.pop() {
            return full_body(one);
        }
    }
    let left: u64 = frames.iter().map(|b| b.len() as u64).sum();
    MemoryBody {
        frames: frames.into(),
        left,
    }
    .boxed()
}

/// Frames already in memory (multipart byte ranges of a small file).
struct MemoryBody {
    frames: VecDeque<Bytes>,
    left: u64,
}

impl http_body::Body for MemoryBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        match this.frames.pop_front() {
            Some(b) => {
                this.left = this.left.saturating_sub(b.len() as u64);
                Poll::Ready(Some(Ok(Frame::data(b))))
            }
            None => Poll::Ready(None),
        }
    }

    fn is_end_stream(&self) -> bool {
        self.frames.is_empty()
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

// ---------------------------------------------------------------------------
// The streamed body

/// A body that sends literal chunks and file ranges.  The file is opened
/// lazily, when the body is first asked for bytes of it, so a response
/// built but not sending holds no descriptor (the listener asks a body
/// only once its client address has a place for it: `sending.rs`); it is
/// closed as soon as its last byte is read.  Reads
/// go to the blocking pool (`pread`, no seek state), [`FIRST_CHUNK`] bytes
/// first, then doubling up to [`CHUNK`].  A read error, a file that became
/// shorter, or a file replaced since its headers were made (another inode
/// or size: the `Content-Length` and `ETag` came from the earlier stat)
/// ends the body with an error (the connection then drops it).
pub(super) struct FileBody {
    path: std::path::PathBuf,
    id: Identity,
    file: Option<Arc<std::fs::File>>,
    state: FileState,
    chunks: VecDeque<Chunk>,
    /// Offset and bytes left of the current file range.
    pos: u64,
    remaining: u64,
    /// Bytes still to send in total.
    left: u64,
    /// Size of the next read.
    next: usize,
}

enum FileState {
    /// Between reads (the file may or may not be open yet).
    Idle,
    Opening(tokio::task::JoinHandle<std::io::Result<std::fs::File>>),
    Reading(tokio::task::JoinHandle<std::io::Result<Vec<u8>>>),
    Done,
}

/// Opens `path` and checks it is still the file `id` was taken from.
fn open_same(path: &Path, id: &Identity) -> std::io::Result<std::fs::File> {
    let f = std::fs::File::open(path)?;
    let now = Identity::of(&f.metadata()?);
    if (now.dev, now.ino, now.size) != (id.dev, id.ino, id.size) {
        return Err(std::io::Error::other(
            "file replaced since its response headers were made",
        ));
    }
    Ok(f)
}

/// Reads up to `want` bytes at `pos`.
fn read_at(file: &std::fs::File, pos: u64, want: usize) -> std::io::Result<Vec<u8>> {
    use std::os::unix::fs::FileExt;
    let mut buf = vec![0u8; want];
    let n = loop {
        match file.read_at(&mut buf, pos) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            r => break r?,
        }
    };
    buf.truncate(n);
    Ok(buf)
}

impl FileBody {
    pub(super) fn new(path: std::path::PathBuf, id: Identity, chunks: Vec<Chunk>) -> FileBody {
        let left = chunks
            .iter()
            .map(|c| match c {
                Chunk::Bytes(b) => b.len() as u64,
                Chunk::File { len, .. } => *len,
            })
            .sum();
        FileBody {
            path,
            id,
            file: None,
            state: FileState::Idle,
            chunks: chunks.into(),
            pos: 0,
            remaining: 0,
            left,
            next: FIRST_CHUNK,
        }
    }

    fn fail(&mut self, e: std::io::Error) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        self.state = FileState::Done;
        self.file = None;
        self.left = 0;
        Poll::Ready(Some(Err(e)))
    }
}

fn joined_err(e: tokio::task::JoinError) -> std::io::Error {
    std::io::Error::other(e)
}

impl http_body::Body for FileBody {
    type Data = Bytes;
    type Error = std::io::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, std::io::Error>>> {
        let this = self.get_mut();
        loop {
            match &mut this.state {
                FileState::Done => return Poll::Ready(None),
                FileState::Opening(task) => match Pin::new(task).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return this.fail(joined_err(e)),
                    Poll::Ready(Ok(Err(e))) => return this.fail(e),
                    Poll::Ready(Ok(Ok(f))) => {
                        this.file = Some(Arc::new(f));
                        this.state = FileState::Idle;
                    }
                },
                FileState::Reading(task) => match Pin::new(task).poll(cx) {
                    Poll::Pending => return Poll::Pending,
                    Poll::Ready(Err(e)) => return this.fail(joined_err(e)),
                    Poll::Ready(Ok(Err(e))) => return this.fail(e),
                    Poll::Ready(Ok(Ok(data))) => {
                        let n = data.len() as u64;
                        if n == 0 {
                            return this.fail(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "file shrank while being sent",
                            ));
                        }
                        this.pos += n;
                        this.remaining = this.remaining.saturating_sub(n);
                        this.left = this.left.saturating_sub(n);
                        this.next = this.next.saturating_mul(2).min(CHUNK);
                        this.state = FileState::Idle;
                        if this.remaining == 0
                            && !this.chunks.iter().any(|c| matches!(c, Chunk::File { .. }))
                        {
                            // The last byte of the file is read: close it
                            // now rather than when hyper drops the body.
                            this.file = None;
                        }
                        return Poll::Ready(Some(Ok(Frame::data(Bytes::from(data)))));
                    }
                },
                FileState::Idle if this.remaining == 0 => match this.chunks.pop_front() {
                    None => {
                        this.state = FileState::Done;
                        this.file = None;
                        return Poll::Ready(None);
                    }
                    Some(Chunk::Bytes(b)) => {
                        this.left = this.left.saturating_sub(b.len() as u64);
                        return Poll::Ready(Some(Ok(Frame::data(b))));
                    }
                    Some(Chunk::File { start, len }) => {
                        this.pos = start;
                        this.remaining = len;
                    }
                },
                FileState::Idle => match &this.file {
                    None => {
                        let path = this.path.clone();
                        let id = this.id;
                        this.state = FileState::Opening(tokio::task::spawn_blocking(move || {
                            open_same(&path, &id)
                        }));
                    }
                    Some(f) => {
                        let f = Arc::clone(f);
                        let pos = this.pos;
                        let want = usize::try_from(this.remaining)
                            .unwrap_or(usize::MAX)
                            .min(this.next);
                        this.state = FileState::Reading(tokio::task::spawn_blocking(move || {
                            read_at(&f, pos, want)
                        }));
                    }
                },
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        matches!(self.state, FileState::Done)
    }

    fn size_hint(&self) -> SizeHint {
        SizeHint::with_exact(self.left)
    }
}

//! The client against fake FastCGI servers on a Unix socket, written here
//! so that each protocol corner (stale connections, early EOF, overload,
//! keep-alive, bodies) can be produced on demand.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tokio::task::JoinHandle;

use super::record::{self, Record, MAX_CONTENT};
use super::{Error, Limits, Pool, Response, Upstream};

/// One accepted connection, from the server's side.
struct FakeConn {
    stream: UnixStream,
    buf: BytesMut,
}

#[derive(Debug, Default)]
struct FakeRequest {
    keep_conn: bool,
    params: Vec<(String, String)>,
    stdin: Vec<u8>,
}

impl FakeRequest {
    fn param(&self, name: &str) -> Option<&str> {
        self.params
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl FakeConn {
    /// The next record, `None` at EOF.
    async fn record(&mut self) -> Option<Record> {
        loop {
            if let Some(rec) = record::decode(&mut self.buf).expect("client sent a bad record") {
                assert_eq!(rec.request_id, 1, "request id");
                return Some(rec);
            }
            self.buf.reserve(64 * 1024);
            match self.stream.read_buf(&mut self.buf).await {
                Ok(0) | Err(_) => return None,
                Ok(_) => {}
            }
        }
    }

    /// BEGIN_REQUEST and the PARAMS stream.
    async fn head(&mut self) -> Option<FakeRequest> {
        let begin = self.record().await?;
        assert_eq!(begin.kind, record::BEGIN_REQUEST);
        assert_eq!(&begin.content[..2], &[0, 1], "responder role");
        let mut request = FakeRequest {
            keep_conn: begin.content[2] & 1 == 1,
            ..FakeRequest::default()
        };
        loop {
            let rec = self.record().await?;
            assert_eq!(rec.kind, record::PARAMS);
            if rec.content.is_empty() {
                return Some(request);
            }
            for (name, value) in record::parse_params(&rec.content).expect("params") {
                let text = |b: Vec<u8>| String::from_utf8(b).expect("utf-8 param");
                request.params.push((text(name), text(value)));
            }
        }
    }

    /// The STDIN stream up to its empty record.
    async fn stdin(&mut self, request: &mut FakeRequest) -> Option<()> {
        loop {
            let rec = self.record().await?;
            assert_eq!(rec.kind, record::STDIN);
            assert!(rec.content.len() <= MAX_CONTENT);
            if rec.content.is_empty() {
                return Some(());
            }
            request.stdin.extend_from_slice(&rec.content);
        }
    }

    async fn request(&mut self) -> Option<FakeRequest> {
        let mut request = self.head().await?;
        self.stdin(&mut request).await?;
        Some(request)
    }

    async fn send(&mut self, kind: u8, id: u16, content: &[u8]) -> io::Result<()> {
        let mut out = BytesMut::new();
        if content.is_empty() {
            record::put_record(&mut out, kind, id, content);
        } else {
            record::put_stream(&mut out, kind, id, content);
        }
        self.stream.write_all(&out).await
    }

    async fn stdout(&mut self, data: &[u8]) -> io::Result<()> {
        self.send(record::STDOUT, 1, data).await
    }

    async fn end(&mut self, protocol_status: u8) -> io::Result<()> {
        self.send(record::STDOUT, 1, b"").await?;
        self.send(
            record::END_REQUEST,
            1,
            &[0, 0, 0, 0, protocol_status, 0, 0, 0],
        )
        .await
    }

    async fn respond(&mut self, output: &[u8]) -> io::Result<()> {
        self.stdout(output).await?;
        self.end(record::REQUEST_COMPLETE).await
    }

    /// Answer requests on this connection with a summary of each, as long
    /// as the client keeps it.
    async fn echo_all(mut self, conn: usize) {
        while let Some(request) = self.request().await {
            let answer = format!(
                "Content-Type: text/plain\r\n\r\nconn={conn} method={} cl={} stdin={}",
                request.param("REQUEST_METHOD").unwrap_or("-"),
                request.param("CONTENT_LENGTH").unwrap_or("-"),
                request.stdin.len()
            );
            if self.respond(answer.as_bytes()).await.is_err() || !request.keep_conn {
                return;
            }
        }
    }
}

/// A fake server; `handler` gets each connection and its number (0, 1…).
struct Fake {
    _dir: tempfile::TempDir,
    path: PathBuf,
    accepted: Arc<AtomicUsize>,
    task: JoinHandle<()>,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Fake {
    fn pool(&self, limits: Limits) -> Pool {
        Pool::new(Upstream::Unix(self.path.clone()), limits)
    }

    fn accepted(&self) -> usize {
        self.accepted.load(Ordering::SeqCst)
    }
}

fn fake<F, Fut>(handler: F) -> Fake
where
    F: Fn(FakeConn, usize) -> Fut + Send + Sync + 'static,
    Fut: Future<Output = ()> + Send + 'static,
{
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("fcgi.sock");
    let listener = UnixListener::bind(&path).expect("bind");
    let accepted = Arc::new(AtomicUsize::new(0));
    let handler = Arc::new(handler);
    let counter = Arc::clone(&accepted);
    let task = tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            let n = counter.fetch_add(1, Ordering::SeqCst);
            let handler = Arc::clone(&handler);
            tokio::spawn(async move {
                handler(
                    FakeConn {
                        stream,
                        buf: BytesMut::new(),
                    },
                    n,
                )
                .await
            });
        }
    });
    Fake {
        _dir: dir,
        path,
        accepted,
        task,
    }
}

fn limits() -> Limits {
    Limits {
        response_timeout: Duration::from_secs(10),
        ..Limits::default()
    }
}

fn params(method: &str, extra: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut params = vec![
        ("REQUEST_METHOD".to_string(), method.to_string()),
        ("SCRIPT_FILENAME".to_string(), "/srv/index.php".to_string()),
    ];
    params.extend(extra.iter().map(|(n, v)| (n.to_string(), v.to_string())));
    params
}

fn empty() -> Empty<Bytes> {
    Empty::new()
}

type Chunks =
    StreamBody<futures_util::stream::Iter<std::vec::IntoIter<Result<Frame<Bytes>, io::Error>>>>;

/// A body of unknown length (no size hint): what a chunked upload is.
fn chunked(chunks: Vec<Result<Bytes, io::Error>>) -> Chunks {
    let frames: Vec<_> = chunks.into_iter().map(|c| c.map(Frame::data)).collect();
    StreamBody::new(futures_util::stream::iter(frames))
}

/// Long enough for a connection to count as settled for requests that
/// cannot be retried (see `REUSE_SETTLE` in the pool).
async fn settle() {
    tokio::time::sleep(Duration::from_millis(150)).await;
}

async fn text(response: Response) -> Result<String, io::Error> {
    let bytes = response.body.collect().await?.to_bytes();
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

async fn get_text(pool: &Pool) -> String {
    let response = pool
        .send(params("GET", &[]), empty())
        .await
        .expect("response");
    assert_eq!(response.status, 200);
    text(response).await.expect("body")
}

#[tokio::test]
async fn keep_alive_reuses_one_connection() {
    let server = fake(|conn, n| conn.echo_all(n));
    let pool = server.pool(limits());
    assert_eq!(get_text(&pool).await, "conn=0 method=GET cl=- stdin=0");
    assert_eq!(pool.stats().idle, 1);
    assert_eq!(get_text(&pool).await, "conn=0 method=GET cl=- stdin=0");
    let stats = pool.stats();
    assert_eq!((stats.opened, stats.reused, stats.retried), (1, 1, 0));
    assert_eq!(server.accepted(), 1);
    // A request that cannot be sent twice does not take a connection that
    // has just finished (its worker may be about to drop it)...
    let response = pool.send(params("POST", &[]), empty()).await.expect("POST");
    assert_eq!(
        text(response).await.expect("body"),
        "conn=1 method=POST cl=- stdin=0"
    );
    // ...but one idle for a while.
    settle().await;
    let response = pool.send(params("POST", &[]), empty()).await.expect("POST");
    assert!(text(response)
        .await
        .expect("body")
        .starts_with("conn=1 method=POST"));
    assert_eq!(pool.stats().opened, 2);
}

#[tokio::test]
async fn max_idle_zero_asks_the_server_to_close() {
    let server = fake(|mut conn, _| async move {
        while let Some(request) = conn.request().await {
            let answer = format!("\r\nkeep={}", request.keep_conn);
            let _ = conn.respond(answer.as_bytes()).await;
        }
    });
    let pool = server.pool(Limits {
        max_idle: 0,
        ..limits()
    });
    assert_eq!(get_text(&pool).await, "keep=false");
    assert_eq!(get_text(&pool).await, "keep=false");
    assert_eq!((pool.stats().opened, pool.stats().idle), (2, 0));
}

/// Serves one request, then reads the next and hangs up without answering
/// (as a worker at pm.max_requests does); later connections are served.
async fn stale_after_one(mut conn: FakeConn, n: usize) {
    if n == 0 {
        let Some(_) = conn.request().await else {
            return;
        };
        let _ = conn.respond(b"\r\nfirst").await;
        let _ = conn.request().await;
        return;
    }
    conn.echo_all(n).await
}

#[tokio::test]
async fn stale_pooled_connection_is_retried_on_a_fresh_one() {
    let server = fake(stale_after_one);
    let pool = server.pool(limits());
    assert_eq!(get_text(&pool).await, "first");
    assert_eq!(get_text(&pool).await, "conn=1 method=GET cl=- stdin=0");
    let stats = pool.stats();
    assert_eq!((stats.opened, stats.reused, stats.retried), (2, 1, 1));
}

#[tokio::test]
async fn stale_connection_replays_a_spooled_body_for_put() {
    let server = fake(stale_after_one);
    let pool = server.pool(limits());
    assert_eq!(get_text(&pool).await, "first");
    let body = chunked(vec![
        Ok(Bytes::from_static(b"hello ")),
        Ok(Bytes::from_static(b"world")),
    ]);
    let response = pool.send(params("PUT", &[]), body).await.expect("retried");
    assert_eq!(
        text(response).await.expect("body"),
        "conn=1 method=PUT cl=11 stdin=11"
    );
    assert_eq!(pool.stats().retried, 1);
}

#[tokio::test]
async fn stale_connection_is_not_retried_once_the_body_was_streamed() {
    let server = fake(stale_after_one);
    let pool = server.pool(limits());
    assert_eq!(get_text(&pool).await, "first");
    settle().await;
    let body = Full::new(Bytes::from_static(b"hello"));
    let err = pool
        .send(params("POST", &[("CONTENT_LENGTH", "5")]), body)
        .await
        .expect_err("cannot replay a streamed body");
    assert!(matches!(err, Error::Io(..)), "{err:?}");
    assert_eq!(err.status(), 502);
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn non_idempotent_request_is_not_resent_after_sending() {
    let server = fake(stale_after_one);
    let pool = server.pool(limits());
    assert_eq!(get_text(&pool).await, "first");
    settle().await;
    let err = pool
        .send(params("POST", &[]), empty())
        .await
        .expect_err("POST");
    assert_eq!(err.status(), 502);
    assert_eq!(server.accepted(), 1);
}

#[tokio::test]
async fn closed_idle_connection_is_not_used() {
    let server = fake(|mut conn, n| async move {
        if conn.request().await.is_some() {
            let _ = conn.respond(format!("\r\nconn={n}").as_bytes()).await;
        }
        // Hang up right after answering.
    });
    let pool = server.pool(limits());
    assert_eq!(get_text(&pool).await, "conn=0");
    tokio::time::sleep(Duration::from_millis(50)).await;
    // Either the idle check sees the hang-up or the write fails and the
    // request is retried; both end on a new connection.
    assert_eq!(get_text(&pool).await, "conn=1");
    assert_eq!(pool.stats().opened, 2);
}

#[tokio::test]
async fn eof_before_the_head_on_a_fresh_connection_is_a_502() {
    let server = fake(|mut conn, _| async move {
        let _ = conn.request().await;
    });
    let pool = server.pool(limits());
    let err = pool
        .send(params("GET", &[]), empty())
        .await
        .expect_err("eof");
    assert!(matches!(err, Error::Io(..)), "{err:?}");
    assert_eq!(err.status(), 502);
    assert!(err.to_string().contains("fcgi.sock"), "{err}");
    assert_eq!(server.accepted(), 1, "a fresh connection is not retried");
}

#[tokio::test]
async fn premature_eof_in_the_body_is_a_body_error() {
    let server = fake(|mut conn, _| async move {
        let _ = conn.request().await;
        let _ = conn
            .stdout(b"Content-Type: text/plain\r\n\r\npartial")
            .await;
    });
    let pool = server.pool(limits());
    let response = pool.send(params("GET", &[]), empty()).await.expect("head");
    assert_eq!(response.status, 200);
    let mut body = response.body;
    let first = body.frame().await.expect("a frame").expect("data");
    assert_eq!(first.into_data().expect("data"), "partial");
    let err = body.frame().await.expect("a frame").expect_err("aborted");
    assert!(err.to_string().contains("closed"), "{err}");
    assert_eq!(pool.stats().idle, 0);
}

#[tokio::test]
async fn overloaded_is_a_503() {
    let server = fake(|mut conn, _| async move {
        let _ = conn.request().await;
        let _ = conn.end(record::OVERLOADED).await;
    });
    let pool = server.pool(limits());
    let err = pool
        .send(params("GET", &[]), empty())
        .await
        .expect_err("overloaded");
    assert!(matches!(err, Error::Overloaded), "{err:?}");
    assert_eq!(err.status(), 503);
}

#[tokio::test]
async fn protocol_violations_are_502() {
    for case in 0..4u8 {
        let server = fake(move |mut conn, _| async move {
            let _ = conn.request().await;
            let _ = match case {
                0 => conn.send(record::STDOUT, 2, b"\r\nother id").await,
                1 => conn.send(11, 1, &[5, 0, 0, 0, 0, 0, 0, 0]).await,
                2 => conn.respond(b"Content-Type text/plain\r\n\r\n").await,
                _ => conn.end(record::REQUEST_COMPLETE).await,
            };
        });
        let pool = server.pool(limits());
        let err = pool
            .send(params("GET", &[]), empty())
            .await
            .expect_err("violation");
        assert!(matches!(err, Error::Protocol(_)), "case {case}: {err:?}");
        assert_eq!(err.status(), 502);
    }
}

#[tokio::test]
async fn oversized_head_is_refused() {
    let server = fake(|mut conn, _| async move {
        let _ = conn.request().await;
        let _ = conn
            .stdout(format!("X-Big: {}\r\n", "a".repeat(70_000)).as_bytes())
            .await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let pool = server.pool(limits());
    let err = pool
        .send(params("GET", &[]), empty())
        .await
        .expect_err("too large");
    assert!(matches!(err, Error::HeaderTooLarge), "{err:?}");
    assert_eq!(err.status(), 502);
}

#[tokio::test]
async fn silence_is_a_504() {
    let server = fake(|mut conn, _| async move {
        let _ = conn.request().await;
        tokio::time::sleep(Duration::from_secs(5)).await;
    });
    let pool = server.pool(Limits {
        response_timeout: Duration::from_millis(200),
        ..limits()
    });
    let err = pool
        .send(params("GET", &[]), empty())
        .await
        .expect_err("timeout");
    assert!(matches!(err, Error::Timeout(..)), "{err:?}");
    assert_eq!(err.status(), 504);
}

#[tokio::test]
async fn missing_socket_is_a_503() {
    let dir = tempfile::tempdir().expect("temp dir");
    let pool = Pool::new(Upstream::Unix(dir.path().join("none.sock")), limits());
    let err = pool
        .send(params("GET", &[]), empty())
        .await
        .expect_err("connect");
    assert!(matches!(err, Error::Connect(..)), "{err:?}");
    assert_eq!(err.status(), 503);
    assert!(err.to_string().contains("none.sock"), "{err}");
}

#[tokio::test]
async fn stderr_is_logged_not_sent() {
    let server = fake(|mut conn, _| async move {
        let _ = conn.request().await;
        let _ = conn.send(record::STDERR, 1, b"PHP Warning: before\n").await;
        let _ = conn
            .stdout(b"Status: 404 Not Found\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\nbo")
            .await;
        let _ = conn.send(record::STDERR, 1, b"PHP Notice: during\n").await;
        let _ = conn.respond(b"dy").await;
        // Keep the connection, as a keep-alive server does.
        let _ = conn.record().await;
    });
    let pool = server.pool(limits());
    let response = pool
        .send(params("GET", &[]), empty())
        .await
        .expect("response");
    assert_eq!(
        (response.status, response.reason.as_deref()),
        (404, Some("Not Found"))
    );
    assert_eq!(
        response.headers,
        vec![
            ("Set-Cookie".to_string(), "a=1".to_string()),
            ("Set-Cookie".to_string(), "b=2".to_string())
        ]
    );
    assert_eq!(text(response).await.expect("body"), "body");
    assert_eq!(pool.stats().idle, 1);
}

#[tokio::test]
async fn bodies_of_unknown_length_are_spooled_with_content_length_added() {
    let server = fake(|conn, n| conn.echo_all(n));
    let pool = server.pool(limits());
    // Small: kept in memory.
    let body = chunked(vec![Ok(Bytes::from_static(b"0123456789"))]);
    let response = pool.send(params("POST", &[]), body).await.expect("small");
    assert_eq!(
        text(response).await.expect("body"),
        "conn=0 method=POST cl=10 stdin=10"
    );
    settle().await;
    // Over 1 MiB: spooled to a temp file.
    let chunk = Bytes::from(vec![b'z'; 100_000]);
    let body = chunked((0..15).map(|_| Ok(chunk.clone())).collect());
    let response = pool.send(params("POST", &[]), body).await.expect("large");
    assert_eq!(
        text(response).await.expect("body"),
        "conn=0 method=POST cl=1500000 stdin=1500000"
    );
    settle().await;
    // An exact size hint is trusted: no spooling needed.
    let body = Full::new(Bytes::from_static(b"abc"));
    let response = pool.send(params("POST", &[]), body).await.expect("sized");
    assert_eq!(
        text(response).await.expect("body"),
        "conn=0 method=POST cl=3 stdin=3"
    );
    settle().await;
    // An empty body of unknown length says CONTENT_LENGTH 0.
    let response = pool
        .send(params("POST", &[]), chunked(vec![]))
        .await
        .expect("empty");
    assert_eq!(
        text(response).await.expect("body"),
        "conn=0 method=POST cl=0 stdin=0"
    );
}

#[tokio::test]
async fn spooled_body_arrives_intact() {
    let server = fake(|mut conn, _| async move {
        let Some(request) = conn.request().await else {
            return;
        };
        assert_eq!(
            request.params.last().map(|(n, _)| n.as_str()),
            Some("CONTENT_LENGTH")
        );
        let mut answer = b"\r\n".to_vec();
        answer.extend_from_slice(&request.stdin);
        let _ = conn.respond(&answer).await;
    });
    let pool = server.pool(limits());
    let data: Vec<u8> = (0..3_000_000u32).map(|i| (i * 7 % 251) as u8).collect();
    let chunks = data
        .chunks(70_001)
        .map(|c| Ok(Bytes::copy_from_slice(c)))
        .collect();
    let response = pool
        .send(params("POST", &[]), chunked(chunks))
        .await
        .expect("ok");
    let got = response.body.collect().await.expect("body").to_bytes();
    assert!(got[..] == data[..], "body differs");
}

#[tokio::test]
async fn body_limits_are_enforced_both_ways() {
    let server = fake(|conn, n| conn.echo_all(n));
    let pool = server.pool(Limits {
        max_body_bytes: 100,
        ..limits()
    });
    let err = pool
        .send(params("POST", &[("CONTENT_LENGTH", "1000")]), empty())
        .await
        .expect_err("declared");
    assert!(matches!(err, Error::BodyTooLarge), "{err:?}");
    assert_eq!(err.status(), 413);
    let body = chunked(vec![
        Ok(Bytes::from(vec![1u8; 60])),
        Ok(Bytes::from(vec![1u8; 60])),
    ]);
    let err = pool
        .send(params("POST", &[]), body)
        .await
        .expect_err("spooled");
    assert!(matches!(err, Error::BodyTooLarge), "{err:?}");
    let body = Full::new(Bytes::from(vec![1u8; 101]));
    let err = pool
        .send(params("POST", &[]), body)
        .await
        .expect_err("sized");
    assert!(matches!(err, Error::BodyTooLarge), "{err:?}");
    assert_eq!(server.accepted(), 0, "refused before connecting");
    let body = Full::new(Bytes::from(vec![1u8; 100]));
    let response = pool
        .send(params("POST", &[]), body)
        .await
        .expect("at the limit");
    assert_eq!(
        text(response).await.expect("body"),
        "conn=0 method=POST cl=100 stdin=100"
    );
}

#[tokio::test]
async fn client_body_failures_are_400() {
    let server = fake(|mut conn, _| async move {
        // Read what comes; the client gives up on its own.
        let _ = conn.request().await;
    });
    let pool = server.pool(limits());
    let cases: Vec<(&str, Chunks)> = vec![
        (
            "20",
            chunked(vec![
                Ok(Bytes::from_static(b"0123456789")),
                Err(io::Error::new(
                    io::ErrorKind::ConnectionReset,
                    "client reset",
                )),
            ]),
        ),
        ("20", chunked(vec![Ok(Bytes::from_static(b"0123456789"))])),
        ("5", chunked(vec![Ok(Bytes::from_static(b"0123456789"))])),
        ("x", chunked(vec![])),
    ];
    for (length, body) in cases {
        let err = pool
            .send(params("POST", &[("CONTENT_LENGTH", length)]), body)
            .await
            .expect_err("bad body");
        assert!(matches!(err, Error::ClientBody(_)), "{length}: {err:?}");
        assert_eq!(err.status(), 400);
    }
    assert_eq!(pool.stats().idle, 0);
}

#[tokio::test]
async fn answer_before_reading_the_body_does_not_deadlock() {
    const OUT: usize = 4 << 20;
    const IN: usize = 2 << 20;
    let server = fake(|mut conn, _| async move {
        let Some(mut request) = conn.head().await else {
            return;
        };
        // Far more than the socket buffers, before reading any STDIN.
        let _ = conn
            .stdout(b"Content-Type: application/octet-stream\r\n\r\n")
            .await;
        let _ = conn.stdout(&vec![b'o'; OUT]).await;
        conn.stdin(&mut request).await;
        assert_eq!(request.stdin.len(), IN);
        let _ = conn.end(record::REQUEST_COMPLETE).await;
        let _ = conn.record().await;
    });
    let pool = server.pool(limits());
    let chunk = Bytes::from(vec![b'i'; 64 * 1024]);
    let body = chunked((0..IN / chunk.len()).map(|_| Ok(chunk.clone())).collect());
    let length = IN.to_string();
    let run = async {
        let response = pool
            .send(params("POST", &[("CONTENT_LENGTH", &length)]), body)
            .await
            .expect("response");
        response
            .body
            .collect()
            .await
            .expect("body")
            .to_bytes()
            .len()
    };
    let got = tokio::time::timeout(Duration::from_secs(30), run)
        .await
        .expect("no deadlock");
    assert_eq!(got, OUT);
    assert_eq!(pool.stats().idle, 1, "clean end: connection kept");
}

#[tokio::test]
async fn dropping_the_body_closes_the_connection() {
    let write_failed = Arc::new(AtomicBool::new(false));
    let flag = Arc::clone(&write_failed);
    let server = fake(move |mut conn, _| {
        let flag = Arc::clone(&flag);
        async move {
            let _ = conn.request().await;
            let _ = conn.stdout(b"\r\n").await;
            for _ in 0..256 {
                if conn.stdout(&[b'x'; 64 * 1024]).await.is_err() {
                    flag.store(true, Ordering::SeqCst);
                    return;
                }
            }
            let _ = conn.end(record::REQUEST_COMPLETE).await;
        }
    });
    let pool = server.pool(limits());
    let response = pool
        .send(params("GET", &[]), empty())
        .await
        .expect("response");
    let mut body = response.body;
    let _ = body.frame().await;
    drop(body);
    for _ in 0..200 {
        if write_failed.load(Ordering::SeqCst) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(
        write_failed.load(Ordering::SeqCst),
        "server saw the connection close"
    );
    assert_eq!(pool.stats().idle, 0);
}

#[tokio::test]
async fn oversized_params_are_skipped_not_fatal() {
    let server = fake(|mut conn, _| async move {
        let Some(request) = conn.request().await else {
            return;
        };
        let names: Vec<_> = request.params.iter().map(|(n, _)| n.clone()).collect();
        let _ = conn
            .respond(format!("\r\n{}", names.join(",")).as_bytes())
            .await;
    });
    let pool = server.pool(limits());
    let huge = "c".repeat(70_000);
    let response = pool
        .send(
            params("GET", &[("HTTP_COOKIE", &huge), ("HTTP_HOST", "x")]),
            empty(),
        )
        .await
        .expect("response");
    assert_eq!(
        text(response).await.expect("body"),
        "REQUEST_METHOD,SCRIPT_FILENAME,HTTP_HOST"
    );
}

/// `send` must be usable from a hyper service (a `Send` future), with
/// hyper's own body type too. Compiled, never run.
#[allow(dead_code)]
fn send_futures_are_send(pool: &Pool, incoming: hyper::body::Incoming) {
    fn is_send<T: Send>(_: T) {}
    is_send(pool.send(Vec::new(), incoming));
    is_send(pool.send(Vec::new(), htgate_content::empty_body()));
    is_send(pool.send(Vec::new(), chunked(Vec::new())));
}

#[tokio::test]
async fn tcp_upstreams_work_and_refusal_is_a_503() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let address = listener.local_addr().expect("address");
    tokio::spawn(async move {
        let Ok((stream, _)) = listener.accept().await else {
            return;
        };
        // Same protocol, TCP transport: read up to the empty STDIN.
        let (mut read, mut write) = stream.into_split();
        let mut buf = BytesMut::new();
        loop {
            match record::decode(&mut buf) {
                Ok(Some(rec)) if rec.kind == record::STDIN && rec.content.is_empty() => break,
                Ok(Some(_)) => continue,
                Ok(None) => {}
                Err(_) => return,
            }
            buf.reserve(4096);
            if !matches!(read.read_buf(&mut buf).await, Ok(n) if n > 0) {
                return;
            }
        }
        let mut out = BytesMut::new();
        record::put_stream(&mut out, record::STDOUT, 1, b"\r\nover tcp");
        record::put_record(&mut out, record::END_REQUEST, 1, &[0; 8]);
        let _ = write.write_all(&out).await;
        let _ = read.read_u8().await;
    });
    let upstream = Upstream::parse(&format!("tcp://{address}")).expect("address");
    let pool = Pool::new(upstream, limits());
    assert_eq!(get_text(&pool).await, "over tcp");

    let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = closed.local_addr().expect("address").port();
    drop(closed);
    let pool = Pool::new(Upstream::Tcp(format!("127.0.0.1:{port}")), limits());
    let err = pool
        .send(params("GET", &[]), empty())
        .await
        .expect_err("refused");
    assert!(matches!(err, Error::Connect(..)), "{err:?}");
    assert_eq!(err.status(), 503);
}

//! The client against a real PHP-FPM (skipped, or failing under CI, when
//! php-fpm is not installed).

use std::path::Path;

use bytes::Bytes;
use http_body::Frame;
use http_body_util::{BodyExt, Empty, Full, StreamBody};
use md5::{Digest, Md5};

use super::harness::PhpFpm;
use super::{Error, Limits, Pool, Response};

const SCRIPT: &str = r#"<?php
switch ($_GET['mode'] ?? 'info') {
case 'info':
    header('Content-Type: text/plain');
    foreach (['SCRIPT_FILENAME', 'SCRIPT_NAME', 'REQUEST_METHOD', 'QUERY_STRING',
              'HTTP_HOST', 'DOCUMENT_ROOT'] as $k) {
        echo $k, '=', $_SERVER[$k] ?? '', "\n";
    }
    break;
case 'post':
    $in = file_get_contents('php://input');
    echo $_SERVER['CONTENT_LENGTH'], ' ', strlen($in), ' ', md5($in);
    break;
case 'stream':
    header('Content-Type: application/octet-stream');
    for ($i = 0; $i < 160; $i++) {
        echo str_repeat(chr(65 + $i % 26), 65536);
        flush();
    }
    break;
case 'status':
    header('Status: 404 Not Found');
    echo 'not here';
    break;
case 'code':
    http_response_code(404);
    echo 'not here';
    break;
case 'redirect':
    header('Location: /x');
    break;
case 'cookies':
    setcookie('a', '1');
    setcookie('b', '2');
    echo 'ok';
    break;
case 'warn':
    error_log('logged by the script');
    echo 'warned';
    break;
case 'pid':
    echo getmypid();
    break;
}
"#;

/// A PHP-FPM with `index.php` in its directory (the document root).
fn start() -> PhpFpm {
    start_with("")
}

fn start_with(pool_settings: &str) -> PhpFpm {
    let fpm =
        PhpFpm::start_with(pool_settings).unwrap_or_else(|e| panic!("php-fpm did not start: {e}"));
    std::fs::write(fpm.dir().join("index.php"), SCRIPT).expect("write the script");
    fpm
}

/// The CGI variables a web server sends for `script` in `root`.
fn cgi(root: &Path, script: &str, method: &str, query: &str) -> Vec<(String, String)> {
    let root_text = root.display().to_string();
    let mut params: Vec<(String, String)> = [
        ("GATEWAY_INTERFACE", "CGI/1.1"),
        ("SERVER_SOFTWARE", "htgate"),
        ("SERVER_PROTOCOL", "HTTP/1.1"),
        ("SERVER_NAME", "example.test"),
        ("SERVER_PORT", "80"),
        ("REMOTE_ADDR", "127.0.0.1"),
        ("HTTP_HOST", "example.test"),
        ("REQUEST_METHOD", method),
        ("QUERY_STRING", query),
        ("DOCUMENT_ROOT", &root_text),
    ]
    .iter()
    .map(|(n, v)| (n.to_string(), v.to_string()))
    .collect();
    params.push(("SCRIPT_NAME".into(), format!("/{script}")));
    params.push((
        "SCRIPT_FILENAME".into(),
        root.join(script).display().to_string(),
    ));
    params.push(("REQUEST_URI".into(), format!("/{script}?{query}")));
    if method == "POST" {
        params.push(("CONTENT_TYPE".into(), "application/octet-stream".into()));
    }
    params
}

async fn get(pool: &Pool, root: &Path, query: &str) -> Response {
    pool.send(cgi(root, "index.php", "GET", query), Empty::<Bytes>::new())
        .await
        .unwrap_or_else(|e| panic!("GET ?{query}: {e}"))
}

async fn body(response: Response) -> Vec<u8> {
    response
        .body
        .collect()
        .await
        .expect("whole body")
        .to_bytes()
        .to_vec()
}

fn header<'a>(response: &'a Response, name: &str) -> Vec<&'a str> {
    response
        .headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
        .collect()
}

fn md5_hex(data: &[u8]) -> String {
    format!("{:x}", Md5::digest(data))
}

#[tokio::test]
async fn php_fpm_runs_scripts() {
    if !PhpFpm::available_or_skip("php_fpm_runs_scripts") {
        return;
    }
    let fpm = start();
    let root = fpm.dir().to_path_buf();
    let pool = Pool::new(fpm.upstream(), Limits::default());

    // SCRIPT_FILENAME routing and $_SERVER.
    let response = get(&pool, &root, "mode=info").await;
    assert_eq!(response.status, 200, "{}", fpm.logs());
    let text = String::from_utf8(body(response).await).expect("utf-8");
    let script = root.join("index.php");
    assert!(
        text.contains(&format!("SCRIPT_FILENAME={}\n", script.display())),
        "{text}"
    );
    assert!(
        text.contains("REQUEST_METHOD=GET\n") && text.contains("QUERY_STRING=mode=info\n"),
        "{text}"
    );
    assert!(text.contains("HTTP_HOST=example.test\n"), "{text}");

    // A 3 MiB POST, streamed with its length, then spooled without.
    let data: Vec<u8> = (0..3u32 << 20)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let expected = format!("{} {} {}", data.len(), data.len(), md5_hex(&data));
    let mut params = cgi(&root, "index.php", "POST", "mode=post");
    params.push(("CONTENT_LENGTH".into(), data.len().to_string()));
    let response = pool
        .send(params, Full::new(Bytes::from(data.clone())))
        .await
        .expect("streamed POST");
    assert_eq!(String::from_utf8_lossy(&body(response).await), expected);
    let chunks: Vec<Result<Frame<Bytes>, std::io::Error>> = data
        .chunks(100_000)
        .map(|c| Ok(Frame::data(Bytes::copy_from_slice(c))))
        .collect();
    let chunked = StreamBody::new(futures_util::stream::iter(chunks));
    let response = pool
        .send(cgi(&root, "index.php", "POST", "mode=post"), chunked)
        .await
        .expect("spooled POST");
    assert_eq!(String::from_utf8_lossy(&body(response).await), expected);

    // A 10 MiB response streamed with flush().
    let response = get(&pool, &root, "mode=stream").await;
    assert_eq!(
        header(&response, "content-type"),
        vec!["application/octet-stream"]
    );
    let got = body(response).await;
    let want: Vec<u8> = (0..160u8)
        .flat_map(|i| std::iter::repeat(b'A' + i % 26).take(65536))
        .collect();
    assert_eq!(got.len(), 10 << 20);
    assert_eq!(md5_hex(&got), md5_hex(&want));

    // Statuses, redirects, repeated headers.
    for mode in ["status", "code"] {
        let response = get(&pool, &root, &format!("mode={mode}")).await;
        assert_eq!(response.status, 404, "{mode}");
        assert_eq!(body(response).await, b"not here");
    }
    let response = get(&pool, &root, "mode=redirect").await;
    assert_eq!(response.status, 302);
    assert_eq!(header(&response, "location"), vec!["/x"]);
    let response = get(&pool, &root, "mode=cookies").await;
    assert_eq!(header(&response, "set-cookie"), vec!["a=1", "b=2"]);
    assert_eq!(body(response).await, b"ok");

    // PHP's error log goes where the pool says, not to the client.
    let response = get(&pool, &root, "mode=warn").await;
    assert_eq!(body(response).await, b"warned");
    assert!(
        fpm.logs().contains("logged by the script"),
        "{}",
        fpm.logs()
    );

    // A script that does not exist: PHP-FPM's own 404.
    let response = pool
        .send(cgi(&root, "missing.php", "GET", ""), Empty::<Bytes>::new())
        .await
        .expect("missing script");
    assert_eq!(response.status, 404);
    assert_eq!(
        String::from_utf8_lossy(&body(response).await).trim(),
        "File not found."
    );
}

#[tokio::test]
async fn php_fpm_keep_alive_reuses_the_connection() {
    if !PhpFpm::available_or_skip("php_fpm_keep_alive_reuses_the_connection") {
        return;
    }
    let fpm = start();
    let root = fpm.dir().to_path_buf();
    let pool = Pool::new(fpm.upstream(), Limits::default());
    let first = body(get(&pool, &root, "mode=pid").await).await;
    let second = body(get(&pool, &root, "mode=pid").await).await;
    // One worker serves a kept connection, so the pid is the same.
    assert_eq!(first, second);
    let stats = pool.stats();
    assert_eq!((stats.opened, stats.reused), (1, 1), "{stats:?}");
}

#[tokio::test]
async fn stopped_php_fpm_is_a_503() {
    if !PhpFpm::available_or_skip("stopped_php_fpm_is_a_503") {
        return;
    }
    let mut fpm = start();
    let root = fpm.dir().to_path_buf();
    let pool = Pool::new(fpm.upstream(), Limits::default());
    assert!(!body(get(&pool, &root, "mode=pid").await).await.is_empty());
    assert_eq!(pool.stats().idle, 1);
    fpm.stop();
    let err = pool
        .send(
            cgi(&root, "index.php", "GET", "mode=pid"),
            Empty::<Bytes>::new(),
        )
        .await
        .expect_err("FPM is gone");
    assert!(matches!(err, Error::Connect(..)), "{err:?}");
    assert_eq!(err.status(), 503);
}

#[tokio::test]
async fn php_fpm_workers_recycled_by_max_requests_are_survived() {
    if !PhpFpm::available_or_skip("php_fpm_workers_recycled_by_max_requests_are_survived") {
        return;
    }
    // Each worker ends its kept connection after one request: what a
    // shared host's pm.max_requests does, here every time.
    let fpm = start_with("pm.max_requests = 1");
    let root = fpm.dir().to_path_buf();
    let pool = Pool::new(fpm.upstream(), Limits::default());
    let mut pids = Vec::new();
    for round in 0..6 {
        // A GET right after a request: it may land on the connection the
        // worker is about to drop, and is then retried.
        let response = get(&pool, &root, "mode=pid").await;
        assert_eq!(response.status, 200);
        pids.push(body(response).await);
        // A POST (never sent twice) right after: it must not take that
        // connection at all. Streamed on odd rounds, spooled on even.
        let mut params = cgi(&root, "index.php", "POST", "mode=post");
        let data = Bytes::from(vec![b'p'; 1000]);
        let response = if round % 2 == 1 {
            params.push(("CONTENT_LENGTH".into(), "1000".into()));
            pool.send(params, Full::new(data)).await
        } else {
            let frames = vec![Ok::<_, std::io::Error>(Frame::data(data))];
            pool.send(params, StreamBody::new(futures_util::stream::iter(frames)))
                .await
        };
        let response = response.unwrap_or_else(|e| panic!("POST {round}: {e}\n{}", fpm.logs()));
        let text = String::from_utf8_lossy(&body(response).await).into_owned();
        assert!(text.starts_with("1000 1000 "), "{text}");
    }
    pids.dedup();
    assert_eq!(pids.len(), 6, "a new worker each time: {pids:?}");
    let stats = pool.stats();
    assert_eq!(stats.opened, 12, "{stats:?}");
}

//! Tests of the static file responses: the validator, precondition
//! and range decisions, then [`serve_file`] end to end (bodies, the
//! small-file cache, when files are opened).

use super::body::FIRST_CHUNK;
use super::source::Identity;
use super::*;
use bytes::Bytes;
use htgate_util::date::http_date;

const NOW: i64 = 1_700_000_000;

fn v(etag: &str) -> Validators<'_> {
    Validators {
        etag,
        mtime: NOW - 3600,
        now: NOW,
    }
}

fn get() -> Conditions<'static> {
    Conditions {
        get_or_head: true,
        ..Conditions::default()
    }
}

#[test]
fn etag_format() {
    let mtime = 1_700_000_000_123_456i64;
    assert_eq!(
        make_etag(0x2aa6, mtime, mtime + 5 * USEC),
        format!("\"2aa6-{:x}\"", mtime)
    );
    assert_eq!(make_etag(10, 0x10, 0x10 + 10 * USEC), "\"a-10\"");
    // Modified within the last second (or in the future): weak.
    assert_eq!(make_etag(10, 0x10, 0x10 + USEC), "W/\"a-10\"");
    assert_eq!(make_etag(0, 100, 50), "W/\"0-64\"");
}

#[test]
fn etag_lists() {
    assert!(etag_in_list("\"a\"", "\"a\"", true));
    assert!(etag_in_list("\"x\", \"a\"", "\"a\"", true));
    assert!(!etag_in_list("W/\"a\"", "\"a\"", true));
    assert!(!etag_in_list("\"a\"", "W/\"a\"", true));
    assert!(etag_in_list("W/\"a\"", "\"a\"", false));
    assert!(etag_in_list("\"a\"", "W/\"a\"", false));
    assert!(etag_in_list(" ,\"b\" ,  W/\"a\" ", "\"a\"", false));
    // Apache stops at the first item of the wrong kind.
    assert!(!etag_in_list("W/\"x\", \"a\"", "\"a\"", true));
    assert!(!etag_in_list("\"a,b\"", "\"a\"", true));
    assert!(etag_in_list("\"a,b\"", "\"a,b\"", true));
    assert!(!etag_in_list("\"ab\"", "\"a\"", true));
    assert!(!etag_in_list("", "\"a\"", false));
    assert!(!etag_in_list("\"", "\"a\"", false));
}

#[test]
fn preconditions_follow_apache() {
    let e = "\"a-b\"";
    let lm = http_date(NOW - 3600);
    let older = http_date(NOW - 7200);
    let future = http_date(NOW + 7200);
    let ev = |c: Conditions<'_>| evaluate_preconditions(&c, &v(e));
    use Precondition::*;

    assert_eq!(ev(get()), Proceed);
    // If-Match
    assert_eq!(
        ev(Conditions {
            if_match: Some("\"zz\""),
            ..get()
        }),
        Failed
    );
    assert_eq!(
        ev(Conditions {
            if_match: Some("*"),
            ..get()
        }),
        Proceed
    );
    assert_eq!(
        ev(Conditions {
            if_match: Some("\"a-b\""),
            ..get()
        }),
        Proceed
    );
    // If-Unmodified-Since
    assert_eq!(
        ev(Conditions {
            if_unmodified_since: Some(&older),
            ..get()
        }),
        Failed
    );
    assert_eq!(
        ev(Conditions {
            if_unmodified_since: Some(&lm),
            ..get()
        }),
        Proceed
    );
    assert_eq!(
        ev(Conditions {
            if_unmodified_since: Some("junk"),
            ..get()
        }),
        Proceed
    );
    // If-None-Match
    assert_eq!(
        ev(Conditions {
            if_none_match: Some("\"a-b\""),
            ..get()
        }),
        NotModified
    );
    assert_eq!(
        ev(Conditions {
            if_none_match: Some("W/\"a-b\""),
            ..get()
        }),
        NotModified
    );
    assert_eq!(
        ev(Conditions {
            if_none_match: Some("*"),
            ..get()
        }),
        NotModified
    );
    assert_eq!(
        ev(Conditions {
            if_none_match: Some("\"x\""),
            ..get()
        }),
        Proceed
    );
    let post = Conditions {
        get_or_head: false,
        ..Conditions::default()
    };
    assert_eq!(
        ev(Conditions {
            if_none_match: Some("\"a-b\""),
            ..post
        }),
        Failed
    );
    assert_eq!(
        ev(Conditions {
            if_none_match: Some("W/\"a-b\""),
            ..post
        }),
        Proceed
    );
    // If-Modified-Since
    assert_eq!(
        ev(Conditions {
            if_modified_since: Some(&lm),
            ..get()
        }),
        NotModified
    );
    assert_eq!(
        ev(Conditions {
            if_modified_since: Some(&older),
            ..get()
        }),
        Proceed
    );
    assert_eq!(
        ev(Conditions {
            if_modified_since: Some(&future),
            ..get()
        }),
        Proceed
    );
    assert_eq!(
        ev(Conditions {
            if_modified_since: Some("junk"),
            ..get()
        }),
        Proceed
    );
    assert_eq!(
        ev(Conditions {
            if_modified_since: Some(&lm),
            ..post
        }),
        Proceed
    );
    // Both 304 conditions must agree (Apache, unlike RFC 9110).
    assert_eq!(
        ev(Conditions {
            if_none_match: Some("\"a-b\""),
            if_modified_since: Some(&lm),
            ..get()
        }),
        NotModified
    );
    assert_eq!(
        ev(Conditions {
            if_none_match: Some("\"a-b\""),
            if_modified_since: Some(&older),
            ..get()
        }),
        Proceed
    );
    // If-Match failing wins over everything.
    assert_eq!(
        ev(Conditions {
            if_match: Some("\"q\""),
            if_none_match: Some("\"a-b\""),
            ..get()
        }),
        Failed
    );
    // A weak ETag never matches strongly.
    let weak = Validators {
        etag: "W/\"a-b\"",
        ..v(e)
    };
    let c = Conditions {
        if_match: Some("W/\"a-b\""),
        ..get()
    };
    assert_eq!(evaluate_preconditions(&c, &weak), Failed);
    // If-None-Match with Range compares strongly.
    let c = Conditions {
        if_none_match: Some("W/\"a-b\""),
        has_range: true,
        ..get()
    };
    assert_eq!(evaluate_preconditions(&c, &v(e)), Proceed);
    // If-Range with Range: always proceed (ranges or full body).
    let c = Conditions {
        if_none_match: Some("\"a-b\""),
        if_range: Some("\"a-b\""),
        has_range: true,
        ..get()
    };
    assert_eq!(evaluate_preconditions(&c, &v(e)), Proceed);
    // Dates within 60 s of the modification are weak: no 304 with Range.
    let fresh = Validators {
        etag: e,
        mtime: NOW - 10,
        now: NOW,
    };
    let c = Conditions {
        if_modified_since: Some(&http_date(NOW - 10)),
        has_range: true,
        ..get()
    };
    assert_eq!(evaluate_preconditions(&c, &fresh), Proceed);
    let c = Conditions {
        has_range: false,
        ..c
    };
    assert_eq!(evaluate_preconditions(&c, &fresh), NotModified);
}

#[test]
fn if_range_rules() {
    let val = v("\"a-b\"");
    assert!(if_range_matches("\"a-b\"", &val));
    assert!(!if_range_matches("\"a-c\"", &val));
    assert!(!if_range_matches("W/\"a-b\"", &val));
    assert!(if_range_matches(&http_date(NOW - 3600), &val));
    assert!(!if_range_matches(&http_date(NOW - 3601), &val));
    assert!(!if_range_matches("junk", &val));
    let fresh = Validators {
        etag: "\"x\"",
        mtime: NOW - 5,
        now: NOW,
    };
    assert!(!if_range_matches(&http_date(NOW - 5), &fresh));
    let weak = Validators {
        etag: "W/\"x\"",
        mtime: NOW - 5,
        now: NOW,
    };
    assert!(!if_range_matches("W/\"x\"", &weak));
}

#[test]
fn range_parsing() {
    use RangeDecision::*;
    assert_eq!(parse_ranges("0-0", 10), Partial(vec![(0, 0)]));
    assert_eq!(parse_ranges("2-5", 10), Partial(vec![(2, 5)]));
    assert_eq!(parse_ranges("5-", 10), Partial(vec![(5, 9)]));
    assert_eq!(parse_ranges("-3", 10), Partial(vec![(7, 9)]));
    assert_eq!(parse_ranges("-30", 10), Partial(vec![(0, 9)]));
    assert_eq!(parse_ranges("2-50", 10), Partial(vec![(2, 9)]));
    // "0-" is the whole file as one range, even with others.
    assert_eq!(parse_ranges("0-", 10), Partial(vec![(0, 9)]));
    assert_eq!(parse_ranges("1-2,0-", 10), Partial(vec![(0, 9)]));
    // Several ranges; touching and overlapping ones merge.
    assert_eq!(parse_ranges("0-1,4-5", 10), Partial(vec![(0, 1), (4, 5)]));
    assert_eq!(parse_ranges("0-1,2-3", 10), Partial(vec![(0, 3)]));
    assert_eq!(parse_ranges("4-5,0-4", 10), Partial(vec![(0, 5)]));
    assert_eq!(parse_ranges("4-5,0-1", 10), Partial(vec![(4, 5), (0, 1)]));
    assert_eq!(parse_ranges("0-1,,4-5", 10), Partial(vec![(0, 1), (4, 5)]));
    assert_eq!(parse_ranges("0-1, 4-5", 10), Partial(vec![(0, 1), (4, 5)]));
    // Unsatisfiable ones are dropped, all-unsatisfiable is 416.
    assert_eq!(parse_ranges("20-30,1-2", 10), Partial(vec![(1, 2)]));
    assert_eq!(parse_ranges("10-", 10), Unsatisfiable);
    assert_eq!(parse_ranges("10-20,30-40", 10), Unsatisfiable);
    // Syntax errors: the header is ignored.
    for bad in [
        "", "x", "5", "a-b", "5-3", "-0", "-", "1-2 ", "1-2,x", ",0-1", " -5", "--5",
    ] {
        assert_eq!(parse_ranges(bad, 10), Full, "{bad:?}");
    }
    assert_eq!(parse_ranges("+1-+2", 10), Partial(vec![(1, 2)]));
    assert_eq!(parse_ranges(" 1-2", 10), Partial(vec![(1, 2)]));
    assert_eq!(parse_ranges("99999999999999999999-", 10), Full);
    // Empty file: no ranges at all.
    assert_eq!(parse_ranges("0-0", 0), Full);
    // More bytes asked for than the file has: ignored.
    assert_eq!(parse_ranges("0-5,2-9,1-8", 10), Partial(vec![(0, 9)]));
    assert_eq!(parse_ranges("0-5,7-9,0-5", 10), Full);
}

#[test]
fn range_limits() {
    use RangeDecision::*;
    let many: Vec<String> = (0..201).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
    assert_eq!(parse_ranges(&many.join(","), 1000), Full);
    let ok: Vec<String> = (0..200).map(|i| format!("{}-{}", i * 2, i * 2)).collect();
    match parse_ranges(&ok.join(","), 1000) {
        Partial(r) => assert_eq!(r.len(), 200),
        other => panic!("{other:?}"),
    }
    // Reversals: each range just before the previous one.
    let rev: Vec<String> = (0..22).rev().map(|i| format!("{i}-{i}")).collect();
    assert_eq!(parse_ranges(&rev.join(","), 100), Full);
    let rev: Vec<String> = (0..21).rev().map(|i| format!("{i}-{i}")).collect();
    assert_eq!(parse_ranges(&rev.join(","), 100), Partial(vec![(0, 20)]));
}

#[test]
fn multipart_output() {
    let (chunks, total) = multipart_layout(&[(0, 1), (4, 5)], Some("text/plain"), 10, "b0undary");
    let mut text = Vec::new();
    let file = b"0123456789";
    for c in &chunks {
        match c {
            Chunk::Bytes(b) => text.extend_from_slice(b),
            Chunk::File { start, len } => {
                text.extend_from_slice(&file[*start as usize..(*start + *len) as usize])
            }
        }
    }
    let expected = "\r\n--b0undary\r\nContent-type: text/plain\r\nContent-range: bytes 0-1/10\r\n\r\n01\
                        \r\n--b0undary\r\nContent-type: text/plain\r\nContent-range: bytes 4-5/10\r\n\r\n45\
                        \r\n--b0undary--\r\n";
    assert_eq!(String::from_utf8(text).expect("ascii"), expected);
    assert_eq!(total, expected.len() as u64);
    let (chunks, _) = multipart_layout(&[(0, 0), (2, 2)], None, 3, "b");
    assert_eq!(
        chunks[0],
        Chunk::Bytes(Bytes::from_static(
            b"\r\n--b\r\nContent-range: bytes 0-0/3\r\n\r\n"
        ))
    );
    assert!(multipart_boundary().bytes().all(|b| b.is_ascii_hexdigit()));
}

async fn body_bytes(resp: Response<Body>) -> Vec<u8> {
    match resp.into_body().collect().await {
        Ok(c) => c.to_bytes().to_vec(),
        Err(e) => panic!("body error: {e}"),
    }
}

fn req(pairs: &[(&'static str, &str)]) -> HeaderMap {
    let mut h = HeaderMap::new();
    for (k, val) in pairs {
        h.append(*k, HeaderValue::from_str(val).expect("header"));
    }
    h
}

async fn serve(
    path: &Path,
    method: Method,
    pairs: &[(&'static str, &str)],
    ct: Option<&str>,
) -> Response<Body> {
    let meta = std::fs::metadata(path).expect("meta");
    let mut extra = HeaderMap::new();
    extra.insert("x-extra", HeaderValue::from_static("1"));
    extra.insert("cache-control", HeaderValue::from_static("max-age=5"));
    serve_file(
        &method,
        &req(pairs),
        FileToServe {
            path,
            meta: &meta,
            content_type: ct,
            status: StatusCode::OK,
        },
        extra,
    )
    .await
}

fn old_file(dir: &Path, data: &[u8]) -> std::path::PathBuf {
    let p = dir.join("f.txt");
    std::fs::write(&p, data).expect("write");
    let f = std::fs::File::options().write(true).open(&p).expect("open");
    f.set_modified(SystemTime::now() - std::time::Duration::from_secs(86_400))
        .expect("set mtime");
    p
}

#[tokio::test]
async fn full_head_and_conditional_responses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
    let p = old_file(dir.path(), &data);

    let r = serve(&p, Method::GET, &[], Some("text/plain")).await;
    assert_eq!(r.status(), StatusCode::OK);
    let h = r.headers().clone();
    assert_eq!(h["content-length"], "200000");
    assert_eq!(h["accept-ranges"], "bytes");
    assert_eq!(h["content-type"], "text/plain");
    assert_eq!(h["x-extra"], "1");
    let etag = h["etag"].to_str().expect("etag").to_string();
    assert!(etag.starts_with("\"30d40-"), "{etag}");
    let lm = h["last-modified"].to_str().expect("lm").to_string();
    assert_eq!(body_bytes(r).await, data);

    let r = serve(&p, Method::HEAD, &[], None).await;
    assert_eq!(r.headers()["content-length"], "200000");
    assert!(r.headers().get("content-type").is_none());
    assert!(body_bytes(r).await.is_empty());

    let r = serve(&p, Method::GET, &[("if-none-match", &etag)], None).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    assert_eq!(r.headers()["etag"], etag.as_str());
    assert_eq!(r.headers()["cache-control"], "max-age=5");
    assert!(r.headers().get("last-modified").is_none());
    assert!(r.headers().get("x-extra").is_none());
    assert!(body_bytes(r).await.is_empty());

    let r = serve(&p, Method::GET, &[("if-modified-since", &lm)], None).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);

    let r = serve(&p, Method::POST, &[("if-none-match", &etag)], None).await;
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
    assert_eq!(r.headers()["content-type"], ERROR_CONTENT_TYPE);
    assert!(String::from_utf8(body_bytes(r).await)
        .expect("utf-8")
        .contains("<title>412 Precondition Failed</title>"));

    let r = serve(&p, Method::GET, &[("if-match", "\"nope\"")], None).await;
    assert_eq!(r.status(), StatusCode::PRECONDITION_FAILED);
}

#[tokio::test]
async fn range_responses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = b"0123456789".repeat(10_000);
    let p = old_file(dir.path(), &data);

    let r = serve(
        &p,
        Method::GET,
        &[("range", "bytes=70000-")],
        Some("text/plain"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-range"], "bytes 70000-99999/100000");
    assert_eq!(r.headers()["content-length"], "30000");
    assert_eq!(body_bytes(r).await, &data[70000..]);

    let r = serve(
        &p,
        Method::GET,
        &[("range", "BYTES=1-2,5-6")],
        Some("text/plain"),
    )
    .await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    let ct = r.headers()["content-type"]
        .to_str()
        .expect("ct")
        .to_string();
    let boundary = multipart_boundary();
    assert_eq!(ct, format!("multipart/byteranges; boundary={boundary}"));
    let len: usize = r.headers()["content-length"]
        .to_str()
        .expect("cl")
        .parse()
        .expect("n");
    let body = body_bytes(r).await;
    assert_eq!(body.len(), len);
    assert_eq!(
            String::from_utf8(body).expect("ascii"),
            format!(
                "\r\n--{boundary}\r\nContent-type: text/plain\r\nContent-range: bytes 1-2/100000\r\n\r\n12\
                 \r\n--{boundary}\r\nContent-type: text/plain\r\nContent-range: bytes 5-6/100000\r\n\r\n56\
                 \r\n--{boundary}--\r\n"
            )
        );

    let r = serve(&p, Method::GET, &[("range", "bytes=200000-")], None).await;
    assert_eq!(r.status(), StatusCode::RANGE_NOT_SATISFIABLE);
    assert_eq!(r.headers()["content-range"], "bytes */100000");
    assert!(r.headers().get("etag").is_none());
    assert!(String::from_utf8(body_bytes(r).await)
        .expect("utf-8")
        .contains("None of the range-specifier values"));

    let r = serve(&p, Method::GET, &[("range", "bytes=oops")], None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(body_bytes(r).await.len(), 100_000);

    let r = serve(&p, Method::GET, &[("range", "items=0-1")], None).await;
    assert_eq!(r.status(), StatusCode::OK);

    // If-Range with the right ETag gives the range, a wrong one the file.
    let etag = serve(&p, Method::HEAD, &[], None).await.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_string();
    let r = serve(
        &p,
        Method::GET,
        &[("range", "bytes=0-3"), ("if-range", &etag)],
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body_bytes(r).await, b"0123");
    let r = serve(
        &p,
        Method::GET,
        &[("range", "bytes=0-3"), ("if-range", "\"x\"")],
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::OK);

    // HEAD gets the 206 headers without a body.
    let r = serve(&p, Method::HEAD, &[("range", "bytes=0-3")], None).await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(r.headers()["content-length"], "4");
    assert!(body_bytes(r).await.is_empty());
}

#[tokio::test]
async fn other_status_and_unreadable_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = old_file(dir.path(), b"not found page");
    let meta = std::fs::metadata(&p).expect("meta");
    let r = serve_file(
        &Method::GET,
        &req(&[("range", "bytes=0-1"), ("if-none-match", "*")]),
        FileToServe {
            path: &p,
            meta: &meta,
            content_type: Some("text/html"),
            status: StatusCode::NOT_FOUND,
        },
        HeaderMap::new(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::NOT_FOUND);
    assert_eq!(body_bytes(r).await, b"not found page");

    let gone = dir.path().join("gone");
    let r = serve_file(
        &Method::GET,
        &HeaderMap::new(),
        FileToServe {
            path: &gone,
            meta: &meta,
            content_type: None,
            status: StatusCode::OK,
        },
        HeaderMap::new(),
    )
    .await;
    assert_eq!(r.status(), StatusCode::FORBIDDEN);
}

/// Descriptors this process holds on `path`.
fn fds_on(path: &Path) -> usize {
    let want = std::fs::canonicalize(path).expect("canonical");
    std::fs::read_dir("/proc/self/fd")
        .expect("/proc/self/fd")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter(|target| *target == want)
        .count()
}

#[tokio::test]
async fn a_large_file_is_opened_only_when_its_body_is_polled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data: Vec<u8> = (0..1_000_000u32).map(|i| (i % 251) as u8).collect();
    let p = old_file(dir.path(), &data);
    // Built, never polled: headers from the stat, no descriptor.
    let r = serve(&p, Method::GET, &[], None).await;
    assert_eq!(fds_on(&p), 0, "a response not sending holds no file");
    assert_eq!(r.headers()["content-length"], "1000000");
    assert!(r.headers().contains_key("etag"));
    let mut body = r.into_body();
    // The first poll opens it, and reads a small first chunk.
    let first = body.frame().await.expect("frame").expect("data");
    let first = first.into_data().expect("data frame");
    assert_eq!(first.len(), FIRST_CHUNK);
    assert_eq!(fds_on(&p), 1);
    // Dropped mid-way: closed (a read in flight would hold it briefly).
    drop(body);
    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    assert_eq!(fds_on(&p), 0);
    // Read to the end: every byte, and the file is closed with the last.
    let r = serve(&p, Method::GET, &[], None).await;
    let mut body = r.into_body();
    let mut got = Vec::new();
    while let Some(f) = body.frame().await {
        got.extend_from_slice(&f.expect("frame").into_data().expect("data"));
    }
    assert_eq!(got, data);
    assert_eq!(fds_on(&p), 0);
    // HEAD, 304 and a range open nothing until polled, and are right.
    let r = serve(&p, Method::HEAD, &[], None).await;
    assert_eq!(r.headers()["content-length"], "1000000");
    assert!(body_bytes(r).await.is_empty());
    let etag = serve(&p, Method::GET, &[], None).await.headers()["etag"]
        .to_str()
        .expect("etag")
        .to_string();
    let r = serve(&p, Method::GET, &[("if-none-match", &etag)], None).await;
    assert_eq!(r.status(), StatusCode::NOT_MODIFIED);
    let r = serve(
        &p,
        Method::GET,
        &[("range", "bytes=500000-500009,999990-")],
        None,
    )
    .await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(fds_on(&p), 0);
    let text = body_bytes(r).await;
    let text = String::from_utf8_lossy(&text);
    assert!(
        text.contains("Content-range: bytes 500000-500009/1000000"),
        "{text}"
    );
    assert!(
        text.contains("Content-range: bytes 999990-999999/1000000"),
        "{text}"
    );
    assert_eq!(fds_on(&p), 0);
    let r = serve(&p, Method::GET, &[("range", "bytes=10-19")], None).await;
    assert_eq!(body_bytes(r).await, data[10..20].to_vec());
    // Replaced after its headers were made: the body fails rather than
    // sending another file under the old length and ETag.
    let r = serve(&p, Method::GET, &[], None).await;
    let q = dir.path().join("g.txt");
    std::fs::write(&q, vec![1u8; 1_000_000]).expect("write");
    std::fs::rename(&q, &p).expect("replace");
    assert!(r.into_body().collect().await.is_err());
}

#[tokio::test]
async fn shrinking_file_ends_the_body_with_an_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = old_file(dir.path(), &vec![7u8; 300_000]);
    let r = serve(&p, Method::GET, &[], None).await;
    std::fs::write(&p, b"short").expect("truncate");
    assert!(r.into_body().collect().await.is_err());
}

#[tokio::test]
async fn a_small_file_still_being_written_is_streamed_lazily() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("fresh.txt");
    std::fs::write(&p, vec![b'f'; 100_000]).expect("write");
    let r = serve(&p, Method::GET, &[], None).await;
    // Not read into memory when the response is built: no copy kept,
    // no descriptor held until the body is polled.
    let id = Identity::of(&std::fs::metadata(&p).expect("meta"));
    assert!(ContentCache::global().get(&p, &id).is_none());
    assert_eq!(fds_on(&p), 0);
    assert_eq!(body_bytes(r).await, vec![b'f'; 100_000]);
    assert_eq!(fds_on(&p), 0);
}

#[tokio::test]
async fn small_files_are_kept_by_identity_once_settled() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = dir.path().join("k.txt");
    std::fs::write(&p, "one\n").expect("write");
    let id = Identity::of(&std::fs::metadata(&p).expect("meta"));
    let now = SystemTime::now();
    assert!(!id.settled(now), "just written");
    assert!(id.settled(now + SETTLED + std::time::Duration::from_secs(1)));
    // A kept copy answers while the identity is the same: the body
    // shows it came from memory.
    let cache = ContentCache::global();
    cache.insert(&p, id, Bytes::from_static(b"mem\n"));
    let r = serve(&p, Method::GET, &[], None).await;
    assert_eq!(body_bytes(r).await, b"mem\n");
    let r = serve(&p, Method::GET, &[("range", "bytes=1-2")], None).await;
    assert_eq!(r.status(), StatusCode::PARTIAL_CONTENT);
    assert_eq!(body_bytes(r).await, b"em");
    // Any change of the file (here its mtime, and so its ctime) and
    // the file is read again.
    let f = std::fs::File::options().write(true).open(&p).expect("open");
    f.set_modified(now - std::time::Duration::from_secs(60))
        .expect("set mtime");
    let r = serve(&p, Method::GET, &[], None).await;
    assert_eq!(body_bytes(r).await, b"one\n");
    assert!(
        cache.get(&p, &id).is_some(),
        "the old copy stays until replaced"
    );
}

#[tokio::test]
async fn empty_file() {
    let dir = tempfile::tempdir().expect("tempdir");
    let p = old_file(dir.path(), b"");
    let r = serve(&p, Method::GET, &[("range", "bytes=0-")], None).await;
    assert_eq!(r.status(), StatusCode::OK);
    assert_eq!(r.headers()["content-length"], "0");
    assert_eq!(
        r.headers()["etag"]
            .to_str()
            .expect("etag")
            .split('-')
            .next(),
        Some("\"0")
    );
    assert!(body_bytes(r).await.is_empty());
}

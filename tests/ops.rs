//! Operating htgate: access logs in Combined Log Format (per site, shared
//! with the vhost prefix, quick mode), the metrics endpoint scraped during
//! traffic, log reopening on SIGUSR1 and SIGTERM's drain in the real
//! binary, `--version`/`--help`, and the shipped example configuration.

use crate::support::{files, probe};

use htgate_hosting::config::Config;
use htgate_hosting::run::start;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

const T: Duration = Duration::from_secs(10);

/// Sends raw bytes and reads the answer until the server closes.
async fn raw(addr: SocketAddr, request: &[u8]) -> String {
    let mut s = tokio::time::timeout(T, TcpStream::connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    s.write_all(request).await.expect("send");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut out)).await;
    String::from_utf8_lossy(&out).into_owned()
}

/// The text of `path` once `done` holds for it (or after `limit`).
fn wait_for_file(path: &Path, limit: Duration, done: impl Fn(&str) -> bool) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if done(&text) || start.elapsed() >= limit {
            return text;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Splits a Combined line into its fields (the quoted ones unquoted,
/// escapes kept).
fn fields(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            ' ' => {}
            '"' => {
                let mut f = String::new();
                while let Some(c) = chars.next() {
                    match c {
                        '\\' => {
                            f.push('\\');
                            if let Some(n) = chars.next() {
                                f.push(n);
                            }
                        }
                        '"' => break,
                        c => f.push(c),
                    }
                }
                out.push(f);
            }
            '[' => {
                let mut f = String::from("[");
                for c in chars.by_ref() {
                    f.push(c);
                    if c == ']' {
                        break;
                    }
                }
                out.push(f);
            }
            c => {
                let mut f = String::from(c);
                while let Some(&n) = chars.peek() {
                    if n == ' ' {
                        break;
                    }
                    f.push(n);
                    chars.next();
                }
                out.push(f);
            }
        }
    }
    out
}

/// Sites `{p}a` (a.test, www.a.test) and `{p}b` (b.test): the metrics are
/// the process's, so each test names its sites apart from other tests'.
fn two_sites(dir: &Path, p: &str, top: &str, a_extra: &str) -> Config {
    files::write(dir, "sites/a/index.html", "a home\n");
    files::write(dir, "sites/a/.htaccess", "Redirect 301 /old /index.html\n");
    files::write(dir, "sites/b/index.html", "b home\n");
    let text = format!(
        r#"
{top}
[[listen]]
address = "127.0.0.1:0"
[[listen]]
address = "127.0.0.1:0"
tls = true

[[site]]
name = "{p}a"
domains = ["a.test", "www.a.test"]
root = "sites/a"
{a_extra}

[[site]]
name = "{p}b"
domains = ["b.test"]
root = "sites/b"
"#
    );
    files::write(dir, "htgate.toml", &text);
    match Config::load(&dir.join("htgate.toml")) {
        Ok(c) => c,
        Err(e) => panic!("config: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn combined_log_lines_per_site_and_shared() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let cfg = two_sites(
        dir,
        "log-",
        "access_log = \"all.log\"",
        "access_log = \"a.log\"",
    );
    let server = start(&cfg).await.expect("start");
    let http = server.addr(false).expect("http");

    // A 200 with a referer and a hostile User-Agent (quotes, a tab,
    // bytes past ASCII), a HEAD (no body: `-`), a redirect and a 404.
    let r = raw(
        http,
        b"GET /index.html?x=1 HTTP/1.1\r\nHost: a.test\r\nReferer: http://ref.test/p\r\nUser-Agent: evil\" 200 1 \"x\t\xc3\xa9\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    let r = raw(
        http,
        b"HEAD /index.html HTTP/1.1\r\nHost: www.a.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 200 "), "{r}");
    let r = raw(http, b"GET /old HTTP/1.0\r\nHost: a.test\r\n\r\n").await;
    assert!(r.starts_with("HTTP/1.0 301 "), "{r}");
    let r = raw(
        http,
        b"GET /missing HTTP/1.1\r\nHost: b.test\r\nUser-Agent: curl/8\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 404 "), "{r}");

    let a_log = wait_for_file(&dir.join("a.log"), T, |t| t.lines().count() >= 3);
    let lines: Vec<&str> = a_log.lines().collect();
    assert_eq!(lines.len(), 3, "{a_log}");
    let f = fields(lines[0]);
    assert_eq!(f.len(), 9, "{f:?}");
    assert_eq!(
        (f[0].as_str(), f[1].as_str(), f[2].as_str()),
        ("127.0.0.1", "-", "-")
    );
    assert!(f[3].starts_with('[') && f[3].len() == 28, "{}", f[3]);
    assert_eq!(f[4], "GET /index.html?x=1 HTTP/1.1");
    assert_eq!((f[5].as_str(), f[6].as_str()), ("200", "7"));
    assert_eq!(f[7], "http://ref.test/p");
    assert_eq!(f[8], "evil\\\" 200 1 \\\"x\\t\\xc3\\xa9");
    assert!(
        lines[0].ends_with("\"http://ref.test/p\" \"evil\\\" 200 1 \\\"x\\t\\xc3\\xa9\""),
        "{}",
        lines[0]
    );
    // HEAD: no body bytes, no Referer, no User-Agent.
    assert!(
        lines[1].contains("\"HEAD /index.html HTTP/1.1\" 200 - \"-\" \"-\""),
        "{}",
        lines[1]
    );
    assert!(
        lines[2].contains("\"GET /old HTTP/1.0\" 301 "),
        "{}",
        lines[2]
    );

    // Site b has no log of its own: the shared file, with `ServerName:port `.
    let all = wait_for_file(&dir.join("all.log"), T, |t| !t.is_empty());
    let prefix = format!("b.test:{} 127.0.0.1 - - [", http.port());
    assert!(all.starts_with(&prefix), "{all}");
    assert!(
        all.contains("\"GET /missing HTTP/1.1\" 404 ") && all.ends_with(" \"-\" \"curl/8\"\n"),
        "{all}"
    );
    assert_eq!(
        all.lines().count(),
        1,
        "site a's lines are in its own file: {all}"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_mode_access_log() {
    let tmp = tempfile::tempdir().expect("tempdir");
    files::write(tmp.path(), "root/index.html", "hello\n");
    let log = tmp.path().join("access.log");
    let opts = htgate_hosting::quick::QuickOptions::new(tmp.path().join("root"));
    let server = htgate_hosting::quick::start_logged(opts, Some(log.clone()))
        .await
        .expect("start");
    let ans = probe::get(
        server.http_addr,
        None,
        "localhost",
        "/",
        &[("User-Agent", "t")],
    )
    .await;
    assert_eq!(ans.status, 200);
    let text = wait_for_file(&log, T, |t| !t.is_empty());
    assert!(
        text.starts_with("127.0.0.1 - - [")
            && text.ends_with("\"GET / HTTP/1.1\" 200 6 \"-\" \"t\"\n"),
        "{text}"
    );
    server.shutdown().await;
}

/// The value of the sample `name{labels}` in an exposition.
fn sample(text: &str, name_and_labels: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(name_and_labels)?.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_endpoint_during_traffic() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let cfg = two_sites(dir, "metrics-", "[admin]\nlisten = \"127.0.0.1:0\"", "");
    let server = start(&cfg).await.expect("start");
    let http = server.addr(false).expect("http");
    let https = server.addr(true).expect("https");
    let admin = server.admin_addr().expect("admin");

    let scrape = || async move {
        let ans = probe::get(admin, None, "127.0.0.1", "/metrics", &[]).await;
        assert_eq!(ans.status, 200, "{ans:?}");
        assert!(
            ans.header("content-type")
                .is_some_and(|c| c.starts_with("application/openmetrics-text")),
            "{ans:?}"
        );
        ans.body
    };
    let ok_a = "htgate_requests_total{site=\"metrics-a\",code=\"200\"}";
    let missing_b = "htgate_requests_total{site=\"metrics-b\",code=\"404\"}";
    let tls_ok = "htgate_tls_handshakes_total{result=\"ok\"}";
    let tls_failed = "htgate_tls_handshakes_total{result=\"failed\"}";
    let before = scrape().await;
    let ok_before = sample(&before, ok_a).unwrap_or(0.0);
    let missing_before = sample(&before, missing_b).unwrap_or(0.0);
    let tls_ok_before = sample(&before, tls_ok).unwrap_or(0.0);
    let tls_failed_before = sample(&before, tls_failed).unwrap_or(0.0);

    for _ in 0..3 {
        let ans = probe::get(http, None, "a.test", "/", &[]).await;
        assert_eq!(ans.status, 200);
    }
    // Over TLS: counts a handshake too.
    let ans = probe::get(https, Some(Some("a.test")), "a.test", "/", &[]).await;
    assert_eq!(ans.status, 200);
    for _ in 0..2 {
        let ans = probe::get(http, None, "b.test", "/nothing-here", &[]).await;
        assert_eq!(ans.status, 404);
    }
    // Not TLS at all: a failed handshake.
    let _ = raw(https, b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n").await;
    // An open connection while scraping (the metrics are the process's:
    // other tests' connections may be counted too, never fewer).
    let held = TcpStream::connect(http).await.expect("connect");
    tokio::time::sleep(Duration::from_millis(100)).await;
    let during = scrape().await;
    drop(held);
    assert!(
        sample(&during, tls_ok).is_some_and(|n| n >= tls_ok_before + 1.0),
        "{during}"
    );
    assert!(
        sample(&during, tls_failed).is_some_and(|n| n >= tls_failed_before + 1.0),
        "{during}"
    );
    assert!(
        sample(&during, "htgate_connections_active").is_some_and(|n| n >= 1.0),
        "{during}"
    );
    assert_eq!(sample(&during, ok_a), Some(ok_before + 4.0), "{during}");
    assert_eq!(
        sample(&during, missing_b),
        Some(missing_before + 2.0),
        "{during}"
    );
    // The latency histogram, per site, with its buckets.
    assert!(
        during.contains("# TYPE htgate_request_duration_seconds histogram"),
        "{during}"
    );
    let count = sample(
        &during,
        "htgate_request_duration_seconds_count{site=\"metrics-b\"}",
    );
    assert!(count.is_some_and(|c| c >= 2.0), "{during}");
    assert!(
        during
            .lines()
            .any(|l| l.starts_with("htgate_request_duration_seconds_bucket{")
                && l.contains("le=\"+Inf\"")
                && l.contains("site=\"metrics-a\"")),
        "{during}"
    );
    assert!(
        during.contains("htgate_request_duration_seconds_bucket{le=\"0.005\",site=\"metrics-a\"}"),
        "{during}"
    );
    // No certificate of their own: the shared (self-signed, in memory)
    // one is served, valid for about a year at most, and names neither.
    let days = sample(
        &during,
        "htgate_certificate_expiry_days{site=\"metrics-a\",domain=\"a.test\",source=\"shared\"}",
    );
    assert!(days.is_some_and(|d| d > 0.0), "{during}");
    assert_eq!(
        sample(
            &during,
            "htgate_certificate_valid{site=\"metrics-b\",domain=\"b.test\"}"
        ),
        Some(0.0),
        "{during}"
    );
    assert!(
        during.contains("# TYPE htgate_connections_active gauge"),
        "{during}"
    );
    assert!(during.contains("htgate_build_info{version=\""), "{during}");
    assert!(during.ends_with("# EOF\n"), "{during}");

    // Nothing else is served there.
    let ans = probe::get(admin, None, "127.0.0.1", "/", &[]).await;
    assert_eq!(ans.status, 404);
    let r = raw(
        admin,
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(r.starts_with("HTTP/1.1 405 "), "{r}");

    // A configuration reload is counted.
    let reload_ok = "htgate_reloads_total{kind=\"config\",result=\"ok\"}";
    let reloads_before = sample(&during, reload_ok).unwrap_or(0.0);
    server.reload().await.expect("reload");
    let after = scrape().await;
    assert!(
        sample(&after, reload_ok).is_some_and(|n| n >= reloads_before + 1.0),
        "{after}"
    );
    server.shutdown().await;
}

/// The real binary in config mode; killed if the test ends early.
struct Running {
    child: Child,
    http: SocketAddr,
    stderr: std::sync::mpsc::Receiver<String>,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn_config_mode(config: &Path) -> Running {
    let mut child = Command::new(env!("CARGO_BIN_EXE_htgate"))
        .args(["serve", "--config"])
        .arg(config)
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn htgate");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let http = loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match rx.recv_timeout(left) {
            Ok(line) => {
                if let Some(a) = line.strip_prefix("htgate listening on http://") {
                    break a.trim().parse::<SocketAddr>().expect("address");
                }
                seen.push(line);
            }
            Err(_) => panic!("htgate did not start: {seen:?}"),
        }
    };
    Running {
        child,
        http,
        stderr: rx,
    }
}

fn kill(signal: &str, pid: u32) {
    let status = Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success(), "kill {signal} {pid}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigusr1_reopens_the_logs_and_sigterm_drains() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    two_sites(
        dir,
        "usr1-",
        "access_log = \"all.log\"\nerror_log = \"error.log\"\nlog_level = \"info\"",
        "",
    );
    let mut running = spawn_config_mode(&dir.join("htgate.toml"));
    let http = running.http;
    let log = dir.join("all.log");

    let ans = probe::get(http, None, "a.test", "/?before", &[]).await;
    assert_eq!(ans.status, 200);
    let text = wait_for_file(&log, T, |t| t.contains("/?before"));
    assert!(text.contains("/?before"), "{text}");
    let error_log = dir.join("error.log");

    // logrotate without copytruncate: move, then SIGUSR1.
    let rotated = dir.join("all.log.1");
    std::fs::rename(&log, &rotated).expect("rename");
    std::fs::rename(&error_log, dir.join("error.log.1")).expect("rename");
    kill("-USR1", running.child.id());

    // New lines go to a new file at the old path (bounded wait: the
    // signal is handled asynchronously).
    let start = Instant::now();
    let mut n = 0;
    loop {
        n += 1;
        let ans = probe::get(http, None, "a.test", &format!("/?after{n}"), &[]).await;
        assert_eq!(ans.status, 200);
        let text = wait_for_file(&log, Duration::from_millis(300), |t| t.contains("/?after"));
        if text.contains(&format!("/?after{n} ")) {
            break;
        }
        assert!(start.elapsed() < T, "no new file at {}", log.display());
    }
    let old = std::fs::read_to_string(&rotated).expect("rotated");
    assert!(old.contains("/?before"), "{old}");
    assert!(!old.contains(&format!("/?after{n} ")), "{old}");
    let errors = wait_for_file(&error_log, T, |t| t.contains("reopened"));
    assert!(errors.contains("SIGUSR1: log files reopened"), "{errors}");

    // SIGTERM: the drain, then a clean exit.
    kill("-TERM", running.child.id());
    let start = Instant::now();
    let status = loop {
        if let Some(status) = running.child.try_wait().expect("wait") {
            break status;
        }
        assert!(
            start.elapsed() < Duration::from_secs(20),
            "htgate did not stop"
        );
        std::thread::sleep(Duration::from_millis(50));
    };
    // The pipe closes with the process: the reader thread ends soon.
    let mut said = Vec::new();
    while let Ok(line) = running.stderr.recv_timeout(Duration::from_secs(5)) {
        said.push(line);
    }
    assert!(status.success(), "{status:?}: {said:?}");
    assert!(
        said.iter().any(|l| l.contains("SIGTERM: draining")),
        "{said:?}"
    );
}

#[test]
fn version_and_help() {
    let out = Command::new(env!("CARGO_BIN_EXE_htgate"))
        .arg("--version")
        .output()
        .expect("run");
    assert!(out.status.success());
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        format!("htgate {}", env!("CARGO_PKG_VERSION"))
    );
    for args in [
        &["--help"][..],
        &["serve", "--help"],
        &["cert", "--help"],
        &["cert", "install", "--help"],
        &["cert", "list", "--help"],
        &["cert", "check", "--help"],
        &["check", "--help"],
        &["explain", "--help"],
        &["demo", "--help"],
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_htgate"))
            .args(args)
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success(), "{args:?}");
        assert!(text.contains("Usage: htgate"), "{args:?}: {text}");
    }
    let out = Command::new(env!("CARGO_BIN_EXE_htgate"))
        .args(["serve", "--help"])
        .output()
        .expect("run");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("--access-log <FILE>"), "{text}");
}

/// `contrib/htgate.toml` with its absolute paths moved under `root`, and
/// the folders it names created there.
fn example_in(root: &Path) -> (PathBuf, String) {
    let text = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/htgate.toml"))
        .expect("contrib/htgate.toml");
    let moved = text.replace("= \"/", &format!("= \"{}/", root.display()));
    for dir in [
        "srv/example/public_html",
        "srv/shop/public_html",
        "var/log/htgate",
    ] {
        std::fs::create_dir_all(root.join(dir)).expect("mkdir");
    }
    (root.join("etc/htgate/htgate.toml"), moved)
}

#[test]
fn the_shipped_example_configuration_parses() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (path, text) = example_in(tmp.path());
    let cfg = match Config::parse(&path, &text) {
        Ok(c) => c,
        Err(e) => panic!("contrib/htgate.toml:\n{e}"),
    };
    assert!(cfg.file.admin.is_some(), "the example shows [admin]");
    assert!(cfg.file.access_log.is_some() && cfg.file.error_log.is_some());
    assert!(cfg.file.site.len() >= 2);
    assert!(cfg.file.site.iter().any(|s| s.access_log.is_some()));
    // README's reference is the same file.
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let example =
        std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/contrib/htgate.toml"))
            .expect("contrib/htgate.toml");
    assert!(
        readme.contains(&format!("```toml\n{example}```")),
        "README's htgate.toml reference and contrib/htgate.toml differ: keep them the same"
    );
}

/// A broken `.htaccess` is logged at every request it answers with a 500,
/// as Apache does, with the client, the site, the request and
/// file:line:col (config mode used to log it once, at the compile); every
/// line logged during a request starts with `request{site=… client=…}:`,
/// also when the request's work ran on the blocking pool (site `a` is on a
/// "network filesystem": all its requests go there).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_htaccess_is_logged_at_every_request() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    two_sites(
        dir,
        "broken-",
        "error_log = \"error.log\"\nlog_level = \"info\"",
        "network_filesystem = true",
    );
    files::write(dir, "sites/b/.htaccess", "# fine\nRewriteEngine Onn\n");
    files::write(dir, "sites/a/.htaccess", "RewriteEngine Onn\n");
    let running = spawn_config_mode(&dir.join("htgate.toml"));
    for (host, q) in [("b.test", "one"), ("b.test", "two"), ("a.test", "three")] {
        let ans = probe::get(running.http, None, host, &format!("/x?{q}"), &[]).await;
        assert_eq!(ans.status, 500);
    }
    let log = dir.join("error.log");
    let text = wait_for_file(&log, T, |t| t.contains("/x?two") && t.contains("/x?three"));
    for (site, q) in [("b", "one"), ("b", "two"), ("a", "three")] {
        let line = text
            .lines()
            .find(|l| l.contains(&format!("GET /x?{q} ")))
            .unwrap_or_else(|| panic!("no line for /x?{q}:\n{text}"));
        assert!(line.contains(&format!("sites/{site}/.htaccess:")), "{line}");
        assert!(
            line.contains(&format!(
                " ERROR request{{site=broken-{site} client=127.0.0.1:"
            )),
            "{line}"
        );
    }
}

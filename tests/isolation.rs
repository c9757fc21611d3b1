//! Tenant isolation (SECURITY.md, "Limits"): one hosted site whose
//! `.htaccess` files attack the server (an endless `[N]` loop, a query
//! grown by `[QSA,N]`, a pathological `<Files>` wildcard, a bcrypt
//! cost-14 password file hammered with wrong passwords, a folder of
//! 50,000 entries with `Options +Indexes`, 20,000 unanchored rules) is
//! hammered by 32 concurrent clients while a second site is requested by
//! one client.  Every answer of the second site is 200 and none takes
//! longer than a second (a liveness bound, not a speed claim); the
//! hostile site's answers are bounded (500 for a spent budget, 503 over
//! its limits); the server still shuts down within its drain time.

use crate::support::{files, probe};
use htgate_hosting::config::Config;
use htgate_hosting::run::start;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// `htpasswd -nbB -C 14 alice 'correct horse'`.
const BCRYPT_14: &str = "alice:$2y$14$Yu3W7ZriUZwOrkG.9Cs1NuCWpxjs1ojrjYsZZxFL0SDnxxtnZe8wu\n";

/// How long the hostile clients hammer.
const ATTACK: Duration = Duration::from_secs(5);

/// Writes `toml` as `dir/htgate.toml`, starts config mode with it and
/// returns the server and its plain-HTTP address.
async fn start_config(
    dir: &std::path::Path,
    toml: &str,
) -> (htgate_hosting::run::HostingServer, std::net::SocketAddr) {
    let path = dir.join("htgate.toml");
    std::fs::write(&path, toml).expect("write config");
    let config = Config::parse(&path, toml).expect("config");
    let server = start(&config).await.expect("start");
    let http = server.addr(false).expect("http listener");
    (server, http)
}

fn hostile_site(root: &std::path::Path) {
    files::write(root, "evil/index.html", "evil\n");
    files::write(
        root,
        "evil/loop/.htaccess",
        "RewriteEngine On\nRewriteRule ^ - [N=4000000000]\n",
    );
    files::write(
        root,
        "evil/qsa/.htaccess",
        "RewriteEngine On\nRewriteRule ^(.*)$ $1?grow=aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa [QSA,N=32000]\n",
    );
    let glob = "*a".repeat(25) + "*b";
    files::write(
        root,
        "evil/glob/.htaccess",
        &format!("<Files \"{glob}\">\nRequire all denied\n</Files>\n"),
    );
    // The deny block's file: the pattern matches it (25 stars).
    files::write(root, &format!("evil/glob/{}b", "a".repeat(60)), "x\n");
    files::write(root, "evil/auth/secret.html", "secret\n");
    files::write(root, "evil/auth.htpasswd", BCRYPT_14);
    let pw = root.join("evil/auth.htpasswd");
    files::write(
        root,
        "evil/auth/.htaccess",
        &format!(
            "AuthType Basic\nAuthName \"x\"\nAuthUserFile {}\nRequire valid-user\n",
            pw.display()
        ),
    );
    files::write(root, "evil/big/.htaccess", "Options +Indexes\n");
    let big = root.join("evil/big");
    for i in 0..50_000 {
        std::fs::write(big.join(format!("f{i:05}.txt")), b"").expect("write entry");
    }
    let mut rules = String::from("RewriteEngine On\n");
    for i in 0..19_990 {
        rules.push_str(&format!("RewriteRule .*x{i}y /nowhere{i}\n"));
    }
    files::write(root, "evil/rules/.htaccess", &rules);
}

fn hostile_requests() -> Vec<(String, Vec<(&'static str, &'static str)>)> {
    let long = "a".repeat(200);
    vec![
        ("/loop/x".into(), vec![]),
        ("/loop/y".into(), vec![]),
        ("/qsa/x".into(), vec![]),
        (format!("/glob/{long}"), vec![]),
        // alice:wrong
        (
            "/auth/secret.html".into(),
            vec![("Authorization", "Basic YWxpY2U6d3Jvbmc=")],
        ),
        ("/big/".into(), vec![]),
        ("/big/?C=S;O=D".into(), vec![]),
        ("/rules/page".into(), vec![]),
    ]
}

/// The status of a GET, or 0 without an answer within 20 s (longer than
/// any limit of the hostile site: the blocking deadline is 10 s).
async fn get_status(
    addr: std::net::SocketAddr,
    host: &str,
    path: &str,
    headers: &[(&str, &str)],
) -> u16 {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n");
    for (n, v) in headers {
        req.push_str(&format!("{n}: {v}\r\n"));
    }
    req.push_str("\r\n");
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(req.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        let head = String::from_utf8_lossy(&raw);
        head.split(' ').nth(1)?.parse().ok()
    };
    tokio::time::timeout(Duration::from_secs(20), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hostile_site_does_not_slow_or_stop_another() {
    let dir = tempfile::tempdir().expect("tempdir");
    hostile_site(&dir.path().join("roots"));
    files::write(dir.path(), "roots/good/index.html", "good\n");
    let toml = r#"
[[listen]]
address = "127.0.0.1:0"

[[site]]
name = "evil"
domains = ["evil.test"]
root = "roots/evil"

[[site]]
name = "good"
domains = ["good.test"]
root = "roots/good"
"#;
    let (server, http) = start_config(dir.path(), toml).await;

    let stop = Arc::new(AtomicBool::new(false));
    let mut attackers = Vec::new();
    for n in 0..32 {
        let stop = stop.clone();
        attackers.push(tokio::spawn(async move {
            let requests = hostile_requests();
            let mut seen: Vec<(u16, String, Duration)> = Vec::new();
            let mut i = n;
            while !stop.load(Ordering::Relaxed) {
                let (path, headers) = &requests[i % requests.len()];
                i += 1;
                let t = Instant::now();
                let status = get_status(http, "evil.test", path, headers).await;
                seen.push((status, path.chars().take(20).collect(), t.elapsed()));
            }
            seen
        }));
    }

    // The good site, one client, while the attack lasts.
    let started = Instant::now();
    let mut worst = Duration::ZERO;
    let mut answered = 0;
    while started.elapsed() < ATTACK {
        let t = Instant::now();
        let a = probe::get(http, None, "good.test", "/index.html", &[]).await;
        let took = t.elapsed();
        assert_eq!(a.status, 200, "the good site answered {}", a.status);
        assert_eq!(a.body, "good\n");
        assert!(
            took < Duration::from_secs(1),
            "a good-site request took {took:?} under attack"
        );
        worst = worst.max(took);
        answered += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut answers: Vec<(u16, String, Duration)> = Vec::new();
    for a in attackers {
        answers.extend(a.await.expect("attacker"));
    }
    let mut by_path: std::collections::BTreeMap<(String, u16), (usize, Duration)> =
        Default::default();
    for (status, path, took) in &answers {
        let e = by_path.entry((path.clone(), *status)).or_default();
        e.0 += 1;
        e.1 = e.1.max(*took);
    }
    eprintln!("hostile answers (path, status): (count, slowest): {by_path:?}");
    let mut statuses: Vec<u16> = answers.iter().map(|a| a.0).collect();
    // On a machine that is busy with other work, the hostile site's own
    // backlog (its one engine slot, its blocking work at nice 19) can
    // outlast the attack window with 503s only: after it, the site's next
    // endless loop must still end in its budget's 500 (bounded wait).
    let drained = Instant::now();
    while !statuses.contains(&500) && drained.elapsed() < Duration::from_secs(60) {
        statuses.push(get_status(http, "evil.test", "/loop/x", &[]).await);
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!(
        "good site: {answered} answers, slowest {worst:?}; hostile site: {} answers",
        statuses.len()
    );
    // The hostile site was answered, and bounded: a spent budget is a
    // 500, a site over its limits a 503, a wrong password a 401.
    assert!(
        statuses.iter().all(|s| *s != 0),
        "a hostile request got no answer"
    );
    assert!(statuses.contains(&500), "no budget refusal: {statuses:?}");
    assert!(
        statuses
            .iter()
            .all(|s| [200, 401, 403, 404, 500, 503].contains(s)),
        "{statuses:?}"
    );
    // The pathological <Files> pattern still denies its file.
    let g = probe::get(
        http,
        None,
        "evil.test",
        &format!("/glob/{}b", "a".repeat(60)),
        &[],
    )
    .await;
    assert_eq!(
        g.status, 403,
        "a wildcard with many stars must not fail open"
    );
    // Every refusal was counted, per site and reason.
    let metrics = htgate_telemetry::metrics::render(None);
    for reason in ["budget", "blocking_limit"] {
        assert!(
            metrics.contains(&format!(
                "htgate_refusals_total{{site=\"evil\",reason=\"{reason}\"}}"
            )),
            "no {reason} refusal counted:\n{metrics}"
        );
    }
    assert!(!metrics.contains("htgate_refusals_total{site=\"good\""));
    // The runaway rules left the workers after their slice.
    assert!(
        metrics.contains("htgate_blocking_jobs_total{site=\"evil\",reason=\"a long rule run\"}"),
        "{metrics}"
    );
    assert!(!metrics.contains("htgate_blocking_jobs_total{site=\"good\""));
    // Shutdown ends within the drain time, stuck blocking work or not.
    let t = Instant::now();
    tokio::time::timeout(Duration::from_secs(15), server.shutdown())
        .await
        .expect("shutdown within the drain time");
    eprintln!("shutdown took {:?}", t.elapsed());
}

/// In config mode a site's file tests see only its own root (and its
/// `extra_paths`): another customer's files do not exist for them, in
/// `RewriteCond -f/-d/-s`, ap_expr `-f` and `filesize()`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn file_tests_stay_inside_the_tenant() {
    let dir = tempfile::tempdir().expect("tempdir");
    let other = dir.path().join("roots/other");
    files::write(dir.path(), "roots/other/secret.txt", "other's\n");
    files::write(dir.path(), "shared/lib.txt", "shared\n");
    files::write(dir.path(), "roots/probe/index.html", "probe\n");
    let secret = other.join("secret.txt");
    let lib = dir.path().join("shared/lib.txt");
    files::write(
        dir.path(),
        "roots/probe/.htaccess",
        &format!(
            "RewriteEngine On\n\
             RewriteCond {s} -f\nRewriteRule ^f$ - [F]\n\
             RewriteCond {d} -d\nRewriteRule ^d$ - [F]\n\
             RewriteCond {s} -s\nRewriteRule ^s$ - [F]\n\
             RewriteCond expr \"-f '{s}'\"\nRewriteRule ^e$ - [F]\n\
             RewriteCond expr \"filesize('{s}') > 0\"\nRewriteRule ^z$ - [F]\n\
             RewriteCond {l} -f\nRewriteRule ^lib$ - [F]\n\
             RewriteCond %{{DOCUMENT_ROOT}}/index.html -f\nRewriteRule ^own$ - [F]\n",
            s = secret.display(),
            d = other.display(),
            l = lib.display(),
        ),
    );
    let toml = format!(
        r#"
[[listen]]
address = "127.0.0.1:0"

[[site]]
name = "probe"
domains = ["probe.test"]
root = "roots/probe"
extra_paths = ["{}"]
"#,
        dir.path().join("shared").display()
    );
    let (server, http) = start_config(dir.path(), &toml).await;
    for probe_path in ["/f", "/d", "/s", "/e", "/z"] {
        let a = probe::get(http, None, "probe.test", probe_path, &[]).await;
        // no such file: 404; seen, the rule would answer 403
        assert_eq!(a.status, 404, "{probe_path}: another site's file was seen");
    }
    // The site's own files and its extra paths are seen.
    for own in ["/own", "/lib"] {
        let a = probe::get(http, None, "probe.test", own, &[]).await;
        assert_eq!(a.status, 403, "{own}: the site's own file was not seen");
    }
    server.shutdown().await;
}

/// A site on a network filesystem (here: said so in htgate.toml) runs
/// every request on the blocking pool, where a hung `stat` holds only the
/// site's own slots; its answers are the same.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_filesystem_site_runs_on_the_blocking_pool() {
    let dir = tempfile::tempdir().expect("tempdir");
    files::write(dir.path(), "roots/nfs/index.html", "nfs\n");
    files::write(
        dir.path(),
        "roots/nfs/.htaccess",
        "RewriteEngine On\nRewriteRule ^old$ /index.html [R=301,L]\n",
    );
    let toml = r#"
[[listen]]
address = "127.0.0.1:0"

[[site]]
name = "nfs-site"
domains = ["nfs.test"]
root = "roots/nfs"
network_filesystem = true
"#;
    let (server, http) = start_config(dir.path(), toml).await;
    let a = probe::get(http, None, "nfs.test", "/", &[]).await;
    assert_eq!((a.status, a.body.as_str()), (200, "nfs\n"));
    let r = probe::get(http, None, "nfs.test", "/old", &[]).await;
    assert_eq!(r.status, 301);
    assert!(
        r.header("location")
            .is_some_and(|l| l.starts_with("http://nfs.test") && l.ends_with("/index.html")),
        "{:?}",
        r.headers
    );
    let metrics = htgate_telemetry::metrics::render(None);
    assert!(
        metrics.contains(
            "htgate_blocking_jobs_total{site=\"nfs-site\",reason=\"a site on a network filesystem\"} 2"
        ),
        "{metrics}"
    );
    server.shutdown().await;
}

/// A listing of a folder of 50,000 entries looks at 10,000 and says so on
/// the page, and the cut is counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_listing_of_50000_entries_shows_10000() {
    let dir = tempfile::tempdir().expect("tempdir");
    files::write(dir.path(), "roots/big/.htaccess", "Options +Indexes\n");
    let big = dir.path().join("roots/big");
    for i in 0..50_000 {
        std::fs::write(big.join(format!("f{i:05}.txt")), b"").expect("write entry");
    }
    let toml = r#"
[[listen]]
address = "127.0.0.1:0"

[[site]]
name = "lister"
domains = ["lister.test"]
root = "roots/big"
limits = { blocking_timeout_ms = 60000 }
"#;
    let (server, http) = start_config(dir.path(), toml).await;
    let page = get_page(http, "lister.test", "/").await;
    assert!(
        page.starts_with("HTTP/1.1 200"),
        "{}",
        &page[..page.len().min(200)]
    );
    assert!(
        page.contains("only the first 10000 are listed"),
        "{}",
        &page[page.len().saturating_sub(400)..]
    );
    assert_eq!(page.matches("<a href=\"f").count(), 10_000);
    let metrics = htgate_telemetry::metrics::render(None);
    assert!(
        metrics.contains("htgate_refusals_total{site=\"lister\",reason=\"listing_entries\"}"),
        "{metrics}"
    );
    server.shutdown().await;
}

/// The whole answer to a GET, waiting up to 90 s (a debug build lists
/// 10,000 entries slowly).
async fn get_page(addr: std::net::SocketAddr, host: &str, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n");
    let exchange = async {
        let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
        s.write_all(req.as_bytes()).await.ok()?;
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).await.ok()?;
        Some(String::from_utf8_lossy(&raw).into_owned())
    };
    tokio::time::timeout(Duration::from_secs(90), exchange)
        .await
        .ok()
        .flatten()
        .unwrap_or_default()
}

/// A run that uses its inline slice moves off the workers and keeps the
/// request's budget there (a 500, not twenty times the work); for a while
/// the site's next requests start off the workers (counted as such), and
/// they are answered as before.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_run_moves_off_the_workers_and_the_site_follows_for_a_while() {
    let dir = tempfile::tempdir().expect("tempdir");
    files::write(dir.path(), "roots/long/index.html", "fine\n");
    files::write(
        dir.path(),
        "roots/long/loop/.htaccess",
        "RewriteEngine On\nRewriteRule ^ - [N=4000000000]\n",
    );
    let toml = r#"
[[listen]]
address = "127.0.0.1:0"

[[site]]
name = "long-runs"
domains = ["long.test"]
root = "roots/long"
"#;
    let (server, http) = start_config(dir.path(), toml).await;
    let jobs = || {
        let m = htgate_telemetry::metrics::render(None);
        m.lines()
            .find_map(|l| {
                l.strip_prefix(
                    "htgate_blocking_jobs_total{site=\"long-runs\",reason=\"a long rule run\"} ",
                )
                .and_then(|n| n.parse::<u64>().ok())
            })
            .unwrap_or(0)
    };
    let a = probe::get(http, None, "long.test", "/index.html", &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(jobs(), 0, "a short run stays on the worker");
    let l = probe::get(http, None, "long.test", "/loop/x", &[]).await;
    assert_eq!(l.status, 500, "the moved run keeps the request's budget");
    assert_eq!(jobs(), 1);
    let a = probe::get(http, None, "long.test", "/index.html", &[]).await;
    assert_eq!((a.status, a.body.as_str()), (200, "fine\n"));
    assert_eq!(jobs(), 2, "the site's next request started off the workers");
    let metrics = htgate_telemetry::metrics::render(None);
    assert!(
        metrics.contains("htgate_refusals_total{site=\"long-runs\",reason=\"budget\"} 1"),
        "{metrics}"
    );
    server.shutdown().await;
}

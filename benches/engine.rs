//! Criterion benches by stage:
//!
//! - `compile`: parse + compile of every corpus file (and a few alone);
//! - `rules`: mod_rewrite's per-directory phase alone, on a request whose
//!   directory walk is done: the rule evaluation of the ruleset, with the
//!   filesystem out of the picture (the site's stat cache is warm and
//!   never expires here, so `-f`/`-d` conditions are memory look-ups);
//! - `request`: one whole request through the engine (URL parsing, the
//!   directory walk with its `.htaccess` look-ups, `<Files>`, access,
//!   rewriting, internal redirects, the response decision), with the same
//!   warm caches; the file itself is not sent.
//!
//! The rulesets are the load harness's (../shared/bench/bench.py):
//! force-HTTPS, WordPress, Drupal (the corpus file), a 2,000-rule redirect
//! map and a 10-rule one, and a tree with a small `.htaccess` at each of 6
//! levels.  The load harness measures the server as a whole.

use criterion::{criterion_group, BatchSize, BenchmarkId, Criterion, Throughput};
use htgate_engine::compile::compile_source;
use htgate_engine::request::{Main, Req};
use htgate_engine::respond::{run, run_inline, Outcome, RequestHead};
use htgate_engine::site::Site;
use htgate_server::ConnInfo;
use std::path::Path;

fn shared(rel: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../shared")
        .join(rel)
}

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = shared("corpus/htaccess");
    let mut files: Vec<(String, Vec<u8>)> = std::fs::read_dir(&dir)
        .map(|rd| {
            rd.filter_map(|e| e.ok())
                .filter_map(|e| {
                    let name = e.file_name().to_string_lossy().into_owned();
                    std::fs::read(e.path()).ok().map(|b| (name, b))
                })
                .collect()
        })
        .unwrap_or_default();
    files.sort();
    files
}

fn parse_compile(c: &mut Criterion) {
    let files = corpus();
    assert!(!files.is_empty(), "corpus not found under ../shared");
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    let mut g = c.benchmark_group("compile");
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function(format!("corpus ({} files)", files.len()), |b| {
        b.iter(|| {
            for (_, src) in &files {
                std::hint::black_box(compile_source(src));
            }
        })
    });
    for name in [
        "wordpress.htaccess",
        "drupal.htaccess",
        "h5bp-server-configs-apache.htaccess",
    ] {
        if let Some((_, src)) = files.iter().find(|(n, _)| n == name) {
            g.throughput(Throughput::Bytes(src.len() as u64));
            g.bench_with_input(BenchmarkId::new("file", name), src, |b, src| {
                b.iter(|| std::hint::black_box(compile_source(src)))
            });
        }
    }
    g.finish();
}

// The load harness's rulesets (bench.py), byte for byte.
const FORCE_HTTPS: &str = "RewriteEngine On\nRewriteCond %{HTTPS} !on\nRewriteRule (.*) https://%{SERVER_NAME}/$1 [QSA,L,R=301]\n";
const WORDPRESS: &str = "# BEGIN WordPress\n<IfModule mod_rewrite.c>\nRewriteEngine On\nRewriteBase /\nRewriteRule ^index\\.php$ - [L]\nRewriteCond %{REQUEST_FILENAME} !-f\nRewriteCond %{REQUEST_FILENAME} !-d\nRewriteRule . /index.php [L]\n</IfModule>\n# END WordPress\n";
const STYLE: &str = "wp-content/themes/twentytwentyfour/style.css";
const DEEP_DIRS: [&str; 6] = ["", "a/", "a/b/", "a/b/c/", "a/b/c/d/", "a/b/c/d/e/"];

fn redirect_map(n: usize) -> String {
    let mut s = format!("# {n}-line redirect map\nRewriteEngine On\n");
    for i in 1..=n {
        s.push_str(&format!(
            "RewriteRule ^old-page-{i}/?$ /new-page-{i} [R=301,L]\n"
        ));
    }
    s
}

fn deep_htaccess(d: &str) -> String {
    format!(
        "# /{d}.htaccess\nOptions -Indexes\nRewriteEngine On\nRewriteRule ^legacy\\.html$ /{d}file.html [R=301,L]\n"
    )
}

/// A document root in a temporary folder, and its site.
struct Fixture {
    _dir: tempfile::TempDir,
    site: Site,
}

fn fixture(files: &[(String, Vec<u8>)]) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    for (rel, data) in files {
        let path = dir.path().join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(&path, data).expect("write");
    }
    let mut site = Site::new(dir.path(), vec!["www.example.com".into()]);
    warm(&mut site);
    Fixture { _dir: dir, site }
}

/// Filesystem results never expire: after the first request every stat is
/// a memory look-up (the benches measure the engine, not the disk).
fn warm(site: &mut Site) {
    site.stats =
        htgate_engine::stat_cache::StatCache::new(htgate_engine::stat_cache::StatPolicy::forever());
    site.cache.set_recheck(std::time::Duration::from_secs(3600));
}

fn f(rel: &str, data: &str) -> (String, Vec<u8>) {
    (rel.to_string(), data.as_bytes().to_vec())
}

struct Scenario {
    group: &'static str,
    name: &'static str,
    target: &'static str,
    tls: bool,
}

/// (fixture, scenarios run against it)
fn scenarios() -> Vec<(Fixture, Vec<Scenario>)> {
    let sc = |group, name, target| Scenario {
        group,
        name,
        target,
        tls: false,
    };
    let drupal = std::fs::read(shared("corpus/htaccess/drupal.htaccess"))
        .expect("../shared/corpus/htaccess/drupal.htaccess");
    let mut deep = Vec::new();
    for d in DEEP_DIRS {
        deep.push(f(&format!("{d}.htaccess"), &deep_htaccess(d)));
        deep.push(f(&format!("{d}file.html"), &format!("/{d}file.html\n")));
    }
    vec![
        (
            fixture(&[
                f(".htaccess", FORCE_HTTPS),
                f("index.html", "/index.html\n"),
            ]),
            vec![
                sc("force-https", "http -> 301", "/"),
                Scenario {
                    group: "force-https",
                    name: "https (no match)",
                    target: "/",
                    tls: true,
                },
            ],
        ),
        (
            fixture(&[
                f(".htaccess", WORDPRESS),
                f("index.php", "/index.php\n"),
                f(STYLE, "body{}\n"),
            ]),
            vec![
                sc(
                    "wordpress",
                    "file exists (static)",
                    "/wp-content/themes/twentytwentyfour/style.css",
                ),
                sc("wordpress", "no file (permalink)", "/2024/05/hello-world/"),
            ],
        ),
        (
            fixture(&[
                (".htaccess".to_string(), drupal),
                f("index.php", "/index.php\n"),
                f("core/misc/drupal.js", "/core/misc/drupal.js\n"),
            ]),
            vec![
                sc("drupal", "file exists (static)", "/core/misc/drupal.js"),
                sc("drupal", "no file (clean URL)", "/node/42"),
            ],
        ),
        (
            fixture(&[
                f(".htaccess", &redirect_map(2000)),
                f("index.html", "/index.html\n"),
                f("about.html", "/about.html\n"),
            ]),
            vec![
                sc("map-2000", "first rule", "/old-page-1"),
                sc("map-2000", "last rule", "/old-page-2000"),
                sc("map-2000", "no match", "/about.html"),
            ],
        ),
        (
            fixture(&[
                f(".htaccess", &redirect_map(10)),
                f("index.html", "/index.html\n"),
                f("about.html", "/about.html\n"),
            ]),
            vec![
                sc("map-10", "first rule", "/old-page-1"),
                sc("map-10", "last rule", "/old-page-10"),
                sc("map-10", "no match", "/about.html"),
            ],
        ),
        (
            fixture(&deep),
            vec![sc("deep-6", "static at level 6", "/a/b/c/d/e/file.html")],
        ),
    ]
}

fn conn(tls: bool) -> ConnInfo {
    ConnInfo {
        remote: "127.0.0.1:50000".parse().expect("addr"),
        local: if tls {
            "127.0.0.1:443".parse().expect("addr")
        } else {
            "127.0.0.1:80".parse().expect("addr")
        },
        tls,
        sni: None,
        trusted_proxy: false,
        proxied_https: false,
    }
}

fn head(target: &str) -> RequestHead {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::HOST,
        http::HeaderValue::from_static("www.example.com"),
    );
    RequestHead {
        method: http::Method::GET,
        target: target.to_string(),
        protocol: "HTTP/1.1".into(),
        headers,
        authority: None,
    }
}

fn status(o: &Outcome) -> u16 {
    match o {
        Outcome::File { status, .. } | Outcome::Plain { status, .. } => *status,
        // PHP, or an answer wrapped for an output filter
        _ => 0,
    }
}

/// The rewrite phase alone.  The request is walked once; each iteration
/// gets a fresh copy of it (not timed) and runs mod_rewrite's fixup.
fn rules(c: &mut Criterion) {
    let all = scenarios();
    let mut g = c.benchmark_group("rules");
    for (fx, list) in &all {
        for s in list {
            let mut main = Main::for_bench(&fx.site, s.tls);
            let mut r = Req::new(&fx.site, s.target).expect("target parses");
            main.directory_walk(&mut r).expect("walk");
            // once untimed: fills the stat cache, checks it runs
            let _ = main.rewrite_phase(&mut r.clone());
            g.bench_function(format!("{}: {}", s.group, s.name), |b| {
                b.iter_batched_ref(
                    || r.clone(),
                    |r| std::hint::black_box(main.rewrite_phase(r)),
                    BatchSize::SmallInput,
                )
            });
        }
    }
    g.finish();
}

/// Whole requests through the engine.
fn request(c: &mut Criterion) {
    let all = scenarios();
    let mut g = c.benchmark_group("request");
    for (fx, list) in &all {
        for s in list {
            let head = head(s.target);
            let conn = conn(s.tls);
            // a real answer, and the caches warm
            let st = status(&run(&fx.site, &head, &conn));
            assert!(
                matches!(st, 0 | 200 | 301),
                "{} {}: status {st}",
                s.group,
                s.name
            );
            g.bench_function(format!("{}: {}", s.group, s.name), |b| {
                b.iter(|| std::hint::black_box(run(&fx.site, &head, &conn)))
            });
        }
    }
    g.finish();
}

/// Instruction counting: `HTGATE_BENCH_ITERS=N` runs each scenario whose
/// name contains `HTGATE_BENCH_FILTER` N times instead of the criterion
/// benches, for `valgrind --tool=callgrind` (run it with N and 2N: the
/// difference divided by N is one iteration, setup excluded; the machine's
/// load does not change the count).  Modes: `rules` (the rule phase),
/// `request` (a whole request off the workers), `inline` (a whole request
/// as a worker runs it).  `rules` iterations include copying
/// the walked request (`clone` mode gives that alone).
fn count(iters: usize, filter: &str) {
    let mode = std::env::var("HTGATE_BENCH_MODE").unwrap_or_else(|_| "rules".into());
    for (fx, list) in &scenarios() {
        for s in list {
            let name = format!("{}: {}", s.group, s.name);
            if !name.contains(filter) {
                continue;
            }
            match mode.as_str() {
                "request" => {
                    let head = head(s.target);
                    let conn = conn(s.tls);
                    let _ = run(&fx.site, &head, &conn);
                    for _ in 0..iters {
                        std::hint::black_box(run(&fx.site, &head, &conn));
                    }
                }
                // as the server runs it: on a worker, with the time slice
                "inline" => {
                    let head = head(s.target);
                    let conn = conn(s.tls);
                    let _ = run(&fx.site, &head, &conn);
                    for _ in 0..iters {
                        std::hint::black_box(run_inline(&fx.site, &head, &conn));
                    }
                }
                _ => {
                    let mut main = Main::for_bench(&fx.site, s.tls);
                    let mut r = Req::new(&fx.site, s.target).expect("target parses");
                    main.directory_walk(&mut r).expect("walk");
                    let _ = main.rewrite_phase(&mut r.clone());
                    for _ in 0..iters {
                        let mut x = r.clone();
                        if mode == "clone" {
                            std::hint::black_box(&mut x);
                        } else {
                            let _ = std::hint::black_box(main.rewrite_phase(&mut x));
                        }
                    }
                }
            }
            println!("{mode} {name}: {iters} iterations");
        }
    }
}

criterion_group!(benches, parse_compile, rules, request);

fn main() {
    if let Some(n) = std::env::var("HTGATE_BENCH_ITERS")
        .ok()
        .and_then(|n| n.parse().ok())
    {
        count(n, &std::env::var("HTGATE_BENCH_FILTER").unwrap_or_default());
        return;
    }
    benches();
    Criterion::default().configure_from_args().final_summary();
}

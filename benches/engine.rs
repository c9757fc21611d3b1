//! Criterion benches by stage: parse + compile of every corpus file, and one
//! whole request through the engine (directory walk with stat calls,
//! `.htaccess` cache look-ups, rewriting, response decision) for WordPress's
//! rules.  The load harness in ../shared/bench measures the server as a
//! whole.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use htgate::engine::compile::compile_source;
use htgate::engine::respond::{run, Outcome, RequestHead};
use htgate::engine::site::Site;
use htgate::server::ConnInfo;
use std::path::Path;

fn corpus() -> Vec<(String, Vec<u8>)> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/htaccess");
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
    let total: usize = files.iter().map(|(_, b)| b.len()).sum();
    let mut g = c.benchmark_group("compile");
    g.throughput(Throughput::Bytes(total as u64));
    g.bench_function("corpus (all files)", |b| {
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

const WORDPRESS: &str = "RewriteEngine On\nRewriteRule .* - [E=HTTP_AUTHORIZATION:%{HTTP:Authorization}]\nRewriteBase /\nRewriteRule ^index\\.php$ - [L]\nRewriteCond %{REQUEST_FILENAME} !-f\nRewriteCond %{REQUEST_FILENAME} !-d\nRewriteRule . /index.php [L]\n";

fn request(c: &mut Criterion) {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = dir.path();
    std::fs::write(root.join(".htaccess"), WORDPRESS).expect("write");
    std::fs::write(root.join("index.php"), "<?php\n").expect("write");
    std::fs::create_dir_all(root.join("wp-content")).expect("mkdir");
    std::fs::write(root.join("wp-content/style.css"), "body{}\n").expect("write");
    let site = Site::new(root, vec!["www.example.com".into()]);
    let conn = ConnInfo {
        remote: "127.0.0.1:50000".parse().expect("addr"),
        local: "127.0.0.1:80".parse().expect("addr"),
        tls: false,
        sni: None,
        trusted_proxy: false,
    };
    let mut g = c.benchmark_group("request");
    for (label, target) in [
        (
            "wordpress permalink -> index.php",
            "/2024/01/hello-world/?replytocom=5",
        ),
        ("wordpress static file", "/wp-content/style.css"),
    ] {
        let mut headers = http::HeaderMap::new();
        headers.insert(
            http::header::HOST,
            http::HeaderValue::from_static("www.example.com"),
        );
        let head = RequestHead {
            method: http::Method::GET,
            target: target.to_string(),
            protocol: "HTTP/1.1".into(),
            headers,
            authority: None,
        };
        // sanity: the bench measures a real answer
        assert!(matches!(run(&site, &head, &conn), Outcome::File { .. }));
        g.bench_function(label, |b| {
            b.iter(|| std::hint::black_box(run(&site, &head, &conn)))
        });
    }
    g.finish();
}

criterion_group!(benches, parse_compile, request);
criterion_main!(benches);

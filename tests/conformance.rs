//! The conformance suite: every recorded case in `fixtures/conformance`
//! run against htgate in this process, through `htgate-conformance`'s
//! runner (the one `htgate conformance` uses), and the runner's own tests
//! against a fake server.
//!
//! Run: `cargo test --test tests conformance -- --nocapture`.
//! Environment:
//! - `HTGATE_CASE=name[,name...]`: only cases whose file stem contains one of
//!   the names;
//! - `HTGATE_CONFORMANCE_JOBS=N`: cases run at once (default 2);
//! - `HTGATE_CONFORMANCE_BUDGET=SECONDS`: time for the whole run (default
//!   600); requests not sent by then fail;
//! - `HTGATE_CONFORMANCE_JSON=FILE`: per-request results as JSON (as the
//!   oracle's `--json`);
//! - `HTGATE_KEEP=1`: keep the work directories (site trees, certificates).

#[path = "support/fake_server.rs"]
mod fake_server;

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use htgate_conformance::case::parse_case_bytes;
use htgate_conformance::{
    check_runnable, load_cases, make_base, run_all, run_case, Client, InProcess, Report, RunOptions,
};

/// The cases shipped with the crate.
fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/conformance")
}

fn env_number(name: &str, default: u64) -> u64 {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse()
            .unwrap_or_else(|_| panic!("{name}={v:?}: expected a number")),
        Err(_) => default,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn recorded_cases() {
    let filter: Vec<String> = std::env::var("HTGATE_CASE")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect();
    let jobs = env_number("HTGATE_CONFORMANCE_JOBS", 2).max(1) as usize;
    let budget = Duration::from_secs(env_number("HTGATE_CONFORMANCE_BUDGET", 600));

    let (cases, mut errors) = load_cases(&[fixtures_dir()], &filter);
    assert!(
        !cases.is_empty() || !errors.is_empty(),
        "no case matched HTGATE_CASE={filter:?} in {}",
        fixtures_dir().display()
    );
    let runnable = htgate_conformance::runnable(cases, &mut errors);
    for e in &errors {
        println!("error: {e}");
    }

    let base = make_base().expect("temporary folder");
    let base_path = fs::canonicalize(base.path()).expect("canonical temp dir");
    let opts = RunOptions {
        jobs,
        deadline: Instant::now() + budget,
        logs: false,
    };
    let runs = run_all(&runnable, &base_path, &InProcess, &opts, |_, _| {}).await;
    let r = Report::new(&runnable, &runs);
    for line in &r.lines {
        println!("{line}");
    }
    if let Ok(path) = std::env::var("HTGATE_CONFORMANCE_JSON") {
        let text = serde_json::to_string_pretty(&r.json(&errors)).expect("JSON") + "\n";
        fs::write(&path, text).unwrap_or_else(|e| panic!("cannot write {path}: {e}"));
    }
    if std::env::var_os("HTGATE_KEEP").is_some() {
        println!("work dirs kept under {}", base.keep().display());
    }
    if !errors.is_empty() {
        println!("{} case file(s) could not be checked", errors.len());
    }
    if let Some(first) = r.failing_cases.first() {
        println!("failing cases: {}", r.failing_cases.join(","));
        println!(
            "rerun one case: HTGATE_CASE={first} cargo test --test tests \
             conformance::recorded_cases -- --nocapture"
        );
    }
    println!("conformance: {}", r.pass_line());
    assert!(
        r.failed == 0 && errors.is_empty(),
        "conformance: {} of {} requests failed, {} case file(s) unusable (details above)",
        r.failed,
        r.passed + r.failed,
        errors.len()
    );
}

/// Every shipped case parses and can be checked (no server needed).
#[test]
fn fixtures_parse() {
    let (cases, errors) = load_cases(&[fixtures_dir()], &[]);
    assert!(errors.is_empty(), "unparsable cases: {errors:#?}");
    assert!(cases.len() >= 50, "only {} cases found", cases.len());
    let bad: Vec<String> = cases
        .iter()
        .filter_map(|c| check_runnable(c).err())
        .collect();
    assert!(bad.is_empty(), "cases that cannot be checked: {bad:#?}");
    for c in &cases {
        for f in &c.files {
            if f.generated {
                assert_eq!(f.content, format!("/{}\n", f.path).into_bytes());
            }
        }
    }
}

/// The runner end to end, against the fake server: site tree, certificate
/// files, plain and TLS requests, normalisation, comparison and the report
/// (one deliberately wrong expectation, one server that cannot start).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn runner_end_to_end_with_a_fake_server() {
    let text = r#"A case for the fake server.
-- site/index.html --
-- site/t.html --
-- site/a b.txt --
hello
-- requests --
GET http://www.example.com/
GET https://www.example.com/t.html?x=%20
HEAD http://www.example.com/t.html
GET http://www.example.com/go
GET https://www.example.com/a%20b.txt
GET http://www.example.com/missing
GET http://www.example.com/missing#wrong-on-purpose
-- expect --
{"headers":{"content-type":"text/html"},"served":"/index.html","status":200,"uri":"/index.html"}
{"headers":{"content-type":"text/html"},"query":"x=%20","served":"/t.html","status":200,"uri":"/t.html"}
{"headers":{"content-type":"text/html"},"status":200,"uri":"/t.html"}
{"headers":{"set-cookie":"k=v; expires={date+3600s}; path=/"},"location":"http://www.example.com/t.html","status":302}
{"served":"/a b.txt","status":200,"uri":"/a b.txt"}
{"headers":{"content-type":"text/html"},"status":404}
{"served":"/t.html","status":200}
"#;
    let c = parse_case_bytes(text.as_bytes(), "fake.case", "fake").expect("parses");
    check_runnable(&c).expect("runnable");
    let base = make_base().expect("base");
    let base_path = fs::canonicalize(base.path()).expect("canonical");
    let client = Client::new();
    let opts = RunOptions {
        jobs: 1,
        deadline: Instant::now() + Duration::from_secs(120),
        logs: false,
    };
    let good = fake_server::FakeStarter { fail: false };
    let run = run_case(&c, 0, &base_path, &client, &good, &opts).await;
    assert_eq!(run.error, None);
    let bad = fake_server::FakeStarter { fail: true };
    let broken = run_case(&c, 1, &base_path, &client, &bad, &opts).await;
    assert_eq!(
        broken.error.as_deref(),
        Some("the server failed to start: no luck")
    );

    let r = Report::new(&[c.clone(), c], &[run, broken]);
    assert_eq!((r.passed, r.failed), (6, 8), "{:#?}", r.lines);
    assert_eq!(
        r.lines,
        vec![
            "FAIL fake.case:13: GET http://www.example.com/missing#wrong-on-purpose",
            "    status                expected 200, got 404",
            "    served                expected \"/t.html\", got (absent)",
            "    headers.content-type  expected (absent), got \"text/html\"",
            "ERROR fake.case: the server failed to start: no luck",
        ]
    );
    assert_eq!(r.failing_cases, vec!["fake", "fake"]);
    assert_eq!(r.entries.len(), 14);
}

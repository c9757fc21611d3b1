//! In-process conformance runner: does what `oracle check --server` does
//! (`/work/shared/conformance/oracle`, functions `run_case`, `Workdir`,
//! `make_cert`, `send_request`, `summarize`, `compare`, `cmd_check`), with
//! htgate started in this process through `htgate_hosting::quick::start`,
//! against every recorded case in `fixtures/conformance/*.case`.
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

#[path = "support/case.rs"]
mod case;
#[path = "support/client.rs"]
mod client;
#[path = "support/fake_server.rs"]
mod fake_server;
#[path = "support/pycompat.rs"]
mod pycompat;
#[path = "support/record.rs"]
mod record;

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use futures_util::{FutureExt, StreamExt};
use htgate_hosting::quick::{start, QuickOptions, RunningServer};
use regex::Regex;
use serde_json::{json, Value};

use case::{cached, case_hosts, ip_re, parse_case_file, request_hosts, Case};
use client::Client;
use record::{compare, fmt_val, summarize, RunEnv};

/// The oracle's `START_TIMEOUT`: time for the server to come up.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// The oracle's `STOP_TIMEOUT`: time for the server to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The cases shipped with the crate.
fn fixtures_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/conformance")
}

/// The oracle's `load_cases` over the fixtures folder (sorted by file
/// name), limited by `HTGATE_CASE`.  Returns the cases and the messages of
/// the files that did not parse.
fn load_cases(dir: &Path, filter: Option<&str>) -> (Vec<Case>, Vec<String>) {
    let names: Vec<String> = filter
        .map(|f| {
            f.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(String::from)
                .collect()
        })
        .unwrap_or_default();
    let mut files: Vec<PathBuf> = fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "case"))
        .collect();
    files.sort();
    let (mut cases, mut errors) = (Vec::new(), Vec::new());
    for p in files {
        let stem = p
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !names.is_empty() && !names.iter().any(|n| stem.contains(n.as_str())) {
            continue;
        }
        let display = format!(
            "fixtures/conformance/{}",
            p.file_name()
                .map(|s| s.to_string_lossy())
                .unwrap_or_default()
        );
        match parse_case_file(&p, &display) {
            Ok(c) => cases.push(c),
            Err(e) => errors.push(e.0),
        }
    }
    (cases, errors)
}

/// The oracle's `cmd_check` pre-flight: a case can be checked only with a
/// parsable expect section holding one line per request.
fn check_runnable(c: &Case) -> Result<(), String> {
    if let Some(e) = &c.expect_error {
        return Err(e.clone());
    }
    let Some(expect) = &c.expect else {
        return Err(format!(
            "{}: no '-- expect --' section; run 'oracle record' first",
            c.display
        ));
    };
    if expect.len() != c.requests.len() {
        return Err(format!(
            "{}:{}: expect has {} lines but requests has {}; re-record",
            c.display,
            c.expect_line.unwrap_or(0),
            expect.len(),
            c.requests.len()
        ));
    }
    Ok(())
}

/// One case's site tree and certificate (the oracle's `Workdir`).
struct Workdir {
    root: PathBuf,
    cert: PathBuf,
    key: PathBuf,
}

fn mkdir_755(p: &Path) -> std::io::Result<()> {
    fs::create_dir(p)?;
    fs::set_permissions(p, fs::Permissions::from_mode(0o755))
}

/// The oracle's `Workdir.__init__`: `BASE/caseNNN-NAME/site` with the
/// directories (sorted), then the files (sorted, mode 644), then the
/// certificate beside `site/`.
fn build_workdir(base: &Path, c: &Case, index: usize) -> Result<Workdir, String> {
    let io = |e: std::io::Error| format!("{:?}: {e}", e.kind());
    let file_name = format!("{}.case", c.stem);
    let clean: String = file_name
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' {
                ch
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let dir = base.join(format!("case{index:03}-{clean}"));
    mkdir_755(&dir).map_err(io)?;
    let root = dir.join("site");
    mkdir_755(&root).map_err(io)?;
    let mkdirs = |rel: &str| -> std::io::Result<()> {
        let mut cur = root.clone();
        for part in rel.split('/') {
            cur.push(part);
            if !cur.is_dir() {
                mkdir_755(&cur)?;
            }
        }
        Ok(())
    };
    let mut dirs = c.dirs.clone();
    dirs.sort();
    for d in &dirs {
        mkdirs(d).map_err(io)?;
    }
    let mut files: Vec<_> = c.files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for f in files {
        if let Some((parent, _)) = f.path.rsplit_once('/') {
            mkdirs(parent).map_err(io)?;
        }
        let p = root.join(&f.path);
        fs::write(&p, &f.content).map_err(io)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).map_err(io)?;
    }
    let (cert, key) = make_cert(&dir, c)?;
    Ok(Workdir { root, cert, key })
}

/// The oracle's `make_cert`, with rcgen instead of openssl: a self-signed
/// P-256 certificate, CN=localhost, CA:FALSE, whose subjectAltName holds
/// 127.0.0.1 and every host of the case (IP literals as IP entries).
fn make_cert(dir: &Path, c: &Case) -> Result<(PathBuf, PathBuf), String> {
    static DNS_OK: OnceLock<Regex> = OnceLock::new();
    let dns_ok = cached(&DNS_OK, r"^[a-z0-9*_.-]+$");
    let fail = |e: &dyn std::fmt::Display| format!("cannot make a certificate: {e}");
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "localhost");
    params.distinguished_name = dn;
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.subject_alt_names = vec![rcgen::SanType::IpAddress([127, 0, 0, 1].into())];
    for h in case_hosts(c) {
        if ip_re().is_match(&h) {
            // openssl rejects an "IP:" entry that is not an address.
            let ip = h.trim_matches(['[', ']']).parse().map_err(|e| fail(&e))?;
            params.subject_alt_names.push(rcgen::SanType::IpAddress(ip));
        } else if dns_ok.is_match(&h) {
            let name = h.clone().try_into().map_err(|e| fail(&e))?;
            params.subject_alt_names.push(rcgen::SanType::DnsName(name));
        }
    }
    let key = rcgen::KeyPair::generate().map_err(|e| fail(&e))?;
    let cert = params.self_signed(&key).map_err(|e| fail(&e))?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    let write = |p: &Path, s: String| {
        fs::write(p, s)
            .and_then(|_| fs::set_permissions(p, fs::Permissions::from_mode(0o644)))
            .map_err(|e| fail(&e))
    };
    write(&cert_path, cert.pem())?;
    write(&key_path, key.serialize_pem())?;
    Ok((cert_path, key_path))
}

/// The outcome of one case (the oracle's `CaseResult`).
struct CaseRun {
    /// One record a request sent, with why there was no answer, if so.
    results: Vec<(Value, Option<String>)>,
    /// Why the case could not be run (server did not start...).
    error: Option<String>,
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// What the runner needs of a started server: its two ports and a way to
/// stop it.  Implemented by htgate's `RunningServer`, and by the fake
/// server of the runner's own end-to-end test.
trait TestServer {
    fn ports(&self) -> (u16, u16);
    async fn stop(self);
}

impl TestServer for RunningServer {
    fn ports(&self) -> (u16, u16) {
        (self.http_addr.port(), self.https_addr.port())
    }

    async fn stop(self) {
        self.shutdown().await
    }
}

/// The quick-mode options for one case: ephemeral loopback ports, the
/// case's certificate, its hosts as ServerName/ServerAliases (the oracle's
/// `{hosts}`, `localhost` when none fits), debug headers on, client HTTPS
/// headers passed as ordinary headers (as Apache does).
fn quick_options(c: &Case, wd: &Workdir) -> QuickOptions {
    let mut names = request_hosts(c);
    if names.is_empty() {
        names.push("localhost".to_string());
    }
    QuickOptions {
        root: wd.root.clone(),
        http: "127.0.0.1:0".parse().expect("address"),
        https: "127.0.0.1:0".parse().expect("address"),
        cert: Some(wd.cert.clone()),
        key: Some(wd.key.clone()),
        server_names: names,
        debug_headers: true,
        pass_client_https_headers: true,
        php_fpm: None,
        mime_types: Some("reference".into()),
        php: Default::default(),
    }
}

/// The oracle's `run_case`, with the server started in-process by
/// `start_server`: build the site, start the server, send every request in
/// order, stop the server.
async fn run_case<S, F, Fut>(
    c: &Case,
    index: usize,
    base: &Path,
    client: &Client,
    deadline: Instant,
    start_server: &F,
) -> CaseRun
where
    S: TestServer,
    F: Fn(QuickOptions) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<S>>,
{
    let mut run = CaseRun {
        results: Vec::new(),
        error: None,
    };
    let wd = match build_workdir(base, c, index) {
        Ok(wd) => wd,
        Err(e) => {
            run.error = Some(e);
            return run;
        }
    };
    // A panic while starting counts as a failure to start, not as the end
    // of the whole run.
    let started = tokio::time::timeout(
        START_TIMEOUT,
        AssertUnwindSafe(start_server(quick_options(c, &wd))).catch_unwind(),
    )
    .await;
    let server = match started {
        Err(_) => {
            run.error = Some(format!(
                "the server did not start within {} s",
                START_TIMEOUT.as_secs()
            ));
            return run;
        }
        Ok(Err(panic)) => {
            let msg = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "(no message)".into());
            run.error = Some(format!("the server panicked while starting: {msg}"));
            return run;
        }
        Ok(Ok(Err(e))) => {
            run.error = Some(format!("the server failed to start: {e:#}"));
            return run;
        }
        Ok(Ok(Ok(s))) => s,
    };
    let (http_port, https_port) = server.ports();
    let env = RunEnv {
        root: wd.root.to_string_lossy().into_owned(),
        http_port,
        https_port,
    };
    for req in &c.requests {
        if Instant::now() > deadline {
            run.error = Some(
                "time budget exhausted (HTGATE_CONFORMANCE_BUDGET) before this case finished"
                    .into(),
            );
            break;
        }
        let resp = client.send(req, http_port, https_port).await;
        let rec = summarize(&resp, c, &env, now_secs());
        let transport = if resp.status == 0 {
            resp.error.clone()
        } else {
            None
        };
        run.results.push((rec, transport));
    }
    if tokio::time::timeout(STOP_TIMEOUT, server.stop())
        .await
        .is_err()
    {
        // As the oracle: a server that does not stop fails its case.
        let prev = run.error.take().map(|e| e + "\n").unwrap_or_default();
        run.error = Some(format!(
            "{prev}stopping failed: shutdown did not finish within {} s",
            STOP_TIMEOUT.as_secs()
        ));
    }
    run
}

/// The oracle's `cmd_check` report over the cases that ran.
#[derive(Default)]
struct Report {
    passed: usize,
    failed: usize,
    /// What to print: a FAIL block per failing request, an ERROR line per
    /// case that could not run (all its requests count as failed).
    lines: Vec<String>,
    /// Stems of the cases with a failure, for HTGATE_CASE.
    failing_cases: Vec<String>,
    /// Per-request results, as the oracle's `--json` writes them.
    entries: Vec<Value>,
}

fn make_report(cases: &[Case], runs: &[CaseRun]) -> Report {
    let mut r = Report::default();
    for (c, run) in cases.iter().zip(runs) {
        let expect = c.expect.as_deref().unwrap_or_default();
        let before = r.failed;
        if let Some(err) = &run.error {
            r.lines.push(format!("ERROR {}: {}", c.display, err));
            for (req, (_, exp)) in c.requests.iter().zip(expect) {
                r.failed += 1;
                r.entries.push(
                    json!({"case": c.display, "line": req.line, "request": req.text,
                    "pass": false, "expected": exp, "got": null, "error": err}),
                );
            }
        } else {
            for ((req, (_, exp)), (got, terr)) in c.requests.iter().zip(expect).zip(&run.results) {
                let diffs = compare(exp, got);
                let mut entry = json!({"case": c.display, "line": req.line, "request": req.text,
                    "pass": diffs.is_empty(), "expected": exp, "got": got});
                if let Some(t) = terr {
                    entry["error"] = json!(t);
                }
                if diffs.is_empty() {
                    r.passed += 1;
                } else {
                    r.failed += 1;
                    let no_answer = terr
                        .as_ref()
                        .map(|t| format!("  (no answer: {t})"))
                        .unwrap_or_default();
                    r.lines.push(format!(
                        "FAIL {}:{}: {}{}",
                        c.display, req.line, req.text, no_answer
                    ));
                    let w = diffs
                        .iter()
                        .map(|(f, _, _)| f.chars().count())
                        .max()
                        .unwrap_or(0);
                    for (f, e, g) in &diffs {
                        r.lines.push(format!(
                            "    {f:<w$}  expected {}, got {}",
                            fmt_val(e.as_ref()),
                            fmt_val(g.as_ref())
                        ));
                    }
                    entry["diffs"] = Value::Array(
                        diffs
                            .iter()
                            .map(|(f, e, g)| json!({"field": f, "expected": e, "got": g}))
                            .collect(),
                    );
                }
                r.entries.push(entry);
            }
        }
        if r.failed > before {
            r.failing_cases.push(c.stem.clone());
        }
    }
    r
}

/// The work directories' parent: a real path (so that `{root}` replacement
/// matches what the server reports) made only of characters that need no
/// escaping, as the oracle's `run_all` ensures.
fn make_base() -> tempfile::TempDir {
    static SAFE: OnceLock<Regex> = OnceLock::new();
    let safe = cached(&SAFE, r"^[A-Za-z0-9_./+-]+$");
    let mk = |dir: Option<&Path>| {
        let mut b = tempfile::Builder::new();
        b.prefix("htgate-conformance-");
        match dir {
            Some(d) => b.tempdir_in(d),
            None => b.tempdir(),
        }
        .expect("temporary directory")
    };
    let mut base = mk(None);
    let real = fs::canonicalize(base.path()).expect("canonical temp dir");
    if !safe.is_match(&real.to_string_lossy()) {
        base = mk(Some(Path::new("/tmp")));
    }
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755)).expect("chmod");
    base
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
    let filter = std::env::var("HTGATE_CASE")
        .ok()
        .filter(|s| !s.trim().is_empty());
    let jobs = env_number("HTGATE_CONFORMANCE_JOBS", 2).max(1) as usize;
    let budget = Duration::from_secs(env_number("HTGATE_CONFORMANCE_BUDGET", 600));
    let deadline = Instant::now() + budget;

    let (cases, mut errors) = load_cases(&fixtures_dir(), filter.as_deref());
    if cases.is_empty() && errors.is_empty() {
        panic!(
            "no case matched HTGATE_CASE={:?} in {}",
            filter.unwrap_or_default(),
            fixtures_dir().display()
        );
    }
    let mut runnable = Vec::new();
    for c in cases {
        match check_runnable(&c) {
            Ok(()) => runnable.push(c),
            Err(e) => errors.push(e),
        }
    }
    for e in &errors {
        println!("error: {e}");
    }

    let base = make_base();
    let base_path = fs::canonicalize(base.path()).expect("canonical temp dir");
    let client = Client::new();
    let runs: Vec<CaseRun> = futures_util::stream::iter(runnable.iter().enumerate())
        .map(|(i, c)| run_case(c, i, &base_path, &client, deadline, &start))
        .buffered(jobs)
        .collect()
        .await;

    let r = make_report(&runnable, &runs);
    for line in &r.lines {
        println!("{line}");
    }
    if let Ok(path) = std::env::var("HTGATE_CONFORMANCE_JSON") {
        let doc = json!({"passed": r.passed, "failed": r.failed, "case_errors": errors,
            "results": r.entries});
        let text = serde_json::to_string_pretty(&doc).expect("JSON") + "\n";
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
    println!("conformance: {} passed, {} failed", r.passed, r.failed);
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
    let (cases, errors) = load_cases(&fixtures_dir(), None);
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

#[test]
fn workdir_holds_the_site_and_a_certificate() {
    let text = "x\n-- site/.htaccess --\n# nothing\n-- site/a/b.html --\n-- site/empty/ --\n\
                -- requests --\nGET http://Www.Example.com/\nGET https://127.0.0.1/\n";
    let c = case::parse_case_bytes(text.as_bytes(), "w.case", "w.x").expect("parses");
    let base = tempfile::tempdir().expect("tempdir");
    let wd = build_workdir(base.path(), &c, 7).expect("workdir");
    assert_eq!(wd.root, base.path().join("case007-w_x_case/site"));
    assert_eq!(
        fs::read(wd.root.join(".htaccess")).expect("read"),
        b"# nothing\n"
    );
    assert_eq!(
        fs::read(wd.root.join("a/b.html")).expect("read"),
        b"/a/b.html\n"
    );
    assert!(wd.root.join("empty").is_dir());
    let mode = fs::metadata(wd.root.join("a/b.html"))
        .expect("meta")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o644);
    let pem = fs::read_to_string(&wd.cert).expect("cert");
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(fs::read_to_string(&wd.key)
        .expect("key")
        .contains("PRIVATE KEY"));
    assert_eq!(
        case_hosts(&c),
        vec!["127.0.0.1", "localhost", "www.example.com"]
    );
    assert_eq!(request_hosts(&c), vec!["www.example.com", "127.0.0.1"]);
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
    let c = case::parse_case_bytes(text.as_bytes(), "fake.case", "fake").expect("parses");
    check_runnable(&c).expect("runnable");
    let base = make_base();
    let base_path = fs::canonicalize(base.path()).expect("canonical");
    let client = Client::new();
    let far = Instant::now() + Duration::from_secs(120);
    let run = run_case(&c, 0, &base_path, &client, far, &fake_server::start).await;
    assert_eq!(run.error, None);
    let failing_start =
        |_: QuickOptions| async { Err::<fake_server::FakeServer, _>(anyhow::anyhow!("no luck")) };
    let broken = run_case(&c, 1, &base_path, &client, far, &failing_start).await;
    assert_eq!(
        broken.error.as_deref(),
        Some("the server failed to start: no luck")
    );

    let r = make_report(&[c.clone(), c], &[run, broken]);
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

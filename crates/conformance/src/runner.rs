//! Running cases (the oracle's `load_cases`, `run_case`, `run_all` and
//! `cmd_check`'s pre-flight): build each case's site, start a server on
//! it, send every request in order, record what came back, stop the
//! server. `htgate conformance` and the test suite both run cases here.

use std::fs;
use std::path::{Path, PathBuf};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use futures_util::StreamExt;
use serde_json::Value;

use crate::case::{parse_case_file, Case};
use crate::client::Client;
use crate::servers::Starter;
use crate::summary::{summarize, RunEnv};
use crate::workdir;

/// The outcome of one case (the oracle's `CaseResult`).
#[derive(Debug, Default)]
pub struct CaseRun {
    /// One record per request sent, with why there was no answer, if so.
    pub results: Vec<(Value, Option<String>)>,
    /// Why the case could not be run (the server did not start…).
    pub error: Option<String>,
    /// The server's logs, `(title, text)`, when asked for.
    pub logs: Vec<(String, String)>,
    /// The case's work directory.
    pub workdir: Option<PathBuf>,
}

/// Loads `.case` files: each path a file, or a folder whose `*.case` files
/// are taken in name order (the oracle's `load_cases`). `filter` keeps the
/// cases whose file stem contains one of its names. Returns the cases and
/// the messages of the files that did not parse.
pub fn load_cases(paths: &[PathBuf], filter: &[String]) -> (Vec<Case>, Vec<String>) {
    let mut files = Vec::new();
    let mut errors = Vec::new();
    for p in paths {
        if p.is_dir() {
            match fs::read_dir(p) {
                Ok(rd) => {
                    let mut inside: Vec<PathBuf> = rd
                        .filter_map(|e| e.ok().map(|e| e.path()))
                        .filter(|p| p.extension().is_some_and(|x| x == "case"))
                        .collect();
                    inside.sort();
                    files.extend(inside);
                }
                Err(e) => errors.push(format!("{}: cannot read: {e}", p.display())),
            }
        } else {
            files.push(p.clone());
        }
    }
    if files.is_empty() && errors.is_empty() {
        errors.push("no case files given".to_string());
    }
    let mut cases = Vec::new();
    for f in files {
        let stem = f
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default();
        if !filter.is_empty() && !filter.iter().any(|n| stem.contains(n.as_str())) {
            continue;
        }
        match parse_case_file(&f, &f.display().to_string()) {
            Ok(c) => cases.push(c),
            Err(e) => errors.push(e.0),
        }
    }
    (cases, errors)
}

/// `cmd_check`'s pre-flight: a case can be checked only with a parsable
/// expect section holding one line per request.
pub fn check_runnable(c: &Case) -> Result<(), String> {
    if let Some(e) = &c.expect_error {
        return Err(e.clone());
    }
    let Some(expect) = &c.expect else {
        return Err(format!(
            "{}: no '-- expect --' section; record it first (htgate conformance record)",
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

/// The cases that can be checked; why the others cannot goes to `errors`.
pub fn runnable(cases: Vec<Case>, errors: &mut Vec<String>) -> Vec<Case> {
    let mut out = Vec::with_capacity(cases.len());
    for c in cases {
        match check_runnable(&c) {
            Ok(()) => out.push(c),
            Err(e) => errors.push(e),
        }
    }
    out
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0.0, |d| d.as_secs_f64())
}

/// How cases are run.
pub struct RunOptions {
    /// Cases at once.
    pub jobs: usize,
    /// Requests not sent by then fail their case.
    pub deadline: Instant,
    /// Keep each server's logs in the result.
    pub logs: bool,
}

/// The oracle's `run_case`: build the site, start the server, send every
/// request in order, stop the server.
pub async fn run_case(
    c: &Case,
    index: usize,
    base: &Path,
    client: &Client,
    starter: &dyn Starter,
    opts: &RunOptions,
) -> CaseRun {
    let mut run = CaseRun::default();
    let wd = match workdir::build(base, c, index) {
        Ok(wd) => wd,
        Err(e) => {
            run.error = Some(e);
            return run;
        }
    };
    run.workdir = Some(wd.dir.clone());
    let server = match starter.start(&wd).await {
        Ok(s) => s,
        Err(e) => {
            run.error = Some(e);
            return run;
        }
    };
    let (http_port, https_port) = server.ports();
    let env = RunEnv {
        root: wd.root.to_string_lossy().into_owned(),
        http_port,
        https_port,
    };
    for req in &c.requests {
        if Instant::now() > opts.deadline {
            run.error = Some("time budget exhausted before this case finished".into());
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
    let logs = server.logs();
    if let Err(e) = server.stop().await {
        // As the oracle: a server that does not stop fails its case.
        let prev = run.error.take().map(|e| e + "\n").unwrap_or_default();
        run.error = Some(format!("{prev}stopping failed: {e}"));
    }
    if opts.logs {
        for (title, path) in logs {
            let text = fs::read(&path)
                .map(|b| String::from_utf8_lossy(&b).into_owned())
                .unwrap_or_default();
            run.logs.push((title, text));
        }
    }
    run
}

/// Runs every case, `opts.jobs` at once, results in case order.
pub async fn run_all(
    cases: &[Case],
    base: &Path,
    starter: &dyn Starter,
    opts: &RunOptions,
    mut progress: impl FnMut(&Case, &CaseRun),
) -> Vec<CaseRun> {
    let client = Client::new();
    let mut runs = Vec::with_capacity(cases.len());
    let mut stream = futures_util::stream::iter(cases.iter().enumerate())
        .map(|(i, c)| {
            let client = &client;
            async move { (c, run_case(c, i, base, client, starter, opts).await) }
        })
        .buffered(opts.jobs.max(1));
    while let Some((c, run)) = stream.next().await {
        progress(c, &run);
        runs.push(run);
    }
    runs
}

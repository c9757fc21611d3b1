//! `htgate conformance`: recorded case files run against htgate in this
//! process (no Python, no Apache), any server started by a command, or a
//! local Apache; `htgate conformance record` records Apache's answers into
//! the case files. The runner is `htgate-conformance`'s, the one the test
//! suite uses.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::{Duration, Instant};

use htgate_conformance::{
    load_cases, make_base, run_all, write_expect, Apache, CommandTemplate, InProcess, Report,
    RunOptions, Starter,
};

#[derive(clap::Args, Debug)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub(super) struct ConformanceArgs {
    #[command(subcommand)]
    command: Option<ConformanceCommand>,
    #[command(flatten)]
    check: CheckArgs,
}

#[derive(clap::Subcommand, Debug)]
enum ConformanceCommand {
    /// Run every case's requests against a local Apache httpd 2.4 and
    /// write its answers into the case files' `-- expect --` sections.
    Record(RecordArgs),
}

/// What checking and recording share.
#[derive(clap::Args, Debug)]
struct Common {
    /// `.case` files, or folders holding them.
    #[arg(required = true, value_name = "CASE")]
    cases: Vec<PathBuf>,
    /// Cases run at once (default: 2 per CPU in this process or with
    /// Apache, 1 with `--server`).
    #[arg(short = 'j', long = "jobs", value_name = "N")]
    jobs: Option<usize>,
    /// Only cases whose file name contains one of these (comma-separated).
    #[arg(long, value_delimiter = ',', value_name = "NAME")]
    case: Vec<String>,
    /// Print each request's result and the servers' logs.
    #[arg(short, long)]
    verbose: bool,
    /// Keep the work folders (site trees, configs, logs) and say where.
    #[arg(long)]
    keep: bool,
    /// Time for the whole run; requests not sent by then fail.
    #[arg(long, value_name = "SECONDS", default_value_t = 3600)]
    budget: u64,
}

#[derive(clap::Args, Debug)]
struct CheckArgs {
    #[command(flatten)]
    common: Common,
    /// Check any server instead of htgate in this process: a shell command
    /// that starts it in the foreground, with the placeholders {root}
    /// {http} {https} {http_port} {https_port} {cert} {key} {hosts}.
    #[arg(long, value_name = "TEMPLATE", conflicts_with = "apache")]
    server: Option<String>,
    /// Check a local Apache against its own recording (a self-check).
    #[arg(long, value_name = "APACHE2")]
    apache: Option<PathBuf>,
    /// Apache's modules folder (with `--apache`).
    #[arg(long, value_name = "DIR", default_value = "/usr/lib/apache2/modules")]
    apache_modules: PathBuf,
    /// Write per-request results as JSON (the oracle's `--json`).
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the results as JUnit XML, for CI systems.
    #[arg(long, value_name = "FILE")]
    junit: Option<PathBuf>,
}

#[derive(clap::Args, Debug)]
struct RecordArgs {
    #[command(flatten)]
    common: Common,
    /// The Apache binary.
    #[arg(long, value_name = "APACHE2", default_value = "/usr/sbin/apache2")]
    apache: PathBuf,
    /// Apache's modules folder.
    #[arg(long, value_name = "DIR", default_value = "/usr/lib/apache2/modules")]
    apache_modules: PathBuf,
}

pub(super) fn run(args: ConformanceArgs) -> ExitCode {
    // htgate's own log lines (a case's broken `.htaccess` is an ERROR line
    // by design) only with --verbose, beside the results.
    let verbose = match &args.command {
        Some(ConformanceCommand::Record(r)) => r.common.verbose,
        None => args.check.common.verbose,
    };
    if verbose {
        super::init_tracing();
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let code = match args.command {
        Some(ConformanceCommand::Record(r)) => rt.block_on(record(r)),
        None => rt.block_on(check(args.check)),
    };
    ExitCode::from(code)
}

fn cpus() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

/// The work folders' parent: removed when dropped, unless kept (`--keep`).
struct Base {
    _removed_on_drop: Option<tempfile::TempDir>,
    path: PathBuf,
}

fn base(keep: bool) -> Result<Base, String> {
    let dir = make_base()?;
    let path = std::fs::canonicalize(dir.path()).map_err(|e| e.to_string())?;
    let dir = if keep {
        eprintln!("work dirs kept under {}", dir.keep().display());
        None
    } else {
        Some(dir)
    };
    Ok(Base {
        _removed_on_drop: dir,
        path,
    })
}

impl Common {
    /// The work folders and the run's options (`default_jobs` unless
    /// `-j` says otherwise); `None` after printing why not.
    fn prepare(&self, default_jobs: usize) -> Option<(Base, RunOptions)> {
        let base = base(self.keep).map_err(|e| eprintln!("error: {e}")).ok()?;
        let opts = RunOptions {
            jobs: self.jobs.unwrap_or(default_jobs),
            deadline: Instant::now() + Duration::from_secs(self.budget),
            logs: self.verbose,
        };
        Some((base, opts))
    }
}

fn print_logs(run: &htgate_conformance::CaseRun) {
    if let Some(dir) = &run.workdir {
        println!("  work dir: {}", dir.display());
    }
    for (title, text) in &run.logs {
        println!("  {title}:");
        for l in text.lines() {
            println!("    | {l}");
        }
    }
}

async fn check(args: CheckArgs) -> u8 {
    let common = args.common;
    let (cases, mut errors) = load_cases(&common.cases, &common.case);
    let runnable = htgate_conformance::runnable(cases, &mut errors);
    for e in &errors {
        eprintln!("error: {e}");
    }
    let starter: Box<dyn Starter> = match (&args.server, &args.apache) {
        (Some(t), _) => Box::new(CommandTemplate(t.clone())),
        (None, Some(bin)) => Box::new(Apache {
            binary: bin.clone(),
            modules: args.apache_modules.clone(),
        }),
        (None, None) => Box::new(InProcess),
    };
    let jobs = if args.server.is_some() { 1 } else { 2 * cpus() };
    let Some((base, opts)) = common.prepare(jobs) else {
        return 2;
    };
    let verbose = common.verbose;
    let runs = run_all(&runnable, &base.path, starter.as_ref(), &opts, |c, run| {
        if verbose {
            let state = match &run.error {
                Some(e) => format!("error: {e}"),
                None => format!("{} requests", run.results.len()),
            };
            println!("ran {} ({state})", c.display);
            print_logs(run);
        }
    })
    .await;
    let report = Report::new(&runnable, &runs);
    let mut out = std::io::stdout().lock();
    for line in &report.lines {
        let _ = writeln!(out, "{line}");
    }
    if let Some(path) = &args.json {
        let text = serde_json::to_string_pretty(&report.json(&errors)).unwrap_or_default() + "\n";
        if let Err(e) = std::fs::write(path, text) {
            eprintln!("error: cannot write {}: {e}", path.display());
            return 2;
        }
    }
    if let Some(path) = &args.junit {
        match report.junit(&errors) {
            Ok(xml) => {
                if let Err(e) = std::fs::write(path, xml) {
                    eprintln!("error: cannot write {}: {e}", path.display());
                    return 2;
                }
            }
            Err(e) => {
                eprintln!("error: {e}");
                return 2;
            }
        }
    }
    if !errors.is_empty() {
        let _ = writeln!(out, "{} case file(s) could not be checked", errors.len());
    }
    if !report.failing_cases.is_empty() {
        let _ = writeln!(
            out,
            "failing cases (rerun with --case): {}",
            report.failing_cases.join(",")
        );
    }
    let _ = writeln!(out, "{}", report.pass_line());
    if report.failed > 0 {
        1
    } else if !errors.is_empty() {
        2
    } else {
        0
    }
}

async fn record(args: RecordArgs) -> u8 {
    let common = args.common;
    let (cases, errors) = load_cases(&common.cases, &common.case);
    let mut failed = !errors.is_empty();
    for e in &errors {
        eprintln!("error: {e}");
    }
    let apache = Apache {
        binary: args.apache.clone(),
        modules: args.apache_modules.clone(),
    };
    if !apache.binary.exists() {
        eprintln!(
            "error: Apache not found at {} (apt-get install apache2, or give --apache PATH)",
            apache.binary.display()
        );
        return 2;
    }
    let Some((base, opts)) = common.prepare(2 * cpus()) else {
        return 2;
    };
    let runs = run_all(&cases, &base.path, &apache, &opts, |_, _| {}).await;
    let (mut nreq, mut ncases) = (0, 0);
    for (c, run) in cases.iter().zip(&runs) {
        if let Some(e) = &run.error {
            failed = true;
            eprintln!("error: {}: {e}", c.display);
            continue;
        }
        let results: Vec<serde_json::Value> = run.results.iter().map(|(v, _)| v.clone()).collect();
        if let Err(e) = write_expect(Path::new(&c.display), c, &results) {
            failed = true;
            eprintln!("error: {e}");
            continue;
        }
        nreq += results.len();
        ncases += 1;
        println!("recorded {} ({} requests)", c.display, results.len());
        for (req, (v, terr)) in c.requests.iter().zip(&run.results) {
            if let Some(t) = terr {
                eprintln!(
                    "warning: {}:{}: no HTTP answer ({t}); recorded as status 0",
                    c.display, req.line
                );
            }
            if common.verbose {
                println!("  {}\n    {v}", req.text);
            }
        }
        if common.verbose {
            print_logs(run);
        }
    }
    println!("recorded {nreq} requests in {ncases} cases");
    if failed {
        2
    } else {
        0
    }
}

//! `htgate replay`: a day of real traffic, from Apache's access logs,
//! sent to the running Apache and to an htgate serving the same document
//! roots; every difference reported per site in the terminal, as JSON and
//! as one HTML page with `htgate explain`'s account of each.

use std::io::{BufRead, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use htgate_conformance::replay::{self, parse_origin, ReplayOptions, ReplayReport, Target};

#[derive(clap::Args, Debug)]
pub(super) struct ReplayArgs {
    /// Apache access logs (`-` for standard input).
    #[arg(required = true, value_name = "LOG")]
    logs: Vec<PathBuf>,
    /// The running Apache's plain HTTP origin, e.g. `http://127.0.0.1:80`.
    #[arg(long, value_name = "URL")]
    apache: String,
    /// htgate's plain HTTP origin, serving the same document roots.
    #[arg(long, value_name = "URL")]
    htgate: String,
    /// Apache's TLS origin, for requests logged on a TLS port.
    #[arg(long, value_name = "URL")]
    apache_tls: Option<String>,
    /// htgate's TLS origin, for requests logged on a TLS port.
    #[arg(long, value_name = "URL")]
    htgate_tls: Option<String>,
    /// The logs' format: `combined`, `vhost_combined`, `common`, or a
    /// LogFormat string (`%v`, `%p`, `%r`, `%{Host}i`… are used).
    #[arg(long, value_name = "FORMAT", default_value = "vhost_combined")]
    format: String,
    /// The Host for log lines that name none (a `combined` log).
    #[arg(long, value_name = "NAME")]
    host: Option<String>,
    /// Replay this share of the requests, spread evenly over the log
    /// (0.1: one in ten).
    #[arg(long, value_name = "RATE", default_value_t = 1.0)]
    sample: f64,
    /// Replay at most this many requests.
    #[arg(long, value_name = "N")]
    max: Option<usize>,
    /// Replay the Cookie and Authorization headers a custom log format
    /// recorded (they are dropped otherwise): logged-in pages of real
    /// users are then requested again.
    #[arg(long)]
    with_credentials: bool,
    /// `%p` values that mean the request came over TLS.
    #[arg(long, value_delimiter = ',', default_value = "443")]
    tls_ports: Vec<u16>,
    /// Requests in flight at once (each goes to both servers).
    #[arg(long, value_name = "N", default_value_t = 4)]
    concurrency: usize,
    /// At most this many requests a second (each to both servers).
    #[arg(long, value_name = "PER_SECOND", default_value_t = 50.0)]
    rate: f64,
    /// htgate's config file: each difference gets `htgate explain`'s
    /// account, and PHP pages are recognised by htgate's own answer.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Write the report as JSON.
    #[arg(long, value_name = "FILE")]
    json: Option<PathBuf>,
    /// Write the report as one HTML page.
    #[arg(long, value_name = "FILE")]
    html: Option<PathBuf>,
    /// No progress line.
    #[arg(short, long)]
    quiet: bool,
}

fn target(name: &str, plain: &str, tls: Option<&str>) -> Result<Target, String> {
    let (is_tls, http) = parse_origin(plain)?;
    if is_tls {
        return Err(format!(
            "--{name}: give the plain http:// origin (--{name}-tls for TLS)"
        ));
    }
    let https = match tls {
        Some(u) => match parse_origin(u)? {
            (true, a) => Some(a),
            (false, _) => return Err(format!("--{name}-tls: give an https:// origin")),
        },
        None => None,
    };
    Ok(Target {
        name: name.to_string(),
        http: Some(http),
        https,
    })
}

fn read_lines(paths: &[PathBuf]) -> Result<Vec<String>, String> {
    let mut lines = Vec::new();
    for p in paths {
        let reader: Box<dyn BufRead> = if p.as_os_str() == "-" {
            Box::new(std::io::stdin().lock())
        } else {
            let f = std::fs::File::open(p).map_err(|e| format!("{}: {e}", p.display()))?;
            Box::new(std::io::BufReader::new(f))
        };
        for l in reader.split(b'\n') {
            let l = l.map_err(|e| format!("{}: {e}", p.display()))?;
            lines.push(
                String::from_utf8_lossy(&l)
                    .trim_end_matches('\r')
                    .to_string(),
            );
        }
    }
    Ok(lines)
}

pub(super) fn run(args: ReplayArgs) -> ExitCode {
    match replay_logs(args) {
        Ok(report) if report.differences.is_empty() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

fn replay_logs(args: ReplayArgs) -> Result<ReplayReport, String> {
    if !(args.sample > 0.0 && args.sample <= 1.0) {
        return Err("--sample: give a share in (0, 1]".into());
    }
    if args.rate.is_nan() || args.rate <= 0.0 || args.concurrency == 0 {
        return Err("--rate and --concurrency must be above 0".into());
    }
    let apache = target("apache", &args.apache, args.apache_tls.as_deref())?;
    let htgate = target("htgate", &args.htgate, args.htgate_tls.as_deref())?;
    let opts = ReplayOptions {
        format: args.format.clone(),
        sample: args.sample,
        max: args.max,
        with_credentials: args.with_credentials,
        default_host: args.host.clone(),
        tls_ports: args.tls_ports.clone(),
        concurrency: args.concurrency,
        rate: args.rate,
    };
    let lines = read_lines(&args.logs)?;
    let mut report = ReplayReport::default();
    let requests = replay::plan(&lines, &opts, &mut report)?;
    if args.with_credentials && report.credentials > 0 {
        eprintln!(
            "WARNING: --with-credentials: {} requests are replayed with the cookies or credentials their users sent",
            report.credentials
        );
    }
    let config = args.config.clone();
    let explain = move |r: &replay::Replayed| {
        config
            .as_deref()
            .and_then(|c| super::explain::for_replay(c, r))
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))?;
    let quiet = args.quiet;
    let mut last_shown = std::time::Instant::now();
    let mut progress = move |p: replay::Progress| {
        if quiet {
            return;
        }
        let now = std::time::Instant::now();
        if p.done == p.total || now.duration_since(last_shown).as_millis() >= 500 {
            last_shown = now;
            eprint!(
                "\rreplayed {}/{} requests, {} differences",
                p.done, p.total, p.differences
            );
            if p.done == p.total {
                eprintln!();
            }
        }
    };
    rt.block_on(replay::run(
        requests,
        &apache,
        &htgate,
        &opts,
        &explain,
        &mut report,
        &mut progress,
    ));
    let mut out = std::io::stdout().lock();
    let _ = write!(out, "{}", report.summary());
    if let Some(p) = &args.json {
        let text = serde_json::to_string_pretty(&report.to_json()).unwrap_or_default() + "\n";
        std::fs::write(p, text).map_err(|e| format!("cannot write {}: {e}", p.display()))?;
    }
    if let Some(p) = &args.html {
        std::fs::write(p, replay::render_html(&report))
            .map_err(|e| format!("cannot write {}: {e}", p.display()))?;
        let _ = writeln!(out, "HTML report: {}", p.display());
    }
    Ok(report)
}

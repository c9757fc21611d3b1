//! The command line: `serve` (quick mode or `--config`), `demo`, `check`,
//! `explain`, `cert`; signals (SIGHUP reload, SIGUSR1 log reopening,
//! SIGTERM/SIGINT drain) for the serving commands.

mod cert;
mod check;
mod conformance;
mod demo;
mod explain;
mod replay;
mod site;

use clap::{CommandFactory, Parser, Subcommand};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "htgate",
    version,
    about = "A web server that runs .htaccess files exactly as Apache httpd 2.4 does"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the sites of a config file (`--config htgate.toml`), or one
    /// document root (quick mode: `--root DIR`).
    #[command(after_help = SERVE_SIGNALS)]
    Serve(ServeArgs),
    /// Certificates: install an uploaded one, list and check what serves
    /// each domain.
    Cert {
        #[command(subcommand)]
        command: CertCommand,
    },
    /// Sites kept in the cluster store (`[cluster]`), served by every node.
    Site {
        #[command(subcommand)]
        command: SiteCommand,
    },
    /// Serve a built-in demo site (WordPress-style rules, forced HTTPS)
    /// from a temporary folder, with a self-signed certificate.
    Demo {
        /// Plain HTTP listen address.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// TLS listen address.
        #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
        https: SocketAddr,
        /// Also serve HTTP/3 on the TLS port (UDP), advertised with Alt-Svc.
        #[arg(long)]
        http3: bool,
    },
    /// Parse and compile every .htaccess under the given paths and report
    /// problems as `file:line:col: error|warning: message`.
    ///
    /// With `--config htgate.toml`: the configtest (as `nginx -t` or
    /// `apachectl configtest`): the configuration, every `.htaccess` under
    /// every site's root, and the certificates the server would read;
    /// exit status 1 on any error.
    Check {
        /// Files or directories (directories are searched recursively for
        /// `.htaccess` and `*.htaccess` files).
        #[arg(required_unless_present = "config", conflicts_with = "config")]
        paths: Vec<PathBuf>,
        /// Check a whole configuration instead: the file, its sites'
        /// `.htaccess` files and its certificates.
        #[arg(long, value_name = "FILE")]
        config: Option<PathBuf>,
        /// `text` (file:line:col with the source line) or `json`.
        #[arg(long, value_enum, default_value = "text")]
        format: check::Format,
    },
    /// Show how one request runs through a site's .htaccess files: every
    /// rule and condition tried, what it matched, each flag's effect, and
    /// the answer (nothing is served, no network).
    Explain(explain::ExplainArgs),
    /// Check a server against recorded Apache answers (`.case` files):
    /// htgate in this process by default, any server with `--server`;
    /// `record` records a local Apache's answers into the cases.
    Conformance(conformance::ConformanceArgs),
    /// Replay Apache access logs against the running Apache and an htgate
    /// serving the same roots, and report every answer that differs, per
    /// site (terminal, `--json`, `--html`).
    Replay(replay::ReplayArgs),
    /// Print the shell completion script for SHELL, generated from this
    /// command line (install: `htgate completions bash >
    /// /usr/share/bash-completion/completions/htgate`).
    Completions {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
    /// Print the man page htgate(1), or with `--dir` write it and one page
    /// per command (htgate-serve(1), …) into a folder (install: `htgate man
    /// --dir /usr/local/share/man/man1`).
    Man {
        /// Write every page into this folder instead of printing htgate(1).
        #[arg(long, value_name = "DIR")]
        dir: Option<PathBuf>,
    },
}

#[derive(Subcommand)]
enum CertCommand {
    /// Validate a customer's certificate and key and install them for a
    /// site; an invalid upload changes nothing.
    Install {
        /// The config file (it names the sites and their upload folders).
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The site's name in the config.
        #[arg(long, value_name = "NAME")]
        site: String,
        /// PEM certificate chain (the leaf, then the intermediates).
        #[arg(long, value_name = "PEM")]
        cert: PathBuf,
        /// PEM private key (without a passphrase).
        #[arg(long, value_name = "PEM")]
        key: PathBuf,
        /// Install it as the site's ECDSA certificate, beside its main
        /// (RSA) one: clients that support ECDSA get it, the others the
        /// main one.
        #[arg(long)]
        ecdsa: bool,
    },
    /// Which certificate serves each domain, its issuer and expiry.
    List {
        /// The config file.
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
    /// Only the problems (names not covered, expired, expiring, renewal
    /// failing); exit status 1 when there are any.
    Check {
        /// The config file.
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

#[derive(Subcommand)]
enum SiteCommand {
    /// Check a `[[site]]` document (the syntax of htgate.toml) against this
    /// node's configuration and the store's sites, then store it; every
    /// node serves it within a second.
    Publish {
        /// The config file (its `[cluster]` names the store).
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// A TOML file with one `[[site]]` table.
        document: PathBuf,
    },
    /// Remove a site from the store (every node stops serving it).
    Remove {
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
        /// The site's name.
        name: String,
    },
    /// The sites in the store.
    List {
        #[arg(long, value_name = "FILE", default_value = DEFAULT_CONFIG)]
        config: PathBuf,
    },
}

const DEFAULT_CONFIG: &str = "/etc/htgate/htgate.toml";

/// `serve --help`'s last words: what the running server does with signals.
const SERVE_SIGNALS: &str = "Signals:
  SIGHUP          reload htgate.toml (a configuration with errors is refused; the running one stays)
  SIGUSR1         reopen every log file (after logrotate moved them)
  SIGTERM/SIGINT  stop accepting, let in-flight requests finish (bounded), exit; a second one exits at once";

#[derive(clap::Args, Clone)]
// Either a config or a root: without both, clap's error names the two.
#[command(group(clap::ArgGroup::new("sites").required(true).args(["config", "root"])))]
pub(crate) struct ServeArgs {
    /// The config file (many sites, certificates by SNI, ACME, logs,
    /// metrics); the quick-mode options below do not apply with it.
    #[arg(long, value_name = "FILE", conflicts_with_all = ["root", "cert", "key", "server_name", "pass_client_https_headers", "strip_client_https_headers", "php_fpm", "php_stream_body", "php_body_memory", "php_body_timeout", "php_body_min_rate", "php_max_concurrent", "php_queue_length", "php_queue_timeout", "mime_types", "access_log", "shutdown_drain_seconds", "send_timeout_seconds", "max_sending_per_client", "http3"])]
    config: Option<PathBuf>,
    /// The document root (quick mode).
    #[arg(long, value_name = "DIR")]
    root: Option<PathBuf>,
    /// Plain HTTP listen address (quick mode).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// TLS listen address (quick mode).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8443")]
    https: SocketAddr,
    /// PEM certificate chain (leaf first); without it a self-signed one is made.
    #[arg(long, value_name = "PEM", requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, value_name = "PEM", requires = "cert")]
    key: Option<PathBuf>,
    /// ServerName, then ServerAliases, comma-separated.
    #[arg(
        long,
        value_name = "NAMES",
        value_delimiter = ',',
        default_value = "localhost"
    )]
    server_name: Vec<String>,
    /// Send X-Debug-Final-Uri / X-Debug-Final-Query (for conformance tests).
    #[arg(long)]
    debug_headers: bool,
    /// Also serve HTTP/3 (QUIC) on the --https address's port over UDP,
    /// advertised with Alt-Svc.
    #[arg(long)]
    http3: bool,
    /// Treat client-sent HTTPS / X-Forwarded-Proto / Forwarded headers as
    /// ordinary request headers, exactly as Apache does (the conformance
    /// runs use this: some recorded cases depend on it).
    #[arg(long, conflicts_with = "strip_client_https_headers")]
    pass_client_https_headers: bool,
    /// The default: act as the TLS front: remove client-sent HTTPS /
    /// X-Forwarded-Proto / Forwarded headers and set `HTTPS: on` and
    /// `X-Forwarded-Proto: https` on TLS connections, so that hosting-style
    /// force-HTTPS rules work and cannot be spoofed.
    #[arg(long)]
    strip_client_https_headers: bool,
    /// Run `.php` files through this PHP-FPM socket (a path or host:port),
    /// as Apache with mod_proxy_fcgi does; without it they are plain files.
    #[arg(long, value_name = "SOCKET")]
    php_fpm: Option<String>,
    /// Stream PHP request bodies to PHP-FPM as they arrive instead of
    /// reading them completely first (htgate.toml: php_request_buffering).
    #[arg(long, requires = "php_fpm")]
    php_stream_body: bool,
    /// PHP request bodies up to this many bytes are read into memory,
    /// larger ones into a temp file (htgate.toml: php_body_memory_bytes).
    #[arg(long, value_name = "BYTES", default_value_t = htgate_engine::php_gate::BODY_MEMORY_BYTES as u64, value_parser = clap::value_parser!(u64).range(0..=16 << 20))]
    php_body_memory: u64,
    /// Seconds for a PHP request body's first bytes (php_body_timeout_seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = htgate_engine::php_gate::BODY_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=3600))]
    php_body_timeout: u64,
    /// The minimum rate of a PHP request body, bytes/s; 0: none
    /// (php_body_min_rate).
    #[arg(long, value_name = "BYTES", default_value_t = htgate_engine::php_gate::BODY_MIN_RATE, value_parser = clap::value_parser!(u64).range(0..=1 << 30))]
    php_body_min_rate: u64,
    /// PHP requests that may run at once (php_max_concurrent).
    #[arg(long, value_name = "N", default_value_t = htgate_engine::php_gate::MAX_CONCURRENT as u64, value_parser = clap::value_parser!(u64).range(1..=100_000))]
    php_max_concurrent: u64,
    /// PHP requests that may wait for a turn (php_queue_length).
    #[arg(long, value_name = "N", default_value_t = htgate_engine::php_gate::QUEUE_LENGTH as u64, value_parser = clap::value_parser!(u64).range(0..=1_000_000))]
    php_queue_length: u64,
    /// Seconds a PHP request may wait for a turn before 503
    /// (php_queue_timeout_seconds).
    #[arg(long, value_name = "SECONDS", default_value_t = htgate_engine::php_gate::QUEUE_TIMEOUT.as_secs(), value_parser = clap::value_parser!(u64).range(1..=600))]
    php_queue_timeout: u64,
    /// The extension to Content-Type table: a `mime.types` file, or
    /// `reference` for the conformance oracle's fixed 16 types (default:
    /// Debian's mime.types, built in).
    #[arg(long, value_name = "FILE|reference")]
    mime_types: Option<String>,
    /// Write an access log in Apache's Combined Log Format to this file
    /// (reopened on SIGUSR1, for log rotation).  Config mode sets logs in
    /// htgate.toml instead.
    #[arg(long, value_name = "FILE")]
    access_log: Option<PathBuf>,
    /// After SIGTERM/SIGINT, how long in-flight requests get to finish;
    /// then the process exits even if a request is stuck (htgate.toml:
    /// `shutdown_drain_seconds`).
    #[arg(long, value_name = "SECONDS", default_value_t = htgate_server::limits::DRAIN_TIMEOUT.as_secs())]
    shutdown_drain_seconds: u64,
    /// A response the client takes no data of for this long is dropped; a
    /// connection where nothing moves that long while a response waits is
    /// reset (htgate.toml: `send_timeout_seconds`).
    #[arg(long, value_name = "SECONDS", default_value_t = htgate_server::limits::SEND_TIMEOUT.as_secs())]
    send_timeout_seconds: u64,
    /// Response bodies (over 16 KiB) one client address may have in
    /// progress at once; further ones wait (htgate.toml:
    /// `max_sending_per_client`).
    #[arg(long, value_name = "N", default_value_t = htgate_server::limits::MAX_SENDING_PER_CLIENT)]
    max_sending_per_client: usize,
}

/// Entry point of the binary.
pub(crate) fn run() -> ExitCode {
    let cli = Cli::parse();
    // Config mode sets up its logs from the file it loads (error_log,
    // log_level); everything else logs to stderr.
    if !matches!(&cli.command, Command::Serve(a) if a.config.is_some())
        && !matches!(&cli.command, Command::Conformance(_))
    {
        init_tracing();
    }
    match cli.command {
        Command::Check {
            paths,
            config,
            format,
        } => match config {
            Some(config) => check::run_config(&config, format),
            None => check::run(&paths, format),
        },
        Command::Explain(args) => explain::run(&args),
        Command::Conformance(args) => conformance::run(args),
        Command::Replay(args) => replay::run(args),
        Command::Completions { shell } => {
            let mut cmd = Cli::command();
            clap_complete::generate(shell, &mut cmd, "htgate", &mut std::io::stdout());
            ExitCode::SUCCESS
        }
        Command::Man { dir } => man_pages(dir.as_deref()),
        Command::Cert { command } => match command {
            CertCommand::Install {
                config,
                site,
                cert,
                key,
                ecdsa,
            } => cert::install(&config, &site, &cert, &key, ecdsa),
            CertCommand::List { config } => cert::list(&config),
            CertCommand::Check { config } => cert::check(&config),
        },
        Command::Site { command } => match command {
            SiteCommand::Publish { config, document } => site::publish(&config, &document),
            SiteCommand::Remove { config, name } => site::remove(&config, &name),
            SiteCommand::List { config } => site::list(&config),
        },
        Command::Serve(args) => {
            if let Some(config) = &args.config {
                return serve_config(config);
            }
            htgate_server::limits::Limits::set_process(htgate_server::limits::Limits::operator(
                args.shutdown_drain_seconds,
                args.send_timeout_seconds,
                args.max_sending_per_client,
            ));
            let php = php_settings(&args);
            let Some(root) = args.root else {
                eprintln!("error: give --config FILE or --root DIR");
                return ExitCode::FAILURE;
            };
            let opts = htgate_hosting::quick::QuickOptions {
                root,
                http: args.http,
                https: args.https,
                cert: args.cert,
                key: args.key,
                server_names: args.server_name,
                debug_headers: args.debug_headers,
                pass_client_https_headers: args.pass_client_https_headers,
                php,
                php_fpm: args.php_fpm,
                mime_types: args.mime_types,
                http3: args.http3,
            };
            serve(opts, args.access_log)
        }
        Command::Demo { http, https, http3 } => match demo::write_site(https.port()) {
            // `site` lives until the server has stopped, then its folder goes
            Ok(site) => {
                if let Ok(mut d) = REMOVE_AT_EXIT.lock() {
                    *d = Some(site.path().to_path_buf());
                }
                eprintln!("htgate demo site in {}", site.path().display());
                eprintln!("  curl -i http://{http}/hello-world      (301 to HTTPS)");
                eprintln!("  curl -ki https://{https}/hello-world   (rewritten to index.html)");
                serve(
                    htgate_hosting::quick::QuickOptions {
                        http,
                        https,
                        http3,
                        ..htgate_hosting::quick::QuickOptions::new(site.path().to_path_buf())
                    },
                    None,
                )
            }
            Err(e) => {
                eprintln!("error: cannot write the demo site: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

/// `htgate man`: the pages come from the same definition as `--help`.
fn man_pages(dir: Option<&std::path::Path>) -> ExitCode {
    let done = match dir {
        Some(dir) => clap_mangen::generate_to(Cli::command(), dir),
        None => clap_mangen::Man::new(Cli::command()).render(&mut std::io::stdout()),
    };
    match done {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            match dir {
                Some(d) => eprintln!("error: cannot write the man pages in {}: {e}", d.display()),
                None => eprintln!("error: {e}"),
            }
            ExitCode::FAILURE
        }
    }
}

/// Events to stderr, at `RUST_LOG` or `warn`.
fn init_tracing() {
    htgate_telemetry::logs::error_log::init(None, None);
}

/// How long the end of the process waits for queued log lines.
const LOG_FLUSH_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

fn serve(opts: htgate_hosting::quick::QuickOptions, access_log: Option<PathBuf>) -> ExitCode {
    if opts.cert.is_none() {
        eprintln!(
            "htgate: no --cert given: serving a self-signed certificate for {} made in memory",
            opts.server_names.join(", ")
        );
    }
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = rt.block_on(async move {
        // Installed before the sockets open, so that a SIGTERM is never
        // met by the default action (death without a drain).
        let mut signals = Signals::new();
        let _usr1 = htgate_telemetry::logs::reopen_on_sigusr1();
        let server = match htgate_hosting::quick::start_logged(opts, access_log).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        eprintln!(
            "htgate listening on http://{} and https://{}",
            server.http_addr, server.https_addr
        );
        if let Some(addr) = server.http3_addr {
            eprintln!("htgate HTTP/3 on udp://{addr}");
        }
        let why = signals.recv().await;
        eprintln!("htgate: {why}: draining in-flight requests");
        drain(server.shutdown(), &mut signals).await;
        htgate_telemetry::logs::writer::flush(LOG_FLUSH_TIMEOUT);
        ExitCode::SUCCESS
    });
    stop_runtime(rt);
    code
}

/// Ends the runtime without waiting for a worker that does not come back
/// (a request stuck in a busy loop): dropping it would wait forever.
fn stop_runtime(rt: tokio::runtime::Runtime) {
    rt.shutdown_timeout(std::time::Duration::from_secs(1));
}

fn runtime() -> Result<tokio::runtime::Runtime, ExitCode> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(|e| {
            eprintln!("error: cannot start the runtime: {e}");
            ExitCode::FAILURE
        })
}

/// `htgate serve --config FILE`.
fn serve_config(path: &std::path::Path) -> ExitCode {
    let config = match htgate_hosting::config::Config::load(path) {
        Ok(c) => c,
        Err(e) => {
            init_tracing();
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    htgate_telemetry::logs::error_log::init(
        config
            .file
            .error_log
            .as_ref()
            .map(|p| p.get_ref().as_path()),
        config.file.log_level.as_ref().map(|l| l.get_ref().as_str()),
    );
    htgate_server::limits::Limits::set_process(htgate_server::limits::Limits::operator(
        config.file.shutdown_drain_seconds,
        config.file.send_timeout_seconds,
        config.file.max_sending_per_client,
    ));
    let rt = match runtime() {
        Ok(rt) => rt,
        Err(code) => return code,
    };
    let code = rt.block_on(async move {
        let mut signals = Signals::new();
        let _usr1 = htgate_telemetry::logs::reopen_on_sigusr1();
        let server = match htgate_hosting::run::start(&config).await {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: {e:#}");
                return ExitCode::FAILURE;
            }
        };
        for (addr, tls) in server.addrs() {
            eprintln!(
                "htgate listening on {}://{addr}",
                if tls { "https" } else { "http" }
            );
        }
        for addr in server.http3_addrs() {
            eprintln!("htgate HTTP/3 on udp://{addr}");
        }
        if let Some(addr) = server.admin_addr() {
            eprintln!("htgate metrics on http://{addr}/metrics");
        }
        eprintln!(
            "{} sites from {}",
            config.file.site.len(),
            config.path.display()
        );
        // SIGHUP reloads htgate.toml (sites, domains, certificates); a
        // configuration with errors is refused and the running one kept.
        use tokio::signal::unix::{signal, SignalKind};
        let mut hup = signal(SignalKind::hangup()).ok();
        loop {
            let hup_recv = async {
                match hup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                why = signals.recv() => {
                    eprintln!("htgate: {why}: draining in-flight requests");
                    break;
                }
                Some(()) = hup_recv => {
                    match server.reload().await {
                        Ok(()) => eprintln!("htgate: configuration reloaded"),
                        Err(e) => eprintln!("htgate: configuration refused, still serving the previous one:\n{e}"),
                    }
                }
            }
        }
        drain(server.shutdown(), &mut signals).await;
        htgate_telemetry::logs::writer::flush(LOG_FLUSH_TIMEOUT);
        ExitCode::SUCCESS
    });
    stop_runtime(rt);
    code
}

/// SIGTERM and SIGINT, each registered once for the life of the server: a
/// signal that comes while the server is busy elsewhere (a reload, the
/// drain) is kept for the next `recv`, never lost.
struct Signals {
    term: Option<tokio::signal::unix::Signal>,
    int: Option<tokio::signal::unix::Signal>,
}

impl Signals {
    /// Must run inside the runtime.
    fn new() -> Signals {
        use tokio::signal::unix::{signal, SignalKind};
        let term = signal(SignalKind::terminate())
            .map_err(|e| eprintln!("htgate: cannot watch SIGTERM: {e}"))
            .ok();
        let int = signal(SignalKind::interrupt())
            .map_err(|e| eprintln!("htgate: cannot watch SIGINT: {e}"))
            .ok();
        Signals { term, int }
    }

    /// The next SIGTERM or SIGINT, by name.
    async fn recv(&mut self) -> &'static str {
        async fn one(s: &mut Option<tokio::signal::unix::Signal>) {
            match s {
                // None: the stream ended, which tokio does not do; wait on.
                Some(s) => {
                    if s.recv().await.is_none() {
                        std::future::pending::<()>().await;
                    }
                }
                None => std::future::pending::<()>().await,
            }
        }
        tokio::select! {
            _ = one(&mut self.term) => "SIGTERM",
            _ = one(&mut self.int) => "SIGINT",
        }
    }
}

/// How long past the drain timeout the process may take to end before the
/// watchdog ends it (the connections are reset at the drain timeout; this
/// leaves time for the log lines to be written).
const EXIT_MARGIN: std::time::Duration = std::time::Duration::from_secs(3);

/// How long the log gets when the process is ended at once.
const LOG_FLUSH_NOW: std::time::Duration = std::time::Duration::from_millis(300);

/// Runs the drain (stop accepting, let in-flight requests finish, bounded
/// by the listener's drain timeout); a second signal ends the process at
/// once, and so does a watchdog when the drain's deadline and a margin
/// have passed.
async fn drain(shutdown: impl std::future::Future<Output = ()>, signals: &mut Signals) {
    let deadline = htgate_server::limits::Limits::process()
        .drain_timeout
        .saturating_add(EXIT_MARGIN);
    // A plain OS thread, not a task: it runs even when every runtime
    // worker is stuck (a request in a busy loop), and a stuck worker would
    // also keep the runtime from ever finishing.
    let watchdog = std::thread::Builder::new()
        .name("htgate-exit".into())
        .spawn(move || {
            std::thread::sleep(deadline);
            eprintln!(
                "htgate: still not stopped {} s after the signal: exiting",
                deadline.as_secs()
            );
            htgate_telemetry::logs::writer::flush(LOG_FLUSH_NOW);
            exit_now(1);
        });
    if let Err(e) = watchdog {
        eprintln!("htgate: cannot start the shutdown watchdog: {e}");
    }
    tokio::select! {
        _ = shutdown => {}
        why = signals.recv() => {
            eprintln!("htgate: second {why}: exiting without waiting for the drain");
            htgate_telemetry::logs::writer::flush(LOG_FLUSH_NOW);
            exit_now(0);
        }
    }
}

/// A folder that goes with the process (the demo's site), removed even
/// when the process ends without unwinding.
static REMOVE_AT_EXIT: std::sync::Mutex<Option<PathBuf>> = std::sync::Mutex::new(None);

/// `process::exit`, after removing [`REMOVE_AT_EXIT`].
fn exit_now(code: i32) -> ! {
    let dir = REMOVE_AT_EXIT.lock().ok().and_then(|mut d| d.take());
    if let Some(dir) = dir {
        let _ = std::fs::remove_dir_all(dir);
    }
    std::process::exit(code)
}

/// The PHP settings of quick mode's `--php-*` flags.
fn php_settings(args: &ServeArgs) -> htgate_engine::php_gate::PhpSettings {
    let size = |n: u64| usize::try_from(n).unwrap_or(usize::MAX);
    htgate_engine::php_gate::PhpSettings {
        request_buffering: !args.php_stream_body,
        body_memory_bytes: size(args.php_body_memory),
        body_timeout: std::time::Duration::from_secs(args.php_body_timeout),
        body_min_rate: args.php_body_min_rate,
        max_concurrent: size(args.php_max_concurrent),
        queue_length: size(args.php_queue_length),
        queue_timeout: std::time::Duration::from_secs(args.php_queue_timeout),
    }
}

#[cfg(test)]
mod php_flag_tests {
    use super::*;

    fn serve_args(extra: &[&str]) -> Result<ServeArgs, clap::Error> {
        let mut argv = vec!["htgate", "serve", "--root", "/tmp", "--php-fpm", "/x.sock"];
        argv.extend_from_slice(extra);
        match Cli::try_parse_from(argv)?.command {
            Command::Serve(a) => Ok(a),
            _ => unreachable!("parsed as serve"),
        }
    }

    #[test]
    fn php_flags_default_to_the_config_defaults() {
        let args = serve_args(&[]).expect("parses");
        assert_eq!(
            php_settings(&args),
            htgate_engine::php_gate::PhpSettings::default()
        );
    }

    #[test]
    fn php_flags_set_quick_modes_php_settings() {
        let args = serve_args(&[
            "--php-stream-body",
            "--php-body-memory",
            "4096",
            "--php-body-timeout",
            "7",
            "--php-body-min-rate",
            "0",
            "--php-max-concurrent",
            "3",
            "--php-queue-length",
            "0",
            "--php-queue-timeout",
            "2",
        ])
        .expect("parses");
        assert_eq!(
            php_settings(&args),
            htgate_engine::php_gate::PhpSettings {
                request_buffering: false,
                body_memory_bytes: 4096,
                body_timeout: std::time::Duration::from_secs(7),
                body_min_rate: 0,
                max_concurrent: 3,
                queue_length: 0,
                queue_timeout: std::time::Duration::from_secs(2),
            }
        );
        for bad in [
            ["--php-max-concurrent", "0"],
            ["--php-body-timeout", "0"],
            ["--php-queue-timeout", "601"],
            ["--php-body-memory", "99999999"],
        ] {
            assert!(serve_args(&bad).is_err(), "{bad:?} accepted");
        }
    }
}

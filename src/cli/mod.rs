//! The command line: `serve` (quick mode), `demo`, `check`.

mod check;
mod demo;

use clap::{Parser, Subcommand};
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
    /// Serve one document root (quick mode, no config file).
    Serve(ServeArgs),
    /// Serve a built-in demo site (WordPress-style rules, forced HTTPS).
    Demo {
        /// Plain HTTP listen address.
        #[arg(long, default_value = "127.0.0.1:8080")]
        http: SocketAddr,
        /// TLS listen address.
        #[arg(long, default_value = "127.0.0.1:8443")]
        https: SocketAddr,
    },
    /// Parse and compile every .htaccess under the given paths and report
    /// problems as `file:line:col: error|warning: message`.
    Check {
        /// Files or directories (directories are searched recursively for
        /// `.htaccess` and `*.htaccess` files).
        #[arg(required = true)]
        paths: Vec<PathBuf>,
    },
}

#[derive(clap::Args, Clone)]
pub struct ServeArgs {
    /// The document root.
    #[arg(long)]
    root: PathBuf,
    /// Plain HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:8080")]
    http: SocketAddr,
    /// TLS listen address.
    #[arg(long, default_value = "127.0.0.1:8443")]
    https: SocketAddr,
    /// PEM certificate chain (leaf first); without it a self-signed one is made.
    #[arg(long, requires = "key")]
    cert: Option<PathBuf>,
    /// PEM private key.
    #[arg(long, requires = "cert")]
    key: Option<PathBuf>,
    /// ServerName, then ServerAliases, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "localhost")]
    server_name: Vec<String>,
    /// Send X-Debug-Final-Uri / X-Debug-Final-Query (for conformance tests).
    #[arg(long)]
    debug_headers: bool,
    /// Treat client-sent HTTPS / X-Forwarded-Proto / Forwarded headers as
    /// ordinary request headers, exactly as Apache does.  This is quick
    /// mode's default (it emulates the Apache reference); the flag states it
    /// explicitly.
    #[arg(long, conflicts_with = "strip_client_https_headers")]
    pass_client_https_headers: bool,
    /// Act as the TLS front: remove client-sent HTTPS / X-Forwarded-Proto /
    /// Forwarded headers and set `HTTPS: on` and `X-Forwarded-Proto: https`
    /// on TLS connections, so that hosting-style force-HTTPS rules work and
    /// cannot be spoofed.
    #[arg(long)]
    strip_client_https_headers: bool,
}

/// Entry point of the binary.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    init_tracing();
    match cli.command {
        Command::Check { paths } => check::run(&paths),
        Command::Serve(args) => {
            let opts = crate::server::quick::QuickOptions {
                root: args.root,
                http: args.http,
                https: args.https,
                cert: args.cert,
                key: args.key,
                server_names: args.server_name,
                debug_headers: args.debug_headers,
                pass_client_https_headers: args.pass_client_https_headers
                    || !args.strip_client_https_headers,
            };
            serve(opts)
        }
        Command::Demo { http, https } => match demo::write_site(https.port()) {
            Ok(root) => {
                eprintln!("htgate demo site in {}", root.display());
                eprintln!("  curl -i http://{http}/hello-world      (301 to HTTPS)");
                eprintln!("  curl -ki https://{https}/hello-world   (rewritten to index.php)");
                serve(crate::server::quick::QuickOptions {
                    root,
                    http,
                    https,
                    cert: None,
                    key: None,
                    server_names: vec!["localhost".into()],
                    debug_headers: false,
                    pass_client_https_headers: false,
                })
            }
            Err(e) => {
                eprintln!("error: cannot write the demo site: {e}");
                ExitCode::FAILURE
            }
        },
    }
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

fn serve(opts: crate::server::quick::QuickOptions) -> ExitCode {
    if opts.cert.is_none() {
        eprintln!(
            "htgate: no --cert given: serving a self-signed certificate for {} made in memory",
            opts.server_names.join(", ")
        );
    }
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(async move {
        let server = match crate::server::quick::start(opts).await {
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
        wait_for_signal().await;
        server.shutdown().await;
        ExitCode::SUCCESS
    })
}

async fn wait_for_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let mut term = match signal(SignalKind::terminate()) {
        Ok(s) => s,
        Err(_) => {
            let _ = tokio::signal::ctrl_c().await;
            return;
        }
    };
    tokio::select! {
        _ = term.recv() => {}
        _ = tokio::signal::ctrl_c() => {}
    }
}

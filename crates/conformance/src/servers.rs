//! The servers a case can run against: htgate in this process, any server
//! started by a command template (the oracle's `CommandServer`), and a
//! local Apache (the oracle's `ApacheServer`, in `apache.rs`).

use std::panic::AssertUnwindSafe;
use std::path::PathBuf;

use async_trait::async_trait;
use futures_util::FutureExt;
use htgate_hosting::quick::{self, QuickOptions, RunningServer};

use crate::process::{free_port, stop_server, Process, START_TIMEOUT, STOP_TIMEOUT};
use crate::workdir::Workdir;

/// A server started for one case.
#[async_trait]
pub trait Running: Send {
    /// Its plain and TLS listener ports on 127.0.0.1.
    fn ports(&self) -> (u16, u16);
    /// Its log files, `(title, path)`, for `--verbose`.
    fn logs(&self) -> Vec<(String, PathBuf)> {
        Vec::new()
    }
    /// Stops it; an error when it did not stop in time.
    async fn stop(self: Box<Self>) -> Result<(), String>;
}

/// Starts a server on a case's work directory.
#[async_trait]
pub trait Starter: Send + Sync {
    /// Starts a server serving `wd.root` on two loopback ports.
    async fn start(&self, wd: &Workdir) -> Result<Box<dyn Running>, String>;
}

/// htgate itself, started in this process through quick mode with the
/// options the oracle's command template passes to the binary.
pub struct InProcess;

/// The quick-mode options for one case: ephemeral loopback ports, the
/// case's certificate, its hosts as ServerName/ServerAliases, debug headers
/// on, client HTTPS headers passed as ordinary headers (as Apache does),
/// the oracle's 16-type MIME table.
pub fn quick_options(wd: &Workdir) -> QuickOptions {
    let any = std::net::SocketAddr::from(([127, 0, 0, 1], 0));
    QuickOptions {
        root: wd.root.clone(),
        http: any,
        https: any,
        cert: Some(wd.cert.clone()),
        key: Some(wd.key.clone()),
        server_names: wd.hosts.clone(),
        debug_headers: true,
        pass_client_https_headers: true,
        php_fpm: None,
        mime_types: Some("reference".into()),
        http3: false,
        php: Default::default(),
    }
}

struct InProcessServer(RunningServer);

#[async_trait]
impl Running for InProcessServer {
    fn ports(&self) -> (u16, u16) {
        (self.0.http_addr.port(), self.0.https_addr.port())
    }

    async fn stop(self: Box<Self>) -> Result<(), String> {
        tokio::time::timeout(STOP_TIMEOUT, self.0.shutdown())
            .await
            .map_err(|_| {
                format!(
                    "shutdown did not finish within {} s",
                    STOP_TIMEOUT.as_secs()
                )
            })
    }
}

#[async_trait]
impl Starter for InProcess {
    async fn start(&self, wd: &Workdir) -> Result<Box<dyn Running>, String> {
        // A panic while starting counts as a failure to start this case,
        // not as the end of the whole run.
        let started = tokio::time::timeout(
            START_TIMEOUT,
            AssertUnwindSafe(quick::start(quick_options(wd))).catch_unwind(),
        )
        .await;
        match started {
            Err(_) => Err(format!(
                "the server did not start within {} s",
                START_TIMEOUT.as_secs()
            )),
            Ok(Err(panic)) => {
                let msg = panic
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "(no message)".into());
                Err(format!("the server panicked while starting: {msg}"))
            }
            Ok(Ok(Err(e))) => Err(format!("the server failed to start: {e:#}")),
            Ok(Ok(Ok(s))) => Ok(Box::new(InProcessServer(s))),
        }
    }
}

/// Any server, started by a shell command with the oracle's placeholders:
/// `{root} {http} {https} {http_port} {https_port} {cert} {key} {hosts}`.
pub struct CommandTemplate(pub String);

struct CommandServer {
    process: Process,
    ports: (u16, u16),
}

#[async_trait]
impl Running for CommandServer {
    fn ports(&self) -> (u16, u16) {
        self.ports
    }

    fn logs(&self) -> Vec<(String, PathBuf)> {
        vec![("server output".into(), self.process.log.clone())]
    }

    async fn stop(self: Box<Self>) -> Result<(), String> {
        stop_server(self.process, "the server").await
    }
}

/// The template with a case's values filled in.
pub fn fill_template(template: &str, wd: &Workdir, http_port: u16, https_port: u16) -> String {
    let values = [
        ("{root}", wd.root.to_string_lossy().into_owned()),
        ("{http}", format!("127.0.0.1:{http_port}")),
        ("{https}", format!("127.0.0.1:{https_port}")),
        ("{http_port}", http_port.to_string()),
        ("{https_port}", https_port.to_string()),
        ("{cert}", wd.cert.to_string_lossy().into_owned()),
        ("{key}", wd.key.to_string_lossy().into_owned()),
        ("{hosts}", wd.hosts.join(",")),
    ];
    let mut cmd = template.to_string();
    for (k, v) in values {
        cmd = cmd.replace(k, &v);
    }
    cmd
}

#[async_trait]
impl Starter for CommandTemplate {
    async fn start(&self, wd: &Workdir) -> Result<Box<dyn Running>, String> {
        let (http_port, https_port) = (free_port()?, free_port()?);
        let cmd = fill_template(&self.0, wd, http_port, https_port);
        let log = wd.dir.join("server.out");
        std::fs::write(&log, format!("$ {cmd}\n"))
            .map_err(|e| format!("cannot write {}: {e}", log.display()))?;
        let cwd = std::env::current_dir().map_err(|e| e.to_string())?;
        let argv = ["/bin/sh".to_string(), "-c".into(), cmd];
        let mut process = Process::spawn(&argv, &cwd, &log)?;
        if let Err(e) = process
            .wait_ready(&[http_port, https_port], "the server under test")
            .await
        {
            process.stop().await;
            return Err(e);
        }
        Ok(Box::new(CommandServer {
            process,
            ports: (http_port, https_port),
        }))
    }
}

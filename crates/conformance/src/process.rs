//! Servers as child processes (the oracle's `start_process`, `wait_ready`,
//! `stop_process`): each in a process group of its own, output to a log
//! file, ready once every port accepts, stopped with SIGTERM then SIGKILL
//! to the whole group (Apache's workers, anything a shell started).

use std::fs::{File, OpenOptions};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use rustix::process::{kill_process_group, Pid, Signal};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

/// Time for a server to accept on every port (the oracle's `START_TIMEOUT`).
pub(crate) const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Time between SIGTERM and SIGKILL (the oracle's `STOP_TIMEOUT`).
pub(crate) const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A started server process.
pub(crate) struct Process {
    child: Child,
    /// Its process group (the child's pid).
    group: Option<Pid>,
    /// Where its stdout and stderr go.
    pub(crate) log: PathBuf,
}

fn log_file(path: &Path) -> Result<File, String> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))
}

impl Process {
    /// Starts `argv` in a new process group with its output in `log`.
    pub(crate) fn spawn(argv: &[String], cwd: &Path, log: &Path) -> Result<Process, String> {
        let (program, args) = argv.split_first().ok_or("empty command")?;
        let out = log_file(log)?;
        let err = out
            .try_clone()
            .map_err(|e| format!("cannot open {}: {e}", log.display()))?;
        let child = Command::new(program)
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| format!("cannot run {program}: {e}"))?;
        let group = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .and_then(Pid::from_raw);
        Ok(Process {
            child,
            group,
            log: log.to_path_buf(),
        })
    }

    /// Waits until every port accepts a connection; fails when the
    /// process exits first or `START_TIMEOUT` passes.
    pub(crate) async fn wait_ready(&mut self, ports: &[u16], what: &str) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        let mut pending: Vec<u16> = ports.to_vec();
        while let Some(&port) = pending.first() {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!(
                    "{what} exited with {status} before listening on {}\n{}",
                    list(&pending),
                    tail(&self.log, 30)
                ));
            }
            let probe = TcpStream::connect(("127.0.0.1", port));
            if let Ok(Ok(_)) = tokio::time::timeout(Duration::from_millis(500), probe).await {
                pending.remove(0);
                continue;
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "{what} did not accept connections on {} within {} s\n{}",
                    list(&pending),
                    START_TIMEOUT.as_secs(),
                    tail(&self.log, 30)
                ));
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        Ok(())
    }

    /// SIGTERM to the group, up to `STOP_TIMEOUT` for the leader to exit,
    /// then SIGKILL to whatever is left of the group. Returns whether the
    /// leader stopped within the time (a server that does not stop on
    /// SIGTERM fails its case, as under the oracle).
    pub(crate) async fn stop(mut self) -> bool {
        let Some(group) = self.group else {
            return self.child.kill().await.is_ok();
        };
        if matches!(self.child.try_wait(), Ok(Some(_))) {
            let _ = kill_process_group(group, Signal::KILL);
            return true;
        }
        let _ = kill_process_group(group, Signal::TERM);
        let stopped = tokio::time::timeout(STOP_TIMEOUT, self.child.wait())
            .await
            .is_ok();
        // Stragglers: Apache's workers, a server a shell put in the
        // background.
        let _ = kill_process_group(group, Signal::KILL);
        let _ = tokio::time::timeout(STOP_TIMEOUT, self.child.wait()).await;
        stopped
    }
}

/// [`Process::stop`] as a server's `stop`: an error naming `what` when it
/// outlived SIGTERM.
pub(crate) async fn stop_server(process: Process, what: &str) -> Result<(), String> {
    if process.stop().await {
        Ok(())
    } else {
        Err(format!(
            "{what} did not exit within {} s of SIGTERM",
            STOP_TIMEOUT.as_secs()
        ))
    }
}

fn list(ports: &[u16]) -> String {
    ports
        .iter()
        .map(|p| format!("127.0.0.1:{p}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The last `n` lines of a log, indented (the oracle's `tail`).
pub(crate) fn tail(path: &Path, n: usize) -> String {
    let Ok(data) = std::fs::read(path) else {
        return format!("(no log at {})", path.display());
    };
    let text = String::from_utf8_lossy(&data);
    let lines: Vec<&str> = text.lines().collect();
    if lines.is_empty() {
        return format!("({} is empty)", path.display());
    }
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    | {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

/// A loopback port nobody listens on now (the oracle's `free_port`); the
/// caller retries when a server then fails to bind it.
pub(crate) fn free_port() -> Result<u16, String> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")
        .map_err(|e| format!("cannot find a free loopback port: {e}"))?;
    l.local_addr()
        .map(|a| a.port())
        .map_err(|e| format!("cannot find a free loopback port: {e}"))
}

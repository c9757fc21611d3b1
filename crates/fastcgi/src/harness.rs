//! Test helper: a throw-away PHP-FPM master on a Unix socket in a private
//! temp dir, with Debian's php.ini (so mysqli, gd, xml, mbstring load) and
//! a pool configured as shared hosts do. Not used by the server; public so
//! integration tests can use it. Killed (with its workers) on drop.

use std::fs::{self, File};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::Upstream;

/// How long PHP-FPM may take to accept connections.
const START_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a graceful stop may take before the master is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// A running PHP-FPM.
pub struct PhpFpm {
    dir: PathBuf,
    socket: PathBuf,
    master: Option<Child>,
}

impl PhpFpm {
    /// The php-fpm binary: `php-fpm8.2`/`php-fpm` on PATH, else the newest
    /// `/usr/sbin/php-fpm*` (Debian installs it there, often off PATH).
    pub fn binary() -> Option<PathBuf> {
        let on_path = std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path).find_map(|dir| {
                ["php-fpm8.2", "php-fpm"]
                    .iter()
                    .map(|name| dir.join(name))
                    .find(|candidate| is_executable(candidate))
            })
        });
        on_path.or_else(|| {
            let mut found: Vec<PathBuf> = fs::read_dir("/usr/sbin")
                .ok()?
                .filter_map(|entry| entry.ok().map(|e| e.path()))
                .filter(|p| {
                    p.file_name()
                        .and_then(|n| n.to_str())
                        .is_some_and(|n| n.starts_with("php-fpm"))
                        && is_executable(p)
                })
                .collect();
            found.sort();
            found.pop()
        })
    }

    pub fn available() -> bool {
        Self::binary().is_some()
    }

    /// For tests: `true` when PHP-FPM can run. Otherwise panics under CI
    /// (`CI=true`: a CI machine without it must not pass silently) and
    /// returns `false` with a note elsewhere, so the caller skips.
    pub fn available_or_skip(test: &str) -> bool {
        if Self::available() {
            return true;
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "php-fpm not installed (apt-get install -y php-fpm) but CI=true; {test} cannot run"
            );
        }
        eprintln!("skipping {test}: php-fpm not installed (apt-get install -y php-fpm)");
        false
    }

    /// Start a master in the foreground with our own config; returns once
    /// its socket accepts connections.
    pub fn start() -> Result<PhpFpm, String> {
        Self::start_with("")
    }

    /// [`PhpFpm::start`] with extra lines for the `[www]` pool (e.g.
    /// `pm.max_requests = 1`); later lines override earlier ones.
    pub fn start_with(pool_settings: &str) -> Result<PhpFpm, String> {
        let binary = Self::binary().ok_or("php-fpm not found")?;
        let dir = tempfile::Builder::new()
            .prefix("htgate-php-fpm-")
            .tempdir()
            .map_err(|e| format!("create a temp dir: {e}"))?
            .keep();
        let mut me = PhpFpm {
            socket: dir.join("php-fpm.sock"),
            dir,
            master: None,
        };
        let config = me.dir.join("php-fpm.conf");
        fs::write(&config, me.config(pool_settings))
            .map_err(|e| format!("write {}: {e}", config.display()))?;
        let log = File::create(me.dir.join("master.out"))
            .map_err(|e| format!("create master.out: {e}"))?;
        me.master = Some(
            Command::new(&binary)
                // -F: stay in the foreground (we own the process);
                // -R: allowed to run as root (CI runs as root).
                .arg("-F")
                .arg("-R")
                .arg("-y")
                .arg(&config)
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log)
                .spawn()
                .map_err(|e| format!("cannot run {}: {e}", binary.display()))?,
        );
        me.wait_for_socket()?;
        Ok(me)
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn upstream(&self) -> Upstream {
        Upstream::Unix(self.socket.clone())
    }

    /// A directory for test scripts, inside the temp dir.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The master's output, FPM's log and PHP's error log, for failures.
    pub fn logs(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!(
            "--- php-fpm output ---\n{}\n--- php-fpm.log ---\n{}\n--- php-error.log ---\n{}",
            read("master.out"),
            read("php-fpm.log"),
            read("php-error.log")
        )
    }

    /// Stop the master now (SIGTERM: it stops its workers and removes the
    /// socket; SIGKILL after `STOP_TIMEOUT`).
    pub fn stop(&mut self) {
        let Some(mut master) = self.master.take() else {
            return;
        };
        // std has no signals without unsafe code; kill(1) sends SIGTERM.
        let _ = Command::new("kill")
            .arg("-TERM")
            .arg(master.id().to_string())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if matches!(master.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = master.kill();
        let _ = master.wait();
    }

    fn config(&self, pool_settings: &str) -> String {
        let dir = self.dir.display();
        // As root a pool needs a user; FPM ignores it (with a notice)
        // otherwise, so it is only written for root.
        let user = if running_as_root() {
            "user = root\ngroup = root\n"
        } else {
            ""
        };
        format!(
            "[global]\n\
             pid = {dir}/php-fpm.pid\n\
             error_log = {dir}/php-fpm.log\n\
             log_level = notice\n\
             daemonize = no\n\
             \n\
             [www]\n\
             {user}\
             listen = {socket}\n\
             listen.mode = 0666\n\
             pm = dynamic\n\
             pm.max_children = 8\n\
             pm.start_servers = 2\n\
             pm.min_spare_servers = 1\n\
             pm.max_spare_servers = 3\n\
             clear_env = yes\n\
             catch_workers_output = yes\n\
             decorate_workers_output = no\n\
             php_admin_value[error_log] = {dir}/php-error.log\n\
             php_admin_flag[log_errors] = on\n\
             {pool_settings}\n",
            socket = self.socket.display(),
        )
    }

    fn wait_for_socket(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if std::os::unix::net::UnixStream::connect(&self.socket).is_ok() {
                return Ok(());
            }
            if let Some(Ok(Some(status))) = self.master.as_mut().map(Child::try_wait) {
                return Err(format!(
                    "php-fpm exited ({status}) before accepting connections\n{}",
                    self.logs()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "php-fpm did not accept connections within {START_TIMEOUT:?}\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PhpFpm {
    fn drop(&mut self) {
        self.stop();
        let _ = fs::remove_dir_all(&self.dir);
    }
}

fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Our uid is the owner of /proc/self (no libc needed).
fn running_as_root() -> bool {
    fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

//! Harness for the end-to-end tests with real PHP applications: what the
//! machine must have, a private MariaDB, DokuWiki and WordPress site trees
//! built from Debian's packages, htgate serving one site, and a curl-driven
//! browser with a cookie jar.
//!
//! Everything is bounded: each child process runs under a deadline and is
//! killed on drop, each request has curl's `--max-time` and the test's
//! overall deadline.

use htgate_hosting::config::Config;
use htgate_hosting::run::{start, HostingServer};
use regex::Regex;
use std::cell::RefCell;
use std::ffi::OsString;
use std::fmt::Write as _;
use std::fs::File;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Returns early from a flow with a message when a condition fails, so the
/// test can add the request trail and the server logs before panicking.
#[macro_export]
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

// ---------------------------------------------------------------------------
// What the machine must have

/// Something a test needs, and the Debian package that provides it.
pub(crate) struct Need {
    pub check: Check,
    pub package: &'static str,
}

/// How a [`Need`] is looked for.
pub(crate) enum Check {
    /// On PATH, or in the sbin folders (Debian puts `mariadbd` there, and a
    /// non-login PATH may lack them).
    Program(&'static str),
    /// A file or folder that must exist.
    Path(&'static str),
    /// A PHP extension's ini file in any installed PHP version (Debian
    /// enables an installed extension for every SAPI, FPM included).
    PhpExtension(&'static str),
}

impl Need {
    fn met(&self) -> bool {
        match self.check {
            Check::Program(name) => find_program(name).is_some(),
            Check::Path(path) => Path::new(path).exists(),
            Check::PhpExtension(ext) => std::fs::read_dir("/etc/php").is_ok_and(|versions| {
                versions
                    .flatten()
                    .any(|v| v.path().join(format!("mods-available/{ext}.ini")).exists())
            }),
        }
    }

    fn what(&self) -> &'static str {
        match self.check {
            Check::Program(s) | Check::Path(s) | Check::PhpExtension(s) => s,
        }
    }
}

pub(crate) const APACHE: &[Need] = &[
    Need {
        check: Check::Program("apache2"),
        package: "apache2",
    },
    Need {
        check: Check::Path("/usr/lib/apache2/modules/mod_proxy_fcgi.so"),
        package: "apache2",
    },
];
pub(crate) const CHROMIUM: &[Need] = &[Need {
    check: Check::Program("chromium"),
    package: "chromium",
}];
pub(crate) const CURL: &[Need] = &[Need {
    check: Check::Program("curl"),
    package: "curl",
}];
pub(crate) const MARIADB: &[Need] = &[
    Need {
        check: Check::Program("mariadbd"),
        package: "mariadb-server",
    },
    Need {
        check: Check::Program("mariadb-install-db"),
        package: "mariadb-server",
    },
    Need {
        check: Check::Program("mariadb"),
        package: "mariadb-client",
    },
];
pub(crate) const DOKUWIKI: &[Need] = &[
    Need {
        check: Check::Path("/usr/share/dokuwiki/doku.php"),
        package: "dokuwiki",
    },
    Need {
        check: Check::Path("/etc/dokuwiki/dokuwiki.php"),
        package: "dokuwiki",
    },
    Need {
        check: Check::Path("/var/lib/dokuwiki/data/pages"),
        package: "dokuwiki",
    },
];
pub(crate) const WORDPRESS: &[Need] = &[
    Need {
        check: Check::Path("/usr/share/wordpress/wp-settings.php"),
        package: "wordpress",
    },
    Need {
        check: Check::PhpExtension("mysqli"),
        package: "php-mysql",
    },
    Need {
        check: Check::PhpExtension("gd"),
        package: "php-gd",
    },
];

/// `true` when everything in `needs` is here. Otherwise panics under CI
/// (`CI=true`: a machine missing a part must not pass silently) and
/// returns `false` with a note elsewhere, so the caller skips.
pub(crate) fn available_or_skip(test: &str, needs: &[&[Need]]) -> bool {
    let missing: Vec<&Need> = needs
        .iter()
        .flat_map(|n| n.iter())
        .filter(|n| !n.met())
        .collect();
    if missing.is_empty() {
        return true;
    }
    let mut packages: Vec<&str> = missing.iter().map(|n| n.package).collect();
    packages.sort_unstable();
    packages.dedup();
    let what: Vec<&str> = missing.iter().map(|n| n.what()).collect();
    let hint = format!(
        "missing {} (apt-get install -y {})",
        what.join(", "),
        packages.join(" ")
    );
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{hint} but CI=true; {test} cannot run");
    }
    eprintln!("skipping {test}: {hint}");
    false
}

/// A program on PATH, or in the sbin folders that a non-login PATH may
/// lack.
pub(crate) fn find_program(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin", "/usr/bin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

fn running_as_root() -> bool {
    // `/proc/self` belongs to the effective user; no libc call needed.
    std::fs::metadata("/proc/self").is_ok_and(|m| m.uid() == 0)
}

// ---------------------------------------------------------------------------
// Deadlines and child processes

/// The end of a test's time budget.
#[derive(Clone, Copy)]
pub(crate) struct Deadline(Instant);

impl Deadline {
    pub(crate) fn after(limit: Duration) -> Deadline {
        Deadline(Instant::now() + limit)
    }

    pub(crate) fn remaining(&self) -> Duration {
        self.0.saturating_duration_since(Instant::now())
    }

    /// At most `cap`, and never past the deadline.
    pub(crate) fn cap(&self, cap: Duration) -> Duration {
        self.remaining().min(cap)
    }

    pub(crate) fn check(&self, what: &str) -> Result<(), String> {
        if self.remaining().is_zero() {
            Err(format!("test deadline passed before {what}"))
        } else {
            Ok(())
        }
    }
}

/// A child process that is killed (and reaped) when dropped.
pub(crate) struct KillOnDrop(pub Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Runs `cmd` with stdout and stderr going to `out` and `err` (files, so
/// that a chatty child never blocks on a full pipe), killing it after
/// `limit`.
fn run_bounded(
    cmd: &mut Command,
    limit: Duration,
    out: &Path,
    err: &Path,
) -> Result<ExitStatus, String> {
    let stdout = File::create(out).map_err(|e| format!("{}: {e}", out.display()))?;
    let stderr = File::create(err).map_err(|e| format!("{}: {e}", err.display()))?;
    let child = cmd
        .stdin(Stdio::null())
        .stdout(stdout)
        .stderr(stderr)
        .spawn()
        .map_err(|e| format!("cannot run {:?}: {e}", cmd.get_program()))?;
    let mut child = KillOnDrop(child);
    let end = Instant::now() + limit;
    loop {
        match child.0.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= end => {
                return Err(format!(
                    "{:?} still running after {limit:?}; killed",
                    cmd.get_program()
                ))
            }
            Ok(None) => std::thread::sleep(Duration::from_millis(10)),
            Err(e) => return Err(format!("waiting for {:?}: {e}", cmd.get_program())),
        }
    }
}

/// The last `max` bytes of a log file, or a note that it cannot be read.
pub(crate) fn tail(path: &Path, max: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let from = bytes.len().saturating_sub(max);
            String::from_utf8_lossy(&bytes[from..]).into_owned()
        }
        Err(e) => format!("({}: {e})", path.display()),
    }
}

/// The first `max` characters of `text`, marked when cut.
pub(crate) fn excerpt(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        Some((i, _)) => format!("{}\n[… {} more bytes]", &text[..i], text.len() - i),
        None => text.to_string(),
    }
}

/// Prints how long each step of a test took (seen with `--nocapture`), so
/// slow steps show up in CI logs.
pub(crate) struct Steps {
    test: &'static str,
    start: Instant,
    last: RefCell<Instant>,
}

impl Steps {
    pub(crate) fn new(test: &'static str) -> Steps {
        let now = Instant::now();
        Steps {
            test,
            start: now,
            last: RefCell::new(now),
        }
    }

    /// Ends the current step.
    pub(crate) fn done(&self, step: &str) {
        let now = Instant::now();
        let took = now - *self.last.borrow();
        *self.last.borrow_mut() = now;
        eprintln!(
            "[{}] {step}: {:.2}s (total {:.2}s)",
            self.test,
            took.as_secs_f64(),
            (now - self.start).as_secs_f64()
        );
    }
}

// ---------------------------------------------------------------------------
// MariaDB

/// How long `mariadb-install-db` and the server start may take.
const MARIADB_START: Duration = Duration::from_secs(60);

/// A private MariaDB on a unix socket in a temporary folder, without TCP;
/// killed on drop.
pub(crate) struct MariaDb {
    dir: tempfile::TempDir,
    socket: PathBuf,
    user: String,
    server: Option<KillOnDrop>,
}

impl MariaDb {
    /// Creates the system tables and starts the server, waiting until it
    /// answers a query: at most [`MARIADB_START`], and never past the
    /// test's `deadline`.
    pub(crate) fn start(deadline: Deadline) -> Result<MariaDb, String> {
        let deadline = Deadline::after(deadline.cap(MARIADB_START));
        let dir = tempfile::Builder::new()
            .prefix("htgate-mariadb")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        let socket = dir.path().join("mysqld.sock");
        // sun_path holds 108 bytes; a long TMPDIR would make the server
        // fail with a less obvious message.
        if socket.as_os_str().len() > 100 {
            return Err(format!("socket path too long: {}", socket.display()));
        }
        let root = running_as_root();
        // The server refuses to run as root unless told to.
        let user = if root {
            "root".to_string()
        } else {
            std::env::var("USER").unwrap_or_else(|_| "root".into())
        };
        let data = dir.path().join("data");
        let tmp = dir.path().join("tmp");
        std::fs::create_dir_all(&tmp).map_err(|e| format!("mkdir tmp: {e}"))?;
        let mut me = MariaDb {
            socket,
            user,
            server: None,
            dir,
        };

        let install = find_program("mariadb-install-db").ok_or("mariadb-install-db not found")?;
        let mut cmd = Command::new(install);
        // --no-defaults: the machine's /etc/mysql must not leak in.
        // Socket authentication: the OS user that runs the test is the
        // database superuser, no password to keep.
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg("--auth-root-authentication-method=socket")
            .arg("--skip-test-db");
        if root {
            cmd.arg("--user=root");
        }
        let status = run_bounded(
            &mut cmd,
            deadline.remaining(),
            &me.path("install.log"),
            &me.path("install.err"),
        )?;
        if !status.success() {
            return Err(format!(
                "mariadb-install-db failed ({status})\n{}",
                me.logs()
            ));
        }

        let mariadbd = find_program("mariadbd").ok_or("mariadbd not found")?;
        let log = File::create(me.path("mariadbd.out")).map_err(|e| e.to_string())?;
        let mut cmd = Command::new(mariadbd);
        cmd.arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", me.socket.display()))
            .arg(format!("--pid-file={}", me.path("mysqld.pid").display()))
            .arg(format!("--log-error={}", me.path("error.log").display()))
            .arg(format!("--tmpdir={}", tmp.display()))
            .arg("--skip-networking")
            // Small: several tests may run at once on a small machine.
            .arg("--innodb-buffer-pool-size=32M")
            .arg("--innodb-log-file-size=8M");
        if root {
            cmd.arg("--user=root");
        }
        let child = cmd
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run mariadbd: {e}"))?;
        me.server = Some(KillOnDrop(child));

        loop {
            if let Some(server) = me.server.as_mut() {
                if let Ok(Some(status)) = server.0.try_wait() {
                    return Err(format!("mariadbd exited ({status})\n{}", me.logs()));
                }
            }
            if me.socket.exists() && me.sql("SELECT 1").is_ok() {
                return Ok(me);
            }
            if deadline.remaining().is_zero() {
                return Err(format!("mariadbd not answering in time\n{}", me.logs()));
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// The unix socket the server listens on.
    pub(crate) fn socket(&self) -> &Path {
        &self.socket
    }

    /// Runs SQL statements as the superuser; returns what the client
    /// printed.
    pub(crate) fn sql(&self, sql: &str) -> Result<String, String> {
        let client = find_program("mariadb").ok_or("mariadb client not found")?;
        let out = self.path("client.out");
        let err = self.path("client.err");
        let status = run_bounded(
            Command::new(client)
                .arg("--no-defaults")
                .arg(format!("--socket={}", self.socket.display()))
                .arg(format!("--user={}", self.user))
                .arg("--batch")
                .arg("-e")
                .arg(sql),
            Duration::from_secs(20),
            &out,
            &err,
        )?;
        if status.success() {
            Ok(std::fs::read_to_string(&out).unwrap_or_default())
        } else {
            Err(format!("mariadb: {sql}: {}", tail(&err, 2000)))
        }
    }

    /// A database and a user with every right on it, as a hosting panel
    /// creates them.
    pub(crate) fn create_database(
        &self,
        db: &str,
        user: &str,
        password: &str,
    ) -> Result<(), String> {
        self.sql(&format!(
            "CREATE DATABASE `{db}` CHARACTER SET utf8mb4; \
             CREATE USER '{user}'@'localhost' IDENTIFIED BY '{password}'; \
             GRANT ALL PRIVILEGES ON `{db}`.* TO '{user}'@'localhost';"
        ))
        .map(|_| ())
    }

    /// The ends of the install and server logs.
    pub(crate) fn logs(&self) -> String {
        let mut s = String::new();
        for name in ["install.err", "mariadbd.out", "error.log"] {
            let _ = writeln!(s, "== {name}\n{}", tail(&self.path(name), 3000));
        }
        s
    }
}

// ---------------------------------------------------------------------------
// Site trees

/// Copies `from` into `to`, following symlinks so that the result is one
/// plain tree (Debian's packages link into /etc and /var/lib, and a site
/// root must not depend on that). `skip` gets paths relative to `from`.
/// Dangling links are left out, as a web server would 404 them anyway.
pub(crate) fn copy_resolved(
    from: &Path,
    to: &Path,
    skip: &dyn Fn(&Path) -> bool,
) -> Result<(), String> {
    copy_dir(from, to, Path::new(""), skip, 0)
}

fn copy_dir(
    from: &Path,
    to: &Path,
    rel: &Path,
    skip: &dyn Fn(&Path) -> bool,
    depth: usize,
) -> Result<(), String> {
    // Linked folders could form a loop; real packages are far shallower.
    if depth > 32 {
        return Err(format!("{} nests too deep (a link loop?)", from.display()));
    }
    std::fs::create_dir_all(to).map_err(|e| format!("mkdir {}: {e}", to.display()))?;
    let entries = std::fs::read_dir(from).map_err(|e| format!("{}: {e}", from.display()))?;
    for entry in entries {
        let entry = entry.map_err(|e| format!("{}: {e}", from.display()))?;
        let name = entry.file_name();
        let rel = rel.join(&name);
        if skip(&rel) {
            continue;
        }
        let src = entry.path();
        let dst = to.join(&name);
        // metadata() follows links; an error here is a dangling link.
        let Ok(meta) = std::fs::metadata(&src) else {
            continue;
        };
        if meta.is_dir() {
            copy_dir(&src, &dst, &rel, skip, depth + 1)?;
        } else {
            std::fs::copy(&src, &dst).map_err(|e| {
                format!(
                    "copy {}: {e} (the package's private files need root to read)",
                    src.display()
                )
            })?;
        }
    }
    Ok(())
}

fn write_file(path: &Path, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("mkdir {}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
}

/// DokuWiki's "deny everything" `.htaccess`, as upstream ships it in
/// `conf/`, `data/`, `inc/`, `bin/` and `vendor/` (Debian keeps some of
/// them elsewhere or not at all).
const DOKUWIKI_DENY: &str = "## no access to this directory
<IfModule mod_authz_core.c>
    Require all denied
</IfModule>
<IfModule !mod_authz_core.c>
    Order allow,deny
    Deny from all
</IfModule>
";

/// The DokuWiki account the tests log in with (group `user` may edit and
/// upload under Debian's default ACL).
pub(crate) const DOKUWIKI_USER: &str = "tester";
pub(crate) const DOKUWIKI_PASSWORD: &str = "htgate-secret-42";

/// Builds a self-contained DokuWiki in `root` from Debian's package, laid
/// out as upstream's tarball is (conf/, data/, inc/, lib/ in the site
/// root, each protected by its own `.htaccess`), with nice URLs on: the
/// rewrite block of the shipped `.htaccess` uncommented and
/// `$conf['userewrite'] = 1`, as DokuWiki's documentation says (and
/// `useslash`, so that `/ns/page` names `ns:page`).
pub(crate) fn dokuwiki_tree(root: &Path) -> Result<(), String> {
    let share = Path::new("/usr/share/dokuwiki");
    copy_resolved(share, root, &|rel| {
        // `.htaccess` is Debian's link to /etc; it is rebuilt below from
        // the shipped `.htaccess.dist`. Debian's preload.php points the
        // configuration at /etc/dokuwiki; upstream has none.
        [".htaccess", ".htaccess.dist.md5sum", "inc/preload.php"]
            .iter()
            .any(|s| rel == Path::new(s))
    })?;
    copy_resolved(Path::new("/etc/dokuwiki"), &root.join("conf"), &|rel| {
        // Debian's web server snippets and its copy of the root .htaccess.
        ["apache.conf", "lighttpd.conf", "htaccess"]
            .iter()
            .any(|s| rel == Path::new(s))
    })?;
    copy_resolved(
        Path::new("/var/lib/dokuwiki/data"),
        &root.join("data"),
        &|_| false,
    )?;
    for dir in ["conf", "data", "inc", "bin", "vendor"] {
        let h = root.join(dir).join(".htaccess");
        if !h.exists() {
            write_file(&h, DOKUWIKI_DENY)?;
        }
    }

    let dist = share.join(".htaccess.dist");
    let dist = std::fs::read_to_string(&dist).map_err(|e| format!("{}: {e}", dist.display()))?;
    write_file(&root.join(".htaccess"), &dokuwiki_nice_urls(&dist)?)?;

    // Upstream's default; Debian's points at /var/lib/dokuwiki.
    let main = root.join("conf/dokuwiki.php");
    let text = std::fs::read_to_string(&main).map_err(|e| format!("{}: {e}", main.display()))?;
    let savedir = Regex::new(r"(?m)^\$conf\['savedir'\].*$").expect("regex");
    ensure!(
        savedir.is_match(&text),
        "no savedir line in {}",
        main.display()
    );
    let text = savedir.replace(&text, "$$conf['savedir'] = './data';");
    write_file(&main, &text)?;

    write_file(
        &root.join("conf/local.php"),
        "<?php
$conf['title'] = 'htgate wiki';
$conf['useacl'] = 1;
$conf['superuser'] = '@admin';
$conf['userewrite'] = 1;
$conf['useslash'] = 1;
",
    )?;
    // DokuWiki's plain auth accepts unsalted MD5 among its hash formats.
    let md5 = md5_hex(DOKUWIKI_PASSWORD.as_bytes());
    write_file(
        &root.join("conf/users.auth.php"),
        &format!(
            "# users.auth.php\n# <?php exit()?>\n# Don't modify the lines above\n\
             {DOKUWIKI_USER}:{md5}:Test User:tester@example.test:user\n"
        ),
    )?;
    Ok(())
}

fn md5_hex(bytes: &[u8]) -> String {
    use md5::{Digest, Md5};
    Md5::digest(bytes).iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Uncomments the block below "Uncomment these rules if you want to have
/// nice URLs" up to the next `##` comment (so `RewriteBase`, which a site
/// at the root does not need, and the HTTPS-only XML-RPC rule stay off).
pub(crate) fn dokuwiki_nice_urls(dist: &str) -> Result<String, String> {
    let mut out = String::new();
    let mut state = 0; // 0 before the block, 1 in its heading, 2 in it, 3 after
    for line in dist.lines() {
        let mut line = line;
        if state == 0 && line.contains("Uncomment these rules if you want to have nice URLs") {
            state = 1;
        } else if (state == 1 || state == 2) && !line.starts_with("##") && line.starts_with('#') {
            state = 2;
            line = &line[1..];
        } else if state == 2 {
            state = 3;
        }
        out.push_str(line);
        out.push('\n');
    }
    ensure!(
        out.lines().any(|l| l.trim() == "RewriteEngine on"),
        "the shipped .htaccess.dist has no nice-URL block to uncomment:\n{dist}"
    );
    Ok(out)
}

/// WordPress's database credentials in the test.
pub(crate) const WP_DB: (&str, &str, &str) = ("wordpress", "wpuser", "wp-pass-7");

/// Builds a WordPress site in `root` from Debian's package with an
/// ordinary `wp-config.php` (instead of Debian's loader, which reads
/// `/etc/wordpress/config-<host>.php`) pointing at the MariaDB socket.
pub(crate) fn wordpress_tree(root: &Path, db_socket: &Path) -> Result<(), String> {
    copy_resolved(Path::new("/usr/share/wordpress"), root, &|rel| {
        // The translations (30 MB) are never read by an English install;
        // `.htaccess` is Debian's commented-out link to /etc and
        // wp-config.php Debian's loader, both replaced.
        ["wp-content/languages", ".htaccess", "wp-config.php"]
            .iter()
            .any(|s| rel == Path::new(s))
    })?;
    std::fs::create_dir_all(root.join("wp-content/uploads"))
        .map_err(|e| format!("mkdir uploads: {e}"))?;
    let (name, user, password) = WP_DB;
    let socket = db_socket.display();
    write_file(
        &root.join("wp-config.php"),
        &format!(
            r#"<?php
define( 'DB_NAME', '{name}' );
define( 'DB_USER', '{user}' );
define( 'DB_PASSWORD', '{password}' );
define( 'DB_HOST', 'localhost:{socket}' );
define( 'DB_CHARSET', 'utf8mb4' );
define( 'DB_COLLATE', '' );

define( 'AUTH_KEY',         'htgate test auth key' );
define( 'SECURE_AUTH_KEY',  'htgate test secure auth key' );
define( 'LOGGED_IN_KEY',    'htgate test logged in key' );
define( 'NONCE_KEY',        'htgate test nonce key' );
define( 'AUTH_SALT',        'htgate test auth salt' );
define( 'SECURE_AUTH_SALT', 'htgate test secure auth salt' );
define( 'LOGGED_IN_SALT',   'htgate test logged in salt' );
define( 'NONCE_SALT',       'htgate test nonce salt' );

$table_prefix = 'wp_';

define( 'WP_DEBUG', false );
// No outgoing HTTP: cron would call the site's own (unresolvable) name,
// and the dashboard's update checks would wait on api.wordpress.org.
define( 'DISABLE_WP_CRON', true );
define( 'WP_HTTP_BLOCK_EXTERNAL', true );
define( 'AUTOMATIC_UPDATER_DISABLED', true );
define( 'FS_METHOD', 'direct' );
// Application passwords need HTTPS unless the site says it is local.
define( 'WP_ENVIRONMENT_TYPE', 'local' );
// Debian's install.php stores these two globals as options (its own
// config sets them); empty means the upstream default wp-content/uploads.
$upload_path = '';
$upload_url_path = '';

if ( ! defined( 'ABSPATH' ) ) {{
	define( 'ABSPATH', __DIR__ . '/' );
}}
require_once ABSPATH . 'wp-settings.php';
"#
        ),
    )
}

/// WordPress's stock `.htaccess` block, as `save_mod_rewrite_rules()`
/// writes it under Apache.
pub(crate) const WORDPRESS_HTACCESS: &str = "# BEGIN WordPress
# The directives (lines) between \"BEGIN WordPress\" and \"END WordPress\" are
# dynamically generated, and should only be modified via WordPress filters.
# Any changes to the directives between these markers will be overwritten.
<IfModule mod_rewrite.c>
RewriteEngine On
RewriteRule .* - [E=HTTP_AUTHORIZATION:%{HTTP:Authorization}]
RewriteBase /
RewriteRule ^index\\.php$ - [L]
RewriteCond %{REQUEST_FILENAME} !-f
RewriteCond %{REQUEST_FILENAME} !-d
RewriteRule . /index.php [L]
</IfModule>

# END WordPress
";

/// A small valid PNG (8×8 RGB) whose pixels come from `seed`, so an
/// upload can be told apart from any file already on the server.
pub(crate) fn png(seed: u64) -> Vec<u8> {
    let (w, h) = (8u32, 8u32);
    let stride = 1 + 3 * w as usize;
    // Each row starts with its filter byte, 0: none.
    let mut raw = vec![0u8; stride * h as usize];
    let mut x = seed | 1;
    for (i, byte) in raw.iter_mut().enumerate() {
        if i % stride != 0 {
            // xorshift: cheap varied bytes
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            *byte = x as u8;
        }
    }
    // zlib stream with one stored (uncompressed) deflate block.
    let mut z = vec![0x78, 0x01, 0x01];
    z.extend_from_slice(&(raw.len() as u16).to_le_bytes());
    z.extend_from_slice(&(!(raw.len() as u16)).to_le_bytes());
    z.extend_from_slice(&raw);
    let (mut a, mut b) = (1u32, 0u32);
    for &byte in &raw {
        a = (a + u32::from(byte)) % 65521;
        b = (b + a) % 65521;
    }
    z.extend_from_slice(&((b << 16) | a).to_be_bytes());

    let mut ihdr = Vec::new();
    ihdr.extend_from_slice(&w.to_be_bytes());
    ihdr.extend_from_slice(&h.to_be_bytes());
    ihdr.extend_from_slice(&[8, 2, 0, 0, 0]); // 8-bit RGB
    let mut png = b"\x89PNG\r\n\x1a\n".to_vec();
    for (kind, data) in [(&b"IHDR"[..], &ihdr[..]), (b"IDAT", &z), (b"IEND", &[])] {
        png.extend_from_slice(&(data.len() as u32).to_be_bytes());
        let start = png.len();
        png.extend_from_slice(kind);
        png.extend_from_slice(data);
        let crc = crc32(&png[start..]);
        png.extend_from_slice(&crc.to_be_bytes());
    }
    png
}

fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for &b in bytes {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

// ---------------------------------------------------------------------------
// htgate serving one PHP site

/// htgate in config mode with one site whose `.php` files go to PHP-FPM,
/// on its own runtime (the test thread blocks on curl). Shut down, with a
/// bound, on drop.
pub(crate) struct Served {
    runtime: Option<tokio::runtime::Runtime>,
    server: Option<HostingServer>,
    pub port: u16,
}

impl Served {
    /// Writes `dir/htgate.toml` for `domain` → `root` and starts htgate on
    /// a free loopback port.
    pub(crate) fn start(
        dir: &Path,
        domain: &str,
        root: &Path,
        php_fpm: &Path,
    ) -> Result<Served, String> {
        let text = format!(
            r#"
[[listen]]
address = "127.0.0.1:0"

[[site]]
name = "app"
domains = ["{domain}"]
root = "{}"
php_fpm = "{}"
"#,
            root.display(),
            php_fpm.display()
        );
        let path = dir.join("htgate.toml");
        write_file(&path, &text)?;
        let config = Config::parse(&path, &text).map_err(|e| format!("config: {e}\n{text}"))?;
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .map_err(|e| format!("runtime: {e}"))?;
        let server = runtime
            .block_on(async { tokio::time::timeout(Duration::from_secs(20), start(&config)).await })
            .map_err(|_| "htgate did not start within 20s".to_string())?
            .map_err(|e| format!("htgate start: {e:#}"))?;
        let port = server
            .addr(false)
            .ok_or("htgate has no plain-HTTP listener")?
            .port();
        Ok(Served {
            runtime: Some(runtime),
            server: Some(server),
            port,
        })
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        if let (Some(rt), Some(server)) = (self.runtime.as_ref(), self.server.take()) {
            rt.block_on(async {
                let _ = tokio::time::timeout(Duration::from_secs(10), server.shutdown()).await;
            });
        }
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_timeout(Duration::from_secs(5));
        }
    }
}

// ---------------------------------------------------------------------------
// The browser

/// One answer.
pub(crate) struct Response {
    pub status: u16,
    /// Names lower-cased, in order; repeated headers stay repeated.
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub(crate) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The first header of that (case-insensitive) name.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every header of that name.
    pub(crate) fn headers_named(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// How long one request may take (debug builds of htgate, a cold PHP and
/// WordPress's installer are slow, but not this slow).
const REQUEST_LIMIT: Duration = Duration::from_secs(60);

/// A browser made of curl: one cookie jar per browser, every request sent
/// to `host:port` on 127.0.0.1 with that Host, no redirects followed (the
/// tests look at them). Records a trail of what it did for failure
/// messages.
pub(crate) struct Browser {
    host: String,
    port: u16,
    dir: tempfile::TempDir,
    deadline: Deadline,
    trail: RefCell<Vec<String>>,
    last_body: RefCell<String>,
}

/// A request body.
pub(crate) enum Body<'a> {
    None,
    /// `application/x-www-form-urlencoded`.
    Form(&'a [(&'a str, &'a str)]),
    /// `multipart/form-data`: text fields and one file (field name, path,
    /// content type).
    Multipart(&'a [(&'a str, &'a str)], (&'a str, &'a Path, &'a str)),
    /// Raw bytes with a content type.
    Raw(&'a str, &'a [u8]),
}

impl Browser {
    pub(crate) fn new(host: &str, port: u16, deadline: Deadline) -> Result<Browser, String> {
        let dir = tempfile::Builder::new()
            .prefix("htgate-browser")
            .tempdir()
            .map_err(|e| format!("tempdir: {e}"))?;
        std::fs::write(dir.path().join("cookies.txt"), "").map_err(|e| e.to_string())?;
        Ok(Browser {
            host: host.to_string(),
            port,
            dir,
            deadline,
            trail: RefCell::new(Vec::new()),
            last_body: RefCell::new(String::new()),
        })
    }

    /// `http://host:port` — what the application sees as its origin.
    pub(crate) fn origin(&self) -> String {
        format!("http://{}:{}", self.host, self.port)
    }

    pub(crate) fn get(&self, path: &str) -> Result<Response, String> {
        self.send("GET", path, &[], Body::None, true)
    }

    /// A GET without the cookie jar (a visitor who is not logged in).
    pub(crate) fn get_anonymous(&self, path: &str) -> Result<Response, String> {
        self.send("GET", path, &[], Body::None, false)
    }

    pub(crate) fn post_form(
        &self,
        path: &str,
        fields: &[(&str, &str)],
    ) -> Result<Response, String> {
        self.send("POST", path, &[], Body::Form(fields), true)
    }

    pub(crate) fn post_multipart(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        file: (&str, &Path, &str),
    ) -> Result<Response, String> {
        self.send("POST", path, &[], Body::Multipart(fields, file), true)
    }

    /// Any request; `path` may also be a full URL on this origin.
    pub(crate) fn send(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Body,
        cookies: bool,
    ) -> Result<Response, String> {
        self.deadline.check(&format!("{method} {path}"))?;
        let url = if path.starts_with("http://") {
            path.to_string()
        } else {
            format!("{}{path}", self.origin())
        };
        let file = |n: &str| self.dir.path().join(n);
        let limit = self.deadline.cap(REQUEST_LIMIT);
        let mut args: Vec<OsString> = Vec::new();
        let mut arg = |a: &str| args.push(a.into());
        arg("-sS");
        // Globbing would eat `[]` and `{}` in URLs such as `do[save]`.
        arg("--globoff");
        arg("--max-time");
        arg(&limit.as_secs().max(1).to_string());
        arg("--resolve");
        arg(&format!("{}:{}:127.0.0.1", self.host, self.port));
        arg("-X");
        arg(method);
        for (n, v) in headers {
            arg("-H");
            arg(&format!("{n}: {v}"));
        }
        match body {
            Body::None => {}
            Body::Form(fields) => {
                if fields.is_empty() {
                    arg("--data");
                    arg("");
                }
                for (n, v) in fields {
                    // Encodes the value only; PHP reads `do[save]` raw.
                    arg("--data-urlencode");
                    arg(&format!("{n}={v}"));
                }
            }
            Body::Multipart(fields, (name, path, mime)) => {
                for (n, v) in fields {
                    // --form-string: no `@file` / `<file` interpretation.
                    arg("--form-string");
                    arg(&format!("{n}={v}"));
                }
                arg("-F");
                arg(&format!("{name}=@{};type={mime}", path.display()));
            }
            Body::Raw(mime, bytes) => {
                std::fs::write(file("request.body"), bytes).map_err(|e| e.to_string())?;
                arg("-H");
                arg(&format!("Content-Type: {mime}"));
                arg("--data-binary");
                arg(&format!("@{}", file("request.body").display()));
            }
        }
        if cookies {
            let jar = file("cookies.txt").display().to_string();
            arg("-b");
            arg(&jar);
            arg("-c");
            arg(&jar);
        }
        arg("-D");
        arg(&file("response.headers").display().to_string());
        arg("-o");
        arg(&file("response.body").display().to_string());
        arg("-w");
        arg("%{http_code}");
        arg(&url);

        let _ = std::fs::remove_file(file("response.headers"));
        let _ = std::fs::remove_file(file("response.body"));
        let status = run_bounded(
            Command::new("curl").args(&args),
            limit + Duration::from_secs(5),
            &file("curl.out"),
            &file("curl.err"),
        );
        let code = std::fs::read_to_string(file("curl.out")).unwrap_or_default();
        let line = format!("{method} {path}");
        match status {
            Ok(s) if s.success() => {}
            Ok(s) => {
                let err = tail(&file("curl.err"), 1000);
                self.trail.borrow_mut().push(format!("{line} -> curl {s}"));
                return Err(format!("{line}: curl failed ({s}): {err}"));
            }
            Err(e) => {
                self.trail.borrow_mut().push(format!("{line} -> {e}"));
                return Err(format!("{line}: {e}"));
            }
        }
        let status: u16 = code
            .trim()
            .parse()
            .map_err(|_| format!("{line}: curl printed no status: {code:?}"))?;
        let raw_headers = std::fs::read_to_string(file("response.headers")).unwrap_or_default();
        let body = std::fs::read(file("response.body")).unwrap_or_default();
        let response = Response {
            status,
            headers: parse_headers(&raw_headers),
            body,
        };
        let location = response
            .header("location")
            .map(|l| format!(" -> {l}"))
            .unwrap_or_default();
        self.trail.borrow_mut().push(format!(
            "{line} -> {status}{location} ({} bytes)",
            response.body.len()
        ));
        *self.last_body.borrow_mut() = response.text();
        Ok(response)
    }

    /// What happened, for a failure message: every request with its status
    /// and the start of the last body.
    pub(crate) fn report(&self) -> String {
        format!(
            "--- requests ---\n{}\n--- last response body ---\n{}",
            self.trail.borrow().join("\n"),
            excerpt(&self.last_body.borrow(), 3000)
        )
    }
}

/// The header fields of the last response in curl's `-D` dump (earlier
/// blocks are `100 Continue`).
fn parse_headers(raw: &str) -> Vec<(String, String)> {
    let block = raw
        .split("\r\n\r\n")
        .filter(|b| !b.trim().is_empty())
        .last()
        .unwrap_or("");
    block
        .lines()
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect()
}

/// `Authorization: Basic` credentials.
pub(crate) fn basic_auth(user: &str, password: &str) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let input = format!("{user}:{password}");
    let mut out = String::from("Basic ");
    for chunk in input.as_bytes().chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, &b)| n | u32::from(b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[(n >> (18 - 6 * i) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------
// HTML

/// A form found in a page: where it posts and its prefilled fields.
pub(crate) struct Form {
    pub action: String,
    pub fields: Vec<(String, String)>,
}

impl Form {
    pub(crate) fn get(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Sets a field (added when absent).
    pub(crate) fn set(&mut self, name: &str, value: &str) {
        match self.fields.iter_mut().find(|(n, _)| n == name) {
            Some(f) => f.1 = value.to_string(),
            None => self.fields.push((name.to_string(), value.to_string())),
        }
    }

    /// The fields as a browser would send them.
    pub(crate) fn pairs(&self) -> Vec<(&str, &str)> {
        self.fields
            .iter()
            .map(|(n, v)| (n.as_str(), v.as_str()))
            .collect()
    }
}

/// The value of `name="…"` (or `'…'`) in one tag, unescaped.
pub(crate) fn attr(tag: &str, name: &str) -> Option<String> {
    let re = Regex::new(&format!(
        r#"(?is)\s{}\s*=\s*(?:"([^"]*)"|'([^']*)')"#,
        regex::escape(name)
    ))
    .expect("attr regex");
    re.captures(tag)
        .and_then(|c| c.get(1).or(c.get(2)))
        .map(|m| unescape(m.as_str()))
}

/// The form whose `<form …>` tag has `id` (or `name`) equal to `id`: its
/// action and the values of its inputs as a browser would submit them
/// (hidden and text inputs, checked boxes; no buttons or files).
pub(crate) fn form(html: &str, id: &str) -> Option<Form> {
    let forms = Regex::new(r"(?is)<form\b[^>]*>.*?</form>").expect("form regex");
    let tag = Regex::new(r"(?is)<form\b[^>]*>").expect("tag regex");
    let inputs = Regex::new(r"(?is)<input\b[^>]*>").expect("input regex");
    let checked = Regex::new(r"(?i)\schecked\b").expect("checked regex");
    for m in forms.find_iter(html) {
        let whole = m.as_str();
        let open = tag.find(whole)?.as_str();
        if attr(open, "id").as_deref() != Some(id) && attr(open, "name").as_deref() != Some(id) {
            continue;
        }
        let mut fields = Vec::new();
        for input in inputs.find_iter(whole).map(|i| i.as_str()) {
            let Some(name) = attr(input, "name") else {
                continue;
            };
            let kind = attr(input, "type").unwrap_or_else(|| "text".into());
            let kind = kind.to_ascii_lowercase();
            let sent = match kind.as_str() {
                "submit" | "button" | "image" | "reset" | "file" => false,
                "checkbox" | "radio" => checked.is_match(input),
                _ => true,
            };
            if sent {
                let value = attr(input, "value").unwrap_or_default();
                fields.push((name, value));
            }
        }
        return Some(Form {
            action: attr(open, "action").unwrap_or_default(),
            fields,
        });
    }
    None
}

/// The common HTML entities, enough for attribute values.
pub(crate) fn unescape(s: &str) -> String {
    s.replace("&quot;", "\"")
        .replace("&#039;", "'")
        .replace("&#39;", "'")
        .replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&amp;", "&")
}

/// `http://host:port/path?q` → `/path?q` (applications put absolute URLs
/// in forms and redirects).
pub(crate) fn path_of(url: &str, origin: &str) -> String {
    match url.strip_prefix(origin) {
        Some("") => "/".into(),
        Some(rest) => rest.to_string(),
        None => url.to_string(),
    }
}

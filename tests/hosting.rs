//! Config mode as a shared host runs it: certificates by SNI (uploaded,
//! automatic, shared), fallback on expiry and deletion, HTTPS signals that
//! cannot be spoofed, force_https, HSTS, 421, ACME answers before
//! `.htaccess`.

use crate::support::probe::eventually;
use crate::support::{files, pki, probe};

use htgate_hosting::config::Config;
use htgate_hosting::run::{start, HostingServer};
use pki::{Issued, DAY};
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// A temporary hosting setup: sites, certificates and the config file.
struct Setup {
    dir: tempfile::TempDir,
    ca: Issued,
    inter: Issued,
}

impl Setup {
    fn new() -> Setup {
        let ca = pki::root("htgate Test Root");
        let inter = pki::intermediate("htgate Test Intermediate", &ca);
        let s = Setup {
            dir: tempfile::tempdir().expect("tempdir"),
            ca,
            inter,
        };
        s.write("ca.pem", &s.ca.pem());
        let default = pki::self_signed(&["default.test"]);
        s.write("default.pem", &default.pem());
        s.write("default.key", &default.key_pem());
        s
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        files::write(self.dir.path(), rel, text);
    }

    /// Installs a leaf for `names` (valid `valid_for`) into the upload
    /// folder of `site`, chain leaf first.
    fn upload(&self, site: &str, names: &[&str], valid_for: Duration) -> Issued {
        let leaf = pki::leaf(names, &self.inter, valid_for);
        self.write(
            &format!("certs/{site}/fullchain.pem"),
            &format!("{}{}", leaf.pem(), self.inter.pem()),
        );
        self.write(&format!("certs/{site}/privkey.pem"), &leaf.key_pem());
        leaf
    }

    /// Puts an "automatic" certificate for `domain` where the ACME store
    /// keeps it, as if issued earlier.
    fn seed_automatic(&self, domain: &str) -> Issued {
        let leaf = pki::leaf(&[domain], &self.inter, 60 * DAY);
        self.write(
            &format!("acme/certificates/{domain}/fullchain.pem"),
            &format!("{}{}", leaf.pem(), self.inter.pem()),
        );
        self.write(
            &format!("acme/certificates/{domain}/privkey.pem"),
            &leaf.key_pem(),
        );
        leaf
    }

    fn config(&self, extra_top: &str, sites: &str) -> Config {
        let text = format!(
            r#"
certificates_dir = "certs"
extra_ca_roots = ["ca.pem"]
cert_check_seconds = 1
{extra_top}

[default_certificate]
cert = "default.pem"
key = "default.key"

[[listen]]
address = "127.0.0.1:0"
[[listen]]
address = "127.0.0.1:0"
tls = true

{sites}
"#
        );
        self.write("htgate.toml", &text);
        match Config::load(&self.path("htgate.toml")) {
            Ok(c) => c,
            Err(e) => panic!("config: {e}"),
        }
    }

    fn site(&self, name: &str, htaccess: &str) -> String {
        self.write(
            &format!("sites/{name}/index.html"),
            &format!("{name} home\n"),
        );
        self.write(&format!("sites/{name}/.htaccess"), htaccess);
        self.path(&format!("sites/{name}")).display().to_string()
    }
}

/// The acme table of a setup whose CA is never reached (stored
/// certificates are fresh, so no order is placed).
const OFFLINE_ACME: &str = r#"
[acme]
directory = "https://127.0.0.1:9/directory"
storage = "acme"
retry_seconds = 3600
"#;

async fn serve(config: &Config) -> (HostingServer, std::net::SocketAddr, std::net::SocketAddr) {
    let server = start(config).await.expect("start");
    let http = server.addr(false).expect("http");
    let https = server.addr(true).expect("https");
    (server, http, https)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_selects_uploaded_wildcard_and_shared_certificates() {
    let s = Setup::new();
    let a = s.site("a", "");
    let w = s.site("w", "");
    s.upload("a", &["a.test", "www.a.test"], 30 * DAY);
    s.upload("w", &["*.w.test"], 30 * DAY);
    let cfg = s.config(
        "",
        &format!(
            r#"
[[site]]
name = "a"
domains = ["a.test", "www.a.test"]
root = "{a}"
[[site]]
name = "w"
domains = ["*.w.test"]
root = "{w}"
"#
        ),
    );
    let (server, _http, https) = serve(&cfg).await;

    let chain = probe::served_chain(https, Some("a.test")).await;
    assert_eq!(chain.len(), 2, "leaf and intermediate");
    assert_eq!(probe::cn(&chain[0]), "a.test", "leaf first");
    assert_eq!(probe::cn(&chain[1]), "htgate Test Intermediate");
    let chain = probe::served_chain(https, Some("www.a.test")).await;
    assert_eq!(probe::cn(&chain[0]), "a.test");

    let chain = probe::served_chain(https, Some("shop.w.test")).await;
    assert_eq!(probe::cn(&chain[0]), "*.w.test", "wildcard");

    let chain = probe::served_chain(https, Some("unknown.test")).await;
    assert_eq!(probe::cn(&chain[0]), "default.test", "unknown name");
    let chain = probe::served_chain(https, None).await;
    assert_eq!(probe::cn(&chain[0]), "default.test", "no SNI");

    // Routing follows Host; SNI of one site with Host of another is 421.
    let ans = probe::get(https, Some(Some("a.test")), "a.test", "/", &[]).await;
    assert_eq!((ans.status, ans.body.as_str()), (200, "a home\n"));
    let ans = probe::get(https, Some(Some("x.w.test")), "x.w.test", "/", &[]).await;
    assert_eq!((ans.status, ans.body.as_str()), (200, "w home\n"));
    let ans = probe::get(https, Some(Some("a.test")), "x.w.test", "/", &[]).await;
    assert_eq!(ans.status, 421, "{ans:?}");
    // Without SNI the Host decides, as with Apache.
    let ans = probe::get(https, Some(None), "x.w.test", "/", &[]).await;
    assert_eq!(ans.status, 200);
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn expired_or_deleted_upload_falls_back_to_the_automatic_certificate() {
    let s = Setup::new();
    let a = s.site("a", "");
    let b = s.site("b", "");
    s.upload("a", &["a.test"], Duration::from_secs(4));
    s.upload("b", &["b.test"], 30 * DAY);
    s.seed_automatic("a.test");
    s.seed_automatic("b.test");
    let cfg = s.config(
        OFFLINE_ACME,
        &format!(
            r#"
[[site]]
name = "a"
domains = ["a.test"]
root = "{a}"
[[site]]
name = "b"
domains = ["b.test"]
root = "{b}"
"#
        ),
    );
    let (server, _http, https) = serve(&cfg).await;
    let uploaded_a = probe::served_chain(https, Some("a.test")).await;
    let uploaded_b = probe::served_chain(https, Some("b.test")).await;
    let auto_a = s.path("acme/certificates/a.test/fullchain.pem");
    let auto_a_serial = {
        let pem = std::fs::read(&auto_a).expect("read");
        let der = rustls_pki_types::CertificateDer::pem_slice_iter(&pem)
            .next()
            .expect("one")
            .expect("pem");
        probe::serial(&der)
    };
    use rustls_pki_types::pem::PemObject;
    assert_ne!(probe::serial(&uploaded_a[0]), auto_a_serial);

    // a's upload expires (4 s): the next handshake gets the automatic one.
    let switched = eventually(Duration::from_secs(15), || async {
        let c = probe::served_chain(https, Some("a.test")).await;
        probe::serial(&c[0]) == auto_a_serial
    })
    .await;
    assert!(switched, "expired upload still served");

    // b's upload is deleted: the automatic one, without a restart.
    std::fs::remove_file(s.path("certs/b/fullchain.pem")).expect("rm");
    std::fs::remove_file(s.path("certs/b/privkey.pem")).expect("rm");
    let switched = eventually(Duration::from_secs(15), || async {
        let c = probe::served_chain(https, Some("b.test")).await;
        probe::serial(&c[0]) != probe::serial(&uploaded_b[0])
    })
    .await;
    assert!(switched, "deleted upload still served");
    let c = probe::served_chain(https, Some("b.test")).await;
    assert_eq!(probe::cn(&c[0]), "b.test");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_upload_on_disk_keeps_the_working_certificate() {
    let s = Setup::new();
    let a = s.site("a", "");
    let good = s.upload("a", &["a.test"], 30 * DAY);
    let cfg = s.config(
        "",
        &format!("[[site]]\nname = \"a\"\ndomains = [\"a.test\"]\nroot = \"{a}\"\n"),
    );
    let (server, _http, https) = serve(&cfg).await;
    let before = probe::served_chain(https, Some("a.test")).await;
    assert_eq!(before[0].as_ref(), good.der().as_slice());
    // A key that does not belong to the certificate is dropped in.
    let other = pki::self_signed(&["x.test"]);
    s.write("certs/a/privkey.pem", &other.key_pem());
    // Look at the folder now (the watcher may already have): the broken
    // pair must be read and refused, not served.
    server.store().refresh();
    let after = probe::served_chain(https, Some("a.test")).await;
    assert_eq!(after[0].as_ref(), good.der().as_slice());
    server.shutdown().await;
}

const FORCE_BY_HEADER: &str = "RewriteEngine On\nRewriteCond %{HTTP:HTTPS} !on\nRewriteRule (.*) https://%{SERVER_NAME}/$1 [QSA,L,R=301]\n";
const FORCE_BY_PROTO: &str = "RewriteEngine On\nRewriteCond %{HTTP:X-Forwarded-Proto} !https\nRewriteRule (.*) https://%{SERVER_NAME}/$1 [QSA,L,R=301]\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn client_https_headers_cannot_be_spoofed() {
    let s = Setup::new();
    let root = s.site("h", FORCE_BY_HEADER);
    s.write("sites/h/p/.htaccess", FORCE_BY_PROTO);
    s.write("sites/h/p/index.html", "p home\n");
    let site = format!("[[site]]\nname = \"h\"\ndomains = [\"h.test\"]\nroot = \"{root}\"\n");
    let cfg = s.config("", &site);
    let (server, http, https) = serve(&cfg).await;
    // Untrusted client on plain HTTP claiming HTTPS: redirected anyway.
    let a = probe::get(http, None, "h.test", "/x?q=1", &[("HTTPS", "on")]).await;
    assert_eq!(a.status, 301, "{a:?}");
    assert_eq!(a.header("location"), Some("https://h.test/x?q=1"));
    let a = probe::get(
        http,
        None,
        "h.test",
        "/p/",
        &[("X-Forwarded-Proto", "https")],
    )
    .await;
    assert_eq!(a.status, 301, "{a:?}");
    // A real TLS connection passes both rules without a redirect.
    let a = probe::get(https, Some(Some("h.test")), "h.test", "/", &[]).await;
    assert_eq!((a.status, a.body.as_str()), (200, "h home\n"), "{a:?}");
    let a = probe::get(
        https,
        Some(Some("h.test")),
        "h.test",
        "/p/",
        &[("X-Forwarded-Proto", "http")],
    )
    .await;
    assert_eq!((a.status, a.body.as_str()), (200, "p home\n"), "{a:?}");
    server.shutdown().await;

    // From a trusted proxy the headers are believed.
    let cfg = s.config("trusted_proxies = [\"127.0.0.1\"]", &site);
    let (server, http, _https) = serve(&cfg).await;
    let a = probe::get(http, None, "h.test", "/", &[("HTTPS", "on")]).await;
    assert_eq!((a.status, a.body.as_str()), (200, "h home\n"), "{a:?}");
    let a = probe::get(
        http,
        None,
        "h.test",
        "/p/",
        &[("X-Forwarded-Proto", "https")],
    )
    .await;
    assert_eq!((a.status, a.body.as_str()), (200, "p home\n"), "{a:?}");
    let a = probe::get(http, None, "h.test", "/", &[]).await;
    assert_eq!(a.status, 301);
    server.shutdown().await;

    // `client_https_headers = "pass"`: Apache's raw behaviour.
    let cfg = s.config("client_https_headers = \"pass\"", &site);
    let (server, http, _https) = serve(&cfg).await;
    let a = probe::get(http, None, "h.test", "/", &[("HTTPS", "on")]).await;
    assert_eq!(a.status, 200, "{a:?}");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_https_and_hsts() {
    let s = Setup::new();
    let root = s.site("f", "");
    let site = format!(
        "[[site]]\nname = \"f\"\ndomains = [\"f.test\"]\nroot = \"{root}\"\nforce_https = true\nhsts = {{ max_age = 63072000, include_subdomains = true, preload = true }}\n"
    );
    let cfg = s.config("", &site);
    let (server, http, https) = serve(&cfg).await;
    let a = probe::get(http, None, "f.test", "/a/b?c=d", &[]).await;
    assert_eq!(a.status, 301);
    assert_eq!(
        a.header("location").map(str::to_string),
        Some(format!("https://f.test:{}/a/b?c=d", https.port()))
    );
    assert_eq!(
        a.header("strict-transport-security"),
        None,
        "never on plain HTTP"
    );
    let a = probe::get(https, Some(Some("f.test")), "f.test", "/", &[]).await;
    assert_eq!(a.status, 200);
    assert_eq!(
        a.header("strict-transport-security"),
        Some("max-age=63072000; includeSubDomains; preload")
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_challenges_are_answered_before_htaccess() {
    let s = Setup::new();
    // Everything denied, rewritten and forced to HTTPS: the CA must still
    // get its answer over plain HTTP.
    let root = s.site(
        "c",
        "Require all denied\nRewriteEngine On\nRewriteRule ^ index.php [L]\n",
    );
    let site = format!(
        "[[site]]\nname = \"c\"\ndomains = [\"c.test\"]\nroot = \"{root}\"\nforce_https = true\n"
    );
    let cfg = s.config(OFFLINE_ACME, &site);
    let (server, http, _https) = serve(&cfg).await;
    let acme = server.acme().expect("acme");
    acme.challenges().insert("tok123", "tok123.thumb");
    let a = probe::get(
        http,
        None,
        "c.test",
        "/.well-known/acme-challenge/tok123",
        &[],
    )
    .await;
    assert_eq!((a.status, a.body.as_str()), (200, "tok123.thumb"), "{a:?}");
    let a = probe::get(
        http,
        None,
        "c.test",
        "/.well-known/acme-challenge/other",
        &[],
    )
    .await;
    assert_eq!(a.status, 404);
    let a = probe::get(http, None, "c.test", "/", &[]).await;
    assert_eq!(a.status, 301);
    server.shutdown().await;
}

#[test]
fn cert_install_rejects_bad_uploads_and_keeps_the_old_one() {
    let s = Setup::new();
    let a = s.site("a", "");
    s.config(
        "",
        &format!("[[site]]\nname = \"a\"\ndomains = [\"a.test\"]\nroot = \"{a}\"\n"),
    );
    let bin = env!("CARGO_BIN_EXE_htgate");
    let install = |cert: &str, key: &str| {
        s.write("up/cert.pem", cert);
        s.write("up/key.pem", key);
        outcome(
            std::process::Command::new(bin)
                .args(["cert", "install", "--config"])
                .arg(s.path("htgate.toml"))
                .args(["--site", "a", "--cert"])
                .arg(s.path("up/cert.pem"))
                .arg("--key")
                .arg(s.path("up/key.pem")),
        )
    };
    let good = pki::leaf(&["a.test"], &s.inter, 30 * DAY);
    let (ok, text) = install(&format!("{}{}", good.pem(), s.inter.pem()), &good.key_pem());
    assert!(ok, "{text}");
    let installed = std::fs::read(s.path("certs/a/fullchain.pem")).expect("installed");

    // A reversed chain is put in order (and said so).
    let (ok, text) = install(&format!("{}{}", s.inter.pem(), good.pem()), &good.key_pem());
    assert!(ok, "{text}");
    assert!(text.to_lowercase().contains("order"), "{text}");

    let other = pki::leaf(&["a.test"], &s.inter, 30 * DAY);
    let old = pki::leaf(&["a.test"], &s.inter, Duration::from_secs(1));
    let wrong = pki::leaf(&["b.test"], &s.inter, 30 * DAY);
    std::thread::sleep(Duration::from_secs(2));
    let chain = |leaf: &Issued| format!("{}{}", leaf.pem(), s.inter.pem());
    let cases: Vec<(String, String, &str)> = vec![
        (chain(&good), other.key_pem(), "key"),
        (chain(&old), old.key_pem(), "expired"),
        ("hello\n".into(), good.key_pem(), "certificate"),
        (good.pem(), good.key_pem(), "intermediate"),
        (chain(&wrong), wrong.key_pem(), "a.test"),
    ];
    for (cert, key, word) in cases {
        let (ok, text) = install(&cert, &key);
        assert!(!ok, "accepted: {text}");
        assert!(text.contains(word), "`{word}` not in: {text}");
        assert_eq!(
            std::fs::read(s.path("certs/a/fullchain.pem")).expect("still there"),
            installed,
            "a rejected upload changed the installed files"
        );
    }
}

/// Runs a command: whether it succeeded, and what it printed (stdout
/// then stderr).
fn outcome(cmd: &mut std::process::Command) -> (bool, String) {
    let out = cmd.output().expect("run htgate");
    (
        out.status.success(),
        format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
    )
}

/// Whether this process runs as root (`/proc/self/status`'s effective uid).
fn running_as_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

/// A setup with site `a` (a.test) for a test that must run as root:
/// `None` (skipped, and said) without root; under CI=true, a failure.
fn as_root_with_site_a(why: &str) -> Option<Setup> {
    if !running_as_root() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI=true: this test needs root ({why})"
        );
        eprintln!("skipping: needs root ({why})");
        return None;
    }
    let s = Setup::new();
    let a = s.site("a", "");
    s.config(
        "",
        &format!("[[site]]\nname = \"a\"\ndomains = [\"a.test\"]\nroot = \"{a}\"\n"),
    );
    Some(s)
}

/// `sudo htgate cert install` for a server that runs as another user (the
/// owner of `certificates_dir`, as contrib/htgate.service sets it up): the
/// installed folder and files belong to that user, and `cert check` (run
/// as root, which reads everything) says when the server could not read
/// them.
#[test]
fn cert_install_as_root_leaves_files_the_servers_user_can_read() {
    use std::os::unix::fs::MetadataExt;
    let Some(s) = as_root_with_site_a("it installs as root for another user") else {
        return;
    };
    // the server's user: nobody
    let (uid, gid) = (65534, 65534);
    std::fs::create_dir_all(s.path("certs")).expect("mkdir");
    std::os::unix::fs::chown(s.path("certs"), Some(uid), Some(gid)).expect("chown");
    let bin = env!("CARGO_BIN_EXE_htgate");
    let run = |args: &[&str]| outcome(std::process::Command::new(bin).args(args));
    let leaf = pki::leaf(&["a.test"], &s.inter, 30 * DAY);
    s.write("up/cert.pem", &format!("{}{}", leaf.pem(), s.inter.pem()));
    s.write("up/key.pem", &leaf.key_pem());
    let config = s.path("htgate.toml").display().to_string();
    let cert = s.path("up/cert.pem").display().to_string();
    let key = s.path("up/key.pem").display().to_string();
    let (ok, text) = run(&[
        "cert", "install", "--config", &config, "--site", "a", "--cert", &cert, "--key", &key,
    ]);
    assert!(ok, "{text}");
    for rel in ["certs/a", "certs/a/fullchain.pem", "certs/a/privkey.pem"] {
        let m = std::fs::metadata(s.path(rel)).expect("installed");
        assert_eq!(
            (m.uid(), m.gid()),
            (uid, gid),
            "{rel} not given to the server's user"
        );
    }
    assert_eq!(
        std::fs::metadata(s.path("certs/a/privkey.pem"))
            .expect("key")
            .mode()
            & 0o777,
        0o600
    );
    let (ok, text) = run(&["cert", "check", "--config", &config]);
    assert!(!text.contains("cannot read"), "{text}");
    let _ = ok; // the self-signed default may have its own findings

    // What an older install left: root's 0600 key.
    std::os::unix::fs::chown(s.path("certs/a/privkey.pem"), Some(0), Some(0)).expect("chown");
    let (ok, text) = run(&["cert", "check", "--config", &config]);
    assert!(!ok, "{text}");
    assert!(text.contains("the server cannot read"), "{text}");
    assert!(text.contains("privkey.pem"), "{text}");
    let (_, text) = run(&["cert", "list", "--config", &config]);
    assert!(text.contains("the server cannot read"), "{text}");
}

/// The whole story of contrib/htgate.service: the server runs as an
/// unprivileged user (here `nobody`, owner of `certificates_dir`), the
/// operator runs `htgate cert install` as root, and the server serves the
/// new certificate at a handshake soon after (`cert_check_seconds`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_installed_by_root_is_served_by_a_server_running_as_another_user() {
    use std::io::BufRead;
    use std::os::unix::fs::PermissionsExt;
    let Some(s) = as_root_with_site_a("it runs the server as another user") else {
        return;
    };
    // nobody may enter the test's folder and read its files, as a server
    // user reads /etc/htgate and /srv
    std::fs::set_permissions(s.path(""), std::fs::Permissions::from_mode(0o755)).expect("chmod");
    std::fs::create_dir_all(s.path("certs")).expect("mkdir");
    std::os::unix::fs::chown(s.path("certs"), Some(65534), Some(65534)).expect("chown");
    let bin = env!("CARGO_BIN_EXE_htgate");
    // a copy nobody can run wherever the checkout is (/root is 0700)
    let copy = s.path("htgate");
    std::fs::copy(bin, &copy).expect("copy the binary");
    std::fs::set_permissions(&copy, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let mut server = std::process::Command::new("setpriv")
        .args(["--reuid=65534", "--regid=65534", "--clear-groups", "--"])
        .arg(&copy)
        .args(["serve", "--config"])
        .arg(s.path("htgate.toml"))
        .env_remove("RUST_LOG")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("setpriv runs the server");
    struct Kill(std::process::Child);
    impl Drop for Kill {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stderr = server.stderr.take().expect("stderr");
    let _server = Kill(server);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut seen = Vec::new();
    let https: std::net::SocketAddr = loop {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(std::time::Instant::now()))
            .unwrap_or_else(|_| panic!("the server did not start: {seen:?}"));
        if let Some(a) = line.strip_prefix("htgate listening on https://") {
            break a.trim().parse().expect("address");
        }
        seen.push(line);
    };
    let leaf = pki::leaf(&["a.test"], &s.inter, 30 * DAY);
    s.write("up/cert.pem", &format!("{}{}", leaf.pem(), s.inter.pem()));
    s.write("up/key.pem", &leaf.key_pem());
    let out = std::process::Command::new(bin)
        .args(["cert", "install", "--config"])
        .arg(s.path("htgate.toml"))
        .args(["--site", "a", "--cert"])
        .arg(s.path("up/cert.pem"))
        .arg("--key")
        .arg(s.path("up/key.pem"))
        .output()
        .expect("run htgate");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let want = probe::serial(&leaf.der().into());
    let served = probe::eventually(Duration::from_secs(10), || async {
        let chain = probe::served_chain(https, Some("a.test")).await;
        chain.first().map(probe::serial) == Some(want.clone())
    })
    .await;
    let log: Vec<String> = rx.try_iter().collect();
    assert!(
        served,
        "the server running as nobody did not serve the installed certificate: {log:?}"
    );
}

/// `cert check` on automatic certificates: a failing one with its
/// attempts and the time of the next try (as people read times), one not
/// issued yet as pending.
#[test]
fn cert_check_shows_the_next_try_and_pending_automatic_certificates() {
    let s = Setup::new();
    let a = s.site("a", "");
    s.write(
        "acme/failures.toml",
        "[\"a.test\"]\nfailures = 3\nlast_error = \"the CA could not reach a.test\"\nnext_attempt = 1893456000\n",
    );
    s.config(
        OFFLINE_ACME,
        &format!("[[site]]\nname = \"a\"\ndomains = [\"a.test\", \"b.test\"]\nroot = \"{a}\"\n"),
    );
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_htgate"))
        .args(["cert", "check", "--config"])
        .arg(s.path("htgate.toml"))
        .output()
        .expect("run htgate");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(
        text.contains("a a.test: getting the automatic certificate is failing (3 attempts; next try 2030-01-01 00:00:00 UTC): the CA could not reach a.test"),
        "{text}"
    );
    assert!(
        text.contains("a b.test: the automatic certificate is pending"),
        "{text}"
    );
}

/// The hosting docs' WordPress-style file: force HTTPS, everything else to
/// a static index.html (a hosted site without php_fpm refuses .php).
const WP_FORCE: &str = "RewriteEngine On\nRewriteCond %{HTTPS} !on\nRewriteRule (.*) https://%{SERVER_NAME}/$1 [R=301,L]\nRewriteCond %{REQUEST_FILENAME} !-f\nRewriteRule ^ index.html [L]\n";

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// Does the leaf served for `name` name it and come from pebble?
async fn acme_leaf(https: std::net::SocketAddr, name: &str) -> Option<String> {
    let chain = probe::served_chain(https, Some(name)).await;
    let leaf = chain.first()?;
    (probe::dns_names(leaf).iter().any(|n| n == name) && probe::cn(leaf) != "default.test")
        .then(|| probe::serial(leaf))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_issues_and_renews_against_pebble() {
    use htgate_hosting::acme::pebble::Pebble;
    if !Pebble::available_or_skip("acme_issues_and_renews_against_pebble") {
        return;
    }
    let port = free_port();
    let pebble = Pebble::start(port).expect("pebble starts");
    let s = Setup::new();
    let root = s.site("wp", WP_FORCE);
    // a static front controller: a hosted site without php_fpm refuses .php
    s.write("sites/wp/index.html", "wordpress front controller\n");
    let text = format!(
        r#"
[default_certificate]
cert = "default.pem"
key = "default.key"
[[listen]]
address = "127.0.0.1:{port}"
[[listen]]
address = "127.0.0.1:0"
tls = true
[acme]
directory = "{dir}"
storage = "acme"
ca_root = "{root_ca}"
contact = ["mailto:ops@site1.test"]
retry_seconds = 1
[[site]]
name = "wp"
domains = ["site1.test"]
root = "{root}"
"#,
        dir = pebble.directory_url(),
        root_ca = pebble.ca_root_pem_path().display(),
    );
    s.write("htgate.toml", &text);
    let cfg = Config::load(&s.path("htgate.toml")).expect("config");
    let (server, http, https) = serve(&cfg).await;

    // Issued on first sight, through the site's own rewrites and forced
    // HTTPS (the challenge is answered before them).
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut first = None;
    while first.is_none() && Instant::now() < deadline {
        first = acme_leaf(https, "site1.test").await;
        if first.is_none() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    assert!(first.is_some(), "no certificate issued\n{}", pebble.logs());
    let first = first.expect("serial");
    let key = std::fs::metadata(s.path("acme/certificates/site1.test/privkey.pem")).expect("key");
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(key.permissions().mode() & 0o777, 0o600);

    // The site works as its .htaccess says.
    let a = probe::get(http, None, "site1.test", "/hello", &[]).await;
    assert_eq!(a.status, 301, "{a:?}");
    let a = probe::get(https, Some(Some("site1.test")), "site1.test", "/hello", &[]).await;
    assert_eq!(
        (a.status, a.body.as_str()),
        (200, "wordpress front controller\n")
    );

    // Renewal: a new certificate, served at the next handshake.
    let acme = server.acme().expect("acme");
    acme.renew_now("site1.test").await.expect("renewal");
    server.store().refresh_automatic("site1.test");
    let renewed = acme_leaf(https, "site1.test").await.expect("served");
    assert_ne!(renewed, first, "renewal served a new certificate");
    server.shutdown().await;
}

/// A site with both an RSA and an ECDSA upload: ECDSA to clients that can
/// verify it, RSA to the others; an RSA key in the ECDSA folder is refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ecdsa_is_preferred_when_a_site_has_both() {
    let s = Setup::new();
    let root = s.site("a", "");
    let rsa = pki::leaf_rsa(&["a.test"], &s.inter, 30 * DAY);
    s.write(
        "certs/a/fullchain.pem",
        &format!("{}{}", rsa.pem(), s.inter.pem()),
    );
    s.write("certs/a/privkey.pem", &rsa.key_pem());
    let ec = s.upload("a/ecdsa", &["a.test"], 30 * DAY);
    let cfg = s.config(
        "",
        &format!("[[site]]\nname = \"a\"\ndomains = [\"a.test\"]\nroot = \"{root}\"\n"),
    );
    let (server, _, https) = serve(&cfg).await;
    let serial = |c: Vec<rustls_pki_types::CertificateDer<'static>>| {
        c.first().map(probe::serial).unwrap_or_default()
    };
    let rsa_serial = probe::serial(&rsa.der().into());
    let ec_serial = probe::serial(&ec.der().into());
    assert_eq!(
        serial(probe::served_chain(https, Some("a.test")).await),
        ec_serial,
        "a client that offers ECDSA gets the ECDSA certificate"
    );
    assert_eq!(
        serial(probe::served_chain_rsa_only(https, "a.test").await),
        rsa_serial,
        "an RSA-only client gets the RSA certificate"
    );
    // `cert list` shows both slots.
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_htgate"))
        .args(["cert", "list", "--config"])
        .arg(s.path("htgate.toml"))
        .output()
        .expect("run htgate");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("(ECDSA slot)"), "{text}");

    // An RSA certificate in the ECDSA folder is not served from there.
    let rsa2 = pki::leaf_rsa(&["a.test"], &s.inter, 30 * DAY);
    s.write(
        "certs/a/ecdsa/fullchain.pem",
        &format!("{}{}", rsa2.pem(), s.inter.pem()),
    );
    s.write("certs/a/ecdsa/privkey.pem", &rsa2.key_pem());
    server.store().refresh();
    assert_eq!(
        serial(probe::served_chain(https, Some("a.test")).await),
        ec_serial,
        "the previous ECDSA certificate stays"
    );
    server.shutdown().await;
}

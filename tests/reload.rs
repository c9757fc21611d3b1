//! Hot reload (config mode, and quick mode's watcher): every way a customer saves a `.htaccess`
//! takes effect without a restart, a hammer test with 500 replacements,
//! certificate replacement, and a broken htgate.toml that is refused while
//! the running configuration keeps serving.

use crate::support::{files, pki, probe};

use htgate_hosting::config::Config;
use htgate_hosting::run::{start, HostingServer};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long a change may take to be seen before a test fails.  Generous
/// for a loaded CI machine; the benchmark measures the real latency.
const DEADLINE: Duration = Duration::from_secs(10);

struct Site {
    dir: tempfile::TempDir,
}

impl Site {
    fn new() -> Site {
        let s = Site {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        s.write("site/index.html", "home\n");
        s
    }

    fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn write(&self, rel: &str, text: &str) {
        files::write(self.dir.path(), rel, text);
    }

    /// Writes through a temporary file renamed over the target, as most
    /// editors and `rsync` do.
    fn replace(&self, rel: &str, text: &str) {
        let p = self.path(rel);
        let tmp = p.with_file_name(format!(
            ".{}.tmp",
            p.file_name().and_then(|n| n.to_str()).unwrap_or("x")
        ));
        std::fs::write(&tmp, text).expect("write tmp");
        std::fs::rename(&tmp, &p).expect("rename");
    }

    fn config(&self, root: &str, extra: &str) -> Config {
        let text = format!(
            "{extra}\n[[listen]]\naddress = \"127.0.0.1:0\"\n[[listen]]\naddress = \"127.0.0.1:0\"\ntls = true\n[[site]]\nname = \"s\"\ndomains = [\"s.test\"]\nroot = \"{root}\"\n"
        );
        self.write("htgate.toml", &text);
        match Config::load(&self.path("htgate.toml")) {
            Ok(c) => c,
            Err(e) => panic!("config: {e}"),
        }
    }
}

/// An .htaccess whose version shows in a header.
fn version(v: &str) -> String {
    format!("Header always set X-V {v}\n")
}

async fn x_v(http: SocketAddr, path: &str) -> (u16, Option<String>) {
    let a = probe::get(http, None, "s.test", path, &[]).await;
    (a.status, a.header("x-v").map(str::to_string))
}

/// Polls until `path` answers with version `want` (bounded).
async fn sees(http: SocketAddr, path: &str, want: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if x_v(http, path).await.1.as_deref() == Some(want) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

async fn serve(cfg: &Config) -> (HostingServer, SocketAddr) {
    let server = start(cfg).await.expect("start");
    let http = server.addr(false).expect("http");
    (server, http)
}

/// Events only (no polling): the watcher alone must see each save style.
const EVENTS_ONLY: &str = "reload_poll_seconds = 0";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_save_style_takes_effect() {
    let s = Site::new();
    s.write("site/.htaccess", &version("one"));
    let root = s.path("site").display().to_string();
    let cfg = s.config(&root, EVENTS_ONLY);
    let (server, http) = serve(&cfg).await;
    assert!(sees(http, "/", "one").await, "initial version");

    // Written in place (truncate + write).
    s.write("site/.htaccess", &version("in-place"));
    assert!(sees(http, "/", "in-place").await, "written in place");

    // A temporary file renamed over it.
    s.replace("site/.htaccess", &version("renamed"));
    assert!(sees(http, "/", "renamed").await, "rename over");

    // Deleted, then created again.
    std::fs::remove_file(s.path("site/.htaccess")).expect("rm");
    assert!(
        {
            let start = Instant::now();
            let mut gone = false;
            while !gone && start.elapsed() < DEADLINE {
                gone = x_v(http, "/").await.1.is_none();
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            gone
        },
        "deleted"
    );
    s.write("site/.htaccess", &version("recreated"));
    assert!(sees(http, "/", "recreated").await, "re-created");

    // Editors' swap and backup files change nothing.
    s.write("site/.htaccess.swp", "garbage that does not compile\n");
    s.write("site/.htaccess~", "garbage that does not compile\n");
    s.write("site/4913", "");
    assert_eq!(x_v(http, "/").await.1.as_deref(), Some("recreated"));

    // A sub-folder already visited (its "no .htaccess" is cached) gets one.
    s.write("site/sub/index.html", "sub\n");
    assert_eq!(x_v(http, "/sub/").await, (200, Some("recreated".into())));
    s.write("site/sub/.htaccess", &version("sub"));
    assert!(
        sees(http, "/sub/", "sub").await,
        "new file in a visited folder"
    );

    // A brand-new sub-folder, file written right after mkdir.
    std::fs::create_dir(s.path("site/fresh")).expect("mkdir");
    s.write("site/fresh/.htaccess", &version("fresh"));
    s.write("site/fresh/index.html", "fresh\n");
    assert!(sees(http, "/fresh/", "fresh").await, "new sub-folder");

    // A parent folder renamed away and another put in its place.
    s.write("site/a/b/index.html", "b\n");
    s.write("site/a/b/.htaccess", &version("old-b"));
    assert!(sees(http, "/a/b/", "old-b").await);
    std::fs::rename(s.path("site/a"), s.path("site/a-old")).expect("rename dir");
    s.write("site/a/b/index.html", "b\n");
    s.write("site/a/b/.htaccess", &version("new-b"));
    assert!(sees(http, "/a/b/", "new-b").await, "parent folder renamed");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_swapped_symlinked_root_takes_effect() {
    let s = Site::new();
    s.write("releases/1/.htaccess", &version("release-1"));
    s.write("releases/1/index.html", "1\n");
    s.write("releases/2/.htaccess", &version("release-2"));
    s.write("releases/2/index.html", "2\n");
    let current = s.path("current");
    std::os::unix::fs::symlink(s.path("releases/1"), &current).expect("symlink");
    let cfg = s.config(&current.display().to_string(), EVENTS_ONLY);
    let (server, http) = serve(&cfg).await;
    assert!(sees(http, "/", "release-1").await);
    // Deploy tools swap atomically: a new link renamed over the old one.
    let tmp = s.path("current.tmp");
    std::os::unix::fs::symlink(s.path("releases/2"), &tmp).expect("symlink");
    std::fs::rename(&tmp, &current).expect("swap");
    assert!(sees(http, "/", "release-2").await, "symlinked root swapped");
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn polling_alone_sees_changes() {
    let s = Site::new();
    s.write("site/.htaccess", &version("one"));
    let root = s.path("site").display().to_string();
    let cfg = s.config(&root, "watch = false\nreload_poll_seconds = 1");
    let (server, http) = serve(&cfg).await;
    assert!(sees(http, "/", "one").await);
    s.replace("site/.htaccess", &version("two"));
    assert!(
        sees(http, "/", "two").await,
        "seen by the periodic re-check"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_edits_give_500_or_keep_the_last_good_version() {
    let s = Site::new();
    s.write("site/.htaccess", &version("good"));
    let root = s.path("site").display().to_string();
    let cfg = s.config(&root, EVENTS_ONLY);
    let (server, http) = serve(&cfg).await;
    assert!(sees(http, "/", "good").await);
    s.replace(
        "site/.htaccess",
        "RewriteEngine On\nRewriteRule ^(unclosed\n",
    );
    let start = Instant::now();
    let mut status = 0;
    while start.elapsed() < DEADLINE && status != 500 {
        status = x_v(http, "/").await.0;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(status, 500, "Apache's answer to a broken .htaccess");
    server.shutdown().await;

    s.replace("site/.htaccess", &version("good"));
    let cfg = s.config(
        &root,
        &format!("{EVENTS_ONLY}\non_htaccess_error = \"keep-last-good\""),
    );
    let (server, http) = serve(&cfg).await;
    assert!(sees(http, "/", "good").await);
    s.replace(
        "site/.htaccess",
        "RewriteEngine On\nRewriteRule ^(unclosed\n",
    );
    // Then a good edit: it must be taken, proving the broken one was seen.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(x_v(http, "/").await, (200, Some("good".into())));
    s.replace("site/.htaccess", &version("better"));
    assert!(sees(http, "/", "better").await);
    server.shutdown().await;
}

/// Version A and B differ in a header and in the file a rewrite serves:
/// an answer mixing them (A's header with B's body) would show.
fn hammer_version(v: char) -> String {
    format!("Header always set X-V {v}\nRewriteEngine On\nRewriteRule ^page$ {v}.html [L]\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hammer_500_replacements_never_fail_or_mix() {
    let s = Site::new();
    s.write("site/A.html", "A");
    s.write("site/B.html", "B");
    s.write("site/.htaccess", &hammer_version('A'));
    let root = s.path("site").display().to_string();
    let cfg = s.config(&root, "");
    let (server, http) = serve(&cfg).await;

    let stop = Arc::new(AtomicBool::new(false));
    let counts = Arc::new([
        AtomicUsize::new(0), // answers
        AtomicUsize::new(0), // failures (connection errors, 5xx, mixes)
    ]);
    let mut clients = Vec::new();
    for _ in 0..4 {
        let stop = stop.clone();
        let counts = counts.clone();
        clients.push(tokio::spawn(async move {
            let mut failures = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let a = probe::get(http, None, "s.test", "/page", &[]).await;
                counts[0].fetch_add(1, Ordering::Relaxed);
                let v = a.header("x-v").unwrap_or("");
                let ok = a.status == 200 && (v == "A" || v == "B") && a.body == v;
                if !ok {
                    counts[1].fetch_add(1, Ordering::Relaxed);
                    failures.push(format!("{} x-v={v:?} body={:?}", a.status, a.body));
                }
            }
            failures
        }));
    }
    for i in 0..500 {
        let v = if i % 2 == 0 { 'B' } else { 'A' };
        s.replace("site/.htaccess", &hammer_version(v));
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut failures = Vec::new();
    for c in clients {
        failures.extend(c.await.expect("client"));
    }
    let answers = counts[0].load(Ordering::Relaxed);
    eprintln!("hammer: {answers} answers during 500 replacements");
    assert!(
        answers > 100,
        "too few requests to mean anything: {answers}"
    );
    assert!(
        failures.is_empty(),
        "{} bad answers: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    // The last version written (A) is what is served now.
    assert!(sees_body(http, "A").await);
    server.shutdown().await;
}

async fn sees_body(http: SocketAddr, want: &str) -> bool {
    let start = Instant::now();
    while start.elapsed() < DEADLINE {
        if probe::get(http, None, "s.test", "/page", &[]).await.body == want {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    false
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replaced_certificate_is_served_at_the_next_handshake() {
    let s = Site::new();
    let ca = pki::root("reload Root");
    let inter = pki::intermediate("reload Intermediate", &ca);
    s.write("ca.pem", &ca.pem());
    let install = |leaf: &pki::Issued| pki::install_upload(s.dir.path(), "certs/s", leaf, &inter);
    let first = pki::leaf(&["s.test"], &inter, 30 * pki::DAY);
    install(&first);
    let root = s.path("site").display().to_string();
    // The periodic certificate check is an hour away: only the watcher
    // can make this pass in time.
    let cfg = s.config(
        &root,
        "certificates_dir = \"certs\"\nextra_ca_roots = [\"ca.pem\"]\ncert_check_seconds = 3600\nreload_poll_seconds = 0",
    );
    let server = start(&cfg).await.expect("start");
    let https = server.addr(true).expect("https");
    let served = probe::served_chain(https, Some("s.test")).await;
    assert_eq!(served[0].as_ref(), first.der().as_slice());

    let second = pki::leaf(&["s.test"], &inter, 60 * pki::DAY);
    install(&second);
    let start_t = Instant::now();
    let mut now_served = Vec::new();
    while start_t.elapsed() < DEADLINE {
        now_served = probe::served_chain(https, Some("s.test")).await[0].to_vec();
        if now_served == second.der() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        now_served,
        second.der(),
        "the replaced certificate is not served"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_invalid_config_is_refused_and_the_old_one_keeps_serving() {
    let s = Site::new();
    s.write("site/.htaccess", &version("site-s"));
    s.write("other/index.html", "other\n");
    let root = s.path("site").display().to_string();
    let cfg = s.config(&root, "");
    let (server, http) = serve(&cfg).await;
    assert!(sees(http, "/", "site-s").await);

    // A broken file: refused (by the watcher and by an explicit reload).
    let good = std::fs::read_to_string(s.path("htgate.toml")).expect("read");
    s.write(
        "htgate.toml",
        &format!("{good}\n[[site]]\nname = \"t\"\ndomanes = [\"t.test\"]\n"),
    );
    let err = server.reload().await.expect_err("refused");
    assert!(
        err.contains("htgate.toml:") && err.contains("domanes"),
        "{err}"
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(x_v(http, "/").await, (200, Some("site-s".into())));

    // A good change is taken on its own (the watcher sees the file).
    let other = s.path("other").display().to_string();
    s.write(
        "htgate.toml",
        &format!("{good}\n[[site]]\nname = \"t\"\ndomains = [\"t.test\"]\nroot = \"{other}\"\n"),
    );
    let start_t = Instant::now();
    let mut body = String::new();
    while start_t.elapsed() < DEADLINE && body != "other\n" {
        body = probe::get(http, None, "t.test", "/", &[]).await.body;
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(body, "other\n", "the new site is served after the reload");
    // The listener kept its socket: same address before and after.
    assert_eq!(server.addr(false), Some(http));
    server.shutdown().await;
}

/// Quick mode watches its root as config mode does: an edit is served
/// well before quick mode's once-a-second look at the file would see it
/// (what "edits are seen at once" in README.md rests on).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quick_mode_sees_an_edit_before_its_one_second_recheck() {
    let s = Site::new();
    s.write("site/.htaccess", &version("one"));
    let server = htgate_hosting::quick::start(htgate_hosting::quick::QuickOptions {
        root: s.path("site"),
        http: "127.0.0.1:0".parse().expect("address"),
        https: "127.0.0.1:0".parse().expect("address"),
        cert: None,
        key: None,
        server_names: vec!["s.test".to_string()],
        debug_headers: false,
        pass_client_https_headers: false,
        php_fpm: None,
        mime_types: None,
        http3: false,
        php: Default::default(),
    })
    .await
    .expect("start");
    let http = server.http_addr;
    for round in ["two", "three", "four"] {
        // The look-up is fresh: without the watcher the edit would wait
        // for the re-check, a second from now.
        assert!(x_v(http, "/").await.1.is_some());
        let looked = Instant::now();
        s.replace("site/.htaccess", &version(round));
        let mut seen = false;
        while looked.elapsed() < htgate_engine::site::RECHECK - Duration::from_millis(100) {
            if x_v(http, "/").await.1.as_deref() == Some(round) {
                seen = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        assert!(
            seen,
            "edit {round} not served before the re-check: the watcher missed it"
        );
    }
    server.shutdown().await;
}

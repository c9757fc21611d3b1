//! Behind a load balancer (`trusted_proxies`): every force- and
//! unforce-HTTPS recipe of the shared seeds and the corpus ends after one
//! redirect, whichever signal the balancer uses for HTTPS; the client's
//! address is taken from `X-Forwarded-For` / `Forwarded` through trusted
//! hops only (mod_remoteip), for `Require ip`, `%{REMOTE_ADDR}` and the
//! access log; an untrusted peer's headers change nothing.

use crate::support::probe;
use htgate_hosting::config::Config;
use htgate_hosting::run::{start, HostingServer};
use std::net::SocketAddr;
use std::time::{Duration, Instant};

/// Starts config mode on `root` with `extra` top-level keys.
async fn serve(dir: &std::path::Path, extra: &str) -> (HostingServer, SocketAddr) {
    let root = dir.join("site");
    let text = format!(
        "{extra}\naccess_log = \"{}/access.log\"\n[[listen]]\naddress = \"127.0.0.1:0\"\n[[site]]\nname = \"s\"\ndomains = [\"s.test\"]\nroot = \"{}\"\n",
        dir.display(),
        root.display()
    );
    let path = dir.join("htgate.toml");
    std::fs::write(&path, &text).expect("write config");
    let cfg = Config::parse(&path, &text).expect("config");
    let server = start(&cfg).await.expect("start");
    let http = server.addr(false).expect("http");
    (server, http)
}

fn site(dir: &std::path::Path, htaccess: &str) {
    let root = dir.join("site");
    std::fs::create_dir_all(&root).expect("mkdir");
    std::fs::write(root.join(".htaccess"), htaccess).expect("write");
    std::fs::write(root.join("page.html"), "page\n").expect("write");
}

/// Force-HTTPS recipes: (where it comes from, the rules).
const FORCE: &[(&str, &str)] = &[
    (
        "seed force-https-header, the hosting docs' recipe",
        "RewriteCond %{HTTP:HTTPS} !on\nRewriteRule (.*) https://%{SERVER_NAME}/$1 [QSA,L,R=301]",
    ),
    (
        "seed force-https-var",
        "RewriteCond %{HTTPS} off\nRewriteRule ^ https://%{HTTP_HOST}%{REQUEST_URI} [L,R=301]",
    ),
    (
        "processwire 9A, h5bp",
        "RewriteCond %{HTTPS} !=on\nRewriteRule (.*) https://%{HTTP_HOST}%{REQUEST_URI} [L,R=301]",
    ),
    (
        "processwire 9B (load balancer)",
        "RewriteCond %{HTTP:X-Forwarded-Proto} =http\nRewriteRule (.*) https://%{HTTP_HOST}%{REQUEST_URI} [L,R=301]",
    ),
    (
        "octobercms",
        "RewriteCond %{HTTPS} off\nRewriteRule (.*) https://%{SERVER_NAME}/$1 [L,R=301]",
    ),
    (
        "modx (scheme or port)",
        "RewriteCond %{HTTPS} !=on [OR]\nRewriteCond %{SERVER_PORT} !^443\nRewriteRule ^ https://%{HTTP_HOST}%{REQUEST_URI} [L,R=301]",
    ),
    (
        "scheme variable",
        "RewriteCond %{REQUEST_SCHEME} =http\nRewriteRule ^ https://%{HTTP_HOST}%{REQUEST_URI} [L,R=301]",
    ),
];

/// Unforce recipes: back to plain HTTP.
const UNFORCE: &[(&str, &str)] = &[
    (
        "seed disable-https-header",
        "RewriteCond %{HTTP:HTTPS} on\nRewriteRule (.*) http://%{SERVER_NAME}/$1 [QSA,L,R=301]",
    ),
    (
        "HTTPS variable",
        "RewriteCond %{HTTPS} =on\nRewriteRule ^ http://%{HTTP_HOST}%{REQUEST_URI} [L,R=301]",
    ),
];

/// The ways a balancer says "the client used HTTPS".
const SIGNALS: &[(&str, &str)] = &[
    ("X-Forwarded-Proto", "https"),
    ("Forwarded", "for=198.51.100.7;proto=https"),
    ("X-Forwarded-SSL", "on"),
    ("HTTPS", "on"),
];

/// What the balancer sends for a plain-HTTP visitor.
const PLAIN: (&str, &str) = ("X-Forwarded-Proto", "http");

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn force_and_unforce_recipes_end_after_one_redirect_behind_a_trusted_proxy() {
    let mut problems = Vec::new();
    for (force, recipes) in [(true, FORCE), (false, UNFORCE)] {
        for (name, rules) in recipes {
            let tmp = tempfile::tempdir().expect("tempdir");
            site(tmp.path(), &format!("RewriteEngine On\n{rules}\n"));
            let (server, http) = serve(tmp.path(), "trusted_proxies = [\"127.0.0.1\"]").await;
            let plain = probe::get(http, None, "s.test", "/page.html", &[PLAIN]).await;
            for signal in SIGNALS {
                let secure = probe::get(http, None, "s.test", "/page.html", &[*signal]).await;
                // Forcing: the plain visit is sent to https://, the HTTPS
                // one served.  Unforcing: the reverse.
                let (moved, stays) = if force {
                    (&plain, &secure)
                } else {
                    (&secure, &plain)
                };
                let want = if force { "https://" } else { "http://" };
                let location = moved.header("location").unwrap_or("");
                if moved.status != 301 || !location.starts_with(want) {
                    problems.push(format!(
                        "{name} with {signal:?}: expected a 301 to {want}, got {} {location}",
                        moved.status
                    ));
                }
                if stays.status != 200 {
                    problems.push(format!(
                        "{name} with {signal:?}: the visit after the redirect got {} {} (a loop)",
                        stays.status,
                        stays.header("location").unwrap_or("")
                    ));
                }
            }
            server.shutdown().await;
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_untrusted_peer_cannot_claim_https_or_another_address() {
    let tmp = tempfile::tempdir().expect("tempdir");
    site(
        tmp.path(),
        &format!(
            "RewriteEngine On\n{}\n<Files secret.html>\nRequire ip 203.0.113.9\n</Files>\n",
            FORCE[0].1
        ),
    );
    // 127.0.0.1 is not the proxy here
    let (server, http) = serve(tmp.path(), "trusted_proxies = [\"192.0.2.7\"]").await;
    for signal in SIGNALS {
        let a = probe::get(http, None, "s.test", "/page.html", &[*signal]).await;
        assert_eq!(a.status, 301, "{signal:?} believed from an untrusted peer");
    }
    let a = probe::get(
        http,
        None,
        "s.test",
        "/page.html",
        &[("HTTPS", "on"), ("X-Forwarded-For", "203.0.113.9")],
    )
    .await;
    assert_eq!(a.status, 301, "still plain HTTP");
    // access checks come before the rewrite: 403, the address not believed
    std::fs::write(tmp.path().join("site/secret.html"), "x\n").expect("write");
    let a = probe::get(
        http,
        None,
        "s.test",
        "/secret.html",
        &[("X-Forwarded-For", "203.0.113.9")],
    )
    .await;
    assert_eq!(
        a.status, 403,
        "an untrusted peer's X-Forwarded-For believed"
    );
    server.shutdown().await;
}

/// The access log's `%h` for the request to `path` (the shared log's lines
/// start with `ServerName:port`, Debian's `vhost_combined`).
fn logged_address(log: &std::path::Path, path: &str) -> Option<String> {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if let Some(line) = text.lines().find(|l| l.contains(&format!("GET {path} "))) {
            return line.split(' ').nth(1).map(str::to_string);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_address_comes_through_trusted_hops_only() {
    let tmp = tempfile::tempdir().expect("tempdir");
    site(
        tmp.path(),
        "RewriteEngine On\nRewriteRule ^addr\\.html$ - [E=ADDR:%{REMOTE_ADDR}]\nHeader always set X-Addr %{ADDR}e env=ADDR\n<Files secret.html>\nRequire ip 203.0.113.0/24\n</Files>\n<Files old.html>\nOrder deny,allow\nDeny from all\nAllow from 198.51.100.20\n</Files>\n",
    );
    for f in ["secret.html", "old.html", "addr.html"] {
        std::fs::write(tmp.path().join("site").join(f), "x\n").expect("write");
    }
    // 127.0.0.1 (the test's own address) and 10.0.0.0/8 are proxies
    let (server, http) = serve(
        tmp.path(),
        "trusted_proxies = [\"127.0.0.1\", \"10.0.0.0/8\"]",
    )
    .await;
    let get = |path: &'static str, xff: &'static str| async move {
        probe::get(http, None, "s.test", path, &[("X-Forwarded-For", xff)]).await
    };
    // the client, then one more proxy of ours
    let a = get("/addr.html", "203.0.113.9, 10.1.1.1").await;
    assert_eq!(a.header("x-addr"), Some("203.0.113.9"), "{:?}", a.headers);
    // an address the client wrote itself, left of an untrusted hop
    let a = get("/addr.html", "203.0.113.9, 198.51.100.20").await;
    assert_eq!(a.header("x-addr"), Some("198.51.100.20"));
    // Forwarded: for= without X-Forwarded-For
    let a = probe::get(
        http,
        None,
        "s.test",
        "/addr.html",
        &[("Forwarded", "for=\"[2001:db8::5]:4711\";proto=http")],
    )
    .await;
    assert_eq!(a.header("x-addr"), Some("2001:db8::5"));
    // Require ip and Allow from see the client
    assert_eq!(get("/secret.html", "203.0.113.9").await.status, 200);
    assert_eq!(get("/secret.html", "198.51.100.20").await.status, 403);
    assert_eq!(
        get("/secret.html", "203.0.113.9, 198.51.100.20")
            .await
            .status,
        403
    );
    assert_eq!(get("/old.html", "198.51.100.20").await.status, 200);
    assert_eq!(get("/old.html", "203.0.113.9").await.status, 403);
    // and so does the access log
    let _ = get("/page.html?logged", "203.0.113.77, 10.9.9.9").await;
    assert_eq!(
        logged_address(&tmp.path().join("access.log"), "/page.html?logged").as_deref(),
        Some("203.0.113.77")
    );
    server.shutdown().await;
}

/// PHP sees what the rules see: the client a trusted proxy names, and the
/// scheme it used.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn php_sees_the_client_and_scheme_behind_a_trusted_proxy() {
    use htgate_fastcgi::harness::PhpFpm;
    if !PhpFpm::available_or_skip("php_sees_the_client_and_scheme_behind_a_trusted_proxy") {
        return;
    }
    let fpm = PhpFpm::start().expect("php-fpm");
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("site");
    std::fs::create_dir_all(&root).expect("mkdir");
    std::fs::write(
        root.join("who.php"),
        "<?php echo $_SERVER['REMOTE_ADDR'], ' ', $_SERVER['REQUEST_SCHEME'] ?? '-';\n",
    )
    .expect("write");
    let text = format!(
        "trusted_proxies = [\"127.0.0.1\"]\n[[listen]]\naddress = \"127.0.0.1:0\"\n[[site]]\nname = \"p\"\ndomains = [\"p.test\"]\nroot = \"{}\"\nphp_fpm = \"{}\"\n",
        root.display(),
        fpm.socket().display()
    );
    let path = tmp.path().join("htgate.toml");
    std::fs::write(&path, &text).expect("write config");
    let cfg = Config::parse(&path, &text).expect("config");
    let server = start(&cfg).await.expect("start");
    let http = server.addr(false).expect("http");
    let a = probe::get(
        http,
        None,
        "p.test",
        "/who.php",
        &[
            ("X-Forwarded-For", "203.0.113.9"),
            ("X-Forwarded-Proto", "https"),
        ],
    )
    .await;
    assert_eq!(a.status, 200, "{}", a.body);
    // (the body is chunked: the text is inside the chunk)
    assert!(a.body.contains("203.0.113.9 https"), "{}", a.body);
    let a = probe::get(http, None, "p.test", "/who.php", &[]).await;
    assert!(a.body.contains("127.0.0.1 http"), "{}", a.body);
    server.shutdown().await;
}

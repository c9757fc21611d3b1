//! Drupal's and Nextcloud's shipped `.htaccess` protections hold through
//! htgate with PHP-FPM behind it (config mode, as a host runs them): the
//! files their rules deny are refused with Apache's status (recorded in
//! `fixtures/conformance/corpus-drupal*.case` and
//! `corpus-nextcloud*.case`), PHP that their rules route runs, PHP that
//! they disarm (Drupal's files directory) never runs, and `.php` source is
//! never sent by a hosted site without PHP.

use crate::support::{files, probe};
use htgate_fastcgi::harness::PhpFpm;
use htgate_hosting::config::Config;
use htgate_hosting::run::start;
use std::path::Path;

const CORPUS: &str = "../shared/corpus/htaccess";

/// A PHP file that says which script ran (its source does not contain
/// the output).
const RUNS: &str = "<?php echo 'RAN-' . 'AS-PHP:' . basename(__FILE__);\n";

/// What must be seen of PHP in an answer.
#[derive(Clone, Copy)]
enum Php {
    /// This script ran.
    Ran(&'static str),
    /// The requested file's own code did not run (an error document may).
    NotRun,
}

fn corpus(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(CORPUS)
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn drupal_tree(root: &Path) {
    files::write(root, ".htaccess", &corpus("drupal.htaccess"));
    files::write(
        root,
        "sites/default/files/.htaccess",
        &corpus("drupal-files-public.htaccess"),
    );
    for php in [
        "index.php",
        "core/install.php",
        "core/authorize.php",
        "sites/default/files/evil.php",
    ] {
        files::write(root, php, RUNS);
    }
    for f in [
        "composer.json",
        "composer.lock",
        "web.config",
        "core/modules/system/system.module",
        "core/includes/bootstrap.inc",
        "core/modules/node/node.install",
        "core/themes/olivero/templates/page.html.twig",
        "core/core.services.yml",
        "sites/default/settings.php.bak",
        "sites/default/settings.php~",
        "sites/default/default.settings.php.orig",
        ".gitignore",
        "backup.sql",
        "scripts/deploy.sh",
        "sites/default/files/css/site.css",
    ] {
        files::write(root, f, "protected content\n");
    }
}

fn nextcloud_tree(root: &Path) {
    files::write(root, ".htaccess", &corpus("nextcloud-installed.htaccess"));
    for php in [
        "index.php",
        "status.php",
        "remote.php",
        "config/config.php",
        "lib/base.php",
        "3rdparty/autoload.php",
        "console.php",
        "occ",
    ] {
        files::write(root, php, RUNS);
    }
    files::write(root, ".user.ini", "upload_max_filesize=16G\n");
    files::write(root, "core/css/server.css", "body{}\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drupal_and_nextcloud_protections_hold_with_php_fpm() {
    if !PhpFpm::available_or_skip("drupal_and_nextcloud_protections_hold_with_php_fpm") {
        return;
    }
    let fpm = PhpFpm::start().expect("php-fpm");
    let dir = tempfile::tempdir().expect("tempdir");
    drupal_tree(&dir.path().join("drupal"));
    nextcloud_tree(&dir.path().join("cloud"));
    files::write(dir.path(), "static/wp-config.php", RUNS);
    files::write(dir.path(), "static/index.html", "static site\n");
    let toml = format!(
        r#"
[[listen]]
address = "127.0.0.1:0"

[[site]]
name = "drupal"
domains = ["drupal.test"]
root = "drupal"
php_fpm = "{sock}"

[[site]]
name = "cloud"
domains = ["cloud.test"]
root = "cloud"
php_fpm = "{sock}"

[[site]]
name = "static"
domains = ["static.test"]
root = "static"
"#,
        sock = fpm.socket().display()
    );
    let path = dir.path().join("htgate.toml");
    std::fs::write(&path, &toml).expect("write config");
    let config = Config::parse(&path, &toml).expect("config");
    let server = start(&config).await.expect("start");
    let http = server.addr(false).expect("http listener");

    let mut failures = Vec::new();
    let mut check = |host: &str, path: &str, want: u16, php: Php, a: &probe::Answer| {
        let ok_php = match php {
            Php::Ran(script) => a.body.contains(&format!("RAN-AS-PHP:{script}")),
            Php::NotRun => {
                let file = path.rsplit('/').next().unwrap_or("");
                file.is_empty() || !a.body.contains(&format!("RAN-AS-PHP:{file}"))
            }
        };
        if !(a.status == want && ok_php) {
            failures.push(format!(
                "{host}{path}: want {want} ({}), got {} body {:?}",
                match php {
                    Php::Ran(s) => format!("{s} runs"),
                    Php::NotRun => "its code never runs".to_string(),
                },
                a.status,
                a.body.chars().take(200).collect::<String>()
            ));
        }
    };

    // Drupal: FilesMatch denial of code, config, backups and dot files;
    // the front controller and install.php run; PHP elsewhere is refused
    // by its rewrite rules.
    let drupal: &[(&str, u16, Php)] = &[
        ("/", 200, Php::Ran("index.php")),
        ("/node/1", 200, Php::Ran("index.php")),
        ("/core/install.php", 200, Php::Ran("install.php")),
        ("/composer.json", 403, Php::NotRun),
        ("/composer.lock", 403, Php::NotRun),
        ("/web.config", 403, Php::NotRun),
        ("/core/modules/system/system.module", 403, Php::NotRun),
        ("/core/includes/bootstrap.inc", 403, Php::NotRun),
        ("/core/modules/node/node.install", 403, Php::NotRun),
        (
            "/core/themes/olivero/templates/page.html.twig",
            403,
            Php::NotRun,
        ),
        ("/core/core.services.yml", 403, Php::NotRun),
        ("/sites/default/settings.php.bak", 403, Php::NotRun),
        ("/sites/default/settings.php~", 403, Php::NotRun),
        ("/sites/default/default.settings.php.orig", 403, Php::NotRun),
        ("/.gitignore", 403, Php::NotRun),
        ("/backup.sql", 403, Php::NotRun),
        ("/scripts/deploy.sh", 403, Php::NotRun),
        ("/.htaccess", 403, Php::NotRun),
        ("/sites/default/files/.htaccess", 403, Php::NotRun),
        // Drupal's `RewriteRule "^(.+/.*|autoload)\.php($|/)" - [F]`
        ("/sites/default/files/evil.php", 403, Php::NotRun),
        ("/sites/default/files/css/site.css", 200, Php::NotRun),
    ];
    for (p, want, ran) in drupal {
        let a = probe::get(http, None, "drupal.test", p, &[]).await;
        check("drupal.test", p, *want, *ran, &a);
    }

    // Nextcloud: its rewrite rules answer 404 for code and config folders
    // and dot files (as recorded from Apache), the front controllers run.
    let cloud: &[(&str, u16, Php)] = &[
        ("/", 200, Php::Ran("index.php")),
        ("/index.php/login", 200, Php::Ran("index.php")),
        ("/status.php", 200, Php::Ran("status.php")),
        ("/remote.php/dav/files/admin/", 200, Php::Ran("remote.php")),
        ("/apps/files/", 200, Php::Ran("index.php")),
        ("/config/config.php", 404, Php::NotRun),
        ("/lib/base.php", 404, Php::NotRun),
        ("/3rdparty/autoload.php", 404, Php::NotRun),
        ("/occ", 404, Php::NotRun),
        ("/console.php", 404, Php::NotRun),
        ("/.user.ini", 404, Php::NotRun),
        // .ht* files are refused by access control, before any rewrite
        ("/.htaccess", 403, Php::NotRun),
        ("/core/css/server.css", 200, Php::NotRun),
    ];
    for (p, want, ran) in cloud {
        let a = probe::get(http, None, "cloud.test", p, &[]).await;
        check("cloud.test", p, *want, *ran, &a);
    }

    // A hosted site without PHP never sends PHP source.
    let a = probe::get(http, None, "static.test", "/wp-config.php", &[]).await;
    if a.status != 403 || a.body.contains("<?php") {
        failures.push(format!(
            "static.test/wp-config.php: want 403 without source, got {} {:?}",
            a.status, a.body
        ));
    }
    server.shutdown().await;
    assert!(
        failures.is_empty(),
        "{} protection failures:\n{}\nphp-fpm log:\n{}",
        failures.len(),
        failures.join("\n"),
        fpm.logs()
    );
}

/// A hosted site has mod_deflate: `<IfModule mod_deflate.c>` blocks apply
/// and `AddOutputFilterByType DEFLATE` compresses static files (and PHP's
/// answers) for clients that accept gzip; `Options +Indexes` lists a
/// folder without the files the rules deny.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosted_sites_compress_and_list_folders() {
    let dir = tempfile::tempdir().expect("tempdir");
    let page = format!("<html><body>{}</body></html>\n", "hello ".repeat(500));
    files::write(dir.path(), "site/page.html", &page);
    files::write(
        dir.path(),
        "site/.htaccess",
        "<IfModule mod_deflate.c>\nAddOutputFilterByType DEFLATE text/html\n</IfModule>\n",
    );
    files::write(dir.path(), "site/files/a.txt", "a\n");
    files::write(dir.path(), "site/files/secret.txt", "s\n");
    files::write(
        dir.path(),
        "site/files/.htaccess",
        "Options +Indexes\n<Files secret.txt>\nRequire all denied\n</Files>\n",
    );
    let toml = r#"
[[listen]]
address = "127.0.0.1:0"

[[site]]
name = "web"
domains = ["web.test"]
root = "site"
"#;
    let path = dir.path().join("htgate.toml");
    std::fs::write(&path, toml).expect("write config");
    let config = Config::parse(&path, toml).expect("config");
    let server = start(&config).await.expect("start");
    let http = server.addr(false).expect("http listener");

    let gz = probe::get(
        http,
        None,
        "web.test",
        "/page.html",
        &[("Accept-Encoding", "gzip")],
    )
    .await;
    assert_eq!(gz.status, 200);
    assert_eq!(
        gz.header("content-encoding"),
        Some("gzip"),
        "{:?}",
        gz.headers
    );
    assert_eq!(gz.header("vary"), Some("Accept-Encoding"));
    assert!(gz
        .header("content-length")
        .is_none_or(|l| l != page.len().to_string()));
    let plain = probe::get(http, None, "web.test", "/page.html", &[]).await;
    assert_eq!(plain.status, 200);
    assert!(plain.header("content-encoding").is_none());
    assert_eq!(plain.header("vary"), Some("Accept-Encoding"));
    assert!(plain.body.contains("hello hello"));

    let listing = probe::get(http, None, "web.test", "/files/", &[]).await;
    assert_eq!(listing.status, 200, "{}", listing.body);
    assert!(listing.body.contains("Index of /files"), "{}", listing.body);
    assert!(listing.body.contains("a.txt"));
    assert!(!listing.body.contains("secret.txt"), "{}", listing.body);
    assert!(!listing.body.contains(".htaccess"), "{}", listing.body);
    server.shutdown().await;
}

/// On a hosted site, a symlink is followed only to files of the link's
/// owner, even with `Options FollowSymLinks` (Apache would follow it): a
/// customer cannot link to another customer's files.  Needs root to give
/// the two customers different owners (CI runs as root).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hosted_symlinks_never_reach_another_customers_files() {
    let dir = tempfile::tempdir().expect("tempdir");
    files::write(
        dir.path(),
        "other/wp-config.php.txt",
        "DB_PASSWORD=hunter2\n",
    );
    files::write(dir.path(), "site/own.txt", "mine\n");
    files::write(dir.path(), "site/.htaccess", "Options +FollowSymLinks\n");
    std::os::unix::fs::symlink(
        dir.path().join("other/wp-config.php.txt"),
        dir.path().join("site/steal.txt"),
    )
    .expect("symlink");
    std::os::unix::fs::symlink(
        dir.path().join("site/own.txt"),
        dir.path().join("site/mine.txt"),
    )
    .expect("symlink");
    let chown = |path: &std::path::Path, uid: &str| {
        std::process::Command::new("chown")
            .args(["-h", uid, &path.to_string_lossy()])
            .status()
            .is_ok_and(|s| s.success())
    };
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    if !root {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "CI runs as root: this test needs it to make two owners"
        );
        eprintln!("skipping hosted_symlinks_never_reach_another_customers_files: needs root");
        return;
    }
    assert!(chown(&dir.path().join("other/wp-config.php.txt"), "65534"));
    let toml = r#"
[[listen]]
address = "127.0.0.1:0"

[[site]]
name = "web"
domains = ["web.test"]
root = "site"
"#;
    let path = dir.path().join("htgate.toml");
    std::fs::write(&path, toml).expect("write config");
    let config = Config::parse(&path, toml).expect("config");
    let server = start(&config).await.expect("start");
    let http = server.addr(false).expect("http listener");
    let stolen = probe::get(http, None, "web.test", "/steal.txt", &[]).await;
    assert_eq!(stolen.status, 403, "{}", stolen.body);
    assert!(!stolen.body.contains("hunter2"));
    let mine = probe::get(http, None, "web.test", "/mine.txt", &[]).await;
    assert_eq!(mine.status, 200, "{}", mine.body);
    assert!(mine.body.contains("mine"));
    server.shutdown().await;
}

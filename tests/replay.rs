//! `htgate replay` end to end: Debian's Apache (with PHP-FPM through
//! mod_proxy_fcgi) and htgate (config mode, the same PHP-FPM pool) serve
//! copies of three corpus-based sites (WordPress, Drupal, a force-HTTPS
//! site); a generated access log of 600 requests (static files,
//! permalinks, redirects, denied files, 404s, over HTTP and HTTPS) is
//! replayed against both: no difference. Then one `.htaccess` served by
//! htgate changes and the report lists exactly the requests it affects,
//! each with `htgate explain`'s account; the HTML report is rendered by
//! headless Chromium (screenshot and DOM checked).

use std::fs;
use std::net::TcpStream;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use htgate_fastcgi::harness::PhpFpm;
use serde_json::Value;

use crate::support::cms::{self, APACHE, CHROMIUM};
use crate::support::pki;

const WORDPRESS_HTACCESS: &str = include_str!("../fixtures/corpus/wordpress.htaccess");
const DRUPAL_HTACCESS: &str = include_str!("../fixtures/corpus/drupal.htaccess");
const FORCE_HTTPS: &str = "RewriteEngine On\nRewriteCond %{HTTPS} !on\n\
                           RewriteRule (.*) https://%{SERVER_NAME}/$1 [QSA,L,R=301]\n";

/// A front controller whose answers change on every request (time and a
/// nonce, a session cookie), as real PHP pages do; `missing` paths are a
/// PHP 404.
const FRONT_CONTROLLER: &str = r#"<?php
$uri = $_SERVER['REQUEST_URI'];
if (strpos($uri, 'missing') !== false) { http_response_code(404); }
setcookie('session' . mt_rand(1, 1000000), uniqid());
echo "<html><body>", htmlspecialchars($uri), " at ", microtime(true), " nonce ", uniqid(), "</body></html>\n";
"#;

struct Site {
    host: &'static str,
    htaccess: &'static str,
    files: &'static [(&'static str, &'static str)],
}

const SITES: [Site; 3] = [
    Site {
        host: "wp.test",
        htaccess: WORDPRESS_HTACCESS,
        files: &[
            ("index.php", FRONT_CONTROLLER),
            ("wp-login.php", "<?php echo 'login ', uniqid();\n"),
            ("readme.html", "<html>WordPress readme</html>\n"),
            (
                "wp-content/themes/twenty/style.css",
                "body { color: #333 }\n",
            ),
            (
                "wp-content/themes/twenty/print.css",
                "@media print { body { color: #000 } }\n",
            ),
            ("wp-includes/js/jquery.js", "/* jquery */\n"),
            ("wp-content/uploads/2026/12/notes.txt", "upload\n"),
        ],
    },
    Site {
        host: "drupal.test",
        htaccess: DRUPAL_HTACCESS,
        files: &[
            ("index.php", FRONT_CONTROLLER),
            ("core/install.php", "<?php echo 'installer';\n"),
            ("core/misc/drupal.js", "/* drupal */\n"),
            ("core/misc/print.css", "/* print */\n"),
            ("robots.txt", "User-agent: *\n"),
            ("composer.json", "{}\n"),
            ("sites/default/default.settings.yml", "a: b\n"),
            ("modules/custom/x.module", "<?php\n"),
        ],
    },
    Site {
        host: "secure.test",
        htaccess: FORCE_HTTPS,
        files: &[
            ("index.html", "<html>secure home</html>\n"),
            ("about.html", "<html>about</html>\n"),
            ("docs/guide.txt", "guide\n"),
        ],
    },
];

/// The requests of the generated log: `(host, TLS, path)`.
fn traffic() -> Vec<(&'static str, bool, String)> {
    let mut t: Vec<(&str, bool, &str)> = vec![
        ("wp.test", false, "/"),
        ("wp.test", false, "/hello-world/"),
        ("wp.test", false, "/2026/12/07/a-post/?utm_source=x"),
        ("wp.test", false, "/category/news/page/2/"),
        ("wp.test", false, "/wp-login.php"),
        ("wp.test", false, "/readme.html"),
        ("wp.test", false, "/wp-content/themes/twenty/style.css"),
        (
            "wp.test",
            false,
            "/wp-content/themes/twenty/style.css?ver=6.4",
        ),
        ("wp.test", false, "/wp-content/themes/twenty/print.css"),
        ("wp.test", false, "/wp-includes/js/jquery.js?ver=3.7"),
        ("wp.test", false, "/wp-content/uploads/2026/12/notes.txt"),
        ("wp.test", false, "/wp-content/uploads/2026/12/missing.png"),
        ("wp.test", false, "/.htaccess"),
        ("wp.test", false, "/wp-content/themes"),
        ("drupal.test", false, "/"),
        ("drupal.test", false, "/node/1"),
        ("drupal.test", false, "/user/login?destination=/node/2"),
        ("drupal.test", false, "/robots.txt"),
        ("drupal.test", false, "/core/misc/drupal.js?v=10"),
        ("drupal.test", false, "/core/misc/print.css"),
        ("drupal.test", false, "/composer.json"),
        ("drupal.test", false, "/modules/custom/x.module"),
        ("drupal.test", false, "/install.php"),
        ("drupal.test", false, "/core/install.php"),
        ("drupal.test", false, "/favicon.ico"),
        ("drupal.test", false, "/.git/config"),
        ("drupal.test", false, "/core/misc"),
        ("drupal.test", false, "/missing-page"),
        ("secure.test", false, "/"),
        ("secure.test", false, "/about.html?x=1"),
        ("secure.test", false, "/docs/guide.txt"),
        ("secure.test", true, "/"),
        ("secure.test", true, "/about.html"),
        ("secure.test", true, "/docs/guide.txt"),
        ("secure.test", true, "/docs"),
        ("secure.test", true, "/nothing-here.html"),
        ("secure.test", true, "/.htaccess"),
    ];
    t.sort_by_key(|(h, _, _)| *h);
    let mut out = Vec::new();
    let mut i = 0;
    while out.len() < 600 {
        let (h, tls, p) = t[(i * 7) % t.len()];
        out.push((h, tls, p.to_string()));
        i += 1;
    }
    out
}

/// The log in Debian's `vhost_combined` format.
fn access_log(traffic: &[(&str, bool, String)]) -> String {
    traffic
        .iter()
        .enumerate()
        .map(|(i, (h, tls, p))| {
            format!(
                "{h}:{} 203.0.113.{} - - [07/Dec/2026:10:{:02}:{:02} +0000] \"GET {p} HTTP/1.1\" 200 512 \"-\" \"Mozilla/5.0 (replay test)\"\n",
                if *tls { 443 } else { 80 },
                i % 250,
                (i / 60) % 60,
                i % 60
            )
        })
        .collect()
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

fn wait_listening(ports: &[u16], child: &mut Child, what: &str, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(20);
    for p in ports {
        while TcpStream::connect(("127.0.0.1", *p)).is_err() {
            if let Ok(Some(st)) = child.try_wait() {
                panic!("{what} exited ({st}):\n{}", cms::tail(log, 4000));
            }
            assert!(
                Instant::now() < deadline,
                "{what} does not listen on {p}:\n{}",
                cms::tail(log, 4000)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// Stops a child and its process group on drop.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        use rustix::process::{kill_process_group, Pid, Signal};
        // Signals go to this child's own process group only (never through
        // kill(1), whose argument parsing reads `-PID` as a signal).
        let group = i32::try_from(self.0.id()).ok().and_then(Pid::from_raw);
        if let Some(g) = group {
            let _ = kill_process_group(g, Signal::TERM);
        }
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.0.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        if let Some(g) = group {
            let _ = kill_process_group(g, Signal::KILL);
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn(cmd: &mut Command, log: &Path) -> Running {
    use std::os::unix::process::CommandExt;
    let out = fs::File::create(log).expect("log");
    let err = out.try_clone().expect("log");
    Running(
        cmd.stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("spawn"),
    )
}

fn write(path: &Path, text: &str) {
    if let Some(parent) = path.parent() {
        fs::create_dir_all(parent).expect("mkdir");
    }
    fs::write(path, text).expect("write");
}

fn chmod_tree(p: &Path) {
    let mode = if p.is_dir() { 0o755 } else { 0o644 };
    fs::set_permissions(p, fs::Permissions::from_mode(mode)).expect("chmod");
    if p.is_dir() {
        for e in fs::read_dir(p).expect("read_dir").flatten() {
            chmod_tree(&e.path());
        }
    }
}

fn apache_conf(
    dir: &Path,
    roots: &Path,
    php: &Path,
    http: u16,
    https: u16,
    cert: &Path,
    key: &Path,
) -> String {
    let modules = [
        "mpm_event",
        "authn_core",
        "authz_core",
        "authz_host",
        "access_compat",
        "mime",
        "dir",
        "alias",
        "rewrite",
        "headers",
        "expires",
        "env",
        "setenvif",
        "filter",
        "socache_shmcb",
        "ssl",
        "proxy",
        "proxy_fcgi",
    ]
    .iter()
    .map(|m| format!("LoadModule {m}_module /usr/lib/apache2/modules/mod_{m}.so\n"))
    .collect::<String>();
    let user = if fs::metadata("/proc/self")
        .map(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0)
        .unwrap_or(false)
    {
        "User www-data\nGroup www-data\n"
    } else {
        ""
    };
    let d = dir.display();
    let mut vhosts = String::new();
    for s in &SITES {
        let root = roots.join(s.host);
        let r = root.display();
        vhosts.push_str(&format!(
            "<VirtualHost 127.0.0.1:{http}>\n    ServerName {h}\n    DocumentRoot \"{r}\"\n</VirtualHost>\n",
            h = s.host
        ));
        vhosts.push_str(&format!(
            "<VirtualHost 127.0.0.1:{https}>\n    ServerName {h}\n    DocumentRoot \"{r}\"\n    SSLEngine on\n    SSLCertificateFile \"{c}\"\n    SSLCertificateKeyFile \"{k}\"\n</VirtualHost>\n",
            h = s.host,
            c = cert.display(),
            k = key.display()
        ));
    }
    format!(
        "ServerRoot \"{d}\"\nDefaultRuntimeDir \"{d}/run\"\nPidFile \"{d}/run/httpd.pid\"\nMutex file:{d}/run default\n\
         ErrorLog \"{d}/apache-error.log\"\nLogLevel warn\n{modules}{user}\
         Listen 127.0.0.1:{http}\nListen 127.0.0.1:{https}\nServerName localhost\nUseCanonicalName Off\n\
         HostnameLookups Off\nKeepAlive Off\nTimeout 20\nTypesConfig /etc/mime.types\n\
         DirectoryIndex index.html index.php\nAccessFileName .htaccess\n\
         <Directory />\n    Options FollowSymLinks\n    AllowOverride None\n    Require all denied\n</Directory>\n\
         <Directory \"{roots}\">\n    Options FollowSymLinks\n    AllowOverride All\n    Require all granted\n</Directory>\n\
         <FilesMatch \"^\\.ht\">\n    Require all denied\n</FilesMatch>\n\
         <FilesMatch \"\\.php$\">\n    SetHandler \"proxy:unix:{php}|fcgi://localhost/\"\n</FilesMatch>\n\
         SSLSessionCache \"shmcb:{d}/run/ssl_scache(512000)\"\n{vhosts}",
        roots = roots.display(),
        php = php.display(),
    )
}

fn htgate_toml(roots: &Path, php: &Path, http: u16, https: u16, certs: &Path) -> String {
    let mut t = format!(
        "certificates_dir = \"{}\"\nwatch = true\nreload_poll_seconds = 1\n\
         [[listen]]\naddress = \"127.0.0.1:{http}\"\n[[listen]]\naddress = \"127.0.0.1:{https}\"\ntls = true\n",
        certs.display()
    );
    for s in &SITES {
        let name = s.host.split('.').next().unwrap_or(s.host);
        t.push_str(&format!(
            "[[site]]\nname = \"{name}\"\ndomains = [\"{h}\"]\nroot = \"{r}\"\nphp_fpm = \"{p}\"\n",
            h = s.host,
            r = roots.join(s.host).display(),
            p = php.display()
        ));
    }
    t
}

fn replay(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_htgate"))
        .arg("replay")
        .args(args)
        .output()
        .expect("run htgate replay")
}

fn out_text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn replay_apache_and_htgate_side_by_side() {
    const TEST: &str = "replay_apache_and_htgate_side_by_side";
    if !cms::available_or_skip(TEST, &[APACHE, CHROMIUM]) || !PhpFpm::available_or_skip(TEST) {
        return;
    }
    let base = htgate_conformance::make_base().expect("base");
    let base = fs::canonicalize(base.path())
        .map(|p| (base, p))
        .expect("canonical");
    let dir = base.1.clone();
    let (apache_roots, htgate_roots) = (dir.join("apache"), dir.join("htgate"));
    for roots in [&apache_roots, &htgate_roots] {
        for s in &SITES {
            write(&roots.join(s.host).join(".htaccess"), s.htaccess);
            for (rel, text) in s.files {
                write(&roots.join(s.host).join(rel), text);
            }
        }
    }
    chmod_tree(&dir);
    let mut php = PhpFpm::start().expect("php-fpm");
    // Apache's workers (www-data) reach the socket through its folder.
    fs::set_permissions(php.dir(), fs::Permissions::from_mode(0o755)).expect("chmod");
    let socket = php.socket().to_path_buf();

    let tls = pki::self_signed(&["secure.test", "wp.test", "drupal.test"]);
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    write(&cert, &tls.pem());
    write(&key, &tls.key_pem());
    let certs = dir.join("certs");
    for name in ["wp", "drupal", "secure"] {
        write(&certs.join(name).join("fullchain.pem"), &tls.pem());
        write(&certs.join(name).join("privkey.pem"), &tls.key_pem());
    }
    chmod_tree(&dir);

    let (a_http, a_https, h_http, h_https) = (free_port(), free_port(), free_port(), free_port());
    fs::create_dir_all(dir.join("run")).expect("run dir");
    let conf = dir.join("httpd.conf");
    write(
        &conf,
        &apache_conf(&dir, &apache_roots, &socket, a_http, a_https, &cert, &key),
    );
    let apache_bin = cms::find_program("apache2").expect("apache2");
    let apache_log = dir.join("apache.out");
    let mut apache = spawn(
        Command::new(&apache_bin).args([
            "-d",
            dir.to_str().expect("utf-8"),
            "-f",
            conf.to_str().expect("utf-8"),
            "-DFOREGROUND",
        ]),
        &apache_log,
    );
    wait_listening(&[a_http, a_https], &mut apache.0, "Apache", &apache_log);

    let toml = dir.join("htgate.toml");
    write(
        &toml,
        &htgate_toml(&htgate_roots, &socket, h_http, h_https, &certs),
    );
    let htgate_log = dir.join("htgate.out");
    let mut htgate = spawn(
        Command::new(env!("CARGO_BIN_EXE_htgate")).args([
            "serve",
            "--config",
            toml.to_str().expect("utf-8"),
        ]),
        &htgate_log,
    );
    wait_listening(&[h_http, h_https], &mut htgate.0, "htgate", &htgate_log);

    let traffic = traffic();
    let log = dir.join("access.log");
    write(&log, &access_log(&traffic));
    let (json, html) = (dir.join("report.json"), dir.join("report.html"));
    let apache_url = format!("http://127.0.0.1:{a_http}");
    let apache_tls = format!("https://127.0.0.1:{a_https}");
    let htgate_url = format!("http://127.0.0.1:{h_http}");
    let htgate_tls = format!("https://127.0.0.1:{h_https}");
    let args = |json: &Path, html: &Path| -> Vec<String> {
        vec![
            log.display().to_string(),
            "--apache".into(),
            apache_url.clone(),
            "--apache-tls".into(),
            apache_tls.clone(),
            "--htgate".into(),
            htgate_url.clone(),
            "--htgate-tls".into(),
            htgate_tls.clone(),
            "--config".into(),
            toml.display().to_string(),
            "--rate".into(),
            "2000".into(),
            "--concurrency".into(),
            "8".into(),
            "--json".into(),
            json.display().to_string(),
            "--html".into(),
            html.display().to_string(),
            "--quiet".into(),
        ]
    };
    let logs = || {
        format!(
            "--- apache ---\n{}\n--- htgate ---\n{}\n{}",
            cms::tail(&dir.join("apache-error.log"), 3000),
            cms::tail(&htgate_log, 3000),
            php.logs()
        )
    };
    let first = args(&json, &html);
    let o = replay(&first.iter().map(String::as_str).collect::<Vec<_>>());
    let report: Value =
        serde_json::from_str(&fs::read_to_string(&json).unwrap_or_default()).unwrap_or(Value::Null);
    assert_eq!(o.status.code(), Some(0), "{}\n{}", out_text(&o), logs());
    assert_eq!(report["replayed"], 600, "{}", out_text(&o));
    assert_eq!(
        report["differences"].as_array().map(Vec::len),
        Some(0),
        "{}",
        out_text(&o)
    );
    let sites = report["sites"].as_array().cloned().unwrap_or_default();
    assert_eq!(sites.len(), 3, "{report}");
    let php_pages: u64 = sites.iter().filter_map(|s| s["php_pages"].as_u64()).sum();
    assert!(php_pages > 100, "PHP pages are recognised: {report}");
    assert!(
        String::from_utf8_lossy(&o.stdout).contains("600 requests, 0 differences"),
        "{}",
        out_text(&o)
    );

    // One .htaccess served by htgate changes: theme stylesheets are
    // refused. Exactly those requests must differ.
    let changed = htgate_roots.join("wp.test/.htaccess");
    let text = format!(
        "RewriteEngine On\nRewriteRule ^wp-content/themes/.*\\.css$ - [F]\n{WORDPRESS_HTACCESS}"
    );
    write(&changed, &text);
    let seen = Instant::now() + Duration::from_secs(10);
    loop {
        let probe = Command::new("curl")
            .args([
                "-s",
                "-o",
                "/dev/null",
                "-w",
                "%{http_code}",
                "-H",
                "Host: wp.test",
            ])
            .arg(format!("{htgate_url}/wp-content/themes/twenty/style.css"))
            .output()
            .expect("curl");
        if probe.stdout == b"403" {
            break;
        }
        assert!(Instant::now() < seen, "htgate did not pick up the edit");
        std::thread::sleep(Duration::from_millis(100));
    }
    let (json2, html2) = (dir.join("report2.json"), dir.join("report2.html"));
    let second = args(&json2, &html2);
    let o = replay(&second.iter().map(String::as_str).collect::<Vec<_>>());
    assert_eq!(o.status.code(), Some(1), "{}", out_text(&o));
    let report: Value =
        serde_json::from_str(&fs::read_to_string(&json2).expect("json")).expect("JSON");
    let expected: Vec<u64> = traffic
        .iter()
        .enumerate()
        .filter(|(_, (h, _, p))| {
            *h == "wp.test"
                && p.starts_with("/wp-content/themes/")
                && p.split('?').next().is_some_and(|x| x.ends_with(".css"))
        })
        .map(|(i, _)| i as u64 + 1)
        .collect();
    assert!(!expected.is_empty());
    let diffs = report["differences"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut got: Vec<u64> = diffs.iter().filter_map(|d| d["line"].as_u64()).collect();
    got.sort_unstable();
    assert_eq!(got, expected, "{}", out_text(&o));
    for d in &diffs {
        assert_eq!(d["site"], "wp.test");
        let fields: Vec<&str> = d["fields"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|f| f["field"].as_str())
            .collect();
        assert!(fields.contains(&"status"), "{d}");
        assert_eq!(d["apache"]["status"], 200);
        assert_eq!(d["htgate"]["status"], 403);
        let explain = d["explain"].as_str().unwrap_or_default();
        assert!(
            explain.contains("wp-content/themes/.*\\.css"),
            "explain names the rule: {explain}"
        );
        assert!(explain.contains("403"), "{explain}");
    }

    // The HTML report, rendered by a real browser.
    let shot = dir.join("report.png");
    let chromium = cms::find_program("chromium").expect("chromium");
    let browse = |extra: &[&str]| {
        let mut child = Command::new(&chromium)
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1280,1600",
            ])
            .arg(format!(
                "--user-data-dir={}",
                dir.join("chromium-profile").display()
            ))
            .args(extra)
            .arg(format!("file://{}", html2.display()))
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromium");
        let mut out = String::new();
        if let Some(mut so) = child.stdout.take() {
            let reader = std::thread::spawn(move || {
                let mut s = String::new();
                let _ = std::io::Read::read_to_string(&mut so, &mut s);
                s
            });
            let deadline = Instant::now() + Duration::from_secs(60);
            while !matches!(child.try_wait(), Ok(Some(_))) {
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            out = reader.join().unwrap_or_default();
        }
        let _ = child.wait();
        out
    };
    browse(&[&format!("--screenshot={}", shot.display())]);
    let png = fs::read(&shot).expect("chromium wrote a screenshot");
    assert!(
        png.starts_with(b"\x89PNG\r\n\x1a\n") && png.len() > 10_000,
        "a rendered page, {} bytes",
        png.len()
    );
    let dom = browse(&["--dump-dom"]);
    assert!(dom.contains("<title>htgate replay report</title>"), "{dom}");
    let table = dom
        .split("id=\"differences\"")
        .nth(1)
        .expect("the difference table")
        .split("</table>")
        .next()
        .unwrap_or_default();
    assert_eq!(table.matches("<tr>").count(), expected.len() + 1, "{table}");
    php.stop();
    drop(htgate);
    drop(apache);
    if std::env::var_os("HTGATE_KEEP").is_some() {
        eprintln!("kept {}", base.0.keep().display());
    }
}

//! `htgate explain` on WordPress's stock rules and on force-HTTPS rules,
//! through the real binary, in text (key lines present) and JSON (parsed,
//! fields checked).

use crate::support::files;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

const CORPUS: &str = "../shared/corpus/htaccess";

fn corpus(name: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(CORPUS)
        .join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn wordpress() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    files::write(dir.path(), ".htaccess", &corpus("wordpress.htaccess"));
    files::write(dir.path(), "index.php", "<?php echo 'wp';\n");
    files::write(dir.path(), "wp-content/x.css", "body{}\n");
    dir
}

const FORCE_HTTPS: &str = "RewriteEngine On\nRewriteCond %{HTTPS} !on\nRewriteRule (.*) https://%{SERVER_NAME}/$1 [R=301,L]\n";

fn force_https() -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    files::write(dir.path(), ".htaccess", FORCE_HTTPS);
    files::write(dir.path(), "page.html", "<p>hi</p>\n");
    dir
}

fn explain(root: &Path, args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_htgate"))
        .arg("explain")
        .arg("--root")
        .arg(root)
        .args(args)
        .output()
        .expect("htgate runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

fn text(root: &Path, url: &str) -> String {
    let (code, out) = explain(root, &[url]);
    assert_eq!(code, 0, "{out}");
    out
}

fn json(root: &Path, url: &str) -> Value {
    let (code, out) = explain(root, &[url, "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}):\n{out}"))
}

fn contains_all(out: &str, lines: &[&str]) {
    for l in lines {
        assert!(out.contains(l), "missing `{l}` in:\n{out}");
    }
}

fn events<'a>(v: &'a Value, kind: &str) -> Vec<&'a Value> {
    v["events"]
        .as_array()
        .map(|a| a.iter().filter(|e| e["event"] == kind).collect())
        .unwrap_or_default()
}

#[test]
fn wordpress_pretty_url_is_rewritten_to_index_php() {
    let site = wordpress();
    let root = site.path().canonicalize().expect("root");
    let r = root.display();
    let out = text(&root, "https://www.example.com/hello-world/");
    contains_all(
        &out,
        &[
            "GET https://www.example.com/hello-world/ from 192.0.2.1",
            "request /hello-world/",
            &format!("reads {r}/.htaccess"),
            &format!("maps to {r}/hello-world (does not exist"),
            ", round 1, RewriteBase /:",
            "RewriteRule ^index\\.php$ - [L]",
            "pattern `^index\\.php$` against `hello-world/`: no match",
            "RewriteRule . /index.php [L]",
            "pattern `.` against `hello-world/`: matches; $0=`h`",
            "RewriteCond %{REQUEST_FILENAME} !-f",
            &format!("test string `{r}/hello-world` (!-f): holds"),
            "substitution gives `/index.php`",
            "[L]: last rule of this round",
            "internal redirect to /index.php",
            "internal redirect #1: /index.php",
            "pattern `^index\\.php$` against `index.php`: matches",
            &format!("answer: 200 with the file {r}/index.php"),
        ],
    );

    let v = json(&root, "https://www.example.com/hello-world/");
    assert_eq!(v["request"]["tls"], true);
    assert_eq!(v["request"]["host"], "www.example.com");
    assert_eq!(v["site"]["mode"], "quick");
    let rules = events(&v, "rule");
    let front = rules
        .iter()
        .find(|e| e["pattern"] == "." && e["input"] == "hello-world/")
        .expect("the front-controller rule was tried");
    assert_eq!(front["matched"], true);
    assert_eq!(front["captures"][0], "h");
    assert_eq!(front["directive"], "RewriteRule . /index.php [L]");
    assert_eq!(
        front["file"].as_str(),
        Some(format!("{r}/.htaccess").as_str())
    );
    let conds = events(&v, "cond");
    assert!(conds
        .iter()
        .any(|c| c["kind"] == "-f" && c["negate"] == true && c["matched"] == true));
    let subst = events(&v, "substitution");
    assert_eq!(subst[0]["result"], "/index.php");
    let redirect = events(&v, "internal_redirect");
    assert_eq!(redirect[0]["target"], "/index.php");
    assert!(events(&v, "request")
        .iter()
        .any(|e| e["uri"] == "/index.php" && e["redirects"] == 1));
    assert_eq!(v["outcome"]["kind"], "file");
    assert_eq!(v["outcome"]["status"], 200);
    assert_eq!(
        v["outcome"]["file"].as_str(),
        Some(format!("{r}/index.php").as_str())
    );
}

#[test]
fn wordpress_existing_file_is_served() {
    let site = wordpress();
    let root = site.path().canonicalize().expect("root");
    let r = root.display();
    let out = text(&root, "https://www.example.com/wp-content/x.css");
    contains_all(
        &out,
        &[
            &format!("maps to {r}/wp-content/x.css (a file)"),
            &format!("test string `{r}/wp-content/x.css` (!-f): does not hold"),
            "mod_rewrite: no rule changed the request",
            &format!("answer: 200 with the file {r}/wp-content/x.css (text/css)"),
        ],
    );
    assert!(!out.contains("internal redirect"), "{out}");
    let v = json(&root, "https://www.example.com/wp-content/x.css");
    assert!(events(&v, "internal_redirect").is_empty());
    assert_eq!(v["outcome"]["kind"], "file");
    assert_eq!(v["outcome"]["content_type"], "text/css");
}

#[test]
fn wordpress_root_goes_through_mod_dir() {
    let site = wordpress();
    let root = site.path().canonicalize().expect("root");
    let r = root.display();
    let out = text(&root, "https://www.example.com/");
    contains_all(
        &out,
        &[
            &format!("maps to {r}/ (a directory)"),
            "pattern `.` against ``: no match",
            "    sub-request /index.html",
            "    sub-request /index.php",
            &format!("sub-request result: 200, the file {r}/index.php"),
            &format!("mod_dir: DirectoryIndex index.php serves the directory ({r}/index.php)"),
            &format!("answer: 200 with the file {r}/index.php"),
        ],
    );
    let v = json(&root, "https://www.example.com/");
    let chosen = events(&v, "index_chosen");
    assert_eq!(chosen.len(), 1, "{v}");
    assert_eq!(chosen[0]["name"], "index.php");
    assert_eq!(chosen[0]["depth"], 0);
    // the index look-ups are sub-requests, one level down
    assert!(events(&v, "request")
        .iter()
        .any(|e| e["uri"] == "/index.html" && e["depth"] == 1 && e["subrequest_depth"] == 1));
}

#[test]
fn force_https_redirects_plain_http_with_location() {
    let site = force_https();
    let root = site.path().canonicalize().expect("root");
    let out = text(&root, "http://www.example.com/page.html?x=1");
    contains_all(
        &out,
        &[
            "GET http://www.example.com/page.html?x=1 from 192.0.2.1",
            "line 3: RewriteRule (.*) https://%{SERVER_NAME}/$1 [R=301,L]",
            "pattern `(.*)` against `page.html`: matches; $0=`page.html`, $1=`page.html`",
            "line 2: RewriteCond %{HTTPS} !on",
            "test string `off` (!regex): holds",
            "substitution gives `https://www.example.com/page.html` with query `x=1`",
            "[R]: external redirect with status 301",
            "mod_rewrite redirects (301) to https://www.example.com/page.html?x=1",
            "answer: 301 redirect to https://www.example.com/page.html?x=1",
            "Location: https://www.example.com/page.html?x=1",
        ],
    );
    let v = json(&root, "http://www.example.com/page.html?x=1");
    assert_eq!(v["request"]["tls"], false);
    let cond = events(&v, "cond");
    assert_eq!(cond[0]["test"], "off");
    assert_eq!(cond[0]["matched"], true);
    assert_eq!(cond[0]["directive"], "RewriteCond %{HTTPS} !on");
    let flags: Vec<&str> = events(&v, "flag")
        .iter()
        .filter_map(|f| f["flag"].as_str())
        .collect();
    assert_eq!(flags, vec!["R", "L"]);
    let redirect = events(&v, "rewrite_redirect");
    assert_eq!(redirect[0]["status"], 301);
    assert_eq!(v["outcome"]["kind"], "redirect");
    assert_eq!(v["outcome"]["status"], 301);
    assert_eq!(
        v["outcome"]["location"],
        "https://www.example.com/page.html?x=1"
    );
}

#[test]
fn force_https_leaves_https_alone() {
    let site = force_https();
    let root = site.path().canonicalize().expect("root");
    let out = text(&root, "https://www.example.com/page.html");
    contains_all(
        &out,
        &[
            "test string `on` (!regex): does not hold",
            "mod_rewrite: no rule changed the request",
            "answer: 200 with the file",
        ],
    );
    let v = json(&root, "https://www.example.com/page.html");
    assert_eq!(v["outcome"]["kind"], "file");
    assert!(events(&v, "rewrite_redirect").is_empty());
}

#[test]
fn headers_method_and_client_reach_the_rules() {
    let dir = tempfile::tempdir().expect("tempdir");
    files::write(
        dir.path(),
        ".htaccess",
        "RewriteEngine On\nRewriteCond %{HTTP_USER_AGENT} BadBot [NC]\nRewriteRule ^ - [F]\nRewriteCond %{REQUEST_METHOD} =POST\nRewriteCond %{REMOTE_ADDR} =203.0.113.9\nRewriteRule ^ - [G]\n",
    );
    let root = dir.path().canonicalize().expect("root");
    let (_, out) = explain(
        &root,
        &["http://example.com/x", "-H", "User-Agent: badbot/1.0"],
    );
    contains_all(
        &out,
        &[
            "test string `badbot/1.0` (regex): holds",
            "[F]: answers 403 now",
            "answer: 403 Forbidden",
        ],
    );
    let (_, out) = explain(
        &root,
        &[
            "http://example.com/x",
            "--method",
            "post",
            "--from",
            "203.0.113.9",
        ],
    );
    contains_all(
        &out,
        &[
            "POST http://example.com/x from 203.0.113.9",
            "answer: 410 Gone",
        ],
    );
}

#[test]
fn config_mode_picks_the_site_by_host_and_plays_force_https() {
    let dir = tempfile::tempdir().expect("tempdir");
    let base = dir.path().canonicalize().expect("base");
    files::write(&base, "a/.htaccess", FORCE_HTTPS);
    files::write(&base, "b/index.html", "b\n");
    let config = format!(
        "[[listen]]\naddress = \"127.0.0.1:0\"\n[[site]]\nname = \"a\"\ndomains = [\"a.test\"]\nroot = \"{a}\"\nforce_https = true\n[[site]]\nname = \"b\"\ndomains = [\"b.test\"]\nroot = \"{b}\"\n",
        a = base.join("a").display(),
        b = base.join("b").display()
    );
    files::write(&base, "htgate.toml", &config);
    let run = |url: &str| {
        let out = Command::new(env!("CARGO_BIN_EXE_htgate"))
            .args(["explain", "--config"])
            .arg(base.join("htgate.toml"))
            .args([url, "--format", "json"])
            .output()
            .expect("htgate runs");
        assert_eq!(out.status.code(), Some(0), "{out:?}");
        serde_json::from_slice::<Value>(&out.stdout).expect("JSON")
    };
    let v = run("http://a.test/x");
    assert_eq!(v["site"]["name"], "a");
    assert_eq!(v["outcome"]["location"], "https://a.test/x");
    assert!(v["front"][0]
        .as_str()
        .is_some_and(|f| f.contains("force_https")));
    let v = run("http://b.test/");
    assert_eq!(v["site"]["name"], "b");
    assert_eq!(v["outcome"]["kind"], "file");
}

#[test]
fn bad_urls_are_refused() {
    let site = force_https();
    for url in ["/relative", "ftp://example.com/", "not a url"] {
        let (code, _) = explain(site.path(), &[url]);
        assert_eq!(code, 1, "{url}");
    }
}

//! Real applications end to end: DokuWiki (no database) and WordPress
//! (MariaDB) from Debian's packages, served by htgate with PHP-FPM, their
//! shipped `.htaccess` files doing the routing and the protection, driven
//! by curl as a browser (forms, cookies, nonces, uploads).
//!
//! Each test builds its own site tree in a temporary folder and runs its
//! own PHP-FPM (and MariaDB); each has an overall deadline. Under `CI=true`
//! a missing package fails the test instead of skipping it.

use crate::ensure;
use crate::support::cms::{self, Body, Browser, Deadline, Served, Steps};
use htgate_fastcgi::harness::PhpFpm;
use std::path::Path;
use std::time::Duration;

/// The whole of one test, requests and startup included.
const TEST_LIMIT: Duration = Duration::from_secs(120);

/// Panics with everything needed to tell what went wrong: the failed
/// check, the request trail with the last body, and the servers' logs.
fn fail(err: String, browser: Option<&Browser>, logs: &[(&str, String)]) -> ! {
    let mut msg = err;
    if let Some(b) = browser {
        msg.push('\n');
        msg.push_str(&b.report());
    }
    for (name, text) in logs {
        msg.push_str(&format!("\n--- {name} ---\n{text}"));
    }
    panic!("{msg}");
}

fn status(r: &cms::Response, want: u16, what: &str) -> Result<(), String> {
    ensure!(
        r.status == want,
        "{what}: expected status {want}, got {}",
        r.status
    );
    Ok(())
}

fn contains(r: &cms::Response, needle: &str, what: &str) -> Result<(), String> {
    ensure!(
        r.text().contains(needle),
        "{what}: the body does not contain {needle:?}"
    );
    Ok(())
}

// ---------------------------------------------------------------------------
// DokuWiki

const WIKI_HOST: &str = "wiki.test";

#[test]
fn dokuwiki_nice_urls_edit_upload_and_protected_files() {
    const TEST: &str = "dokuwiki_nice_urls_edit_upload_and_protected_files";
    if !cms::available_or_skip(TEST, &[cms::CURL, cms::DOKUWIKI])
        || !PhpFpm::available_or_skip(TEST)
    {
        return;
    }
    let steps = Steps::new("dokuwiki");
    let deadline = Deadline::after(TEST_LIMIT);
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("wiki");
    if let Err(e) = cms::dokuwiki_tree(&root) {
        fail(e, None, &[]);
    }
    steps.done("site tree");
    let fpm = PhpFpm::start().unwrap_or_else(|e| fail(format!("php-fpm: {e}"), None, &[]));
    steps.done("php-fpm start");
    let served = Served::start(dir.path(), WIKI_HOST, &root, fpm.socket())
        .unwrap_or_else(|e| fail(e, None, &[("php-fpm", fpm.logs())]));
    let browser =
        Browser::new(WIKI_HOST, served.port, deadline).unwrap_or_else(|e| fail(e, None, &[]));
    if let Err(e) = dokuwiki_flow(&browser, &root, dir.path(), &steps) {
        fail(e, Some(&browser), &[("php-fpm", fpm.logs())]);
    }
}

fn dokuwiki_flow(b: &Browser, root: &Path, scratch: &Path, steps: &Steps) -> Result<(), String> {
    // `RewriteRule ^$ doku.php`; the title comes from our conf/local.php.
    let r = b.get("/")?;
    status(&r, 200, "GET /")?;
    contains(&r, "htgate wiki", "GET /")?;
    // DokuWiki's index.php only redirects; the last rule of the block
    // sends it to doku.php instead (the file exists, so the `!-f` rule
    // above does not apply).
    let r = b.get("/index.php")?;
    status(&r, 200, "GET /index.php (RewriteRule ^index.php$ doku.php)")?;
    contains(&r, "htgate wiki", "GET /index.php")?;
    // Static files and PHP under lib/ are served as they are.
    let r = b.get("/lib/tpl/dokuwiki/images/logo.png")?;
    status(&r, 200, "static logo")?;
    ensure!(
        r.header("content-type") == Some("image/png"),
        "static logo: content-type {:?}",
        r.header("content-type")
    );
    let r = b.get("/lib/exe/css.php?t=dokuwiki")?;
    status(&r, 200, "lib/exe/css.php")?;
    steps.done("home and static files");

    // Log in through the login form (the default ACL lets only users edit).
    let r = b.get("/start?do=login")?;
    status(&r, 200, "login form")?;
    let mut login = cms::form(&r.text(), "dw__login").ok_or("no login form (dw__login)")?;
    login.set("u", cms::DOKUWIKI_USER);
    login.set("p", cms::DOKUWIKI_PASSWORD);
    let action = cms::path_of(&login.action, &b.origin());
    let r = b.post_form(&action, &login.pairs())?;
    status(&r, 302, "login POST")?;
    let r = b.get("/start")?;
    contains(&r, cms::DOKUWIKI_USER, "logged-in page")?;
    steps.done("login");

    // A page through the edit form, seen by its nice URL.
    dokuwiki_save(
        b,
        "start",
        "====== Hello htgate ======\nSome **bold** words.\n",
    )?;
    let r = b.get("/start")?;
    status(&r, 200, "GET /start")?;
    contains(&r, "Hello htgate</h1>", "GET /start")?;
    contains(&r, "<strong>bold</strong>", "GET /start")?;
    ensure!(
        root.join("data/pages/start.txt").exists(),
        "the page was not stored in data/pages/start.txt"
    );
    // The raw export: `RewriteRule ^_export/([^/]+)/(.*)`.
    let r = b.get("/_export/raw/start")?;
    status(&r, 200, "GET /_export/raw/start")?;
    contains(&r, "====== Hello htgate ======", "raw export")?;
    steps.done("edit and view start");

    // A namespaced page, by both spellings of its nice URL.
    dokuwiki_save(
        b,
        "htgate:notes",
        "====== Namespace notes ======\nBack to [[:start]].\n",
    )?;
    for url in ["/htgate:notes", "/htgate/notes"] {
        let r = b.get(url)?;
        status(&r, 200, url)?;
        contains(&r, "Namespace notes</h1>", url)?;
    }
    // A page the package ships.
    for url in ["/wiki:syntax", "/wiki/syntax"] {
        let r = b.get(url)?;
        status(&r, 200, url)?;
        contains(&r, "Formatting Syntax", url)?;
    }
    steps.done("namespaced pages");

    // Upload through the media manager's form, fetch through `_media`.
    let r = b.get("/start?do=media&ns=wiki&tab_files=upload")?;
    status(&r, 200, "media manager")?;
    let mut upload = cms::form(&r.text(), "dw__upload").ok_or("no upload form (dw__upload)")?;
    upload.set("mediaid", "htgate-pic.png");
    let png = cms::png(0x5eed_d0c0);
    let file = scratch.join("upload.png");
    std::fs::write(&file, &png).map_err(|e| e.to_string())?;
    let action = cms::path_of(&upload.action, &b.origin());
    let r = b.post_multipart(&action, &upload.pairs(), ("upload", &file, "image/png"))?;
    status(&r, 200, "media upload")?;
    let stored = root.join("data/media/wiki/htgate-pic.png");
    ensure!(
        std::fs::read(&stored).is_ok_and(|b| b == png),
        "the upload is not in {} with the sent bytes",
        stored.display()
    );
    for url in ["/_media/wiki:htgate-pic.png", "/_media/wiki/htgate-pic.png"] {
        let r = b.get(url)?;
        status(&r, 200, url)?;
        ensure!(r.body == png, "{url}: not the uploaded bytes");
        ensure!(
            r.header("content-type") == Some("image/png"),
            "{url}: content-type {:?}",
            r.header("content-type")
        );
    }
    let r = b.get("/_detail/wiki:htgate-pic.png")?;
    status(&r, 200, "/_detail/wiki:htgate-pic.png")?;
    contains(&r, "htgate-pic.png", "detail page")?;
    steps.done("media upload and fetch");

    // What the protective .htaccess files deny, as Apache would.
    for url in [
        "/.htaccess",
        "/VERSION",
        "/conf/",
        "/data/",
        "/data/pages/start.txt",
        "/data/media/wiki/htgate-pic.png",
        "/data/.htaccess",
        "/conf/local.php",
        "/conf/users.auth.php",
        "/conf/dokuwiki.php",
        "/inc/init.php",
        "/bin/dwpage.php",
        "/vendor/autoload.php",
    ] {
        let r = b.get_anonymous(url)?;
        status(&r, 403, &format!("protected {url}"))?;
        ensure!(
            !r.text().contains(cms::DOKUWIKI_USER) && !r.text().contains("<?php"),
            "{url}: the 403 body leaks the file"
        );
    }
    // `RedirectMatch 404 /\.git` (mod_alias) still answers although the
    // rewrite to doku.php matched first: both are fixups, and the
    // redirect's 404 ends the request.
    let r = b.get_anonymous("/.git/config")?;
    status(&r, 404, "/.git/config (RedirectMatch 404)")?;
    steps.done("protected files");
    Ok(())
}

/// Opens `id` in the editor, sends `text` with the form's security token,
/// and expects DokuWiki's redirect back to the page (a plain `Location`
/// header: 302).
fn dokuwiki_save(b: &Browser, id: &str, text: &str) -> Result<(), String> {
    let r = b.get(&format!("/{id}?do=edit"))?;
    status(&r, 200, &format!("edit form of {id}"))?;
    let mut edit = cms::form(&r.text(), "dw__editform")
        .ok_or_else(|| format!("no edit form (dw__editform) for {id}: not allowed to edit?"))?;
    ensure!(
        edit.get("sectok").is_some_and(|s| !s.is_empty()),
        "the edit form of {id} has no sectok"
    );
    edit.set("wikitext", text);
    edit.set("summary", "htgate test");
    edit.set("do[save]", "1");
    let action = cms::path_of(&edit.action, &b.origin());
    let r = b.post_form(&action, &edit.pairs())?;
    status(&r, 302, &format!("saving {id}"))
}

// ---------------------------------------------------------------------------
// WordPress

const WP_HOST: &str = "wp.test";
const WP_ADMIN: &str = "admin";
const WP_PASSWORD: &str = "Correct-Horse-Battery-9";
const WP_TITLE: &str = "htgate blog";

#[test]
fn wordpress_install_login_permalinks_post_and_upload() {
    const TEST: &str = "wordpress_install_login_permalinks_post_and_upload";
    if !cms::available_or_skip(TEST, &[cms::CURL, cms::WORDPRESS, cms::MARIADB])
        || !PhpFpm::available_or_skip(TEST)
    {
        return;
    }
    let steps = Steps::new("wordpress");
    let deadline = Deadline::after(TEST_LIMIT);
    let db =
        cms::MariaDb::start(deadline).unwrap_or_else(|e| fail(format!("mariadb: {e}"), None, &[]));
    let (name, user, password) = cms::WP_DB;
    if let Err(e) = db.create_database(name, user, password) {
        fail(e, None, &[("mariadb", db.logs())]);
    }
    steps.done("mariadb start");
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path().join("wordpress");
    if let Err(e) = cms::wordpress_tree(&root, db.socket()) {
        fail(e, None, &[]);
    }
    steps.done("site tree");
    let fpm = PhpFpm::start().unwrap_or_else(|e| fail(format!("php-fpm: {e}"), None, &[]));
    steps.done("php-fpm start");
    let served = Served::start(dir.path(), WP_HOST, &root, fpm.socket())
        .unwrap_or_else(|e| fail(e, None, &[("php-fpm", fpm.logs())]));
    let browser =
        Browser::new(WP_HOST, served.port, deadline).unwrap_or_else(|e| fail(e, None, &[]));
    if let Err(e) = wordpress_flow(&browser, &root, dir.path(), &steps, deadline) {
        fail(
            e,
            Some(&browser),
            &[("php-fpm", fpm.logs()), ("mariadb", db.logs())],
        );
    }
}

fn wordpress_flow(
    b: &Browser,
    root: &Path,
    scratch: &Path,
    steps: &Steps,
    deadline: Deadline,
) -> Result<(), String> {
    let origin = b.origin();

    // Not installed yet: every page sends to the installer.
    let r = b.get("/")?;
    status(&r, 302, "GET / before install")?;
    ensure!(
        r.header("location")
            .is_some_and(|l| l.contains("/wp-admin/install.php")),
        "GET / before install: expected a redirect to the installer"
    );
    let r = b.get("/wp-admin/install.php")?;
    status(&r, 200, "installer")?;
    let r = b.post_form(
        "/wp-admin/install.php?step=2",
        &[
            ("weblog_title", WP_TITLE),
            ("user_name", WP_ADMIN),
            ("admin_password", WP_PASSWORD),
            ("admin_password2", WP_PASSWORD),
            ("pw_weak", "on"),
            ("admin_email", "admin@example.test"),
            ("blog_public", "0"),
            ("language", ""),
        ],
    )?;
    status(&r, 200, "install step 2")?;
    contains(&r, "Success!", "install step 2")?;
    steps.done("install");

    // Log in: the login page sets the test cookie, the POST checks it.
    let r = b.get("/wp-login.php")?;
    status(&r, 200, "login page")?;
    ensure!(
        r.headers_named("set-cookie")
            .iter()
            .any(|c| c.starts_with("wordpress_test_cookie=")),
        "login page: no wordpress_test_cookie"
    );
    let r = b.post_form(
        "/wp-login.php",
        &[
            ("log", WP_ADMIN),
            ("pwd", WP_PASSWORD),
            ("wp-submit", "Log In"),
            ("redirect_to", &format!("{origin}/wp-admin/")),
            ("testcookie", "1"),
        ],
    )?;
    status(&r, 302, "login POST")?;
    ensure!(
        r.headers_named("set-cookie")
            .iter()
            .any(|c| c.starts_with("wordpress_logged_in_")),
        "login POST: no wordpress_logged_in_ cookie (wrong password or test cookie lost?)"
    );
    let r = b.get("/wp-admin/")?;
    status(&r, 200, "dashboard")?;
    contains(&r, "Dashboard", "dashboard")?;
    // mod_dir's trailing-slash redirect, before WordPress sees anything.
    let r = b.get("/wp-admin")?;
    status(&r, 301, "/wp-admin without its slash")?;
    ensure!(
        r.header("location")
            .is_some_and(|l| l.ends_with("/wp-admin/")),
        "/wp-admin without its slash: redirected to {:?}",
        r.header("location")
    );
    let r = b.get_anonymous("/wp-admin/")?;
    status(&r, 302, "dashboard without cookie")?;
    ensure!(
        r.header("location")
            .is_some_and(|l| l.contains("wp-login.php")),
        "dashboard without cookie: expected a redirect to wp-login.php"
    );
    steps.done("login and dashboard");

    // Pretty permalinks through the settings form.
    let r = b.get("/wp-admin/options-permalink.php")?;
    status(&r, 200, "permalink settings")?;
    let mut form = cms::form(&r.text(), "form").ok_or("no permalink settings form")?;
    ensure!(
        form.get("_wpnonce").is_some(),
        "permalink settings: no _wpnonce"
    );
    form.set("selection", "/%postname%/");
    form.set("permalink_structure", "/%postname%/");
    form.set("submit", "Save Changes");
    let r = b.post_form("/wp-admin/options-permalink.php", &form.pairs())?;
    status(&r, 302, "saving permalinks")?;
    // The page the browser is sent back to is what flushes the rewrite
    // rules (and writes .htaccess, under Apache).
    let back = r
        .header("location")
        .ok_or("saving permalinks: no Location")?;
    let r = b.get(&cms::path_of(back, &origin))?;
    status(&r, 200, "permalink settings after saving")?;
    contains(
        &r,
        "Permalink structure updated",
        "permalink settings after saving",
    )?;
    // WordPress writes its block itself only when it believes it runs
    // under Apache with mod_rewrite (got_mod_rewrite()); otherwise the
    // host puts the stock block there, as on any non-Apache server.
    let htaccess = root.join(".htaccess");
    let written = std::fs::read_to_string(&htaccess).unwrap_or_default();
    if written.contains("# BEGIN WordPress") {
        eprintln!("[wordpress] WordPress wrote .htaccess itself:\n{written}");
        ensure!(
            written.contains("RewriteRule . /index.php [L]"),
            "the .htaccess WordPress wrote lacks the front-controller rule:\n{written}"
        );
    } else {
        eprintln!("[wordpress] WordPress did not write .htaccess (got_mod_rewrite() false); writing the stock block");
        std::fs::write(&htaccess, cms::WORDPRESS_HTACCESS).map_err(|e| e.to_string())?;
    }
    // A new .htaccess is picked up without a restart; wait (bounded) for
    // the REST index, which exists only through the rewrite.
    let wait = Deadline::after(deadline.cap(Duration::from_secs(15)));
    loop {
        let r = b.get("/wp-json/")?;
        if r.status == 200 {
            break;
        }
        ensure!(
            !wait.remaining().is_zero(),
            "/wp-json/ still answers {} 15s after the .htaccess was written",
            r.status
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    steps.done("permalinks");

    // A post through the REST API, cookie auth + nonce.
    let r = b.get("/wp-admin/")?;
    let nonce = rest_nonce(&r.text()).ok_or("no wpApiSettings nonce on the dashboard")?;
    let title = "Hello from htgate";
    let post = serde_json::json!({
        "title": title,
        "content": "<p>Served through .htaccess and FastCGI.</p>",
        "status": "publish",
        "slug": "hello-from-htgate",
    })
    .to_string();
    let r = b.send(
        "POST",
        "/wp-json/wp/v2/posts",
        &[("X-WP-Nonce", &nonce)],
        Body::Raw("application/json", post.as_bytes()),
        true,
    )?;
    status(&r, 201, "REST create post")?;
    let created: serde_json::Value =
        serde_json::from_slice(&r.body).map_err(|e| format!("REST create post: {e}"))?;
    let link = created["link"]
        .as_str()
        .ok_or("REST create post: no link")?;
    let permalink = cms::path_of(link, &origin);
    ensure!(
        permalink == "/hello-from-htgate/",
        "unexpected permalink {link}"
    );
    let r = b.get_anonymous(&permalink)?;
    status(&r, 200, "the post by its permalink")?;
    contains(&r, title, "the post by its permalink")?;
    contains(
        &r,
        "Served through .htaccess and FastCGI.",
        "the post by its permalink",
    )?;
    // Basic auth with an application password: Apache does not hand the
    // Authorization header to FastCGI applications, the stock block's
    // `[E=HTTP_AUTHORIZATION:%{HTTP:Authorization}]` does.
    let r = b.send(
        "POST",
        "/wp-json/wp/v2/users/me/application-passwords",
        &[("X-WP-Nonce", &nonce)],
        Body::Raw("application/json", br#"{"name":"htgate test"}"#),
        true,
    )?;
    status(&r, 201, "REST create application password")?;
    let created: serde_json::Value = serde_json::from_slice(&r.body)
        .map_err(|e| format!("REST create application password: {e}"))?;
    let app_password = created["password"]
        .as_str()
        .ok_or("REST create application password: no password")?;
    let me = "/wp-json/wp/v2/users/me?context=edit";
    let r = b.get_anonymous(me)?;
    status(&r, 401, "REST users/me without credentials")?;
    let auth = cms::basic_auth(WP_ADMIN, app_password);
    let r = b.send("GET", me, &[("Authorization", &auth)], Body::None, false)?;
    status(&r, 200, "REST users/me with an application password")?;
    contains(
        &r,
        &format!("\"username\":\"{WP_ADMIN}\""),
        "REST users/me with an application password",
    )?;
    // WordPress's canonical redirect adds the slash.
    let r = b.get_anonymous("/hello-from-htgate")?;
    status(&r, 301, "permalink without its slash")?;
    ensure!(
        r.header("location") == Some(&format!("{origin}/hello-from-htgate/")),
        "permalink without its slash: redirected to {:?}",
        r.header("location")
    );
    // An unknown pretty URL is WordPress's own 404 page.
    let r = b.get_anonymous("/no-such-page-here/")?;
    status(&r, 404, "unknown pretty URL")?;
    contains(&r, WP_TITLE, "unknown pretty URL")?;
    steps.done("post by REST, fetch by permalink");

    // Upload through async-upload.php with media-new.php's nonce, then
    // fetch the file as a static file.
    let r = b.get("/wp-admin/media-new.php")?;
    status(&r, 200, "media-new.php")?;
    let upload_form = cms::form(&r.text(), "file-form").ok_or("no upload form (file-form)")?;
    let nonce = upload_form
        .get("_wpnonce")
        .ok_or("media-new.php: no _wpnonce")?
        .to_string();
    let png = cms::png(0x00c0_ffee);
    let file = scratch.join("htgate-upload.png");
    std::fs::write(&file, &png).map_err(|e| e.to_string())?;
    let r = b.post_multipart(
        "/wp-admin/async-upload.php",
        &[
            ("name", "htgate-upload.png"),
            ("action", "upload-attachment"),
            ("_wpnonce", &nonce),
        ],
        ("async-upload", &file, "image/png"),
    )?;
    status(&r, 200, "async-upload.php")?;
    let answer: serde_json::Value =
        serde_json::from_slice(&r.body).map_err(|e| format!("async-upload.php: {e}"))?;
    ensure!(
        answer["success"] == serde_json::Value::Bool(true),
        "async-upload.php did not succeed: {answer}"
    );
    let url = answer["data"]["url"]
        .as_str()
        .ok_or("async-upload.php: no data.url")?;
    let path = cms::path_of(url, &origin);
    ensure!(
        path.starts_with("/wp-content/uploads/"),
        "upload stored at {url}"
    );
    let r = b.get_anonymous(&path)?;
    status(&r, 200, "the uploaded file")?;
    ensure!(r.body == png, "{path}: not the uploaded bytes");
    ensure!(
        r.header("content-type") == Some("image/png"),
        "{path}: content-type {:?}",
        r.header("content-type")
    );
    steps.done("media upload and fetch");

    // Configuration and plugin code stay private: wp-config.php runs (and
    // prints nothing), Akismet's .htaccess denies all but its assets.
    let r = b.get_anonymous("/wp-config.php")?;
    status(&r, 200, "/wp-config.php")?;
    ensure!(
        !r.text().contains("DB_PASSWORD"),
        "/wp-config.php was sent as source"
    );
    let r = b.get_anonymous("/.htaccess")?;
    status(&r, 403, "/.htaccess")?;
    let r = b.get_anonymous("/wp-content/plugins/akismet/akismet.php")?;
    status(&r, 403, "akismet.php (denied by the plugin's .htaccess)")?;
    let r = b.get_anonymous("/wp-content/plugins/akismet/_inc/akismet.css")?;
    status(&r, 200, "akismet.css (allowed by the plugin's .htaccess)")?;
    steps.done("private files");
    Ok(())
}

/// The REST nonce WordPress prints for its scripts:
/// `var wpApiSettings = {"root":…,"nonce":"…",…};`.
fn rest_nonce(html: &str) -> Option<String> {
    let re = regex::Regex::new(r"wpApiSettings\s*=\s*(\{[^;]*\});").expect("regex");
    let json = re.captures(html)?.get(1)?.as_str();
    let v: serde_json::Value = serde_json::from_str(json).ok()?;
    v["nonce"].as_str().map(str::to_string)
}

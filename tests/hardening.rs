//! Hardening (issue 7): hostile site owners and hostile clients get
//! nothing, and the server keeps serving everyone else.
//!
//! - properties (proptest) run straight on the engine
//!   (`htgate_engine::respond::run`), which is fast enough for hundreds of
//!   generated trees and requests: the path resolver never leaves the site
//!   root except through a symlink the site's `Options` allow, and no
//!   response header (nor a CGI parameter for PHP) carries CR, LF or NUL;
//! - the Apache CVEs the issue names, each in a test named after it, on
//!   the engine and through the real server;
//! - connection limits through the real listener: 414, 431, 413,
//!   slowloris, the connection caps, HTTP/2 rapid reset, SIGTERM draining.
//!
//! Every network wait is bounded (`T`), so no test can hang.

use htgate_engine::respond::{run, Outcome, RequestHead};
use htgate_engine::site::Site;
use htgate_hosting::quick::{self, QuickOptions};
use htgate_server::limits::Limits;
use htgate_server::listener::{serve_with_limits, Listener};
use htgate_server::ConnInfo;
use proptest::prelude::*;
use std::net::SocketAddr;
use std::os::unix::fs::{symlink, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// The bound on every network wait.
const T: Duration = Duration::from_secs(10);

/// When the tests run as root, the site's files (and the symlinks in it)
/// belong to this customer...
const CUSTOMER_UID: u32 = 4242;
/// ...and the other customer's files (and the folders above the site) to
/// this one, as on a shared host.
const OTHER_UID: u32 = 65534;

fn write(dir: &Path, rel: &str, text: &str) {
    let p = dir.join(rel);
    if let Some(parent) = p.parent() {
        std::fs::create_dir_all(parent).expect("mkdir");
    }
    std::fs::write(p, text).expect("write");
}

fn options(root: &Path, php_fpm: Option<&str>) -> QuickOptions {
    QuickOptions {
        root: root.to_path_buf(),
        http: "127.0.0.1:0".parse().expect("address"),
        https: "127.0.0.1:0".parse().expect("address"),
        cert: None,
        key: None,
        server_names: vec!["localhost".to_string()],
        debug_headers: false,
        pass_client_https_headers: false,
        php_fpm: php_fpm.map(str::to_string),
        mime_types: None,
        http3: false,
        php: Default::default(),
    }
}

fn conn() -> ConnInfo {
    ConnInfo {
        remote: "192.0.2.10:50000".parse().expect("address"),
        local: "127.0.0.1:80".parse().expect("address"),
        tls: false,
        sni: None,
        trusted_proxy: false,
        proxied_https: false,
    }
}

fn head(target: &str, extra: &[(&str, Vec<u8>)]) -> RequestHead {
    let mut headers = http::HeaderMap::new();
    headers.insert(
        http::header::HOST,
        http::HeaderValue::from_static("localhost"),
    );
    for (name, value) in extra {
        // A value the http crate refuses can never reach the engine.
        if let (Ok(n), Ok(v)) = (
            http::HeaderName::from_bytes(name.as_bytes()),
            http::HeaderValue::from_bytes(value),
        ) {
            headers.append(n, v);
        }
    }
    RequestHead {
        method: http::Method::GET,
        target: target.to_string(),
        protocol: "HTTP/1.1".to_string(),
        headers,
        authority: None,
    }
}

fn describe(o: &Outcome) -> String {
    match o {
        Outcome::File {
            path,
            status,
            headers,
            ..
        } => format!("File {status} {path} {headers:?}"),
        Outcome::Plain {
            status, headers, ..
        } => format!("Plain {status} {headers:?}"),
        Outcome::Php(call) => format!("Php {:?} {:?}", call.headers, call.params),
        Outcome::Filtered(inner, _) => format!("Filtered {}", describe(inner)),
        Outcome::Offload(reason) => format!("Offload {reason}"),
    }
}

/// The answer under any output filter (mod_deflate wraps it).
fn unfiltered(o: &Outcome) -> &Outcome {
    match o {
        Outcome::Filtered(inner, _) => unfiltered(inner),
        other => other,
    }
}

fn running_as_root() -> bool {
    // /proc/self belongs to the process's effective uid.
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

// ---------------------------------------------------------------------
// The path resolver never leaves the site root (except through a symlink
// the site's Options allow).
// ---------------------------------------------------------------------

/// The symlinks a generated tree may hold: (name in the root, target).
/// `@ROOT`, `@OUT` and `@TMP` stand for the absolute paths.
const LINKS: &[(&str, &str)] = &[
    ("in_file", "a/file.txt"),
    ("in_dir", "a/b"),
    ("in_abs", "@ROOT/a/file.txt"),
    ("a/b/back", "../file.txt"),
    ("out_secret", "../outside/secret.txt"),
    ("out_abs", "@OUT/secret.txt"),
    ("out_mine", "../outside/mine.txt"),
    ("out_dir", "../outside/dir"),
    ("a/up", "../.."),
    ("a/root_link", "/"),
    ("etc", "/etc"),
    ("passwd.txt", "/etc/passwd"),
    ("loop", "loop"),
    ("dangling", "../nowhere"),
    ("hta", ".htaccess"),
    ("out_hta", "../outside/.htaccess"),
];

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SymMode {
    Follow,
    OwnerMatch,
    Never,
}

impl SymMode {
    fn options_line(self) -> &'static str {
        match self {
            SymMode::Follow => "Options +FollowSymLinks -SymLinksIfOwnerMatch",
            SymMode::OwnerMatch => "Options -FollowSymLinks +SymLinksIfOwnerMatch",
            SymMode::Never => "Options -FollowSymLinks -SymLinksIfOwnerMatch",
        }
    }
}

/// RewriteRules a hostile owner might write to reach outside the root.
const RULES: &[&str] = &[
    "RewriteRule ^x/(.*)$ /a/$1 [L]",
    "RewriteRule ^y/(.*)$ ../$1 [L]",
    "RewriteRule ^z/(.*)$ /%{QUERY_STRING} [L]",
    "RewriteRule ^abs/(.*)$ /../../$1 [L]",
    "RewriteRule ^etc$ /etc/passwd [L]",
    "RewriteRule ^f/(.*)$ file:///etc/$1 [L]",
    "RewriteRule ^e/(.*)$ /$1 [B,L]",
    "RewriteRule ^ne/(.*)$ /$1 [NE,L]",
    "RewriteRule ^(.*)\\.txt$ $1.html [L]",
    "RewriteRule ^d/(.*)$ %{DOCUMENT_ROOT}/../outside/$1 [L]",
    "RewriteRule ^p/(.*)$ $1 [N]",
    "RewriteRule ^s/(.*)$ /a/b/../../../outside/$1 [L]",
    "RewriteRule ^u/(.*)$ /%2e%2e/%2e%2e/$1 [L]",
    "RewriteRule ^w/(.*)$ \\\\..\\\\$1 [L]",
    "RewriteCond %{QUERY_STRING} ^to=(.*)$\nRewriteRule ^q$ /%1 [L]",
    "RewriteRule ^(.*)$ - [E=LAST:$1]",
];

/// Path segments of hostile requests.
const SEGMENTS: &[&str] = &[
    "a",
    "b",
    "file.txt",
    "deep.txt",
    "index.html",
    "in_file",
    "in_dir",
    "in_abs",
    "back",
    "out_secret",
    "out_abs",
    "out_mine",
    "out_dir",
    "inner.txt",
    "up",
    "root_link",
    "outside",
    "secret.txt",
    "mine.txt",
    "etc",
    "passwd",
    "passwd.txt",
    "loop",
    "dangling",
    "hta",
    "out_hta",
    ".htaccess",
    ".htpasswd",
    ".HTACCESS",
    "..",
    ".",
    "",
    "%2e%2e",
    "%2E%2E",
    ".%2e",
    "%2e",
    "%2f",
    "..%2f",
    "%2e%2e%2f",
    "%00",
    "%5c",
    "\\",
    "..\\",
    "..%5c..%5c",
    "~",
    "~root",
    "%c0%ae%c0%ae",
    "%c0%af",
    "%e0%80%ae",
    "%25",
    "%252e%252e",
    "..;",
    "file.txt.",
    "file.txt%20",
    "file.txt::$DATA",
    "%ff",
    "é",
    "%e2%80%ae",
    "x",
    "y",
    "z",
    "q",
    "p",
    "e",
    "ne",
    "d",
    "s",
    "u",
    "w",
    "f",
    "abs",
];

const QUERIES: &[&str] = &[
    "",
    "?to=../outside/secret.txt",
    "?to=/etc/passwd",
    "?to=%2e%2e/outside/secret.txt",
    "?../../outside/secret.txt",
    "?a/file.txt",
    "?%00",
    "?..%2f..%2f",
];

struct Tree {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    root_canon: PathBuf,
    /// Files that belong to "another customer": never to be served except
    /// under FollowSymLinks (Apache's semantics: the site allowed it).
    foreign: Vec<PathBuf>,
}

fn fill(dir: &Path, abs_root: &Path, abs_out: &Path, abs_tmp: &Path, links: &[usize]) {
    for &i in links {
        let (name, target) = LINKS[i];
        let target = target
            .replace("@ROOT", &abs_root.to_string_lossy())
            .replace("@OUT", &abs_out.to_string_lossy())
            .replace("@TMP", &abs_tmp.to_string_lossy());
        let at = dir.join(name);
        if let Some(parent) = at.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        let _ = symlink(&target, &at);
    }
}

fn build_tree(mode: SymMode, rules: &[usize], links: &[usize]) -> Tree {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = std::fs::canonicalize(tmp.path()).expect("canonical tmp");
    let root = base.join("root");
    let out = base.join("outside");
    write(&root, "index.html", "INDEX\n");
    write(&root, "a/file.txt", "FILE\n");
    write(&root, "a/file.html", "FILE-HTML\n");
    write(&root, "a/b/deep.txt", "DEEP\n");
    write(&root, ".htpasswd", "user:$apr1$x$y\n");
    write(&out, "secret.txt", "OUTSIDE-SECRET\n");
    write(&out, "mine.txt", "OUTSIDE-MINE\n");
    write(&out, "dir/inner.txt", "OUTSIDE-INNER\n");
    write(&out, ".htaccess", "# outside\n");
    let mut hta = String::new();
    hta.push_str(mode.options_line());
    hta.push('\n');
    if !rules.is_empty() {
        hta.push_str("RewriteEngine On\n");
        for &r in rules {
            hta.push_str(RULES[r]);
            hta.push('\n');
        }
    }
    write(&root, ".htaccess", &hta);
    fill(&root, &root, &out, &base, links);
    // /etc belongs to root: never the customer's.
    let mut foreign = vec![PathBuf::from("/etc/passwd")];
    if running_as_root() {
        // The site, its symlinks and one file outside it are the
        // customer's; another customer's files and the folders above the
        // site belong to someone else.
        chown_tree(&root, CUSTOMER_UID);
        std::os::unix::fs::chown(out.join("mine.txt"), Some(CUSTOMER_UID), Some(CUSTOMER_UID))
            .expect("chown");
        for p in [
            out.join("secret.txt"),
            out.join("dir/inner.txt"),
            out.join("dir"),
            out.join(".htaccess"),
            out.clone(),
            base.clone(),
        ] {
            std::os::unix::fs::chown(&p, Some(OTHER_UID), Some(OTHER_UID)).expect("chown");
        }
        foreign.push(out.join("secret.txt"));
        foreign.push(out.join("dir/inner.txt"));
        foreign.push(out.join(".htaccess"));
    }
    Tree {
        root_canon: std::fs::canonicalize(&root).expect("canonical root"),
        root,
        _tmp: tmp,
        foreign,
    }
}

/// `chown -hR uid:uid dir` (symlinks themselves, never their targets).
fn chown_tree(dir: &Path, uid: u32) {
    std::os::unix::fs::lchown(dir, Some(uid), Some(uid)).expect("lchown");
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        let is_dir = std::fs::symlink_metadata(&p)
            .map(|m| m.file_type().is_dir())
            .unwrap_or(false);
        if is_dir {
            chown_tree(&p, uid);
        } else {
            std::os::unix::fs::lchown(&p, Some(uid), Some(uid)).expect("lchown");
        }
    }
}

/// Whether Apache's rule allows every symlink met on the way from the
/// root to `path` (the path as the engine built it, before resolution).
fn every_link_allowed(root: &Path, path: &Path, mode: SymMode) -> Result<bool, String> {
    let rel = path
        .strip_prefix(root)
        .map_err(|_| format!("{} is not under the root", path.display()))?;
    let mut cur = root.to_path_buf();
    for comp in rel.components() {
        match comp {
            std::path::Component::Normal(c) => cur.push(c),
            other => return Err(format!("{} has a {other:?} component", path.display())),
        }
        let Ok(lm) = std::fs::symlink_metadata(&cur) else {
            continue;
        };
        if !lm.file_type().is_symlink() {
            continue;
        }
        let ok = match mode {
            SymMode::Follow => true,
            SymMode::OwnerMatch => std::fs::metadata(&cur)
                .map(|t| t.uid() == lm.uid())
                .unwrap_or(false),
            SymMode::Never => false,
        };
        if !ok {
            return Ok(false);
        }
    }
    Ok(true)
}

fn check_outcome(tree: &Tree, mode: SymMode, target: &str, o: &Outcome) -> Result<(), String> {
    let Outcome::File { path, status, .. } = unfiltered(o) else {
        return Ok(());
    };
    let p = Path::new(path);
    // The engine's path is always the root plus plain names.
    if !every_link_allowed(&tree.root, p, mode)? {
        return Err(format!(
            "{target}: served {path} through a symlink that {mode:?} forbids"
        ));
    }
    let canon = std::fs::canonicalize(p).map_err(|e| format!("{target}: {path}: {e}"))?;
    if !canon.starts_with(&tree.root_canon) {
        // Outside the root only through an allowed symlink (checked
        // above), and never another customer's file unless the site said
        // FollowSymLinks (Apache follows anything then).
        if mode != SymMode::Follow && tree.foreign.contains(&canon) {
            return Err(format!(
                "{target}: served another customer's {} ({status}) under {mode:?}",
                canon.display()
            ));
        }
        if mode == SymMode::Never {
            return Err(format!(
                "{target}: served {} outside the root with symlinks off",
                canon.display()
            ));
        }
    }
    // `.ht*` files are never served by their name.  (Through a symlink of
    // another name the site may expose its own, as Apache does: `<Files>`
    // sees the link's name; another customer's are in `foreign`.)
    let name = p
        .file_name()
        .map(|n| n.to_string_lossy().to_ascii_lowercase())
        .unwrap_or_default();
    if name.starts_with(".ht") {
        return Err(format!("{target}: served {path}"));
    }
    Ok(())
}

fn target_strategy() -> impl Strategy<Value = String> {
    (
        prop::collection::vec(prop::sample::select(SEGMENTS), 1..7),
        prop::bool::ANY,
        prop::sample::select(QUERIES),
    )
        .prop_map(|(segs, double, q)| {
            let lead = if double { "//" } else { "/" };
            format!("{lead}{}{q}", segs.join("/"))
        })
}

fn mode_strategy() -> impl Strategy<Value = SymMode> {
    prop::sample::select(vec![SymMode::Follow, SymMode::OwnerMatch, SymMode::Never])
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        max_shrink_iters: 200,
        // Failures are printed with their minimal input; no files are
        // written beside the tests.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn path_resolver_never_leaves_the_root(
        mode in mode_strategy(),
        rules in prop::collection::vec(0..RULES.len(), 0..4),
        links in prop::collection::vec(0..LINKS.len(), 0..10),
        targets in prop::collection::vec(target_strategy(), 1..16),
    ) {
        let tree = build_tree(mode, &rules, &links);
        let site = quick::site(&options(&tree.root, None)).expect("site");
        let c = conn();
        for t in &targets {
            let o = run(&site, &head(t, &[]), &c);
            if let Err(e) = check_outcome(&tree, mode, t, &o) {
                let hta = std::fs::read_to_string(tree.root.join(".htaccess")).unwrap_or_default();
                return Err(TestCaseError::fail(format!("{e}\n.htaccess:\n{hta}")));
            }
        }
    }
}

/// Every symlink at once, every segment through each, in each mode: the
/// exhaustive companion of the property above.
#[test]
fn every_symlink_in_every_mode() {
    let all: Vec<usize> = (0..LINKS.len()).collect();
    for mode in [SymMode::Follow, SymMode::OwnerMatch, SymMode::Never] {
        let tree = build_tree(mode, &[], &all);
        let site = quick::site(&options(&tree.root, None)).expect("site");
        let c = conn();
        for (name, _) in LINKS {
            for tail in [
                "",
                "/",
                "/secret.txt",
                "/inner.txt",
                "/passwd",
                "/file.txt",
                "/outside/secret.txt",
                "/root/index.html",
            ] {
                let t = format!("/{name}{tail}");
                let o = run(&site, &head(&t, &[]), &c);
                if let Err(e) = check_outcome(&tree, mode, &t, &o) {
                    panic!("{e}");
                }
            }
        }
        // The outside secret through its links: never unless Follow.
        for t in [
            "/out_secret",
            "/out_abs",
            "/out_dir/inner.txt",
            "/a/up/outside/secret.txt",
        ] {
            let o = run(&site, &head(t, &[]), &c);
            let served_secret = matches!(&o, Outcome::File { path, .. }
                if std::fs::read_to_string(path).unwrap_or_default().starts_with("OUTSIDE-"));
            if mode != SymMode::Follow && running_as_root() {
                assert!(!served_secret, "{mode:?} {t}: {}", describe(&o));
            }
            if mode == SymMode::Never {
                assert!(!served_secret, "{mode:?} {t}: {}", describe(&o));
            }
        }
        // Inside links work where links are allowed at all.
        let o = run(&site, &head("/in_file", &[]), &c);
        match mode {
            SymMode::Never => assert!(!matches!(o, Outcome::File { .. }), "{}", describe(&o)),
            _ => assert!(
                matches!(&o, Outcome::File { status: 200, .. }),
                "{mode:?}: {}",
                describe(&o)
            ),
        }
    }
}

// ---------------------------------------------------------------------
// No response header (and no CGI parameter) carries CR, LF or NUL.
// ---------------------------------------------------------------------

/// Rules that copy request data (path, query, headers) into response
/// headers, cookies, redirects, the environment and upstream headers.
const HEADER_RULES: &[&str] = &[
    "RewriteRule ^(.*)$ - [E=P:$1]\nHeader always set X-P \"%{P}e\"",
    "RewriteRule ^(.*)$ - [E=Q:%{QUERY_STRING}]\nHeader always set X-Q \"%{Q}e\"",
    "RewriteCond %{HTTP:X-In} (.*)\nRewriteRule .* - [E=IN:%1]\nHeader always set X-In \"%{IN}e\"",
    "Header always set X-Ua \"%{User-Agent}i\"",
    "Header always set X-Req \"%{REQUEST_URI}e|%{QUERY_STRING}e\"",
    "Header echo ^X-",
    "RewriteRule ^(.*)$ - [CO=c:$1:localhost]",
    "RewriteRule ^(.*)$ - [CO=q:%{QUERY_STRING}:localhost:60:/]",
    "RewriteRule ^r/(.*)$ /t/$1 [R=302,L]",
    "RewriteRule ^rb/(.*)$ /t/$1 [B,R=302,L]",
    "RewriteRule ^rn/(.*)$ /t/$1 [NE,R=301,L]",
    "RewriteRule ^ra/(.*)$ http://%{HTTP_HOST}/$1 [R,L]",
    "RewriteRule ^qs/(.*)$ /x?%{QUERY_STRING} [R,L]",
    "RewriteRule ^qsa/(.*)$ /x?v=$1 [QSA,R,L]",
    "RewriteCond %{HTTP:X-In} (.*)\nRewriteRule ^h/ /t/%1 [R,L]",
    "RequestHeader set X-Up \"%{QUERY_STRING}e\"",
    "RewriteRule ^(.*)$ - [E=HTTP_X_FROM_RULE:$1]",
    "Header always add Set-Cookie \"s=%{P}e\"",
    "Header always set Link \"<%{REQUEST_URI}e>; rel=x\"",
    "Header always set X-Env \"%{LAST}e\"\nRewriteRule ^(.*)$ - [E=LAST:%{THE_REQUEST}]",
    "RewriteRule ^php/(.*)$ /index.php/$1 [L]",
    "RewriteRule ^pq/(.*)$ /index.php?x=$1 [L]",
    "RewriteRule ^pn/(.*)$ /index.php/$1 [NE,L]",
    "ErrorDocument 404 /index.php",
    "Header always set X-Status \"%{REDIRECT_STATUS}e %{HTTP_X_IN}e\"",
];

const EVIL_SEGMENTS: &[&str] = &[
    "a",
    "r",
    "rb",
    "rn",
    "ra",
    "qs",
    "qsa",
    "h",
    "php",
    "pq",
    "pn",
    "index.php",
    "%0d%0aSet-Cookie:%20evil=1",
    "%0d%0a%0d%0a<html>",
    "%0a",
    "%0d",
    "%00",
    "%0D%0A",
    "x%0d%0aLocation:%20http://evil",
    "%e5%98%8a%e5%98%8d",
    "%c4%8d%c4%8a",
    "\u{2028}",
    "%09tab",
    "%7f",
    "%250d%250a",
    "%%0d0a",
];

const EVIL_QUERIES: &[&str] = &[
    "",
    "?a=%0d%0aSet-Cookie:%20evil=1",
    "?%0d%0a",
    "?x=%00y",
    "?\r\nInjected: 1",
    "?q=%250d%250a",
    "?to=%0aX-Evil:%201",
];

const EVIL_HEADER_VALUES: &[&[u8]] = &[
    b"plain",
    b"%0d%0aSet-Cookie: evil=1",
    b"a\tb",
    b"\xe5\x98\x8a\xe5\x98\x8d",
    b"\xff\xfe",
    b"v\r\nInjected: 1",
    b"x\x00y",
    b"%00",
];

fn ctl_bytes(b: &[u8]) -> bool {
    b.iter().any(|&c| c == b'\r' || c == b'\n' || c == 0)
}

/// What goes out for `o`, checked for CR, LF and NUL: the response htgate
/// builds from a File or Plain outcome (where every header goes through
/// one sanitiser, `respond::sanitize_header_value`, before it becomes an
/// `http::HeaderValue`), or for PHP the upstream request headers, the
/// headers added to PHP's answer and (with `params_too`) every CGI
/// parameter.  Also: sanitising never silently loses a header.
fn answer_problem(rt: &tokio::runtime::Runtime, o: Outcome, params_too: bool) -> Option<String> {
    use htgate_engine::respond::{finish_php_headers, sanitize_header_value};
    use htgate_server::site_handler::into_response;
    let expected = |headers: &[(String, String)]| -> Vec<String> {
        headers
            .iter()
            .filter(|(k, v)| {
                http::HeaderName::from_bytes(k.as_bytes()).is_ok()
                    && http::HeaderValue::from_str(&sanitize_header_value(v)).is_ok()
            })
            .map(|(k, _)| k.to_ascii_lowercase())
            .collect()
    };
    // A PHP call under mod_deflate is still a PHP call.
    fn strip(o: Outcome) -> Outcome {
        match o {
            Outcome::Filtered(inner, _) => strip(*inner),
            other => other,
        }
    }
    let o = if matches!(unfiltered(&o), Outcome::Php(_)) {
        strip(o)
    } else {
        o
    };
    match o {
        Outcome::Php(call) => {
            for (k, v) in &call.headers_in {
                if ctl_bytes(v.as_bytes()) {
                    return Some(format!("upstream header {k}: {v:?}"));
                }
            }
            if params_too {
                for (k, v) in &call.params {
                    if ctl_bytes(k.as_bytes()) || ctl_bytes(v.as_bytes()) {
                        return Some(format!("CGI param {k:?}: {v:?}"));
                    }
                }
            }
            for (k, v) in finish_php_headers(&call, Vec::new()) {
                if ctl_bytes(k.as_bytes()) || ctl_bytes(sanitize_header_value(&v).as_bytes()) {
                    return Some(format!("header for PHP's answer {k:?}: {v:?}"));
                }
            }
            None
        }
        other => {
            let want = match unfiltered(&other) {
                Outcome::File { headers, .. } | Outcome::Plain { headers, .. } => expected(headers),
                _ => Vec::new(),
            };
            let resp = rt.block_on(into_response(
                other,
                &http::Method::GET,
                &http::HeaderMap::new(),
            ));
            for (k, v) in resp.headers() {
                if ctl_bytes(v.as_bytes()) {
                    return Some(format!("response header {k}: {v:?}"));
                }
            }
            for name in want {
                if !resp.headers().contains_key(name.as_str()) {
                    return Some(format!("header {name} lost on the way out"));
                }
            }
            None
        }
    }
}

/// A site with PHP through a socket nobody listens on: the engine builds
/// the whole FastCGI call (the test looks at it) and nothing connects.
fn php_site(root: &Path) -> (tokio::runtime::Runtime, Site) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let site = {
        let _guard = rt.enter();
        quick::site(&options(root, Some("/nonexistent/htgate-test-php.sock"))).expect("site")
    };
    (rt, site)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 96,
        max_shrink_iters: 200,
        // Failures are printed with their minimal input; no files are
        // written beside the tests.
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn no_response_header_carries_cr_lf_or_nul(
        rules in prop::collection::vec(0..HEADER_RULES.len(), 1..6),
        php in prop::bool::ANY,
        requests in prop::collection::vec(
            (
                prop::collection::vec(prop::sample::select(EVIL_SEGMENTS), 1..4),
                prop::sample::select(EVIL_QUERIES),
                prop::sample::select(EVIL_HEADER_VALUES),
            ),
            1..8,
        ),
    ) {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path();
        let mut hta = String::from("RewriteEngine On\n");
        for &r in &rules {
            hta.push_str(HEADER_RULES[r]);
            hta.push('\n');
        }
        write(root, ".htaccess", &hta);
        write(root, "index.php", "<?php echo 1;\n");
        write(root, "a/index.html", "A\n");
        let (rt, site) = if php {
            php_site(root)
        } else {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("runtime");
            (rt, quick::site(&options(root, None)).expect("site"))
        };
        let c = conn();
        for (segs, q, hv) in &requests {
            let target = format!("/{}{q}", segs.join("/"));
            let h = head(&target, &[
                ("x-in", hv.to_vec()),
                ("user-agent", hv.to_vec()),
                ("x-echo", hv.to_vec()),
                ("proxy", b"http://evil.example:1".to_vec()),
            ]);
            let o = run(&site, &h, &c);
            if let Some(p) = answer_problem(&rt, o, false) {
                return Err(TestCaseError::fail(format!("{target}: {p}\n.htaccess:\n{hta}")));
            }
        }
    }
}

// ---------------------------------------------------------------------
// The CVEs.
// ---------------------------------------------------------------------

/// Raw HTTP/1.1 exchange: the status and the whole answer.
async fn raw(addr: SocketAddr, req: &[u8]) -> (u16, String) {
    let Ok(Ok(mut s)) = tokio::time::timeout(T, TcpStream::connect(addr)).await else {
        return (0, String::new());
    };
    let _ = s.write_all(req).await;
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|t| t.get(..3))
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, text)
}

async fn get(addr: SocketAddr, target: &str) -> (u16, String) {
    raw(
        addr,
        format!("GET {target} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
}

#[tokio::test]
async fn cve_2024_38474_encoded_question_mark_never_becomes_a_query() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    // .txt requests are mapped to .html; PHP source must not come out by
    // smuggling a `?` through the capture (`secret.php%3f.txt` once made
    // the substitution `/secret.php?.html`: the file secret.php, with
    // the query `.html`).
    write(
        root,
        ".htaccess",
        "RewriteEngine On\nRewriteRule ^(.*)\\.txt$ /$1.html [L]\n\
         RewriteRule ^allow/(.*)\\.txt$ /$1.html [L,UnsafeAllow3F]\n",
    );
    write(
        root,
        "secret.php",
        "<?php $db_password = 'SECRET-SOURCE';\n",
    );
    write(root, "page.html", "PAGE\n");
    let site = quick::site(&options(root, None)).expect("site");
    let c = conn();
    for t in [
        "/secret.php%3f.txt",
        "/secret.php%3F.txt",
        "/secret.php%3fx=1.txt",
        "/secret.php%253f.txt",
    ] {
        let o = run(&site, &head(t, &[]), &c);
        if let Outcome::File { path, .. } = &o {
            assert!(!path.ends_with("secret.php"), "{t}: {}", describe(&o));
        }
    }
    let o = run(&site, &head("/secret.php%3f.txt", &[]), &c);
    assert!(
        matches!(o, Outcome::Plain { status: 403, .. }),
        "Apache 2.4.60+ answers 403 (AH10508): {}",
        describe(&o)
    );
    // A literal `?` in the substitution is the rule's own: fine.
    let o = run(&site, &head("/page.txt", &[]), &c);
    assert!(
        matches!(&o, Outcome::File { path, .. } if path.ends_with("page.html")),
        "{}",
        describe(&o)
    );

    // Through the server: the source never comes out.
    let server = quick::start(options(root, None)).await.expect("start");
    for t in [
        "/secret.php%3f.txt",
        "/secret.php%3F.txt",
        "/secret.php%3f%3f.txt",
    ] {
        let (status, text) = get(server.http_addr, t).await;
        assert!(!text.contains("SECRET-SOURCE"), "{t}: {text}");
        assert_eq!(status, 403, "{t}: {text}");
    }
    server.shutdown().await;
}

#[tokio::test]
async fn cve_2024_38475_substitution_never_reaches_outside_the_site() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = std::fs::canonicalize(tmp.path()).expect("canonical");
    let root = base.join("site");
    let other = base.join("other-customer");
    write(&other, "wp-config.php", "OTHER-CUSTOMER-SECRET\n");
    write(&root, "index.html", "INDEX\n");
    // Every way a per-directory substitution might name a file-system path.
    let hta = format!(
        "RewriteEngine On\n\
         RewriteRule ^a/(.*)$ {other}/$1 [L]\n\
         RewriteRule ^b/(.*)$ %{{DOCUMENT_ROOT}}/../other-customer/$1 [L]\n\
         RewriteRule ^c/(.*)$ ../other-customer/$1 [L]\n\
         RewriteRule ^d/(.*)$ /../other-customer/$1 [L]\n\
         RewriteRule ^e/(.*)$ file://{other}/$1 [L]\n\
         RewriteRule ^f/(.*)$ /$1 [L]\n\
         RewriteRule ^g/(.*)$ /%2e%2e/other-customer/$1 [NE,L]\n\
         RewriteRule ^h/(.*)$ //{other}/$1 [L]\n\
         RewriteRule ^i/(.*)$ /etc/passwd [L]\n\
         RewriteRule ^j/(.*)$ $1 [B,L]\n\
         RewriteRule ^k/(.*)$ {other}/$1 [PT,L]\n\
         RewriteRule ^l/(.*)$ {other}/$1 [DPI,L]\n\
         RewriteRule ^m/(.*)$ /index.html?{other}/$1 [L]\n",
        other = other.display()
    );
    write(&root, ".htaccess", &hta);
    let site = quick::site(&options(&root, None)).expect("site");
    let root_canon = std::fs::canonicalize(&root).expect("canonical");
    let c = conn();
    let mut targets = Vec::new();
    for p in [
        "a", "b", "c", "d", "e", "f", "g", "h", "i", "j", "k", "l", "m",
    ] {
        for tail in [
            "wp-config.php",
            "..%2fother-customer%2fwp-config.php",
            "../other-customer/wp-config.php",
            "%2e%2e/%2e%2e/other-customer/wp-config.php",
            "..%5c..%5cother-customer%5cwp-config.php",
        ] {
            targets.push(format!("/{p}/{tail}"));
        }
    }
    for t in &targets {
        let o = run(&site, &head(t, &[]), &c);
        if let Outcome::File { path, .. } = &o {
            let canon = std::fs::canonicalize(path).expect("served file exists");
            assert!(
                canon.starts_with(&root_canon),
                "{t}: served {}",
                canon.display()
            );
        }
    }
    let server = quick::start(options(&root, None)).await.expect("start");
    for t in targets.iter().take(40) {
        let (status, text) = get(server.http_addr, t).await;
        assert!(!text.contains("OTHER-CUSTOMER-SECRET"), "{t}: {text}");
        assert!(!text.contains("root:x:0:0"), "{t}: {text}");
        assert!(status != 0, "{t}: no answer");
    }
    server.shutdown().await;
}

#[test]
fn cve_2023_25690_no_control_bytes_from_substitution_reach_headers_or_upstream() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    // The CVE's shape: a capture of the (decoded) path put into something
    // that goes out as a header line or into an upstream request.
    write(
        root,
        ".htaccess",
        "RewriteEngine On\n\
         RewriteRule ^r/(.*)$ /t/$1 [R=302,L]\n\
         RewriteRule ^ra/(.*)$ http://localhost/t/$1 [R=302,L]\n\
         RewriteRule ^rn/(.*)$ /t/$1 [NE,R=302,L]\n\
         RewriteRule ^e/(.*)$ - [E=CAP:$1]\n\
         RewriteRule ^co/(.*)$ - [CO=c:$1:localhost]\n\
         Header always set X-Cap \"%{CAP}e\"\n\
         RewriteRule ^api/(.*)$ /index.php?path=$1 [L]\n\
         RewriteRule ^pi/(.*)$ /index.php/$1 [L]\n\
         RewriteRule ^env/(.*)$ /index.php [E=HTTP_X_CAP:$1,E=CAP:$1,L]\n\
         RewriteRule ^index\\.php/(.*)$ - [E=HTTP_X_DIRECT:$1]\n\
         RequestHeader set X-From-Rule \"%{CAP}e\"\n",
    );
    write(root, "index.php", "<?php echo 1;\n");
    write(root, "t/index.html", "T\n");
    let evil = [
        "x%0d%0aSet-Cookie:%20evil=1",
        "x%0aX-Injected:%201",
        "x%0d%0a%0d%0aGET%20/smuggled%20HTTP/1.1",
        "x%00y",
        "%0d",
    ];
    let (rt, site) = php_site(root);
    let c = conn();
    let mut problems = Vec::new();
    for p in ["r", "ra", "rn", "e", "co", "api", "pi", "env", "index.php"] {
        for tail in evil {
            let t = format!("/{p}/{tail}");
            let o = run(&site, &head(&t, &[]), &c);
            let what = describe(&o);
            if let Outcome::Php(call) = &o {
                problems.extend(
                    upstream_problems(&call.params, &call.headers_in, false)
                        .into_iter()
                        .map(|p| format!("{t}: {p}")),
                );
            }
            if let Some(problem) = answer_problem(&rt, o, false) {
                problems.push(format!("{t}: {problem}\n    {what}"));
            }
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // Through the server: no header line is ever split.
    rt.block_on(async {
        let server = quick::start(options(root, None)).await.expect("start");
        for p in ["r", "ra", "rn", "e", "co"] {
            for tail in evil {
                let t = format!("/{p}/{tail}");
                let (status, text) = get(server.http_addr, &t).await;
                assert!(status != 0 && status < 500, "{t}: {text}");
                let head_part = text.split("\r\n\r\n").next().unwrap_or("");
                for line in head_part.split("\r\n").skip(1) {
                    let lower = line.to_ascii_lowercase();
                    assert!(
                        !lower.starts_with("x-injected") && !lower.starts_with("get "),
                        "{t}: injected line {line:?}"
                    );
                    assert!(
                        !line.contains('\n') && !line.contains('\0'),
                        "{t}: {line:?}"
                    );
                    assert!(!lower.starts_with("set-cookie: evil"), "{t}: {line:?}");
                }
            }
        }
        server.shutdown().await;
    });
}

/// The CGI parameters that must never carry a control byte: NUL nowhere
/// (C strings end there: `x.php%00.jpg`); CR and LF not in what picks the
/// script, not in the query or the raw URI, and not in the `HTTP_*` ones
/// made from the request headers sent upstream (`headers`, after the
/// rules' `RequestHeader` edits: PHP frameworks read those as request
/// headers and may send them on).  With `all`, no CR or LF in any
/// parameter (also PATH_INFO, REDIRECT_* and `[E=]` variables).
fn upstream_problems(
    params: &[(String, String)],
    headers: &http::HeaderMap,
    all: bool,
) -> Vec<String> {
    let from_headers: Vec<String> = headers
        .keys()
        .map(|k| format!("HTTP_{}", k.as_str().to_ascii_uppercase().replace('-', "_")))
        .collect();
    let mut out = Vec::new();
    for (k, v) in params {
        let crlf = v.bytes().any(|b| b == b'\r' || b == b'\n');
        let strict = all
            || from_headers.iter().any(|h| h == k)
            || matches!(
                k.as_str(),
                "SCRIPT_FILENAME"
                    | "SCRIPT_NAME"
                    | "DOCUMENT_ROOT"
                    | "CONTEXT_DOCUMENT_ROOT"
                    | "QUERY_STRING"
                    | "REQUEST_URI"
                    | "REQUEST_METHOD"
                    | "SERVER_NAME"
                    | "SERVER_PROTOCOL"
            );
        if v.contains('\0') || k.contains(['\0', '\r', '\n']) || (strict && crlf) {
            out.push(format!("CGI param {k}={v:?}"));
        }
    }
    out
}

/// The strict form of the CVE-2023-25690 check on the FastCGI side: no
/// CR or LF in any CGI parameter, whatever a substitution captured.
/// Apache passes decoded CR/LF in `PATH_INFO`, `REDIRECT_URL` and `[E=]`
/// variables; htgate %-encodes them (SECURITY.md).
#[test]
fn cgi_params_never_carry_cr_lf_from_a_substitution() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path();
    write(
        root,
        ".htaccess",
        "RewriteEngine On\n\
         RewriteRule ^pi/(.*)$ /index.php/$1 [L]\n\
         RewriteRule ^env/(.*)$ /index.php [E=CAP:$1,L]\n\
         RewriteRule ^index\\.php/(.*)$ - [E=HTTP_X_CAP:$1]\n",
    );
    write(root, "index.php", "<?php echo 1;\n");
    let (_rt, site) = php_site(root);
    let mut problems = Vec::new();
    for t in [
        "/pi/x%0d%0aSet-Cookie:%20evil=1",
        "/env/x%0aX-Injected:%201",
    ] {
        if let Outcome::Php(call) = run(&site, &head(t, &[]), &conn()) {
            problems.extend(
                upstream_problems(&call.params, &call.headers_in, true)
                    .into_iter()
                    .map(|p| format!("{t}: {p}")),
            );
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

// ---------------------------------------------------------------------
// Connection limits through the real server.
// ---------------------------------------------------------------------

#[tokio::test]
async fn request_size_limits_through_the_real_server() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "index.html", "INDEX\n");
    let server = quick::start(options(tmp.path(), None))
        .await
        .expect("start");
    let a = server.http_addr;

    let long = format!("/{}", "a".repeat(10 * 1024));
    let (status, text) = get(a, &long).await;
    assert_eq!(status, 414, "{text}");
    assert!(
        text.contains("<title>414 Request-URI Too Long</title>"),
        "{text}"
    );

    let big = "b".repeat(10 * 1024);
    let (status, text) = raw(
        a,
        format!("GET / HTTP/1.1\r\nHost: localhost\r\nX-Big: {big}\r\n\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 431, "{text}");
    assert!(
        text.contains("431 Request Header Fields Too Large"),
        "{text}"
    );

    let many: String = (0..200).map(|i| format!("X-H{i}: v\r\n")).collect();
    let (status, text) = raw(
        a,
        format!("GET / HTTP/1.1\r\nHost: localhost\r\n{many}\r\n").as_bytes(),
    )
    .await;
    assert_eq!(status, 431, "{text}");

    let (status, text) = raw(
        a,
        b"PUT /upload HTTP/1.1\r\nHost: localhost\r\nContent-Length: 5000000000\r\n\r\n",
    )
    .await;
    assert_eq!(status, 413, "{text}");
    assert!(text.contains("413 Request Entity Too Large"), "{text}");

    // And a normal request still works.
    let (status, text) = get(a, "/").await;
    assert_eq!(status, 200, "{text}");
    server.shutdown().await;
}

/// Starts the engine for `root` behind a listener with `limits`.
async fn start_with_limits(
    root: &Path,
    limits: Limits,
) -> (
    SocketAddr,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<std::io::Result<()>>,
) {
    let site = Arc::new(quick::site(&options(root, None)).expect("site"));
    let l = Listener::bind("127.0.0.1:0".parse().expect("address"), None)
        .await
        .expect("bind");
    let addr = l.local_addr().expect("addr");
    let (tx, rx) = tokio::sync::oneshot::channel::<()>();
    let handler = Arc::new(htgate_server::site_handler::Engine { site });
    let join = tokio::spawn(serve_with_limits(
        vec![l],
        handler,
        async move {
            let _ = rx.await;
        },
        limits,
    ));
    (addr, tx, join)
}

/// A connection from a chosen loopback address (all of 127/8 is local).
async fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.bind(SocketAddr::from((from, 0))).expect("bind source");
    tokio::time::timeout(T, sock.connect(to))
        .await
        .expect("connect in time")
        .expect("connect")
}

/// Whether the server closed `s` within `within` (reading whatever comes).
async fn closed_within(s: &mut TcpStream, within: Duration) -> bool {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

#[tokio::test]
async fn slowloris_is_cut_off_by_the_header_timeout() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "index.html", "INDEX\n");
    let limits = Limits {
        header_read_timeout: Duration::from_millis(500),
        idle_timeout: Duration::from_secs(60),
        ..Limits::default()
    };
    let (addr, stop, join) = start_with_limits(tmp.path(), limits).await;
    // One header byte every 100 ms: bytes keep moving, the head never ends.
    let mut slow = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    let mut cut = false;
    for b in
        b"GET / HTTP/1.1\r\nHost: localhost\r\nX-Slow: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            .iter()
    {
        if slow.write_all(&[*b]).await.is_err()
            || closed_within(&mut slow, Duration::from_millis(100)).await
        {
            cut = true;
            break;
        }
    }
    assert!(cut, "the slow head was never cut off");
    assert!(
        started.elapsed() < Duration::from_secs(4),
        "{:?}",
        started.elapsed()
    );
    // Meanwhile and after, a normal client is served.
    let (status, _) = get(addr, "/").await;
    assert_eq!(status, 200);
    let _ = stop.send(());
    let _ = tokio::time::timeout(T, join).await;
}

#[tokio::test]
async fn connection_cap_applies_back_pressure_and_recovers() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "index.html", "INDEX\n");
    let limits = Limits {
        max_connections: 6,
        max_connections_per_ip: 4,
        ..Limits::default()
    };
    let (addr, stop, join) = start_with_limits(tmp.path(), limits).await;

    // One abuser takes its share (4) and is refused a fifth at once.
    let mut abusers = Vec::new();
    for _ in 0..4 {
        abusers.push(connect_from([127, 0, 0, 2], addr).await);
    }
    // Give the server the time to accept them all.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let mut fifth = connect_from([127, 0, 0, 2], addr).await;
    assert!(
        closed_within(&mut fifth, Duration::from_secs(2)).await,
        "a client over its per-address share is closed"
    );
    // Another abuser fills the total.
    for _ in 0..2 {
        abusers.push(connect_from([127, 0, 0, 3], addr).await);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    // A normal client is not refused: it waits in the backlog...
    let mut normal = connect_from([127, 0, 0, 1], addr).await;
    normal
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut buf = [0u8; 256];
    let early = tokio::time::timeout(Duration::from_millis(500), normal.read(&mut buf)).await;
    assert!(
        early.is_err(),
        "answered while the server was at its cap: {early:?}"
    );
    // ...and is served as soon as the abusers go away.
    drop(abusers);
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, normal.read_to_end(&mut out)).await;
    let text = String::from_utf8_lossy(&out);
    assert!(text.starts_with("HTTP/1.1 200 "), "{text}");
    // The abusive address may come back too, once it is under its share.
    let mut again = connect_from([127, 0, 0, 2], addr).await;
    again
        .write_all(b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")
        .await
        .expect("send");
    let mut out = Vec::new();
    let _ = tokio::time::timeout(T, again.read_to_end(&mut out)).await;
    assert!(String::from_utf8_lossy(&out).starts_with("HTTP/1.1 200 "));
    let _ = stop.send(());
    let _ = tokio::time::timeout(T, join).await;
}

// ---------------------------------------------------------------------
// HTTP/2 rapid reset (CVE-2023-44487), with frames made by hand (h2c with
// prior knowledge on the plain port).
// ---------------------------------------------------------------------

const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

fn h2_frame(kind: u8, flags: u8, stream: u32, payload: &[u8]) -> Vec<u8> {
    let len = payload.len();
    let mut f = vec![(len >> 16) as u8, (len >> 8) as u8, len as u8, kind, flags];
    f.extend_from_slice(&(stream & 0x7fff_ffff).to_be_bytes());
    f.extend_from_slice(payload);
    f
}

/// HPACK for `GET http://localhost/`: indexed :method GET, :scheme http,
/// :path /, then :authority as a literal without indexing.
fn h2_get_block() -> Vec<u8> {
    let mut b = vec![0x82, 0x86, 0x84, 0x01, 9];
    b.extend_from_slice(b"localhost");
    b
}

/// Reads frames until GOAWAY (its error code) or the end of the
/// connection (None), within `within`; also counts HEADERS frames.
async fn h2_read_until_goaway(s: &mut TcpStream, within: Duration) -> (Option<u32>, bool, usize) {
    let deadline = tokio::time::Instant::now() + within;
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16384];
    let mut headers = 0usize;
    loop {
        while buf.len() >= 9 {
            let len =
                (usize::from(buf[0]) << 16) | (usize::from(buf[1]) << 8) | usize::from(buf[2]);
            if buf.len() < 9 + len {
                break;
            }
            let kind = buf[3];
            let payload = buf[9..9 + len].to_vec();
            buf.drain(..9 + len);
            match kind {
                0x1 => headers += 1,
                0x7 if payload.len() >= 8 => {
                    let code = u32::from_be_bytes([payload[4], payload[5], payload[6], payload[7]]);
                    return (Some(code), false, headers);
                }
                _ => {}
            }
        }
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Err(_) => return (None, false, headers),
            Ok(Ok(0)) | Ok(Err(_)) => return (None, true, headers),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

#[tokio::test]
async fn cve_2023_44487_http2_rapid_reset_is_bounded() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "index.html", "INDEX\n");
    let server = quick::start(options(tmp.path(), None))
        .await
        .expect("start");
    let addr = server.http_addr;

    // A well-behaved h2c client first: one GET answered with HEADERS.
    let mut good = TcpStream::connect(addr).await.expect("connect");
    let mut hello = H2_PREFACE.to_vec();
    hello.extend(h2_frame(0x4, 0, 0, &[]));
    hello.extend(h2_frame(0x1, 0x5, 1, &h2_get_block()));
    good.write_all(&hello).await.expect("send");
    let (goaway, closed, headers) = h2_read_until_goaway(&mut good, Duration::from_secs(2)).await;
    assert!(
        headers >= 1 && goaway.is_none() && !closed,
        "h2c GET: {goaway:?} {closed} {headers}"
    );

    // The abuser: 20,000 HEADERS + RST_STREAM(CANCEL) pairs as fast as
    // the socket takes them.
    let mut abuser = TcpStream::connect(addr).await.expect("connect");
    let mut preface = H2_PREFACE.to_vec();
    preface.extend(h2_frame(0x4, 0, 0, &[]));
    abuser.write_all(&preface).await.expect("preface");
    let block = h2_get_block();
    let started = Instant::now();
    let writer = tokio::spawn(async move {
        let mut sent = 0u32;
        let mut batch = Vec::with_capacity(64 * 1024);
        'outer: for round in 0..200u32 {
            batch.clear();
            for i in 0..100u32 {
                let id = 1 + 2 * (round * 100 + i);
                batch.extend(h2_frame(0x1, 0x5, id, &block));
                batch.extend(h2_frame(0x3, 0, id, &8u32.to_be_bytes()));
            }
            match tokio::time::timeout(T, abuser.write_all(&batch)).await {
                Ok(Ok(())) => sent += 100,
                _ => break 'outer,
            }
        }
        (sent, abuser)
    });

    // While it runs, a normal client on another connection is served.
    let mut served = 0;
    for _ in 0..5 {
        let (status, _) = get(addr, "/").await;
        if status == 200 {
            served += 1;
        }
    }
    assert_eq!(served, 5, "normal clients starved during the attack");

    let (sent, mut abuser) = tokio::time::timeout(Duration::from_secs(30), writer)
        .await
        .expect("the writer ends")
        .expect("writer task");
    let (goaway, closed, _) = h2_read_until_goaway(&mut abuser, Duration::from_secs(5)).await;
    // ENHANCE_YOUR_CALM (0xb), or the connection torn down.
    assert!(
        goaway == Some(0xb) || closed || sent < 20_000,
        "the abusive connection was neither refused nor closed: goaway={goaway:?} closed={closed} sent={sent}"
    );
    assert!(started.elapsed() < Duration::from_secs(30));
    // And the server is still fine.
    let (status, _) = get(addr, "/").await;
    assert_eq!(status, 200);
    server.shutdown().await;
}

// ---------------------------------------------------------------------
// SIGTERM: stop accepting, drain, exit 0 (the real binary).
// ---------------------------------------------------------------------

/// Starts `htgate` with `args` and waits for its "listening" lines; gives
/// the child and the plain HTTP address.
fn spawn_htgate(args: &[&str]) -> (std::process::Child, SocketAddr) {
    use std::io::BufRead;
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_htgate"))
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn htgate");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut sent = false;
        for line in std::io::BufReader::new(stderr).lines() {
            let Ok(line) = line else { break };
            if !sent {
                if let Some(rest) = line.split("http://").nth(1) {
                    let addr = rest.split_whitespace().next().unwrap_or("").to_string();
                    if let Ok(a) = addr.parse::<SocketAddr>() {
                        let _ = tx.send(a);
                        sent = true;
                    }
                }
            }
        }
    });
    match rx.recv_timeout(T) {
        Ok(a) => (child, a),
        Err(_) => {
            let _ = child.kill();
            panic!("htgate did not start");
        }
    }
}

fn sigterm(child: &std::process::Child) {
    let status = std::process::Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
}

fn wait_exit(
    child: &mut std::process::Child,
    within: Duration,
) -> Option<std::process::ExitStatus> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if let Ok(Some(s)) = child.try_wait() {
            return Some(s);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    let _ = child.wait();
    None
}

#[tokio::test]
async fn sigterm_drains_in_flight_requests_and_exits_zero() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let size = 24 * 1024 * 1024;
    std::fs::write(tmp.path().join("big.bin"), vec![b'z'; size]).expect("write");
    let root = tmp.path().to_string_lossy().into_owned();
    let (mut child, addr) = spawn_htgate(&[
        "serve",
        "--root",
        &root,
        "--http",
        "127.0.0.1:0",
        "--https",
        "127.0.0.1:0",
    ]);
    // A download in flight: a little read, then SIGTERM, then the rest.
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(b"GET /big.bin HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .expect("send");
    let mut first = vec![0u8; 4096];
    let n = tokio::time::timeout(T, s.read(&mut first))
        .await
        .expect("in time")
        .expect("read");
    assert!(n > 0);
    sigterm(&child);
    // The listener closes at once: new connections are refused.
    let deadline = Instant::now() + T;
    loop {
        match TcpStream::connect(addr).await {
            Err(_) => break,
            Ok(_) if Instant::now() > deadline => panic!("still accepting after SIGTERM"),
            Ok(_) => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    }
    // The download in flight completes.
    let mut rest = Vec::new();
    let _ = tokio::time::timeout(T, s.read_to_end(&mut rest)).await;
    let mut all = first[..n].to_vec();
    all.extend(rest);
    let text_end = all
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .map(|p| p + 4)
        .unwrap_or(0);
    assert_eq!(all.len() - text_end, size, "the in-flight download was cut");
    let status =
        tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(15)))
            .await
            .expect("join");
    let status = status.expect("htgate exits after the drain");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn sigterm_stops_config_mode_with_exit_zero() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    write(dir, "site/index.html", "CONFIG-MODE\n");
    write(
        dir,
        "htgate.toml",
        "certificates_dir = \"certs\"\n[[listen]]\naddress = \"127.0.0.1:0\"\n\
         [[site]]\nname = \"t\"\ndomains = [\"t.test\"]\nroot = \"site\"\n",
    );
    let cfg = dir.join("htgate.toml").to_string_lossy().into_owned();
    let (mut child, addr) = spawn_htgate(&["serve", "--config", &cfg]);
    let (status, text) = raw(
        addr,
        b"GET / HTTP/1.1\r\nHost: t.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert_eq!(status, 200, "{text}");
    sigterm(&child);
    let status =
        tokio::task::spawn_blocking(move || wait_exit(&mut child, Duration::from_secs(15)))
            .await
            .expect("join")
            .expect("htgate exits");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

/// A download the client never reads (a small receive window), started on
/// `addr`; the connection is returned so it stays open.
async fn stalled_download(addr: SocketAddr, host: &str) -> TcpStream {
    let sock = tokio::net::TcpSocket::new_v4().expect("socket");
    sock.set_recv_buffer_size(4096).expect("rcvbuf");
    let mut s = tokio::time::timeout(T, sock.connect(addr))
        .await
        .expect("connect in time")
        .expect("connect");
    s.write_all(format!("GET /big.bin HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await
        .expect("send");
    // The answer has started (and then stalls on the shut window).
    let mut first = [0u8; 16];
    let n = tokio::time::timeout(T, s.read(&mut first))
        .await
        .expect("in time")
        .expect("read");
    assert!(n > 0);
    s
}

/// Waits for the child's exit (bounded); how long it took.
async fn exit_within(
    mut child: std::process::Child,
    within: Duration,
) -> (Option<std::process::ExitStatus>, Duration) {
    let started = Instant::now();
    let status = tokio::task::spawn_blocking(move || wait_exit(&mut child, within))
        .await
        .expect("join");
    (status, started.elapsed())
}

/// Quick mode on `root` holding a 24 MiB `big.bin`, with the given
/// `--shutdown-drain-seconds`.
fn quick_with_a_big_file(root: &Path, drain_seconds: &str) -> (std::process::Child, SocketAddr) {
    std::fs::write(root.join("big.bin"), vec![b'z'; 24 << 20]).expect("write");
    let root = root.to_string_lossy().into_owned();
    spawn_htgate(&[
        "serve",
        "--root",
        &root,
        "--http",
        "127.0.0.1:0",
        "--https",
        "127.0.0.1:0",
        "--shutdown-drain-seconds",
        drain_seconds,
    ])
}

#[tokio::test]
async fn sigterm_ends_the_process_after_the_drain_even_with_a_stalled_download() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (child, addr) = quick_with_a_big_file(tmp.path(), "1");
    let _stalled = stalled_download(addr, "localhost").await;
    sigterm(&child);
    // The drain (1 s), then the stalled connection is reset and the
    // process ends; the watchdog would end it 3 s later at the latest.
    let (status, took) = exit_within(child, Duration::from_secs(15)).await;
    let status = status.expect("htgate exits");
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert!(
        took >= Duration::from_millis(900),
        "no drain at all: {took:?}"
    );
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn config_mode_shutdown_drain_seconds_bounds_the_drain() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    write(dir, "site/index.html", "CONFIG-MODE\n");
    std::fs::write(dir.join("site/big.bin"), vec![b'z'; 24 << 20]).expect("write");
    write(
        dir,
        "htgate.toml",
        "certificates_dir = \"certs\"\nshutdown_drain_seconds = 1\nsend_timeout_seconds = 30\n\
         max_sending_per_client = 16\n[[listen]]\naddress = \"127.0.0.1:0\"\n\
         [[site]]\nname = \"t\"\ndomains = [\"t.test\"]\nroot = \"site\"\n",
    );
    let cfg = dir.join("htgate.toml").to_string_lossy().into_owned();
    let (child, addr) = spawn_htgate(&["serve", "--config", &cfg]);
    let _stalled = stalled_download(addr, "t.test").await;
    sigterm(&child);
    let (status, took) = exit_within(child, Duration::from_secs(15)).await;
    let status = status.expect("htgate exits");
    assert!(took < Duration::from_secs(6), "{took:?}");
    assert_eq!(status.code(), Some(0), "{status:?}");
}

#[tokio::test]
async fn a_second_sigterm_exits_at_once() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let (child, addr) = quick_with_a_big_file(tmp.path(), "60");
    let _stalled = stalled_download(addr, "localhost").await;
    sigterm(&child);
    tokio::time::sleep(Duration::from_millis(300)).await;
    sigterm(&child);
    let (status, took) = exit_within(child, Duration::from_secs(15)).await;
    assert!(status.is_some(), "htgate did not exit");
    assert!(took < Duration::from_secs(3), "{took:?}");
}

/// Descriptors process `pid` holds on `path`.
fn fds_of(pid: u32, path: &Path) -> usize {
    let want = std::fs::canonicalize(path).expect("canonical");
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|dir| {
            dir.filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
                .filter(|t| *t == want)
                .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn h2_shut_windows_hold_at_most_the_client_places_in_files_then_are_reset() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let big = tmp.path().join("big.bin");
    std::fs::write(&big, vec![b'z'; 4 << 20]).expect("write");
    let root = tmp.path().to_string_lossy().into_owned();
    let (mut child, addr) = spawn_htgate(&[
        "serve",
        "--root",
        &root,
        "--http",
        "127.0.0.1:0",
        "--https",
        "127.0.0.1:0",
        "--max-sending-per-client",
        "3",
        "--send-timeout-seconds",
        "1",
    ]);
    let pid = child.id();
    // h2c with prior knowledge; the client never opens a stream's window.
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (client, connection) = h2::client::Builder::new()
        .initial_window_size(0)
        .handshake::<_, bytes::Bytes>(tcp)
        .await
        .expect("h2 handshake");
    let driver = tokio::spawn(connection);
    let mut client = client.ready().await.expect("ready");
    let mut answers = Vec::new();
    for _ in 0..30 {
        let req = http::Request::get(format!("http://{addr}/big.bin"))
            .body(())
            .expect("request");
        let (resp, _) = client.send_request(req, true).expect("send");
        answers.push(resp);
        client = client.ready().await.expect("ready");
    }
    for resp in answers.iter_mut() {
        let r = tokio::time::timeout(T, resp).await.expect("in time");
        let r = r.expect("response");
        assert_eq!(r.status(), 200);
        assert_eq!(r.headers()["content-length"], "4194304");
    }
    // 30 answers under way; files open: only the client's 3 places.
    let mut most = 0;
    for _ in 0..10 {
        most = most.max(fds_of(pid, &big));
        tokio::time::sleep(Duration::from_millis(30)).await;
    }
    assert!((1..=3).contains(&most), "{most} descriptors on big.bin");
    // Nothing is taken: the send timeout (1 s) resets the connection and
    // every file is closed.
    let ended = tokio::time::timeout(T, driver).await;
    assert!(ended.is_ok(), "the stalled connection was not reset");
    let deadline = Instant::now() + T;
    while fds_of(pid, &big) > 0 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(fds_of(pid, &big), 0);
    let (status, _) = get(addr, "/big.bin").await;
    assert_eq!(status, 200);
    let _ = child.kill();
    let _ = child.wait();
}

#[tokio::test]
async fn send_timeout_seconds_resets_an_http1_reader_that_takes_nothing() {
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::write(tmp.path().join("big.bin"), vec![b'z'; 24 << 20]).expect("write");
    let root = tmp.path().to_string_lossy().into_owned();
    let (mut child, addr) = spawn_htgate(&[
        "serve",
        "--root",
        &root,
        "--http",
        "127.0.0.1:0",
        "--https",
        "127.0.0.1:0",
        "--send-timeout-seconds",
        "1",
    ]);
    let mut s = stalled_download(addr, "localhost").await;
    // Read nothing for a while: the server's socket fills, then stays full.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    // A reset drops what was queued: far less than the 24 MiB arrive.
    let mut buf = vec![0u8; 1 << 16];
    let mut total = 0usize;
    let reset = loop {
        match tokio::time::timeout(T, s.read(&mut buf)).await {
            Err(_) | Ok(Ok(0)) => break false,
            Ok(Err(_)) => break true,
            Ok(Ok(n)) => total += n,
        }
    };
    assert!(reset, "not reset after {total} bytes");
    assert!(total < (8 << 20), "{total} bytes came");
    let _ = child.kill();
    let _ = child.wait();
}

/// Apache's `ap_status_drops_connection`: after a 400, 408, 411, 413, 414,
/// 500, 501 or 503 an HTTP/1 connection is closed; after a 404 it stays
/// open for the next request.  Status pages are Apache 2.4.71's, DOCTYPE
/// and all.
#[tokio::test]
async fn error_answers_close_the_connection_as_apaches_do() {
    let tmp = tempfile::tempdir().expect("tempdir");
    write(tmp.path(), "index.html", "INDEX\n");
    write(tmp.path(), "bad/.htaccess", "RewriteEngine Onn\n");
    let server = quick::start(options(tmp.path(), None))
        .await
        .expect("start");
    let a = server.http_addr;
    let two = |path: &str| {
        format!(
            "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\nGET /index.html HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
        )
    };
    let (status, text) = raw(a, two("/missing").as_bytes()).await;
    assert_eq!(status, 404, "{text}");
    assert!(
        text.contains("INDEX"),
        "the 404 kept the connection: {text}"
    );
    assert!(
        text.contains("<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\" \"http://www.w3.org/TR/html4/strict.dtd\">"),
        "{text}"
    );
    let (status, text) = raw(a, two("/bad/").as_bytes()).await;
    assert_eq!(status, 500, "{text}");
    assert!(
        text.to_ascii_lowercase().contains("connection: close"),
        "{text}"
    );
    assert!(
        !text.contains("INDEX"),
        "a 500 closes the connection: {text}"
    );
    server.shutdown().await;
}

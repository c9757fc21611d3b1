//! The handler phase and the output side, run through whole requests.

use super::*;
use crate::pattern::Pattern;

fn head(target: &str, headers: &[(&'static str, &'static str)]) -> RequestHead {
    let mut map = HeaderMap::new();
    map.insert(
        http::header::HOST,
        HttpValue::from_static("www.example.com"),
    );
    for (k, v) in headers {
        map.insert(*k, HttpValue::from_static(v));
    }
    RequestHead {
        method: Method::GET,
        target: target.into(),
        protocol: "HTTP/1.1".into(),
        headers: map,
        authority: None,
    }
}

fn conn() -> ConnInfo {
    ConnInfo {
        remote: ([127, 0, 0, 1], 40000).into(),
        local: ([127, 0, 0, 1], 80).into(),
        tls: false,
        sni: None,
        trusted_proxy: false,
        proxied_https: false,
    }
}

fn status(o: &Outcome) -> Option<u16> {
    match o {
        Outcome::File { status, .. } | Outcome::Plain { status, .. } => Some(*status),
        Outcome::Filtered(inner, _) => status(inner),
        _ => None,
    }
}

#[test]
fn a_spent_budget_is_a_500_whatever_the_rules_decided() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("loop")).expect("mkdir");
    std::fs::write(
        dir.path().join("loop/.htaccess"),
        "RewriteEngine On\nRewriteRule ^ - [N=4000000000]\n",
    )
    .expect("write");
    std::fs::write(dir.path().join("ok.html"), "ok\n").expect("write");
    let site = Site::new(dir.path(), vec!["www.example.com".into()]);
    // On a worker the run stops at its slice and moves off it...
    assert!(matches!(
        run_inline(&site, &head("/loop/x", &[]), &conn()),
        Outcome::Offload(LONG_RUN)
    ));
    assert_eq!(
        status(&run_offloaded(
            &site,
            &head("/loop/x", &[]),
            &conn(),
            LONG_RUN
        )),
        Some(500)
    );
    assert_eq!(
        status(&run(&site, &head("/loop/x", &[]), &conn())),
        Some(500)
    );
    // other requests of the site are not affected
    assert_eq!(
        status(&run_inline(&site, &head("/ok.html", &[]), &conn())),
        Some(200)
    );
}

#[test]
fn a_moved_run_keeps_the_requests_budget_and_blocking_work_gets_more() {
    let dir = tempfile::tempdir().expect("tempdir");
    // 10,000 rules that never match: about 25 units each
    let rules: String = (0..10_000)
        .map(|i| format!("RewriteRule .*x{i}y /n\n"))
        .collect();
    std::fs::write(
        dir.path().join(".htaccess"),
        format!("RewriteEngine On\n{rules}"),
    )
    .expect("write");
    std::fs::write(dir.path().join("ok.html"), "ok\n").expect("write");
    let mut site = Site::new(dir.path(), vec!["www.example.com".into()]);
    let h = head("/ok.html", &[]);
    // a budget above the rules' cost: moved, then served
    site.limits.budget = 2 * htgate_util::budget::INLINE_SLICE + 200_000;
    // (the first run compiles the file: that is blocking work too)
    assert_eq!(status(&run(&site, &h, &conn())), Some(200));
    assert!(matches!(
        run_inline(&site, &h, &conn()),
        Outcome::Offload(LONG_RUN)
    ));
    assert_eq!(
        status(&run_offloaded(&site, &h, &conn(), LONG_RUN)),
        Some(200)
    );
    // a budget below it: the moved run is refused as an inline one
    // would be, while blocking work may use twenty times the budget
    site.limits.budget = htgate_util::budget::INLINE_SLICE + 1;
    assert_eq!(
        status(&run_offloaded(&site, &h, &conn(), LONG_RUN)),
        Some(500)
    );
    assert_eq!(status(&run(&site, &h, &conn())), Some(200));
}

#[test]
fn a_listing_is_built_off_the_worker_then_kept_briefly() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("files")).expect("mkdir");
    std::fs::write(dir.path().join("files/.htaccess"), "Options +Indexes\n").expect("write");
    std::fs::write(dir.path().join("files/a.txt"), "a\n").expect("write");
    let site = Site::new(dir.path(), vec!["www.example.com".into()]);
    let list = head("/files/", &[]);
    assert!(matches!(
        run_inline(&site, &list, &conn()),
        Outcome::Offload(_)
    ));
    assert_eq!(status(&run(&site, &list, &conn())), Some(200));
    // kept: answered inline now
    assert_eq!(status(&run_inline(&site, &list, &conn())), Some(200));
    // another sort order is another page
    let sorted = head("/files/?C=M;O=D", &[]);
    assert!(matches!(
        run_inline(&site, &sorted, &conn()),
        Outcome::Offload(_)
    ));
    // a new entry changes the folder's identity: built again once the
    // folder's cached stat (1 s) is taken again
    std::thread::sleep(std::time::Duration::from_millis(20));
    std::fs::write(dir.path().join("files/b.txt"), "b\n").expect("write");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    assert!(matches!(
        run_inline(&site, &list, &conn()),
        Outcome::Offload(_)
    ));
    // and after the time to live, whatever happened
    assert_eq!(status(&run(&site, &list, &conn())), Some(200));
    std::thread::sleep(super::super::listing_cache::TTL);
    assert!(matches!(
        run_inline(&site, &list, &conn()),
        Outcome::Offload(_)
    ));
}

#[test]
fn password_checks_leave_the_worker_once_then_are_remembered() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir(dir.path().join("private")).expect("mkdir");
    std::fs::write(dir.path().join("private/index.html"), "secret\n").expect("write");
    // bcrypt cost 4 of "pw" for user "u"
    let hash = bcrypt::hash("pw", 4).expect("hash");
    let pwfile = dir.path().join("pw.txt");
    std::fs::write(&pwfile, format!("u:{hash}\n")).expect("write");
    std::fs::write(
        dir.path().join("private/.htaccess"),
        format!(
            "AuthType Basic\nAuthName x\nAuthUserFile {}\nRequire valid-user\n",
            pwfile.display()
        ),
    )
    .expect("write");
    let site = Site::new(dir.path(), vec!["www.example.com".into()]);
    // u:pw and u:bad
    let good = head(
        "/private/index.html",
        &[("authorization", "Basic dTpwdw==")],
    );
    let bad = head(
        "/private/index.html",
        &[("authorization", "Basic dTpiYWQ=")],
    );
    // Reading the file and hashing are the blocking pool's work.
    assert!(matches!(
        run_inline(&site, &good, &conn()),
        Outcome::Offload(_)
    ));
    assert_eq!(status(&run(&site, &good, &conn())), Some(200));
    // Verified once: now answered inline.
    assert_eq!(status(&run_inline(&site, &good, &conn())), Some(200));
    // A wrong password always pays the hash, off the worker.
    assert!(matches!(
        run_inline(&site, &bad, &conn()),
        Outcome::Offload(_)
    ));
    assert_eq!(status(&run(&site, &bad, &conn())), Some(401));
    // A changed password file (new hash) is verified again.
    let hash2 = bcrypt::hash("pw", 4).expect("hash");
    std::fs::write(&pwfile, format!("u:{hash2}\n#changed\n")).expect("write");
    assert!(matches!(
        run_inline(&site, &good, &conn()),
        Outcome::Offload(_)
    ));
}

#[test]
fn header_edit_first_and_all() {
    let re = Pattern::new("a(b)", false).expect("regex");
    assert_eq!(edit_value("xabyab", &re, "<$1>", false), "x<b>yab");
    assert_eq!(edit_value("xabyab", &re, "<$1>", true), "x<b>y<b>");
}

#[test]
fn header_edit_empty_matches_keep_every_character() {
    let re = Pattern::new("x*", false).expect("regex");
    assert_eq!(edit_value("ab", &re, "-", true), "-a-b-");
    assert_eq!(edit_value("ab", &re, "-", false), "-ab");
}

#[test]
fn header_edit_never_splits_utf8() {
    // `.` matches one byte (PCRE without UTF): must not panic
    let re = Pattern::new("caf.", false).expect("regex");
    let out = edit_value("café!", &re, "X", true);
    assert!(out.starts_with('X') && out.ends_with('!'), "{out}");
}

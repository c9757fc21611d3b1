//! `htgate check`'s lints through the binary: no lint warning on the 49
//! corpus files (only the ignored-directive warnings they always had),
//! the subfolder lint when a directory tree is checked, and
//! `--format json`.  Each lint's golden is in `fixtures/diag/lint-*`.

use crate::support::files;
use serde_json::Value;
use std::path::Path;
use std::process::Command;

fn check(args: &[&str]) -> (i32, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_htgate"))
        .arg("check")
        .args(args)
        .output()
        .expect("htgate runs");
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
    )
}

#[test]
fn corpus_has_no_lint_warnings() {
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/htaccess");
    let corpus = corpus.to_string_lossy();
    let (code, out) = check(&[&corpus, "--format", "json"]);
    assert_eq!(code, 0, "{out}");
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["checked"], 49, "the corpus has 49 files");
    assert_eq!(v["errors"], 0);
    let mut unexpected = Vec::new();
    for f in v["files"].as_array().into_iter().flatten() {
        for d in f["diagnostics"].as_array().into_iter().flatten() {
            let msg = d["message"].as_str().unwrap_or_default();
            if !msg.contains("is accepted but ignored") {
                unexpected.push(format!("{}:{}: {msg}", f["file"], d["line"]));
            }
        }
    }
    assert!(
        unexpected.is_empty(),
        "lint warnings on the corpus:\n{}",
        unexpected.join("\n")
    );
}

#[test]
fn subfolder_without_rewrite_base_is_found_below_the_checked_root() {
    let dir = tempfile::tempdir().expect("tempdir");
    let front =
        "RewriteEngine On\nRewriteCond %{REQUEST_FILENAME} !-f\nRewriteRule . index.php [L]\n";
    files::write(dir.path(), ".htaccess", front);
    files::write(dir.path(), "shop/.htaccess", front);
    files::write(
        dir.path(),
        "blog/.htaccess",
        &format!("RewriteBase /blog/\n{front}"),
    );
    let root = dir.path().to_string_lossy().into_owned();
    let (code, out) = check(&[&root]);
    assert_eq!(code, 0, "warnings do not fail the check: {out}");
    assert!(
        out.contains("shop/.htaccess:3:15: warning: a relative substitution in a subfolder"),
        "{out}"
    );
    assert!(out.contains("add `RewriteBase /shop/`"), "{out}");
    assert!(!out.contains("blog/.htaccess:"), "{out}");
    assert!(!out.contains(&format!("{root}/.htaccess:")), "{out}");
    assert!(
        out.contains("checked 3 files: 0 errors, 1 warning"),
        "{out}"
    );
    // The file itself given: where it sits is unknown, so no warning.
    let shop = dir.path().join("shop/.htaccess");
    let (_, out) = check(&[&shop.to_string_lossy()]);
    assert!(out.contains("0 warnings"), "{out}");
}

#[test]
fn json_has_positions_messages_and_fixes() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/diag");
    let file = dir.join("lint-force-https.htaccess");
    let (code, out) = check(&[&file.to_string_lossy(), "--format", "json"]);
    assert_eq!(code, 0);
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["warnings"], 1);
    let d = &v["files"][0]["diagnostics"][0];
    assert_eq!(d["severity"], "warning");
    assert_eq!(d["line"], 4);
    assert_eq!(d["col"], 18);
    assert!(d["message"]
        .as_str()
        .is_some_and(|m| m.contains("redirect loop")));
    assert!(d["help"]
        .as_str()
        .is_some_and(|h| h.contains("RewriteCond %{HTTPS} !=on")));
    assert_eq!(
        d["source_line"],
        "RewriteRule (.*) https://%{SERVER_NAME}/$1 [R=301,L]"
    );
    // errors keep failing the check in JSON too
    let bad = dir.join("bad-regex.htaccess");
    let (code, out) = check(&[&bad.to_string_lossy(), "--format", "json"]);
    assert_eq!(code, 1);
    let v: Value = serde_json::from_str(&out).expect("JSON");
    assert_eq!(v["files"][0]["diagnostics"][0]["severity"], "error");
}

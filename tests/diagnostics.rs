//! `htgate check` goldens: each `fixtures/diag/NAME.htaccess` is checked by
//! the real binary and its output must equal `NAME.expected` (first line:
//! the exit code).  Regenerate with `HTGATE_BLESS=1 cargo test --test tests
//! diagnostics` and read the diff before committing.

use std::path::Path;
use std::process::Command;

#[test]
fn check_goldens() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/diag");
    let bless = std::env::var_os("HTGATE_BLESS").is_some();
    let mut entries: Vec<_> = std::fs::read_dir(&dir)
        .expect("fixtures/diag exists")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().map(|e| e == "htaccess").unwrap_or(false))
        .collect();
    entries.sort();
    assert!(
        entries.len() >= 5,
        "expected diagnostic fixtures in {}",
        dir.display()
    );
    let mut failures = Vec::new();
    for input in entries {
        let name = input
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .to_string();
        let out = Command::new(env!("CARGO_BIN_EXE_htgate"))
            .arg("check")
            .arg(&name)
            .current_dir(&dir)
            .output()
            .expect("htgate runs");
        let got = format!(
            "exit {}\n{}",
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout)
        );
        let expected_path = input.with_extension("expected");
        if bless {
            std::fs::write(&expected_path, &got).expect("write golden");
            continue;
        }
        let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
        if got != expected {
            failures.push(format!("--- {name}: expected\n{expected}--- got\n{got}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} golden(s) differ (HTGATE_BLESS=1 regenerates):\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn broken_inputs_report_position_and_fail() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/diag");
    for (file, position) in [
        ("unterminated-section.htaccess", ":1:1: error:"),
        ("bad-regex.htaccess", ":2:13: error:"),
        ("unknown-flag.htaccess", ":2:38: error:"),
        ("unbalanced-quote.htaccess", ":2:26: error:"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_htgate"))
            .args(["check", file])
            .current_dir(&dir)
            .output()
            .expect("htgate runs");
        assert_eq!(out.status.code(), Some(1), "{file} must fail the check");
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            text.contains(&format!("{file}{position}")),
            "{file}: no `file:line:col` diagnostic in:\n{text}"
        );
    }
    let out = Command::new(env!("CARGO_BIN_EXE_htgate"))
        .args(["check", "clean.htaccess"])
        .current_dir(&dir)
        .output()
        .expect("htgate runs");
    assert_eq!(out.status.code(), Some(0));
}

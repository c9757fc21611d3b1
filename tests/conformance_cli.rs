//! `htgate conformance` as users run it: the pass line over the shipped
//! cases (the same as the in-process suite's), JUnit XML that parses, a
//! wrong expectation shown as a readable diff with exit status 1, any
//! server through `--server`, and `record` against a real Apache giving
//! back exactly what the oracle recorded.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::support::cms::{self, APACHE};

fn htgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_htgate"))
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("run htgate")
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("fixtures/conformance")
}

/// The number of requests in the shipped cases: what every runner's pass
/// line must count.
fn fixture_requests() -> usize {
    let (cases, errors) = htgate_conformance::load_cases(&[fixtures()], &[]);
    assert!(errors.is_empty(), "{errors:?}");
    cases.iter().map(|c| c.requests.len()).sum()
}

/// Copies some fixture cases into a fresh folder.
fn copy_cases(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for n in names {
        std::fs::copy(
            fixtures().join(format!("{n}.case")),
            dir.path().join(format!("{n}.case")),
        )
        .expect("copy case");
    }
    dir
}

#[test]
fn shipped_cases_pass_with_the_same_line_and_valid_junit() {
    let out = tempfile::tempdir().expect("tempdir");
    let junit = out.path().join("junit.xml");
    let json = out.path().join("results.json");
    let o = htgate(&[
        "conformance",
        "fixtures/conformance",
        "--junit",
        junit.to_str().expect("utf-8"),
        "--json",
        json.to_str().expect("utf-8"),
    ]);
    let all = text(&o);
    let n = fixture_requests();
    assert!(o.status.success(), "{all}");
    let last = String::from_utf8_lossy(&o.stdout)
        .lines()
        .last()
        .unwrap_or_default()
        .to_string();
    assert_eq!(last, format!("{n} passed, 0 failed"), "{all}");

    let xml = std::fs::read_to_string(&junit).expect("junit written");
    let doc = roxmltree::Document::parse(&xml).expect("JUnit output is well-formed XML");
    let root = doc.root_element();
    assert_eq!(root.tag_name().name(), "testsuites");
    assert_eq!(root.attribute("tests"), Some(n.to_string().as_str()));
    assert_eq!(root.attribute("failures"), Some("0"));
    assert_eq!(root.attribute("errors"), Some("0"));
    let suites: Vec<_> = root
        .children()
        .filter(|c| c.has_tag_name("testsuite"))
        .collect();
    assert_eq!(
        suites.len(),
        std::fs::read_dir(fixtures()).expect("dir").count()
    );
    let cases = doc
        .descendants()
        .filter(|d| d.has_tag_name("testcase"))
        .count();
    assert_eq!(cases, n);
    for s in &suites {
        let declared: usize = s
            .attribute("tests")
            .and_then(|t| t.parse().ok())
            .expect("tests");
        let inside = s.children().filter(|c| c.has_tag_name("testcase")).count();
        assert_eq!(declared, inside, "suite {:?}", s.attribute("name"));
    }

    let doc: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&json).expect("json")).expect("JSON");
    assert_eq!(doc["passed"], n);
    assert_eq!(doc["results"].as_array().map(Vec::len), Some(n));
}

#[test]
fn a_wrong_expectation_fails_with_a_readable_diff() {
    let dir = copy_cases(&["force-https-header"]);
    let case = dir.path().join("force-https-header.case");
    let original = std::fs::read_to_string(&case).expect("read");
    // The first request's recorded 301 becomes a 302.
    let first = original
        .lines()
        .skip_while(|l| *l != "-- expect --")
        .nth(1)
        .expect("an expect line")
        .to_string();
    assert!(first.contains("\"status\":301"), "{first}");
    let altered = original.replacen(
        &first,
        &first.replace("\"status\":301", "\"status\":302"),
        1,
    );
    std::fs::write(&case, altered).expect("write");
    let junit = dir.path().join("junit.xml");
    let o = htgate(&[
        "conformance",
        dir.path().to_str().expect("utf-8"),
        "--junit",
        junit.to_str().expect("utf-8"),
    ]);
    let all = text(&o);
    assert_eq!(o.status.code(), Some(1), "{all}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    let fail = stdout
        .lines()
        .position(|l| l.starts_with("FAIL ") && l.ends_with(": GET http://www.example.com/"))
        .unwrap_or_else(|| panic!("no FAIL line for the first request:\n{all}"));
    let detail: Vec<&str> = stdout
        .lines()
        .skip(fail + 1)
        .take_while(|l| l.starts_with("    "))
        .collect();
    assert_eq!(detail, vec!["    status  expected 302, got 301"], "{all}");
    assert!(stdout.trim_end().ends_with("9 passed, 1 failed"), "{all}");
    let xml = std::fs::read_to_string(&junit).expect("junit");
    let doc = roxmltree::Document::parse(&xml).expect("XML");
    let failures: Vec<_> = doc
        .descendants()
        .filter(|d| d.has_tag_name("failure"))
        .collect();
    assert_eq!(failures.len(), 1);
    assert_eq!(failures[0].attribute("message"), Some("differs in status"));
    assert_eq!(failures[0].text(), Some("status: expected 302, got 301"));
}

#[test]
fn any_server_through_a_command_template() {
    let dir = copy_cases(&["force-https-var", "wordpress"]);
    let bin = env!("CARGO_BIN_EXE_htgate");
    let template = format!(
        "exec {bin} serve --root {{root}} --http {{http}} --https {{https}} --cert {{cert}} \
         --key {{key}} --server-name {{hosts}} --debug-headers --pass-client-https-headers \
         --mime-types reference"
    );
    let o = htgate(&[
        "conformance",
        "--server",
        &template,
        dir.path().to_str().expect("utf-8"),
    ]);
    let all = text(&o);
    assert!(o.status.success(), "{all}");
    assert!(
        String::from_utf8_lossy(&o.stdout)
            .trim_end()
            .ends_with(" passed, 0 failed"),
        "{all}"
    );

    // A server that never listens: the case errors, exit status 1, and
    // the server's own output is quoted.
    let o = htgate(&[
        "conformance",
        "--server",
        "echo no such server; exit 3",
        dir.path().to_str().expect("utf-8"),
    ]);
    let all = text(&o);
    assert_eq!(o.status.code(), Some(1), "{all}");
    assert!(
        all.contains("ERROR ") && all.contains("exited with exit status: 3"),
        "{all}"
    );
    assert!(all.contains("no such server"), "{all}");
}

/// Recording with the real Apache writes back what the oracle recorded,
/// byte for byte, and Apache passes its own recording.
#[test]
fn record_with_apache_reproduces_the_oracles_recording() {
    const TEST: &str = "record_with_apache_reproduces_the_oracles_recording";
    if !cms::available_or_skip(TEST, &[APACHE]) {
        return;
    }
    let names = [
        "force-https-header",
        "wordpress",
        "flag-CO-cookie",
        "errordocument",
    ];
    let dir = copy_cases(&names);
    // Without an expect section: record appends one.
    let stripped = dir.path().join("wordpress.case");
    let text_before = std::fs::read_to_string(&stripped).expect("read");
    let cut = text_before.find("-- expect --").expect("expect section");
    std::fs::write(&stripped, &text_before[..cut]).expect("write");
    let apache = cms::find_program("apache2").expect("apache2");
    let o = htgate(&[
        "conformance",
        "record",
        "--apache",
        apache.to_str().expect("utf-8"),
        dir.path().to_str().expect("utf-8"),
    ]);
    let all = text(&o);
    assert!(o.status.success(), "{all}");
    assert!(all.contains(" requests in 4 cases"), "{all}");
    for n in names {
        let got = std::fs::read_to_string(dir.path().join(format!("{n}.case"))).expect("read");
        let want = std::fs::read_to_string(fixtures().join(format!("{n}.case"))).expect("read");
        assert_eq!(
            got, want,
            "{n}: recorded answers differ from the oracle's\n{all}"
        );
    }
    let o = htgate(&[
        "conformance",
        "--apache",
        apache.to_str().expect("utf-8"),
        dir.path().to_str().expect("utf-8"),
    ]);
    assert!(o.status.success(), "{}", text(&o));
}

#[test]
fn unusable_case_files_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("broken.case"), "no sections at all\n").expect("write");
    let o = htgate(&["conformance", dir.path().to_str().expect("utf-8")]);
    let all = text(&o);
    assert_eq!(o.status.code(), Some(2), "{all}");
    assert!(all.contains("broken.case:1: no sections"), "{all}");
    assert!(all.contains("1 case file(s) could not be checked"), "{all}");
    let stdout = String::from_utf8_lossy(&o.stdout);
    assert!(stdout.trim_end().ends_with("0 passed, 0 failed"), "{all}");
}

#[test]
fn replay_refuses_bad_arguments_with_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = dir.path().join("access.log");
    std::fs::write(&log, "").expect("write");
    let log = log.to_str().expect("utf-8");
    for args in [
        vec![
            "replay",
            log,
            "--apache",
            "ftp://x",
            "--htgate",
            "http://127.0.0.1:1",
        ],
        vec![
            "replay",
            log,
            "--apache",
            "http://127.0.0.1:1",
            "--htgate",
            "http://127.0.0.1:2",
            "--sample",
            "0",
        ],
        vec![
            "replay",
            log,
            "--apache",
            "http://127.0.0.1:1",
            "--htgate",
            "http://127.0.0.1:2",
            "--format",
            "%h %u",
        ],
        vec![
            "replay",
            "/nonexistent/log",
            "--apache",
            "http://127.0.0.1:1",
            "--htgate",
            "http://127.0.0.1:2",
        ],
    ] {
        let o = htgate(&args);
        assert_eq!(o.status.code(), Some(2), "{args:?}: {}", text(&o));
        assert!(text(&o).starts_with("error: "), "{args:?}: {}", text(&o));
    }
}

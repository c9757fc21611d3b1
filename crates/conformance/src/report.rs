//! What a check run reports (the oracle's `cmd_check`): a FAIL block per
//! differing request, an ERROR line per case that could not run, the
//! closing `N passed, M failed` line, the per-request JSON of `--json`, and
//! JUnit XML for CI systems.

use quick_xml::events::{BytesDecl, BytesEnd, BytesStart, BytesText, Event};
use quick_xml::Writer;
use serde_json::{json, Value};

use crate::case::Case;
use crate::runner::CaseRun;
use crate::summary::{compare, fmt_val};

/// One request's verdict.
#[derive(Debug, Clone)]
pub struct Verdict {
    pub case: String,
    pub line: usize,
    pub request: String,
    /// `(field, expected, got)`, empty when it passed.
    pub diffs: Vec<(String, String, String)>,
    /// Why the case or the request had no answer.
    pub error: Option<String>,
}

impl Verdict {
    pub fn passed(&self) -> bool {
        self.diffs.is_empty() && self.error.is_none()
    }
}

/// The report over the cases that ran.
#[derive(Debug, Default)]
pub struct Report {
    pub passed: usize,
    pub failed: usize,
    /// What to print: a FAIL block per failing request, an ERROR line per
    /// case that could not run (all its requests count as failed).
    pub lines: Vec<String>,
    /// Stems of the cases with a failure (for a filter to rerun them).
    pub failing_cases: Vec<String>,
    /// Per-request results, as the oracle's `--json` writes them.
    pub entries: Vec<Value>,
    /// Per-request verdicts, in case order (for JUnit).
    pub verdicts: Vec<Verdict>,
}

impl Report {
    /// Compares every run with its case's recorded answers.
    pub fn new(cases: &[Case], runs: &[CaseRun]) -> Report {
        let mut r = Report::default();
        for (c, run) in cases.iter().zip(runs) {
            let expect = c.expect.as_deref().unwrap_or_default();
            let before = r.failed;
            if let Some(err) = &run.error {
                r.lines.push(format!("ERROR {}: {}", c.display, err));
                for (req, (_, exp)) in c.requests.iter().zip(expect) {
                    r.failed += 1;
                    r.entries.push(json!({"case": c.display, "line": req.line,
                        "request": req.text, "pass": false, "expected": exp,
                        "got": null, "error": err}));
                    r.verdicts.push(Verdict {
                        case: c.display.clone(),
                        line: req.line,
                        request: req.text.clone(),
                        diffs: Vec::new(),
                        error: Some(err.clone()),
                    });
                }
            } else {
                let pairs = c.requests.iter().zip(expect).zip(&run.results);
                for ((req, (_, exp)), (got, terr)) in pairs {
                    let diffs = compare(exp, got);
                    let mut entry = json!({"case": c.display, "line": req.line,
                        "request": req.text, "pass": diffs.is_empty(),
                        "expected": exp, "got": got});
                    if let Some(t) = terr {
                        entry["error"] = json!(t);
                    }
                    let shown: Vec<(String, String, String)> = diffs
                        .iter()
                        .map(|(f, e, g)| (f.clone(), fmt_val(e.as_ref()), fmt_val(g.as_ref())))
                        .collect();
                    if diffs.is_empty() {
                        r.passed += 1;
                    } else {
                        r.failed += 1;
                        let no_answer = terr
                            .as_ref()
                            .map(|t| format!("  (no answer: {t})"))
                            .unwrap_or_default();
                        r.lines.push(format!(
                            "FAIL {}:{}: {}{}",
                            c.display, req.line, req.text, no_answer
                        ));
                        let w = shown
                            .iter()
                            .map(|(f, _, _)| f.chars().count())
                            .max()
                            .unwrap_or(0);
                        for (f, e, g) in &shown {
                            r.lines.push(format!("    {f:<w$}  expected {e}, got {g}"));
                        }
                        entry["diffs"] = Value::Array(
                            diffs
                                .iter()
                                .map(|(f, e, g)| json!({"field": f, "expected": e, "got": g}))
                                .collect(),
                        );
                    }
                    r.entries.push(entry);
                    r.verdicts.push(Verdict {
                        case: c.display.clone(),
                        line: req.line,
                        request: req.text.clone(),
                        diffs: shown,
                        error: if diffs.is_empty() { None } else { terr.clone() },
                    });
                }
            }
            if r.failed > before {
                r.failing_cases.push(c.stem.clone());
            }
        }
        r
    }

    /// The closing line, as the oracle prints it.
    pub fn pass_line(&self) -> String {
        format!("{} passed, {} failed", self.passed, self.failed)
    }

    /// The oracle's `--json` document.
    pub fn json(&self, case_errors: &[String]) -> Value {
        json!({"passed": self.passed, "failed": self.failed,
            "case_errors": case_errors, "results": self.entries})
    }

    /// JUnit XML: a `<testsuite>` per case file, a `<testcase>` per request
    /// (named by its line and request), `<failure>` with the field
    /// differences, `<error>` when the case could not run; case files that
    /// could not be read are a suite of their own with one error each.
    pub fn junit(&self, case_errors: &[String]) -> Result<String, String> {
        let mut w = Writer::new_with_indent(Vec::new(), b' ', 2);
        let xml = |e: std::io::Error| format!("cannot write JUnit XML: {e}");
        w.write_event(Event::Decl(BytesDecl::new("1.0", Some("UTF-8"), None)))
            .map_err(xml)?;
        let errors_total = self
            .verdicts
            .iter()
            .filter(|v| v.diffs.is_empty() && v.error.is_some())
            .count()
            + case_errors.len();
        let failures_total = self.verdicts.iter().filter(|v| !v.diffs.is_empty()).count();
        let tests_total = self.verdicts.len() + case_errors.len();
        let mut root = BytesStart::new("testsuites");
        root.push_attribute(("name", "htgate conformance"));
        root.push_attribute(("tests", tests_total.to_string().as_str()));
        root.push_attribute(("failures", failures_total.to_string().as_str()));
        root.push_attribute(("errors", errors_total.to_string().as_str()));
        w.write_event(Event::Start(root)).map_err(xml)?;
        let mut i = 0;
        while i < self.verdicts.len() {
            let case = &self.verdicts[i].case;
            let end = self.verdicts[i..]
                .iter()
                .position(|v| &v.case != case)
                .map_or(self.verdicts.len(), |n| i + n);
            let group = &self.verdicts[i..end];
            let failures = group.iter().filter(|v| !v.diffs.is_empty()).count();
            let errors = group
                .iter()
                .filter(|v| v.diffs.is_empty() && v.error.is_some())
                .count();
            let mut suite = BytesStart::new("testsuite");
            suite.push_attribute(("name", case.as_str()));
            suite.push_attribute(("tests", group.len().to_string().as_str()));
            suite.push_attribute(("failures", failures.to_string().as_str()));
            suite.push_attribute(("errors", errors.to_string().as_str()));
            w.write_event(Event::Start(suite)).map_err(xml)?;
            for v in group {
                let name = format!("line {}: {}", v.line, v.request);
                let mut tc = BytesStart::new("testcase");
                tc.push_attribute(("classname", case.as_str()));
                tc.push_attribute(("name", name.as_str()));
                if v.passed() {
                    w.write_event(Event::Empty(tc)).map_err(xml)?;
                    continue;
                }
                w.write_event(Event::Start(tc)).map_err(xml)?;
                let (tag, message, body) = if v.diffs.is_empty() {
                    let e = v.error.clone().unwrap_or_default();
                    ("error", "the case could not run".to_string(), e)
                } else {
                    let fields: Vec<&str> = v.diffs.iter().map(|(f, _, _)| f.as_str()).collect();
                    let body = v
                        .diffs
                        .iter()
                        .map(|(f, e, g)| format!("{f}: expected {e}, got {g}"))
                        .collect::<Vec<_>>()
                        .join("\n");
                    ("failure", format!("differs in {}", fields.join(", ")), body)
                };
                let mut el = BytesStart::new(tag);
                el.push_attribute(("message", message.as_str()));
                w.write_event(Event::Start(el)).map_err(xml)?;
                w.write_event(Event::Text(BytesText::new(&body)))
                    .map_err(xml)?;
                w.write_event(Event::End(BytesEnd::new(tag))).map_err(xml)?;
                w.write_event(Event::End(BytesEnd::new("testcase")))
                    .map_err(xml)?;
            }
            w.write_event(Event::End(BytesEnd::new("testsuite")))
                .map_err(xml)?;
            i = end;
        }
        if !case_errors.is_empty() {
            let mut suite = BytesStart::new("testsuite");
            suite.push_attribute(("name", "case files"));
            suite.push_attribute(("tests", case_errors.len().to_string().as_str()));
            suite.push_attribute(("failures", "0"));
            suite.push_attribute(("errors", case_errors.len().to_string().as_str()));
            w.write_event(Event::Start(suite)).map_err(xml)?;
            for e in case_errors {
                let mut tc = BytesStart::new("testcase");
                tc.push_attribute(("classname", "case files"));
                tc.push_attribute(("name", e.as_str()));
                w.write_event(Event::Start(tc)).map_err(xml)?;
                let mut el = BytesStart::new("error");
                el.push_attribute(("message", "the case file could not be checked"));
                w.write_event(Event::Start(el)).map_err(xml)?;
                w.write_event(Event::Text(BytesText::new(e))).map_err(xml)?;
                w.write_event(Event::End(BytesEnd::new("error")))
                    .map_err(xml)?;
                w.write_event(Event::End(BytesEnd::new("testcase")))
                    .map_err(xml)?;
            }
            w.write_event(Event::End(BytesEnd::new("testsuite")))
                .map_err(xml)?;
        }
        w.write_event(Event::End(BytesEnd::new("testsuites")))
            .map_err(xml)?;
        let mut out = String::from_utf8(w.into_inner()).map_err(|e| e.to_string())?;
        out.push('\n');
        Ok(out)
    }
}

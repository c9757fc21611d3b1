//! `htgate check`: every problem of every `.htaccess`, one pass: the
//! compiler's errors and warnings, then the lints (`engine::lint`).

use htgate_engine::compile::compile_source;
use htgate_engine::lint::{lint_source, LintOptions};
use htgate_syntax::htaccess::Diagnostic;
use serde_json::{json, Value};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(super) enum Format {
    Text,
    Json,
}

fn is_htaccess(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(|n| n == ".htaccess" || n.ends_with(".htaccess"))
        .unwrap_or(false)
}

/// One file to check and whether it sits below the directory it was found
/// from (a site root given on the command line): a subfolder's file.
struct Found {
    path: PathBuf,
    in_subfolder: Option<bool>,
    /// The folder's path relative to the given directory, as a URL path
    /// (`/shop/`), when it is a subfolder.
    url_path: Option<String>,
}

fn collect(root: &Path, path: &Path, out: &mut Vec<Found>) {
    match std::fs::metadata(path) {
        Ok(m) if m.is_dir() => {
            let mut entries: Vec<PathBuf> = match std::fs::read_dir(path) {
                Ok(rd) => rd.filter_map(|e| e.ok().map(|e| e.path())).collect(),
                Err(_) => return,
            };
            entries.sort();
            for e in entries {
                // do not follow symlinked directories (loops)
                let is_link = std::fs::symlink_metadata(&e)
                    .map(|m| m.file_type().is_symlink())
                    .unwrap_or(false);
                if e.is_dir() && !is_link {
                    collect(root, &e, out);
                } else if is_htaccess(&e) {
                    // Below the given directory: a subfolder.  Files
                    // directly in it may be the site root's: unknown,
                    // taken as the root (no subfolder warnings).
                    let rel = e
                        .parent()
                        .and_then(|d| d.strip_prefix(root).ok())
                        .filter(|rel| !rel.as_os_str().is_empty())
                        .map(|rel| format!("/{}/", rel.to_string_lossy()));
                    out.push(Found {
                        path: e,
                        in_subfolder: rel.is_some().then_some(true),
                        url_path: rel,
                    });
                }
            }
        }
        // A file named on the command line: where it sits is unknown.
        _ => out.push(Found {
            path: path.to_path_buf(),
            in_subfolder: None,
            url_path: None,
        }),
    }
}

/// The diagnostics of one file, compiler's and lints', in file order.
fn diagnose(source: &[u8], found: &Found) -> Vec<Diagnostic> {
    let compiled = compile_source(source);
    let mut diags = compiled.diagnostics.clone();
    if !compiled.has_errors() {
        let opts = LintOptions {
            in_subfolder: found.in_subfolder,
            url_path: found.url_path.clone(),
        };
        diags.extend(lint_source(source, &compiled.config, &opts));
        diags.sort_by_key(|d| (d.span.line, d.span.col));
    }
    diags
}

fn json_diag(d: &Diagnostic, source: &[u8]) -> Value {
    let text = String::from_utf8_lossy(source);
    let line = text
        .lines()
        .nth(d.span.line.max(1) as usize - 1)
        .map(|l| l.trim_end_matches('\r').to_string());
    json!({
        "severity": d.severity.to_string(),
        "line": d.span.line,
        "col": d.span.col,
        "len": d.span.len,
        "message": d.message,
        "help": d.help,
        "source_line": line,
    })
}

/// What one pass over `.htaccess` files found.
#[derive(Default)]
struct Tally {
    files: usize,
    errors: usize,
    warnings: usize,
    json_files: Vec<Value>,
}

impl Tally {
    /// One problem that is not a file's diagnostic (a file that cannot be
    /// read, a broken certificate), shown as `file:1:1: severity: message`.
    fn problem(&mut self, format: Format, name: &str, error: bool, message: &str) {
        let severity = if error { "error" } else { "warning" };
        if error {
            self.errors += 1;
        } else {
            self.warnings += 1;
        }
        match format {
            Format::Text => println!("{name}:1:1: {severity}: {message}"),
            Format::Json => self.json_files.push(json!({
                "file": name,
                "diagnostics": [{
                    "severity": severity, "line": 1, "col": 1, "len": 1,
                    "message": message,
                    "help": null, "source_line": null,
                }],
            })),
        }
    }

    fn check_files(&mut self, files: &[Found], format: Format) {
        self.files += files.len();
        for f in files {
            let name = f.path.display().to_string();
            let source = match std::fs::read(&f.path) {
                Ok(s) => s,
                Err(e) => {
                    self.problem(format, &name, true, &format!("cannot read file: {e}"));
                    continue;
                }
            };
            let diags = diagnose(&source, f);
            for d in &diags {
                if d.is_error() {
                    self.errors += 1;
                } else {
                    self.warnings += 1;
                }
            }
            match format {
                Format::Text => {
                    for d in &diags {
                        print!("{}", d.render(&name, &source));
                    }
                }
                Format::Json => self.json_files.push(json!({
                    "file": name,
                    "diagnostics": diags.iter().map(|d| json_diag(d, &source)).collect::<Vec<_>>(),
                })),
            }
        }
    }

    /// The summary line (or document) and the exit code: 1 on any error.
    fn finish(self, format: Format) -> ExitCode {
        let (files, errors, warnings) = (self.files, self.errors, self.warnings);
        match format {
            Format::Text => println!(
                "checked {} file{}: {errors} error{}, {warnings} warning{}",
                files,
                if files == 1 { "" } else { "s" },
                if errors == 1 { "" } else { "s" },
                if warnings == 1 { "" } else { "s" }
            ),
            Format::Json => {
                let doc = json!({
                    "files": self.json_files,
                    "checked": files,
                    "errors": errors,
                    "warnings": warnings,
                });
                match serde_json::to_string_pretty(&doc) {
                    Ok(s) => println!("{s}"),
                    Err(e) => {
                        eprintln!("error: {e}");
                        return ExitCode::FAILURE;
                    }
                }
            }
        }
        if errors > 0 {
            ExitCode::FAILURE
        } else {
            ExitCode::SUCCESS
        }
    }
}

/// A config file given where `.htaccess` files are expected: `htgate
/// check htgate.toml` would otherwise report its TOML as dozens of
/// unknown directives.
fn looks_like_config(p: &Path) -> bool {
    p.extension().is_some_and(|e| e == "toml")
}

pub(super) fn run(paths: &[PathBuf], format: Format) -> ExitCode {
    if let Some(p) = paths.iter().find(|p| looks_like_config(p)) {
        eprintln!(
            "error: {} is a configuration file, not a .htaccess file: check it with `htgate check --config {}`",
            p.display(),
            p.display()
        );
        return ExitCode::FAILURE;
    }
    let mut files = Vec::new();
    for p in paths {
        collect(p, p, &mut files);
    }
    let mut tally = Tally::default();
    tally.check_files(&files, format);
    tally.finish(format)
}

/// `htgate check --config htgate.toml`: the configtest (`nginx -t`,
/// `apachectl configtest`).  The configuration as `serve --config` loads
/// it, every `.htaccess` under every site's root, and the certificates
/// the server would read.  Exit 1 on any error; warnings (a domain still
/// waiting for its automatic certificate, a certificate that expires soon)
/// do not fail it.
pub(super) fn run_config(config: &Path, format: Format) -> ExitCode {
    let loaded = match htgate_hosting::config::Config::load(config) {
        Ok(c) => c,
        Err(errors) => {
            eprintln!("{errors}");
            eprintln!(
                "{}: the configuration has {} error{}",
                config.display(),
                errors.0.len(),
                if errors.0.len() == 1 { "" } else { "s" }
            );
            return ExitCode::FAILURE;
        }
    };
    let mut tally = Tally::default();
    for site in &loaded.file.site {
        let root = site.root.get_ref();
        let mut files = Vec::new();
        collect(root, root, &mut files);
        tally.check_files(&files, format);
    }
    let config_name = loaded.path.display().to_string();
    for (error, message) in super::cert::config_problems(&loaded) {
        tally.problem(format, &config_name, error, &message);
    }
    if format == Format::Text {
        println!(
            "{config_name}: the configuration file is valid ({} site{})",
            loaded.file.site.len(),
            if loaded.file.site.len() == 1 { "" } else { "s" }
        );
    }
    tally.finish(format)
}

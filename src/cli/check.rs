//! `htgate check`: every problem of every `.htaccess`, one pass.

use crate::engine::compile::compile_source;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

fn is_htaccess(p: &Path) -> bool {
    p.file_name()
        .and_then(|n| n.to_str())
        .map(|n| n == ".htaccess" || n.ends_with(".htaccess"))
        .unwrap_or(false)
}

fn collect(path: &Path, out: &mut Vec<PathBuf>) {
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
                    collect(&e, out);
                } else if is_htaccess(&e) {
                    out.push(e);
                }
            }
        }
        _ => out.push(path.to_path_buf()),
    }
}

pub fn run(paths: &[PathBuf]) -> ExitCode {
    let mut files = Vec::new();
    for p in paths {
        collect(p, &mut files);
    }
    let (mut errors, mut warnings) = (0usize, 0usize);
    for f in &files {
        let name = f.display().to_string();
        let source = match std::fs::read(f) {
            Ok(s) => s,
            Err(e) => {
                println!("{name}:1:1: error: cannot read file: {e}");
                errors += 1;
                continue;
            }
        };
        let compiled = compile_source(&source);
        for d in &compiled.diagnostics {
            print!("{}", d.render(&name, &source));
            if d.is_error() {
                errors += 1;
            } else {
                warnings += 1;
            }
        }
    }
    println!(
        "checked {} file{}: {errors} error{}, {warnings} warning{}",
        files.len(),
        if files.len() == 1 { "" } else { "s" },
        if errors == 1 { "" } else { "s" },
        if warnings == 1 { "" } else { "s" }
    );
    if errors > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

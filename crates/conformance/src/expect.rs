//! Writing recorded answers into a case file (the oracle's `write_expect`):
//! the `-- expect --` section is replaced (or appended), one compact JSON
//! object per request with sorted keys, and the file swapped in atomically.

use std::path::Path;

use serde_json::Value;

use crate::case::Case;

/// The case file's new text with `results` as its expect section.
pub(crate) fn with_expect(case: &Case, results: &[Value]) -> String {
    let mut exp = vec!["-- expect --\n".to_string()];
    for r in results {
        // serde_json's maps are sorted (no `preserve_order`), and
        // `to_string` is compact: the oracle's `sort_keys=True,
        // separators=(",", ":")`, `ensure_ascii=False`.
        exp.push(r.to_string() + "\n");
    }
    let lines = &case.lines;
    let new: Vec<String> = match case.expect_line {
        Some(line) => {
            // The section runs to the next marker or the end of the file.
            let start = line - 1;
            let end = lines[line..]
                .iter()
                .position(|l| crate::case::is_marker(l))
                .map_or(lines.len(), |n| line + n);
            let mut v = lines[..start].to_vec();
            v.extend(exp);
            v.extend_from_slice(&lines[end..]);
            v
        }
        None => {
            let mut v = lines.clone();
            if v.last().is_some_and(|l| !l.ends_with('\n')) {
                if let Some(l) = v.last_mut() {
                    l.push('\n');
                }
            }
            v.extend(exp);
            v
        }
    };
    new.concat()
}

/// Rewrites `path` with `results` as its expect section.
pub fn write(path: &Path, case: &Case, results: &[Value]) -> Result<(), String> {
    let tmp = path.with_extension("case.tmp-htgate");
    std::fs::write(&tmp, with_expect(case, results))
        .and_then(|_| std::fs::rename(&tmp, path))
        .map_err(|e| format!("cannot write {}: {e}", path.display()))
}

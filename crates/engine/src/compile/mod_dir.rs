//! mod_dir: the index files, the trailing-slash redirect and `FallbackResource`.

use super::*;

/// The `command_rec` table: the directive names in Apache's spelling.
pub(super) const TABLE: Table = Table {
    names: &["DirectoryIndex", "DirectorySlash", "FallbackResource"],
    compile,
};

pub(super) fn compile(d: &Directive, lname: &str, ctx: &mut Context, diags: &mut Vec<Diagnostic>) {
    let err = |msg: String| Diagnostic::error(args_span(d), msg);
    match lname {
        "directoryindex" => {
            let w = words(d);
            if w.len() == 1 && w[0].eq_ignore_ascii_case("disabled") {
                ctx.config.directory_index = Some(Vec::new());
            } else if w.is_empty() {
                diags.push(err("DirectoryIndex needs at least one file name".into()));
            } else {
                ctx.config.directory_index = Some(w);
            }
        }
        "directoryslash" => match on_off(d) {
            Ok(v) => ctx.config.directory_slash = Some(v),
            Err(e) => diags.push(e),
        },
        "fallbackresource" => {
            let w = words(d);
            ctx.config.fallback_resource = Some(match w.first() {
                Some(v) if v.eq_ignore_ascii_case("disabled") => None,
                Some(v) => Some(v.clone()),
                None => {
                    diags.push(err("FallbackResource needs a URL".into()));
                    None
                }
            });
        }
        // The table sends only its own names.
        _ => {}
    }
}

//! mod_headers: `Header` and `RequestHeader`.

use super::*;

/// The `command_rec` table: the directive names in Apache's spelling.
pub(super) const TABLE: Table = Table {
    names: &["Header", "RequestHeader"],
    compile,
};

pub(super) fn compile(d: &Directive, lname: &str, ctx: &mut Context, diags: &mut Vec<Diagnostic>) {
    let err = |msg: String| Diagnostic::error(args_span(d), msg);
    match lname {
        "header" | "requestheader" => {
            match headers::parse_action(&words(d), lname == "requestheader") {
                Ok(a) => {
                    if lname == "header" {
                        ctx.config.headers.push(a)
                    } else {
                        ctx.config.request_headers.push(a)
                    }
                }
                Err(e) => diags.push(err(format!("{}: {e}", d.name))),
            }
        }
        // The table sends only its own names.
        _ => {}
    }
}

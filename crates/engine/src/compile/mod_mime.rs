//! mod_mime (types, charsets, encodings, handlers) and mod_negotiation's directives, which htgate accepts without negotiating.

use super::*;

/// The `command_rec` table: the directive names in Apache's spelling.
pub(super) const TABLE: Table = Table {
    names: &[
        "AddType",
        "AddCharset",
        "AddEncoding",
        "AddHandler",
        "AddLanguage",
        "AddInputFilter",
        "AddOutputFilter",
        "RemoveType",
        "RemoveHandler",
        "RemoveEncoding",
        "RemoveCharset",
        "RemoveLanguage",
        "RemoveOutputFilter",
        "RemoveInputFilter",
        "DefaultLanguage",
        "LanguagePriority",
        "ForceLanguagePriority",
        "MultiviewsMatch",
        "ModMimeUsePathInfo",
    ],
    compile,
};

pub(super) fn compile(d: &Directive, lname: &str, ctx: &mut Context, diags: &mut Vec<Diagnostic>) {
    let err = |msg: String| Diagnostic::error(args_span(d), msg);
    match lname {
        "addtype" | "addcharset" | "addencoding" | "addhandler" | "addlanguage"
        | "addinputfilter" | "addoutputfilter" => {
            let w = words(d);
            if w.len() < 2 {
                diags.push(err(format!(
                    "{} needs a value and at least one extension",
                    d.name
                )));
                return;
            }
            let m = ctx.mime.get_or_insert_with(MimeConf::default);
            let value = w[0].clone();
            for ext in &w[1..] {
                let ext = ext.trim_start_matches('.').to_ascii_lowercase();
                match lname {
                    "addtype" => m.types.push((ext, Some(value.to_ascii_lowercase()))),
                    "addcharset" => m.charsets.push((ext, value.clone())),
                    "addencoding" => m.encodings.push((ext, value.to_ascii_lowercase())),
                    "addhandler" => m.handlers.push((ext, value.to_ascii_lowercase())),
                    _ => {}
                }
            }
        }
        "removetype" | "removehandler" | "removeencoding" | "removecharset" | "removelanguage"
        | "removeoutputfilter" | "removeinputfilter" => {
            let m = ctx.mime.get_or_insert_with(MimeConf::default);
            for ext in words(d) {
                let ext = ext.trim_start_matches('.').to_ascii_lowercase();
                if lname == "removetype" {
                    m.types.push((ext, None));
                }
            }
        }
        "defaultlanguage"
        | "languagepriority"
        | "forcelanguagepriority"
        | "multiviewsmatch"
        | "modmimeusepathinfo" => {
            diags.push(warn_ignored(d, "content negotiation is not implemented"))
        }
        // The table sends only its own names.
        _ => {}
    }
}

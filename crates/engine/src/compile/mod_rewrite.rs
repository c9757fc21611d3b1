//! mod_rewrite's directives: the rules themselves compile in `crate::rewrite`.

use super::*;

/// The `command_rec` table: the directive names in Apache's spelling.
pub(super) const TABLE: Table = Table {
    names: &[
        "RewriteEngine",
        "RewriteBase",
        "RewriteOptions",
        "RewriteCond",
        "RewriteRule",
        "RewriteMap",
    ],
    compile,
};

pub(super) fn compile(d: &Directive, lname: &str, ctx: &mut Context, diags: &mut Vec<Diagnostic>) {
    let line = d.span.line;
    let err = |msg: String| Diagnostic::error(args_span(d), msg);
    match lname {
        "rewriteengine" => match on_off(d) {
            Ok(v) => ctx.rewrite().engine = Some(v),
            Err(e) => diags.push(e.with_help("write `RewriteEngine On` or `RewriteEngine Off`")),
        },
        "rewritebase" => {
            let w = words(d);
            match w.as_slice() {
                [b] if b.starts_with('/') => ctx.rewrite().base = Some(b.clone()),
                _ => diags.push(err("RewriteBase: argument is not a valid URL".into())
                    .with_help("RewriteBase takes one URL path starting with `/`, e.g. `RewriteBase /blog/`")),
            }
        }
        "rewriteoptions" => {
            let mut bits = ctx.rewrite().options.unwrap_or(0);
            for w in words(d) {
                let l = w.to_ascii_lowercase();
                bits |= match l.as_str() {
                    "inherit" => RWOPT_INHERIT,
                    "inheritbefore" => RWOPT_INHERIT_BEFORE,
                    "inheritdown" => RWOPT_INHERIT_DOWN,
                    "inheritdownbefore" => RWOPT_INHERIT_DOWN_BEFORE,
                    "ignoreinherit" => RWOPT_IGNORE_INHERIT,
                    "allownoslash" => RWOPT_NOSLASH,
                    "allowanyuri" => 0,
                    "mergebase" => RWOPT_MERGE_BASE,
                    "ignorecontextinfo" => RWOPT_IGNORE_CONTEXT_INFO,
                    "legacyprefixdocroot" => RWOPT_LEGACY_PREFIX_DOCROOT,
                    "unsafeprefixstat" => 0,
                    _ if l.starts_with("maxredirects=") => {
                        diags.push(warn_ignored(
                            d,
                            "MaxRedirects is no longer supported; LimitInternalRecursion applies",
                        ));
                        0
                    }
                    _ => {
                        diags.push(err(format!("RewriteOptions: unknown option `{w}`")));
                        0
                    }
                };
            }
            ctx.rewrite().options = Some(bits);
        }
        "rewritecond" => match rewrite::compile_cond(&d.raw_args, line) {
            Ok(c) => {
                ctx.rewrite_seen = true;
                ctx.pending_conds.push(c)
            }
            Err(e) => diags.push(arg_diag(d, e)),
        },
        "rewriterule" => match rewrite::compile_rule(&d.raw_args, line) {
            Ok(mut r) => {
                r.col = d.span.col;
                r.conds = std::mem::take(&mut ctx.pending_conds);
                ctx.rewrite();
                ctx.rules.push(r);
            }
            Err(e) => {
                ctx.pending_conds.clear();
                diags.push(arg_diag(d, e))
            }
        },
        "rewritemap" => diags.push(
            Diagnostic::error(
                whole(d),
                "RewriteMap not allowed here: it can only be defined in the server configuration",
            )
            .with_help("ask your host to define the map, or rewrite without it"),
        ),
        // The table sends only its own names.
        _ => {}
    }
}

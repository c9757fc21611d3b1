//! mod_ssl: `SSLRequireSSL` (a `Require` of HTTPS) and `SSLOptions` (accepted, inert).

use super::*;

/// The `command_rec` table: the directive names in Apache's spelling.
pub(super) const TABLE: Table = Table {
    names: &["SSLOptions", "SSLRequireSSL"],
    compile,
};

pub(super) fn compile(d: &Directive, lname: &str, ctx: &mut Context, diags: &mut Vec<Diagnostic>) {
    let err = |msg: String| Diagnostic::error(args_span(d), msg);
    match lname {
        "ssloptions" => diags.push(warn_ignored(d, "TLS variables for CGI are not exported")),
        "sslrequiressl" => {
            ctx.authz_seen = true;
            let limit = ctx.limit.clone();
            match expr::parse_bool("%{HTTPS} == 'on'") {
                Ok(e) => ctx.authz_items.push((
                    limit,
                    AuthzItem::Require {
                        negate: false,
                        provider: Provider::Expr(Arc::new(e)),
                    },
                )),
                Err(e) => diags.push(err(format!("internal expression error: {e}"))),
            }
        }
        // The table sends only its own names.
        _ => {}
    }
}

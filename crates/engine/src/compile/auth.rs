//! Authentication: mod_auth_basic, mod_authn_file and mod_authz_groupfile (`AuthType Basic`, the password and group files).

use super::*;

/// The `command_rec` table: the directive names in Apache's spelling.
pub(super) const TABLE: Table = Table {
    names: &[
        "AuthType",
        "AuthName",
        "AuthUserFile",
        "AuthGroupFile",
        "AuthBasicProvider",
    ],
    compile,
};

pub(super) fn compile(d: &Directive, lname: &str, ctx: &mut Context, diags: &mut Vec<Diagnostic>) {
    let err = |msg: String| Diagnostic::error(args_span(d), msg);
    match lname {
        "authtype" | "authname" | "authuserfile" | "authgroupfile" => {
            let w = words(d);
            let Some(v) = w.first().cloned() else {
                diags.push(err(format!("{} needs a value", d.name)));
                return;
            };
            let a = ctx.config.auth.get_or_insert_with(Default::default);
            match lname {
                "authtype" => {
                    if v.eq_ignore_ascii_case("none") {
                        a.auth_type = Some(None);
                    } else if v.eq_ignore_ascii_case("basic") {
                        a.auth_type = Some(Some("Basic".into()));
                    } else {
                        diags.push(err(format!(
                            "AuthType `{v}` is not supported: htgate has Basic authentication (Digest needs mod_auth_digest)"
                        )));
                    }
                }
                "authname" => a.name = Some(v),
                "authuserfile" => a.user_file = Some(v),
                _ => a.group_file = Some(v),
            }
        }
        "authbasicprovider" => {
            for p in words(d) {
                if !p.eq_ignore_ascii_case("file") {
                    diags.push(err(format!(
                        "authentication provider `{p}` is not available: htgate has `file` (AuthUserFile)"
                    )));
                }
            }
        }
        // The table sends only its own names.
        _ => {}
    }
}

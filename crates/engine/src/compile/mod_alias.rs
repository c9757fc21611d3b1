//! mod_alias: `Redirect*` (the `Alias` family is refused in `.htaccess`, as Apache refuses it).

use super::*;

/// The `command_rec` table: the directive names in Apache's spelling.
pub(super) const TABLE: Table = Table {
    names: &[
        "Redirect",
        "RedirectMatch",
        "RedirectPermanent",
        "RedirectTemp",
        "Alias",
        "AliasMatch",
        "ScriptAlias",
        "ScriptAliasMatch",
    ],
    compile,
};

pub(super) fn compile(d: &Directive, lname: &str, ctx: &mut Context, diags: &mut Vec<Diagnostic>) {
    let err = |msg: String| Diagnostic::error(args_span(d), msg);
    match lname {
        "redirect" | "redirectmatch" | "redirectpermanent" | "redirecttemp" => {
            match parse_redirect(lname, &words(d)) {
                Ok(r) => ctx.config.redirects.push(r),
                Err(e) => diags.push(err(e)),
            }
        }
        "alias" | "aliasmatch" | "scriptalias" | "scriptaliasmatch" => {
            diags.push(Diagnostic::error(
                whole(d),
                format!(
                    "{} not allowed here: it can only be used in the server configuration",
                    d.name
                ),
            ))
        }
        // The table sends only its own names.
        _ => {}
    }
}

fn parse_redirect(lname: &str, w: &[String]) -> Result<AliasRedirect, String> {
    let mut i = 0;
    let mut status = match lname {
        "redirectpermanent" => 301,
        _ => 302,
    };
    if lname == "redirect" || lname == "redirectmatch" {
        if let Some(first) = w.first() {
            let l = first.to_ascii_lowercase();
            let explicit = match l.as_str() {
                "permanent" => Some(301),
                "temp" => Some(302),
                "seeother" => Some(303),
                "gone" => Some(410),
                _ if l.chars().all(|c| c.is_ascii_digit()) && !l.is_empty() => Some(
                    l.parse::<u16>()
                        .map_err(|_| format!("bad status `{first}`"))?,
                ),
                _ => None,
            };
            if let Some(s) = explicit {
                status = s;
                i = 1;
            }
        }
    }
    let from = w.get(i).ok_or("Redirect needs a URL path")?.clone();
    let target = w.get(i + 1).cloned();
    let is_redirect = (300..400).contains(&status);
    if is_redirect && target.is_none() {
        return Err("URL to redirect to is missing".into());
    }
    if !is_redirect && target.is_some() {
        return Err("Redirect URL not valid for this status".into());
    }
    if let Some(t) = &target {
        if !(t.starts_with('/') || t.contains("://")) {
            return Err(format!("Redirect to non-URL `{t}`"));
        }
    }
    let kind = if lname == "redirectmatch" {
        AliasKind::Regex(
            Pattern::new(&from, false).map_err(|e| format!("bad regex `{from}`: {e}"))?,
        )
    } else {
        AliasKind::Prefix(from)
    };
    Ok(AliasRedirect {
        kind,
        status,
        target,
    })
}

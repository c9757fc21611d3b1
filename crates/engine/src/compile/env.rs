//! mod_env (`SetEnv`, `UnsetEnv`, `PassEnv`) and mod_setenvif (`SetEnvIf`, `BrowserMatch`, …).

use super::*;

/// The `command_rec` table: the directive names in Apache's spelling.
pub(super) const TABLE: Table = Table {
    names: &[
        "SetEnv",
        "UnsetEnv",
        "PassEnv",
        "SetEnvIf",
        "SetEnvIfNoCase",
        "BrowserMatch",
        "BrowserMatchNoCase",
        "SetEnvIfExpr",
    ],
    compile,
};

pub(super) fn compile(d: &Directive, lname: &str, ctx: &mut Context, diags: &mut Vec<Diagnostic>) {
    let err = |msg: String| Diagnostic::error(args_span(d), msg);
    match lname {
        "setenv" => {
            let w = words(d);
            match w.as_slice() {
                [n] => ctx.config.set_env.push((n.clone(), Some(String::new()))),
                [n, v, ..] => ctx.config.set_env.push((n.clone(), Some(v.clone()))),
                _ => diags.push(err("SetEnv needs a variable name".into())),
            }
        }
        "unsetenv" => {
            for n in words(d) {
                ctx.config.set_env.push((n, None));
            }
        }
        "passenv" => diags.push(warn_ignored(
            d,
            "the server's environment is never passed to sites (it could leak secrets)",
        )),
        "setenvif" | "setenvifnocase" | "browsermatch" | "browsermatchnocase" | "setenvifexpr" => {
            match parse_setenvif(lname, &words(d)) {
                Ok(s) => ctx.config.set_env_if.push(s),
                Err(e) => diags.push(err(e)),
            }
        }
        // The table sends only its own names.
        _ => {}
    }
}

fn parse_setenvif(lname: &str, w: &[String]) -> Result<SetEnvIf, String> {
    let (attr_word, rest): (Option<&String>, &[String]) = match lname {
        "browsermatch" | "browsermatchnocase" => (None, w),
        _ => (w.first(), w.get(1..).unwrap_or(&[])),
    };
    let nocase = lname.ends_with("nocase");
    if lname == "setenvifexpr" {
        let e = attr_word.ok_or("SetEnvIfExpr needs an expression")?;
        let ex = expr::parse_bool(e).map_err(|e| format!("bad expression: {e}"))?;
        return Ok(SetEnvIf {
            attribute: SetEnvAttr::Expr(Arc::new(ex)),
            pattern: Pattern::new("", false).map_err(|e| e.to_string())?,
            assignments: assignments(rest)?,
            simple: false,
        });
    }
    let attribute = match attr_word {
        None => SetEnvAttr::Header("User-Agent".into()),
        Some(a) => match a.to_ascii_lowercase().as_str() {
            "remote_host" => SetEnvAttr::RemoteHost,
            "remote_addr" => SetEnvAttr::RemoteAddr,
            "server_addr" => SetEnvAttr::ServerAddr,
            "request_method" => SetEnvAttr::RequestMethod,
            "request_protocol" => SetEnvAttr::RequestProtocol,
            "request_uri" => SetEnvAttr::RequestUri,
            _ => {
                // mod_setenvif.c is_header_regex: a name with anything
                // but `-`, `_`, letters and digits is a regex over the
                // request's header names.
                if !a
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
                {
                    SetEnvAttr::HeaderRegex(
                        Pattern::new(a, nocase).map_err(|e| format!("bad regex `{a}`: {e}"))?,
                    )
                } else {
                    SetEnvAttr::Header(a.clone())
                }
            }
        },
    };
    let (pat, assigns) = rest
        .split_first()
        .ok_or("SetEnvIf needs a regular expression")?;
    if assigns.is_empty() {
        return Err("SetEnvIf needs at least one variable to set".into());
    }
    Ok(SetEnvIf {
        attribute,
        pattern: Pattern::new(pat, nocase).map_err(|e| format!("bad regex `{pat}`: {e}"))?,
        assignments: assignments(assigns)?,
        simple: non_regex_pattern(pat),
    })
}

/// mod_setenvif.c non_regex_pattern: true when the pattern has no
/// unescaped regex metacharacter and no escaped ordinary character.
fn non_regex_pattern(pat: &str) -> bool {
    let mut in_escape = false;
    for c in pat.chars() {
        match c {
            '^' | '.' | '$' | '|' | '(' | ')' | '[' | ']' | '*' | '+' | '?' | '{' | '}' => {
                if !in_escape {
                    return false;
                }
                in_escape = false;
            }
            '\\' => in_escape = !in_escape,
            _ => {
                if in_escape {
                    return false;
                }
            }
        }
    }
    true
}

fn assignments(w: &[String]) -> Result<Vec<(String, Option<String>)>, String> {
    let mut out = Vec::new();
    for a in w {
        if let Some(n) = a.strip_prefix('!') {
            out.push((n.to_string(), None));
        } else if let Some((n, v)) = a.split_once('=') {
            out.push((n.to_string(), Some(v.to_string())));
        } else {
            out.push((a.clone(), Some("1".to_string())));
        }
    }
    Ok(out)
}

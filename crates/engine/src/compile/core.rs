//! core's directives allowed in `.htaccess` (`Options`, `ErrorDocument`, `ForceType`, …) and the server-level ones htgate accepts and ignores.

use super::*;

/// The `command_rec` table: the directive names in Apache's spelling.
pub(super) const TABLE: Table = Table {
    names: &[
        "Options",
        "ErrorDocument",
        "AcceptPathInfo",
        "ForceType",
        "SetHandler",
        "AddDefaultCharset",
        "FileETag",
        "ServerSignature",
        "ContentDigest",
        "LimitRequestBody",
        "LimitXMLRequestBody",
        "EnableMMAP",
        "EnableSendfile",
        "UseCanonicalName",
        "DefaultType",
    ],
    compile,
};

pub(super) fn compile(d: &Directive, lname: &str, ctx: &mut Context, diags: &mut Vec<Diagnostic>) {
    let err = |msg: String| Diagnostic::error(args_span(d), msg);
    match lname {
        "options" => match parse_options(&words(d)) {
            Ok(o) => {
                let adds = match o {
                    OptionsLine::Set(v) => v,
                    OptionsLine::Change { add, .. } => add,
                };
                if adds & OPT_MULTI != 0 {
                    diags.push(warn_ignored(
                        d,
                        "MultiViews content negotiation is not implemented: `/page` does not find `page.html`",
                    ));
                }
                if adds & (OPT_EXECCGI | OPT_INCLUDES) != 0 {
                    diags.push(warn_ignored(
                        d,
                        "CGI scripts and server-side includes are not run (PHP runs through PHP-FPM)",
                    ));
                }
                ctx.config.options.push(o)
            }
            Err(e) => diags.push(err(e)),
        },
        "errordocument" => {
            let w = words(d);
            if w.len() != 2 {
                diags.push(err(
                    "ErrorDocument takes a status code and a document".into()
                ));
                return;
            }
            let code: u16 = match w[0].parse() {
                Ok(c) if (400..600).contains(&c) || (300..400).contains(&c) => c,
                _ => {
                    diags.push(err(format!("unsupported HTTP response code `{}`", w[0])));
                    return;
                }
            };
            let quoted = d.args.get(1).map(|a| a.quoted).unwrap_or(false);
            let v = &w[1];
            let doc = if v.eq_ignore_ascii_case("default") && !quoted {
                ErrorDocument::Default
            } else if v.starts_with('/') && !v.contains(' ') && !quoted
                || (v.starts_with('/') && quoted && !v.contains(' '))
            {
                ErrorDocument::Local(v.clone())
            } else if (v.starts_with("http://") || v.starts_with("https://")) && !v.contains(' ') {
                if code == 401 {
                    // AH00113: a 401 must reach the browser to ask for
                    // credentials; Apache ignores the directive and keeps
                    // its own page (recorded in htgate-day-one-directives).
                    diags.push(Diagnostic::warning(
                        d.span,
                        "ErrorDocument 401 with a full URL is ignored (Apache: AH00113): a redirect would never let the browser ask for credentials; use a local path",
                    ));
                    return;
                }
                ErrorDocument::Remote(v.clone())
            } else {
                ErrorDocument::Text(v.clone())
            };
            ctx.config.error_documents.push((code, doc));
        }
        "acceptpathinfo" => {
            let w = words(d);
            match w.first().map(|s| s.to_ascii_lowercase()).as_deref() {
                Some("on") => ctx.config.accept_path_info = Some(true),
                Some("off") => ctx.config.accept_path_info = Some(false),
                Some("default") => ctx.config.accept_path_info = None,
                _ => diags.push(err("AcceptPathInfo must be On, Off or Default".into())),
            }
        }
        "forcetype" => {
            let w = words(d);
            let m = ctx.mime.get_or_insert_with(MimeConf::default);
            m.force_type = Some(match w.first() {
                Some(t) if !t.eq_ignore_ascii_case("none") => Some(t.to_ascii_lowercase()),
                _ => None,
            });
        }
        "sethandler" => {
            let w = words(d);
            let m = ctx.mime.get_or_insert_with(MimeConf::default);
            m.set_handler = Some(match w.first() {
                Some(t) if !t.eq_ignore_ascii_case("none") => Some(t.to_ascii_lowercase()),
                _ => None,
            });
        }
        "adddefaultcharset" => {
            let w = words(d);
            let m = ctx.mime.get_or_insert_with(MimeConf::default);
            m.default_charset = Some(match w.first().map(|s| s.as_str()) {
                Some(v) if v.eq_ignore_ascii_case("off") => None,
                Some(v) if v.eq_ignore_ascii_case("on") => Some("iso-8859-1".into()),
                Some(v) => Some(v.to_string()),
                None => {
                    diags.push(err("AddDefaultCharset needs On, Off or a charset".into()));
                    None
                }
            });
        }
        "fileetag"
        | "serversignature"
        | "contentdigest"
        | "limitrequestbody"
        | "limitxmlrequestbody"
        | "enablemmap"
        | "enablesendfile"
        | "usecanonicalname" => {
            diags.push(warn_ignored(d, "htgate uses its own settings for this"))
        }
        "defaulttype" => diags.push(warn_ignored(
            d,
            "DefaultType has no effect since Apache 2.3",
        )),
        // The table sends only its own names.
        _ => {}
    }
}

fn parse_options(words: &[String]) -> Result<OptionsLine, String> {
    let mut add = 0u16;
    let mut remove = 0u16;
    let mut absolute: Option<u16> = None;
    let mut relative = false;
    for w in words {
        let (sign, name) = match w.as_bytes().first() {
            Some(b'+') => (Some(true), &w[1..]),
            Some(b'-') => (Some(false), &w[1..]),
            _ => (None, w.as_str()),
        };
        let bit = match name.to_ascii_lowercase().as_str() {
            "indexes" => OPT_INDEXES,
            "includes" => OPT_INCLUDES,
            "includesnoexec" => OPT_INCNOEXEC,
            "followsymlinks" => OPT_SYM_LINKS,
            "symlinksifownermatch" => OPT_SYM_OWNER,
            "execcgi" => OPT_EXECCGI,
            "multiviews" => OPT_MULTI,
            "all" => OPT_ALL,
            "none" => 0,
            _ => return Err(format!("illegal option `{name}`")),
        };
        match sign {
            // Apache accepts `Options All -Indexes`: signed options after
            // absolute ones change the absolute set (recorded in
            // fixtures/conformance/htgate-day-one-directives.case); the
            // other order is the error below.
            Some(s) if absolute.is_some() => {
                let v = absolute.unwrap_or(0);
                absolute = Some(if s { v | bit } else { v & !bit });
            }
            Some(s) => {
                relative = true;
                if s {
                    add |= bit;
                    remove &= !bit;
                } else {
                    remove |= bit;
                    add &= !bit;
                }
            }
            None => {
                if relative {
                    return Err(
                        "either all Options must start with + or -, or no Option may".into(),
                    );
                }
                absolute = Some(absolute.unwrap_or(0) | bit);
            }
        }
    }
    Ok(match absolute {
        Some(v) => OptionsLine::Set(v),
        None => OptionsLine::Change { add, remove },
    })
}

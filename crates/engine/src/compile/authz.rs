//! Access control: mod_authz_core's `Require` and mod_access_compat's `Order`/`Allow`/`Deny`/`Satisfy`.

use super::*;

/// The `command_rec` table: the directive names in Apache's spelling.
pub(super) const TABLE: Table = Table {
    names: &[
        "Require",
        "Order",
        "Allow",
        "Deny",
        "Satisfy",
        "AuthMerging",
        "AuthBasicAuthoritative",
        "AuthzUserAuthoritative",
    ],
    compile,
};

pub(super) fn compile(d: &Directive, lname: &str, ctx: &mut Context, diags: &mut Vec<Diagnostic>) {
    let err = |msg: String| Diagnostic::error(args_span(d), msg);
    match lname {
        "require" => match parse_require(&words(d)) {
            // mod_authz_core.c add_authz_provider: `Require not` in an OR
            // section (the top level or <RequireAny>) is a config error.
            Ok(AuthzItem::Require { negate: true, .. }) if !ctx.authz_in_all => diags.push(
                err("a negated Require has no effect here".into()).with_help(
                    "put `Require not ...` inside `<RequireAll>` next to a positive Require",
                ),
            ),
            Ok(item) => {
                if let AuthzItem::Require {
                    provider: Provider::Host(_),
                    ..
                } = &item
                {
                    diags.push(
                        Diagnostic::warning(
                            whole(d),
                            "`Require host` never matches: htgate does no DNS look-ups while serving (as Apache when its double-reverse look-up fails)",
                        )
                        .with_help("use `Require ip` with the addresses"),
                    );
                }
                ctx.authz_seen = true;
                let limit = ctx.limit.clone();
                ctx.authz_items.push((limit, item));
            }
            Err(e) => diags.push(err(e)),
        },
        "order" => {
            let w = words(d).join("").to_ascii_lowercase();
            let order = match w.as_str() {
                "deny,allow" => Order::DenyAllow,
                "allow,deny" => Order::AllowDeny,
                "mutual-failure" => Order::MutualFailure,
                _ => {
                    diags.push(err(
                        "unknown order: use `Deny,Allow`, `Allow,Deny` or `Mutual-failure`".into(),
                    ));
                    return;
                }
            };
            ctx.access().order = order;
        }
        "allow" | "deny" => {
            let w = words(d);
            if w.len() < 2 || !w[0].eq_ignore_ascii_case("from") {
                diags.push(err(format!("{} must be followed by `from`", d.name)));
                return;
            }
            let limit = ctx.limit.clone();
            for h in &w[1..] {
                let entry = if h.eq_ignore_ascii_case("all") {
                    AllowFrom::All
                } else if let Some(v) = h.strip_prefix("env=") {
                    match v.strip_prefix('!') {
                        Some(n) => AllowFrom::Env {
                            negate: true,
                            name: n.to_string(),
                        },
                        None => AllowFrom::Env {
                            negate: false,
                            name: v.to_string(),
                        },
                    }
                } else if let Some(m) = IpMatch::parse(h) {
                    AllowFrom::Ip(m)
                } else {
                    diags.push(
                        Diagnostic::warning(
                            whole(d),
                            format!("`{h}` is a host name, which never matches: htgate does no DNS look-ups while serving (as Apache when its double-reverse look-up fails)"),
                        )
                        .with_help("use IP addresses or networks"),
                    );
                    AllowFrom::Host(h.to_ascii_lowercase())
                };
                let acc = ctx.access();
                if lname == "allow" {
                    acc.allow.push((limit.clone(), entry));
                } else {
                    acc.deny.push((limit.clone(), entry));
                }
            }
        }
        "satisfy" => {
            let w = words(d);
            match w.first().map(|s| s.to_ascii_lowercase()).as_deref() {
                Some("any") => ctx.access().satisfy_any = true,
                Some("all") => ctx.access().satisfy_any = false,
                _ => diags.push(err("Satisfy must be All or Any".into())),
            }
        }
        "authmerging" | "authbasicauthoritative" | "authzuserauthoritative" => {
            diags.push(warn_ignored(d, "htgate keeps Apache's default for this"))
        }
        // The table sends only its own names.
        _ => {}
    }
}

fn parse_require(w: &[String]) -> Result<AuthzItem, String> {
    let (negate, w) = match w.first() {
        Some(f) if f.eq_ignore_ascii_case("not") => (true, &w[1..]),
        _ => (false, w),
    };
    let kind = w
        .first()
        .ok_or("Require needs a provider, e.g. `Require all granted`")?;
    let rest = &w[1..];
    let provider = match kind.to_ascii_lowercase().as_str() {
        "all" => match rest.first().map(|s| s.to_ascii_lowercase()).as_deref() {
            Some("granted") => Provider::All(true),
            Some("denied") => Provider::All(false),
            _ => return Err("`Require all` must be followed by `granted` or `denied`".into()),
        },
        "ip" => {
            let mut v = Vec::new();
            for r in rest {
                v.push(
                    IpMatch::parse(r)
                        .ok_or(format!("`{r}` is not a valid IP address or network"))?,
                );
            }
            Provider::Ip(v)
        }
        "host" | "forward-dns" => Provider::Host(rest.to_vec()),
        "local" => Provider::Local,
        "env" => Provider::Env(rest.to_vec()),
        "method" => Provider::Method(rest.to_vec()),
        "expr" => {
            let text = rest.join(" ");
            Provider::Expr(Arc::new(
                expr::parse_bool(&text).map_err(|e| format!("cannot parse expression: {e}"))?,
            ))
        }
        "valid-user" => Provider::ValidUser,
        "user" => Provider::Users(rest.to_vec()),
        "group" => Provider::Groups(rest.to_vec()),
        "file-owner" | "file-group" => Provider::FileOwner,
        other => return Err(format!("unknown authorization provider `{other}`")),
    };
    Ok(AuthzItem::Require { negate, provider })
}

//! mod_expires: `Expires` and `Cache-Control: max-age` by type.

use super::*;

/// The `command_rec` table: the directive names in Apache's spelling.
pub(super) const TABLE: Table = Table {
    names: &["ExpiresActive", "ExpiresDefault", "ExpiresByType"],
    compile,
};

pub(super) fn compile(d: &Directive, lname: &str, ctx: &mut Context, diags: &mut Vec<Diagnostic>) {
    let err = |msg: String| Diagnostic::error(args_span(d), msg);
    match lname {
        "expiresactive" => match on_off(d) {
            Ok(v) => ctx.expires.get_or_insert_with(Default::default).active = Some(v),
            Err(e) => diags.push(e),
        },
        "expiresdefault" => match parse_expires(&words(d)) {
            Ok(r) => ctx.expires.get_or_insert_with(Default::default).default = Some(r),
            Err(e) => diags.push(err(e)),
        },
        "expiresbytype" => {
            let w = words(d);
            if w.len() < 2 {
                diags.push(err("ExpiresByType needs a MIME type and a time".into()));
                return;
            }
            match parse_expires(&w[1..]) {
                Ok(r) => ctx
                    .expires
                    .get_or_insert_with(Default::default)
                    .by_type
                    .push((w[0].to_ascii_lowercase(), r)),
                Err(e) => diags.push(err(e)),
            }
        }
        // The table sends only its own names.
        _ => {}
    }
}

/// `ExpiresDefault "access plus 1 month"` or `A2592000` / `M60`.
fn parse_expires(w: &[String]) -> Result<ExpiresRule, String> {
    let text = w.join(" ");
    let t = text.trim();
    if let Some(rest) = t.strip_prefix(['A', 'M']) {
        if let Ok(secs) = rest.parse::<i64>() {
            return Ok(ExpiresRule {
                from_access: t.starts_with('A'),
                seconds: secs,
            });
        }
    }
    let mut it = t.split_whitespace();
    let base = it.next().ok_or("missing expiry time")?.to_ascii_lowercase();
    let from_access = match base.as_str() {
        "access" | "now" => true,
        "modification" => false,
        _ => {
            return Err(format!(
                "bad expires code `{t}`: must start with `access`, `now` or `modification`"
            ))
        }
    };
    let mut words: Vec<String> = it.map(|s| s.to_ascii_lowercase()).collect();
    if words.first().map(|w| w == "plus").unwrap_or(false) {
        words.remove(0);
    }
    let mut seconds = 0i64;
    let mut k = 0;
    while k < words.len() {
        let n: i64 = words[k]
            .parse()
            .map_err(|_| format!("bad expires code `{t}`: `{}` is not a number", words[k]))?;
        let unit = words
            .get(k + 1)
            .ok_or(format!("bad expires code `{t}`: a unit is missing"))?;
        let mult = match unit.trim_end_matches('s') {
            "year" => 365 * 86400,
            "month" => 30 * 86400,
            "week" => 7 * 86400,
            "day" => 86400,
            "hour" => 3600,
            "minute" => 60,
            "second" => 1,
            _ => return Err(format!("bad expires code `{t}`: unknown unit `{unit}`")),
        };
        seconds += n * mult;
        k += 2;
    }
    Ok(ExpiresRule {
        from_access,
        seconds,
    })
}

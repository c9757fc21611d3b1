//! mod_php's `php_value`/`php_flag` (passed to PHP-FPM) and the `php_admin_*` forms it refuses in `.htaccess`.

use super::*;

/// The `command_rec` table: the directive names in Apache's spelling.
pub(super) const TABLE: Table = Table {
    names: &["php_value", "php_flag", "php_admin_value", "php_admin_flag"],
    compile,
};

pub(super) fn compile(d: &Directive, lname: &str, ctx: &mut Context, diags: &mut Vec<Diagnostic>) {
    let err = |msg: String| Diagnostic::error(args_span(d), msg);
    match lname {
        "php_value" | "php_flag" => {
            let w = words(d);
            if w.len() != 2 {
                diags.push(err(format!("{} needs a setting name and a value", d.name)));
                return;
            }
            let name = &w[0];
            if name.is_empty()
                || !name
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'.')
            {
                diags.push(err(format!("`{name}` is not a PHP setting name")));
                return;
            }
            let value = if lname == "php_flag" {
                // mod_php's php_flag: On/1/Yes/True are "1", anything else "0"
                let v = w[1].to_ascii_lowercase();
                if matches!(v.as_str(), "on" | "1" | "yes" | "true") {
                    "1".to_string()
                } else {
                    "0".to_string()
                }
            } else if w[1].eq_ignore_ascii_case("none") {
                String::new()
            } else {
                w[1].clone()
            };
            ctx.config.php_values.push(PhpSetting {
                name: name.clone(),
                value,
                at: format!("{}:{}", d.span.line, d.span.col),
            });
        }
        "php_admin_value" | "php_admin_flag" => diags.push(
            Diagnostic::error(
                whole(d),
                format!(
                    "{} not allowed here: only the server configuration may set it",
                    d.name
                ),
            )
            .with_help("use `php_value`/`php_flag`, or ask the host to set it for the site"),
        ),
        // The table sends only its own names.
        _ => {}
    }
}

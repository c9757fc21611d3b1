//! Output filters: mod_filter's `AddOutputFilterByType` and core's `SetOutputFilter` (mod_deflate's DEFLATE decisions).

use super::*;

/// The `command_rec` table: the directive names in Apache's spelling.
pub(super) const TABLE: Table = Table {
    names: &["AddOutputFilterByType", "SetOutputFilter"],
    compile,
};

pub(super) fn compile(d: &Directive, lname: &str, ctx: &mut Context, diags: &mut Vec<Diagnostic>) {
    let err = |msg: String| Diagnostic::error(args_span(d), msg);
    match lname {
        "addoutputfilterbytype" => {
            let w = words(d);
            if w.len() < 2 {
                diags.push(err(
                    "AddOutputFilterByType needs a filter and at least one MIME type".into(),
                ));
                return;
            }
            let filters: Vec<String> = w[0]
                .split(';')
                .filter(|f| !f.is_empty())
                .map(|f| f.to_ascii_lowercase())
                .collect();
            if filters.iter().any(|f| f == "deflate") {
                let df = ctx.config.deflate.get_or_insert_with(Default::default);
                // mod_filter compares types exactly (case-sensitively)
                for t in &w[1..] {
                    if !df.by_type.contains(t) {
                        df.by_type.push(t.clone());
                    }
                }
            }
            let others: Vec<&String> = filters.iter().filter(|f| *f != "deflate").collect();
            if !others.is_empty() {
                diags.push(warn_ignored(
                    d,
                    &format!(
                        "only the DEFLATE output filter is implemented (not {})",
                        others
                            .iter()
                            .map(|f| f.to_ascii_uppercase())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                ));
            }
        }
        "setoutputfilter" => {
            let w = words(d);
            let deflate = w
                .iter()
                .flat_map(|x| x.split(';'))
                .any(|f| f.eq_ignore_ascii_case("deflate"));
            ctx.config
                .deflate
                .get_or_insert_with(Default::default)
                .always = Some(deflate);
            if !deflate {
                diags.push(warn_ignored(
                    d,
                    "only the DEFLATE output filter is implemented",
                ));
            }
        }
        // The table sends only its own names.
        _ => {}
    }
}

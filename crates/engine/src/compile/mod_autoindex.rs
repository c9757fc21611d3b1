//! mod_autoindex: the listing directives, parsed by `htgate_content::autoindex`'s `IndexConfig`.

use super::*;

/// The `command_rec` table: the directive names in Apache's spelling.
pub(super) const TABLE: Table = Table {
    names: htgate_content::autoindex::DIRECTIVES,
    compile,
};

pub(super) fn compile(d: &Directive, _lname: &str, ctx: &mut Context, diags: &mut Vec<Diagnostic>) {
    let err = |msg: String| Diagnostic::error(args_span(d), msg);
    {
        let ix = ctx.config.index.get_or_insert_with(Default::default);
        match ix.apply_directive(&d.name, &words(d)) {
            Ok(_) => {}
            Err(e) => diags.push(err(e)),
        }
    }
}

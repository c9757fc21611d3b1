//! Which backtracking regular expressions can be slow.
//!
//! A pattern with look-around or back-references is run by fancy-regex,
//! which hands every part without them to the linear `regex` engine and
//! backtracks only around the hard parts.  A plain `(?!well-known/)` or
//! `^(/.+)/(.*)::\2$` (stock CMS rules) costs next to nothing; what blows
//! up is a repetition around a hard part, or a look-around that scans with
//! a repetition at every position.  Only those shapes are reported.

use fancy_regex::Expr;

/// Why `pattern` can be slow on the backtracking engine, if it can.
pub(super) fn costly(pattern: &str) -> Option<&'static str> {
    let tree = Expr::parse_tree(pattern).ok()?;
    walk(&tree.expr, false)
}

fn unbounded(hi: usize) -> bool {
    hi == usize::MAX
}

/// Whether `e` contains a look-around or a back-reference.
fn hard(e: &Expr) -> bool {
    match e {
        Expr::LookAround(..) | Expr::Backref(_) | Expr::BackrefExistsCondition(_) => true,
        Expr::Concat(v) | Expr::Alt(v) => v.iter().any(hard),
        Expr::Group(c) | Expr::AtomicGroup(c) => hard(c),
        Expr::Repeat { child, .. } => hard(child),
        Expr::Conditional {
            condition,
            true_branch,
            false_branch,
        } => hard(condition) || hard(true_branch) || hard(false_branch),
        _ => false,
    }
}

/// Whether `e` repeats something without bound.
fn repeats(e: &Expr) -> bool {
    match e {
        Expr::Repeat { hi, child, .. } => unbounded(*hi) || repeats(child),
        Expr::Concat(v) | Expr::Alt(v) => v.iter().any(repeats),
        Expr::Group(c) | Expr::AtomicGroup(c) | Expr::LookAround(c, _) => repeats(c),
        // a delegated piece is a class or literal; `*`/`+` in it are
        // inside a class (repetitions are `Repeat` nodes)
        _ => false,
    }
}

fn walk(e: &Expr, in_repeat: bool) -> Option<&'static str> {
    match e {
        Expr::Repeat { child, hi, .. } => {
            if unbounded(*hi) && hard(child) {
                return Some(
                    "a repetition around a look-around or back-reference is retried at every length",
                );
            }
            walk(child, in_repeat || unbounded(*hi))
        }
        Expr::LookAround(child, _) => {
            if repeats(child) {
                return Some("a look-around that repeats (such as `(?=.*x)`) scans the rest of the text at every position");
            }
            walk(child, in_repeat)
        }
        Expr::Backref(_) if in_repeat => {
            Some("a back-reference inside a repetition is retried at every length")
        }
        Expr::Concat(v) | Expr::Alt(v) => v.iter().find_map(|x| walk(x, in_repeat)),
        Expr::Group(c) | Expr::AtomicGroup(c) => walk(c, in_repeat),
        Expr::Conditional {
            condition,
            true_branch,
            false_branch,
        } => walk(condition, in_repeat)
            .or_else(|| walk(true_branch, in_repeat))
            .or_else(|| walk(false_branch, in_repeat)),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::costly;

    #[test]
    fn stock_cms_patterns_are_cheap() {
        for p in [
            r"/\.|^\.(?!well-known/)",
            r"^\.well-known/(?!acme-challenge|pki-validation)",
            r"^(?:\.(?!well-known)|autotest|occ|issue|indie|db_|console).*",
            r"^(/.+)/(.*)::\2$",
            r"([^#]*)#(.*)\1$",
            r"^([^#]+)##https?://\1/",
        ] {
            assert_eq!(costly(p), None, "{p}");
        }
    }

    #[test]
    fn blowing_up_shapes_are_found() {
        assert!(costly(r"^(?=.*admin).*$").is_some());
        assert!(costly(r"^((?!x).)*$").is_some());
        assert!(costly(r"^(a|\1)+$").is_some());
        assert!(costly(r"(\w+)(?:-\1)+").is_some());
    }
}

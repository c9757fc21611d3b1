//! mod_headers: `Header` and `RequestHeader` actions, parsed once.
//! Apache: `mod_headers.c` (`header_cmd`, `header_inout_cmd`,
//! `parse_format_string`, `do_headers_fixup`).

use super::pattern::Pattern;
use htgate_syntax::expr;
use std::sync::Arc;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeaderOp {
    Set,
    Append,
    Add,
    Merge,
    Unset,
    SetIfEmpty,
    Echo,
    Edit,
    EditAll,
    Note,
}

#[derive(Debug, Clone)]
pub enum FmtPiece {
    Lit(String),
    /// `%{VAR}e`
    Env(String),
    /// `%{VAR}s`
    Ssl(String),
    /// `%i`, `%b`, `%l`: the server's idle and busy worker percentages and
    /// load average (mod_headers.c header_request_idle/_busy/_loadavg).
    /// Not a request header: that is mod_log_config's `%{NAME}i`.
    Load(LoadTag),
    /// `%t`: request time in microseconds, `t=...`
    Time,
    /// `%D`: duration, `D=...`
    Duration,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LoadTag {
    Idle,
    Busy,
    LoadAvg,
}

impl LoadTag {
    /// The text Apache prints.  htgate has no worker scoreboard; it reports
    /// what the reference environment's event MPM reports at rest: one
    /// child of 16 threads (ThreadsPerChild 16) with one thread busy on
    /// this request (`ap_get_sload` percentages, integer division).
    pub fn render(self) -> String {
        const THREADS: u32 = 16;
        match self {
            LoadTag::Idle => format!("i={}", (THREADS - 1) * 100 / THREADS),
            LoadTag::Busy => format!("b={}", 100 / THREADS),
            LoadTag::LoadAvg => {
                let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
                let mut v = text
                    .split_whitespace()
                    .take(3)
                    .map(|x| x.parse::<f64>().unwrap_or(0.0));
                let (a, b, c) = (
                    v.next().unwrap_or(0.0),
                    v.next().unwrap_or(0.0),
                    v.next().unwrap_or(0.0),
                );
                format!("l={a:.2}/{b:.2}/{c:.2}")
            }
        }
    }
}

#[derive(Debug, Clone)]
pub enum HeaderValue {
    Format(Vec<FmtPiece>),
    Expr(Arc<expr::StringExpr>),
}

#[derive(Debug, Clone)]
pub enum HeaderCond {
    None,
    Env { negate: bool, name: String },
    Expr(Arc<expr::Expr>),
}

#[derive(Debug, Clone)]
pub struct HeaderAction {
    pub always: bool,
    pub early: bool,
    pub op: HeaderOp,
    pub name: String,
    pub value: Option<HeaderValue>,
    /// `edit`/`edit*`: the regex (value is the replacement); `echo`: the
    /// regex over request header names.
    pub edit: Option<Pattern>,
    pub cond: HeaderCond,
}

/// Parses a format string (`parse_format_string`, `parse_format_tag`):
/// `%%`, then `%` with an optional `{ARG}` and one tag letter: `e` (env),
/// `s` (SSL variable), `t`, `D`, `i`, `b`, `l` (the argument is ignored
/// where the tag takes none); any other letter is an error.  A `%` at the
/// very end stays a `%`.
pub(crate) fn parse_format(s: &str) -> Result<Vec<FmtPiece>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        if matches!(chars.peek(), None | Some('%')) {
            chars.next();
            lit.push('%');
            continue;
        }
        let mut name = String::new();
        if chars.peek() == Some(&'{') {
            chars.next();
            // ap_getword: up to the next `}` or the end of the string.
            for n in chars.by_ref() {
                if n == '}' {
                    break;
                }
                name.push(n);
            }
        }
        flush(&mut lit, &mut out);
        match chars.next() {
            Some('e') => out.push(FmtPiece::Env(name)),
            Some('s') => out.push(FmtPiece::Ssl(name)),
            Some('t') => out.push(FmtPiece::Time),
            Some('D') => out.push(FmtPiece::Duration),
            Some('i') => out.push(FmtPiece::Load(LoadTag::Idle)),
            Some('b') => out.push(FmtPiece::Load(LoadTag::Busy)),
            Some('l') => out.push(FmtPiece::Load(LoadTag::LoadAvg)),
            Some(other) => return Err(format!("unrecognized header format `%{other}`")),
            None => return Err("unrecognized header format `%` at the end".to_string()),
        }
    }
    flush(&mut lit, &mut out);
    Ok(out)
}

fn flush(lit: &mut String, out: &mut Vec<FmtPiece>) {
    if !lit.is_empty() {
        out.push(FmtPiece::Lit(std::mem::take(lit)));
    }
}

/// Parses the words of a `Header`/`RequestHeader` directive.
pub(crate) fn parse_action(words: &[String], request: bool) -> Result<HeaderAction, String> {
    let mut i = 0;
    let mut always = false;
    if !request {
        if let Some(w) = words.first() {
            if w.eq_ignore_ascii_case("always") {
                always = true;
                i += 1;
            } else if w.eq_ignore_ascii_case("onsuccess") {
                i += 1;
            }
        }
    }
    let action = words
        .get(i)
        .ok_or_else(|| "header action is missing".to_string())?;
    let op = match action.to_ascii_lowercase().as_str() {
        "set" => HeaderOp::Set,
        "append" => HeaderOp::Append,
        "add" => HeaderOp::Add,
        "merge" => HeaderOp::Merge,
        "unset" => HeaderOp::Unset,
        "setifempty" => HeaderOp::SetIfEmpty,
        "echo" if !request => HeaderOp::Echo,
        "edit" => HeaderOp::Edit,
        "edit*" => HeaderOp::EditAll,
        "note" if !request => HeaderOp::Note,
        _ => {
            return Err(format!(
                "first argument must be `add`, `set`, `append`, `merge`, `unset`, `setifempty`, `echo`, `edit`, `edit*` or `note`, not `{action}`"
            ))
        }
    };
    i += 1;
    let name = words
        .get(i)
        .ok_or_else(|| "header name is missing".to_string())?
        .clone();
    i += 1;
    let mut rest: Vec<&String> = words[i..].iter().collect();
    let mut edit = None;
    let mut value = None;
    let needs_value = !matches!(op, HeaderOp::Unset | HeaderOp::Echo);
    if matches!(op, HeaderOp::Edit | HeaderOp::EditAll) {
        if rest.len() < 2 {
            return Err("header edit needs a regular expression and a replacement".into());
        }
        let re = rest.remove(0);
        edit = Some(Pattern::new(re, false).map_err(|e| format!("bad regex `{re}`: {e}"))?);
    }
    if op == HeaderOp::Echo {
        // `Header echo regex`: the name is a regex over request header names,
        // compiled here rather than per response.  Apache matches the names
        // as the client wrote them (`X-Echo-One`); htgate only sees them
        // lower-cased, so the match ignores case.
        edit = Some(Pattern::new(&name, true).map_err(|e| format!("bad regex `{name}`: {e}"))?);
    }
    if needs_value {
        let v = if rest.is_empty() {
            return Err(format!("header `{name}` needs a value"));
        } else {
            rest.remove(0)
        };
        value = Some(if let Some(e) = v.strip_prefix("expr=") {
            HeaderValue::Expr(Arc::new(
                expr::parse_string(e).map_err(|e| format!("bad expression: {e}"))?,
            ))
        } else {
            HeaderValue::Format(parse_format(v)?)
        });
    }
    let mut early = false;
    let mut cond = HeaderCond::None;
    for w in rest {
        if w.eq_ignore_ascii_case("early") {
            early = true;
        } else if let Some(e) = w.strip_prefix("env=") {
            cond = match e.strip_prefix('!') {
                Some(n) => HeaderCond::Env {
                    negate: true,
                    name: n.to_string(),
                },
                None => HeaderCond::Env {
                    negate: false,
                    name: e.to_string(),
                },
            };
        } else if let Some(e) = w.strip_prefix("expr=") {
            cond = HeaderCond::Expr(Arc::new(
                expr::parse_bool(e).map_err(|e| format!("bad expression: {e}"))?,
            ));
        } else {
            return Err(format!("too many arguments: `{w}`"));
        }
    }
    Ok(HeaderAction {
        always,
        early,
        op,
        name,
        value,
        edit,
        cond,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn format_tags_as_mod_headers() {
        // `%{NAME}i` is the idle-worker tag, not a request header
        // (mod_headers.c header_pre_config registers D t e s l i b).
        let p = parse_format("%{X-In}i|%b|%{FOO}e|%%|100%").expect("parses");
        assert!(matches!(p[0], FmtPiece::Load(LoadTag::Idle)));
        assert!(matches!(p[2], FmtPiece::Load(LoadTag::Busy)));
        assert!(matches!(&p[4], FmtPiece::Env(n) if n == "FOO"));
        assert!(matches!(&p[5], FmtPiece::Lit(l) if l == "|%|100%"));
        assert!(parse_format("%x").is_err());
        assert!(parse_format("50%|").is_err());
        assert!(LoadTag::Idle.render().starts_with("i="));
    }
}

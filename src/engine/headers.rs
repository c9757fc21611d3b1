//! mod_headers: `Header` and `RequestHeader` actions, parsed once.
//! Apache: `mod_headers.c` (`header_cmd`, `header_inout_cmd`,
//! `parse_format_string`, `do_headers_fixup`).

use super::pattern::Pattern;
use crate::expr;
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
    /// `%{NAME}i` request header (RequestHeader context mostly)
    ReqHeader(String),
    /// `%t`: request time in microseconds, `t=...`
    Time,
    /// `%D`: duration, `D=...`
    Duration,
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
    /// `edit`/`edit*`: the regex (value is the replacement).
    pub edit: Option<Pattern>,
    pub cond: HeaderCond,
}

/// Parses a format string (`parse_format_string`): `%{NAME}e`, `%{NAME}s`,
/// `%{NAME}i`, `%t`, `%D`, `%%`; unknown specifiers are an error.
pub fn parse_format(s: &str) -> Result<Vec<FmtPiece>, String> {
    let mut out = Vec::new();
    let mut lit = String::new();
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            lit.push(c);
            continue;
        }
        match chars.next() {
            Some('%') => lit.push('%'),
            Some('t') => {
                flush(&mut lit, &mut out);
                out.push(FmtPiece::Time);
            }
            Some('D') => {
                flush(&mut lit, &mut out);
                out.push(FmtPiece::Duration);
            }
            Some('{') => {
                let mut name = String::new();
                let mut closed = false;
                for n in chars.by_ref() {
                    if n == '}' {
                        closed = true;
                        break;
                    }
                    name.push(n);
                }
                if !closed {
                    return Err(format!("unclosed `%{{` in header value `{s}`"));
                }
                flush(&mut lit, &mut out);
                match chars.next() {
                    Some('e') => out.push(FmtPiece::Env(name)),
                    Some('s') => out.push(FmtPiece::Ssl(name)),
                    Some('i') => out.push(FmtPiece::ReqHeader(name)),
                    Some(other) => {
                        return Err(format!("unrecognized header format `%{{{name}}}{other}`"))
                    }
                    None => return Err(format!("unrecognized header format `%{{{name}}}`")),
                }
            }
            Some(other) => return Err(format!("unrecognized header format `%{other}`")),
            None => lit.push('%'),
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
pub fn parse_action(words: &[String], request: bool) -> Result<HeaderAction, String> {
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

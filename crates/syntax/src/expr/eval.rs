//! Evaluation, after `ap_expr_eval`, `ap_expr_eval_word` and
//! `ap_expr_eval_comp` in `server/util_expr_eval.c`.

use super::funcs;
use super::parser::{BinaryOp, CmpOp, Cond, List, StrFunc, UnaryOp, Var, Word};
use super::{Context, EvalError, FileTest, Outcome};

/// `AP_EXPR_MAX_RECURSION`: Apache counts nested `ap_expr_eval` and
/// `ap_expr_eval_word` calls and fails the evaluation past this depth.
/// `||`/`&&` chains and `!` are walked in a loop and do not count per
/// element, exactly as there.
const MAX_RECURSION: usize = 20;

/// `MODULE_MAGIC_NUMBER_MAJOR` of httpd 2.4, for `%{API_VERSION}`.
const API_VERSION: &str = "20120211";

struct Eval<'a> {
    ctx: &'a mut dyn Context,
    level: usize,
    /// `re_source`/`re_pmatch`: `None` when no regex with groups has
    /// matched (or the last such regex failed).
    captures: Option<Vec<Option<String>>>,
}

pub(crate) fn eval_bool(root: &Cond, ctx: &mut dyn Context) -> Result<Outcome, EvalError> {
    let mut ev = Eval {
        ctx,
        level: 0,
        captures: None,
    };
    let value = ev.cond(root)?;
    Ok(Outcome {
        value,
        captures: ev.captures.unwrap_or_default(),
    })
}

pub(crate) fn eval_string(root: &Word, ctx: &mut dyn Context) -> Result<String, EvalError> {
    let mut ev = Eval {
        ctx,
        level: 0,
        captures: None,
    };
    ev.word(root)
}

/// Fallbacks for `misc_var_fn` variables the engine does not provide.
fn misc_var(name: &str) -> Option<String> {
    let now = chrono::Local::now();
    let fmt = match name {
        "TIME_YEAR" => "%Y",
        "TIME_MON" => "%m",
        "TIME_DAY" => "%d",
        "TIME_HOUR" => "%H",
        "TIME_MIN" => "%M",
        "TIME_SEC" => "%S",
        "TIME_WDAY" => "%w",
        "TIME" => "%Y%m%d%H%M%S",
        "API_VERSION" => return Some(API_VERSION.to_string()),
        _ => return None,
    };
    Some(now.format(fmt).to_string())
}

impl Eval<'_> {
    /// `inc_rec`
    fn enter(&mut self) -> Result<(), EvalError> {
        if self.level < MAX_RECURSION {
            self.level += 1;
            Ok(())
        } else {
            Err(EvalError::new("recursion limit reached"))
        }
    }

    fn leave(&mut self) {
        self.level = self.level.saturating_sub(1);
    }

    /// `ap_expr_eval`: one frame walks `!` and the spine of `||`/`&&`
    /// chains; only the chain's operands before the last recurse.
    fn cond(&mut self, root: &Cond) -> Result<bool, EvalError> {
        self.enter()?;
        let mut flip = false;
        let mut node = root;
        let value = 'frame: loop {
            match node {
                Cond::True => break true,
                Cond::False => break false,
                Cond::Not(inner) => {
                    flip = !flip;
                    node = inner;
                }
                Cond::Or(items) => {
                    let Some((last, rest)) = items.split_last() else {
                        break false;
                    };
                    for item in rest {
                        if self.cond(item)? {
                            break 'frame true;
                        }
                    }
                    node = last;
                }
                Cond::And(items) => {
                    let Some((last, rest)) = items.split_last() else {
                        break true;
                    };
                    for item in rest {
                        if !self.cond(item)? {
                            break 'frame false;
                        }
                    }
                    node = last;
                }
                _ => break self.comp(node)?,
            }
        };
        self.leave();
        Ok(value != flip)
    }

    /// Comparisons, `-in`, regexes and operator calls.
    fn comp(&mut self, node: &Cond) -> Result<bool, EvalError> {
        Ok(match node {
            Cond::Cmp(op, a, b) => {
                let x = self.word(a)?;
                let y = self.word(b)?;
                match op {
                    // intstrcmp
                    CmpOp::Eq => htgate_util::atoi(&x) == htgate_util::atoi(&y),
                    CmpOp::Ne => htgate_util::atoi(&x) != htgate_util::atoi(&y),
                    CmpOp::Lt => htgate_util::atoi(&x) < htgate_util::atoi(&y),
                    CmpOp::Le => htgate_util::atoi(&x) <= htgate_util::atoi(&y),
                    CmpOp::Gt => htgate_util::atoi(&x) > htgate_util::atoi(&y),
                    CmpOp::Ge => htgate_util::atoi(&x) >= htgate_util::atoi(&y),
                    // strcmp: byte order
                    CmpOp::StrEq => x == y,
                    CmpOp::StrNe => x != y,
                    CmpOp::StrLt => x.as_bytes() < y.as_bytes(),
                    CmpOp::StrLe => x.as_bytes() <= y.as_bytes(),
                    CmpOp::StrGt => x.as_bytes() > y.as_bytes(),
                    CmpOp::StrGe => x.as_bytes() >= y.as_bytes(),
                }
            }
            Cond::In(w, list) => {
                let needle = self.word(w)?;
                match list {
                    List::Words(words) => {
                        for item in words {
                            if self.word(item)? == needle {
                                return Ok(true);
                            }
                        }
                        false
                    }
                    List::PeerExtList(arg) => {
                        self.word(arg)?;
                        false
                    }
                }
            }
            Cond::Match { word, re, negate } => {
                let s = self.word(word)?;
                // "$0 ... $9 may contain stuff the user wants to keep.
                // Therefore we only set them if there are capturing parens
                // in the regex." A failed match with parens clears them.
                let matched = if re.groups() > 0 {
                    self.captures = re.captures(&s);
                    self.captures.is_some()
                } else {
                    re.is_match(&s)
                };
                matched != *negate
            }
            Cond::Unary(op, w) => {
                let s = self.word(w)?;
                match op {
                    UnaryOp::NonEmpty => !s.is_empty(),
                    UnaryOp::Empty => s.is_empty(),
                    UnaryOp::RemoteIp(subnet) => {
                        self.ctx.remote_ip().is_some_and(|ip| subnet.contains(ip))
                    }
                    UnaryOp::True => funcs::op_t(&s),
                    // apr_stat("") fails: never ask about an empty path
                    UnaryOp::File(test) => !s.is_empty() && self.ctx.file_test(*test, &s),
                    UnaryOp::FileSubreq => !s.is_empty() && self.ctx.file_test(FileTest::File, &s),
                    UnaryOp::Url => self.ctx.url_accessible(&s),
                }
            }
            Cond::Binary(op, a, b) => {
                let x = self.word(a)?;
                let y = self.word(b)?;
                match op {
                    BinaryOp::Ip(subnet) => {
                        funcs::parse_ip(&x).is_some_and(|ip| subnet.contains(ip))
                    }
                    BinaryOp::Fn => funcs::wildcard_match(&y, &x, true, false),
                    BinaryOp::Str => funcs::wildcard_match(&y, &x, false, false),
                    BinaryOp::StrC => funcs::wildcard_match(&y, &x, false, true),
                }
            }
            Cond::True | Cond::False | Cond::Not(_) | Cond::And(_) | Cond::Or(_) => {
                self.cond(node)?
            }
        })
    }

    /// `ap_expr_eval_word`; unset values are the empty string.
    fn word(&mut self, w: &Word) -> Result<String, EvalError> {
        self.enter()?;
        let value = match w {
            Word::Str(s) | Word::Digit(s) => s.clone(),
            Word::Var(v) => self.var(v),
            Word::Backref(n) => self
                .captures
                .as_ref()
                .and_then(|c| c.get(usize::from(*n)))
                .and_then(Clone::clone)
                .unwrap_or_default(),
            Word::Func(f, arg) => {
                let a = self.word(arg)?;
                self.func(*f, &a)?
            }
            Word::Concat(parts) => {
                let mut out = String::new();
                for p in parts {
                    out.push_str(&self.word(p)?);
                }
                out
            }
        };
        self.leave();
        Ok(value)
    }

    fn var(&mut self, v: &Var) -> String {
        match v {
            Var::Request(name) => self.ctx.var(name).or_else(|| misc_var(name)),
            // req_header_var_fn: no Vary for Host (RFC 7231 7.1.4)
            Var::Header(h) => self.ctx.req_header(h, *h != "Host"),
            Var::Ssl(name) => self.ctx.var(name),
        }
        .unwrap_or_default()
    }

    fn func(&mut self, f: StrFunc, a: &str) -> Result<String, EvalError> {
        let value = match f {
            // Never expose the server's environment to customers.
            StrFunc::Osenv => None,
            // env_func: notes, then subprocess_env, then (not here) getenv
            StrFunc::Env => match self.ctx.note(a) {
                Some(v) => Some(v),
                None => self.ctx.env(a),
            },
            StrFunc::Resp => self.ctx.resp_header(a),
            StrFunc::Req | StrFunc::Http => {
                let vary = !a.eq_ignore_ascii_case("host");
                self.ctx.req_header(a, vary)
            }
            StrFunc::ReqNovary => self.ctx.req_header(a, false),
            StrFunc::Note => self.ctx.note(a),
            StrFunc::Reqenv => self.ctx.env(a),
            StrFunc::Tolower => Some(a.to_ascii_lowercase()),
            StrFunc::Toupper => Some(a.to_ascii_uppercase()),
            StrFunc::Escape => Some(funcs::escape(a)),
            StrFunc::Unescape => Some(funcs::unescape(a)),
            StrFunc::Base64 => Some(funcs::base64(a)),
            StrFunc::Unbase64 => Some(funcs::unbase64(a)),
            StrFunc::Sha1 => Some(funcs::sha1_hex(a)),
            StrFunc::Md5 => Some(funcs::md5_hex(a)),
            StrFunc::Ldap => Some(funcs::ldap(a)),
            StrFunc::File => return Err(EvalError::new("file() is not allowed")),
            // filesize_func: the size of a non-empty regular file, else 0
            StrFunc::Filesize => Some(
                (!a.is_empty())
                    .then(|| self.ctx.file_size(a))
                    .flatten()
                    .filter(|&n| n > 0)
                    .unwrap_or(0)
                    .to_string(),
            ),
            StrFunc::Filemod => Some("0".to_string()),
            // mod_ssl's SSL(name): an SSL variable by name
            StrFunc::Ssl => self.ctx.var(a),
        };
        Ok(value.unwrap_or_default())
    }
}

//! Apache's `ap_expr` expression language, as httpd 2.4 implements it.
//!
//! Used by `<If>`/`<ElseIf>`, `RewriteCond expr`, `Require expr`,
//! `Header ... expr=` and `SetEnvIfExpr`. The lexer mirrors the flex scanner
//! of `server/util_expr_scan.l` (its start states, longest-match rules and
//! error messages), the parser mirrors the bison grammar of
//! `server/util_expr_parse.y` (2.4 branch: no `split`/`join`/`sub`, no
//! multi-argument functions), and evaluation follows
//! `server/util_expr_eval.c` (short-circuit `&&`/`||`, `$0`..`$9` captures
//! only set by regexes that have groups, the recursion limit of
//! `AP_EXPR_MAX_RECURSION`).
//!
//! Parsing happens once (when the `.htaccess` is compiled): unknown
//! variables, functions and operators, bad regexes and bad subnets are parse
//! errors, just as Apache rejects them at configuration time. Evaluation
//! asks the request through the [`Context`] trait.
//!
//! Deliberate differences from Apache, for shared hosting:
//! - `osenv()` (and the `osenv` step of `env()`) always yields the empty
//!   string: the server's own environment is never shown to customers.
//! - `file()` parses but fails at evaluation with "file() is not allowed"
//!   (customers must not read arbitrary files through expressions).
//! - `filemod()` always yields `0`; `filesize()` goes through
//!   [`Context::file_size`]; `-F` is treated as `-f`.
//! - `-ipmatch` only accepts a literal IP address on its left side (Apache
//!   would also resolve host names through DNS).

mod eval;
mod funcs;
mod lexer;
mod parser;
mod pcre;

#[cfg(test)]
mod tests;

use std::fmt;

/// Longest expression text accepted; longer input is a parse error. Apache
/// reads `.htaccess` lines of at most a few KiB, so this only guards memory.
pub(crate) const MAX_EXPR_LEN: usize = 64 * 1024;

/// Deepest nesting (parentheses, function arguments, variables inside
/// strings) the parser accepts, so hostile input cannot exhaust the stack.
pub(crate) const MAX_PARSE_DEPTH: usize = 64;

/// A parse error: what went wrong and where (byte offset into the text).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExprError {
    message: String,
    offset: usize,
}

impl ExprError {
    pub(crate) fn new(message: impl Into<String>, offset: usize) -> Self {
        ExprError {
            message: message.into(),
            offset,
        }
    }

    /// Byte offset in the expression text where the error was found.
    pub fn offset(&self) -> usize {
        self.offset
    }

    /// The message without the offset.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ExprError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} at offset {}", self.message, self.offset)
    }
}

impl std::error::Error for ExprError {}

/// An evaluation error. Apache logs it and treats the expression as false
/// (or, for string expressions, as failed); callers should do the same.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EvalError {
    message: String,
}

impl EvalError {
    pub(crate) fn new(message: impl Into<String>) -> Self {
        EvalError {
            message: message.into(),
        }
    }

    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for EvalError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EvalError {}

/// The unary file tests (`op_file_min`, `op_file_link`, `op_file_xbit` in
/// util_expr_eval.c).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FileTest {
    /// `-d`: is a directory
    Dir,
    /// `-e`: exists
    Exists,
    /// `-f`: is a regular file (also used for `-F`)
    File,
    /// `-s`: is a regular file with size > 0
    NonEmpty,
    /// `-L`, `-h`: is a symbolic link
    Symlink,
    /// `-x`: has an execute bit set
    Executable,
}

/// Everything the expression can ask about the request; implemented by the
/// engine.
pub trait Context {
    /// `%{NAME}` server/request variables (REQUEST_URI, HTTPS, REMOTE_ADDR,
    /// TIME_YEAR, SSL_*, ...), called with the canonical upper-case name.
    /// `None` if unknown or unset (evaluates to the empty string). The seven
    /// `HTTP_*` variables Apache knows go to [`Context::req_header`]
    /// instead. `TIME*` and `API_VERSION` fall back to a local computation
    /// when this returns `None`.
    fn var(&mut self, name: &str) -> Option<String>;
    /// A request header (case-insensitive name). `vary` is true for
    /// `req()`/`http()`/`%{HTTP_*}`: the engine then adds the name to
    /// `Vary`. As in Apache, `Host` is never passed with `vary` set.
    fn req_header(&mut self, name: &str, vary: bool) -> Option<String>;
    /// A response header (`headers_out`, then `err_headers_out`).
    fn resp_header(&mut self, name: &str) -> Option<String>;
    /// A request environment variable (`reqenv()`, second step of `env()`).
    fn env(&mut self, name: &str) -> Option<String>;
    /// A request note (`note()`, first step of `env()`).
    fn note(&mut self, name: &str) -> Option<String>;
    fn file_test(&mut self, test: FileTest, path: &str) -> bool;
    /// Size of a regular file, `None` if it is not one.
    fn file_size(&mut self, path: &str) -> Option<u64>;
    /// `-U` / `-A` (URL subrequest) tests: true if the URL would be
    /// accessible.
    fn url_accessible(&mut self, url: &str) -> bool;
    /// The client address (`useragent_addr`), for `-R`.
    fn remote_ip(&mut self) -> Option<std::net::IpAddr>;
}

/// The result of a boolean evaluation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome {
    pub value: bool,
    /// `$0`..`$9` as they stand at the end of evaluation: set by the last
    /// `=~`/`!~` whose regex has capture groups and that matched (entries
    /// for groups that did not take part are `None`); empty if there was
    /// none, or if a later such regex failed to match (Apache then clears
    /// `re_source`). Regexes without groups leave earlier captures alone.
    pub captures: Vec<Option<String>>,
}

/// A parsed boolean expression. Built once, evaluated many times.
#[derive(Debug, Clone)]
pub struct Expr {
    root: parser::Cond,
}

/// A parsed string expression (ap_expr "string" mode, e.g.
/// `%{REQUEST_URI}`, `foo-%{tolower:%{HTTP_HOST}}`).
#[derive(Debug, Clone)]
pub struct StringExpr {
    root: parser::Word,
}

/// Parses a boolean expression (`<If "...">`, `RewriteCond expr`, ...).
pub fn parse_bool(text: &str) -> Result<Expr, ExprError> {
    let root = parser::parse_bool(text)?;
    Ok(Expr { root })
}

/// Parses a string expression (`Header set X "expr=..."` values and other
/// string-valued uses).
pub fn parse_string(text: &str) -> Result<StringExpr, ExprError> {
    let root = parser::parse_string(text)?;
    Ok(StringExpr { root })
}

impl Expr {
    /// Evaluates the expression for one request.
    pub fn eval(&self, ctx: &mut dyn Context) -> Result<Outcome, EvalError> {
        eval::eval_bool(&self.root, ctx)
    }
}

impl StringExpr {
    /// Evaluates the string for one request.
    pub fn eval(&self, ctx: &mut dyn Context) -> Result<String, EvalError> {
        eval::eval_string(&self.root, ctx)
    }
}

// The engine shares compiled programs between threads.
const _: () = {
    const fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Expr>();
    assert_send_sync::<StringExpr>();
};

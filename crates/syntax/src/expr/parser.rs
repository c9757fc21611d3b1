//! The grammar of `server/util_expr_parse.y` (2.4 branch) as a recursive
//! descent parser, and the name lookups Apache does while reducing
//! (`core_expr_lookup`, `ssl_expr_lookup`, `expr_lookup_not_found`), which
//! turn unknown names into parse errors.
//!
//! Grammar (2.4):
//! ```text
//! expr       : true | false | '!' expr | expr '||' expr | expr '&&' expr
//!            | comparison | UNARY word | word BINARY word | '(' expr ')'
//! comparison : word (== != < <= > >= -eq -ne -lt -le -gt -ge) word
//!            | word -in wordlist | word =~ regex | word !~ regex
//! wordlist   : ID '(' word ')' | '{' word (',' word)* '}'
//! word       : DIGIT | word '.' word | var | backref | ID '(' word ')'
//!            | '"' string '"' | '"' '"'
//! string     : (T_STRING | var | backref)+
//! var        : '%{' ID '}' | '%{' ID ':' string '}'
//! ```
//! Precedence (bison `%right`): `||` < `&&` < `!` < `.`.
//!
//! `||`/`&&` chains and `.` chains are kept as flat lists rather than nested
//! binary nodes: `ap_expr_eval` and `ap_expr_eval_word` walk such chains in
//! a loop, and flat lists keep drop and evaluation free of deep recursion.

use super::funcs::Subnet;
use super::lexer::{tokenize, Tok, Token};
use super::pcre::Pcre;
use super::{ExprError, FileTest, MAX_PARSE_DEPTH};

/// A word (string-valued node).
#[derive(Debug, Clone)]
pub(super) enum Word {
    /// `op_String`: a literal (quoted string or string piece)
    Str(String),
    /// `op_Digit`
    Digit(String),
    /// `op_Concat` chain
    Concat(Vec<Word>),
    Var(Var),
    /// `$0`..`$9`
    Backref(u8),
    /// `name(arg)` or `%{name:arg}`
    Func(StrFunc, Box<Word>),
}

/// A `%{NAME}` variable, resolved at parse time.
#[derive(Debug, Clone)]
pub(crate) enum Var {
    /// request, connection and misc variables: `Context::var`
    Request(&'static str),
    /// the seven `HTTP_*` variables: `Context::req_header`
    Header(&'static str),
    /// mod_ssl's `SSL_*` variables: `Context::var`
    Ssl(String),
}

/// String functions (`string_func_providers` plus mod_ssl's `SSL`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StrFunc {
    Osenv,
    Env,
    Resp,
    Req,
    Http,
    Note,
    Reqenv,
    ReqNovary,
    Tolower,
    Toupper,
    Escape,
    Unescape,
    File,
    Filesize,
    Filemod,
    Base64,
    Unbase64,
    Sha1,
    Md5,
    Ldap,
    Ssl,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum CmpOp {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    StrEq,
    StrNe,
    StrLt,
    StrLe,
    StrGt,
    StrGe,
}

#[derive(Debug, Clone)]
pub(crate) enum List {
    /// `{ "a", "b" }`
    Words(Vec<Word>),
    /// mod_ssl's `PeerExtList(oid)`: client certificate extensions. htgate
    /// does not ask for client certificates, so the list is always empty.
    PeerExtList(Word),
}

#[derive(Debug, Clone)]
pub(crate) enum UnaryOp {
    /// `-n`
    NonEmpty,
    /// `-z`
    Empty,
    /// `-R subnet`: client address in subnet
    RemoteIp(Subnet),
    /// `-T`
    True,
    /// `-d -e -f -s -L -h -x`
    File(FileTest),
    /// `-F` (Apache: file lookup subrequest; here: `-f`)
    FileSubreq,
    /// `-U`, `-A`
    Url,
}

#[derive(Debug, Clone)]
pub(crate) enum BinaryOp {
    /// `-ipmatch`
    Ip(Subnet),
    /// `-fnmatch` (wildcards do not match `/`)
    Fn,
    /// `-strmatch`
    Str,
    /// `-strcmatch` (case-insensitive)
    StrC,
}

/// A boolean node.
#[derive(Debug, Clone)]
pub(crate) enum Cond {
    True,
    False,
    Not(Box<Cond>),
    And(Vec<Cond>),
    Or(Vec<Cond>),
    Cmp(CmpOp, Word, Word),
    In(Word, List),
    Match { word: Word, re: Pcre, negate: bool },
    Unary(UnaryOp, Word),
    Binary(BinaryOp, Word, Word),
}

/// `misc_var_names`, `request_var_names`, `conn_var_names`.
const PLAIN_VARS: &[&str] = &[
    "TIME_YEAR",
    "TIME_MON",
    "TIME_DAY",
    "TIME_HOUR",
    "TIME_MIN",
    "TIME_SEC",
    "TIME_WDAY",
    "TIME",
    "SERVER_SOFTWARE",
    "API_VERSION",
    "REQUEST_METHOD",
    "REQUEST_SCHEME",
    "REQUEST_URI",
    "REQUEST_FILENAME",
    "REMOTE_HOST",
    "REMOTE_IDENT",
    "REMOTE_USER",
    "SERVER_ADMIN",
    "SERVER_NAME",
    "SERVER_PORT",
    "SERVER_PROTOCOL",
    "SCRIPT_FILENAME",
    "PATH_INFO",
    "QUERY_STRING",
    "IS_SUBREQ",
    "DOCUMENT_ROOT",
    "AUTH_TYPE",
    "THE_REQUEST",
    "CONTENT_TYPE",
    "HANDLER",
    "REQUEST_LOG_ID",
    "SCRIPT_USER",
    "SCRIPT_GROUP",
    "DOCUMENT_URI",
    "LAST_MODIFIED",
    "CONTEXT_PREFIX",
    "CONTEXT_DOCUMENT_ROOT",
    "REQUEST_STATUS",
    "REMOTE_ADDR",
    "REMOTE_PORT",
    "HTTPS",
    "IPV6",
    "CONN_LOG_ID",
    "CONN_REMOTE_ADDR",
    "HTTP2",
];

/// `req_header_var_names` / `req_header_header_names`.
const HEADER_VARS: &[(&str, &str)] = &[
    ("HTTP_USER_AGENT", "User-Agent"),
    ("HTTP_PROXY_CONNECTION", "Proxy-Connection"),
    ("HTTP_REFERER", "Referer"),
    ("HTTP_COOKIE", "Cookie"),
    ("HTTP_FORWARDED", "Forwarded"),
    ("HTTP_HOST", "Host"),
    ("HTTP_ACCEPT", "Accept"),
];

const STR_FUNCS: &[(&str, StrFunc)] = &[
    ("osenv", StrFunc::Osenv),
    ("env", StrFunc::Env),
    ("resp", StrFunc::Resp),
    ("req", StrFunc::Req),
    ("http", StrFunc::Http),
    ("note", StrFunc::Note),
    ("reqenv", StrFunc::Reqenv),
    ("req_novary", StrFunc::ReqNovary),
    ("tolower", StrFunc::Tolower),
    ("toupper", StrFunc::Toupper),
    ("escape", StrFunc::Escape),
    ("unescape", StrFunc::Unescape),
    ("file", StrFunc::File),
    ("filesize", StrFunc::Filesize),
    ("filemod", StrFunc::Filemod),
    ("base64", StrFunc::Base64),
    ("unbase64", StrFunc::Unbase64),
    ("sha1", StrFunc::Sha1),
    ("md5", StrFunc::Md5),
    ("ldap", StrFunc::Ldap),
];

/// Variable lookup: core names are case-insensitive (`strcasecmp`), then
/// mod_ssl takes anything starting with `SSL_` (case-sensitive `strcEQn`).
fn lookup_var(name: &str, offset: usize) -> Result<Word, ExprError> {
    if let Some(v) = PLAIN_VARS.iter().find(|v| v.eq_ignore_ascii_case(name)) {
        return Ok(Word::Var(Var::Request(v)));
    }
    if let Some((_, h)) = HEADER_VARS
        .iter()
        .find(|(v, _)| v.eq_ignore_ascii_case(name))
    {
        return Ok(Word::Var(Var::Header(h)));
    }
    if name.starts_with("SSL_") {
        return Ok(Word::Var(Var::Ssl(name.to_string())));
    }
    Err(ExprError::new(
        format!("variable '{name}' does not exist"),
        offset,
    ))
}

/// String function lookup: case-insensitive for core, exact `SSL` for
/// mod_ssl.
fn lookup_func(name: &str, offset: usize) -> Result<StrFunc, ExprError> {
    if let Some((_, f)) = STR_FUNCS.iter().find(|(n, _)| n.eq_ignore_ascii_case(name)) {
        return Ok(*f);
    }
    if name == "SSL" {
        return Ok(StrFunc::Ssl);
    }
    Err(ExprError::new(
        format!("function '{name}' does not exist"),
        offset,
    ))
}

/// `subnet_parse_arg`: the argument must be a literal string.
fn subnet_arg(op: &str, arg: &Word, offset: usize) -> Result<Subnet, ExprError> {
    let Word::Str(text) = arg else {
        return Err(ExprError::new(
            format!("-{op} requires subnet/netmask as constant argument"),
            offset,
        ));
    };
    Subnet::parse(text).ok_or_else(|| ExprError::new("parsing of subnet/netmask failed", offset))
}

/// Unary operator lookup (case-sensitive `strcmp`).
fn lookup_unary(name: &str, arg: &Word, offset: usize) -> Result<UnaryOp, ExprError> {
    Ok(match name {
        "n" => UnaryOp::NonEmpty,
        "z" => UnaryOp::Empty,
        "R" => UnaryOp::RemoteIp(subnet_arg(name, arg, offset)?),
        "T" => UnaryOp::True,
        "d" => UnaryOp::File(FileTest::Dir),
        "e" => UnaryOp::File(FileTest::Exists),
        "f" => UnaryOp::File(FileTest::File),
        "s" => UnaryOp::File(FileTest::NonEmpty),
        "L" | "h" => UnaryOp::File(FileTest::Symlink),
        "x" => UnaryOp::File(FileTest::Executable),
        "F" => UnaryOp::FileSubreq,
        "U" | "A" => UnaryOp::Url,
        _ => {
            return Err(ExprError::new(
                format!("unary operator '-{name}' does not exist"),
                offset,
            ))
        }
    })
}

/// Binary operator lookup (case-insensitive `strcasecmp`).
fn lookup_binary(name: &str, arg2: &Word, offset: usize) -> Result<BinaryOp, ExprError> {
    let lower = name.to_ascii_lowercase();
    Ok(match lower.as_str() {
        "ipmatch" => BinaryOp::Ip(subnet_arg(name, arg2, offset)?),
        "fnmatch" => BinaryOp::Fn,
        "strmatch" => BinaryOp::Str,
        "strcmatch" => BinaryOp::StrC,
        _ => {
            return Err(ExprError::new(
                format!("binary operator '-{name}' does not exist"),
                offset,
            ))
        }
    })
}

struct Parser {
    toks: Vec<Token>,
    pos: usize,
    depth: usize,
}

pub(crate) fn parse_bool(text: &str) -> Result<Cond, ExprError> {
    let mut p = Parser {
        toks: tokenize(text, false),
        pos: 0,
        depth: 0,
    };
    let cond = p.parse_or()?;
    p.expect_eof()?;
    Ok(cond)
}

pub(crate) fn parse_string(text: &str) -> Result<Word, ExprError> {
    let mut p = Parser {
        toks: tokenize(text, true),
        pos: 0,
        depth: 0,
    };
    let word = p.parse_string_parts()?;
    p.expect_eof()?;
    Ok(word)
}

/// Builds a concatenation, flattening nested chains (as the loops in
/// `ap_expr_eval_word` do).
fn concat(parts: Vec<Word>) -> Word {
    if parts.len() == 1 {
        if let Some(only) = parts.into_iter().next() {
            return only;
        }
        return Word::Str(String::new());
    }
    let mut flat = Vec::with_capacity(parts.len());
    for p in parts {
        match p {
            Word::Concat(inner) => flat.extend(inner),
            other => flat.push(other),
        }
    }
    Word::Concat(flat)
}

impl Parser {
    fn peek(&self) -> &Tok {
        // tokenize always ends with Eof or Error; stay on it.
        match self.toks.get(self.pos).or_else(|| self.toks.last()) {
            Some(t) => &t.tok,
            None => &Tok::Eof,
        }
    }

    fn offset(&self) -> usize {
        self.toks
            .get(self.pos)
            .or_else(|| self.toks.last())
            .map_or(0, |t| t.offset)
    }

    fn bump(&mut self) -> Tok {
        let t = self.peek().clone();
        if self.pos < self.toks.len() {
            self.pos += 1;
        }
        t
    }

    /// The error for the current token: the scanner's own message if it is
    /// an error token, else a bison-style syntax error.
    fn unexpected(&self, expecting: &str) -> ExprError {
        let at = self.offset();
        match self.peek() {
            Tok::Error(msg) => ExprError::new(msg.clone(), at),
            other => {
                let mut m = format!("syntax error, unexpected {}", other.describe());
                if !expecting.is_empty() {
                    m.push_str(", expecting ");
                    m.push_str(expecting);
                }
                ExprError::new(m, at)
            }
        }
    }

    fn expect(&mut self, want: &Tok, what: &str) -> Result<(), ExprError> {
        if self.peek() == want {
            self.bump();
            Ok(())
        } else {
            Err(self.unexpected(what))
        }
    }

    fn expect_eof(&mut self) -> Result<(), ExprError> {
        if *self.peek() == Tok::Eof {
            Ok(())
        } else {
            Err(self.unexpected(""))
        }
    }

    fn enter(&mut self) -> Result<(), ExprError> {
        self.depth += 1;
        if self.depth > MAX_PARSE_DEPTH {
            return Err(ExprError::new(
                "expression nested too deeply",
                self.offset(),
            ));
        }
        Ok(())
    }

    fn leave(&mut self) {
        self.depth = self.depth.saturating_sub(1);
    }

    fn parse_or(&mut self) -> Result<Cond, ExprError> {
        let mut items = vec![self.parse_and()?];
        while *self.peek() == Tok::Or {
            self.bump();
            items.push(self.parse_and()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Cond::False)
        } else {
            Cond::Or(items)
        })
    }

    fn parse_and(&mut self) -> Result<Cond, ExprError> {
        let mut items = vec![self.parse_not()?];
        while *self.peek() == Tok::And {
            self.bump();
            items.push(self.parse_not()?);
        }
        Ok(if items.len() == 1 {
            items.pop().unwrap_or(Cond::False)
        } else {
            Cond::And(items)
        })
    }

    /// `'!' expr` binds tighter than `&&`; an even number of `!` cancels
    /// (op_Not only flips the result in the same evaluation frame).
    fn parse_not(&mut self) -> Result<Cond, ExprError> {
        let mut nots = 0usize;
        while *self.peek() == Tok::Not {
            self.bump();
            nots += 1;
        }
        let inner = self.parse_primary()?;
        Ok(if nots % 2 == 1 {
            Cond::Not(Box::new(inner))
        } else {
            inner
        })
    }

    fn parse_primary(&mut self) -> Result<Cond, ExprError> {
        let at = self.offset();
        match self.peek().clone() {
            Tok::True => {
                self.bump();
                Ok(Cond::True)
            }
            Tok::False => {
                self.bump();
                Ok(Cond::False)
            }
            Tok::LParen => {
                self.bump();
                self.enter()?;
                let inner = self.parse_or()?;
                self.expect(&Tok::RParen, "')'")?;
                self.leave();
                Ok(inner)
            }
            Tok::Unary(name) => {
                self.bump();
                let arg = self.parse_word()?;
                let op = lookup_unary(&name, &arg, at)?;
                Ok(Cond::Unary(op, arg))
            }
            Tok::Error(_) | Tok::Eof => Err(self.unexpected("")),
            _ => self.parse_comparison(),
        }
    }

    fn parse_comparison(&mut self) -> Result<Cond, ExprError> {
        let left = self.parse_word()?;
        let at = self.offset();
        let cmp = match self.peek() {
            Tok::Eq => Some(CmpOp::Eq),
            Tok::Ne => Some(CmpOp::Ne),
            Tok::Lt => Some(CmpOp::Lt),
            Tok::Le => Some(CmpOp::Le),
            Tok::Gt => Some(CmpOp::Gt),
            Tok::Ge => Some(CmpOp::Ge),
            Tok::StrEq => Some(CmpOp::StrEq),
            Tok::StrNe => Some(CmpOp::StrNe),
            Tok::StrLt => Some(CmpOp::StrLt),
            Tok::StrLe => Some(CmpOp::StrLe),
            Tok::StrGt => Some(CmpOp::StrGt),
            Tok::StrGe => Some(CmpOp::StrGe),
            _ => None,
        };
        if let Some(op) = cmp {
            self.bump();
            let right = self.parse_word()?;
            return Ok(Cond::Cmp(op, left, right));
        }
        match self.peek().clone() {
            Tok::In => {
                self.bump();
                let list = self.parse_list()?;
                Ok(Cond::In(left, list))
            }
            tok @ (Tok::Reg | Tok::Nre) => {
                self.bump();
                let re_at = self.offset();
                let Tok::Regex { pattern, icase } = self.peek().clone() else {
                    return Err(self.unexpected("regular expression"));
                };
                self.bump();
                let re = Pcre::new(&pattern, icase)
                    .map_err(|()| ExprError::new("failed to compile regular expression", re_at))?;
                Ok(Cond::Match {
                    word: left,
                    re,
                    negate: tok == Tok::Nre,
                })
            }
            Tok::Binary(name) => {
                self.bump();
                let right = self.parse_word()?;
                let op = lookup_binary(&name, &right, at)?;
                Ok(Cond::Binary(op, left, right))
            }
            _ => Err(self.unexpected("an operator")),
        }
    }

    fn parse_list(&mut self) -> Result<List, ExprError> {
        let at = self.offset();
        match self.peek().clone() {
            Tok::LBrace => {
                self.bump();
                let mut words = vec![self.parse_word()?];
                while *self.peek() == Tok::Comma {
                    self.bump();
                    words.push(self.parse_word()?);
                }
                self.expect(&Tok::RBrace, "'}'")?;
                Ok(List::Words(words))
            }
            Tok::Id(name) => {
                self.bump();
                self.expect(&Tok::LParen, "'('")?;
                let arg = self.parse_word()?;
                self.expect(&Tok::RParen, "')'")?;
                // core registers no list functions; mod_ssl has PeerExtList
                // (case-sensitive strcEQ).
                if name == "PeerExtList" {
                    Ok(List::PeerExtList(arg))
                } else {
                    Err(ExprError::new(
                        format!("list-returning function '{name}' does not exist"),
                        at,
                    ))
                }
            }
            _ => Err(self.unexpected("'{' or a list function")),
        }
    }

    /// `word ('.' word)*`
    fn parse_word(&mut self) -> Result<Word, ExprError> {
        self.enter()?;
        let mut parts = vec![self.parse_word_primary()?];
        while *self.peek() == Tok::Concat {
            self.bump();
            parts.push(self.parse_word_primary()?);
        }
        self.leave();
        Ok(concat(parts))
    }

    fn parse_word_primary(&mut self) -> Result<Word, ExprError> {
        let at = self.offset();
        match self.peek().clone() {
            Tok::Digit(d) => {
                self.bump();
                Ok(Word::Digit(d))
            }
            Tok::StrBegin => {
                self.bump();
                if *self.peek() == Tok::StrEnd {
                    self.bump();
                    return Ok(Word::Str(String::new()));
                }
                let w = self.parse_string_parts()?;
                self.expect(&Tok::StrEnd, "end of string")?;
                Ok(w)
            }
            Tok::VarBegin => self.parse_var(),
            Tok::Backref(n) => {
                self.bump();
                Ok(Word::Backref(n))
            }
            Tok::Id(name) => {
                self.bump();
                self.expect(&Tok::LParen, "'('")?;
                let arg = self.parse_word()?;
                self.expect(&Tok::RParen, "')'")?;
                let f = lookup_func(&name, at)?;
                Ok(Word::Func(f, Box::new(arg)))
            }
            _ => Err(self.unexpected("a word")),
        }
    }

    /// `string : (T_STRING | var | backref)+`, left-assoc concatenation.
    fn parse_string_parts(&mut self) -> Result<Word, ExprError> {
        let mut parts = Vec::new();
        loop {
            match self.peek().clone() {
                Tok::Str(s) => {
                    self.bump();
                    parts.push(Word::Str(s));
                }
                Tok::VarBegin => parts.push(self.parse_var()?),
                Tok::Backref(n) => {
                    self.bump();
                    parts.push(Word::Backref(n));
                }
                _ => break,
            }
        }
        if parts.is_empty() {
            return Err(self.unexpected("a string"));
        }
        Ok(concat(parts))
    }

    /// `'%{' ID '}'` or `'%{' ID ':' string '}'`.
    fn parse_var(&mut self) -> Result<Word, ExprError> {
        self.enter()?;
        self.expect(&Tok::VarBegin, "'%{'")?;
        let at = self.offset();
        let Tok::Id(name) = self.peek().clone() else {
            return Err(self.unexpected("a variable name"));
        };
        self.bump();
        let word = match self.peek() {
            Tok::VarEnd => {
                self.bump();
                lookup_var(&name, at)?
            }
            Tok::VarColon => {
                self.bump();
                let arg = self.parse_string_parts()?;
                self.expect(&Tok::VarEnd, "'}'")?;
                let f = lookup_func(&name, at)?;
                Word::Func(f, Box::new(arg))
            }
            _ => return Err(self.unexpected("'}' or ':'")),
        };
        self.leave();
        Ok(word)
    }
}

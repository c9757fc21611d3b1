//! The scanner of `server/util_expr_scan.l` (2.4), rule for rule.
//!
//! flex picks the longest match and, on a tie, the earliest rule; the
//! hand-written dispatch below reproduces that for every state. The scanner
//! does not depend on the parser, so the whole input is tokenized up front;
//! a scanner error becomes a final [`Tok::Error`] token, reported only if
//! the parser gets that far (as bison would only then see `T_ERROR`).

use super::MAX_EXPR_LEN;

/// `MAX_STRING_LEN`: the size of the scanner's string and regex buffers.
const MAX_STRING_LEN: usize = 8192;

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    True,
    False,
    Not,
    And,
    Or,
    /// `-?[0-9]+`
    Digit(String),
    /// `[a-zA-Z][a-zA-Z0-9_]*`
    Id(String),
    StrBegin,
    StrEnd,
    /// T_STRING: a literal piece of a string or function argument
    Str(String),
    VarBegin,
    VarEnd,
    /// `:` inside `%{...}` (starts a function argument)
    VarColon,
    /// `$0`..`$9`
    Backref(u8),
    /// T_REGEX / T_REGEX_I
    Regex {
        pattern: String,
        icase: bool,
    },
    /// `-x`
    Unary(String),
    /// `-name`
    Binary(String),
    // comparison operators
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
    Reg,
    Nre,
    In,
    Concat,
    LParen,
    RParen,
    LBrace,
    RBrace,
    Comma,
    /// `:` outside a variable: the grammar has no use for it
    Colon,
    Error(String),
    Eof,
}

impl Tok {
    /// How error messages name the token.
    pub(crate) fn describe(&self) -> String {
        match self {
            Tok::True => "'true'".into(),
            Tok::False => "'false'".into(),
            Tok::Not => "'!'".into(),
            Tok::And => "'&&'".into(),
            Tok::Or => "'||'".into(),
            Tok::Digit(d) => format!("number {d}"),
            Tok::Id(s) => format!("identifier '{s}'"),
            Tok::StrBegin => "start of string".into(),
            Tok::StrEnd => "end of string".into(),
            Tok::Str(_) => "string".into(),
            Tok::VarBegin => "'%{'".into(),
            Tok::VarEnd => "'}'".into(),
            Tok::VarColon | Tok::Colon => "':'".into(),
            Tok::Backref(n) => format!("'${n}'"),
            Tok::Regex { .. } => "regular expression".into(),
            Tok::Unary(s) => format!("unary operator '-{s}'"),
            Tok::Binary(s) => format!("binary operator '-{s}'"),
            Tok::Eq => "'-eq'".into(),
            Tok::Ne => "'-ne'".into(),
            Tok::Lt => "'-lt'".into(),
            Tok::Le => "'-le'".into(),
            Tok::Gt => "'-gt'".into(),
            Tok::Ge => "'-ge'".into(),
            Tok::StrEq => "'=='".into(),
            Tok::StrNe => "'!='".into(),
            Tok::StrLt => "'<'".into(),
            Tok::StrLe => "'<='".into(),
            Tok::StrGt => "'>'".into(),
            Tok::StrGe => "'>='".into(),
            Tok::Reg => "'=~'".into(),
            Tok::Nre => "'!~'".into(),
            Tok::In => "'-in'".into(),
            Tok::Concat => "'.'".into(),
            Tok::LParen => "'('".into(),
            Tok::RParen => "')'".into(),
            Tok::LBrace => "'{'".into(),
            Tok::RBrace => "'}'".into(),
            Tok::Comma => "','".into(),
            Tok::Error(m) => m.clone(),
            Tok::Eof => "end of expression".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Token {
    pub tok: Tok,
    pub offset: usize,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    Initial,
    Str,
    Var,
    VarArg,
}

/// Delimiters allowed after `m` (`"m"[/#$%^,;:_\?\|\^\-\!\.\'\"]`).
fn is_m_delim(c: u8) -> bool {
    b"/#$%^,;:_?|-!.'\"".contains(&c)
}

fn is_id_start(c: u8) -> bool {
    c.is_ascii_alphabetic()
}

fn is_id_char(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Renders the offending byte like `"Parse error near '%c'"` does.
fn char_at(input: &str, pos: usize) -> String {
    input
        .get(pos..)
        .and_then(|s| s.chars().next())
        .map(|c| c.to_string())
        .unwrap_or_else(|| format!("\\x{:02x}", input.as_bytes().get(pos).copied().unwrap_or(0)))
}

/// A string piece as `apr_pstrdup` would copy it: up to the first NUL
/// (an escaped `\0` ends the C string).
fn finish_piece(buf: &[u8]) -> String {
    let end = buf.iter().position(|&b| b == 0).unwrap_or(buf.len());
    String::from_utf8_lossy(&buf[..end]).into_owned()
}

struct Lexer<'a> {
    text: &'a str,
    s: &'a [u8],
    pos: usize,
    state: State,
    /// `yy_push_state` stack
    stack: Vec<State>,
    /// `scan_buf` (shared by all string states, as in Apache)
    buf: Vec<u8>,
    buf_start: usize,
    /// `scan_del`: the quote that ends the current string (0 in string mode)
    del: u8,
    string_mode: bool,
    out: Vec<Token>,
}

/// Tokenizes `text`. `string_mode` is `AP_EXPR_FLAG_STRING_RESULT`: the
/// scanner then starts inside an (unquoted) string that ends at the end of
/// the input.
pub(crate) fn tokenize(text: &str, string_mode: bool) -> Vec<Token> {
    let mut lx = Lexer {
        text,
        s: text.as_bytes(),
        pos: 0,
        state: if string_mode {
            State::Str
        } else {
            State::Initial
        },
        stack: Vec::new(),
        buf: Vec::new(),
        buf_start: 0,
        del: 0,
        string_mode,
        out: Vec::new(),
    };
    if text.len() > MAX_EXPR_LEN {
        lx.push(Tok::Error("expression too long".into()), MAX_EXPR_LEN);
        return lx.out;
    }
    lx.run();
    lx.out
}

impl Lexer<'_> {
    fn push(&mut self, tok: Tok, offset: usize) {
        self.out.push(Token { tok, offset });
    }

    fn peek(&self, ahead: usize) -> Option<u8> {
        self.s.get(self.pos + ahead).copied()
    }

    fn push_state(&mut self, st: State) {
        self.stack.push(self.state);
        self.state = st;
    }

    fn pop_state(&mut self) {
        self.state = self.stack.pop().unwrap_or(State::Initial);
    }

    /// `STR_APPEND`: fails once the buffer is full.
    fn append(&mut self, b: u8) -> Result<(), String> {
        if self.buf.is_empty() {
            self.buf_start = self.pos;
        }
        self.buf.push(b);
        if self.buf.len() >= MAX_STRING_LEN {
            return Err("string too long".into());
        }
        Ok(())
    }

    /// Emits the pending string piece (`return T_STRING` after `yyless(0)`).
    fn flush(&mut self) {
        let piece = finish_piece(&self.buf);
        let at = if self.buf.is_empty() {
            self.pos
        } else {
            self.buf_start
        };
        self.buf.clear();
        self.push(Tok::Str(piece), at);
    }

    fn run(&mut self) {
        loop {
            let step = match self.state {
                State::Initial => self.scan_initial(),
                State::Str | State::VarArg => self.scan_string(),
                State::Var => self.scan_var(),
            };
            match step {
                Ok(true) => continue,
                Ok(false) => {
                    self.push(Tok::Eof, self.s.len());
                    return;
                }
                Err((msg, at)) => {
                    self.push(Tok::Error(msg), at);
                    return;
                }
            }
        }
    }

    /// INITIAL state. Returns Ok(false) at the end of input.
    fn scan_initial(&mut self) -> Result<bool, (String, usize)> {
        let start = self.pos;
        let Some(c) = self.peek(0) else {
            return Ok(false);
        };
        let next = self.peek(1);
        let tok = match c {
            b' ' | b'\t' | b'\n' => {
                while matches!(self.peek(0), Some(b' ' | b'\t' | b'\n')) {
                    self.pos += 1;
                }
                return Ok(true);
            }
            b'"' | b'\'' => {
                self.buf.clear();
                self.del = c;
                self.state = State::Str;
                self.pos += 1;
                self.push(Tok::StrBegin, start);
                return Ok(true);
            }
            b'%' if next == Some(b'{') => {
                self.pos += 2;
                self.push_state(State::Var);
                self.push(Tok::VarBegin, start);
                return Ok(true);
            }
            b'$' if next.is_some_and(|d| d.is_ascii_digit()) => {
                self.pos += 2;
                self.push(Tok::Backref(next.unwrap_or(b'0') - b'0'), start);
                return Ok(true);
            }
            b'/' => {
                self.pos += 1;
                return self.scan_regex(b'/', start).map(|()| true);
            }
            b'=' => match next {
                Some(b'~') => (Tok::Reg, 2),
                Some(b'=') => (Tok::StrEq, 2),
                _ => (Tok::StrEq, 1),
            },
            b'!' => match next {
                Some(b'=') => (Tok::StrNe, 2),
                Some(b'~') => (Tok::Nre, 2),
                _ => (Tok::Not, 1),
            },
            b'<' => match next {
                Some(b'=') => (Tok::StrLe, 2),
                _ => (Tok::StrLt, 1),
            },
            b'>' => match next {
                Some(b'=') => (Tok::StrGe, 2),
                _ => (Tok::StrGt, 1),
            },
            b'&' if next == Some(b'&') => (Tok::And, 2),
            b'|' if next == Some(b'|') => (Tok::Or, 2),
            b'.' => (Tok::Concat, 1),
            b'(' => (Tok::LParen, 1),
            b')' => (Tok::RParen, 1),
            b'{' => (Tok::LBrace, 1),
            b'}' => (Tok::RBrace, 1),
            b',' => (Tok::Comma, 1),
            b':' => (Tok::Colon, 1),
            b'-' if next.is_some_and(|d| d.is_ascii_digit()) => self.digits(start),
            b'-' if next.is_some_and(|d| d.is_ascii_alphabetic() || d == b'_') => {
                // "-"[a-zA-Z_] (unary) vs "-"[a-zA-Z_][a-zA-Z_0-9]+ (binary)
                // vs the literal "-in", "-eq", ...: longest wins, and the
                // literals come first on a tie.
                let mut end = start + 2;
                while self.s.get(end).is_some_and(|&b| is_id_char(b)) {
                    end += 1;
                }
                let name = &self.text[start + 1..end];
                let tok = if end - start == 2 {
                    Tok::Unary(name.to_string())
                } else {
                    match name {
                        "in" => Tok::In,
                        "eq" => Tok::Eq,
                        "ne" => Tok::Ne,
                        "ge" => Tok::Ge,
                        "le" => Tok::Le,
                        "gt" => Tok::Gt,
                        "lt" => Tok::Lt,
                        _ => Tok::Binary(name.to_string()),
                    }
                };
                (tok, end - start)
            }
            b'0'..=b'9' => self.digits(start),
            _ if is_id_start(c) => {
                let mut end = start + 1;
                while self.s.get(end).is_some_and(|&b| is_id_char(b)) {
                    end += 1;
                }
                let len = end - start;
                // "m"<delim> (2 chars) starts a regex unless the identifier
                // rule matches more; on a tie the regex rule is earlier.
                if c == b'm' && next.is_some_and(is_m_delim) && len <= 2 {
                    let del = next.unwrap_or(b'/');
                    self.pos += 2;
                    return self.scan_regex(del, start).map(|()| true);
                }
                let word = &self.text[start..end];
                let tok = match word {
                    "and" => Tok::And,
                    "or" => Tok::Or,
                    "not" => Tok::Not,
                    "lt" => Tok::Lt,
                    "le" => Tok::Le,
                    "gt" => Tok::Gt,
                    "ge" => Tok::Ge,
                    "ne" => Tok::Ne,
                    "eq" => Tok::Eq,
                    "in" => Tok::In,
                    "true" => Tok::True,
                    "false" => Tok::False,
                    _ => Tok::Id(word.to_string()),
                };
                (tok, len)
            }
            _ => {
                return Err((
                    format!("parse error near '{}'", char_at(self.text, start)),
                    start,
                ))
            }
        };
        self.pos += tok.1;
        self.push(tok.0, start);
        Ok(true)
    }

    fn digits(&self, start: usize) -> (Tok, usize) {
        let mut end = start;
        if self.s.get(end) == Some(&b'-') {
            end += 1;
        }
        while self.s.get(end).is_some_and(|b| b.is_ascii_digit()) {
            end += 1;
        }
        (Tok::Digit(self.text[start..end].to_string()), end - start)
    }

    /// `<regex>` and `<regex_flags>`: the pattern runs to the next
    /// delimiter (there is no escape for it); one optional `i` follows.
    fn scan_regex(&mut self, del: u8, start: usize) -> Result<(), (String, usize)> {
        let pat_start = self.pos;
        loop {
            match self.peek(0) {
                None => return Err(("unterminated regexp".into(), start)),
                Some(b) if b == del => break,
                Some(_) => {
                    self.pos += 1;
                    if self.pos - pat_start >= MAX_STRING_LEN {
                        return Err(("regexp too long".into(), start));
                    }
                }
            }
        }
        let pattern = self.text[pat_start..self.pos].to_string();
        self.pos += 1;
        let icase = self.peek(0) == Some(b'i');
        if icase {
            self.pos += 1;
        }
        self.push(Tok::Regex { pattern, icase }, start);
        Ok(())
    }

    /// `<str>` and `<vararg>`.
    fn scan_string(&mut self) -> Result<bool, (String, usize)> {
        let in_str = self.state == State::Str;
        let start = self.pos;
        let err = |m: &str| Err((m.to_string(), start));
        let Some(c) = self.peek(0) else {
            if in_str && self.string_mode {
                // <str><<EOF>> of a string expression: the final piece,
                // possibly empty.
                self.flush();
                self.state = State::Initial;
                return Ok(true);
            }
            return err("unterminated string or variable");
        };
        let next = self.peek(1);
        match c {
            b'\n' => return err("unterminated string or variable"),
            b'\\' => {
                let Some(e) = next else {
                    // no rule matches a lone trailing backslash (flex would
                    // jam and abort httpd)
                    return err("unterminated string or variable");
                };
                if e.is_ascii_digit() {
                    // \\[0-7]{1,3} vs \\[0-9]+: the longer match wins
                    let mut digits = 0;
                    while self.peek(1 + digits).is_some_and(|d| d.is_ascii_digit()) {
                        digits += 1;
                    }
                    let mut octal = 0;
                    while octal < 3
                        && self
                            .peek(1 + octal)
                            .is_some_and(|d| (b'0'..=b'7').contains(&d))
                    {
                        octal += 1;
                    }
                    if digits > octal || octal == 0 {
                        return err("bad escape sequence");
                    }
                    let value = self.s[start + 1..start + 1 + octal]
                        .iter()
                        .fold(0u32, |v, d| v * 8 + u32::from(d - b'0'));
                    if value > 0xff {
                        return err("escape sequence out of bound");
                    }
                    self.append(value as u8).map_err(|m| (m, start))?;
                    self.pos += 1 + octal;
                    return Ok(true);
                }
                let b = match e {
                    b'n' => b'\n',
                    b'r' => b'\r',
                    b't' => b'\t',
                    b'b' => 0x08,
                    b'f' => 0x0c,
                    other => other,
                };
                self.append(b).map_err(|m| (m, start))?;
                self.pos += 2;
            }
            b'$' if next.is_some_and(|d| d.is_ascii_digit()) => {
                if !self.buf.is_empty() {
                    self.flush();
                } else {
                    self.pos += 2;
                    self.push(Tok::Backref(next.unwrap_or(b'0') - b'0'), start);
                }
            }
            b'%' if next == Some(b'{') => {
                if !self.buf.is_empty() {
                    self.flush();
                } else {
                    self.pos += 2;
                    self.push_state(State::Var);
                    self.push(Tok::VarBegin, start);
                }
            }
            b'"' | b'\'' if in_str => {
                if c == self.del {
                    if !self.buf.is_empty() {
                        self.flush();
                    } else {
                        self.pos += 1;
                        self.state = State::Initial;
                        self.push(Tok::StrEnd, start);
                    }
                } else {
                    self.append(c).map_err(|m| (m, start))?;
                    self.pos += 1;
                }
            }
            b'"' | b'\'' => {
                // <vararg> has no rule for quotes: flex would jam and abort
                // httpd. Refuse the expression instead.
                return Err((
                    format!("invalid character in function argument '{}'", c as char),
                    start,
                ));
            }
            b'}' if !in_str => {
                if !self.buf.is_empty() {
                    self.flush();
                } else {
                    self.pos += 1;
                    self.pop_state();
                    self.push(Tok::VarEnd, start);
                }
            }
            b'%' | b'$' | b'}' => {
                self.append(c).map_err(|m| (m, start))?;
                self.pos += 1;
            }
            _ => {
                // [^\\\n"'%}$]+
                while let Some(b) = self.peek(0) {
                    if matches!(b, b'\\' | b'\n' | b'"' | b'\'' | b'%' | b'}' | b'$') {
                        break;
                    }
                    let at = self.pos;
                    self.append(b).map_err(|m| (m, at))?;
                    self.pos += 1;
                }
            }
        }
        Ok(true)
    }

    /// `<var>`: the name inside `%{...}`.
    fn scan_var(&mut self) -> Result<bool, (String, usize)> {
        let start = self.pos;
        let Some(c) = self.peek(0) else {
            return Err(("unterminated string or variable".into(), start));
        };
        match c {
            b'\n' => Err(("unterminated string or variable".into(), start)),
            b'}' => {
                self.pos += 1;
                self.pop_state();
                self.push(Tok::VarEnd, start);
                Ok(true)
            }
            b':' => {
                self.pos += 1;
                self.state = State::VarArg;
                self.buf.clear();
                self.push(Tok::VarColon, start);
                Ok(true)
            }
            _ if is_id_start(c) => {
                let mut end = start + 1;
                while self.s.get(end).is_some_and(|&b| is_id_char(b)) {
                    end += 1;
                }
                self.pos = end;
                self.push(Tok::Id(self.text[start..end].to_string()), start);
                Ok(true)
            }
            _ => Err((
                format!(
                    "invalid character in variable name '{}'",
                    char_at(self.text, start)
                ),
                start,
            )),
        }
    }
}

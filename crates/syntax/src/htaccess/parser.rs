//! Logical lines to the syntax tree, with nom.
//!
//! The grammar is `grammar/htaccess.ebnf`; each rule there is one small
//! function here with the same name.  The line-level rules (`word`,
//! `directive_line`, `section_open`, ...) are nom parsers over the text of
//! one logical line (see `lexer`); the file-level rules (`file`, `section`)
//! are applied by [`Builder`], which keeps the open sections on an explicit
//! stack so that no input can overflow the call stack, reports every error
//! and keeps going.
//!
//! The behaviour is Apache httpd 2.4's (`server/config.c`:
//! `ap_build_config`, `ap_build_config_sub`; `server/util.c`:
//! `ap_getword_conf`, `substring_conf`; the `<Section` handlers in
//! `server/core.c`), except that `${VAR}` is deliberately not substituted:
//! the server's environment must not leak into customer files.

use nom::branch::alt;
use nom::bytes::complete::{take_till1, take_while};
use nom::character::complete::{char, one_of, satisfy};
use nom::combinator::{cut, map, opt, recognize, rest, value, verify};
use nom::error::{ErrorKind, ParseError};
use nom::multi::{many0, many0_count};
use nom::sequence::{pair, preceded, terminated};
use nom::{Err, IResult};

use super::ast::{Arg, Directive, File, Node, Section, Span};
use super::diag::Diagnostic;
use super::lexer::{self, is_space, LogicalLine};

/// Sections nested deeper than this are refused (Apache has no limit, but
/// nothing real comes close and the tree is walked recursively later).
pub(crate) const MAX_DEPTH: usize = 64;

/// Parses a whole `.htaccess` file.  Never panics, whatever the bytes.
/// Returns the tree and every syntax error found (the file is unusable if
/// there is any error).
pub fn parse(source: &[u8]) -> (File, Vec<Diagnostic>) {
    let lexed = lexer::lex(source);
    let mut builder = Builder::default();
    for line in &lexed.lines {
        builder.line(line);
    }
    let (file, mut diagnostics) = builder.finish();
    diagnostics.extend(lexed.diagnostics);
    // Lexer and parser problems interleaved in file order.
    diagnostics.sort_by_key(|d| d.span.offset);
    (file, diagnostics)
}

// ---------------------------------------------------------------------------
// Line-level grammar (nom).
// ---------------------------------------------------------------------------

/// Why a line parser failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LineError<'a> {
    /// `<Name args` with no `>` anywhere after the tag name.
    MissingGt {
        /// The tag word as written (`<Files`).
        tag: &'a str,
        /// The tag name, without `<`.
        name: String,
        /// The argument text (trimmed), used to recover.
        args: &'a str,
    },
    /// A plain nom failure (a rule did not match).
    Nom(&'a str, ErrorKind),
}

impl<'a> ParseError<&'a str> for LineError<'a> {
    fn from_error_kind(input: &'a str, kind: ErrorKind) -> Self {
        LineError::Nom(input, kind)
    }

    fn append(_: &'a str, _: ErrorKind, other: Self) -> Self {
        other
    }
}

type Res<'a, T> = IResult<&'a str, T, LineError<'a>>;

/// A word as `ap_getword_conf` reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Word<'a> {
    /// The word as written, quotes included (a slice of the line).
    pub raw: &'a str,
    /// Quotes removed, escapes resolved.
    pub text: String,
    pub quoted: bool,
}

/// The first word of a line starts a section: `<Name args>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionOpen<'a> {
    /// The tag word as written (`<Files`, `<Files>`).
    pub tag: &'a str,
    /// The tag name: after `<`, one trailing `>` removed.
    pub name: String,
    /// The text between the tag word and the last `>`, trimmed.
    pub args: &'a str,
}

/// The first word of a line closes a section: `</Name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionClose<'a> {
    /// The tag word as written (`</Files>`).
    pub tag: &'a str,
    /// The name after `</`, one trailing `>` removed.
    pub name: String,
    /// Whether the word ended with `>`.
    pub has_gt: bool,
}

/// A directive: `Name args...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectiveLine<'a> {
    /// The name word as written.
    pub tag: &'a str,
    pub name: String,
    /// The rest of the line after the name and its blanks.
    pub args: &'a str,
}

/// What one logical line is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Line<'a> {
    Close(SectionClose<'a>),
    Open(SectionOpen<'a>),
    Directive(DirectiveLine<'a>),
    /// The first word is empty (the line starts with `""` or `''`):
    /// `ap_build_config_sub` returns without doing anything.
    Ignored,
}

/// `blanks = { blank }`: C `isspace` characters.
pub fn blanks(i: &str) -> Res<'_, &str> {
    take_while(is_space)(i)
}

/// `bare_word = non_blank { non_blank }`.  Only `\\` is an escape here
/// (`substring_conf` with no quote).
pub(crate) fn bare_word(i: &str) -> Res<'_, Word<'_>> {
    map(take_till1(is_space), |raw: &str| Word {
        raw,
        text: unescape(raw, None),
        quoted: false,
    })(i)
}

/// `quoted_body(q) = { "\" (q | "\") | any - q }`: runs to the next `q`
/// not preceded by a backslash (`ap_getword_conf`).
pub(crate) fn quoted_body(q: char) -> impl FnMut(&str) -> Res<'_, &str> {
    move |i| {
        recognize(many0_count(alt((
            recognize(pair(char('\\'), satisfy(move |c| c == q || c == '\\'))),
            recognize(satisfy(move |c| c != q)),
        ))))(i)
    }
}

/// `quoted_word = '"' quoted_body('"') ['"'] | "'" quoted_body("'") ["'"]`.
/// The closing quote may be missing at the end of the line (Apache then
/// takes everything up to the end).  A quoted word glued to following text
/// ends at the quote: `"a"b` is two words.
pub(crate) fn quoted_word(i: &str) -> Res<'_, Word<'_>> {
    let (after_quote, q) = one_of("\"'")(i)?;
    let (after_body, body) = quoted_body(q)(after_quote)?;
    let (rest, _) = opt(char(q))(after_body)?;
    let raw = &i[..i.len() - rest.len()];
    Ok((
        rest,
        Word {
            raw,
            text: unescape(body, Some(q)),
            quoted: true,
        },
    ))
}

/// `word = (quoted_word | bare_word) blanks`: one `ap_getword_conf` step.
pub fn word(i: &str) -> Res<'_, Word<'_>> {
    terminated(alt((quoted_word, bare_word)), blanks)(i)
}

/// `words = blanks { word }`: split a whole argument text.
pub fn words(i: &str) -> Res<'_, Vec<Word<'_>>> {
    preceded(blanks, many0(word))(i)
}

/// `substring_conf`: inside a word `\\` becomes `\`, and inside a quoted
/// word `\q` becomes `q`; every other backslash stays as written.
fn unescape(s: &str, quote: Option<char>) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\\' {
            if let Some(&next) = chars.peek() {
                if next == '\\' || Some(next) == quote {
                    out.push(next);
                    chars.next();
                    continue;
                }
            }
        }
        out.push(c);
    }
    out
}

/// `ap_build_config_sub` removes one trailing `>` from the first word
/// unless its second character is `/` (so `RewriteEngine> on` is
/// `RewriteEngine`, and `<Files>` is the tag `<Files`).
fn strip_gt(name: &str) -> &str {
    if name.as_bytes().get(1) == Some(&b'/') {
        return name;
    }
    name.strip_suffix('>').unwrap_or(name)
}

/// `section_close = "</" name [">"] blanks`, the remaining input being the
/// text after the tag word, which Apache ignores (`ap_build_config_sub`
/// only looks at the first word of a closing line).
pub(crate) fn section_close(i: &str) -> Res<'_, SectionClose<'_>> {
    let (rest, w) = verify(word, |w: &Word| w.text.starts_with("</"))(i)?;
    let after = &w.text[2..];
    let (name, has_gt) = match after.strip_suffix('>') {
        Some(name) => (name, true),
        None => (after, false),
    };
    Ok((
        rest,
        SectionClose {
            tag: w.raw,
            name: name.to_string(),
            has_gt,
        },
    ))
}

/// `section_args = [ any* ">" ] any*`: the argument text runs to the LAST
/// `>` on the line (every `<Section` handler does `ap_strrchr_c(arg, '>')`);
/// the remaining input is what follows it, which Apache ignores.  An empty
/// argument text is fine: `ap_build_config_sub` replaces it with `">"`.
pub(crate) fn section_args(i: &str) -> Res<'_, &str> {
    if i.is_empty() {
        return Ok((i, i));
    }
    match i.rfind('>') {
        Some(at) => Ok((&i[at + 1..], i[..at].trim_matches(is_space))),
        None => Err(Err::Error(LineError::Nom(i, ErrorKind::Char))),
    }
}

/// `section_open = "<" name [">"] blanks section_args`.  Once the tag is
/// recognised a missing `>` is a hard failure (`cut`), reported as
/// `` `<Files` directive missing closing `>` ``.
pub(crate) fn section_open(i: &str) -> Res<'_, SectionOpen<'_>> {
    let (after_tag, w) = verify(word, |w: &Word| {
        w.text.starts_with('<') && !w.text.starts_with("</")
    })(i)?;
    let name = strip_gt(&w.text)[1..].to_string();
    let (rest, args) = cut(section_args)(after_tag).map_err(|e| {
        e.map(|_| LineError::MissingGt {
            tag: w.raw,
            name: name.clone(),
            args: after_tag.trim_matches(is_space),
        })
    })?;
    Ok((
        rest,
        SectionOpen {
            tag: w.raw,
            name,
            args,
        },
    ))
}

/// `directive_line = name blanks raw_args`: everything after the name is
/// the argument text (no trailing comments: `#` is ordinary text here).
pub(crate) fn directive_line(i: &str) -> Res<'_, DirectiveLine<'_>> {
    let (args, w) = verify(word, |w: &Word| {
        !w.text.is_empty() && !w.text.starts_with('<')
    })(i)?;
    let (rest, args) = rest(args)?;
    Ok((
        rest,
        DirectiveLine {
            tag: w.raw,
            name: strip_gt(&w.text).to_string(),
            args,
        },
    ))
}

/// `logical_line = section_close | section_open | directive_line`; a line
/// whose first word is empty (`""`) is ignored, as Apache does.
pub(crate) fn logical_line(i: &str) -> Res<'_, Line<'_>> {
    alt((
        map(section_close, Line::Close),
        map(section_open, Line::Open),
        map(directive_line, Line::Directive),
        value(Line::Ignored, rest),
    ))(i)
}

// ---------------------------------------------------------------------------
// File-level grammar: sections and nesting.
// ---------------------------------------------------------------------------

/// Builds the tree from logical lines: `file = { node }`,
/// `node = directive_line | section`,
/// `section = section_open { node } [ section_close ]`.
#[derive(Default)]
struct Builder {
    root: Vec<Node>,
    /// Open sections, innermost last.
    stack: Vec<Section>,
    /// While > 0 we are inside a section refused for nesting too deep:
    /// the number of sections opened (and not closed) since.
    skip: usize,
    diagnostics: Vec<Diagnostic>,
}

impl Builder {
    fn push(&mut self, node: Node) {
        match self.stack.last_mut() {
            Some(parent) => parent.body.push(node),
            None => self.root.push(node),
        }
    }

    /// Closes the innermost open section.
    fn pop(&mut self, closed: bool) {
        if let Some(mut section) = self.stack.pop() {
            section.closed = closed;
            self.push(Node::Section(section));
        }
    }

    fn error(&mut self, span: Span, message: String) {
        self.diagnostics.push(Diagnostic::error(span, message));
    }

    fn line(&mut self, line: &LogicalLine) {
        match logical_line(&line.text) {
            Ok((_, Line::Ignored)) => {}
            Ok((_, Line::Directive(d))) => {
                if self.skip == 0 {
                    self.push(Node::Directive(directive(line, &d)));
                }
            }
            Ok((rest, Line::Open(open))) => {
                self.open(line, open.name, open.args);
                if !rest.is_empty() && self.skip == 0 {
                    self.diagnostics.push(Diagnostic::warning(
                        line.span_of(rest),
                        format!("text after `>` is ignored: `{rest}`"),
                    ));
                }
            }
            Ok((rest, Line::Close(close))) => self.close(line, &close, rest),
            Err(Err::Failure(LineError::MissingGt { tag, name, args })) => {
                if self.skip == 0 {
                    self.error(
                        line.full_span(),
                        format!("`{tag}` directive missing closing `>`"),
                    );
                }
                // Keep the section so that its body and closing tag do not
                // cause further, misleading errors.
                self.open(line, name, args);
            }
            // `logical_line` always matches (its last branch takes any
            // line); kept for completeness.
            Err(_) => {}
        }
    }

    fn open(&mut self, line: &LogicalLine, name: String, args: &str) {
        if self.skip > 0 {
            self.skip += 1;
            return;
        }
        if self.stack.len() >= MAX_DEPTH {
            self.error(
                line.full_span(),
                format!("sections nested too deeply (more than {MAX_DEPTH} levels)"),
            );
            self.skip = 1;
            return;
        }
        self.stack.push(Section {
            name,
            raw_args: args.to_string(),
            args_span: line.span_of(args),
            args: split_args(line, args),
            body: Vec::new(),
            span: line.full_span(),
            closed: false,
        });
    }

    fn close(&mut self, line: &LogicalLine, close: &SectionClose, rest: &str) {
        if self.skip > 0 {
            self.skip -= 1;
            return;
        }
        let span = line.span_of(close.tag);
        let name = &close.name;
        // `ap_build_config_sub` checks these in this order.
        let Some(innermost) = self.stack.last().map(|s| s.name.clone()) else {
            self.error(
                span,
                format!("`</{name}>` without matching `<{name}>` section"),
            );
            return;
        };
        if !close.has_gt {
            self.error(span, format!("`</{name}` directive missing closing `>`"));
        }
        if innermost.eq_ignore_ascii_case(name) {
            self.pop(true);
        } else {
            self.error(
                span,
                format!("expected `</{innermost}>` but saw `</{name}>`"),
            );
            // Recover: if it closes an outer section, the ones in between
            // are left unclosed; otherwise the line is dropped.
            if let Some(at) = self
                .stack
                .iter()
                .rposition(|s| s.name.eq_ignore_ascii_case(name))
            {
                while self.stack.len() > at + 1 {
                    self.pop(false);
                }
                self.pop(true);
            }
        }
        if close.has_gt && !rest.is_empty() {
            // Ignored by `ap_build_config_sub`; an `<IfModule>` whose
            // module is loaded (`ap_build_cont_config`) would refuse it.
            self.diagnostics.push(Diagnostic::warning(
                line.span_of(rest),
                format!("text after `</{name}>` is ignored: `{rest}`"),
            ));
        }
    }

    fn finish(mut self) -> (File, Vec<Diagnostic>) {
        // End of file with sections open is not a syntax error here:
        // Apache accepts it for some sections and refuses it for others
        // (`ap_build_cont_config` vs `ap_build_config`); the compiler
        // decides from `closed`.
        while !self.stack.is_empty() {
            self.pop(false);
        }
        (File { nodes: self.root }, self.diagnostics)
    }
}

fn directive(line: &LogicalLine, d: &DirectiveLine) -> Directive {
    Directive {
        name: d.name.clone(),
        raw_args: d.args.to_string(),
        args_span: line.span_of(d.args),
        args: split_args(line, d.args),
        span: line.full_span(),
    }
}

/// Splits argument text (a slice of `line.text`) into [`Arg`]s.
fn split_args(line: &LogicalLine, text: &str) -> Vec<Arg> {
    match words(text) {
        Ok((_, ws)) => ws
            .into_iter()
            .map(|w| Arg {
                span: line.span_of(w.raw),
                text: w.text,
                quoted: w.quoted,
            })
            .collect(),
        // `words` cannot fail (`many0` stops at the first non-word).
        Err(_) => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn w(raw: &str, text: &str, quoted: bool) -> Word<'static> {
        Word {
            raw: Box::leak(raw.to_string().into_boxed_str()),
            text: text.to_string(),
            quoted,
        }
    }

    fn errors(diags: &[Diagnostic]) -> Vec<String> {
        diags
            .iter()
            .filter(|d| d.is_error())
            .map(|d| d.message.clone())
            .collect()
    }

    fn directive_at(file: &File, i: usize) -> &Directive {
        match &file.nodes[i] {
            Node::Directive(d) => d,
            other => panic!("not a directive: {other:?}"),
        }
    }

    fn section_at(nodes: &[Node], i: usize) -> &Section {
        match &nodes[i] {
            Node::Section(s) => s,
            other => panic!("not a section: {other:?}"),
        }
    }

    fn texts(args: &[Arg]) -> Vec<&str> {
        args.iter().map(|a| a.text.as_str()).collect()
    }

    // --- small parsers: output and remaining input -------------------------

    #[test]
    fn blanks_takes_c_isspace() {
        assert_eq!(
            blanks(" \t\u{0b}\u{0c}\rx y"),
            Ok(("x y", " \t\u{0b}\u{0c}\r"))
        );
        assert_eq!(blanks("x"), Ok(("x", "")));
        assert_eq!(blanks("\u{a0}x"), Ok(("\u{a0}x", "")));
    }

    #[test]
    fn bare_word_runs_to_blank() {
        assert_eq!(bare_word("a\"b c"), Ok((" c", w("a\"b", "a\"b", false))));
        assert_eq!(
            bare_word("a\\\\b\\c"),
            Ok(("", w("a\\\\b\\c", "a\\b\\c", false)))
        );
        assert!(bare_word(" x").is_err());
        assert!(bare_word("").is_err());
    }

    #[test]
    fn quoted_body_stops_at_unescaped_quote() {
        assert_eq!(quoted_body('"')("a\\\"b\"c"), Ok(("\"c", "a\\\"b")));
        assert_eq!(quoted_body('"')("a\\\\\"c"), Ok(("\"c", "a\\\\")));
        assert_eq!(quoted_body('\'')("a\"b'"), Ok(("'", "a\"b")));
        assert_eq!(quoted_body('"')("abc"), Ok(("", "abc")));
        assert_eq!(quoted_body('"')("ab\\"), Ok(("", "ab\\")));
    }

    #[test]
    fn quoted_word_removes_quotes_and_escapes() {
        assert_eq!(
            quoted_word("\"a b\" c"),
            Ok((" c", w("\"a b\"", "a b", true)))
        );
        assert_eq!(
            quoted_word("\"a\\\"b\\\\c\\d\""),
            Ok(("", w("\"a\\\"b\\\\c\\d\"", "a\"b\\c\\d", true)))
        );
        assert_eq!(
            quoted_word("'it\\'s'"),
            Ok(("", w("'it\\'s'", "it's", true)))
        );
        // \" is not an escape inside single quotes.
        assert_eq!(
            quoted_word("'a\\\"b'"),
            Ok(("", w("'a\\\"b'", "a\\\"b", true)))
        );
        // Unterminated: runs to the end.
        assert_eq!(
            quoted_word("\"abc d"),
            Ok(("", w("\"abc d", "abc d", true)))
        );
        // Glued text is left for the next word.
        assert_eq!(quoted_word("\"a\"b"), Ok(("b", w("\"a\"", "a", true))));
        assert_eq!(quoted_word("\"\""), Ok(("", w("\"\"", "", true))));
        assert!(quoted_word("abc").is_err());
    }

    #[test]
    fn word_eats_following_blanks() {
        assert_eq!(word("abc   def"), Ok(("def", w("abc", "abc", false))));
        assert_eq!(word("'x'\ty"), Ok(("y", w("'x'", "x", true))));
        assert!(word("").is_err());
    }

    #[test]
    fn words_split_like_ap_getword_conf() {
        let (rest, ws) = words("  a \"b c\" 'd'e  f\\ g ").expect("words");
        assert_eq!(rest, "");
        let t: Vec<_> = ws.iter().map(|w| (w.text.as_str(), w.quoted)).collect();
        assert_eq!(
            t,
            vec![
                ("a", false),
                ("b c", true),
                ("d", true),
                ("e", false),
                ("f\\", false),
                ("g", false)
            ]
        );
        assert_eq!(words(""), Ok(("", vec![])));
    }

    #[test]
    fn section_close_parser() {
        assert_eq!(
            section_close("</Files> trailing"),
            Ok((
                "trailing",
                SectionClose {
                    tag: "</Files>",
                    name: "Files".into(),
                    has_gt: true
                }
            ))
        );
        assert_eq!(
            section_close("</Files >"),
            Ok((
                ">",
                SectionClose {
                    tag: "</Files",
                    name: "Files".into(),
                    has_gt: false
                }
            ))
        );
        assert!(section_close("<Files>").is_err());
        assert!(section_close("Files").is_err());
    }

    #[test]
    fn section_args_parser() {
        assert_eq!(section_args(" a b > c > d"), Ok((" d", "a b > c")));
        assert_eq!(section_args(""), Ok(("", "")));
        assert_eq!(section_args(">"), Ok(("", "")));
        assert!(section_args("abc").is_err());
    }

    #[test]
    fn section_open_parser() {
        assert_eq!(
            section_open("<Files \"a b\">"),
            Ok((
                "",
                SectionOpen {
                    tag: "<Files",
                    name: "Files".into(),
                    args: "\"a b\""
                }
            ))
        );
        assert_eq!(
            section_open("<IfModule>"),
            Ok((
                "",
                SectionOpen {
                    tag: "<IfModule>",
                    name: "IfModule".into(),
                    args: ""
                }
            ))
        );
        // A lone `<Files` is `<Files>` with no arguments for Apache.
        assert_eq!(
            section_open("<Files"),
            Ok((
                "",
                SectionOpen {
                    tag: "<Files",
                    name: "Files".into(),
                    args: ""
                }
            ))
        );
        assert_eq!(
            section_open("<If \"%{A} > 1\"> x"),
            Ok((
                " x",
                SectionOpen {
                    tag: "<If",
                    name: "If".into(),
                    args: "\"%{A} > 1\""
                }
            ))
        );
        assert_eq!(
            section_open("<Files a"),
            Err(Err::Failure(LineError::MissingGt {
                tag: "<Files",
                name: "Files".into(),
                args: "a"
            }))
        );
        // `<Files> x`: the tag loses its `>`, then the arguments need one.
        assert!(matches!(
            section_open("<Files> x"),
            Err(Err::Failure(LineError::MissingGt { .. }))
        ));
        assert!(section_open("</Files>").is_err());
        assert!(section_open("Files").is_err());
    }

    #[test]
    fn directive_line_parser() {
        assert_eq!(
            directive_line("RewriteRule a b # x"),
            Ok((
                "",
                DirectiveLine {
                    tag: "RewriteRule",
                    name: "RewriteRule".into(),
                    args: "a b # x"
                }
            ))
        );
        assert_eq!(
            directive_line("Foo> bar"),
            Ok((
                "",
                DirectiveLine {
                    tag: "Foo>",
                    name: "Foo".into(),
                    args: "bar"
                }
            ))
        );
        assert_eq!(
            directive_line("a/> x"),
            Ok((
                "",
                DirectiveLine {
                    tag: "a/>",
                    name: "a/>".into(),
                    args: "x"
                }
            ))
        );
        assert!(directive_line("<Files>").is_err());
        assert!(directive_line("\"\" x").is_err());
    }

    #[test]
    fn logical_line_classifies() {
        assert!(matches!(logical_line("</A>"), Ok(("", Line::Close(_)))));
        assert!(matches!(logical_line("<A b>"), Ok(("", Line::Open(_)))));
        assert!(matches!(logical_line("A b"), Ok(("", Line::Directive(_)))));
        assert_eq!(logical_line("\"\" x y"), Ok(("", Line::Ignored)));
        assert!(matches!(
            logical_line("<A b"),
            Err(Err::Failure(LineError::MissingGt { .. }))
        ));
    }

    // --- whole files -------------------------------------------------------

    #[test]
    fn directives_and_args() {
        let (file, diags) = parse(b"RewriteEngine On\nRewriteRule ^a$ \"/b c\" [L] # x\n");
        assert!(diags.is_empty(), "{diags:?}");
        assert_eq!(file.nodes.len(), 2);
        let d = directive_at(&file, 1);
        assert_eq!(d.name, "RewriteRule");
        assert_eq!(d.raw_args, "^a$ \"/b c\" [L] # x");
        assert_eq!(texts(&d.args), vec!["^a$", "/b c", "[L]", "#", "x"]);
        assert!(d.args[1].quoted);
        assert_eq!(d.span.line, 2);
        assert_eq!(d.span.col, 1);
        assert_eq!(d.args_span.col, 13);
        assert_eq!((d.args[1].span.col, d.args[1].span.len), (17, 6));
    }

    #[test]
    fn comments_and_blank_lines_are_skipped() {
        let src = b"# comment\n\n   \t\n  # indented comment\nA b\n";
        let (file, diags) = parse(src);
        assert!(diags.is_empty());
        assert_eq!(file.nodes.len(), 1);
        assert_eq!(directive_at(&file, 0).span.line, 5);
    }

    #[test]
    fn continuation_joins_lines() {
        let (file, _) = parse(b"A one \\\n   two\nB\n");
        assert_eq!(file.nodes.len(), 2);
        let d = directive_at(&file, 0);
        assert_eq!(d.raw_args, "one    two");
        assert_eq!(texts(&d.args), vec!["one", "two"]);
        // `two` is on physical line 2, column 4.
        assert_eq!((d.args[1].span.line, d.args[1].span.col), (2, 4));
        assert_eq!(d.args[1].span.offset, 11);
        assert_eq!(directive_at(&file, 1).span.line, 3);
    }

    #[test]
    fn continuation_with_crlf() {
        let (file, _) = parse(b"A one\\\r\ntwo\r\nB x\r\n");
        assert_eq!(file.nodes.len(), 2);
        assert_eq!(directive_at(&file, 0).raw_args, "onetwo");
        assert_eq!(directive_at(&file, 1).raw_args, "x");
    }

    #[test]
    fn backslash_space_is_not_a_continuation() {
        let (file, _) = parse(b"A one\\ \ntwo\n");
        assert_eq!(file.nodes.len(), 2);
        assert_eq!(directive_at(&file, 0).raw_args, "one\\");
        assert_eq!(directive_at(&file, 1).name, "two");
    }

    #[test]
    fn continuation_in_comment_swallows_next_line() {
        let (file, _) = parse(b"# comment \\\nHidden directive\nShown\n");
        assert_eq!(file.nodes.len(), 1);
        assert_eq!(directive_at(&file, 0).name, "Shown");
    }

    #[test]
    fn no_final_newline() {
        let (file, diags) = parse(b"A b\nC d");
        assert!(diags.is_empty());
        assert_eq!(directive_at(&file, 1).raw_args, "d");
        // A final backslash without newline is kept as text.
        let (file, _) = parse(b"A b\\");
        assert_eq!(directive_at(&file, 0).raw_args, "b\\");
        // A continuation into end of file ends the line there.
        let (file, _) = parse(b"A b\\\n");
        assert_eq!(directive_at(&file, 0).raw_args, "b");
    }

    #[test]
    fn sections_nest() {
        let src = b"<IfModule mod_rewrite.c>\n  <Files \"a b\">\n    Require all denied\n  </Files>\n  RewriteEngine On\n</IfModule>\n";
        let (file, diags) = parse(src);
        assert!(diags.is_empty(), "{diags:?}");
        let outer = section_at(&file.nodes, 0);
        assert_eq!(outer.name, "IfModule");
        assert_eq!(outer.raw_args, "mod_rewrite.c");
        assert!(outer.closed);
        assert_eq!(outer.body.len(), 2);
        let inner = section_at(&outer.body, 0);
        assert_eq!(inner.name, "Files");
        assert_eq!(inner.raw_args, "\"a b\"");
        assert_eq!(texts(&inner.args), vec!["a b"]);
        assert_eq!((inner.span.line, inner.span.col), (2, 3));
        assert_eq!((inner.args_span.line, inner.args_span.col), (2, 10));
        assert!(inner.closed);
        assert_eq!(inner.body.len(), 1);
    }

    #[test]
    fn closing_tags_are_case_insensitive_and_may_have_trailing_text() {
        let (file, diags) = parse(b"<ifmodule x>\nA\n</IFMODULE> junk\n");
        assert_eq!(errors(&diags), Vec::<String>::new());
        assert_eq!(diags.len(), 1, "a warning for the trailing text");
        assert!(section_at(&file.nodes, 0).closed);
    }

    #[test]
    fn closing_tag_with_blank_before_gt_is_an_error() {
        // `</Files >`: the first word is `</Files`, which Apache refuses.
        let (file, diags) = parse(b"<Files x>\n</Files >\n");
        assert_eq!(
            errors(&diags),
            vec!["`</Files` directive missing closing `>`"]
        );
        assert!(section_at(&file.nodes, 0).closed);
    }

    #[test]
    fn mismatched_closing_tag() {
        let (file, diags) = parse(b"<Files x>\nA\n</IfModule>\nB\n</Files>\n");
        assert_eq!(
            errors(&diags),
            vec!["expected `</Files>` but saw `</IfModule>`"]
        );
        assert_eq!((diags[0].span.line, diags[0].span.col), (3, 1));
        let s = section_at(&file.nodes, 0);
        assert!(s.closed);
        assert_eq!(s.body.len(), 2);
    }

    #[test]
    fn mismatched_closing_tag_closes_outer_section() {
        let (file, diags) = parse(b"<A>\n<B>\n</A>\nC\n");
        assert_eq!(errors(&diags), vec!["expected `</B>` but saw `</A>`"]);
        let a = section_at(&file.nodes, 0);
        assert!(a.closed);
        assert!(!section_at(&a.body, 0).closed);
        assert_eq!(file.nodes.len(), 2);
    }

    #[test]
    fn stray_closing_tag() {
        let (file, diags) = parse(b"A\n  </Files>\nB\n");
        assert_eq!(
            errors(&diags),
            vec!["`</Files>` without matching `<Files>` section"]
        );
        assert_eq!(
            (diags[0].span.line, diags[0].span.col, diags[0].span.len),
            (2, 3, 8)
        );
        assert_eq!(file.nodes.len(), 2);
    }

    #[test]
    fn missing_gt_on_opening_tag() {
        let (file, diags) = parse(b"<Files x\nA\n</Files>\n<Files>\n</Files>\n");
        assert_eq!(
            errors(&diags),
            vec!["`<Files` directive missing closing `>`"]
        );
        assert_eq!(diags[0].span.line, 1);
        // Recovered: the section is kept, so its closing tag is fine.
        assert_eq!(file.nodes.len(), 2);
        assert_eq!(section_at(&file.nodes, 0).raw_args, "x");
        assert_eq!(section_at(&file.nodes, 1).raw_args, "");
    }

    #[test]
    fn text_after_last_gt_is_ignored() {
        let (file, diags) = parse(b"<Files a>b> c\n</Files>\n");
        assert!(errors(&diags).is_empty());
        assert_eq!(section_at(&file.nodes, 0).raw_args, "a>b");
    }

    #[test]
    fn unclosed_sections_are_marked() {
        let (file, diags) = parse(b"<IfModule a>\n<Files b>\nX\n");
        assert!(diags.is_empty());
        let outer = section_at(&file.nodes, 0);
        assert!(!outer.closed);
        let inner = section_at(&outer.body, 0);
        assert!(!inner.closed);
        assert_eq!(inner.body.len(), 1);
    }

    #[test]
    fn every_error_is_reported() {
        let (_, diags) = parse(b"</A>\n<B x\n</C>\n</B>\n</D>\n");
        assert_eq!(
            errors(&diags),
            vec![
                "`</A>` without matching `<A>` section",
                "`<B` directive missing closing `>`",
                "expected `</B>` but saw `</C>`",
                "`</D>` without matching `<D>` section",
            ]
        );
    }

    #[test]
    fn deep_nesting_is_refused() {
        let mut src = String::new();
        for _ in 0..200 {
            src.push_str("<IfModule x>\n");
        }
        src.push_str("A\n");
        for _ in 0..200 {
            src.push_str("</IfModule>\n");
        }
        src.push_str("After\n");
        let (file, diags) = parse(src.as_bytes());
        assert_eq!(
            errors(&diags),
            vec![format!(
                "sections nested too deeply (more than {MAX_DEPTH} levels)"
            )]
        );
        assert_eq!(diags[0].span.line, MAX_DEPTH as u32 + 1);
        assert_eq!(file.nodes.len(), 2);
        let mut depth = 0;
        let mut nodes = &file.nodes;
        while let Some(Node::Section(s)) = nodes.first() {
            assert!(s.closed);
            depth += 1;
            nodes = &s.body;
        }
        assert_eq!(depth, MAX_DEPTH);
    }

    #[test]
    fn unbalanced_deep_nesting_does_not_overflow() {
        let src = "<A>\n".repeat(100_000);
        let (file, diags) = parse(src.as_bytes());
        assert_eq!(errors(&diags).len(), 1);
        assert_eq!(file.nodes.len(), 1);
    }

    #[test]
    fn lossy_utf8_positions() {
        let (file, diags) = parse(b"A \xff\xfe b\n\xc3\xa9t\xe9 c\n");
        assert!(diags.is_empty());
        let a = directive_at(&file, 0);
        assert_eq!(texts(&a.args), vec!["\u{fffd}\u{fffd}", "b"]);
        // Columns count characters of the text shown.
        assert_eq!(a.args[1].span.col, 6);
        let b = directive_at(&file, 1);
        assert_eq!(b.name, "\u{e9}t\u{fffd}");
        assert_eq!((b.args[0].span.line, b.args[0].span.col), (2, 5));
    }

    #[test]
    fn quoted_empty_first_word_ignores_line() {
        let (file, diags) = parse(b"\"\" A b\nC\n");
        assert!(diags.is_empty());
        assert_eq!(file.nodes.len(), 1);
    }

    #[test]
    fn env_vars_are_not_substituted() {
        let (file, _) = parse(b"Header set X ${HOME}\n");
        assert_eq!(directive_at(&file, 0).raw_args, "set X ${HOME}");
    }

    #[test]
    fn long_lines_are_refused() {
        let long = format!("A {}\n", "x".repeat(lexer::MAX_LINE_BYTES));
        let (_, diags) = parse(long.as_bytes());
        assert_eq!(
            errors(&diags),
            vec![format!(
                "line too long (more than {} bytes)",
                lexer::MAX_LINE_BYTES
            )]
        );
        let ok = format!("A {}\n", "x".repeat(lexer::MAX_LINE_BYTES - 3));
        let (_, diags) = parse(ok.as_bytes());
        assert!(diags.is_empty());
    }

    #[test]
    fn display_round_trips() {
        let src = b"<IfModule mod_rewrite.c>\nRewriteRule ^a \"b c\" [L]\n<Files>\n</Files>\n</IfModule>\n";
        let (file, _) = parse(src);
        let (again, diags) = parse(file.to_string().as_bytes());
        assert!(diags.is_empty());
        assert_eq!(file.to_string(), again.to_string());
    }

    /// Every real-world file in the shared corpus parses without errors and
    /// with every section closed.
    #[test]
    fn corpus_parses_cleanly() {
        let dir = std::path::Path::new("/work/shared/corpus/htaccess");
        let mut entries: Vec<_> = std::fs::read_dir(dir)
            .expect("corpus directory")
            .filter_map(|e| e.ok())
            .map(|e| e.path())
            .filter(|p| p.is_file())
            .collect();
        entries.sort();
        assert!(!entries.is_empty(), "corpus is empty");
        fn all_closed(nodes: &[Node]) -> bool {
            nodes.iter().all(|n| match n {
                Node::Section(s) => s.closed && all_closed(&s.body),
                Node::Directive(_) => true,
            })
        }
        for path in entries {
            let bytes = std::fs::read(&path).expect("read corpus file");
            let (file, diags) = parse(&bytes);
            let errs: Vec<_> = diags
                .iter()
                .filter(|d| d.is_error())
                .map(|d| d.one_line(&path.display().to_string()))
                .collect();
            assert!(errs.is_empty(), "{errs:#?}");
            assert!(all_closed(&file.nodes), "{}: unclosed", path.display());
            assert!(!file.nodes.is_empty(), "{}: empty", path.display());
        }
    }
}

//! The syntax tree of one `.htaccess` file, as the parser reads it.
//!
//! The tree is generic: a directive is a name plus its argument text; which
//! names exist and what their arguments mean is decided by the compiler
//! (`htgate_engine::compile`), exactly as Apache's `ap_build_config` only
//! splits lines and leaves the meaning to each module's command table.
//! Every node carries a [`Span`] so that the compiler can report
//! `file:line:col` for any problem.  `Display` prints valid `.htaccess` text.

use std::fmt;

/// A position in a source file: byte offset, 1-based line and column
/// (column counted in characters), and the length in bytes of the text it
/// covers.  Positions always refer to the physical file, even for text that
/// came from a continued (backslash-newline) line.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Span {
    pub offset: usize,
    pub line: u32,
    pub col: u32,
    pub len: usize,
}

/// One argument word, split the way Apache's `ap_getword_conf` splits
/// directive arguments: blanks separate words; a word that starts with `"`
/// or `'` runs to the matching unescaped quote, the quotes are removed and
/// `\"` (resp. `\'`) inside becomes the quote.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Arg {
    /// The word with quotes removed and quote escapes resolved.
    pub text: String,
    /// Whether the word was written in quotes.
    pub quoted: bool,
    pub span: Span,
}

/// A directive line: `Name args...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Directive {
    /// The name as written (compare case-insensitively).
    pub name: String,
    /// Everything after the name and the blanks that follow it, up to the
    /// end of the logical line, trailing blanks trimmed, continuations
    /// joined.  mod_rewrite splits this itself (`parseargline`).
    pub raw_args: String,
    /// Span of `raw_args` (start of the argument text).
    pub args_span: Span,
    /// `raw_args` split with `ap_getword_conf` rules.
    pub args: Vec<Arg>,
    /// Span of the whole logical line (starting at the name).
    pub span: Span,
}

/// A section: `<Name args>` ... `</Name>`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Section {
    /// The tag name as written, without `<` (compare case-insensitively).
    pub name: String,
    /// The text between the tag name and the closing `>`, trimmed.
    pub raw_args: String,
    pub args_span: Span,
    /// `raw_args` split with `ap_getword_conf` rules.
    pub args: Vec<Arg>,
    pub body: Vec<Node>,
    /// Span of the opening tag line.
    pub span: Span,
    /// False when the file ended before the matching `</Name>`.  Apache
    /// accepts that silently for some sections (see the compiler), so the
    /// parser records it instead of failing.
    pub closed: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Node {
    Directive(Directive),
    Section(Section),
}

/// A whole parsed file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct File {
    pub nodes: Vec<Node>,
}

impl Node {
    pub fn span(&self) -> Span {
        match self {
            Node::Directive(d) => d.span,
            Node::Section(s) => s.span,
        }
    }
}

impl fmt::Display for File {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for node in &self.nodes {
            write_node(f, node, 0)?;
        }
        Ok(())
    }
}

fn write_node(f: &mut fmt::Formatter<'_>, node: &Node, depth: usize) -> fmt::Result {
    let indent = "    ".repeat(depth);
    match node {
        Node::Directive(d) => {
            if d.raw_args.is_empty() {
                writeln!(f, "{indent}{}", d.name)
            } else {
                writeln!(f, "{indent}{} {}", d.name, d.raw_args)
            }
        }
        Node::Section(s) => {
            if s.raw_args.is_empty() {
                writeln!(f, "{indent}<{}>", s.name)?;
            } else {
                writeln!(f, "{indent}<{} {}>", s.name, s.raw_args)?;
            }
            for child in &s.body {
                write_node(f, child, depth + 1)?;
            }
            if s.closed {
                writeln!(f, "{indent}</{}>", s.name)?;
            }
            Ok(())
        }
    }
}

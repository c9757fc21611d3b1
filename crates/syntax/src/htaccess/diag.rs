//! Diagnostics: a problem found in a source file, with its position, and the
//! renderer that prints it as `file:line:col: error: message` followed by the
//! source line and a caret.  The parser, the compiler, `htgate check` and the
//! error log all use this one type.

use super::ast::Span;
use std::fmt;

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    Warning,
    Error,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Warning => "warning",
            Severity::Error => "error",
        })
    }
}

/// One problem in one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub span: Span,
    /// Lower-case, no trailing period, user text quoted in backticks.
    pub message: String,
    /// An optional suggestion, printed as `= help: ...`.
    pub help: Option<String>,
}

impl Diagnostic {
    pub fn error(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn warning(span: Span, message: impl Into<String>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            span,
            message: message.into(),
            help: None,
        }
    }

    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }

    /// One line: `file:line:col: error: message`.
    pub fn one_line(&self, file: &str) -> String {
        format!(
            "{}:{}:{}: {}: {}",
            file, self.span.line, self.span.col, self.severity, self.message
        )
    }

    /// The full rendering: the one-line form, the source line with a caret
    /// under the offending text, and the help line if any.
    pub fn render(&self, file: &str, source: &[u8]) -> String {
        let mut out = self.one_line(file);
        out.push('\n');
        let line_no = self.span.line.max(1) as usize;
        let text = String::from_utf8_lossy(source);
        if let Some(line) = text.lines().nth(line_no - 1) {
            let gutter = line_no.to_string().len();
            let line = line.trim_end_matches('\r');
            out.push_str(&format!("{:gutter$} |\n", ""));
            out.push_str(&format!("{line_no} | {line}\n"));
            let col = (self.span.col.max(1) - 1) as usize;
            let pad: String = line
                .chars()
                .take(col)
                .map(|c| if c == '\t' { '\t' } else { ' ' })
                .collect();
            let width = self.caret_width(line, col);
            out.push_str(&format!("{:gutter$} | {pad}{}\n", "", "^".repeat(width)));
        }
        if let Some(help) = &self.help {
            out.push_str(&format!("  = help: {help}\n"));
        }
        out
    }

    fn caret_width(&self, line: &str, col: usize) -> usize {
        let rest: String = line.chars().skip(col).collect();
        let len_chars = rest
            .char_indices()
            .take_while(|(i, _)| *i < self.span.len)
            .count();
        len_chars.max(1)
    }
}

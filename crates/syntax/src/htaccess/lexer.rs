//! Physical lines to logical lines, the way Apache's `ap_varbuf_cfg_getline`
//! (`server/util.c`: `ap_cfg_getline_core` + `cfg_trim_line`) reads a
//! configuration file, with a map from every logical-line offset back to
//! the physical file so that diagnostics point at what the user wrote.
//!
//! What Apache does, and this lexer reproduces:
//!
//! * A physical line ends at LF.  A CR directly before the LF is dropped
//!   (and any other trailing blanks go with the trimming below).
//! * If the buffer read so far ends with `\` (optionally followed by CR)
//!   right before the LF, the backslash, CR and LF are removed and the next
//!   physical line is appended as it is, leading blanks included.  A
//!   backslash followed by blanks is *not* a continuation.  Apache checks
//!   the joined buffer, not just the new physical line, so after a
//!   continuation an empty physical line can pick up a backslash left over
//!   from the previous one (`a\\` LF LF continues twice); we do the same.
//! * At end of file the last line may lack its LF; a pending continuation
//!   simply ends there.
//! * A NUL byte ends the logical line early: Apache measures the buffer with
//!   `strlen`, so the rest of that physical line is lost and no continuation
//!   is looked for.  We do the same and warn.
//! * The logical line is trimmed of leading and trailing C `isspace`
//!   characters (space, tab, LF, VT, FF, CR), see `cfg_trim_line`.
//! * For `.htaccess` files the line buffer may not grow past
//!   `HUGE_STRING_LEN` (8192) bytes (`ap_build_config`: "lower limit for
//!   .htaccess"); a longer logical line makes the whole file fail with
//!   "Line too long".  We report that as an error.
//! * Empty lines and lines whose first character (after trimming) is `#` are
//!   skipped by `ap_build_config_sub`.  Because joining happens first, a
//!   comment that ends with `\` swallows the next physical line, and `#`
//!   anywhere else is ordinary text (there are no trailing comments).
//!
//! Invalid UTF-8 is replaced with U+FFFD (as `String::from_utf8_lossy`
//! does) before anything else, and every position refers to that decoded
//! text: for valid UTF-8 this is exactly the file; otherwise each invalid
//! sequence counts as the three bytes of U+FFFD in offsets and lengths,
//! and as one character in columns, matching what a diagnostic shows.

use super::ast::Span;
use super::diag::Diagnostic;

/// Apache's `HUGE_STRING_LEN`, the maximum size of the line buffer when
/// reading a `.htaccess` file (`ap_build_config`, `ap_varbuf_cfg_getline`).
pub(crate) const MAX_LINE_BYTES: usize = 8192;

/// C `isspace` in the "C" locale, which is what `apr_isspace` is: the
/// separator for trimming (`cfg_trim_line`) and for words
/// (`ap_getword_conf`).
pub fn is_space(c: char) -> bool {
    matches!(c, ' ' | '\t' | '\n' | '\u{0b}' | '\u{0c}' | '\r')
}

/// One run of logical text copied verbatim from one physical line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Piece {
    /// Where the run starts in the logical text.
    logical: usize,
    /// Where it starts in the decoded file.
    offset: usize,
    /// 1-based physical line and character column of that start.
    line: u32,
    col: u32,
}

/// One logical line: physical lines joined at continuations and trimmed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogicalLine {
    /// The joined, trimmed text (never empty, never a comment).
    pub text: String,
    /// Sorted by `logical`; the first piece starts at logical offset 0.
    pieces: Vec<Piece>,
    /// For a non-ASCII line, the number of characters before each byte
    /// offset (`text.len() + 1` entries), so that columns cost O(1) however
    /// long the line; empty for an ASCII line, where bytes are characters.
    chars_before: Vec<u32>,
}

impl LogicalLine {
    /// The index of the piece that holds logical byte `at`.
    fn piece_at(&self, at: usize) -> Piece {
        let idx = self
            .pieces
            .partition_point(|p| p.logical <= at)
            .saturating_sub(1);
        self.pieces.get(idx).copied().unwrap_or(Piece {
            logical: 0,
            offset: 0,
            line: 1,
            col: 1,
        })
    }

    /// The physical position (offset, line, column) of logical byte `at`
    /// (clamped to the text; must be a char boundary).
    pub(crate) fn position(&self, at: usize) -> (usize, u32, u32) {
        let at = at.min(self.text.len());
        let piece = self.piece_at(at);
        let chars = self.chars_between(piece.logical, at);
        (
            piece.offset + (at - piece.logical),
            piece.line,
            piece.col + chars as u32,
        )
    }

    /// Characters in `text[a..b]`.
    fn chars_between(&self, a: usize, b: usize) -> usize {
        if self.chars_before.is_empty() {
            return b.saturating_sub(a);
        }
        let at = |i: usize| self.chars_before.get(i).copied().unwrap_or(0) as usize;
        at(b).saturating_sub(at(a))
    }

    /// The physical offset just past logical byte range ending at `end`.
    fn end_offset(&self, end: usize) -> usize {
        let end = end.min(self.text.len());
        if end == 0 {
            return self.position(0).0;
        }
        let piece = self.piece_at(end - 1);
        piece.offset + (end - piece.logical)
    }

    /// The span of the logical byte range `start..end`.  Its offset, line
    /// and column are those of `start` in the physical file; its length
    /// covers the physical text up to `end`, so it includes any
    /// backslash-newline that was removed in between.
    pub(crate) fn span(&self, start: usize, end: usize) -> Span {
        let (offset, line, col) = self.position(start);
        let len = if end > start {
            self.end_offset(end).saturating_sub(offset)
        } else {
            0
        };
        Span {
            offset,
            line,
            col,
            len,
        }
    }

    /// The span of the whole logical line.
    pub(crate) fn full_span(&self) -> Span {
        self.span(0, self.text.len())
    }

    /// The span of `sub`, which must be a slice of `self.text`.
    pub(crate) fn span_of(&self, sub: &str) -> Span {
        let start = offset_in(&self.text, sub);
        self.span(start, start + sub.len())
    }
}

/// Byte offset of `sub` inside `base`; `sub` must be a slice of `base`
/// (else the result is clamped to `base.len()`).
pub(crate) fn offset_in(base: &str, sub: &str) -> usize {
    let b = base.as_ptr() as usize;
    let s = sub.as_ptr() as usize;
    s.saturating_sub(b).min(base.len())
}

/// The result of reading a whole file.
#[derive(Debug, Clone, Default)]
pub(crate) struct Lexed {
    /// Every logical line that is neither empty nor a comment, in order.
    pub lines: Vec<LogicalLine>,
    /// Problems found while reading lines (line too long, NUL bytes).
    pub diagnostics: Vec<Diagnostic>,
}

/// Decoded text plus, for each U+FFFD that replaced invalid bytes, where it
/// is and how many bytes of the original it stands for, so that Apache's
/// byte limit can be checked against the real file.
struct Decoded {
    text: String,
    replaced: Vec<(usize, usize)>,
}

impl Decoded {
    fn new(source: &[u8]) -> Self {
        let mut text = String::with_capacity(source.len());
        let mut replaced = Vec::new();
        let mut rest = source;
        loop {
            match std::str::from_utf8(rest) {
                Ok(s) => {
                    text.push_str(s);
                    break;
                }
                Err(e) => {
                    let (valid, after) = rest.split_at(e.valid_up_to());
                    text.push_str(&String::from_utf8_lossy(valid));
                    // Same replacement rule as `from_utf8_lossy`: one U+FFFD
                    // per maximal invalid subpart, one for a truncated tail.
                    let bad = e.error_len().unwrap_or(after.len()).max(1);
                    replaced.push((text.len(), bad));
                    text.push('\u{fffd}');
                    rest = after.get(bad..).unwrap_or_default();
                }
            }
        }
        Decoded { text, replaced }
    }

    /// How many bytes of the original file the decoded range `a..b` holds.
    fn original_len(&self, a: usize, b: usize) -> usize {
        let first = self.replaced.partition_point(|&(p, _)| p < a);
        let mut len = b.saturating_sub(a);
        for &(p, bad) in &self.replaced[first..] {
            if p >= b {
                break;
            }
            len = len + bad - '\u{fffd}'.len_utf8();
        }
        len
    }
}

/// Reads a whole file into logical lines.  Never panics.
pub(crate) fn lex(source: &[u8]) -> Lexed {
    let decoded = Decoded::new(source);
    let mut lines = Vec::new();
    let mut diagnostics = Vec::new();
    let mut reader = PhysicalLines::new(&decoded.text);

    while let Some(first) = reader.next_line() {
        let mut buf = String::new();
        let mut pieces: Vec<Piece> = Vec::new();
        // Bytes of the original file held in Apache's line buffer.
        let mut buf_bytes = 0usize;
        let mut too_long = false;
        let mut phys = first;
        loop {
            let content = &decoded.text[phys.start..phys.end];
            let nul = content.find('\0');
            let kept_end = nul.map_or(phys.end, |z| phys.start + z);
            pieces.push(Piece {
                logical: buf.len(),
                offset: phys.start,
                line: phys.line,
                col: 1,
            });
            buf.push_str(&decoded.text[phys.start..kept_end]);
            // `ap_cfg_getline_core` keeps the LF in the buffer while it
            // checks for a continuation, so it counts towards the limit.
            let with_newline = buf_bytes
                + decoded.original_len(phys.start, kept_end)
                + usize::from(phys.newline && nul.is_none());
            if with_newline > MAX_LINE_BYTES {
                too_long = true;
            }
            buf_bytes += decoded.original_len(phys.start, kept_end);
            if let Some(z) = nul {
                let at = phys.start + z;
                let (line, col) = reader.line_col(at);
                diagnostics.push(Diagnostic::warning(
                    Span {
                        offset: at,
                        line,
                        col,
                        len: 1,
                    },
                    "nul byte in line: the rest of the line is ignored",
                ));
                break;
            }
            if !phys.newline {
                break;
            }
            let before = buf.len();
            if !strip_continuation(&mut buf) {
                break;
            }
            // The removed backslash (and CR) are ASCII: decoded and original
            // lengths agree.
            buf_bytes = buf_bytes.saturating_sub(before - buf.len());
            truncate_pieces(&mut pieces, buf.len());
            match reader.next_line() {
                Some(next) => phys = next,
                // `ap_cfg_getline_core`: EOF after a continuation ends the
                // line with what was read so far.
                None => break,
            }
        }

        let line = trim(buf, pieces, &decoded.text);
        if too_long {
            if let Some(l) = &line {
                diagnostics.push(Diagnostic::error(
                    l.span(0, 0),
                    format!("line too long (more than {MAX_LINE_BYTES} bytes)"),
                ));
            } else {
                let (offset, line, col) = (first.start, first.line, 1);
                diagnostics.push(Diagnostic::error(
                    Span {
                        offset,
                        line,
                        col,
                        len: 0,
                    },
                    format!("line too long (more than {MAX_LINE_BYTES} bytes)"),
                ));
            }
        }
        if let Some(line) = line {
            // `ap_build_config_sub`: `if (*l == '#' || *l == '\0') return NULL;`
            if !line.text.starts_with('#') {
                lines.push(line);
            }
        }
    }

    Lexed { lines, diagnostics }
}

/// Apache's continuation test on the joined buffer (`ap_cfg_getline_core`):
/// with the LF just read at the end of `buf`, drop one CR before it, then if
/// a backslash precedes, drop it and report a continuation.  Returns false
/// (and leaves `buf` alone) otherwise.
fn strip_continuation(buf: &mut String) -> bool {
    let bytes = buf.as_bytes();
    let mut end = bytes.len();
    if end > 0 && bytes[end - 1] == b'\r' {
        end -= 1;
    }
    if end > 0 && bytes[end - 1] == b'\\' {
        buf.truncate(end - 1);
        true
    } else {
        false
    }
}

/// Drops pieces that start at or after `len` (a continuation can remove the
/// whole of a physical line that held only `\`).
fn truncate_pieces(pieces: &mut Vec<Piece>, len: usize) {
    while pieces.len() > 1 && pieces.last().is_some_and(|p| p.logical >= len) {
        pieces.pop();
    }
}

/// `cfg_trim_line`: strips leading and trailing `isspace`, rebasing the
/// pieces; `None` when nothing is left.
fn trim(buf: String, pieces: Vec<Piece>, text: &str) -> Option<LogicalLine> {
    let start = buf.len() - buf.trim_start_matches(is_space).len();
    let end = buf.trim_end_matches(is_space).len();
    if start >= end {
        return None;
    }
    let mut out = Vec::with_capacity(pieces.len());
    for (i, p) in pieces.iter().enumerate() {
        let p_end = pieces.get(i + 1).map_or(buf.len(), |n| n.logical);
        if p_end <= start || p.logical >= end {
            continue;
        }
        let skip = start.saturating_sub(p.logical);
        let skipped_chars = text
            .get(p.offset..p.offset + skip)
            .map_or(0, |s| s.chars().count());
        out.push(Piece {
            logical: p.logical.max(start) - start,
            offset: p.offset + skip,
            line: p.line,
            col: p.col + skipped_chars as u32,
        });
    }
    let text = buf[start..end].to_string();
    let chars_before = if text.is_ascii() {
        Vec::new()
    } else {
        let mut v = vec![0u32; text.len() + 1];
        let mut n = 0u32;
        for (i, c) in text.char_indices() {
            for slot in &mut v[i..i + c.len_utf8()] {
                *slot = n;
            }
            n += 1;
        }
        v[text.len()] = n;
        v
    };
    Some(LogicalLine {
        text,
        pieces: out,
        chars_before,
    })
}

/// One physical line of the decoded text.
#[derive(Debug, Clone, Copy)]
struct Physical {
    /// Byte range of the content, without the LF.
    start: usize,
    end: usize,
    /// 1-based line number.
    line: u32,
    /// Whether an LF ended it (false only for the last line).
    newline: bool,
}

/// Splits the decoded text at LF, like `apr_file_gets`.
struct PhysicalLines<'a> {
    text: &'a str,
    pos: usize,
    line: u32,
    /// Start offset of every line seen so far, for `line_col`.
    starts: Vec<usize>,
}

impl<'a> PhysicalLines<'a> {
    fn new(text: &'a str) -> Self {
        PhysicalLines {
            text,
            pos: 0,
            line: 0,
            starts: Vec::new(),
        }
    }

    fn next_line(&mut self) -> Option<Physical> {
        if self.pos >= self.text.len() {
            return None;
        }
        let start = self.pos;
        self.line = self.line.saturating_add(1);
        self.starts.push(start);
        let (end, newline) = match self.text[start..].find('\n') {
            Some(i) => (start + i, true),
            None => (self.text.len(), false),
        };
        self.pos = if newline { end + 1 } else { end };
        Some(Physical {
            start,
            end,
            line: self.line,
            newline,
        })
    }

    /// Line and column of an offset on a line already returned.
    fn line_col(&self, at: usize) -> (u32, u32) {
        let idx = self.starts.partition_point(|&s| s <= at).saturating_sub(1);
        let start = self.starts.get(idx).copied().unwrap_or(0);
        let col = self.text.get(start..at).map_or(0, |s| s.chars().count()) + 1;
        (idx as u32 + 1, col as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts(src: &[u8]) -> Vec<String> {
        lex(src).lines.into_iter().map(|l| l.text).collect()
    }

    #[test]
    fn splits_at_lf_and_trims() {
        assert_eq!(texts(b"  a b  \n\tc\x0b\x0c\n"), vec!["a b", "c"]);
        assert_eq!(texts(b"a\r\nb\r\n"), vec!["a", "b"]);
        // A lone CR is not a line break (only LF is).
        assert_eq!(texts(b"a\rb\n"), vec!["a\rb"]);
        assert!(texts(b"").is_empty());
        assert!(texts(b"\n\n  \n").is_empty());
    }

    #[test]
    fn last_line_may_lack_newline() {
        assert_eq!(texts(b"a\nb"), vec!["a", "b"]);
        assert_eq!(texts(b"a\\"), vec!["a\\"]);
    }

    #[test]
    fn comments_are_skipped_after_joining() {
        assert_eq!(texts(b"# x\n  # y\na # z\n"), vec!["a # z"]);
        assert_eq!(texts(b"# x \\\nswallowed\nb\n"), vec!["b"]);
        // A continued line can turn into a comment only by its start.
        assert_eq!(texts(b"a \\\n# b\n"), vec!["a # b"]);
    }

    #[test]
    fn continuation() {
        assert_eq!(texts(b"a\\\n  b\n"), vec!["a  b"]);
        assert_eq!(texts(b"a\\\r\nb\r\n"), vec!["ab"]);
        assert_eq!(texts(b"a\\\nb\\\nc\nd\n"), vec!["abc", "d"]);
        // Backslash then blank: no continuation.
        assert_eq!(texts(b"a\\ \nb\n"), vec!["a\\", "b"]);
        assert_eq!(texts(b"a\\\t\r\nb\n"), vec!["a\\", "b"]);
        // Two CRs: only the one before LF is dropped, so no continuation.
        assert_eq!(texts(b"a\\\r\r\nb\n"), vec!["a\\", "b"]);
        // Continuation into end of file.
        assert_eq!(texts(b"a\\\n"), vec!["a"]);
        assert!(texts(b"\\\n").is_empty());
    }

    #[test]
    fn continuation_checks_the_joined_buffer() {
        // `ap_cfg_getline_core` looks at the whole buffer: after `a\\`+LF
        // (one backslash removed), an empty line finds the other one and
        // continues again.
        assert_eq!(texts(b"a\\\\\n\nb\n"), vec!["ab"]);
        assert_eq!(texts(b"b\nc\\\n\nd\n"), vec!["b", "c", "d"]);
    }

    #[test]
    fn nul_ends_the_line() {
        let lexed = lex(b"a b\0c \\\nd\n");
        let t: Vec<_> = lexed.lines.iter().map(|l| l.text.as_str()).collect();
        assert_eq!(t, vec!["a b", "d"]);
        assert_eq!(lexed.diagnostics.len(), 1);
        let d = &lexed.diagnostics[0];
        assert!(!d.is_error());
        assert_eq!((d.span.offset, d.span.line, d.span.col), (3, 1, 4));
    }

    #[test]
    fn positions_map_back_through_continuations() {
        let lexed = lex(b"\n  Abc de\\\n\t fg \\\nh\n");
        let line = &lexed.lines[0];
        assert_eq!(line.text, "Abc de\t fg h");
        assert_eq!(line.position(0), (3, 2, 3));
        assert_eq!(line.position(4), (7, 2, 7));
        // `\t` right after the continuation is line 3, column 1.
        assert_eq!(line.position(6), (11, 3, 1));
        assert_eq!(line.position(8), (13, 3, 3));
        assert_eq!(line.position(11), (18, 4, 1));
        // The span of `de\t fg` covers the removed backslash-newline.
        let s = line.span(4, 10);
        assert_eq!((s.offset, s.line, s.col, s.len), (7, 2, 7, 8));
        let full = line.full_span();
        assert_eq!((full.offset, full.len), (3, 16));
        let empty = line.span(3, 3);
        assert_eq!((empty.col, empty.len), (6, 0));
    }

    #[test]
    fn lossy_utf8_positions() {
        let lexed = lex(b"\xff a\n\xe2\x82 \xc3\xa9 b\n");
        let l0 = &lexed.lines[0];
        assert_eq!(l0.text, "\u{fffd} a");
        assert_eq!(l0.position(4), (4, 1, 3));
        let l1 = &lexed.lines[1];
        assert_eq!(l1.text, "\u{fffd} \u{e9} b");
        // `b`: after U+FFFD, blank, é, blank — column 5.
        assert_eq!(l1.position(7), (13, 2, 5));
    }

    #[test]
    fn line_length_limit_counts_original_bytes() {
        let ok = format!("a {}\n", "x".repeat(MAX_LINE_BYTES - 3));
        assert!(lex(ok.as_bytes()).diagnostics.is_empty());
        let long = format!("a {}\n", "x".repeat(MAX_LINE_BYTES - 2));
        let d = lex(long.as_bytes()).diagnostics;
        assert_eq!(d.len(), 1);
        assert!(d[0].is_error());
        // Invalid bytes count as one byte each, not as U+FFFD's three.
        let mut bytes = b"a ".to_vec();
        bytes.extend(vec![0xffu8; MAX_LINE_BYTES - 3]);
        bytes.push(b'\n');
        assert!(lex(&bytes).diagnostics.is_empty());
        // Continued lines count together, and comments count too.
        let joined = format!("# {}\\\n{}\n", "x".repeat(5000), "y".repeat(5000));
        assert_eq!(lex(joined.as_bytes()).diagnostics.len(), 1);
    }

    #[test]
    fn decoded_original_len() {
        let d = Decoded::new(b"a\xffb\xe2\x82");
        assert_eq!(d.text, "a\u{fffd}b\u{fffd}");
        assert_eq!(d.original_len(0, d.text.len()), 5);
        assert_eq!(d.original_len(1, 4), 1);
        assert_eq!(d.original_len(4, 5), 1);
    }

    #[test]
    fn offset_in_slices() {
        let s = "hello world";
        assert_eq!(offset_in(s, &s[6..]), 6);
        assert_eq!(offset_in(s, &s[11..]), 11);
        assert_eq!(offset_in(s, "other"), s.len().min(offset_in(s, "other")));
    }
}

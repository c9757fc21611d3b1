//! Compiled mod_rewrite directives: `RewriteRule`, `RewriteCond` and their
//! flags, built from a directive's raw argument text exactly as
//! `mod_rewrite.c` (`parseargline`, `cmd_rewriterule`, `cmd_rewritecond`,
//! `cmd_rewriterule_setflag`, `cmd_rewritecond_setflag`) reads them.

use super::pattern::Pattern;
use super::template::Template;
use htgate_syntax::expr;
use htgate_util::escape::BackrefEscape;
use std::sync::Arc;

/// Default `[N]` limit (`REWRITE_MAX_ROUNDS`).  SEMANTICS F9.
pub(crate) const MAX_ROUNDS: u32 = 32000;

#[derive(Debug, Clone)]
pub struct RewriteCond {
    pub test: Template,
    pub kind: CondKind,
    pub negate: bool,
    pub nocase: bool,
    pub ornext: bool,
    pub novary: bool,
    /// Where the condition is written (file, line) for explain/logs.
    pub line: u32,
}

#[derive(Debug, Clone)]
pub enum CondKind {
    Regex(Pattern),
    Expr(Arc<expr::Expr>),
    FileDir,
    FileRegular,
    FileNonEmpty,
    FileSymlink,
    FileExecutable,
    FileSubreq,
    UrlSubreq,
    /// `<`, `>`, `=`, `<=`, `>=` against a literal (already expanded? no:
    /// the CondPattern of a comparison is expanded too).
    StrCmp(StrOp, Template),
    IntCmp(IntOp, Template),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StrOp {
    Lt,
    Le,
    Eq,
    Gt,
    Ge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IntOp {
    Lt,
    Le,
    Eq,
    Gt,
    Ge,
}

#[derive(Debug, Clone)]
pub struct RewriteRule {
    pub pattern: Pattern,
    pub pattern_text: String,
    pub negate: bool,
    /// None for `-`.
    pub subst: Option<Template>,
    /// The substitution starts with two literal slashes (R4).
    pub subst_double_slash: bool,
    pub flags: RuleFlags,
    pub conds: Vec<RewriteCond>,
    pub line: u32,
    /// The column the directive starts at (for `file:line:col` in logs).
    pub col: u32,
    /// When this rule starts a list: the list's dispatch index, built at
    /// first use (`dispatch`).
    pub index: super::dispatch::IndexSlot,
}

#[derive(Debug, Clone)]
pub struct RuleFlags {
    pub chain: bool,
    pub nosub: bool,
    /// `[F]`, `[G]`, `[R=non-3xx]`: answer this status.
    pub status_rule: bool,
    pub force_redirect: bool,
    /// The `R=`/F/G code (302 by default; 0 for an unknown word).
    pub status: u16,
    pub last: bool,
    pub end: bool,
    pub next: bool,
    pub max_rounds: u32,
    pub skip: u32,
    pub nocase: bool,
    pub noescape: bool,
    pub nosubreq: bool,
    pub proxy: bool,
    pub passthrough: bool,
    pub qsappend: bool,
    pub qsdiscard: bool,
    pub qslast: bool,
    /// A trailing literal `?` in the substitution without QSA (Q4).
    pub qsnone: bool,
    pub discard_path_info: bool,
    pub escape_backrefs: Option<BackrefEscape>,
    pub env: Vec<EnvFlag>,
    pub cookies: Vec<Template>,
    pub forced_type: Option<Template>,
    pub forced_handler: Option<Template>,
    pub unsafe_allow_3f: bool,
    pub unsafe_prefix_stat: bool,
    pub unc: bool,
}

impl Default for RuleFlags {
    fn default() -> Self {
        RuleFlags {
            chain: false,
            nosub: false,
            status_rule: false,
            force_redirect: false,
            status: 302,
            last: false,
            end: false,
            next: false,
            max_rounds: MAX_ROUNDS,
            skip: 0,
            nocase: false,
            noescape: false,
            nosubreq: false,
            proxy: false,
            passthrough: false,
            qsappend: false,
            qsdiscard: false,
            qslast: false,
            qsnone: false,
            discard_path_info: false,
            escape_backrefs: None,
            env: Vec::new(),
            cookies: Vec::new(),
            forced_type: None,
            forced_handler: None,
            unsafe_allow_3f: false,
            unsafe_prefix_stat: false,
            unc: false,
        }
    }
}

#[derive(Debug, Clone)]
pub enum EnvFlag {
    Set(Template, Template),
    Unset(Template),
}

/// A problem with a directive's arguments, with the byte offset (into the
/// raw argument text) and length of the offending part.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ArgError {
    pub message: String,
    pub offset: usize,
    pub len: usize,
    pub help: Option<String>,
}

impl ArgError {
    fn new(message: impl Into<String>, offset: usize, len: usize) -> Self {
        ArgError {
            message: message.into(),
            offset,
            len,
            help: None,
        }
    }
    fn with_help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }
}

/// One argument of `parseargline`, with its offset in the raw text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct RawArg {
    pub text: String,
    pub offset: usize,
}

/// `parseargline`: blanks separate; an argument starting with `"` or `'`
/// runs to the next identical quote; `\` followed by a blank keeps the blank
/// (and the backslash).  Returns up to three arguments; text after the third
/// is ignored.  A missing closing quote takes the rest of the line.
pub(crate) fn parseargline(raw: &str) -> Vec<RawArg> {
    let bytes = raw.as_bytes();
    let mut args = Vec::new();
    let mut i = 0;
    while args.len() < 3 {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= bytes.len() {
            break;
        }
        let quote = match bytes[i] {
            b'"' | b'\'' => Some(bytes[i]),
            _ => None,
        };
        let start = if quote.is_some() { i + 1 } else { i };
        let mut j = start;
        while j < bytes.len() {
            if let Some(q) = quote {
                if bytes[j] == q {
                    break;
                }
            } else if bytes[j].is_ascii_whitespace() {
                break;
            }
            if bytes[j] == b'\\' && j + 1 < bytes.len() && bytes[j + 1].is_ascii_whitespace() {
                j += 2;
                continue;
            }
            j += 1;
        }
        args.push(RawArg {
            text: raw[start..j].to_string(),
            offset: start,
        });
        i = if j < bytes.len() { j + 1 } else { j };
    }
    args
}

/// Splits `[a,b=c]` into (name, value, offset) triples.  Apache:
/// `cmd_parseflagfield`.
fn parse_flag_field(arg: &RawArg, what: &str) -> Result<Vec<(String, String, usize)>, ArgError> {
    let text = &arg.text;
    if !(text.starts_with('[') && text.ends_with(']') && text.len() >= 2) {
        return Err(ArgError::new(
            format!("{what}: bad flag delimiters"),
            arg.offset,
            text.len(),
        )
        .with_help("flags are written `[A,B=x]` with no spaces, or quoted: `\"[A, B=x]\"`"));
    }
    let inner = &text[1..text.len() - 1];
    let mut out = Vec::new();
    let mut pos = arg.offset + 1;
    for part in inner.split(',') {
        let trimmed = part.trim();
        let lead = part.len() - part.trim_start().len();
        let (name, value) = match trimmed.split_once('=') {
            Some((n, v)) => (n.trim().to_string(), v.trim().to_string()),
            None => (trimmed.to_string(), String::new()),
        };
        out.push((name, value, pos + lead));
        pos += part.len() + 1;
    }
    Ok(out)
}

/// Status codes httpd knows (`ap_index_of_response` has an entry).
pub(crate) fn is_known_status(code: u16) -> bool {
    matches!(code,
        100..=103
        | 200..=208 | 226
        | 300..=305 | 307 | 308
        | 400..=418 | 421..=424 | 426 | 428 | 429 | 431 | 451
        | 500..=508 | 510 | 511)
        && code != 418
}

/// Flag names accepted by RewriteRule, for "did you mean" hints.
const RULE_FLAGS: &[&str] = &[
    "B",
    "BNP",
    "BCTLS",
    "BNE",
    "C",
    "CO",
    "DPI",
    "E",
    "END",
    "F",
    "G",
    "H",
    "L",
    "N",
    "NC",
    "NE",
    "NS",
    "P",
    "PT",
    "QSA",
    "QSD",
    "QSL",
    "R",
    "S",
    "T",
    "UnsafeAllow3F",
    "UnsafePrefixStat",
    "UNC",
];

fn suggest(name: &str, options: &[&str]) -> Option<String> {
    let upper = name.to_ascii_uppercase();
    options
        .iter()
        .filter(|o| {
            let o = o.to_ascii_uppercase();
            upper.starts_with(&o) || o.starts_with(&upper) || edit_distance(&o, &upper) <= 1
        })
        .max_by_key(|o| o.len())
        .map(|o| format!("did you mean `{o}`?"))
}

/// Levenshtein distance, for "did you mean" hints.
pub(crate) fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for i in 1..=a.len() {
        let mut cur = vec![i; b.len() + 1];
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            cur[j] = (prev[j] + 1).min(cur[j - 1] + 1).min(prev[j - 1] + cost);
        }
        prev = cur;
    }
    prev[b.len()]
}

/// Applies one RewriteRule flag.  Apache: `cmd_rewriterule_setflag`, which
/// dispatches on the first letter.
fn backref(flags: &mut RuleFlags) -> &mut BackrefEscape {
    flags.escape_backrefs.get_or_insert_with(Default::default)
}

fn set_rule_flag(
    flags: &mut RuleFlags,
    name: &str,
    val: &str,
    offset: usize,
) -> Result<(), ArgError> {
    let lower = name.to_ascii_lowercase();
    let unknown = || {
        let mut e = ArgError::new(
            format!("unknown RewriteRule flag `{name}`"),
            offset,
            name.len().max(1),
        );
        if let Some(h) = suggest(name, RULE_FLAGS) {
            e = e.with_help(h);
        }
        e
    };
    match lower.as_str() {
        "b" | "backrefescaping" => {
            let b = backref(flags);
            if val.is_empty() {
                b.all = true;
            } else {
                b.only = Some(val.as_bytes().to_vec());
            }
        }
        "bnp" | "backrefnoplus" => backref(flags).no_plus = true,
        "bctls" => backref(flags).ctls = true,
        "bne" => {
            if val.is_empty() {
                return Err(ArgError::new(
                    "flag `BNE` needs a value",
                    offset,
                    name.len(),
                ));
            }
            backref(flags).exempt = val.as_bytes().to_vec();
        }
        "c" | "chain" => flags.chain = true,
        "co" | "cookie" => flags.cookies.push(Template::parse(val)),
        "dpi" | "discardpath" | "d" => flags.discard_path_info = true,
        "e" | "env" => {
            if let Some(name) = val.strip_prefix('!') {
                flags.env.push(EnvFlag::Unset(Template::parse(name)));
            } else {
                let (n, v) = val.split_once(':').unwrap_or((val, ""));
                flags
                    .env
                    .push(EnvFlag::Set(Template::parse(n), Template::parse(v)));
            }
        }
        "end" => flags.end = true,
        "f" | "forbidden" => {
            flags.status_rule = true;
            flags.nosub = true;
            flags.status = 403;
        }
        "g" | "gone" => {
            flags.status_rule = true;
            flags.nosub = true;
            flags.status = 410;
        }
        "h" | "handler" => flags.forced_handler = Some(Template::parse(val)),
        "l" | "last" => flags.last = true,
        "n" | "next" => {
            flags.next = true;
            if !val.is_empty() {
                flags.max_rounds = htgate_util::atoi(val).clamp(0, u32::MAX as i64) as u32;
            }
        }
        "nc" | "nocase" => flags.nocase = true,
        "ne" | "noescape" => flags.noescape = true,
        "ns" | "nosubreq" => flags.nosubreq = true,
        "p" | "proxy" => flags.proxy = true,
        "pt" | "passthrough" => flags.passthrough = true,
        "qsa" | "qsappend" => flags.qsappend = true,
        "qsd" | "qsdiscard" => flags.qsdiscard = true,
        "qsl" | "qslast" => flags.qslast = true,
        "r" | "redirect" => {
            flags.force_redirect = true;
            if !val.is_empty() {
                let status: i64 = if val.eq_ignore_ascii_case("permanent") {
                    301
                } else if val.eq_ignore_ascii_case("temp") {
                    302
                } else if val.eq_ignore_ascii_case("seeother") {
                    303
                } else if val.as_bytes()[0].is_ascii_digit() {
                    let code = htgate_util::atoi(val);
                    // httpd accepts 500 and every code in its status table
                    if code != 500 && !((0..=999).contains(&code) && is_known_status(code as u16)) {
                        return Err(ArgError::new(
                            format!("invalid HTTP response code `{val}` for flag `R`"),
                            offset,
                            name.len() + 1 + val.len(),
                        ));
                    }
                    if !(300..400).contains(&code) {
                        flags.status_rule = true;
                        flags.nosub = true;
                    }
                    code
                } else {
                    0
                };
                flags.status = status as u16;
            }
        }
        "s" | "skip" => flags.skip = htgate_util::atoi(val).clamp(0, u32::MAX as i64) as u32,
        "t" | "type" => flags.forced_type = Some(Template::parse(val)),
        "unsafeallow3f" => flags.unsafe_allow_3f = true,
        "unsafeprefixstat" => flags.unsafe_prefix_stat = true,
        "unc" => flags.unc = true,
        // Apache's `d` branch has no error case: any other D... is ignored.
        other if other.starts_with('d') => {}
        _ => return Err(unknown()),
    }
    Ok(())
}

/// Compiles a `RewriteRule` from its raw argument text.  Conditions are
/// attached by the caller.
pub(crate) fn compile_rule(raw: &str, line: u32) -> Result<RewriteRule, ArgError> {
    let args = parseargline(raw);
    if args.len() < 2 {
        return Err(ArgError::new(
            "RewriteRule: bad argument line: a pattern and a substitution are needed",
            0,
            raw.len().max(1),
        )
        .with_help(
            "write `RewriteRule PATTERN SUBSTITUTION [FLAGS]`; use `-` for no substitution",
        ));
    }
    let mut flags = RuleFlags::default();
    if let Some(f) = args.get(2) {
        for (name, val, off) in parse_flag_field(f, "RewriteRule")? {
            if name.is_empty() {
                return Err(ArgError::new("unknown RewriteRule flag ``", off, 1));
            }
            set_rule_flag(&mut flags, &name, &val, off)?;
        }
    }
    let (negate, pat_text) = match args[0].text.strip_prefix('!') {
        Some(rest) => (true, rest.to_string()),
        None => (false, args[0].text.clone()),
    };
    let pattern = Pattern::new(&pat_text, flags.nocase).map_err(|e| {
        ArgError::new(
            format!("RewriteRule: cannot compile regular expression `{pat_text}`: {e}"),
            args[0].offset,
            args[0].text.len(),
        )
    })?;
    let mut subst_text = args[1].text.clone();
    let nosub_dash = subst_text == "-";
    if nosub_dash {
        flags.nosub = true;
    }
    // A trailing literal `?` (SEMANTICS A15/Q4): with QSA it means "split at
    // the last `?`"; without, it is removed and the query is cleared.
    if !flags.nosub && subst_text.ends_with('?') && !subst_text.ends_with("\\?") {
        if flags.qsappend {
            flags.qslast = true;
        } else {
            subst_text.pop();
            flags.qsnone = true;
        }
    }
    let subst_double_slash = subst_text.starts_with("//");
    let subst = if flags.nosub && nosub_dash {
        None
    } else if flags.status_rule {
        // status rules ignore their substitution
        None
    } else {
        Some(Template::parse(&subst_text))
    };
    Ok(RewriteRule {
        pattern,
        pattern_text: args[0].text.clone(),
        negate,
        subst,
        subst_double_slash,
        flags,
        conds: Vec::new(),
        line,
        col: 1,
        index: Default::default(),
    })
}

/// Compiles a `RewriteCond`.  Apache: `cmd_rewritecond` (SEMANTICS G4).
pub(crate) fn compile_cond(raw: &str, line: u32) -> Result<RewriteCond, ArgError> {
    let args = parseargline(raw);
    if args.len() < 2 {
        return Err(ArgError::new(
            "RewriteCond: bad argument line: a test string and a condition pattern are needed",
            0,
            raw.len().max(1),
        ));
    }
    let mut nocase = false;
    let mut ornext = false;
    let mut novary = false;
    if let Some(f) = args.get(2) {
        // SEMANTICS Z5: `-lt 9` makes the 9 the flags argument; say how to
        // write it instead of only "bad flag delimiters".
        let op = args[1].text.trim_start_matches('!');
        let spaced_integer_test = matches!(op, "-lt" | "-le" | "-eq" | "-gt" | "-ge" | "-ne")
            && f.text.chars().all(|c| c.is_ascii_digit() || c == '-');
        let fields = parse_flag_field(f, "RewriteCond").map_err(|e| {
            if spaced_integer_test {
                e.with_help(format!(
                    "write the number glued to the operator: `{op}{}`",
                    f.text
                ))
            } else {
                e
            }
        })?;
        for (name, _val, off) in fields {
            match name.to_ascii_lowercase().as_str() {
                "nc" | "nocase" => nocase = true,
                "or" | "ornext" => ornext = true,
                "nv" | "novary" => novary = true,
                _ => {
                    let mut e = ArgError::new(
                        format!("unknown RewriteCond flag `{name}`"),
                        off,
                        name.len().max(1),
                    );
                    if let Some(h) = suggest(&name, &["NC", "OR", "NV"]) {
                        e = e.with_help(h);
                    }
                    return Err(e);
                }
            }
        }
    }
    let test_text = &args[0].text;
    let (negate, pat) = match args[1].text.strip_prefix('!') {
        Some(rest) => (true, rest),
        None => (false, args[1].text.as_str()),
    };
    let pat_offset = args[1].offset + usize::from(negate);
    let kind = if test_text.eq_ignore_ascii_case("expr") {
        let e = expr::parse_bool(pat).map_err(|e| {
            ArgError::new(
                format!("RewriteCond: cannot parse expression: {e}"),
                pat_offset,
                pat.len(),
            )
        })?;
        CondKind::Expr(Arc::new(e))
    } else if pat.len() >= 2 && pat.starts_with('-') {
        let file_kind = match pat {
            "-d" => Some(CondKind::FileDir),
            "-f" => Some(CondKind::FileRegular),
            "-s" => Some(CondKind::FileNonEmpty),
            "-l" | "-L" | "-h" => Some(CondKind::FileSymlink),
            "-x" => Some(CondKind::FileExecutable),
            "-F" => Some(CondKind::FileSubreq),
            "-U" => Some(CondKind::UrlSubreq),
            _ => None,
        };
        match file_kind {
            Some(k) => k,
            None => {
                let int_op = if pat.len() > 3 {
                    match &pat[..3] {
                        "-lt" => Some((IntOp::Lt, false)),
                        "-le" => Some((IntOp::Le, false)),
                        "-eq" => Some((IntOp::Eq, false)),
                        "-gt" => Some((IntOp::Gt, false)),
                        "-ge" => Some((IntOp::Ge, false)),
                        "-ne" => Some((IntOp::Eq, true)),
                        _ => None,
                    }
                } else {
                    None
                };
                match int_op {
                    Some((op, flip)) => {
                        let k = CondKind::IntCmp(op, Template::parse(&pat[3..]));
                        if flip {
                            return Ok(RewriteCond {
                                test: Template::parse(test_text),
                                kind: k,
                                negate: !negate,
                                nocase: false,
                                ornext,
                                novary,
                                line,
                            });
                        }
                        k
                    }
                    None => regex_kind(pat, nocase, pat_offset)?,
                }
            }
        }
    } else if pat.len() >= 2
        && (pat.starts_with('<') || pat.starts_with('>') || pat.starts_with('='))
    {
        let (op, rest) = if let Some(r) = pat.strip_prefix("<=") {
            (StrOp::Le, r)
        } else if let Some(r) = pat.strip_prefix(">=") {
            (StrOp::Ge, r)
        } else if let Some(r) = pat.strip_prefix('<') {
            (StrOp::Lt, r)
        } else if let Some(r) = pat.strip_prefix('>') {
            (StrOp::Gt, r)
        } else {
            (StrOp::Eq, &pat[1..])
        };
        // `=""` compares with the empty string (mod_rewrite special-cases it).
        let rest = if rest == "\"\"" { "" } else { rest };
        CondKind::StrCmp(op, Template::parse(rest))
    } else {
        regex_kind(pat, nocase, pat_offset)?
    };
    Ok(RewriteCond {
        test: Template::parse(test_text),
        kind,
        negate,
        nocase,
        ornext,
        novary,
        line,
    })
}

fn regex_kind(pat: &str, nocase: bool, offset: usize) -> Result<CondKind, ArgError> {
    Pattern::new(pat, nocase).map(CondKind::Regex).map_err(|e| {
        ArgError::new(
            format!("RewriteCond: cannot compile regular expression `{pat}`: {e}"),
            offset,
            pat.len(),
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn argline() {
        let a = parseargline(r#"^a\ b$ "/x y" [L] junk"#);
        assert_eq!(a.len(), 3);
        assert_eq!(a[0].text, r"^a\ b$");
        assert_eq!(a[1].text, "/x y");
        assert_eq!(a[2].text, "[L]");
    }

    #[test]
    fn flags() {
        let r = compile_rule("^a$ /b [R=301,L,QSA]", 1).unwrap();
        assert!(r.flags.force_redirect && r.flags.last && r.flags.qsappend);
        assert_eq!(r.flags.status, 301);
        assert!(compile_rule("^a$ /b [L,NOTAFLAG]", 1).is_err());
        assert!(compile_rule("^a$ /b [R=418]", 1).is_err());
        assert!(compile_rule("^a$ /b [L, R]", 1).is_err());
        assert!(compile_rule("^a$ /b \"[L, R]\"", 1).is_ok());
        assert!(compile_rule("^a$ /b [L,]", 1).is_err());
        assert!(compile_rule("^a$ /b [DWHATEVER]", 1).is_ok());
        let r = compile_rule("^a$ - [R=503]", 1).unwrap();
        assert!(r.flags.status_rule);
        let r = compile_rule("^a$ /b [R=foo]", 1).unwrap();
        assert_eq!(r.flags.status, 0);
        assert!(compile_rule("^x$", 1).is_err());
        assert!(compile_rule("^(unclosed$ /b", 1).is_err());
    }

    #[test]
    fn conds() {
        let c = compile_cond("%1 -lt9", 1).unwrap();
        assert!(matches!(c.kind, CondKind::IntCmp(IntOp::Lt, _)));
        assert!(compile_cond("%1 -lt 9", 1).is_err());
        let c = compile_cond("%1 !-ne7", 1).unwrap();
        assert!(matches!(c.kind, CondKind::IntCmp(IntOp::Eq, _)) && !c.negate);
        let c = compile_cond("%{QUERY_STRING} =\"\"", 1).unwrap();
        assert!(matches!(c.kind, CondKind::StrCmp(StrOp::Eq, ref t) if t.is_empty()));
        let c = compile_cond("%{X} =", 1).unwrap();
        assert!(matches!(c.kind, CondKind::Regex(_)));
        let c = compile_cond("%{REQUEST_FILENAME} !-f", 1).unwrap();
        assert!(matches!(c.kind, CondKind::FileRegular) && c.negate);
    }
}

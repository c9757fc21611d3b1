//! What happened to one request, step by step, for `htgate explain`.
//!
//! The engine records [`TraceEvent`]s through [`Main::note`] only when a
//! [`Trace`] is attached to the request (`Main::trace`); when serving it is
//! `None`, so each record point costs one branch and builds nothing (the
//! event is made by a closure that is never called).  Rendering lives in
//! `cli::explain`.

use super::pattern::{capture_text, Captures};
use super::request::{FileKind, Main, Req, Stop};
use super::rewrite::{CondKind, RewriteCond, RewriteRule};
use super::site::Htaccess;
use serde::Serialize;

/// The events of one request, in the order they happened.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Trace {
    pub events: Vec<TraceEntry>,
    /// Sub-request nesting of the events being recorded now.
    #[serde(skip)]
    depth: u32,
}

/// One event and the sub-request depth it happened at (0: the request
/// itself, its internal redirects and error documents).
#[derive(Debug, Clone, Serialize)]
pub struct TraceEntry {
    pub depth: u32,
    #[serde(flatten)]
    pub event: TraceEvent,
}

impl Trace {
    pub fn new() -> Trace {
        Trace::default()
    }

    /// Records `event`.  A [`TraceEvent::Request`] sets the depth of what
    /// follows; a [`TraceEvent::SubrequestEnd`] returns to the parent's.
    pub fn push(&mut self, event: TraceEvent) {
        if let TraceEvent::Request {
            subrequest_depth, ..
        } = &event
        {
            self.depth = *subrequest_depth;
        }
        let depth = self.depth;
        if matches!(event, TraceEvent::SubrequestEnd { .. }) {
            self.depth = self.depth.saturating_sub(1);
        }
        self.events.push(TraceEntry { depth, event });
    }
}

/// Everything `explain` can show.  Paths are filesystem paths, `uri`s are
/// decoded URL paths, `line`s are lines of the `.htaccess` being run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TraceEvent {
    /// Processing of a request starts: the client's, an internal
    /// redirect (`redirects` > 0), an error document (`status` not 200) or
    /// a sub-request (mod_dir's index look-up, `-F`, `LA-U`).
    Request {
        uri: String,
        query: Option<String>,
        subrequest_depth: u32,
        redirects: u32,
        status: u16,
    },
    /// A directory of the walk and what its `.htaccess` gave.
    Directory {
        dir: String,
        /// The file, when there is one.
        htaccess: Option<String>,
        /// `none`, `read`, `broken` (errors: 500) or `unreadable` (500).
        state: &'static str,
    },
    /// The file the URL maps to after the directory walk.
    Mapped {
        filename: String,
        path_info: String,
        /// `file`, `directory`, `missing` or `other`.
        kind: &'static str,
    },
    /// Access refused (403).
    Denied { by: String },
    /// mod_rewrite does not run in this directory for this request.
    RewriteSkipped { perdir: String, why: String },
    /// A round over the rules of the `.htaccess` in `perdir` starts.
    RewriteRound {
        perdir: String,
        round: u32,
        base: Option<String>,
    },
    /// A rule's pattern tried against `input` (the path with the
    /// directory prefix stripped).  `matched` counts a `!` negation in.
    Rule {
        line: u32,
        pattern: String,
        negate: bool,
        input: String,
        matched: bool,
        /// `$0`, `$1`, … (empty on no match; `null` for a group that did
        /// not take part).
        captures: Vec<Option<String>>,
    },
    /// A rule not tried at all (`[NS]` or `[R]` in a sub-request).
    RuleSkipped { line: u32, why: String },
    /// A RewriteCond: the test string after expansion and the result.
    Cond {
        line: u32,
        test: String,
        /// `regex`, `-f`, `-d`, `=`, `expr`, …
        kind: &'static str,
        negate: bool,
        ornext: bool,
        matched: bool,
        /// `%0`, `%1`, … of a matching regex condition.
        captures: Vec<Option<String>>,
    },
    /// What a matched rule's substitution became (query split off, the
    /// directory prefix added to a relative result).
    Substitution {
        line: u32,
        result: String,
        query: Option<String>,
    },
    /// A flag that changed what happens next, and how.
    Flag {
        line: u32,
        flag: String,
        effect: String,
    },
    /// `[E=name:value]` set (or unset, `value` null) a variable.
    Env {
        line: u32,
        name: String,
        value: Option<String>,
    },
    /// mod_rewrite answers with this status (F, G, R=4xx, refusals).
    RewriteStatus { status: u16, why: String },
    /// mod_rewrite sends the client elsewhere.
    RewriteRedirect { status: u16, location: String },
    /// mod_rewrite changed nothing in the end (no rule applied, or the
    /// result names the file already requested).
    RewriteUnchanged { why: String },
    /// mod_rewrite's per-directory result: a new request for `target`.
    InternalRedirect { target: String },
    /// `Redirect`/`RedirectMatch` (mod_alias) matched.
    AliasRedirect { status: u16, target: Option<String> },
    /// mod_dir: a directory without its slash is redirected.
    DirectorySlash { location: String },
    /// mod_dir: this index file serves the directory.
    IndexChosen { name: String, filename: String },
    /// mod_dir: the FallbackResource serves a missing file.
    FallbackChosen { uri: String, filename: String },
    /// A sub-request ended: its status and the file it found.
    SubrequestEnd {
        status: u16,
        filename: Option<String>,
    },
}

/// Why mod_rewrite does not run in a directory.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Skip {
    /// C3: the rules' own directory requested without its slash.
    NoSlash,
    /// C4: `[END]` earlier in the request.
    End,
    /// C5: neither FollowSymLinks nor SymLinksIfOwnerMatch (403).
    NoFollowSymLinks,
}

/// Why mod_rewrite answers with a status of its own.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// `[F]`, `[G]`, `[R=4xx]` or a refused `?` (the rule's event says).
    Rule,
    /// AH10411: a space or control character in the rewritten query.
    CtlInQuery,
    /// AH10160: `[P]` without mod_proxy.
    Proxy,
}

/// A flag that acted, with what it did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flag {
    PassThrough,
    End,
    Last,
    /// `[N]`: the round that starts.
    Next(u32),
    Skip(u32),
    /// `[C]` on a rule that did not match.
    ChainBroken,
    /// `[F]`, `[G]` or `[R=non-3xx]`.
    Status(u16),
    /// A `-` substitution.
    NoSubstitution,
    /// A `?` from a back-reference without `[UnsafeAllow3F]`.
    Unsafe3F,
    /// `[R]` with its status.
    Redirect(u16),
}

impl Flag {
    /// The flag as written and a sentence for the customer.
    pub fn describe(self) -> (&'static str, String) {
        match self {
            Flag::PassThrough => ("PT", "the result goes on as a URL; this round stops".into()),
            Flag::End => (
                "END",
                "stops rewriting for the rest of the request: the internal redirect that follows is not rewritten again".into(),
            ),
            Flag::Last => ("L", "last rule of this round".into()),
            Flag::Next(n) => ("N", format!("starts the rules again (round {n})")),
            Flag::Skip(n) => ("S", format!("skips the next {n} rule(s)")),
            Flag::ChainBroken => ("C", "no match: the rest of the chain is skipped".into()),
            Flag::Status(s) => (
                match s {
                    403 => "F",
                    410 => "G",
                    _ => "R",
                },
                format!("answers {s} now"),
            ),
            Flag::NoSubstitution => ("-", "no substitution: only the flags act".into()),
            Flag::Unsafe3F => (
                "UnsafeAllow3F",
                "missing: a `?` that came from a back-reference is refused (403)".into(),
            ),
            Flag::Redirect(s) => ("R", format!("external redirect with status {s}")),
        }
    }
}

fn kind_name(k: FileKind) -> &'static str {
    match k {
        FileKind::Missing => "missing",
        FileKind::File => "file",
        FileKind::Dir => "directory",
        FileKind::Other => "other",
    }
}

fn texts(subject: &str, caps: &Captures) -> Vec<Option<String>> {
    (0..caps.len())
        .map(|i| caps[i].map(|_| capture_text(subject, caps, i)))
        .collect()
}

fn cond_kind(k: &CondKind) -> &'static str {
    match k {
        CondKind::Regex(_) => "regex",
        CondKind::Expr(_) => "expr",
        CondKind::FileDir => "-d",
        CondKind::FileRegular => "-f",
        CondKind::FileNonEmpty => "-s",
        CondKind::FileSymlink => "-l",
        CondKind::FileExecutable => "-x",
        CondKind::FileSubreq => "-F",
        CondKind::UrlSubreq => "-U",
        CondKind::StrCmp(..) => "string comparison",
        CondKind::IntCmp(..) => "integer comparison",
    }
}

impl TraceEvent {
    pub fn request(r: &Req) -> TraceEvent {
        TraceEvent::Request {
            uri: r.uri.clone(),
            query: r.args.clone(),
            subrequest_depth: r.subreq_depth,
            redirects: r.redirects,
            status: r.status,
        }
    }

    pub fn directory(dir: &str, h: &Htaccess) -> TraceEvent {
        let file = format!(
            "{}/{}",
            dir.trim_end_matches('/'),
            super::site::ACCESS_FILE_NAME
        );
        let (htaccess, state) = match h {
            Htaccess::None => (None, "none"),
            Htaccess::Ok(_) => (Some(file), "read"),
            Htaccess::Broken(_) => (Some(file), "broken"),
            Htaccess::Unreadable(_) => (Some(file), "unreadable"),
        };
        TraceEvent::Directory {
            dir: dir.to_string(),
            htaccess,
            state,
        }
    }

    pub fn mapped(r: &Req) -> TraceEvent {
        TraceEvent::Mapped {
            filename: r.filename.clone(),
            path_info: r.path_info.clone(),
            kind: kind_name(r.finfo),
        }
    }

    pub fn denied(by: &str) -> TraceEvent {
        TraceEvent::Denied { by: by.to_string() }
    }

    pub fn skipped(perdir: &str, why: Skip) -> TraceEvent {
        let why = match why {
            Skip::NoSlash => "the rules' own directory without its trailing slash: left to mod_dir",
            Skip::End => "[END] was used earlier in this request",
            Skip::NoFollowSymLinks => {
                return TraceEvent::Denied {
                    by: format!("RewriteRule in {perdir} without Options FollowSymLinks or SymLinksIfOwnerMatch"),
                }
            }
        };
        TraceEvent::RewriteSkipped {
            perdir: perdir.to_string(),
            why: why.to_string(),
        }
    }

    pub fn unchanged(same_file: bool) -> TraceEvent {
        TraceEvent::RewriteUnchanged {
            why: if same_file {
                "the result is the file already requested: no internal redirect"
            } else {
                "no rule changed the request"
            }
            .to_string(),
        }
    }

    pub fn redirect(status: u16, location: &str) -> TraceEvent {
        TraceEvent::RewriteRedirect {
            status,
            location: location.to_string(),
        }
    }

    pub fn internal(target: &str) -> TraceEvent {
        TraceEvent::InternalRedirect {
            target: target.to_string(),
        }
    }

    pub(crate) fn alias(status: u16, target: Option<&str>) -> TraceEvent {
        TraceEvent::AliasRedirect {
            status,
            target: target.map(str::to_string),
        }
    }

    pub fn slash(location: &str) -> TraceEvent {
        TraceEvent::DirectorySlash {
            location: location.to_string(),
        }
    }

    pub fn index(name: &str, rr: &Req) -> TraceEvent {
        TraceEvent::IndexChosen {
            name: name.to_string(),
            filename: rr.filename.clone(),
        }
    }

    pub fn fallback(rr: &Req) -> TraceEvent {
        TraceEvent::FallbackChosen {
            uri: rr.uri.clone(),
            filename: rr.filename.clone(),
        }
    }

    pub fn round(perdir: &str, round: u32, base: Option<&String>) -> TraceEvent {
        TraceEvent::RewriteRound {
            perdir: perdir.to_string(),
            round,
            base: base.cloned(),
        }
    }

    pub fn rule(p: &RewriteRule, input: &str, caps: Option<&Captures>) -> TraceEvent {
        TraceEvent::Rule {
            line: p.line,
            pattern: p.pattern_text.clone(),
            negate: p.negate,
            input: input.to_string(),
            matched: caps.is_some() != p.negate,
            captures: caps.map(|c| texts(input, c)).unwrap_or_default(),
        }
    }

    pub(crate) fn rule_skipped(p: &RewriteRule) -> TraceEvent {
        TraceEvent::RuleSkipped {
            line: p.line,
            why: "[NS] or [R]: not run in a sub-request".to_string(),
        }
    }

    /// `cond_subject`/`cond_caps`: the back-references after the
    /// condition ran (a matching, non-negated regex set them).
    pub fn cond(
        c: &RewriteCond,
        test: &str,
        matched: bool,
        cond_subject: &str,
        cond_caps: &Captures,
    ) -> TraceEvent {
        let own = matched && !c.negate && matches!(c.kind, CondKind::Regex(_));
        TraceEvent::Cond {
            line: c.line,
            test: test.to_string(),
            kind: cond_kind(&c.kind),
            negate: c.negate,
            ornext: c.ornext,
            matched,
            captures: if own {
                texts(cond_subject, cond_caps)
            } else {
                Vec::new()
            },
        }
    }

    pub fn substitution(p: &RewriteRule, r: &Req) -> TraceEvent {
        TraceEvent::Substitution {
            line: p.line,
            result: r.filename.clone(),
            query: r.args.clone(),
        }
    }

    pub fn flag(p: &RewriteRule, flag: Flag) -> TraceEvent {
        let (name, mut effect) = flag.describe();
        // What `[L]` leads to depends on the rule: say it, since "last"
        // is the classic misunderstanding ([L] vs [END]).
        if flag == Flag::Last && !p.flags.force_redirect && p.subst.is_some() {
            effect.push_str(
                "; if the URL changed, it is processed again (internal redirect) and the rules run again on it",
            );
        }
        let flag = name;
        TraceEvent::Flag {
            line: p.line,
            flag: flag.to_string(),
            effect,
        }
    }

    pub fn env(p: &RewriteRule, name: &str, value: Option<&str>) -> TraceEvent {
        TraceEvent::Env {
            line: p.line,
            name: name.to_string(),
            value: value.map(str::to_string),
        }
    }

    pub(crate) fn rewrite_status(status: u16, why: Refusal) -> TraceEvent {
        let why = match why {
            Refusal::Rule => "a rule answers with this status",
            Refusal::CtlInQuery => "a space or control character in the rewritten query (AH10411)",
            Refusal::Proxy => "[P] needs mod_proxy, which htgate does not have (AH10160)",
        };
        TraceEvent::RewriteStatus {
            status,
            why: why.to_string(),
        }
    }

    pub(crate) fn subrequest_end(rr: &Result<(), Stop>, r: &Req) -> TraceEvent {
        match rr {
            Ok(()) => TraceEvent::SubrequestEnd {
                status: r.status,
                filename: (r.finfo == FileKind::File).then(|| r.filename.clone()),
            },
            Err(stop) => TraceEvent::SubrequestEnd {
                status: stop.status,
                filename: None,
            },
        }
    }
}

impl Main<'_> {
    /// Records an event when the request is traced; `event` runs only then.
    #[inline]
    pub fn note(&mut self, event: impl FnOnce() -> TraceEvent) {
        if let Some(t) = self.trace.as_mut() {
            t.push(event());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subrequests_nest_and_return() {
        let mut t = Trace::new();
        let req = |depth| TraceEvent::Request {
            uri: "/".into(),
            query: None,
            subrequest_depth: depth,
            redirects: 0,
            status: 200,
        };
        t.push(req(0));
        t.push(req(1));
        t.push(TraceEvent::denied("x"));
        t.push(TraceEvent::SubrequestEnd {
            status: 200,
            filename: None,
        });
        t.push(TraceEvent::denied("y"));
        let depths: Vec<u32> = t.events.iter().map(|e| e.depth).collect();
        assert_eq!(depths, vec![0, 1, 1, 1, 0]);
    }

    #[test]
    fn json_is_tagged_and_flat() {
        let mut t = Trace::new();
        t.push(TraceEvent::denied("Require all denied"));
        let v = serde_json::to_value(&t).expect("serialises");
        assert_eq!(v["events"][0]["event"], "denied");
        assert_eq!(v["events"][0]["depth"], 0);
        assert_eq!(v["events"][0]["by"], "Require all denied");
    }
}

//! The lints that play requests through the rules ([`super::sim`]):
//! redirect loops (force-HTTPS without an HTTPS condition, host
//! canonicalisation without a host condition, a target that matches its
//! own rule again), internal rewrites that loop because `[L]` is not
//! `[END]`, and rules that catch ACME HTTP-01 challenges.
//!
//! Each finding comes from a request that really ends that way on paper:
//! nothing is reported when a condition the play cannot decide is on the
//! way.

use super::sim::{play, Disk, Played, Rules, Sample, Scenario};
use crate::rewrite::{CondKind, RewriteRule};
use crate::template::{Named, Piece, Var};

/// What is wrong with which rule (an index into the rule list).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Finding {
    pub rule: usize,
    pub message: String,
    pub help: String,
}

const HOSTS: [&str; 2] = ["example.com", "www.example.com"];

/// URL paths to try: ordinary pages and, for each rule, a path that
/// starts with the literal beginning of its pattern.
fn samples(rules: &[RewriteRule]) -> Vec<String> {
    let mut out: Vec<String> = [
        "/",
        "/hello-world/",
        "/hello-world",
        "/blog/2024/post.html",
        "/index.php",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    for r in rules {
        if let Some(prefix) = literal_prefix(&r.pattern_text) {
            for p in [format!("/{prefix}"), format!("/{prefix}x")] {
                if !out.contains(&p) {
                    out.push(p);
                }
            }
        }
    }
    out
}

/// The literal text an anchored pattern starts with (`^old/(.*)` → `old/`).
fn literal_prefix(pattern: &str) -> Option<String> {
    let rest = pattern.strip_prefix('^')?;
    let mut out = String::new();
    let mut chars = rest.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some(n) if n.is_ascii_punctuation() => out.push(n),
                _ => break,
            },
            '.' | '[' | '(' | ')' | '*' | '+' | '?' | '{' | '|' | '$' | '^' => {
                // a quantifier applies to the character before it
                if matches!(c, '*' | '?' | '{') {
                    out.pop();
                }
                break;
            }
            c => out.push(c),
        }
    }
    (!out.is_empty()).then_some(out)
}

/// A pretty URL: nothing of it exists on disk; rewrite targets do.
fn missing(path: &str) -> Scenario {
    let mut known = Vec::new();
    let mut prefix = String::new();
    for comp in path.trim_start_matches('/').split('/') {
        if comp.is_empty() {
            break;
        }
        prefix.push('/');
        prefix.push_str(comp);
        known.push((prefix.clone(), Disk::Missing));
    }
    Scenario {
        known,
        targets_exist: true,
        first_rewrite_only: false,
    }
}

/// A redirect target: its first component with a dot is taken to exist
/// (`/index.php?q=x`); nothing else is known.
fn target(path: &str) -> Scenario {
    let mut s = Scenario {
        known: Vec::new(),
        targets_exist: true,
        first_rewrite_only: false,
    };
    let mut prefix = String::new();
    for comp in path.trim_start_matches('/').split('/') {
        if comp.is_empty() {
            break;
        }
        prefix.push('/');
        prefix.push_str(comp);
        if comp.contains('.') {
            s.known.push((prefix.clone(), Disk::File));
            break;
        }
    }
    s
}

fn reads(r: &RewriteRule, f: &dyn Fn(&Var) -> bool) -> bool {
    r.conds.iter().any(|c| {
        c.test.vars().any(f)
            || match &c.kind {
                CondKind::StrCmp(_, t) | CondKind::IntCmp(_, t) => t.vars().any(f),
                // an ap_expr condition may test anything: count it
                CondKind::Expr(_) => true,
                _ => false,
            }
    })
}

/// Whether a variable tells HTTP from HTTPS.
pub(super) fn is_scheme_var(v: &Var) -> bool {
    match v {
        Var::Named(n) => matches!(n, Named::Https | Named::ServerPort | Named::RequestScheme),
        Var::Header { name, .. } => ["https", "x-forwarded-proto", "x-forwarded-ssl", "forwarded"]
            .iter()
            .any(|h| name.eq_ignore_ascii_case(h)),
        Var::Env(n) => n.to_ascii_uppercase().contains("HTTPS") || n.eq_ignore_ascii_case("PROTO"),
        Var::Ssl(_) => true,
        _ => false,
    }
}

fn is_host_var(v: &Var) -> bool {
    match v {
        Var::Named(n) => *n == Named::ServerName,
        Var::Header { name, .. } => name.eq_ignore_ascii_case("host"),
        _ => false,
    }
}

/// Redirect loops, found by following redirects from plain and HTTPS
/// requests for two host names.
pub(super) fn redirect_loops(rules: &Rules<'_>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for path in samples(rules.rules) {
        for https in [false, true] {
            for host in HOSTS {
                let start = Sample::new(https, host, &path);
                if let Some(f) = follow_redirects(rules, start) {
                    if !out.iter().any(|o| o.rule == f.rule) {
                        out.push(f);
                    }
                }
            }
        }
    }
    for f in static_force_https(rules) {
        if !out.iter().any(|o| o.rule == f.rule) {
            out.push(f);
        }
    }
    out.sort_by_key(|f| f.rule);
    out
}

fn follow_redirects(rules: &Rules<'_>, start: Sample) -> Option<Finding> {
    let mut seen = vec![start.clone()];
    let mut cur = start;
    let mut scenario = missing(&cur.path);
    let mut hops = Vec::new();
    for _ in 0..6 {
        let Played::Redirect {
            location,
            rule,
            internal,
        } = play(rules, &cur, &scenario)
        else {
            return None;
        };
        let next = cur.follow(&location)?;
        let via = internal.last().map(|s| s.path.clone());
        hops.push(Hop {
            from: cur.clone(),
            location: location.clone(),
            rule,
            via,
        });
        if seen.contains(&next) || hops.len() == 6 {
            return describe_loop(rules, &hops);
        }
        scenario = target(&next.path);
        seen.push(next.clone());
        cur = next;
    }
    None
}

/// One redirect of a chain: the request, where it was sent, by which rule,
/// after which internal rewrite (if any).
#[derive(Clone)]
struct Hop {
    from: Sample,
    location: String,
    rule: usize,
    via: Option<String>,
}

fn describe_loop(rules: &Rules<'_>, hops: &[Hop]) -> Option<Finding> {
    // Blame the rule that redirects the request it sent the client to.
    let Hop {
        from,
        location,
        rule,
        ..
    } = hops.last()?.clone();
    let first = hops.first()?.clone();
    let r = rules.rules.get(rule)?;
    let url = |s: &Sample| {
        format!(
            "{}://{}{}",
            if s.https { "https" } else { "http" },
            s.host,
            s.path
        )
    };
    let target_https = location.to_ascii_lowercase().starts_with("https://");
    let host = r.subst.as_ref().and_then(literal_host);
    let (message, help) = if target_https && !reads(r, &is_scheme_var) {
        (
            format!(
                "redirect loop: this force-HTTPS redirect has no HTTPS condition, so `{}` is redirected to `{location}` again and again",
                url(&from)
            ),
            "add `RewriteCond %{HTTPS} !=on` on the line before the rule".to_string(),
        )
    } else if let Some(host) = host.filter(|_| !reads(r, &is_host_var)) {
        (
            format!(
                "redirect loop: this redirect to `{host}` has no host condition, so a request for `{host}` itself (`{}`) is redirected again",
                url(&from)
            ),
            format!(
                "add `RewriteCond %{{HTTP_HOST}} !^{}$ [NC]` on the line before the rule",
                host.replace('.', "\\.")
            ),
        )
    } else if let Some(via) = &first.via {
        (
            format!(
                "redirect loop: `{}` is rewritten to `{via}`, which this rule then redirects to `{}`, and the client starts over",
                url(&first.from),
                first.location
            ),
            "redirect only what the client asked for: add `RewriteCond %{ENV:REDIRECT_STATUS} ^$` before this rule, or end the internal rewrite with [END] instead of [L]".to_string(),
        )
    } else {
        (
            format!(
                "redirect loop: `{}` is redirected to `{}`, which this rule redirects again (and so on)",
                url(&first.from),
                first.location
            ),
            "add a RewriteCond that excludes the target (e.g. `RewriteCond %{REQUEST_URI} !^/new/` when the rule redirects to `/new/…`)".to_string(),
        )
    };
    Some(Finding {
        rule,
        message,
        help,
    })
}

/// The host of a substitution that names one literally
/// (`https://www.example.com/$1`).
fn literal_host(t: &crate::template::Template) -> Option<String> {
    let Some(Piece::Lit(l)) = t.pieces.first() else {
        return None;
    };
    let lower = l.to_ascii_lowercase();
    let rest = lower
        .strip_prefix("https://")
        .or_else(|| lower.strip_prefix("http://"))?;
    let host = rest.split(['/', '?', ':']).next().unwrap_or("");
    // the host must end inside this literal piece
    let complete = rest.len() > host.len() || t.pieces.len() == 1;
    (!host.is_empty() && complete).then(|| host.to_string())
}

/// A redirect to `https://` + the request's own host with no HTTPS
/// condition anywhere before it loops even where the play cannot decide
/// the other conditions.
fn static_force_https(rules: &Rules<'_>) -> Vec<Finding> {
    let mut out = Vec::new();
    for (i, r) in rules.rules.iter().enumerate() {
        let Some(t) = &r.subst else { continue };
        let own_host = match t.pieces.as_slice() {
            [Piece::Lit(l), Piece::Var(v), ..] => {
                l.eq_ignore_ascii_case("https://") && is_host_var(v)
            }
            _ => false,
        };
        let gated = rules.rules[..=i].iter().any(|x| reads(x, &is_scheme_var));
        if own_host && !gated {
            out.push(Finding {
                rule: i,
                message: "redirect loop: this force-HTTPS redirect has no HTTPS condition, so requests that already use HTTPS are redirected again".into(),
                help: "add `RewriteCond %{HTTPS} !=on` on the line before the rule".into(),
            });
        }
    }
    out
}

/// Internal rewrites that loop until Apache's limit of 10 internal
/// redirects (500) because `[L]` only ends one round.
pub(super) fn end_needed(rules: &Rules<'_>) -> Vec<Finding> {
    let mut out: Vec<Finding> = Vec::new();
    for path in samples(rules.rules) {
        let start = Sample::new(true, HOSTS[0], &path);
        let Played::TooManyRedirects { internal } = play(rules, &start, &missing(&path)) else {
            continue;
        };
        let Some(step) = internal.get(1).or(internal.first()) else {
            continue;
        };
        if out.iter().any(|f| f.rule == step.rule) {
            continue;
        }
        let first = internal.first().map(|s| s.path.clone()).unwrap_or_default();
        out.push(Finding {
            rule: step.rule,
            message: format!(
                "`[L]` does not stop this rewrite: after the internal redirect to `{first}` the rules run again and rewrite `{}` once more, until the limit of 10 internal redirects (500)",
                internal.get(1).map(|s| s.path.as_str()).unwrap_or(first.as_str())
            ),
            help: "use `[END]` instead of `[L]`, or add a condition that excludes the target, e.g. `RewriteCond %{REQUEST_FILENAME} !-f` or `RewriteCond %{REQUEST_URI} !^/index\\.php`".into(),
        });
    }
    out
}

/// The URL an ACME HTTP-01 validation fetches (plain HTTP).
pub(super) const ACME_PATH: &str = "/.well-known/acme-challenge/Zx9_Yw-8aBcD";

/// Rules that answer, redirect away or rewrite the challenge URL, which
/// exists as a file (the ACME client wrote it).
pub(super) fn acme_caught(rules: &Rules<'_>) -> Vec<Finding> {
    let scenario = Scenario {
        known: vec![
            ("/.well-known".into(), Disk::Dir),
            ("/.well-known/acme-challenge".into(), Disk::Dir),
            (ACME_PATH.into(), Disk::File),
        ],
        targets_exist: false,
        first_rewrite_only: true,
    };
    let start = Sample::new(false, HOSTS[0], ACME_PATH);
    let (rule, what) = match play(rules, &start, &scenario) {
        Played::Status { status, rule, .. } => (rule, format!("answers {status}")),
        Played::Redirect { location, rule, .. } => {
            let kept = start.follow(&location).is_some_and(|n| n.path == ACME_PATH);
            if kept {
                return Vec::new();
            }
            (rule, format!("redirects it to `{location}`"))
        }
        Played::Served { path, internal } if path != ACME_PATH => match internal.first() {
            Some(step) => (step.rule, format!("rewrites it to `{path}`")),
            None => return Vec::new(),
        },
        _ => return Vec::new(),
    };
    vec![Finding {
        rule,
        message: format!(
            "this rule catches `/.well-known/acme-challenge/…` (it {what}): with Apache or another server that does not answer ACME challenges before .htaccess, certificate renewal (HTTP-01) breaks; htgate answers them first in config mode"
        ),
        help: "put `RewriteRule ^\\.well-known/acme-challenge/ - [L]` before this rule, or add `RewriteCond %{REQUEST_URI} !^/\\.well-known/` to it".into(),
    }]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes() {
        assert_eq!(literal_prefix("^old/(.*)$").as_deref(), Some("old/"));
        assert_eq!(
            literal_prefix(r"^index\.php$").as_deref(),
            Some("index.php")
        );
        assert_eq!(literal_prefix("^wp-admin$").as_deref(), Some("wp-admin"));
        assert_eq!(literal_prefix("^abc?").as_deref(), Some("ab"));
        assert_eq!(literal_prefix("(.*)"), None);
        assert_eq!(literal_prefix("^(.*)"), None);
    }
}

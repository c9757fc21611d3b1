//! Finding the rules of a long `RewriteRule` list that may match a request
//! without running every rule's regex.
//!
//! A redirect map of 2,000 `RewriteRule ^old-page-N/?$ /new-page-N [R=301,L]`
//! lines costs 2,000 regex searches per request when it is run rule by
//! rule.  Most such rules are anchored (`^`) and start with literal text,
//! which the subject must start with for the rule to match at all.  A
//! [`RuleIndex`] keeps those literal prefixes in a trie: one walk along the
//! subject gives the rules whose prefix it has ("hits"); every other rule
//! whose pattern has such a prefix cannot match.
//!
//! The list still runs in order with Apache's semantics
//! (`apply_rewrite_list`): the index only lets it jump over rules whose
//! pattern cannot match, which is exactly what running them would do (a
//! rule whose pattern does not match has no effect, conditions and flags
//! included) except for two cases kept out of the index and always run:
//! negated patterns (`!^old`: not matching is matching) and rules in a
//! chain (`[C]`: a chained rule that does not match skips the rest of its
//! chain).  Skips (`[S]`) and restarts (`[N]`) move the position as usual;
//! a rewrite changes the subject, so the hits are looked up again.

#[cfg(any(test, feature = "test-support"))]
use super::request::{Main, Req, Stop};
use super::rewrite::RewriteRule;
use std::sync::{Arc, OnceLock};

/// Lists shorter than this run rule by rule: an index would not pay.
pub(crate) const MIN_INDEXED: usize = 8;

/// The index of the rule list that starts with the rule holding it (the
/// first rule of each compiled list), built at the list's first use.  A
/// copy of a rule starts without one: it may end up in another list.
#[derive(Default)]
pub struct IndexSlot(OnceLock<Option<Arc<RuleIndex>>>);

impl Clone for IndexSlot {
    fn clone(&self) -> Self {
        IndexSlot::default()
    }
}

impl std::fmt::Debug for IndexSlot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("IndexSlot")
    }
}

impl IndexSlot {
    /// The index of `list` (which must start with the rule holding this
    /// slot); `None` for a list too short or without literal prefixes.
    pub fn get(&self, list: &[RewriteRule]) -> Option<&RuleIndex> {
        self.0
            .get_or_init(|| RuleIndex::build(list).map(Arc::new))
            .as_deref()
    }
}

/// The literal text every match of `pattern` starts with, for a pattern
/// anchored with `^` at the start: the characters up to the first one that
/// is not plain text (a class, group, dot, anchor, escape of a letter or
/// digit), and not the last one when a quantifier follows it.  `None` when
/// there is none, or when the pattern has a `|` anywhere (an alternative
/// would not be anchored).  Conservative: a shorter prefix only means more
/// rules are tried.
pub(crate) fn anchored_prefix(pattern: &str) -> Option<Vec<u8>> {
    let b = pattern.as_bytes();
    if b.first() != Some(&b'^') || b.contains(&b'|') {
        return None;
    }
    let mut out = Vec::new();
    let mut i = 1;
    while i < b.len() {
        let (lit, next) = match b[i] {
            // `\.`, `\-`, `\/`: the character itself; `\d`, `\Q`, `\1`...
            // are not text.
            b'\\' => match b.get(i + 1) {
                Some(&n) if n.is_ascii_punctuation() => (n, i + 2),
                _ => break,
            },
            b'.' | b'[' | b']' | b'(' | b')' | b'*' | b'+' | b'?' | b'{' | b'}' | b'^' | b'$' => {
                break
            }
            c if c.is_ascii() && !c.is_ascii_control() => (c, i + 1),
            // bytes of a non-ASCII character, control characters
            _ => break,
        };
        if matches!(b.get(next), Some(b'*' | b'+' | b'?' | b'{')) {
            break;
        }
        out.push(lit);
        i = next;
    }
    (!out.is_empty()).then_some(out)
}

#[derive(Default)]
struct Node {
    /// (byte, child), sorted by byte.
    edges: Vec<(u8, u32)>,
    /// Rules whose prefix ends here.
    rules: Vec<u32>,
}

/// Literal prefixes, byte by byte.
struct Trie {
    nodes: Vec<Node>,
}

impl Trie {
    fn new() -> Trie {
        Trie {
            nodes: vec![Node::default()],
        }
    }

    fn insert(&mut self, key: &[u8], rule: u32) {
        let mut at = 0usize;
        for &c in key {
            let next = match self.nodes[at].edges.binary_search_by_key(&c, |e| e.0) {
                Ok(k) => self.nodes[at].edges[k].1 as usize,
                Err(k) => {
                    let id = self.nodes.len();
                    self.nodes.push(Node::default());
                    self.nodes[at].edges.insert(k, (c, id as u32));
                    id
                }
            };
            at = next;
        }
        self.nodes[at].rules.push(rule);
    }

    /// Appends the rules whose prefix `subject` starts with (`fold`: the
    /// subject's ASCII letters lower-cased, for `[NC]` rules).
    fn walk(&self, subject: &[u8], fold: bool, out: &mut Vec<u32>) {
        let mut at = 0usize;
        for &c in subject {
            let c = if fold { c.to_ascii_lowercase() } else { c };
            let node = &self.nodes[at];
            match node.edges.iter().find(|e| e.0 == c) {
                Some(&(_, next)) => at = next as usize,
                None => return,
            }
            out.extend_from_slice(&self.nodes[at].rules);
        }
    }

    fn is_empty(&self) -> bool {
        self.nodes.len() == 1
    }
}

/// Which rules of one list may match a subject.
pub struct RuleIndex {
    len: usize,
    /// Rules tried whatever the subject (no literal prefix, negated, in a
    /// chain), ascending.
    always: Vec<u32>,
    exact: Trie,
    /// `[NC]` rules' prefixes, lower-case.
    folded: Trie,
}

impl RuleIndex {
    /// The index of `list`; `None` when it would not help.
    pub fn build(list: &[RewriteRule]) -> Option<RuleIndex> {
        if list.len() < MIN_INDEXED || list.len() > u32::MAX as usize {
            return None;
        }
        let mut ix = RuleIndex {
            len: list.len(),
            always: Vec::new(),
            exact: Trie::new(),
            folded: Trie::new(),
        };
        let mut prev_chained = false;
        for (i, rule) in list.iter().enumerate() {
            let in_chain = prev_chained || rule.flags.chain;
            prev_chained = rule.flags.chain;
            let prefix = if rule.negate || in_chain {
                None
            } else {
                anchored_prefix(&rule.pattern_text)
            };
            match prefix {
                Some(p) if rule.flags.nocase => ix.folded.insert(&p.to_ascii_lowercase(), i as u32),
                Some(p) => ix.exact.insert(&p, i as u32),
                None => ix.always.push(i as u32),
            }
        }
        if ix.exact.is_empty() && ix.folded.is_empty() {
            return None;
        }
        Some(ix)
    }

    /// The rules (ascending) whose literal prefix `subject` starts with,
    /// into `out`.  Nothing is allocated when there are none.
    pub(crate) fn hits(&self, subject: &str, out: &mut Vec<u32>) {
        out.clear();
        self.exact.walk(subject.as_bytes(), false, out);
        if !self.folded.is_empty() {
            self.folded.walk(subject.as_bytes(), true, out);
        }
        out.sort_unstable();
    }

    /// The first rule at or after `i` that may match (given the subject's
    /// `hits`), or the list's length when there is none.
    pub fn next(&self, i: usize, hits: &[u32]) -> usize {
        let first_from = |v: &[u32]| {
            v.get(v.partition_point(|&x| (x as usize) < i))
                .map_or(usize::MAX, |&x| x as usize)
        };
        first_from(&self.always).min(first_from(hits)).min(self.len)
    }
}

/// The rules of a per-directory config in the order they run: usually one
/// file's list (no copy), several when `RewriteOptions Inherit` joins a
/// parent's.
pub(crate) enum RuleSeq<'a> {
    One(&'a [RewriteRule]),
    Many(Vec<&'a RewriteRule>),
}

impl<'a> RuleSeq<'a> {
    pub(crate) fn new(lists: &'a [Arc<Vec<RewriteRule>>]) -> RuleSeq<'a> {
        let mut non_empty = lists.iter().filter(|l| !l.is_empty());
        match (non_empty.next(), non_empty.next()) {
            (None, _) => RuleSeq::One(&[]),
            (Some(one), None) => RuleSeq::One(one),
            _ => RuleSeq::Many(lists.iter().flat_map(|l| l.iter()).collect()),
        }
    }

    pub(crate) fn len(&self) -> usize {
        match self {
            RuleSeq::One(l) => l.len(),
            RuleSeq::Many(v) => v.len(),
        }
    }

    pub(crate) fn get(&self, i: usize) -> &'a RewriteRule {
        match self {
            RuleSeq::One(l) => &l[i],
            RuleSeq::Many(v) => v[i],
        }
    }

    /// The index of a single list (a joined one runs rule by rule: a
    /// chain may cross from one file's rules into the next).
    pub(crate) fn index(&self) -> Option<&'a RuleIndex> {
        match self {
            RuleSeq::One(l) => l.first().and_then(|r| r.index.get(l)),
            RuleSeq::Many(_) => None,
        }
    }
}

// Bench scaffolding: never in the binary.
#[cfg(any(test, feature = "test-support"))]
impl Main<'_> {
    /// Runs only mod_rewrite's per-directory fixup on a request whose
    /// directory walk is done (for `benches/engine.rs`, which measures rule
    /// evaluation apart from the rest of the request).
    pub fn rewrite_phase(&mut self, r: &mut Req) -> Result<(), Stop> {
        self.rewrite_fixup(r)
    }
}

#[cfg(any(test, feature = "test-support"))]
impl<'a> Main<'a> {
    /// The per-request state of a plain GET of `site` over HTTP (or TLS),
    /// for benches that drive single phases.
    pub fn for_bench(site: &'a super::site::Site, tls: bool) -> Main<'a> {
        let mut headers_in = http::HeaderMap::new();
        headers_in.insert(
            http::header::HOST,
            http::HeaderValue::from_static("www.example.com"),
        );
        Main {
            site,
            method: "GET".into(),
            protocol: "HTTP/1.1".into(),
            the_request: "GET / HTTP/1.1".into(),
            headers_in: std::borrow::Cow::Owned(headers_in),
            tls,
            remote: std::net::SocketAddr::from(([127, 0, 0, 1], 50000)),
            local: std::net::SocketAddr::from(([127, 0, 0, 1], if tls { 443 } else { 80 })),
            server_name: "www.example.com".into(),
            server_port: if tls { 443 } else { 80 },
            err_headers_out: Vec::new(),
            cookies_set: Vec::new(),
            request_time: std::time::SystemTime::now(),
            htaccess_seen: Default::default(),
            trace: None,
            user: None,
            budget_at: None,
            inline: false,
            offload: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rewrite::compile_rule;

    #[test]
    fn prefixes() {
        let p = |s: &str| anchored_prefix(s).map(|v| String::from_utf8(v).expect("ascii"));
        assert_eq!(p("^old-page-12/?$").as_deref(), Some("old-page-12"));
        assert_eq!(p("^index\\.php$").as_deref(), Some("index.php"));
        assert_eq!(p("^abc?").as_deref(), Some("ab"));
        assert_eq!(p("^ab*c").as_deref(), Some("a"));
        assert_eq!(p("^a{2}").as_deref(), None);
        assert_eq!(
            p("^core/install\\.php").as_deref(),
            Some("core/install.php")
        );
        assert_eq!(p("^\\d+"), None);
        assert_eq!(p("^(.*)$"), None);
        assert_eq!(p("^foo|bar"), None, "alternatives are not anchored");
        assert_eq!(p("old-page"), None, "not anchored");
        assert_eq!(p("^caf\u{e9}").as_deref(), Some("caf"));
        assert_eq!(p("^a\\ b").as_deref(), Some("a"));
    }

    fn list(lines: &[&str]) -> Vec<RewriteRule> {
        lines
            .iter()
            .enumerate()
            .map(|(i, l)| compile_rule(l, i as u32 + 1).expect("rule compiles"))
            .collect()
    }

    /// The rules a sequential run would try with a matching pattern must
    /// all be candidates.
    fn check(rules: &[RewriteRule], subjects: &[&str]) {
        let ix = RuleIndex::build(rules).expect("indexed");
        let mut hits = Vec::new();
        for s in subjects {
            ix.hits(s, &mut hits);
            let mut candidates = Vec::new();
            let mut i = ix.next(0, &hits);
            while i < rules.len() {
                candidates.push(i);
                i = ix.next(i + 1, &hits);
            }
            for (k, r) in rules.iter().enumerate() {
                let matches = r.pattern.is_match(s) != r.negate;
                let in_chain = r.flags.chain || (k > 0 && rules[k - 1].flags.chain);
                if matches || in_chain {
                    assert!(candidates.contains(&k), "{s}: rule {k} must be tried");
                }
            }
        }
    }

    #[test]
    fn candidates_cover_every_rule_that_matches() {
        let mut lines: Vec<String> = (1..=40)
            .map(|n| format!("^old-page-{n}/?$ /new-page-{n} [R=301,L]"))
            .collect();
        lines.push("^Shop/(.*)$ /store/$1 [NC,L]".into());
        lines.push("!^keep - [E=x:1]".into());
        lines.push("^chain-a - [C]".into());
        lines.push("^chain-b - [L]".into());
        lines.push("\\.php$ - [L]".into());
        let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
        let rules = list(&refs);
        check(
            &rules,
            &[
                "old-page-1",
                "old-page-40/",
                "old-page-4",
                "SHOP/x",
                "shop/",
                "keep",
                "chain-b",
                "x.php",
                "about.html",
                "",
            ],
        );
        let ix = RuleIndex::build(&rules).expect("indexed");
        let mut hits = Vec::new();
        ix.hits("about.html", &mut hits);
        assert!(hits.is_empty() && hits.capacity() == 0, "no allocation");
        ix.hits("old-page-40", &mut hits);
        assert_eq!(hits, vec![3, 39]);
    }

    #[test]
    fn short_lists_are_not_indexed() {
        let rules = list(&["^a - [L]", "^b - [L]"]);
        assert!(RuleIndex::build(&rules).is_none());
        assert!(rules[0].index.get(&rules).is_none());
    }
}

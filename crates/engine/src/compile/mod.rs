//! `.htaccess` syntax tree → [`DirConfig`]: the directive table.
//!
//! Every directive htgate knows is listed in [`directive_kind`]; an unknown
//! one is an error, as in Apache (`Invalid command ..., perhaps misspelled`),
//! which makes the whole directory answer 500.  Directives that are accepted
//! but have no effect in htgate give a warning that says so.  All problems of
//! a file are reported in one pass.

use super::access::{
    AccessCompat, AllowFrom, AuthzBlock, AuthzItem, Combine, IpMatch, MethodLimit, Order, Provider,
};
use super::config::*;
use super::headers;
use super::pattern::Pattern;
use super::rewrite::{self, ArgError, RewriteCond, RewriteRule};
use htgate_syntax::expr;
use htgate_syntax::htaccess::{Diagnostic, Directive, File, Node, Section, Span};
use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

mod auth;
mod authz;
mod core;
mod env;
mod filters;
mod mod_alias;
mod mod_autoindex;
mod mod_dir;
mod mod_expires;
mod mod_headers;
mod mod_mime;
mod mod_rewrite;
mod mod_ssl;
mod php;

/// One Apache module's `.htaccess` directives, as its `command_rec`
/// table: the names in Apache's spelling and the function that compiles
/// them into the directory's config.
struct Table {
    names: &'static [&'static str],
    compile: fn(&Directive, &str, &mut Context, &mut Vec<Diagnostic>),
}

/// Every module's table: the directives htgate knows.
const TABLES: &[Table] = &[
    mod_rewrite::TABLE,
    core::TABLE,
    mod_dir::TABLE,
    mod_alias::TABLE,
    mod_headers::TABLE,
    mod_mime::TABLE,
    filters::TABLE,
    php::TABLE,
    mod_expires::TABLE,
    env::TABLE,
    authz::TABLE,
    auth::TABLE,
    mod_autoindex::TABLE,
    mod_ssl::TABLE,
];

/// The table that has `lname` (lower case), looked up by name.
fn table_for(lname: &str) -> Option<&'static Table> {
    static BY_NAME: OnceLock<HashMap<String, &'static Table>> = OnceLock::new();
    BY_NAME
        .get_or_init(|| {
            let mut map = HashMap::new();
            for t in TABLES {
                for n in t.names {
                    map.insert(n.to_ascii_lowercase(), t);
                }
            }
            map
        })
        .get(lname)
        .copied()
}

/// The Apache version htgate behaves as (for `<IfVersion>`).
pub(crate) const APACHE_VERSION: (u32, u32, u32) = (2, 4, 71);

/// Modules htgate implements, by source file name and module identifier:
/// `<IfModule>` of these is true.
const MODULES: &[(&str, &str)] = &[
    ("core.c", "core_module"),
    ("http_core.c", "http_module"),
    ("mod_so.c", "so_module"),
    ("event.c", "mpm_event_module"),
    ("mod_authn_core.c", "authn_core_module"),
    ("mod_authn_file.c", "authn_file_module"),
    ("mod_auth_basic.c", "auth_basic_module"),
    ("mod_authz_core.c", "authz_core_module"),
    ("mod_authz_host.c", "authz_host_module"),
    ("mod_authz_user.c", "authz_user_module"),
    ("mod_access_compat.c", "access_compat_module"),
    ("mod_mime.c", "mime_module"),
    ("mod_negotiation.c", "negotiation_module"),
    ("mod_dir.c", "dir_module"),
    ("mod_autoindex.c", "autoindex_module"),
    ("mod_alias.c", "alias_module"),
    ("mod_rewrite.c", "rewrite_module"),
    ("mod_headers.c", "headers_module"),
    ("mod_expires.c", "expires_module"),
    ("mod_env.c", "env_module"),
    ("mod_setenvif.c", "setenvif_module"),
    ("mod_filter.c", "filter_module"),
    ("mod_socache_shmcb.c", "socache_shmcb_module"),
    ("mod_ssl.c", "ssl_module"),
    ("mod_log_config.c", "log_config_module"),
    ("mod_unixd.c", "unixd_module"),
    ("mod_version.c", "version_module"),
];

pub(crate) fn module_loaded(name: &str) -> bool {
    MODULES
        .iter()
        .any(|(file, id)| name.eq_ignore_ascii_case(file) || name == *id)
}

/// Modules a site has beyond the reference environment's (which has no
/// mod_deflate and no mod_proxy): a hosted site has mod_deflate, and
/// mod_proxy + mod_proxy_fcgi when it runs PHP-FPM.  They decide which
/// `<IfModule>` blocks apply, as they would on the host's Apache.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub struct Modules {
    pub deflate: bool,
    pub proxy_fcgi: bool,
}

impl Modules {
    /// A hosted site's modules.
    pub fn hosting(php: bool) -> Modules {
        Modules {
            deflate: true,
            proxy_fcgi: php,
        }
    }

    pub fn loaded(self, name: &str) -> bool {
        if module_loaded(name) {
            return true;
        }
        let is = |file: &str, id: &str| name.eq_ignore_ascii_case(file) || name == id;
        (self.deflate && is("mod_deflate.c", "deflate_module"))
            || (self.proxy_fcgi
                && (is("mod_proxy.c", "proxy_module")
                    || is("mod_proxy_fcgi.c", "proxy_fcgi_module")))
    }
}

/// The result of compiling one file.
#[derive(Debug, Clone)]
pub struct Compiled {
    pub config: DirConfig,
    pub diagnostics: Vec<Diagnostic>,
}

impl Compiled {
    pub fn has_errors(&self) -> bool {
        self.diagnostics.iter().any(|d| d.is_error())
    }
}

/// Parses and compiles one `.htaccess` source.
pub fn compile_source(source: &[u8]) -> Compiled {
    compile_source_with(source, Modules::default())
}

/// [`compile_source`] for a site with `modules` beyond the reference set.
pub(crate) fn compile_source_with(source: &[u8], modules: Modules) -> Compiled {
    let (file, mut diags) = htgate_syntax::htaccess::parse(source);
    let count = count_nodes(&file.nodes);
    if count > MAX_DIRECTIVES {
        // SECURITY: one customer's file cannot make a program so large that
        // compiling or running it costs the server more than a real site's
        diags.push(Diagnostic::error(
            Span {
                offset: 0,
                line: 1,
                col: 1,
                len: 1,
            },
            format!("this file has {count} directives; htgate accepts at most {MAX_DIRECTIVES}"),
        ));
        return Compiled {
            config: DirConfig::default(),
            diagnostics: diags,
        };
    }
    let mut c = compile_file_with(&file, modules);
    diags.append(&mut c.diagnostics);
    diags.sort_by_key(|d| (d.span.line, d.span.col));
    Compiled {
        config: c.config,
        diagnostics: diags,
    }
}

/// Directives and sections a file may hold (the largest real-world file,
/// h5bp's, has about 120; WordPress redirect plugins write a few thousand).
pub(crate) const MAX_DIRECTIVES: usize = 20_000;

fn count_nodes(nodes: &[Node]) -> usize {
    nodes
        .iter()
        .map(|n| match n {
            Node::Directive(_) => 1,
            Node::Section(s) => 1 + count_nodes(&s.body),
        })
        .sum()
}

/// Compiles a parsed file with `modules` beyond the reference set.
pub(crate) fn compile_file_with(file: &File, modules: Modules) -> Compiled {
    let mut diags = Vec::new();
    let mut ctx = Context {
        modules,
        ..Default::default()
    };
    compile_nodes(&file.nodes, &mut ctx, &mut diags, Scope::Top);
    let config = ctx.finish();
    Compiled {
        config,
        diagnostics: diags,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scope {
    Top,
    Files,
    If,
}

#[derive(Default)]
struct Context {
    /// Which `<IfModule>` blocks apply.
    modules: Modules,
    config: DirConfig,
    pending_conds: Vec<RewriteCond>,
    rules: Vec<RewriteRule>,
    rewrite_seen: bool,
    limit: Option<MethodLimit>,
    authz_items: Vec<(Option<MethodLimit>, AuthzItem)>,
    authz_seen: bool,
    /// The enclosing authz section is a `<RequireAll>` (the file's own
    /// top-level section is an implicit OR).
    authz_in_all: bool,
    mime: Option<MimeConf>,
    expires: Option<ExpiresConf>,
}

impl Context {
    fn finish(mut self) -> DirConfig {
        // Conditions not followed by a rule are dropped (SEMANTICS A16).
        if self.rewrite_seen {
            let rw = self.config.rewrite.get_or_insert_with(RewriteConf::default);
            rw.rules = Arc::new(std::mem::take(&mut self.rules));
        }
        if self.authz_seen {
            self.config.authz = Some(AuthzBlock {
                combine: Combine::Any,
                items: self.authz_items,
            });
        }
        self.config.mime = self.mime;
        self.config.expires = self.expires;
        self.config
    }
    fn rewrite(&mut self) -> &mut RewriteConf {
        self.rewrite_seen = true;
        self.config.rewrite.get_or_insert_with(RewriteConf::default)
    }
    fn access(&mut self) -> &mut AccessCompat {
        self.config
            .access_compat
            .get_or_insert_with(AccessCompat::default)
    }
}

fn span_at(base: Span, raw: &str, offset: usize, len: usize) -> Span {
    let offset = offset.min(raw.len());
    let prefix = raw.get(..offset).unwrap_or(raw);
    Span {
        offset: base.offset + offset,
        line: base.line,
        col: base.col + prefix.chars().count() as u32,
        len: len.max(1),
    }
}

fn arg_diag(d: &Directive, e: ArgError) -> Diagnostic {
    let mut diag = Diagnostic::error(
        span_at(d.args_span, &d.raw_args, e.offset, e.len),
        e.message,
    );
    if let Some(h) = e.help {
        diag = diag.with_help(h);
    }
    diag
}

fn whole(d: &Directive) -> Span {
    Span {
        len: d.name.len(),
        ..d.span
    }
}

fn args_span(d: &Directive) -> Span {
    Span {
        len: d.raw_args.len().max(1),
        ..d.args_span
    }
}

fn compile_nodes(nodes: &[Node], ctx: &mut Context, diags: &mut Vec<Diagnostic>, scope: Scope) {
    let mut i = 0;
    while i < nodes.len() {
        match &nodes[i] {
            Node::Directive(d) => compile_directive(d, ctx, diags, scope),
            Node::Section(s) => {
                let lname = s.name.to_ascii_lowercase();
                if lname == "if" {
                    // Collect the chain: <If> [<ElseIf>...] [<Else>]
                    let mut chain = vec![s];
                    while let Some(Node::Section(n)) = nodes.get(i + 1) {
                        let nl = n.name.to_ascii_lowercase();
                        if nl == "elseif" || nl == "else" {
                            chain.push(n);
                            i += 1;
                            if nl == "else" {
                                break;
                            }
                        } else {
                            break;
                        }
                    }
                    compile_if_chain(&chain, ctx, diags);
                } else {
                    compile_section(s, ctx, diags, scope);
                }
            }
        }
        i += 1;
    }
}

/// The `<Name` of a section's opening line.
fn opening_tag(s: &Section) -> Span {
    Span {
        len: s.name.len() + 1,
        ..s.span
    }
}

fn unclosed(s: &Section) -> Diagnostic {
    Diagnostic::error(
        opening_tag(s),
        format!(
            "`<{}>` section is not closed: `</{}>` is missing",
            s.name, s.name
        ),
    )
    .with_help(format!("add `</{}>` where the section ends", s.name))
}

fn section_arg(s: &Section) -> String {
    let raw = s.raw_args.trim();
    if s.args.len() == 1 {
        s.args[0].text.clone()
    } else {
        raw.to_string()
    }
}

fn compile_section(s: &Section, ctx: &mut Context, diags: &mut Vec<Diagnostic>, scope: Scope) {
    let lname = s.name.to_ascii_lowercase();
    match lname.as_str() {
        "ifmodule" => {
            let arg = section_arg(s);
            let (neg, name) = match arg.strip_prefix('!') {
                Some(n) => (true, n),
                None => (false, arg.as_str()),
            };
            if name.is_empty() {
                diags.push(Diagnostic::error(s.span, "`<IfModule>` needs a module name"));
                return;
            }
            let active = ctx.modules.loaded(name) != neg;
            if !s.closed && !active {
                diags.push(unclosed(s));
                return;
            }
            if !s.closed {
                // Apache accepts it silently (the file's end closes it);
                // say so, and where it opened, before a later edit below
                // it lands inside by surprise.
                diags.push(Diagnostic::warning(
                    opening_tag(s),
                    format!(
                        "`<{}>` is never closed: Apache accepts that, and everything after this line to the end of the file is inside it",
                        s.name
                    ),
                ).with_help(format!("add `</{}>` where the section ends", s.name)));
            }
            if active {
                compile_nodes(&s.body, ctx, diags, scope);
            }
        }
        "ifversion" => match if_version(&s.args) {
            Ok(active) => {
                if !s.closed {
                    diags.push(unclosed(s));
                }
                if active {
                    compile_nodes(&s.body, ctx, diags, scope);
                }
            }
            Err(e) => diags.push(Diagnostic::error(
                Span {
                    len: s.raw_args.len().max(1),
                    ..s.args_span
                },
                e,
            )),
        },
        "ifdefine" => {
            if !s.closed {
                diags.push(unclosed(s));
            }
            let arg = section_arg(s);
            // No -D parameters are ever defined in htgate.
            if arg.starts_with('!') {
                compile_nodes(&s.body, ctx, diags, scope);
            }
        }
        "files" | "filesmatch" => {
            if !s.closed {
                diags.push(unclosed(s));
                return;
            }
            if scope == Scope::If {
                // Apache accepts it, and its file walk never looks inside
                // `<If>`: the section does nothing (recorded in
                // fixtures/conformance/htgate-day-one-directives.case).
                diags.push(Diagnostic::warning(
                    s.span,
                    format!("`<{}>` inside `<If>` is accepted by Apache but never applied: nothing in it takes effect", s.name),
                ));
                return;
            }
            if scope != Scope::Top {
                diags.push(Diagnostic::error(
                    s.span,
                    format!("`<{}>` cannot occur inside another `<Files>` section", s.name),
                ));
                return;
            }
            let words: Vec<String> = s.args.iter().map(|a| a.text.clone()).collect();
            let (regex, pat) = if lname == "filesmatch" {
                (true, words.first().cloned().unwrap_or_default())
            } else if words.first().map(|w| w == "~").unwrap_or(false) {
                (true, words.get(1).cloned().unwrap_or_default())
            } else {
                (false, words.first().cloned().unwrap_or_default())
            };
            let matcher = if regex {
                match Pattern::new(&pat, false) {
                    Ok(p) => FilesMatcher::Regex(p),
                    Err(e) => {
                        diags.push(Diagnostic::error(
                            Span {
                                len: s.raw_args.len().max(1),
                                ..s.args_span
                            },
                            format!("regular expression `{pat}` could not be compiled: {e}"),
                        ));
                        return;
                    }
                }
            } else {
                FilesMatcher::Glob(pat)
            };
            let mut inner = Context {
                modules: ctx.modules,
                ..Default::default()
            };
            compile_nodes(&s.body, &mut inner, diags, Scope::Files);
            let config = inner.finish();
            ctx.config.files.push(FilesSection {
                matcher,
                config: Arc::new(config),
            });
        }
        "limit" | "limitexcept" => {
            if !s.closed {
                diags.push(unclosed(s));
                return;
            }
            let methods: Vec<String> = s.args.iter().map(|a| a.text.to_ascii_uppercase()).collect();
            if methods.is_empty() {
                diags.push(Diagnostic::error(
                    s.span,
                    format!("`<{}>` needs at least one method", s.name),
                ));
                return;
            }
            let saved = ctx.limit.take();
            ctx.limit = Some(MethodLimit {
                except: lname == "limitexcept",
                methods,
            });
            compile_nodes(&s.body, ctx, diags, scope);
            ctx.limit = saved;
        }
        "requireall" | "requireany" | "requirenone" => {
            if !s.closed {
                diags.push(unclosed(s));
                return;
            }
            let combine = match lname.as_str() {
                "requireall" => Combine::All,
                "requireany" => Combine::Any,
                _ => Combine::None,
            };
            // mod_authz_core.c add_authz_section: a negated section
            // (<RequireNone>) in an OR section has no effect, an empty
            // section is refused; both are config errors.
            if combine == Combine::None && !ctx.authz_in_all {
                diags.push(Diagnostic::error(
                    Span {
                        len: s.name.len() + 1,
                        ..s.span
                    },
                    format!(
                        "`<{}>` has no effect here: put it inside `<RequireAll>`",
                        s.name
                    ),
                ));
                return;
            }
            let saved = std::mem::take(&mut ctx.authz_items);
            let saved_all = std::mem::replace(&mut ctx.authz_in_all, combine == Combine::All);
            compile_nodes(&s.body, ctx, diags, scope);
            ctx.authz_in_all = saved_all;
            let items = std::mem::replace(&mut ctx.authz_items, saved);
            if items.is_empty() {
                diags.push(Diagnostic::error(
                    Span {
                        len: s.name.len() + 1,
                        ..s.span
                    },
                    format!("`<{}>` contains no authorization directives", s.name),
                ));
                return;
            }
            ctx.authz_seen = true;
            let limit = ctx.limit.clone();
            ctx.authz_items
                .push((limit, AuthzItem::Block(AuthzBlock { combine, items })));
        }
        "elseif" | "else" => diags.push(Diagnostic::error(
            Span {
                len: s.name.len() + 1,
                ..s.span
            },
            format!("`<{}>` must directly follow an `<If>` or `<ElseIf>` section", s.name),
        )),
        "directory" | "directorymatch" | "location" | "locationmatch" | "virtualhost" => {
            diags.push(Diagnostic::error(
                Span {
                    len: s.name.len() + 1,
                    ..s.span
                },
                format!("`<{}>` is not allowed in .htaccess (server config only)", s.name),
            ))
        }
        _ => diags.push(
            Diagnostic::error(
                Span {
                    len: s.name.len() + 1,
                    ..s.span
                },
                format!(
                    "invalid command `<{}`, perhaps misspelled or defined by a module htgate does not have",
                    s.name
                ),
            ),
        ),
    }
}

fn compile_if_chain(chain: &[&Section], ctx: &mut Context, diags: &mut Vec<Diagnostic>) {
    let mut branches = Vec::new();
    for s in chain {
        if !s.closed {
            diags.push(unclosed(s));
            return;
        }
        let is_else = s.name.eq_ignore_ascii_case("else");
        let cond = if is_else {
            None
        } else {
            let text = if s.args.len() == 1 {
                s.args[0].text.clone()
            } else {
                s.raw_args.clone()
            };
            match expr::parse_bool(&text) {
                Ok(e) => Some(Arc::new(e)),
                Err(e) => {
                    diags.push(Diagnostic::error(
                        Span {
                            len: s.raw_args.len().max(1),
                            ..s.args_span
                        },
                        format!("cannot parse expression in `<{}>`: {e}", s.name),
                    ));
                    return;
                }
            }
        };
        let mut inner = Context {
            modules: ctx.modules,
            ..Default::default()
        };
        compile_nodes(&s.body, &mut inner, diags, Scope::If);
        branches.push((cond, Arc::new(inner.finish())));
    }
    ctx.config.ifs.push(IfChain { branches });
}

fn if_version(args: &[htgate_syntax::htaccess::Arg]) -> Result<bool, String> {
    let words: Vec<&str> = args.iter().map(|a| a.text.as_str()).collect();
    let (op, ver) = match words.as_slice() {
        [v] => ("=", *v),
        [op, v] => (*op, *v),
        _ => return Err("`<IfVersion>` needs `[operator] version`".into()),
    };
    let cur = APACHE_VERSION;
    let (neg, op) = match op.strip_prefix('!') {
        Some(o) => (true, o),
        None => (false, op),
    };
    let result = if op == "~" || (ver.starts_with('/') && ver.ends_with('/') && ver.len() > 1) {
        let re = ver.trim_matches('/');
        let p = Pattern::new(re, false).map_err(|e| format!("bad version regex: {e}"))?;
        p.is_match(&format!("{}.{}.{}", cur.0, cur.1, cur.2))
    } else {
        let parts: Vec<u32> = ver
            .split('.')
            .map(|x| x.parse::<u32>())
            .collect::<Result<_, _>>()
            .map_err(|_| format!("bad version `{ver}`"))?;
        let want = (
            parts.first().copied().unwrap_or(0),
            parts.get(1).copied().unwrap_or(0),
            parts.get(2).copied().unwrap_or(0),
        );
        // A partial version compares only the parts given.
        let have = match parts.len() {
            1 => (cur.0, 0, 0),
            2 => (cur.0, cur.1, 0),
            _ => cur,
        };
        match op {
            "=" | "==" => have == want,
            ">" => have > want,
            ">=" => have >= want,
            "<" => have < want,
            "<=" => have <= want,
            _ => return Err(format!("unknown `<IfVersion>` operator `{op}`")),
        }
    };
    Ok(result != neg)
}

fn words(d: &Directive) -> Vec<String> {
    d.args.iter().map(|a| a.text.clone()).collect()
}

fn on_off(d: &Directive) -> Result<bool, Diagnostic> {
    let w = words(d);
    match w.as_slice() {
        [v] if v.eq_ignore_ascii_case("on") => Ok(true),
        [v] if v.eq_ignore_ascii_case("off") => Ok(false),
        _ => Err(Diagnostic::error(
            args_span(d),
            format!("{} must be On or Off", d.name),
        )),
    }
}

fn warn_ignored(d: &Directive, why: &str) -> Diagnostic {
    Diagnostic::warning(
        whole(d),
        format!("`{}` is accepted but ignored: {why}", d.name),
    )
}

/// The offset of a quote that opens an argument and is never closed.
/// Apache silently lets such an argument run to the end of the line, which
/// is almost always a typo that changes the rule's meaning; htgate refuses
/// the file instead (a deliberate, documented difference).
fn unterminated_quote(raw: &str) -> Option<usize> {
    let b = raw.as_bytes();
    let mut i = 0;
    while i < b.len() {
        while i < b.len() && b[i].is_ascii_whitespace() {
            i += 1;
        }
        if i >= b.len() {
            break;
        }
        if b[i] == b'"' || b[i] == b'\'' {
            let q = b[i];
            let start = i;
            i += 1;
            while i < b.len() && b[i] != q {
                if b[i] == b'\\' && i + 1 < b.len() {
                    i += 1;
                }
                i += 1;
            }
            if i >= b.len() {
                return Some(start);
            }
            i += 1;
        } else {
            while i < b.len() && !b[i].is_ascii_whitespace() {
                i += 1;
            }
        }
    }
    None
}

fn compile_directive(d: &Directive, ctx: &mut Context, diags: &mut Vec<Diagnostic>, scope: Scope) {
    let lname = d.name.to_ascii_lowercase();
    // Only where the argument splitter is mod_rewrite's: `ErrorDocument 404
    // "text` (one leading quote) is documented Apache syntax.
    let rewrite_directive = matches!(
        lname.as_str(),
        "rewriterule" | "rewritecond" | "rewritebase"
    );
    if let Some(off) = unterminated_quote(&d.raw_args).filter(|_| rewrite_directive) {
        diags.push(
            Diagnostic::error(
                span_at(d.args_span, &d.raw_args, off, 1),
                format!("unbalanced quote in the arguments of `{}`", d.name),
            )
            .with_help("close the quote, or escape it with a backslash"),
        );
        return;
    }
    match table_for(&lname) {
        Some(table) => (table.compile)(d, &lname, ctx, diags),
        None => {
            let _ = scope;
            diags.push(
                Diagnostic::error(
                    whole(d),
                    format!(
                        "invalid command `{}`, perhaps misspelled or defined by a module htgate does not have",
                        d.name
                    ),
                )
                .with_help(unknown_help(&lname)),
            );
        }
    }
}

/// The help of an unknown directive: the nearest directive name htgate
/// knows (from the modules' tables) when it is within two edits.
fn unknown_help(lname: &str) -> String {
    let best = TABLES
        .iter()
        .flat_map(|t| t.names.iter())
        .map(|k| {
            (
                super::rewrite::edit_distance(&k.to_ascii_lowercase(), lname),
                k,
            )
        })
        .min_by_key(|(d, _)| *d);
    match best {
        Some((d, k)) if d <= 2 => format!("did you mean `{k}`?"),
        _ => "wrap it in `<IfModule ...>` if it belongs to a module that may be missing".into(),
    }
}

//! Per-directory configuration: what one `.htaccess` file (or one section
//! inside it) sets, module by module, and how a child's settings merge onto
//! its parent's.
//!
//! As in Apache (`config.c` `invoke_cmd` creates a module's per-dir config
//! only when one of its directives is used), a module that a file does not
//! mention has `None` here and leaves the parent's merged settings alone
//! (SEMANTICS B1).  Each module's merge follows its `merge_dir_config`.

use super::access::{AccessCompat, AuthzBlock};
use super::headers::HeaderAction;
use super::rewrite::RewriteRule;
use htgate_syntax::expr;
use std::collections::HashMap;
use std::sync::Arc;

pub(crate) const OPT_INDEXES: u16 = 1;
pub(crate) const OPT_INCLUDES: u16 = 2;
pub(crate) const OPT_SYM_LINKS: u16 = 4;
pub(crate) const OPT_EXECCGI: u16 = 8;
pub(crate) const OPT_INCNOEXEC: u16 = 32;
pub(crate) const OPT_SYM_OWNER: u16 = 64;
pub(crate) const OPT_MULTI: u16 = 128;
pub(crate) const OPT_ALL: u16 = OPT_INDEXES | OPT_INCLUDES | OPT_SYM_LINKS | OPT_EXECCGI;

/// One `Options` line: either absolute or a set of `+`/`-` changes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OptionsLine {
    Set(u16),
    Change { add: u16, remove: u16 },
}

/// `RewriteOptions` bits.
pub(crate) const RWOPT_INHERIT: u16 = 1;
pub(crate) const RWOPT_INHERIT_BEFORE: u16 = 2;
pub(crate) const RWOPT_NOSLASH: u16 = 4;
pub(crate) const RWOPT_INHERIT_DOWN: u16 = 8;
pub(crate) const RWOPT_INHERIT_DOWN_BEFORE: u16 = 16;
pub(crate) const RWOPT_IGNORE_INHERIT: u16 = 32;
pub(crate) const RWOPT_IGNORE_CONTEXT_INFO: u16 = 64;
pub(crate) const RWOPT_LEGACY_PREFIX_DOCROOT: u16 = 128;
pub(crate) const RWOPT_MERGE_BASE: u16 = 256;

#[derive(Debug, Clone, Default)]
pub struct RewriteConf {
    pub engine: Option<bool>,
    pub options: Option<u16>,
    pub base: Option<String>,
    pub rules: Arc<Vec<RewriteRule>>,
}

#[derive(Debug, Clone)]
pub enum ErrorDocument {
    /// A local URL path: internal redirect, status kept.
    Local(String),
    /// A full URL: 302 redirect to it.
    Remote(String),
    /// A text message.
    Text(String),
    /// `ErrorDocument 404 default`.
    Default,
}

#[derive(Debug, Clone)]
pub enum AliasKind {
    /// `Redirect [status] URL-path URL`: prefix match on whole segments.
    Prefix(String),
    /// `RedirectMatch [status] regex URL`.
    Regex(super::pattern::Pattern),
}

#[derive(Debug, Clone)]
pub struct AliasRedirect {
    pub kind: AliasKind,
    pub status: u16,
    /// None for `gone` and other non-3xx statuses.
    pub target: Option<String>,
}

#[derive(Debug, Clone)]
pub struct SetEnvIf {
    pub attribute: SetEnvAttr,
    pub pattern: super::pattern::Pattern,
    pub assignments: Vec<(String, Option<String>)>, // None = unset (`!VAR`)
    /// The pattern uses no regex metacharacter (mod_setenvif.c
    /// non_regex_pattern): it is matched as a plain string and `$N` in the
    /// values is not substituted.
    pub simple: bool,
}

#[derive(Debug, Clone)]
pub enum SetEnvAttr {
    RemoteHost,
    RemoteAddr,
    ServerAddr,
    RequestMethod,
    RequestProtocol,
    RequestUri,
    Header(String),
    /// A regex matched against header names.
    HeaderRegex(super::pattern::Pattern),
    Env(String),
    Expr(Arc<expr::Expr>),
}

#[derive(Debug, Clone, Default)]
pub struct MimeConf {
    /// extension (lower-case, no dot) → type; None removes (RemoveType).
    pub types: Vec<(String, Option<String>)>,
    pub charsets: Vec<(String, String)>,
    pub encodings: Vec<(String, String)>,
    pub handlers: Vec<(String, String)>,
    pub force_type: Option<Option<String>>,
    pub set_handler: Option<Option<String>>,
    pub default_charset: Option<Option<String>>,
}

#[derive(Debug, Clone, Default)]
pub struct ExpiresConf {
    pub active: Option<bool>,
    pub default: Option<ExpiresRule>,
    pub by_type: Vec<(String, ExpiresRule)>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExpiresRule {
    /// true: from access time (A/access/now); false: from modification time.
    pub from_access: bool,
    pub seconds: i64,
}

/// A `<Files>`/`<FilesMatch>` section: applies to the final file name.
#[derive(Debug, Clone)]
pub struct FilesSection {
    pub matcher: FilesMatcher,
    pub config: Arc<DirConfig>,
}

#[derive(Debug, Clone)]
pub enum FilesMatcher {
    /// A wildcard (`fnmatch`) pattern.
    Glob(String),
    Regex(super::pattern::Pattern),
}

/// An `<If>`/`<ElseIf>`/`<Else>` chain.
#[derive(Debug, Clone)]
pub struct IfChain {
    pub branches: Vec<(Option<Arc<expr::Expr>>, Arc<DirConfig>)>,
}

/// `<Limit>`/`<LimitExcept>` blocks only hold access control; they are
/// represented inside the authz/access structures.
/// Everything one file (or section) sets.
#[derive(Debug, Clone, Default)]
pub struct DirConfig {
    pub options: Vec<OptionsLine>,
    pub rewrite: Option<RewriteConf>,
    pub error_documents: Vec<(u16, ErrorDocument)>,
    pub accept_path_info: Option<bool>,
    pub directory_index: Option<Vec<String>>,
    pub directory_slash: Option<bool>,
    pub fallback_resource: Option<Option<String>>,
    pub redirects: Vec<AliasRedirect>,
    pub headers: Vec<HeaderAction>,
    pub request_headers: Vec<HeaderAction>,
    pub mime: Option<MimeConf>,
    pub expires: Option<ExpiresConf>,
    pub set_env: Vec<(String, Option<String>)>,
    pub set_env_if: Vec<SetEnvIf>,
    pub authz: Option<AuthzBlock>,
    pub access_compat: Option<AccessCompat>,
    pub files: Vec<FilesSection>,
    pub ifs: Vec<IfChain>,
    /// `php_value`/`php_flag` lines, in file order.
    pub php_values: Vec<PhpSetting>,
    /// mod_autoindex directives of this file (`IndexOptions`,
    /// `IndexIgnore`, `HeaderName`…).
    pub index: Option<htgate_content::autoindex::IndexConfig>,
    /// `AddOutputFilterByType DEFLATE type…` (types, lower-case) and
    /// `SetOutputFilter DEFLATE` / `RemoveOutputFilter` (Some(true/false)).
    pub deflate: Option<DeflateConf>,
    /// `AuthType`, `AuthName`, `AuthUserFile`, `AuthGroupFile`.
    pub auth: Option<AuthConf>,
}

/// HTTP authentication settings (each one overrides the parent's).
#[derive(Debug, Clone, Default)]
pub struct AuthConf {
    /// `AuthType Basic` / `None` (Some(None)).
    pub auth_type: Option<Option<String>>,
    pub name: Option<String>,
    pub user_file: Option<String>,
    pub group_file: Option<String>,
}

impl DirConfig {
    /// The first `php_value`/`php_flag` of this file, sections included.
    pub(crate) fn first_php_value(&self) -> Option<&PhpSetting> {
        self.php_values
            .first()
            .or_else(|| self.files.iter().find_map(|f| f.config.first_php_value()))
            .or_else(|| {
                self.ifs
                    .iter()
                    .flat_map(|c| c.branches.iter())
                    .find_map(|(_, b)| b.first_php_value())
            })
    }
}

/// One `php_value`/`php_flag` line, passed to PHP-FPM as `PHP_VALUE`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhpSetting {
    pub name: String,
    pub value: String,
    /// Where it was written (`file:line:col`), for the "not allowed" error.
    pub at: String,
}

/// mod_deflate / mod_filter settings.
#[derive(Debug, Clone, Default)]
pub struct DeflateConf {
    pub by_type: Vec<String>,
    /// `SetOutputFilter DEFLATE` (Some(true)), `SetOutputFilter` with
    /// something else or `RemoveOutputFilter` (Some(false)).
    pub always: Option<bool>,
}

/// The settings in force for one directory (or one file) after merging.
#[derive(Debug, Clone)]
pub struct Merged {
    pub options: u16,
    pub rewrite: MergedRewrite,
    pub error_documents: HashMap<u16, ErrorDocument>,
    pub accept_path_info: Option<bool>,
    pub directory_index: Arc<Vec<String>>,
    pub directory_slash: bool,
    pub fallback_resource: Option<String>,
    pub redirects: Vec<AliasRedirect>,
    pub headers: Vec<HeaderAction>,
    pub request_headers: Vec<HeaderAction>,
    pub mime: Vec<Arc<MimeConf>>,
    pub expires: ExpiresConf,
    pub set_env: Vec<(String, Option<String>)>,
    pub set_env_if: Vec<SetEnvIf>,
    pub authz: Option<AuthzBlock>,
    pub access_compat: Option<AccessCompat>,
    pub files: Vec<FilesSection>,
    pub ifs: Vec<IfChain>,
    pub php_values: Vec<PhpSetting>,
    pub index: htgate_content::autoindex::IndexConfig,
    pub deflate: DeflateConf,
    pub auth: AuthConf,
    /// SECURITY (hosted sites): a symlink is followed only when its target
    /// has the link's owner, even under `FollowSymLinks`, so a customer's
    /// link cannot reach another customer's files.  Server-level, never
    /// changed by `.htaccess`.
    pub symlinks_owner_only: bool,
}

/// mod_rewrite's merged per-dir config (`rewrite_perdir_conf`).
#[derive(Debug, Clone, Default)]
pub struct MergedRewrite {
    /// Whether any mod_rewrite config exists at all.
    pub present: bool,
    pub engine: bool,
    pub options: u16,
    pub base: Option<String>,
    /// Rule lists in the order they run (Inherit puts the parent's after).
    pub rules: Vec<Arc<Vec<RewriteRule>>>,
    /// The directory of the `.htaccess` that holds these rules, with a
    /// trailing slash (`perdir`).
    pub directory: String,
}

impl Merged {
    /// The server-level settings the reference environment has (oracle's
    /// httpd.conf): `Options FollowSymLinks`, `DirectoryIndex index.html
    /// index.php`, `Require all granted`, `.ht*` denied, PATH_INFO accepted
    /// for `.php`.
    pub(crate) fn server_default(php_path_info: bool) -> Merged {
        let mut files = vec![FilesSection {
            matcher: FilesMatcher::Regex(
                super::pattern::Pattern::new("^\\.ht", false).expect("static regex"),
            ),
            config: Arc::new(DirConfig {
                authz: Some(AuthzBlock::deny_all()),
                ..Default::default()
            }),
        }];
        if php_path_info {
            files.push(FilesSection {
                matcher: FilesMatcher::Regex(
                    super::pattern::Pattern::new("\\.php$", false).expect("static regex"),
                ),
                config: Arc::new(DirConfig {
                    accept_path_info: Some(true),
                    ..Default::default()
                }),
            });
        }
        Merged {
            options: OPT_SYM_LINKS,
            rewrite: MergedRewrite::default(),
            error_documents: HashMap::new(),
            accept_path_info: None,
            directory_index: Arc::new(vec!["index.html".into(), "index.php".into()]),
            directory_slash: true,
            fallback_resource: None,
            redirects: Vec::new(),
            headers: Vec::new(),
            request_headers: Vec::new(),
            mime: Vec::new(),
            expires: ExpiresConf::default(),
            set_env: Vec::new(),
            set_env_if: Vec::new(),
            authz: Some(AuthzBlock::grant_all()),
            access_compat: None,
            files,
            ifs: Vec::new(),
            php_values: Vec::new(),
            index: Default::default(),
            auth: AuthConf::default(),
            symlinks_owner_only: false,
            deflate: DeflateConf::default(),
        }
    }

    /// Merges a child's config onto `self` (the parent's merged settings).
    /// `directory` is the child's directory with a trailing slash.
    pub fn merge(&self, child: &DirConfig, directory: &str) -> Merged {
        let mut m = self.clone();
        for line in &child.options {
            m.options = match *line {
                OptionsLine::Set(v) => v,
                OptionsLine::Change { add, remove } => (m.options & !remove) | add,
            };
        }
        if let Some(rw) = &child.rewrite {
            m.rewrite = merge_rewrite(&self.rewrite, rw, directory);
        }
        for (code, doc) in &child.error_documents {
            m.error_documents.insert(*code, doc.clone());
        }
        if child.accept_path_info.is_some() {
            m.accept_path_info = child.accept_path_info;
        }
        if let Some(di) = &child.directory_index {
            m.directory_index = Arc::new(di.clone());
        }
        if let Some(ds) = child.directory_slash {
            m.directory_slash = ds;
        }
        if let Some(fr) = &child.fallback_resource {
            m.fallback_resource = fr.clone();
        }
        if !child.redirects.is_empty() {
            // mod_alias: the child's redirects first, then the parent's.
            let mut r = child.redirects.clone();
            r.extend(self.redirects.iter().cloned());
            m.redirects = r;
        }
        m.headers.extend(child.headers.iter().cloned());
        m.request_headers
            .extend(child.request_headers.iter().cloned());
        if let Some(mime) = &child.mime {
            m.mime.push(Arc::new(mime.clone()));
        }
        if let Some(exp) = &child.expires {
            if exp.active.is_some() {
                m.expires.active = exp.active;
            }
            if exp.default.is_some() {
                m.expires.default = exp.default;
            }
            for (t, rule) in &exp.by_type {
                m.expires.by_type.retain(|(x, _)| x != t);
                m.expires.by_type.push((t.clone(), *rule));
            }
        }
        m.set_env.extend(child.set_env.iter().cloned());
        m.set_env_if.extend(child.set_env_if.iter().cloned());
        if child.authz.is_some() {
            m.authz = child.authz.clone();
        }
        if child.access_compat.is_some() {
            m.access_compat = child.access_compat.clone();
        }
        m.files.extend(child.files.iter().cloned());
        m.ifs.extend(child.ifs.iter().cloned());
        m.php_values.extend(child.php_values.iter().cloned());
        if let Some(ix) = &child.index {
            m.index = m.index.merge(ix);
        }
        if let Some(a) = &child.auth {
            if a.auth_type.is_some() {
                m.auth.auth_type = a.auth_type.clone();
            }
            if a.name.is_some() {
                m.auth.name = a.name.clone();
            }
            if a.user_file.is_some() {
                m.auth.user_file = a.user_file.clone();
            }
            if a.group_file.is_some() {
                m.auth.group_file = a.group_file.clone();
            }
        }
        if let Some(df) = &child.deflate {
            // mod_filter: AddOutputFilterByType adds to the parent's list.
            for t in &df.by_type {
                if !m.deflate.by_type.contains(t) {
                    m.deflate.by_type.push(t.clone());
                }
            }
            if df.always.is_some() {
                m.deflate.always = df.always;
            }
        }
        m
    }
}

/// `config_perdir_merge` (SEMANTICS B2-B4).
fn merge_rewrite(base: &MergedRewrite, child: &RewriteConf, directory: &str) -> MergedRewrite {
    let options = child.options.unwrap_or(base.options);
    let engine = child.engine.unwrap_or(base.engine);
    let base_url = if child.base.is_some() {
        child.base.clone()
    } else if options & RWOPT_MERGE_BASE != 0 {
        base.base.clone()
    } else {
        None
    };
    let mut rules: Vec<Arc<Vec<RewriteRule>>> = Vec::new();
    let own = child.rules.clone();
    let inherit_after = options & RWOPT_INHERIT != 0
        || (base.options & RWOPT_INHERIT_DOWN != 0 && options & RWOPT_IGNORE_INHERIT == 0);
    let inherit_before = options & RWOPT_INHERIT_BEFORE != 0
        || (base.options & RWOPT_INHERIT_DOWN_BEFORE != 0 && options & RWOPT_IGNORE_INHERIT == 0);
    // Apache tests the "after" form first: a child's `Inherit` wins over a
    // parent's `InheritDownBefore` (mod_rewrite.c config_perdir_merge;
    // SEMANTICS B3, B4).
    if inherit_after {
        rules.push(own);
        rules.extend(base.rules.iter().cloned());
    } else if inherit_before {
        rules.extend(base.rules.iter().cloned());
        rules.push(own);
    } else {
        rules.push(own);
    }
    MergedRewrite {
        present: true,
        engine,
        options,
        base: base_url,
        rules,
        directory: directory.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn conf(options: Option<u16>, pattern: &str) -> RewriteConf {
        let rule =
            crate::rewrite::compile_rule(&format!("{pattern} -"), 1).expect("test rule compiles");
        RewriteConf {
            engine: Some(true),
            options,
            base: None,
            rules: Arc::new(vec![rule]),
        }
    }

    fn order(m: &MergedRewrite) -> Vec<String> {
        m.rules
            .iter()
            .flat_map(|l| l.iter().map(|r| r.pattern_text.clone()))
            .collect()
    }

    #[test]
    fn child_inherit_beats_parent_inherit_down_before() {
        let top = MergedRewrite::default();
        let parent = merge_rewrite(&top, &conf(Some(RWOPT_INHERIT_DOWN_BEFORE), "^p$"), "/r/");
        // A child without RewriteOptions: the parent's rules first.
        let plain = merge_rewrite(&parent, &conf(None, "^c$"), "/r/a/");
        assert_eq!(order(&plain), ["^p$", "^c$"]);
        // `RewriteOptions Inherit` in the child: its own rules first
        // (config_perdir_merge tests the "after" form first).
        let inherit = merge_rewrite(&parent, &conf(Some(RWOPT_INHERIT), "^c$"), "/r/b/");
        assert_eq!(order(&inherit), ["^c$", "^p$"]);
        // IgnoreInherit: only its own.
        let ignore = merge_rewrite(&parent, &conf(Some(RWOPT_IGNORE_INHERIT), "^c$"), "/r/c/");
        assert_eq!(order(&ignore), ["^c$"]);
    }
}

//! PHP through PHP-FPM, as Apache 2.4 runs it with mod_proxy_fcgi and
//! Debian's `php8.2-fpm.conf`:
//!
//! ```apache
//! <FilesMatch ".+\.ph(ar|p|tml)$">
//!     SetHandler "proxy:unix:/run/php/php8.2-fpm.sock|fcgi://localhost"
//! </FilesMatch>
//! <FilesMatch ".+\.phps$">
//!     Require all denied
//! </FilesMatch>
//! <FilesMatch "^\.ph(ar|p|ps|tml)$">
//!     Require all denied
//! </FilesMatch>
//! ```
//!
//! The sections are server-level `<FilesMatch>` (see
//! [`php_server_sections`]), so they merge exactly where Apache merges
//! them: after every directory's `.htaccess`, before the `.htaccess`
//! files' own `<Files>` sections.  Which handler a request ends with is
//! decided by [`handler_is_php`]; this module then builds the CGI/1.1
//! variables (`ap_add_common_vars` + `ap_add_cgi_vars`, what
//! mod_proxy_fcgi sends as FastCGI params).

use super::access::AuthzBlock;
use super::config::{DirConfig, FilesMatcher, FilesSection, MimeConf, PhpSetting};
use super::pattern::Pattern;
use super::request::{Main, Req};
use std::sync::Arc;

/// The handler name the server-level `<FilesMatch>` sets (lower-case, as
/// `SetHandler` stores names).
pub(crate) const FPM_HANDLER: &str = "proxy:fcgi://localhost";

/// `PATH` as Apache exports it (its own environment's, Debian's default).
const CGI_PATH: &str = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// What apps read from `SERVER_SOFTWARE`: WordPress (`$is_apache`),
/// Joomla and others decide from it whether `.htaccess` rewriting is
/// available, so it names Apache first and htgate after.
pub(crate) const SERVER_SOFTWARE: &str =
    concat!("Apache/2.4 (Unix) htgate/", env!("CARGO_PKG_VERSION"));

/// The server-level sections a PHP site gets (Debian's php8.2-fpm.conf).
pub(crate) fn php_server_sections() -> Vec<FilesSection> {
    let handler = DirConfig {
        mime: Some(MimeConf {
            set_handler: Some(Some(FPM_HANDLER.to_string())),
            ..Default::default()
        }),
        ..Default::default()
    };
    let deny = || DirConfig {
        authz: Some(AuthzBlock::deny_all()),
        ..Default::default()
    };
    let section = |re: &str, config: DirConfig| FilesSection {
        matcher: FilesMatcher::Regex(Pattern::new(re, false).expect("static regex")),
        config: Arc::new(config),
    };
    vec![
        section(r".+\.ph(ar|p|tml)$", handler),
        section(r".+\.phps$", deny()),
        section(r"^\.ph(ar|p|ps|tml)$", deny()),
    ]
}

/// Whether a file name is one Debian's php-fpm config hands to PHP (or
/// refuses: `.phps`).
pub(crate) fn is_php_file_name(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or("");
    let Some((base, ext)) = name.rsplit_once('.') else {
        return false;
    };
    // case-insensitive: refusing `X.PHP` too is the safe side
    let ext = ext.to_ascii_lowercase();
    !base.is_empty() && matches!(ext.as_str(), "php" | "phar" | "phtml" | "phps")
}

/// Whether a handler name means "run it as PHP" on a site with PHP-FPM.
///
/// `proxy:…` is what Apache configs and `.htaccess` files use with
/// mod_proxy_fcgi; SECURITY: whatever socket or host a customer's
/// `SetHandler "proxy:unix:/other/customer.sock|fcgi://…"` names, htgate
/// only ever talks to the site's own pool.  `application/x-httpd-php*`
/// and cPanel's `application/x-httpd-ea-php*` / `-alt-php*` are the
/// handler names hosts map to PHP (`AddHandler application/x-httpd-php
/// .html`), and `php-script`/`php*-script` are Debian's mod_php names.
pub(crate) fn handler_is_php(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.starts_with("proxy:")
        || n.starts_with("application/x-httpd-php")
        || n.starts_with("application/x-httpd-ea-php")
        || n.starts_with("application/x-httpd-alt-php")
        || n.starts_with("application/x-httpd-lsphp")
        || (n.starts_with("php") && n.ends_with("-script"))
}

/// The handler a processed request ends with, in Apache's precedence:
/// mod_rewrite's `[H=]` (set in the fixups, so it wins), then the last
/// `SetHandler` merged (directory, then `<Files>`, then `<If>`; `None`
/// clears), then mod_mime's `AddHandler` by extension.
pub(crate) fn effective_handler(r: &Req) -> Option<String> {
    if let super::request::Handler::Named(h) = &r.handler {
        return Some(h.clone());
    }
    for m in r.conf.mime.iter().rev() {
        if let Some(h) = &m.set_handler {
            return h.clone();
        }
    }
    let name = r.filename.rsplit('/').next().unwrap_or("");
    add_handler_for(r, name)
}

/// mod_mime: every extension of the name counts (`a.php.txt` has `php`
/// and `txt`); the last one that names a handler wins, and an inner
/// directory's mapping replaces an outer one for the same extension.
fn add_handler_for(r: &Req, name: &str) -> Option<String> {
    let mut exts = name.split('.');
    exts.next(); // the base name is not an extension
    let mut found = None;
    for ext in exts {
        let ext = ext.to_ascii_lowercase();
        for m in r.conf.mime.iter() {
            for (e, h) in &m.handlers {
                if *e == ext {
                    found = Some(h.clone());
                }
            }
        }
    }
    found
}

/// `php_flag engine off` (mod_php): the file is not run as PHP.
pub(crate) fn engine_off(settings: &[PhpSetting]) -> bool {
    settings
        .iter()
        .rev()
        .find(|s| s.name.eq_ignore_ascii_case("engine"))
        .is_some_and(|s| s.value == "0" || s.value.eq_ignore_ascii_case("off"))
}

/// `PHP_VALUE`: `name=value` lines, later settings of the same name
/// replacing earlier ones (an inner directory overrides an outer one).
pub(crate) fn php_value_param(settings: &[PhpSetting]) -> Option<String> {
    let mut out: Vec<(&str, &str)> = Vec::new();
    for s in settings {
        if s.name.eq_ignore_ascii_case("engine") {
            continue;
        }
        out.retain(|(n, _)| *n != s.name);
        out.push((&s.name, &s.value));
    }
    if out.is_empty() {
        return None;
    }
    // SECURITY: a value can never hold a newline (the parser works line by
    // line), so one setting cannot smuggle another into PHP_VALUE.
    Some(
        out.iter()
            .map(|(n, v)| format!("{n}={}", v.replace(['\n', '\r'], " ")))
            .collect::<Vec<_>>()
            .join("\n"),
    )
}

/// `original_uri`: the request target as the client sent it.
fn original_uri(the_request: &str) -> &str {
    let mut parts = the_request.splitn(3, ' ');
    parts.next();
    parts.next().unwrap_or("/")
}

/// `http2env`: `HTTP_` + the name upper-cased, `-` as `_`.  Apache drops
/// headers whose names hold anything else (an `X_Forwarded` header could
/// otherwise pose as `X-Forwarded`).
fn http2env(name: &str) -> Option<String> {
    let mut s = String::with_capacity(name.len() + 5);
    s.push_str("HTTP_");
    for c in name.chars() {
        if c.is_ascii_alphanumeric() {
            s.push(c.to_ascii_uppercase());
        } else if c == '-' {
            s.push('_');
        } else {
            return None;
        }
    }
    Some(s)
}

/// The FastCGI params of a request handed to PHP-FPM, in the order Apache
/// builds `subprocess_env`: request headers, the common variables, the
/// request's environment (SetEnv, `[E=]`, SetEnvIf, `REDIRECT_*`,
/// `HTTPS`), then the CGI variables.
pub(crate) fn cgi_params(
    main: &Main<'_>,
    r: &Req,
    php_value: Option<String>,
) -> Vec<(String, String)> {
    let mut p: Vec<(String, String)> = Vec::with_capacity(48);
    let set = |p: &mut Vec<(String, String)>, k: &str, v: String| {
        p.retain(|(x, _)| x != k);
        p.push((k.to_string(), v));
    };
    for (name, value) in main.headers_in.iter() {
        let Ok(value) = value.to_str() else { continue };
        let n = name.as_str();
        if n.eq_ignore_ascii_case("content-type") {
            set(&mut p, "CONTENT_TYPE", value.to_string());
        } else if n.eq_ignore_ascii_case("content-length") {
            set(&mut p, "CONTENT_LENGTH", value.to_string());
        } else if n.eq_ignore_ascii_case("authorization")
            || n.eq_ignore_ascii_case("proxy-authorization")
        {
            // CGIPassAuth Off (Apache's default): the reason WordPress and
            // Laravel ship `[E=HTTP_AUTHORIZATION:%{HTTP:Authorization}]`.
            continue;
        } else if n.eq_ignore_ascii_case("proxy") {
            // httpoxy (CVE-2016-5385): HTTP_PROXY would be read as the
            // outgoing proxy by PHP HTTP clients.
            continue;
        } else if let Some(env) = http2env(n) {
            // a repeated header is joined as apr_table_do sees it
            match p.iter_mut().find(|(k, _)| *k == env) {
                Some((_, v)) => {
                    v.push_str(", ");
                    v.push_str(value);
                }
                None => p.push((env, value.to_string())),
            }
        }
    }
    let site = main.site;
    set(&mut p, "PATH", CGI_PATH.to_string());
    set(&mut p, "SERVER_SIGNATURE", String::new());
    set(&mut p, "SERVER_SOFTWARE", SERVER_SOFTWARE.to_string());
    set(&mut p, "SERVER_NAME", main.server_name.clone());
    set(&mut p, "SERVER_ADDR", main.local.ip().to_string());
    set(&mut p, "SERVER_PORT", main.server_port.to_string());
    set(&mut p, "REMOTE_ADDR", main.remote.ip().to_string());
    set(&mut p, "DOCUMENT_ROOT", site.docroot.clone());
    set(
        &mut p,
        "REQUEST_SCHEME",
        if main.tls { "https" } else { "http" }.to_string(),
    );
    set(&mut p, "CONTEXT_PREFIX", String::new());
    set(&mut p, "CONTEXT_DOCUMENT_ROOT", site.docroot.clone());
    set(&mut p, "SERVER_ADMIN", "[no address given]".to_string());
    set(&mut p, "SCRIPT_FILENAME", r.filename.clone());
    set(&mut p, "REMOTE_PORT", main.remote.port().to_string());
    if let Some(user) = &main.user {
        set(&mut p, "REMOTE_USER", user.clone());
        set(&mut p, "AUTH_TYPE", "Basic".to_string());
    }
    for (k, v) in &r.env {
        set(&mut p, k, v.clone());
    }
    set(&mut p, "GATEWAY_INTERFACE", "CGI/1.1".to_string());
    set(&mut p, "SERVER_PROTOCOL", main.protocol.clone());
    set(&mut p, "REQUEST_METHOD", main.method.clone());
    set(&mut p, "QUERY_STRING", r.args.clone().unwrap_or_default());
    set(
        &mut p,
        "REQUEST_URI",
        original_uri(&main.the_request).to_string(),
    );
    let script_name = r
        .uri
        .strip_suffix(r.path_info.as_str())
        .filter(|_| !r.path_info.is_empty())
        .unwrap_or(&r.uri)
        .to_string();
    set(&mut p, "SCRIPT_NAME", script_name);
    if !r.path_info.is_empty() {
        set(&mut p, "PATH_INFO", r.path_info.clone());
        // PHP-FPM takes PATH_TRANSLATED for the script when REDIRECT_URL is
        // set too (its mod_fastcgi + Action compatibility), which turns an
        // internal redirect to `/index.php/error/404` (Nextcloud's
        // ErrorDocument) into "Primary script unknown".  PHP apps read
        // PATH_INFO; PATH_TRANSLATED goes only where it cannot mislead.
        if !p.iter().any(|(k, _)| k == "REDIRECT_URL") {
            set(
                &mut p,
                "PATH_TRANSLATED",
                format!("{}{}", site.docroot.trim_end_matches('/'), r.path_info),
            );
        }
    }
    if let Some(v) = php_value {
        set(&mut p, "PHP_VALUE", v);
    } else {
        // SECURITY: PHP_VALUE / PHP_ADMIN_VALUE come only from the site's
        // own .htaccess, never from anything a request can set.
        p.retain(|(k, _)| k != "PHP_VALUE" && k != "PHP_ADMIN_VALUE");
    }
    p.retain(|(k, _)| k != "PHP_ADMIN_VALUE");
    // SECURITY (CVE-2023-25690 class): a decoded %0d%0a from the URL or a
    // substitution never reaches PHP raw, where an app could copy it into
    // a header or another upstream request.  Apache passes them as they
    // are; htgate %-encodes CR, LF and NUL (a deliberate difference).
    for (_, v) in p.iter_mut() {
        if v.contains(['\r', '\n', '\0']) {
            *v = v
                .replace('\r', "%0D")
                .replace('\n', "%0A")
                .replace('\0', "%00");
        }
    }
    p
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn php_handler_names() {
        assert!(handler_is_php(FPM_HANDLER));
        assert!(handler_is_php(
            "proxy:unix:/run/php/php8.2-fpm.sock|fcgi://localhost"
        ));
        assert!(handler_is_php("application/x-httpd-php"));
        assert!(handler_is_php("application/x-httpd-ea-php81"));
        assert!(handler_is_php("php8.2-script"));
        assert!(!handler_is_php("cgi-script"));
        assert!(!handler_is_php(
            "drupal_security_do_not_remove_see_sa_2006_006"
        ));
    }

    fn setting(name: &str, value: &str) -> PhpSetting {
        PhpSetting {
            name: name.into(),
            value: value.into(),
            at: "1:1".into(),
        }
    }

    #[test]
    fn php_value_lines_inner_wins() {
        let s = vec![
            setting("memory_limit", "64M"),
            setting("display_errors", "0"),
            setting("memory_limit", "256M"),
        ];
        assert_eq!(
            php_value_param(&s).as_deref(),
            Some("display_errors=0\nmemory_limit=256M")
        );
        assert_eq!(php_value_param(&[]), None);
    }

    #[test]
    fn engine_flag() {
        assert!(engine_off(&[setting("engine", "0")]));
        assert!(!engine_off(&[
            setting("engine", "0"),
            setting("engine", "1")
        ]));
        assert!(!engine_off(&[]));
    }

    #[test]
    fn header_names_to_env() {
        assert_eq!(
            http2env("X-Forwarded-For").as_deref(),
            Some("HTTP_X_FORWARDED_FOR")
        );
        assert_eq!(http2env("x_forwarded_for"), None);
        assert_eq!(original_uri("GET /a%20b?x=1 HTTP/1.1"), "/a%20b?x=1");
    }
}

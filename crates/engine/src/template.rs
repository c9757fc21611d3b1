//! Substitution templates: the text of a RewriteRule substitution, a
//! RewriteCond TestString or a flag value, parsed once into pieces.
//! Apache: `mod_rewrite.c` `do_expand`.  Expansion happens in `rewrite_exec`.

/// A variable as mod_rewrite's `lookup_variable` knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Var {
    /// A request header (`%{HTTP:Name}` or the built-in `HTTP_*` names).
    /// `vary` carries the name as written, for the Vary header (None for Host).
    Header {
        name: String,
        vary: Option<String>,
    },
    Env(String),
    Ssl(String),
    LookAheadUrl(String),
    LookAheadFile(String),
    Named(Named),
    /// Unknown or too-short names: always empty (no error).
    Empty,
}

/// The fixed server and request variables.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Named {
    RemoteAddr,
    RemoteHost,
    RemotePort,
    RemoteUser,
    RemoteIdent,
    RequestMethod,
    ScriptFilename,
    RequestFilename,
    PathInfo,
    QueryString,
    AuthType,
    DocumentRoot,
    ContextDocumentRoot,
    ContextPrefix,
    ServerAdmin,
    ServerName,
    ServerAddr,
    ServerPort,
    ServerProtocol,
    ServerSoftware,
    ApiVersion,
    TheRequest,
    RequestUri,
    RequestScheme,
    Https,
    IsSubreq,
    Ipv6,
    ConnRemoteAddr,
    ScriptUser,
    ScriptGroup,
    Time,
    TimeYear,
    TimeMon,
    TimeDay,
    TimeHour,
    TimeMin,
    TimeSec,
    TimeWday,
}

impl Var {
    /// Resolves a `%{NAME}` name at compile time.  Apache: `lookup_variable`.
    pub fn resolve(name: &str) -> Var {
        if let Some((prefix, rest)) = name.split_once(':') {
            let p = prefix.to_ascii_uppercase();
            return match p.as_str() {
                "HTTP" => Var::Header {
                    vary: (!rest.eq_ignore_ascii_case("host")).then(|| rest.to_string()),
                    name: rest.to_string(),
                },
                "ENV" => Var::Env(rest.to_string()),
                "SSL" => Var::Ssl(rest.to_string()),
                "LA-U" => Var::LookAheadUrl(rest.to_string()),
                "LA-F" => Var::LookAheadFile(rest.to_string()),
                _ => Var::Empty,
            };
        }
        let upper = name.to_ascii_uppercase();
        let header = |h: &str| Var::Header {
            name: h.to_string(),
            vary: (h != "Host").then(|| h.to_string()),
        };
        use Named::*;
        let named = match upper.as_str() {
            "HTTP_ACCEPT" => return header("Accept"),
            "HTTP_COOKIE" => return header("Cookie"),
            "HTTP_FORWARDED" => return header("Forwarded"),
            "HTTP_HOST" => return header("Host"),
            "HTTP_PROXY_CONNECTION" => return header("Proxy-Connection"),
            "HTTP_REFERER" => return header("Referer"),
            "HTTP_USER_AGENT" => return header("User-Agent"),
            "REMOTE_ADDR" => RemoteAddr,
            "REMOTE_HOST" => RemoteHost,
            "REMOTE_PORT" => RemotePort,
            "REMOTE_USER" => RemoteUser,
            "REMOTE_IDENT" => RemoteIdent,
            "REQUEST_METHOD" => RequestMethod,
            "SCRIPT_FILENAME" => ScriptFilename,
            "REQUEST_FILENAME" => RequestFilename,
            "PATH_INFO" => PathInfo,
            "QUERY_STRING" => QueryString,
            "AUTH_TYPE" => AuthType,
            "DOCUMENT_ROOT" => DocumentRoot,
            "CONTEXT_DOCUMENT_ROOT" => ContextDocumentRoot,
            "CONTEXT_PREFIX" => ContextPrefix,
            "SERVER_ADMIN" => ServerAdmin,
            "SERVER_NAME" => ServerName,
            "SERVER_ADDR" => ServerAddr,
            "SERVER_PORT" => ServerPort,
            "SERVER_PROTOCOL" => ServerProtocol,
            "SERVER_SOFTWARE" => ServerSoftware,
            "API_VERSION" => ApiVersion,
            "THE_REQUEST" => TheRequest,
            "REQUEST_URI" => RequestUri,
            "REQUEST_SCHEME" => RequestScheme,
            "HTTPS" => Https,
            "IS_SUBREQ" => IsSubreq,
            "IPV6" => Ipv6,
            "CONN_REMOTE_ADDR" => ConnRemoteAddr,
            "SCRIPT_USER" => ScriptUser,
            "SCRIPT_GROUP" => ScriptGroup,
            "TIME" => Time,
            "TIME_YEAR" => TimeYear,
            "TIME_MON" => TimeMon,
            "TIME_DAY" => TimeDay,
            "TIME_HOUR" => TimeHour,
            "TIME_MIN" => TimeMin,
            "TIME_SEC" => TimeSec,
            "TIME_WDAY" => TimeWday,
            _ => return Var::Empty,
        };
        Var::Named(named)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    Lit(String),
    /// `$N`
    RuleRef(u8),
    /// `%N`
    CondRef(u8),
    Var(Var),
    /// `${map:key|default}`: no map can be defined in .htaccess, so only the
    /// default is ever used; the key is kept for `explain`.
    Map {
        name: String,
        key: Template,
        default: Template,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Template {
    pub pieces: Vec<Piece>,
}

impl Template {
    /// Parses per `do_expand`: `\c` is `c`, `$N`, `%N`, `%{VAR}`,
    /// `${map:key|default}`; braces nest; anything else is literal.
    pub fn parse(input: &str) -> Template {
        let mut pieces = Vec::new();
        let mut lit = String::new();
        let bytes = input.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match b {
                b'\\' => {
                    if i + 1 < bytes.len() {
                        // copy the next (possibly multi-byte) character
                        let ch_len = utf8_len(bytes[i + 1]);
                        let end = (i + 1 + ch_len).min(bytes.len());
                        lit.push_str(&input[i + 1..end]);
                        i = end;
                    } else {
                        lit.push('\\');
                        i += 1;
                    }
                    continue;
                }
                b'$' | b'%' if i + 1 < bytes.len() => {
                    let n = bytes[i + 1];
                    if n.is_ascii_digit() {
                        flush(&mut lit, &mut pieces);
                        let d = n - b'0';
                        pieces.push(if b == b'$' {
                            Piece::RuleRef(d)
                        } else {
                            Piece::CondRef(d)
                        });
                        i += 2;
                        continue;
                    }
                    if n == b'{' {
                        if let Some(close) = find_close(bytes, i + 1) {
                            let inner = &input[i + 2..close];
                            if b == b'%' {
                                flush(&mut lit, &mut pieces);
                                pieces.push(Piece::Var(Var::resolve(inner)));
                                i = close + 1;
                                continue;
                            }
                            if let Some((name, rest)) = inner.split_once(':') {
                                flush(&mut lit, &mut pieces);
                                let (key, default) = match split_default(rest) {
                                    Some((k, d)) => (k, d),
                                    None => (rest, ""),
                                };
                                pieces.push(Piece::Map {
                                    name: name.to_string(),
                                    key: Template::parse(key),
                                    default: Template::parse(default),
                                });
                                i = close + 1;
                                continue;
                            }
                        }
                    }
                    lit.push(b as char);
                    i += 1;
                }
                _ => {
                    let ch_len = utf8_len(b);
                    let end = (i + ch_len).min(bytes.len());
                    lit.push_str(&input[i..end]);
                    i = end;
                }
            }
        }
        flush(&mut lit, &mut pieces);
        Template { pieces }
    }

    pub fn is_empty(&self) -> bool {
        self.pieces.is_empty()
    }

    /// The template's text if it has no expansions at all.
    #[cfg(test)]
    fn as_literal(&self) -> Option<&str> {
        match self.pieces.as_slice() {
            [] => Some(""),
            [Piece::Lit(s)] => Some(s),
            _ => None,
        }
    }

    /// Every variable the template reads (for lint and explain).
    pub fn vars(&self) -> impl Iterator<Item = &Var> {
        self.pieces.iter().filter_map(|p| match p {
            Piece::Var(v) => Some(v),
            _ => None,
        })
    }
}

fn utf8_len(first: u8) -> usize {
    match first {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        0xf0..=0xf7 => 4,
        _ => 1,
    }
}

fn flush(lit: &mut String, pieces: &mut Vec<Piece>) {
    if !lit.is_empty() {
        pieces.push(Piece::Lit(std::mem::take(lit)));
    }
}

/// Finds the `}` closing the `{` at `open`, counting nested braces.
fn find_close(bytes: &[u8], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (j, &c) in bytes.iter().enumerate().skip(open) {
        match c {
            b'{' => depth += 1,
            b'}' => {
                depth -= 1;
                if depth == 0 {
                    return Some(j);
                }
            }
            _ => {}
        }
    }
    None
}

/// Splits `key|default` at the first `|` that is not inside braces.
fn split_default(s: &str) -> Option<(&str, &str)> {
    let mut depth = 0i32;
    for (j, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            '|' if depth == 0 => return Some((&s[..j], &s[j + 1..])),
            _ => {}
        }
    }
    None
}

/// `%{SSL:name}` in rules: mod_ssl's `ssl_var_lookup` for the one
/// variable htgate provides, `HTTPS` (`on` over TLS, empty otherwise, as
/// the reference Apache answers a plain-HTTP request).
pub(crate) fn ssl_var(name: &str, tls: bool) -> &'static str {
    if tls && name.eq_ignore_ascii_case("HTTPS") {
        "on"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces() {
        let t = Template::parse("/t.html?cat=$1&id=%1&x=%{HTTP_HOST}");
        assert_eq!(t.pieces.len(), 6);
        assert_eq!(t.pieces[1], Piece::RuleRef(1));
        assert_eq!(t.pieces[3], Piece::CondRef(1));
        let t = Template::parse(r"/t.html?x=100\%25");
        assert_eq!(t.as_literal(), Some("/t.html?x=100%25"));
        let t = Template::parse("a%25");
        assert_eq!(t.pieces[1], Piece::CondRef(2));
        let t = Template::parse("${nomap:$1|fallback}");
        assert!(matches!(t.pieces[0], Piece::Map { .. }));
        let t = Template::parse("%{unclosed");
        assert_eq!(t.as_literal(), Some("%{unclosed"));
        let t = Template::parse("${nocolon}");
        assert_eq!(t.as_literal(), Some("${nocolon}"));
    }
}

//! Table-driven tests for ap_expr: every operator and function, precedence,
//! captures, string expressions, error offsets, and a no-panic proptest.

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;

use proptest::prelude::*;

use super::*;

/// A `HashMap`-backed request.
#[derive(Default)]
struct TestCtx {
    vars: HashMap<String, String>,
    /// lower-case names
    headers: HashMap<String, String>,
    resp: HashMap<String, String>,
    env: HashMap<String, String>,
    notes: HashMap<String, String>,
    dirs: HashSet<String>,
    files: HashMap<String, u64>,
    symlinks: HashSet<String>,
    executables: HashSet<String>,
    urls: HashSet<String>,
    ip: Option<IpAddr>,
    /// every req_header call: (name, vary)
    header_calls: Vec<(String, bool)>,
}

fn s(x: &str) -> String {
    x.to_string()
}

impl TestCtx {
    fn new() -> Self {
        let mut c = TestCtx::default();
        for (k, v) in [
            ("REQUEST_URI", "/foo/bar.html"),
            ("REQUEST_METHOD", "GET"),
            ("HTTPS", "on"),
            ("REMOTE_ADDR", "192.168.1.10"),
            ("QUERY_STRING", "a=1&b=2"),
            ("SERVER_PORT", "443"),
            ("IS_SUBREQ", "false"),
            ("SSL_PROTOCOL", "TLSv1.3"),
        ] {
            c.vars.insert(s(k), s(v));
        }
        for (k, v) in [
            ("host", "Example.COM"),
            ("user-agent", "Mozilla/5.0 (X11)"),
            ("accept", "text/html"),
            ("x-forwarded-proto", "https"),
            ("cookie", "session=abc"),
        ] {
            c.headers.insert(s(k), s(v));
        }
        c.resp.insert(s("content-type"), s("text/html"));
        c.env.insert(s("FOO"), s("envfoo"));
        c.env.insert(s("BAR"), s("env-bar"));
        c.env.insert(s("ONLY_ENV"), s("x"));
        c.notes.insert(s("BAR"), s("note-bar"));
        c.dirs.insert(s("/var/www"));
        c.files.insert(s("/var/www/index.html"), 10);
        c.files.insert(s("/var/www/empty.txt"), 0);
        c.files.insert(s("/var/www/cgi.sh"), 20);
        c.symlinks.insert(s("/var/www/link"));
        c.executables.insert(s("/var/www/cgi.sh"));
        c.urls.insert(s("/allowed"));
        c.ip = "192.168.1.10".parse().ok();
        c
    }
}

impl Context for TestCtx {
    fn var(&mut self, name: &str) -> Option<String> {
        self.vars.get(name).cloned()
    }
    fn req_header(&mut self, name: &str, vary: bool) -> Option<String> {
        self.header_calls.push((name.to_string(), vary));
        self.headers.get(&name.to_ascii_lowercase()).cloned()
    }
    fn resp_header(&mut self, name: &str) -> Option<String> {
        self.resp.get(&name.to_ascii_lowercase()).cloned()
    }
    fn env(&mut self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
    fn note(&mut self, name: &str) -> Option<String> {
        self.notes.get(name).cloned()
    }
    fn file_test(&mut self, test: FileTest, path: &str) -> bool {
        let is_file = self.files.contains_key(path);
        match test {
            FileTest::Dir => self.dirs.contains(path),
            FileTest::Exists => is_file || self.dirs.contains(path) || self.symlinks.contains(path),
            FileTest::File => is_file,
            FileTest::NonEmpty => self.files.get(path).is_some_and(|&n| n > 0),
            FileTest::Symlink => self.symlinks.contains(path),
            FileTest::Executable => self.executables.contains(path),
        }
    }
    fn file_size(&mut self, path: &str) -> Option<u64> {
        self.files.get(path).copied()
    }
    fn url_accessible(&mut self, url: &str) -> bool {
        self.urls.contains(url)
    }
    fn remote_ip(&mut self) -> Option<IpAddr> {
        self.ip
    }
}

fn eval_with(ctx: &mut TestCtx, text: &str) -> Outcome {
    let e = parse_bool(text).unwrap_or_else(|err| panic!("parse {text:?}: {err}"));
    e.eval(ctx)
        .unwrap_or_else(|err| panic!("eval {text:?}: {err}"))
}

fn check_bool(cases: &[(&str, bool)]) {
    for (text, want) in cases {
        let mut ctx = TestCtx::new();
        let got = eval_with(&mut ctx, text).value;
        assert_eq!(got, *want, "expression {text:?}");
    }
}

#[test]
fn booleans_and_precedence() {
    check_bool(&[
        ("true", true),
        ("false", false),
        ("!true", false),
        ("!false", true),
        ("!!true", true),
        ("true && false", false),
        ("true || false", true),
        ("not true", false),
        ("true and false", false),
        ("false or true", true),
        // `!` binds tighter than `&&`, which binds tighter than `||`
        ("!true && false || true", true),
        ("!false && false || false", false),
        ("!(true && false)", true),
        ("!true || true", true),
        ("true || false && false", true),
        ("(true || false) && false", false),
        ("false && false || true", true),
        ("((true))", true),
        ("true\n&&\ttrue", true),
    ]);
}

#[test]
fn comparisons() {
    check_bool(&[
        ("'abc' == 'abc'", true),
        ("'abc' = 'abc'", true),
        ("'abc' != 'abd'", true),
        ("'abc' < 'abd'", true),
        ("'b' > 'a'", true),
        ("'a' <= 'a'", true),
        ("'a' >= 'b'", false),
        ("'10' < '9'", true),
        ("10 -gt 9", true),
        ("'10' -gt '9'", true),
        ("-5 -lt 3", true),
        ("'007' -eq 7", true),
        ("'abc' -eq 0", true),
        ("'12abc' -eq 12", true),
        ("' 42' -eq 42", true),
        ("1 -ne 2", true),
        ("3 -le 3", true),
        ("3 -ge 4", false),
        ("10 gt 9", true),
        ("1 eq 1", true),
        ("2 lt 1", false),
        ("'99999999999999999999' -eq '9223372036854775807'", true),
    ]);
}

#[test]
fn variables_and_request_functions() {
    check_bool(&[
        ("%{REQUEST_URI} == '/foo/bar.html'", true),
        ("%{request_uri} == '/foo/bar.html'", true),
        ("%{HTTPS} == 'on'", true),
        ("%{HTTP_HOST} == 'Example.COM'", true),
        ("%{HTTP_USER_AGENT} =~ /Mozilla/", true),
        ("%{HTTP_COOKIE} == 'session=abc'", true),
        ("%{REMOTE_USER} == ''", true),
        ("%{SSL_PROTOCOL} == 'TLSv1.3'", true),
        ("SSL('SSL_PROTOCOL') == 'TLSv1.3'", true),
        ("req('X-Forwarded-Proto') == 'https'", true),
        ("http('x-forwarded-proto') == 'https'", true),
        ("REQ('Accept') == 'text/html'", true),
        ("req_novary('Accept') == 'text/html'", true),
        ("req('X-Missing') == ''", true),
        ("resp('Content-Type') == 'text/html'", true),
        ("reqenv('FOO') == 'envfoo'", true),
        ("env('BAR') == 'note-bar'", true),
        ("env('ONLY_ENV') == 'x'", true),
        ("note('BAR') == 'note-bar'", true),
        ("note('FOO') == ''", true),
        ("-z osenv('PATH')", true),
        ("-z env('PATH')", true),
        ("%{TIME_YEAR} -gt 2000", true),
        ("%{API_VERSION} == '20120211'", true),
        // %{func:arg} with case-insensitive function names: this is how
        // `%{HTTP:Name}` and `%{ENV:NAME}` work in ap_expr
        ("%{HTTP:X-Forwarded-Proto} == 'https'", true),
        ("%{ENV:FOO} == 'envfoo'", true),
        ("%{reqenv:FOO} == 'envfoo'", true),
    ]);
}

#[test]
fn string_functions() {
    check_bool(&[
        ("tolower('AbC') == 'abc'", true),
        ("toupper('abc') == 'ABC'", true),
        ("TOLOWER('X') == 'x'", true),
        ("escape('a b/c?d%') == 'a%20b/c%3fd%25'", true),
        ("escape('é') == '%c3%a9'", true),
        ("unescape('a%20b%2Fc') == 'a b%2Fc'", true),
        ("unescape('%c3%a9') == 'é'", true),
        ("unescape('bad%zz') == ''", true),
        ("unescape('nul%00') == ''", true),
        ("base64('Hello') == 'SGVsbG8='", true),
        ("base64('') == ''", true),
        ("base64('ab') == 'YWI='", true),
        ("unbase64('SGVsbG8=') == 'Hello'", true),
        ("unbase64('SGVsbG8') == 'Hello'", true),
        ("unbase64('SGVs!bG8') == 'Hel'", true),
        ("md5('abc') == '900150983cd24fb0d6963f7d28e17f72'", true),
        (
            "sha1('abc') == 'a9993e364706816aba3e25717850c26c9cd0d89d'",
            true,
        ),
        (r"ldap('a*b(c)') == 'a\\2ab\\28c\\29'", true),
        (r"ldap('cn=x,o=y') == 'cn=x\\2co=y'", true),
        ("filesize('/var/www/index.html') -eq 10", true),
        ("filesize('/var/www/empty.txt') == '0'", true),
        ("filesize('/nope') == '0'", true),
        ("filemod('/var/www/index.html') == '0'", true),
        ("tolower(toupper('x') . 'Y') == 'xy'", true),
    ]);
}

#[test]
fn concatenation_and_strings() {
    check_bool(&[
        ("'a' . 'b' == 'ab'", true),
        ("%{REQUEST_METHOD} . '-' . %{HTTPS} == 'GET-on'", true),
        ("'x%{REQUEST_METHOD}y' == 'xGETy'", true),
        ("\"x%{REQUEST_METHOD}y\" == 'xGETy'", true),
        ("%{tolower:%{HTTP_HOST}} == 'example.com'", true),
        ("%{toupper:x-%{REQUEST_METHOD}} == 'X-GET'", true),
        ("'' == ''", true),
        (r"'\101' == 'A'", true),
        (r"'\x41' == 'x41'", true),
        (r#"'it\'s' == "it's""#, true),
        (r#""a'b" == 'a\'b'"#, true),
        (r"'a\tb' == tolower('A	B')", true),
        ("'100%' == '100' . '%'", true),
        ("'a}b$c' == 'a}' . 'b$c'", true),
        (r"'a\0b' == 'a'", true),
    ]);
}

#[test]
fn in_lists() {
    check_bool(&[
        ("%{REQUEST_METHOD} -in { 'GET', 'HEAD' }", true),
        ("'POST' -in {'GET','HEAD'}", false),
        ("%{REQUEST_METHOD} in {'GET'}", true),
        ("'GET' -in {%{REQUEST_METHOD}}", true),
        ("'x' -in PeerExtList('1.2.3')", false),
    ]);
}

#[test]
fn regexes() {
    check_bool(&[
        ("%{REQUEST_URI} =~ m#^/foo/#", true),
        ("%{REQUEST_URI} =~ m,^/foo/,", true),
        ("%{REQUEST_URI} =~ /BAR/i", true),
        ("%{REQUEST_URI} =~ /BAR/", false),
        ("%{REQUEST_URI} !~ /baz/", true),
        (r"%{REQUEST_URI} =~ m|\.html$|", true),
        // DOTALL and DOLLAR_ENDONLY (RegexDefaultOptions)
        (r"'a\nb' =~ /a.b/", true),
        (r"'abc\n' =~ /c$/", false),
        // PCRE byte mode: ASCII-only \w
        ("'é' =~ /^\\w$/", false),
        ("'ä' =~ /ä/", true),
        // fancy-regex fallback
        (r"'abab' =~ /^(ab)\1$/", true),
        ("'foobar' =~ /foo(?=bar)/", true),
        ("'foobaz' =~ /foo(?!bar)/", true),
        (r"'abc' =~ /c\Z/", true),
        (r"'abc\n' =~ /c\Z/", true),
        (r"'abcd' =~ /c\Z/", false),
    ]);
}

#[test]
fn backreferences() {
    check_bool(&[
        (
            r"%{REQUEST_URI} =~ m#^/(\w+)/(\w+)# && $1 == 'foo' && $2 == 'bar'",
            true,
        ),
        ("'hello world' =~ /(o w)/ && $0 == 'o w'", true),
        ("'abc' =~ /(b)/ && 'x$1y' == 'xby'", true),
        ("'abc' =~ /(b)/ && %{tolower:$1} == 'b'", true),
        ("'ab' =~ /(a)(b)?(c)?/ && $3 == '' && $2 == 'b'", true),
        ("$1 == ''", true),
        // a regex without groups keeps earlier captures
        ("'x' =~ /(x)/ && 'y' =~ /y/ && $1 == 'x'", true),
        // a failed regex with groups clears them
        ("'x' =~ /(x)/ && ('y' =~ /(z)/ || $1 == '')", true),
        // no groups: $0 is not set
        ("'x' =~ /x/ && $0 == ''", true),
    ]);
}

#[test]
fn outcome_captures() {
    let mut ctx = TestCtx::new();
    let o = eval_with(&mut ctx, r"%{REQUEST_URI} =~ m#^/(\w+)/(\w+)\.(html)#");
    assert!(o.value);
    assert_eq!(o.captures.len(), 10);
    assert_eq!(o.captures[0].as_deref(), Some("/foo/bar.html"));
    assert_eq!(o.captures[1].as_deref(), Some("foo"));
    assert_eq!(o.captures[2].as_deref(), Some("bar"));
    assert_eq!(o.captures[3].as_deref(), Some("html"));
    assert_eq!(o.captures[4], None);

    assert!(eval_with(&mut ctx, "true").captures.is_empty());
    assert!(eval_with(&mut ctx, "'x' =~ /x/").captures.is_empty());
    let cleared = eval_with(&mut ctx, "'x' =~ /(x)/ && 'y' !~ /(z)/");
    assert!(cleared.value);
    assert!(cleared.captures.is_empty());
    // !~ with groups that does match sets captures (and is false)
    let neg = eval_with(&mut ctx, "'abc' !~ /(b)/");
    assert!(!neg.value);
    assert_eq!(neg.captures[1].as_deref(), Some("b"));
}

#[test]
fn ip_matching() {
    check_bool(&[
        ("%{REMOTE_ADDR} -ipmatch '192.168.0.0/16'", true),
        ("'10.1.2.3' -ipmatch '10.0.0.0/8'", true),
        ("'11.1.2.3' -ipmatch '10.0.0.0/8'", false),
        ("'10.1.2.3' -ipmatch '10.1'", true),
        ("'10.2.2.3' -ipmatch '10.1.'", false),
        ("'10.1.2.3' -ipmatch '10.0.0.0/255.0.0.0'", true),
        ("'10.1.2.3' -ipmatch '10.1.2.3'", true),
        ("'::1' -ipmatch '::1/128'", true),
        ("'2001:db8::5' -ipmatch '2001:db8::/32'", true),
        ("'2001:db9::5' -ipmatch '2001:db8::/32'", false),
        ("'::ffff:10.1.2.3' -ipmatch '10.0.0.0/8'", true),
        ("'10.1.2.3' -ipmatch '2001:db8::/32'", false),
        ("'not-an-ip' -ipmatch '10.0.0.0/8'", false),
        ("'10.1.2.3' -IPMATCH '10.0.0.0/8'", true),
        ("-R '192.168.1.0/24'", true),
        ("-R '10.0.0.0/8'", false),
        ("-R '192.168.1.10'", true),
    ]);
}

#[test]
fn glob_matching() {
    check_bool(&[
        ("'foo.html' -strmatch '*.html'", true),
        ("'dir/foo.html' -strmatch '*.html'", true),
        ("'dir/foo.html' -fnmatch '*.html'", false),
        ("'dir/foo.html' -fnmatch '*/*.html'", true),
        ("'dir/foo.html' -fnmatch 'dir?foo.html'", false),
        ("'FOO.HTML' -strcmatch '*.html'", true),
        ("'FOO.HTML' -strmatch '*.html'", false),
        ("'abc' -strmatch 'a?c'", true),
        ("'ac' -strmatch 'a?c'", false),
        ("'abc' -strmatch 'a[a-c]c'", true),
        ("'abc' -strmatch 'a[!b]c'", false),
        ("'adc' -strmatch 'a[^b]c'", true),
        ("'a]c' -strmatch 'a[]]c'", true),
        ("'a[c' -strmatch 'a[c'", true),
        (r"'a*c' -strmatch 'a\\*c'", true),
        (r"'abc' -strmatch 'a\\*c'", false),
        ("'aaa' -strmatch 'a*a*a*a'", false),
        ("'' -strmatch '*'", true),
        ("'abcdef' -strmatch '*c*f'", true),
        ("'ABC' -strcmatch 'a[b-c]C'", true),
    ]);
}

#[test]
fn unary_operators() {
    check_bool(&[
        ("-d '/var/www'", true),
        ("-d '/var/www/index.html'", false),
        ("-e '/var/www/index.html'", true),
        ("-e '/nope'", false),
        ("-f '/var/www/index.html'", true),
        ("-f '/var/www'", false),
        ("-f ''", false),
        ("-s '/var/www/index.html'", true),
        ("-s '/var/www/empty.txt'", false),
        ("-L '/var/www/link'", true),
        ("-h '/var/www/link'", true),
        ("-x '/var/www/cgi.sh'", true),
        ("-x '/var/www/index.html'", false),
        ("-F '/var/www/index.html'", true),
        ("-U '/allowed'", true),
        ("-A '/allowed'", true),
        ("-U '/denied'", false),
        ("-n 'x'", true),
        ("-n ''", false),
        ("-z ''", true),
        ("-z %{REMOTE_USER}", true),
        ("-n %{HTTP_HOST} . 'x'", true),
        ("-T 'on'", true),
        ("-T 'yes'", true),
        ("-T '00'", true),
        ("-T 'off'", false),
        ("-T 'OFF'", false),
        ("-T 'No'", false),
        ("-T 'FALSE'", false),
        ("-T '0'", false),
        ("-T ''", false),
        ("-f '/var/www/' . 'index.html' && -d '/var/www'", true),
    ]);
}

#[test]
fn string_expressions() {
    let cases: &[(&str, &str)] = &[
        ("%{REQUEST_URI}", "/foo/bar.html"),
        ("foo-%{tolower:%{HTTP_HOST}}", "foo-example.com"),
        ("", ""),
        ("plain text", "plain text"),
        ("100% sure $ {x} }", "100% sure $ {x} }"),
        ("quote \"x\" 'y'", "quote \"x\" 'y'"),
        (r"a\tb", "a\tb"),
        ("%{REQUEST_METHOD}%{HTTPS}", "GETon"),
        ("%{req:Accept}", "text/html"),
        ("%{md5:abc}", "900150983cd24fb0d6963f7d28e17f72"),
        ("%{escape:a b}", "a%20b"),
        ("%{ENV:FOO}", "envfoo"),
        ("%{tolower:A-%{toupper:b}-C}", "a-b-c"),
        ("$1", ""),
        ("x%{REMOTE_USER}y", "xy"),
    ];
    for (text, want) in cases {
        let e = parse_string(text).unwrap_or_else(|err| panic!("parse {text:?}: {err}"));
        let mut ctx = TestCtx::new();
        let got = e
            .eval(&mut ctx)
            .unwrap_or_else(|err| panic!("eval {text:?}: {err}"));
        assert_eq!(got, *want, "string expression {text:?}");
    }
}

#[test]
fn parse_errors_with_offsets() {
    let bool_cases: &[(&str, usize, &str)] = &[
        ("%{NOPE} == 'x'", 2, "variable 'NOPE' does not exist"),
        (
            "%{HTTP_X_FOO} == 'x'",
            2,
            "variable 'HTTP_X_FOO' does not exist",
        ),
        ("nope('x') == 'y'", 0, "function 'nope' does not exist"),
        ("'a' -nope 'b'", 4, "binary operator '-nope' does not exist"),
        ("'a' -IN 'a'", 4, "binary operator '-IN' does not exist"),
        // the delimiter cannot be escaped: the pattern is "a\"
        (
            r"'a.c' =~ m.a\.c.",
            9,
            "failed to compile regular expression",
        ),
        ("-Q 'x'", 0, "unary operator '-Q' does not exist"),
        ("-D '/'", 0, "unary operator '-D' does not exist"),
        ("'a' == 'b' &&", 13, "syntax error"),
        ("'abc", 4, "unterminated string or variable"),
        (
            "%{REQUEST_URI} =~ /(/",
            18,
            "failed to compile regular expression",
        ),
        ("'a' @ 'b'", 4, "parse error near '@'"),
        ("%{REQUEST_URI} == GET", 21, "syntax error"),
        ("%{X-Y}", 3, "invalid character in variable name '-'"),
        (
            "-R %{REMOTE_ADDR}",
            0,
            "-R requires subnet/netmask as constant argument",
        ),
        ("-R 10", 0, "constant argument"),
        (
            "'1.2.3.4' -ipmatch 'foo'",
            10,
            "parsing of subnet/netmask failed",
        ),
        (
            "'1.2.3.4' -ipmatch '1.2.3.4/33'",
            10,
            "parsing of subnet/netmask failed",
        ),
        (
            "'1.2.3.4' -ipmatch '10.1/8'",
            10,
            "parsing of subnet/netmask failed",
        ),
        (
            "'x' -in foo('y')",
            8,
            "list-returning function 'foo' does not exist",
        ),
        (r"'\9' == 'x'", 1, "bad escape sequence"),
        (r"'\1019' == 'x'", 1, "bad escape sequence"),
        (r"'\777' == 'x'", 1, "escape sequence out of bound"),
        ("true == 'x'", 5, "syntax error"),
        ("%{REQUEST_URI} == true", 18, "syntax error"),
        ("", 0, "syntax error"),
        ("'x' =~ 'y'", 7, "expecting regular expression"),
        ("/abc", 0, "unterminated regexp"),
        ("'x' =~ /x/ix", 11, "syntax error"),
        ("%{REQUEST_URI} =~ m_foo_", 18, "syntax error"),
        ("'a' == 'b' 'c'", 11, "syntax error"),
        ("('a' == 'b'", 11, "expecting ')'"),
        ("%{req:'x'}", 6, "invalid character in function argument"),
        ("'a\nb' == 'x'", 2, "unterminated string or variable"),
        ("%{REQUEST_URI", 13, "unterminated string or variable"),
    ];
    for (text, offset, msg) in bool_cases {
        match parse_bool(text) {
            Ok(_) => panic!("{text:?} should not parse"),
            Err(e) => {
                assert!(
                    e.message().contains(msg),
                    "{text:?}: message {:?} lacks {msg:?}",
                    e.message()
                );
                assert_eq!(e.offset(), *offset, "{text:?}: {e}");
                assert!(e.to_string().ends_with(&format!("at offset {offset}")));
            }
        }
    }
    for (text, msg) in [
        ("%{tolower:}", "syntax error"),
        ("%{NOPE}", "variable 'NOPE' does not exist"),
        ("%{nope:x}", "function 'nope' does not exist"),
        ("%{", "unterminated string or variable"),
        ("a\nb", "unterminated string or variable"),
    ] {
        match parse_string(text) {
            Ok(_) => panic!("string {text:?} should not parse"),
            Err(e) => assert!(e.message().contains(msg), "{text:?}: {e}"),
        }
    }
}

#[test]
fn limits() {
    let deep = format!("{}true{}", "(".repeat(100), ")".repeat(100));
    let err = parse_bool(&deep).err().map(|e| e.message().to_string());
    assert_eq!(err.as_deref(), Some("expression nested too deeply"));
    let ok = format!("{}true{}", "(".repeat(30), ")".repeat(30));
    assert!(parse_bool(&ok).is_ok());

    let long = format!("'{}' == ''", "a".repeat(MAX_EXPR_LEN));
    assert!(parse_bool(&long).is_err_and(|e| e.message() == "expression too long"));
    let big_string = format!("'{}' == ''", "a".repeat(9000));
    assert!(parse_bool(&big_string).is_err_and(|e| e.message() == "string too long"));

    // long flat chains neither overflow the parser nor the evaluator
    let chain = format!("{}true", "false || ".repeat(5000));
    assert!(eval_with(&mut TestCtx::new(), &chain).value);
    let concat = format!("{}'a' == '{}'", "'a' . ".repeat(3000), "a".repeat(3001));
    assert!(eval_with(&mut TestCtx::new(), &concat).value);
}

#[test]
fn eval_errors() {
    let mut ctx = TestCtx::new();
    let e = parse_bool("file('/etc/passwd') == ''").expect("file() parses");
    assert_eq!(
        e.eval(&mut ctx).err().map(|e| e.to_string()).as_deref(),
        Some("file() is not allowed")
    );
    // AP_EXPR_MAX_RECURSION: nested function calls past 20 frames fail
    let nest = |n: usize| format!("{}'x'{} == 'x'", "tolower(".repeat(n), ")".repeat(n));
    assert!(eval_with(&mut ctx, &nest(10)).value);
    let deep = parse_bool(&nest(25)).expect("parses");
    assert_eq!(
        deep.eval(&mut ctx).err().map(|e| e.to_string()).as_deref(),
        Some("recursion limit reached")
    );
}

#[test]
fn vary_and_short_circuit() {
    let mut ctx = TestCtx::new();
    eval_with(
        &mut ctx,
        "%{HTTP_HOST} == 'x' || req('Accept') == 'y' || req_novary('X-A') == ''",
    );
    assert_eq!(
        ctx.header_calls,
        vec![(s("Host"), false), (s("Accept"), true), (s("X-A"), false)]
    );

    let mut ctx = TestCtx::new();
    assert!(!eval_with(&mut ctx, "false && req('X-A') == ''").value);
    assert!(eval_with(&mut ctx, "true || req('X-A') == ''").value);
    assert!(ctx.header_calls.is_empty());
}

#[test]
fn lexer_longest_match() {
    check_bool(&[
        // keywords only when the whole identifier matches
        ("tolower('in') == 'in'", true),
        // "-in" vs a binary operator named "-int..." is longest match
        ("'a' -in {'a'}", true),
        // `m` followed by a delimiter starts a regex
        ("'abc' =~ m!b!", true),
        ("'a.c' =~ m#a\\.c#", true),
        ("'abc' =~ m#a\\.c#", false),
        ("'m' == 'm'", true),
        // `==` and `=` are the same operator; `=~` is a regex match
        ("'a'=='a'&&'b'='b'", true),
    ]);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, ..ProptestConfig::default() })]

    #[test]
    fn parse_never_panics(text in "\\PC{0,60}") {
        let _ = parse_bool(&text);
        let _ = parse_string(&text);
    }

    #[test]
    fn fragments_never_panic(parts in prop::collection::vec(prop_oneof![
        Just("%{"), Just("}"), Just("'"), Just("\""), Just("("), Just(")"), Just("{"),
        Just(","), Just("=~"), Just("/"), Just("m#"), Just("#"), Just("i"), Just("$1"),
        Just("\\"), Just("\\1"), Just("&&"), Just("||"), Just("!"), Just("-n "), Just("-R "),
        Just(" -ipmatch "), Just(" -in "), Just(" == "), Just("."), Just(":"), Just("tolower"),
        Just("REQUEST_URI"), Just("HTTP_HOST"), Just("req"), Just("x"), Just("10.0.0.0/8"),
        Just(" "), Just("true"), Just("-strmatch "), Just("*"), Just("["), Just("]"),
        Just("-eq "), Just("7"), Just("%"), Just("\n"),
    ], 0..30)) {
        let text: String = parts.concat();
        if let Ok(e) = parse_bool(&text) {
            let _ = e.eval(&mut TestCtx::new());
        }
        if let Ok(e) = parse_string(&text) {
            let _ = e.eval(&mut TestCtx::new());
        }
    }

    #[test]
    fn glob_and_subnet_never_panic(p in "\\PC{0,20}", t in "\\PC{0,20}") {
        let _ = funcs::wildcard_match(&p, &t, true, true);
        let _ = funcs::wildcard_match(&p, &t, false, false);
        let _ = funcs::Subnet::parse(&p);
        let _ = funcs::unbase64(&p);
        let _ = funcs::unescape(&p);
    }
}

#[test]
fn regex_engine_choice() {
    use super::pcre::Pcre;
    // plain PCRE-compatible patterns use the linear-time engine
    for p in ["^/foo/", "ä", r"\.html$", "(?i)x", "[[:alpha:]]+", r"\w+\s"] {
        assert!(matches!(Pcre::new(p, false), Ok(Pcre::Fast(_))), "{p}");
    }
    // backreferences and lookaround need the backtracking engine
    for p in [r"(a)\1", "a(?=b)", "(?<!x)y", r"c\Z"] {
        assert!(matches!(Pcre::new(p, false), Ok(Pcre::Fancy(_))), "{p}");
    }
    assert!(Pcre::new("(", false).is_err());
    // PCRE byte mode folds ASCII case only
    assert!(Pcre::new("x", true).is_ok_and(|r| r.is_match("X")));
    assert!(Pcre::new("ä", true).is_ok_and(|r| !r.is_match("Ä")));
}

//! The `*_HTML` constants are Apache 2.4.71's answers (mod_autoindex
//! as loaded by the conformance oracle, `curl` on a throw-away
//! instance) for the small tree built by [`tree`], with the
//! configuration and query named in each test.

use super::entries::parent_uri;
use super::format::{os_escape_path, strfsize, terminate_description, Zone};
use super::matching::find_desc;
use super::options::{
    WidthMode, FANCY_INDEXING, NO_OPTIONS, OPTION_UNSET, SUPPRESS_LAST_MOD, SUPPRESS_SIZE,
    TABLE_INDEXING, VERSION_SORT,
};
use super::query::{parse_query, P_FLAGS};
use super::render::render_in;
use super::*;
use htgate_util::escape::escape_html;
use htgate_util::fnmatch::fnmatch;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

const PLAIN_HTML: &str = r#"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">
<html>
 <head>
  <title>Index of /s</title>
 </head>
 <body>
<h1>Index of /s</h1>
<ul><li><a href="/"> Parent Directory</a></li>
<li><a href=".hidden"> .hidden</a></li>
<li><a href="100%25.txt"> 100%.txt</a></li>
<li><a href="%3ca&amp;b%3e.txt"> &lt;a&amp;b&gt;.txt</a></li>
<li><a href="a.txt"> a.txt</a></li>
<li><a href="./a:b"> a:b</a></li>
<li><a href="file.bak"> file.bak</a></li>
<li><a href="sub/"> sub/</a></li>
<li><a href="x%20y.txt"> x y.txt</a></li>
</ul>
</body></html>
"#;
const IGNORE_DESC_HTML: &str = r#"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">
<html>
 <head>
  <title>Index of /s</title>
 </head>
 <body>
<h1>Index of /s</h1>
<ul><li><a href="/"> Parent Directory</a></li>
<li><a href="x%20y.txt"> x y.txt</a></li>
<li><a href="sub/"> sub/</a></li>
<li><a href="./a:b"> a:b</a></li>
<li><a href="a.txt"> a.txt</a></li>
<li><a href="%3ca&amp;b%3e.txt"> &lt;a&amp;b&gt;.txt</a></li>
<li><a href="100%25.txt"> 100%.txt</a></li>
</ul>
</body></html>
"#;
const ORDER_DEFAULT_HTML: &str = r#"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">
<html>
 <head>
  <title>Index of /s</title>
 </head>
 <body>
<h1>Index of /s</h1>
<ul><li><a href="/"> Parent Directory</a></li>
<li><a href="x%20y.txt"> x y.txt</a></li>
<li><a href="sub/"> sub/</a></li>
<li><a href="file.bak"> file.bak</a></li>
<li><a href="./a:b"> a:b</a></li>
<li><a href="a.txt"> a.txt</a></li>
<li><a href="%3ca&amp;b%3e.txt"> &lt;a&amp;b&gt;.txt</a></li>
<li><a href="100%25.txt"> 100%.txt</a></li>
<li><a href=".hidden"> .hidden</a></li>
</ul>
</body></html>
"#;
const FANCY_SIZE_DESC_HTML: &str = r#"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">
<html>
 <head>
  <title>Index of /s</title>
 </head>
 <body>
<h1>Index of /s</h1>
<pre>      <a href="?C=N;O=A">Name</a>                    <a href="?C=M;O=A">Last modified</a>      <a href="?C=S;O=A">Size</a>  <a href="?C=D;O=A">Description</a><hr>      <a href="/">Parent Directory</a>                             -   
      <a href="file.bak">file.bak</a>                2024-05-06 12:36  2.0K  
      <a href="a.txt">a.txt</a>                   2024-05-04 12:34    6   
      <a href="x%20y.txt">x y.txt</a>                 2024-05-08 12:38    2   
      <a href="./a:b">a:b</a>                     2024-05-05 12:35    2   
      <a href="%3ca&amp;b%3e.txt">&lt;a&amp;b&gt;.txt</a>               2024-05-03 12:33    2   
      <a href="100%25.txt">100%.txt</a>                2024-05-02 12:32    2   
      <a href=".hidden">.hidden</a>                 2024-05-01 12:31    2   
      <a href="sub/">sub/</a>                    2024-05-07 12:37    -   
<hr></pre>
</body></html>
"#;
const TABLE_HTML: &str = r#"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">
<html>
 <head>
  <title>Index of /s</title>
 </head>
 <body>
<h1>Index of /s</h1>
  <table>
   <tr><th valign="top">&nbsp;</th><th><a href="?C=N;O=D">Name</a></th><th><a href="?C=M;O=A">Last modified</a></th><th><a href="?C=S;O=A">Size</a></th><th><a href="?C=D;O=A">Description</a></th></tr>
   <tr><th colspan="5"><hr></th></tr>
<tr><td valign="top">&nbsp;</td><td><a href="/">Parent Directory</a>       </td><td>&nbsp;</td><td align="right">  - </td><td>&nbsp;</td></tr>
<tr><td valign="top">&nbsp;</td><td><a href="sub/">sub/</a>                   </td><td align="right">2024-05-07 12:37  </td><td align="right">  - </td><td>&nbsp;</td></tr>
<tr><td valign="top">&nbsp;</td><td><a href=".hidden">.hidden</a>                </td><td align="right">2024-05-01 12:31  </td><td align="right">  2 </td><td>&nbsp;</td></tr>
<tr><td valign="top">&nbsp;</td><td><a href="100%25.txt">100%.txt</a>               </td><td align="right">2024-05-02 12:32  </td><td align="right">  2 </td><td>&nbsp;</td></tr>
<tr><td valign="top">&nbsp;</td><td><a href="%3ca&amp;b%3e.txt">&lt;a&amp;b&gt;.txt</a>              </td><td align="right">2024-05-03 12:33  </td><td align="right">  2 </td><td>&nbsp;</td></tr>
<tr><td valign="top">&nbsp;</td><td><a href="a.txt">a.txt</a>                  </td><td align="right">2024-05-04 12:34  </td><td align="right">  6 </td><td>&nbsp;</td></tr>
<tr><td valign="top">&nbsp;</td><td><a href="./a:b">a:b</a>                    </td><td align="right">2024-05-05 12:35  </td><td align="right">  2 </td><td>&nbsp;</td></tr>
<tr><td valign="top">&nbsp;</td><td><a href="file.bak">file.bak</a>               </td><td align="right">2024-05-06 12:36  </td><td align="right">2.0K</td><td>&nbsp;</td></tr>
<tr><td valign="top">&nbsp;</td><td><a href="x%20y.txt">x y.txt</a>                </td><td align="right">2024-05-08 12:38  </td><td align="right">  2 </td><td>&nbsp;</td></tr>
   <tr><th colspan="5"><hr></th></tr>
</table>
</body></html>
"#;
const FANCY_PATTERN_HTML: &str = r#"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">
<html>
 <head>
  <title>Index of /s</title>
 </head>
 <body>
<h1>Index of /s</h1>
<pre>      <a href="?C=N;O=A;P=*.txt">Name</a>                    <a href="?C=M;O=A;P=*.txt">Last modified</a>      <a href="?C=S;O=A;P=*.txt">Size</a>  <a href="?C=D;O=A;P=*.txt">Description</a><hr>      <a href="/">Parent Directory</a>                             -   
      <a href="x%20y.txt">x y.txt</a>                 2024-05-08 12:38    2   
      <a href="a.txt">a.txt</a>                   2024-05-04 12:34    6   
      <a href="%3ca&amp;b%3e.txt">&lt;a&amp;b&gt;.txt</a>               2024-05-03 12:33    2   
      <a href="100%25.txt">100%.txt</a>                2024-05-02 12:32    2   
<hr></pre>
</body></html>
"#;
const ICONS_HTML: &str = r#"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">
<html>
 <head>
  <title>Index of /s</title>
 </head>
 <body>
<h1>Index of /s</h1>
<pre><img src="/icons/blank.gif" alt="Icon " height="22"> <a href="?C=N;O=D;V=1">Name</a>                    <a href="?C=M;O=A;V=1">Last modified</a>      <a href="?C=S;O=A;V=1">Size</a>  <a href="?C=D;O=A;V=1">Description</a><hr><a href="/"><img src="/icons/back.gif" alt="[DIR]" height="22"></a> <a href="/">Parent Directory</a>                             -   
<a href=".hidden"><img src="/icons/unknown.gif" alt="[   ]" height="22"></a> <a href=".hidden">.hidden</a>                 2024-05-01 12:31    2   
<a href="100%25.txt"><img src="/icons/text.gif" alt="[   ]" height="22"></a> <a href="100%25.txt">100%.txt</a>                2024-05-02 12:32    2   <b>Text</b> &amp; more text here
<a href="%3ca&amp;b%3e.txt"><img src="/icons/text.gif" alt="[   ]" height="22"></a> <a href="%3ca&amp;b%3e.txt">&lt;a&amp;b&gt;.txt</a>               2024-05-03 12:33    2   <b>Text</b> &amp; more text here
<a href="a.txt"><img src="/icons/text.gif" alt="[   ]" height="22"></a> <a href="a.txt">a.txt</a>                   2024-05-04 12:34    6   <b>Text</b> &amp; more text here
<a href="./a:b"><img src="/icons/unknown.gif" alt="[   ]" height="22"></a> <a href="./a:b">a:b</a>                     2024-05-05 12:35    2   
<a href="file.bak"><img src="/icons/unknown.gif" alt="[   ]" height="22"></a> <a href="file.bak">file.bak</a>                2024-05-06 12:36  2.0K  
<a href="sub/"><img src="/icons/folder.gif" alt="[DIR]" height="22"></a> <a href="sub/">sub/</a>                    2024-05-07 12:37    -   
<a href="x%20y.txt"><img src="/icons/text.gif" alt="[   ]" height="22"></a> <a href="x%20y.txt">x y.txt</a>                 2024-05-08 12:38    2   <b>Text</b> &amp; more text here
<hr></pre>
</body></html>
"#;
const STYLE_XHTML_HTML: &str = r#"<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN"
"http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml">
 <head>
  <title>Index of /s</title>
  <link rel="stylesheet" href="/style.css" type="text/css" />
 </head>
 <body>
  <h1 id="indextitle">Index of /s</h1>
  <table id="indexlist">
   <tr class="indexhead"><th class="indexcolicon">&nbsp;</th><th class="indexcolname"><a href="?C=N;O=D;F=2">Name</a></th><th class="indexcolsize"><a href="?C=S;O=A;F=2">Size</a></th><th class="indexcoldesc"><a href="?C=D;O=A;F=2">Description</a></th></tr>
   <tr class="indexbreakrow"><th colspan="4"><hr /></th></tr>
   <tr class="even-parentdir"><td class="indexcolicon">&nbsp;</td><td class="indexcolname"><a href="/">Parent Directory</a>       </td><td class="indexcolsize">  - </td><td class="indexcoldesc">&nbsp;</td></tr>
   <tr class="odd"><td class="indexcolicon">&nbsp;</td><td class="indexcolname"><a href=".hidden">.hidden</a>                </td><td class="indexcolsize">  2 </td><td class="indexcoldesc">&nbsp;</td></tr>
   <tr class="even-txt"><td class="indexcolicon">&nbsp;</td><td class="indexcolname"><a href="100%25.txt">100%.txt</a>               </td><td class="indexcolsize">  2 </td><td class="indexcoldesc">&nbsp;</td></tr>
   <tr class="odd-txt"><td class="indexcolicon">&nbsp;</td><td class="indexcolname"><a href="%3ca&amp;b%3e.txt">&lt;a&amp;b&gt;.txt</a>              </td><td class="indexcolsize">  2 </td><td class="indexcoldesc">&nbsp;</td></tr>
   <tr class="even-txt"><td class="indexcolicon">&nbsp;</td><td class="indexcolname"><a href="a.txt">a.txt</a>                  </td><td class="indexcolsize">  6 </td><td class="indexcoldesc">&nbsp;</td></tr>
   <tr class="odd"><td class="indexcolicon">&nbsp;</td><td class="indexcolname"><a href="./a:b">a:b</a>                    </td><td class="indexcolsize">  2 </td><td class="indexcoldesc">&nbsp;</td></tr>
   <tr class="even"><td class="indexcolicon">&nbsp;</td><td class="indexcolname"><a href="file.bak">file.bak</a>               </td><td class="indexcolsize">2.0K</td><td class="indexcoldesc">&nbsp;</td></tr>
   <tr class="odd-dir"><td class="indexcolicon">&nbsp;</td><td class="indexcolname"><a href="sub/">sub/</a>                   </td><td class="indexcolsize">  - </td><td class="indexcoldesc">&nbsp;</td></tr>
   <tr class="even-txt"><td class="indexcolicon">&nbsp;</td><td class="indexcolname"><a href="x%20y.txt">x y.txt</a>                </td><td class="indexcolsize">  2 </td><td class="indexcoldesc">&nbsp;</td></tr>
   <tr class="indexbreakrow"><th colspan="4"><hr /></th></tr>
</table>
</body></html>
"#;
const HEADER_HTML: &str = r#"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01//EN" "http://www.w3.org/TR/html4/strict.dtd">
<html>
 <head>
  <title>Index of /s</title>
 </head>
 <body>
<pre>
hdr &lt;b&gt;x&lt;/b&gt; &amp;
</pre>
<ul><li><a href="/"> Parent Directory</a></li>
<li><a href=".hidden"> .hidden</a></li>
<li><a href="100%25.txt"> 100%.txt</a></li>
<li><a href="%3ca&amp;b%3e.txt"> &lt;a&amp;b&gt;.txt</a></li>
<li><a href="a.txt"> a.txt</a></li>
<li><a href="./a:b"> a:b</a></li>
<li><a href="file.bak"> file.bak</a></li>
<li><a href="sub/"> sub/</a></li>
<li><a href="x%20y.txt"> x y.txt</a></li>
</ul>
</body></html>
"#;

/// 2024-05-0`day` 12:3`day`:00 UTC.
fn at(day: u64) -> Option<SystemTime> {
    let base = 1_714_521_600; // 2024-05-01 00:00:00 UTC
    Some(UNIX_EPOCH + Duration::from_secs(base + (day - 1) * 86_400 + 12 * 3600 + (30 + day) * 60))
}

fn file(name: &str, size: u64, day: u64) -> Entry {
    let content_type = if name.ends_with(".txt") {
        Some("text/plain".to_string())
    } else {
        None
    };
    Entry {
        name: name.into(),
        size: Some(size),
        modified: at(day),
        content_type,
        ..Entry::default()
    }
}

/// The directory listed as `/s/` in the captures (readdir order is
/// irrelevant; `.` and `..` come along as they would from readdir).
fn tree() -> Vec<Entry> {
    vec![
        Entry {
            name: ".".into(),
            is_dir: true,
            ..Entry::default()
        },
        file("x y.txt", 2, 8),
        file("a.txt", 6, 4),
        Entry {
            name: "sub".into(),
            is_dir: true,
            size: Some(4096),
            modified: at(7),
            ..Entry::default()
        },
        file(".hidden", 2, 1),
        file("100%.txt", 2, 2),
        file("<a&b>.txt", 2, 3),
        file("a:b", 2, 5),
        file("file.bak", 2000, 6),
        Entry {
            name: "..".into(),
            is_dir: true,
            ..Entry::default()
        },
    ]
}

fn config(lines: &[&str]) -> IndexConfig {
    let mut own = IndexConfig::default();
    for line in lines {
        let words: Vec<String> = split_words(line);
        assert!(
            own.apply_directive(&words[0], &words[1..]).unwrap(),
            "{line}"
        );
    }
    IndexConfig::default().merge(&own)
}

/// Whitespace-separated words, double quotes grouping (enough for
/// these tests).
fn split_words(line: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut quoted = false;
    let mut any = false;
    for c in line.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                any = true;
            }
            c if c.is_whitespace() && !quoted => {
                if any {
                    out.push(std::mem::take(&mut cur));
                    any = false;
                }
            }
            c => {
                cur.push(c);
                any = true;
            }
        }
    }
    if any {
        out.push(cur);
    }
    out
}

fn utc(query: Option<&str>, cfg: &IndexConfig) -> String {
    let listing = Listing {
        dir_uri: "/s/",
        query,
        entries: tree(),
        ..Listing::default()
    };
    String::from_utf8(render_in(&listing, cfg, Zone::Utc)).unwrap()
}

#[test]
fn plain_listing_is_apaches() {
    let cfg = config(&[]);
    assert_eq!(render("/s/", None, tree(), &cfg), PLAIN_HTML);
    assert_eq!(cfg.content_type(), CONTENT_TYPE);
}

#[test]
fn plain_with_ignore_and_descending_query() {
    let cfg = config(&["IndexIgnore *.bak .??*"]);
    assert_eq!(
        render("/s/", Some("C=N;O=D"), tree(), &cfg),
        IGNORE_DESC_HTML
    );
}

#[test]
fn index_order_default() {
    let cfg = config(&["IndexOrderDefault Descending Name"]);
    assert_eq!(render("/s/", None, tree(), &cfg), ORDER_DEFAULT_HTML);
}

#[test]
fn fancy_sorted_by_size() {
    let cfg = config(&["IndexOptions FancyIndexing"]);
    assert_eq!(utc(Some("C=S;O=D"), &cfg), FANCY_SIZE_DESC_HTML);
}

#[test]
fn fancy_with_pattern_sorted_by_date() {
    let cfg = config(&["IndexOptions FancyIndexing"]);
    assert_eq!(utc(Some("C=M;O=D;P=*.txt"), &cfg), FANCY_PATTERN_HTML);
}

#[test]
fn html_table_folders_first() {
    let cfg = config(&["IndexOptions FancyIndexing HTMLTable FoldersFirst"]);
    assert_eq!(utc(None, &cfg), TABLE_HTML);
}

#[test]
fn icons_descriptions_and_version_sort() {
    let cfg = config(&[
        "IndexOptions FancyIndexing IconsAreLinks IconHeight",
        "AddIcon /icons/text.gif .txt",
        "AddIcon (DIR,/icons/folder.gif) ^^DIRECTORY^^",
        "AddIcon /icons/blank.gif ^^BLANKICON^^",
        "AddIcon /icons/back.gif ..",
        "AddDescription \"<b>Text</b> &amp; more text here\" *.txt",
        "DefaultIcon /icons/unknown.gif",
    ]);
    assert_eq!(utc(Some("V=1"), &cfg), ICONS_HTML);
}

#[test]
fn style_sheet_xhtml_alt_classes() {
    let cfg = config(&[
        "IndexOptions HTMLTable XHTML AddAltClass SuppressLastModified",
        "IndexStyleSheet /style.css",
        "AddAlt TXT *.txt",
    ]);
    assert_eq!(utc(Some("F=2"), &cfg), STYLE_XHTML_HTML);
}

#[test]
fn text_header_file() {
    let cfg = config(&["HeaderName HEAD.txt", "IndexIgnore HEAD*"]);
    let mut entries = tree();
    entries.push(file("HEAD.txt", 15, 9));
    let listing = Listing {
        dir_uri: "/s/",
        entries,
        header: Some(Insert::Text(b"hdr <b>x</b> &\n".to_vec())),
        ..Listing::default()
    };
    assert_eq!(
        String::from_utf8(render_listing(&listing, &cfg)).unwrap(),
        HEADER_HTML
    );
}

#[test]
fn html_readme_and_suppressed_preamble() {
    let cfg = config(&["IndexOptions SuppressHTMLPreamble"]);
    let listing = Listing {
        dir_uri: "/",
        header: Some(Insert::Html(b"<p>head</p>\n".to_vec())),
        readme: Some(Insert::Html(b"<p>readme</p>\n".to_vec())),
        signature: Some("<address>sig</address>\n".into()),
        ..Listing::default()
    };
    // No preamble, no <h1>, no signature, no closing tags: the HTML
    // files are trusted to supply them.
    assert_eq!(
        String::from_utf8(render_listing(&listing, &cfg)).unwrap(),
        "<p>head</p>\n<ul></ul>\n<p>readme</p>\n"
    );
}

#[test]
fn names_are_escaped_like_apache() {
    let href = |s: &str| {
        let mut v = Vec::new();
        escape_html(&mut v, &os_escape_path(s.as_bytes(), false));
        String::from_utf8(v).unwrap()
    };
    assert_eq!(href("<a&b>.txt"), "%3ca&amp;b%3e.txt");
    assert_eq!(href("100%.txt"), "100%25.txt");
    assert_eq!(href("a:b"), "./a:b");
    assert_eq!(href("d:ir/"), "./d:ir/");
    assert_eq!(href("/x:y/"), "/x:y/");
    assert_eq!(href("q\"?#.txt"), "q%22%3f%23.txt");
    assert_eq!(href("é"), "%c3%a9");
    // Apache's listing of one file per printable character: these are
    // the ones left alone.
    let kept: String = (0x20u8..0x7f)
        .map(char::from)
        .filter(|c| {
            let name = format!("f{c}g");
            *c != '/' && os_escape_path(name.as_bytes(), true) == name.as_bytes()
        })
        .collect();
    assert_eq!(
        kept,
        "!$&'()*+,-.0123456789:;=@ABCDEFGHIJKLMNOPQRSTUVWXYZ_abcdefghijklmnopqrstuvwxyz~"
    );
    let mut text = Vec::new();
    escape_html(&mut text, b"<a&b>\"'.txt");
    assert_eq!(text, b"&lt;a&amp;b&gt;&quot;'.txt");
}

#[test]
fn title_and_parent_link() {
    let cfg = config(&[]);
    let page = render("/m/x&y <z>:1/", None, vec![], &cfg);
    assert!(page.contains("<title>Index of /m/x&amp;y &lt;z&gt;:1</title>"));
    assert!(page.contains("<li><a href=\"/m/\"> Parent Directory</a></li>"));
    let root = render("/", None, vec![], &cfg);
    assert!(root.contains("<title>Index of /</title>"));
    assert!(!root.contains("Parent Directory"));
    assert_eq!(parent_uri("/a/b/"), Some("/a/".into()));
    assert_eq!(parent_uri("/a/b"), Some("/a/".into()));
    assert_eq!(parent_uri("/100%/x/"), Some("/100%/".into()));
    assert_eq!(parent_uri("/"), None);
    let p = render("/100%/x/", None, vec![], &cfg);
    assert!(p.contains("<a href=\"/100%25/\"> Parent Directory"));
}

#[test]
fn long_names_are_cut_bytewise() {
    // Apache cuts at byte 20 even inside a UTF-8 sequence.
    let cfg = config(&["IndexOptions FancyIndexing SuppressLastModified"]);
    let name = format!("a{}.txt", "é".repeat(12));
    let listing = Listing {
        dir_uri: "/d/",
        entries: vec![Entry {
            name,
            size: Some(1),
            ..Entry::default()
        }],
        ..Listing::default()
    };
    let page = render_listing(&listing, &cfg);
    let mut want = b">a".to_vec();
    want.extend_from_slice("é".repeat(9).as_bytes());
    want.extend_from_slice(b"\xc3..&gt;</a> ");
    assert!(page.windows(want.len()).any(|w| w == want.as_slice()));
}

#[test]
fn index_ignore_patterns() {
    let ig = |p: &str, name: &str| is_ignored(name, &[p.to_string()]);
    assert!(ig("*.bak", "file.bak"));
    assert!(!ig("*.bak", "file.bak2"));
    assert!(ig("a*", "a.txt"));
    assert!(ig("sub", "sub"));
    assert!(ig("..", ".."));
    assert!(ig(".*", ".."));
    // Only the last path segment counts.
    assert!(ig("zzz/a.txt", "a.txt"));
    assert!(ig("/abc*", "abcdef"));
    assert!(!ig("sub/", "sub"));
    assert!(ig("?.txt", "a.txt") && !ig("?.txt", "ab.txt"));
    assert!(ig("?.txt", "x.txt"));
    // No bracket expressions, case-sensitive.
    assert!(!ig("[a]*", "a.txt"));
    assert!(!ig("*.BAK", "file.bak"));
    let cfg = config(&["IndexIgnore .. *.txt"]);
    let page = render("/s/", None, tree(), &cfg);
    assert!(!page.contains("Parent Directory") && !page.contains(".txt"));
    assert!(page.contains("a:b"));
}

#[test]
fn sorting() {
    let cfg = config(&["IndexOptions FancyIndexing"]);
    let names = |q: Option<&str>, cfg: &IndexConfig| -> Vec<String> {
        let entries = [
            "file10.txt",
            "file2.txt",
            "File3.txt",
            "file02.txt",
            "file1.txt",
        ]
        .iter()
        .enumerate()
        .map(|(i, n)| file(n, 10 - i as u64, i as u64 + 1))
        .collect();
        let page = render("/d/", q, entries, cfg);
        page.lines()
            .filter_map(|l| l.split("<a href=\"").nth(1))
            .filter_map(|l| l.split('"').next())
            .filter(|h| h.starts_with('f') || h.starts_with('F'))
            .map(str::to_string)
            .collect()
    };
    assert_eq!(
        names(None, &cfg),
        [
            "File3.txt",
            "file02.txt",
            "file1.txt",
            "file10.txt",
            "file2.txt"
        ]
    );
    assert_eq!(
        names(Some("V=1"), &cfg),
        [
            "File3.txt",
            "file02.txt",
            "file1.txt",
            "file2.txt",
            "file10.txt"
        ]
    );
    assert_eq!(
        names(Some("C=S;O=A"), &cfg),
        [
            "file1.txt",
            "file02.txt",
            "File3.txt",
            "file2.txt",
            "file10.txt"
        ]
    );
    assert_eq!(
        names(Some("C=M;O=D"), &cfg),
        [
            "file1.txt",
            "file02.txt",
            "File3.txt",
            "file2.txt",
            "file10.txt"
        ]
    );
    let ci = config(&["IndexOptions FancyIndexing IgnoreCase"]);
    assert_eq!(
        names(None, &ci),
        [
            "file02.txt",
            "file1.txt",
            "file10.txt",
            "file2.txt",
            "File3.txt"
        ]
    );
    // IgnoreClient: the query is not looked at.
    let ic = config(&["IndexOptions FancyIndexing IgnoreClient"]);
    assert_eq!(names(Some("C=S;O=A"), &ic), names(None, &cfg));
    assert!(!render("/d/", None, vec![], &ic).contains("?C="));
}

#[test]
fn query_arguments() {
    let cfg = config(&[]);
    let q = |s: &str| parse_query(Some(s), &cfg);
    let a = q("C=S&O=D&F=2&V=1&P=a*");
    assert_eq!((a.key, a.direction), (b'S', b'D'));
    assert_eq!(
        a.opts & (FANCY_INDEXING | TABLE_INDEXING | VERSION_SORT),
        FANCY_INDEXING | TABLE_INDEXING | VERSION_SORT
    );
    assert_eq!(a.colargs, b";F=2;V=1;P=a*");
    // A syntax error ends the parse; what came before stands.
    let b = q("O=D;junk;F=1");
    assert_eq!(
        (b.key, b.direction, b.opts & FANCY_INDEXING),
        (b'N', b'D', 0)
    );
    assert_eq!(q("C=X;F=1").opts & FANCY_INDEXING, 0);
    assert_eq!(q("C=NN").key, b'N');
    // P= is %-decoded, re-escaped in the links, ignored when bad.
    let c = q("P=%2a.txt&C=N");
    assert_eq!(c.pattern.as_deref(), Some(&b"*.txt"[..]));
    assert_eq!(c.colargs, b";P=*.txt");
    assert_eq!(q("P=%zz;F=1").pattern, None);
    assert_eq!(q("P=a%2fb").pattern, None);
    assert_eq!(q("P=a b").colargs, b";P=a%20b");
    // F=0 turns fancy indexing off.
    let fancy = config(&["IndexOptions FancyIndexing"]);
    assert!(render("/s/", Some("F=0"), tree(), &fancy).contains("<ul>"));
}

#[test]
fn pattern_matching() {
    let m = |p: &str, s: &str| fnmatch(p.as_bytes(), s.as_bytes(), P_FLAGS);
    assert!(m("*.txt", "a.txt"));
    assert!(!m("*.TXT", "a.txt"));
    assert!(m("[a-c]*", "b.html"));
    assert!(!m("[!a-c]*", "b.html"));
    assert!(m("[^a-c]*", "d"));
    assert!(m("f?le", "file"));
    // A leading dot needs a literal dot.
    assert!(!m("*", ".hidden"));
    assert!(!m("?hidden", ".hidden"));
    assert!(m(".h*", ".hidden"));
    assert!(m("a[", "a["));
    assert!(m("[]]", "]"));
}

#[test]
fn index_options_parsing() {
    let w = |s: &str| split_words(s);
    let base = IndexOptions::default();
    assert_eq!(
        parse_index_options(&w("Bogus"), &base).unwrap_err(),
        "Invalid directory indexing option"
    );
    assert!(parse_index_options(&w("+None"), &base).is_err());
    assert!(parse_index_options(&w("None FancyIndexing"), &base).is_err());
    assert!(parse_index_options(&w("NameWidth"), &base).is_err());
    assert!(parse_index_options(&w("NameWidth=3"), &base).is_err());
    assert!(parse_index_options(&w("-NameWidth=30"), &base).is_err());
    assert!(parse_index_options(&w("DescriptionWidth=5"), &base).is_err());
    let o = parse_index_options(
        &w("fancyindexing +HTMLTable nAmEwIdTh=* Charset=UTF-8 Type=text/plain"),
        &base,
    )
    .unwrap();
    assert_eq!(o.content_type(), "text/plain;charset=UTF-8");
    assert_eq!(
        parse_index_options(&w("Charset="), &base)
            .unwrap()
            .content_type(),
        "text/html"
    );
    assert!(parse_index_options(&w("TrackModified"), &base)
        .unwrap()
        .track_modified());
}

/// The merged option bits for a parent and a child context.
fn merged(parent: &[&str], child: &[&str]) -> u32 {
    let ctx = |lines: &[&str]| {
        let mut c = IndexConfig::default();
        for l in lines {
            let w = split_words(l);
            c.apply_directive(&w[0], &w[1..]).unwrap();
        }
        c
    };
    let m = IndexConfig::default()
        .merge(&ctx(parent))
        .merge(&ctx(child));
    m.options.opts & !(OPTION_UNSET | NO_OPTIONS)
}

#[test]
fn option_merging_follows_apache() {
    // Checked against Apache with a parent and a child .htaccess.
    let f = FANCY_INDEXING;
    assert_eq!(merged(&["IndexOptions FancyIndexing"], &[]), f);
    assert_eq!(
        merged(
            &["IndexOptions FancyIndexing"],
            &["IndexOptions +HTMLTable"]
        ),
        f | TABLE_INDEXING
    );
    assert_eq!(
        merged(
            &["IndexOptions FancyIndexing"],
            &["IndexOptions SuppressSize"]
        ),
        SUPPRESS_SIZE
    );
    assert_eq!(
        merged(
            &["IndexOptions +FancyIndexing +SuppressSize"],
            &["IndexOptions -SuppressSize +HTMLTable"]
        ),
        f | TABLE_INDEXING
    );
    // A non-incremental IndexOptions drops the same context's +/-.
    assert_eq!(
        merged(
            &["IndexOptions +FancyIndexing +SuppressSize"],
            &[
                "IndexOptions SuppressLastModified",
                "IndexOptions +HTMLTable"
            ]
        ),
        SUPPRESS_LAST_MOD
    );
    assert_eq!(
        merged(
            &[
                "IndexOptions FancyIndexing",
                "IndexOptions +HTMLTable -FancyIndexing"
            ],
            &[]
        ),
        f
    );
    assert_eq!(
        merged(&["IndexOptions FancyIndexing"], &["IndexOptions None"]),
        0
    );
    assert_eq!(
        merged(
            &["IndexOptions +FancyIndexing"],
            &["IndexOptions None", "IndexOptions +HTMLTable"]
        ),
        0
    );
}

#[test]
fn config_merging() {
    let mut parent = IndexConfig::default();
    for l in [
        "IndexIgnore *.bak",
        "AddDescription parent *.txt",
        "HeaderName H",
        "IndexOrderDefault Descending Size",
    ] {
        let w = split_words(l);
        parent.apply_directive(&w[0], &w[1..]).unwrap();
    }
    let mut child = IndexConfig::default();
    for l in ["IndexIgnore *.tmp", "AddDescription child b.txt"] {
        let w = split_words(l);
        child.apply_directive(&w[0], &w[1..]).unwrap();
    }
    let m = IndexConfig::default().merge(&parent).merge(&child);
    assert!(is_ignored("x.bak", &m.ignore) && is_ignored("x.tmp", &m.ignore));
    assert_eq!(m.header_name.as_deref(), Some("H"));
    assert_eq!(m.order_default, Some((SortKey::Size, true)));
    assert_eq!(
        find_desc(&m.descriptions, "/d/b.txt").as_deref(),
        Some("child")
    );
    assert_eq!(
        find_desc(&m.descriptions, "/d/a.txt").as_deref(),
        Some("parent")
    );
    child
        .apply_directive("IndexIgnoreReset", &["on".into()])
        .unwrap();
    let m = IndexConfig::default().merge(&parent).merge(&child);
    assert!(!is_ignored("x.bak", &m.ignore) && is_ignored("x.tmp", &m.ignore));
}

#[test]
fn directive_errors() {
    let mut c = IndexConfig::default();
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    assert_eq!(c.apply_directive("RewriteRule", &s(&["a", "b"])), Ok(false));
    assert!(c.apply_directive("IndexIgnore", &[]).is_err());
    assert!(c.apply_directive("HeaderName", &s(&["a", "b"])).is_err());
    assert!(c.apply_directive("AddIcon", &s(&["/i.gif"])).is_err());
    assert_eq!(
        c.apply_directive("AddIcon", &s(&["(x", ".txt"]))
            .unwrap_err(),
        "missing closing paren"
    );
    assert!(c
        .apply_directive("IndexIgnoreReset", &s(&["maybe"]))
        .is_err());
    assert!(c.apply_directive("FancyIndexing", &s(&["on"])).is_err());
    assert_eq!(
        parse_index_order_default(&s(&["Up", "Name"])).unwrap_err(),
        "First keyword must be 'Ascending' or 'Descending'"
    );
    assert!(parse_index_order_default(&s(&["Ascending", "Colour"])).is_err());
    assert_eq!(
        parse_index_order_default(&s(&["ascending", "date"])),
        Ok((SortKey::Modified, false))
    );
    for d in DIRECTIVES {
        // Every listed name is recognised (arity errors are fine).
        assert!(!matches!(c.apply_directive(d, &[]), Ok(false)), "{d}");
    }
}

#[test]
fn sizes_like_apr_strfsize() {
    let cases = [
        (-1, "  - "),
        (0, "  0 "),
        (972, "972 "),
        (973, "1.0K"),
        (1500, "1.5K"),
        (2000, "2.0K"),
        (9 * 1024 + 972, "9.9K"),
        (10 * 1024, " 10K"),
        (5_000_000, "4.8M"),
        (10_485_765, " 10M"),
        (3 << 30, "3.0G"),
    ];
    for (n, want) in cases {
        assert_eq!(strfsize(n), want, "{n}");
    }
}

#[test]
fn html_titles() {
    assert_eq!(
        scan_html_title(b"<html><head><TITLE>My\nPage</title>").as_deref(),
        Some("My Page")
    );
    assert_eq!(
        scan_html_title(b"<title>\r\nx &amp; y").as_deref(),
        Some("x &amp; y")
    );
    assert_eq!(scan_html_title(b"no title here"), None);
    // Apache's matcher does not retry the byte that broke a partial
    // match.
    assert_eq!(scan_html_title(b"<<title>x</title>"), None);
}

#[test]
fn descriptions_are_cut_to_the_column() {
    assert_eq!(
        terminate_description("abcdefghijklmnopqrstuvwxyz", 0, 23, WidthMode::Unset),
        b"abcdefghijklmnopqrstuv>"
    );
    assert_eq!(
        terminate_description("<b>bold</b> text", 0, 6, WidthMode::Fixed),
        b"<b>bold</b> >"
    );
    assert_eq!(
        terminate_description("a &amp; b", 0, 12, WidthMode::Fixed),
        b"a &amp; b"
    );
    assert_eq!(
        terminate_description("x".repeat(30).as_str(), SUPPRESS_SIZE, 23, WidthMode::Unset).len(),
        30
    );
}

//! Directory listings as Apache 2.4's mod_autoindex writes them
//! (`Options +Indexes` with no usable `DirectoryIndex` file).
//!
//! The port follows `modules/generators/mod_autoindex.c` closely: the
//! option bit set and its odd merge rules, the query arguments `C=`, `O=`,
//! `F=`, `V=` and `P=`, the three layouts (plain `<ul>`, FancyIndexing
//! `<pre>`, HTMLTable), `IndexIgnore`, icons, alt texts, descriptions,
//! `HeaderName`/`ReadmeName` inserts and the exact escaping of names
//! (`ap_escape_html` in text, `ap_os_escape_path` in links).  The output
//! was compared byte for byte with Apache 2.4.71's for a few dozen
//! configurations (see the tests).
//!
//! Everything that needs the file system or a sub-request (reading the
//! directory, access checks on each entry, `ScanHTMLTitles`, finding the
//! header and readme files) is the caller's job: it hands over
//! [`Entry`]s and, optionally, [`Insert`]s, and gets HTML bytes back.
//!
//! Configuration: every directory context (a `.htaccess` file) starts
//! from [`IndexConfig::default()`], gets its directives in file order
//! through [`IndexConfig::apply_directive`], and is then folded onto its
//! parent's merged settings with [`IndexConfig::merge`] — the same
//! create/merge pair Apache uses, which matters because `IndexOptions`
//! without `+`/`-` cuts off everything inherited.

use htgate_util::escape::escape_html;
use htgate_util::fnmatch::{fnmatch, Flags};
use std::cmp::Ordering;
use std::time::SystemTime;

/// `apr_fnmatch` flags of the `P=` pattern (`IndexOptions`): no escapes,
/// and a leading `.` only matched by a literal one.
const P_FLAGS: Flags = Flags {
    noescape: true,
    period: true,
    ..Flags::NONE
};

/// The Content-Type Apache sends with a listing when neither
/// `IndexOptions Type=` nor `Charset=` is in force (APR on Unix has no
/// "unicode file system", so the charset is ISO-8859-1).
pub const CONTENT_TYPE: &str = "text/html;charset=ISO-8859-1";

/// The directives this module implements; all of them are allowed in
/// `.htaccess` under `AllowOverride Indexes` (Apache's `OR_INDEXES`).
pub const DIRECTIVES: &[&str] = &[
    "AddAlt",
    "AddAltByEncoding",
    "AddAltByType",
    "AddDescription",
    "AddIcon",
    "AddIconByEncoding",
    "AddIconByType",
    "DefaultIcon",
    "FancyIndexing",
    "HeaderName",
    "IndexHeadInsert",
    "IndexIgnore",
    "IndexIgnoreReset",
    "IndexOptions",
    "IndexOrderDefault",
    "IndexStyleSheet",
    "ReadmeName",
];

// Apache's option bits, same values and names as mod_autoindex.c.
const NO_OPTIONS: u32 = 1 << 0;
const ICONS_ARE_LINKS: u32 = 1 << 1;
const SCAN_HTML_TITLES: u32 = 1 << 2;
const SUPPRESS_ICON: u32 = 1 << 3;
const SUPPRESS_LAST_MOD: u32 = 1 << 4;
const SUPPRESS_SIZE: u32 = 1 << 5;
const SUPPRESS_DESC: u32 = 1 << 6;
const SUPPRESS_PREAMBLE: u32 = 1 << 7;
const SUPPRESS_COLSORT: u32 = 1 << 8;
const SUPPRESS_RULES: u32 = 1 << 9;
const FOLDERS_FIRST: u32 = 1 << 10;
const VERSION_SORT: u32 = 1 << 11;
const TRACK_MODIFIED: u32 = 1 << 12;
const FANCY_INDEXING: u32 = 1 << 13;
const TABLE_INDEXING: u32 = 1 << 14;
const IGNORE_CLIENT: u32 = 1 << 15;
const IGNORE_CASE: u32 = 1 << 16;
const EMIT_XHTML: u32 = 1 << 17;
const SHOW_FORBIDDEN: u32 = 1 << 18;
const ADDALTCLASS: u32 = 1 << 19;
/// "No non-incremental IndexOptions seen here": decides whether the
/// merge inherits the parent's options.
const OPTION_UNSET: u32 = 1 << 20;

const DEFAULT_ICON_WIDTH: u32 = 20;
const DEFAULT_ICON_HEIGHT: u32 = 22;
const DEFAULT_NAME_WIDTH: usize = 23;
const DEFAULT_DESC_WIDTH: usize = 23;

/// `find_title` reads this much of a file (MAX_STRING_LEN - 1).
pub const TITLE_SCAN_BYTES: usize = 8191;

const DOCTYPE_HTML_4_01: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\" \
                                 \"http://www.w3.org/TR/html4/strict.dtd\">\n";
const DOCTYPE_XHTML_1_0T: &str = "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 \
                                  Transitional//EN\"\n\"http://www.w3.org/TR/xhtml1/DTD/\
                                  xhtml1-transitional.dtd\">\n";

/// One directory entry, as the caller found it.  `.` and `..` may be
/// included (they are dropped, as Apache does).  The caller must already
/// have left out what Apache's per-entry sub-request rejects: anything
/// answering other than 2xx/3xx (the `.ht*` files in the reference
/// set-up; 401/403 ones stay when [`IndexOptions::show_forbidden`]), and
/// anything that is neither a regular file nor a directory once symlinks
/// are followed (broken links are dropped too).  `IndexIgnore` and `P=`
/// are applied here.
#[derive(Clone, Debug, Default)]
pub struct Entry {
    pub name: String,
    pub is_dir: bool,
    /// File size; directories show `-` whatever this says.
    pub size: Option<u64>,
    pub modified: Option<SystemTime>,
    /// Used when no `AddDescription` matches: the caller puts the
    /// [`scan_html_title`] result here under `ScanHTMLTitles`.
    pub description: Option<String>,
    /// The entry's media type (for `AddIconByType`/`AddAltByType`);
    /// parameters are ignored.
    pub content_type: Option<String>,
    /// The entry's content encoding (for `AddIconByEncoding`); when set,
    /// the by-type rules are not consulted, as in Apache.
    pub content_encoding: Option<String>,
}

/// A `HeaderName` / `ReadmeName` file the caller has located (a
/// sub-request for the name relative to the directory — for the header
/// with the listing's query string appended — that answered 200 for a
/// regular file) and read.
#[derive(Clone, Debug)]
pub enum Insert {
    /// `text/html` (or `application/xhtml+xml`): copied as is, and it
    /// replaces the preamble/`<h1>` (header) or the signature (readme).
    Html(Vec<u8>),
    /// Any other `text/*` type: escaped inside `<pre>`.
    Text(Vec<u8>),
}

/// Everything [`render_listing`] needs for one request.
#[derive(Clone, Debug, Default)]
pub struct Listing<'a> {
    /// The directory's URL path, %-decoded (Apache's `r->uri`); normally
    /// ends in `/`.
    pub dir_uri: &'a str,
    /// The raw query string, without `?`.
    pub query: Option<&'a str>,
    pub entries: Vec<Entry>,
    pub header: Option<Insert>,
    pub readme: Option<Insert>,
    /// `ap_psignature("", r)`: empty with `ServerSignature Off` (the
    /// default).
    pub signature: Option<String>,
}

/// A column to sort on (`IndexOrderDefault`, `C=`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SortKey {
    Name,
    Modified,
    Size,
    Description,
}

impl SortKey {
    fn letter(self) -> u8 {
        match self {
            SortKey::Name => b'N',
            SortKey::Modified => b'M',
            SortKey::Size => b'S',
            SortKey::Description => b'D',
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// How a column width was set: `NameWidth=n`/`-NameWidth` (fixed),
/// `NameWidth=*` (fit the longest), or not at all here.
enum WidthMode {
    Fixed,
    Auto,
    Unset,
}

/// The `IndexOptions` state of one directory context (or the merged
/// result), with Apache's three bit sets: the non-incremental options,
/// and the `+`/`-` ones waiting to be applied at merge time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexOptions {
    opts: u32,
    incremented: u32,
    decremented: u32,
    icon_width: u32,
    icon_height: u32,
    name_width: usize,
    name_adjust: WidthMode,
    desc_width: usize,
    desc_adjust: WidthMode,
    ctype: Option<String>,
    charset: Option<String>,
    old_date_format: Option<bool>,
}

impl Default for IndexOptions {
    /// `create_autoindex_config`: nothing set.
    fn default() -> Self {
        IndexOptions {
            opts: OPTION_UNSET,
            incremented: 0,
            decremented: 0,
            icon_width: 0,
            icon_height: 0,
            name_width: DEFAULT_NAME_WIDTH,
            name_adjust: WidthMode::Unset,
            desc_width: DEFAULT_DESC_WIDTH,
            desc_adjust: WidthMode::Unset,
            ctype: None,
            charset: None,
            old_date_format: None,
        }
    }
}

impl IndexOptions {
    /// One `IndexOptions` directive added to this context's settings
    /// (`add_opts`).  Error texts are Apache's.
    pub fn apply(&mut self, words: &[String]) -> Result<(), String> {
        let mut opts = self.opts;
        let mut opts_add = self.incremented;
        let mut opts_remove = self.decremented;
        for word in words {
            let (action, w) = match word.as_bytes().first() {
                Some(b'+') => (b'+', &word[1..]),
                Some(b'-') => (b'-', &word[1..]),
                _ => (0u8, word.as_str()),
            };
            let lower = w.to_ascii_lowercase();
            let option = match lower.as_str() {
                "fancyindexing" => FANCY_INDEXING,
                "foldersfirst" => FOLDERS_FIRST,
                "htmltable" => TABLE_INDEXING,
                "iconsarelinks" => ICONS_ARE_LINKS,
                "ignorecase" => IGNORE_CASE,
                "ignoreclient" => IGNORE_CLIENT,
                "scanhtmltitles" => SCAN_HTML_TITLES,
                "suppresscolumnsorting" => SUPPRESS_COLSORT,
                "suppressdescription" => SUPPRESS_DESC,
                "suppresshtmlpreamble" => SUPPRESS_PREAMBLE,
                "suppressicon" => SUPPRESS_ICON,
                "suppresslastmodified" => SUPPRESS_LAST_MOD,
                "suppresssize" => SUPPRESS_SIZE,
                "suppressrules" => SUPPRESS_RULES,
                "trackmodified" => TRACK_MODIFIED,
                "versionsort" => VERSION_SORT,
                "xhtml" => EMIT_XHTML,
                "showforbidden" => SHOW_FORBIDDEN,
                "addaltclass" => ADDALTCLASS,
                "none" => {
                    if action != 0 {
                        return Err("Cannot combine '+' or '-' with 'None' keyword".into());
                    }
                    opts = NO_OPTIONS;
                    opts_add = 0;
                    opts_remove = 0;
                    0
                }
                "iconwidth" => {
                    self.icon_width = if action == b'-' {
                        0
                    } else {
                        DEFAULT_ICON_WIDTH
                    };
                    0
                }
                "iconheight" => {
                    self.icon_height = if action == b'-' {
                        0
                    } else {
                        DEFAULT_ICON_HEIGHT
                    };
                    0
                }
                "namewidth" => {
                    if action != b'-' {
                        return Err(
                            "NameWidth with no value may only appear as '-NameWidth'".into()
                        );
                    }
                    self.name_width = DEFAULT_NAME_WIDTH;
                    self.name_adjust = WidthMode::Fixed;
                    0
                }
                "descriptionwidth" => {
                    if action != b'-' {
                        return Err("DescriptionWidth with no value may only appear as \
                                    '-DescriptionWidth'"
                            .into());
                    }
                    self.desc_width = DEFAULT_DESC_WIDTH;
                    self.desc_adjust = WidthMode::Fixed;
                    0
                }
                "useolddateformat" => {
                    self.old_date_format = Some(true);
                    0
                }
                _ if lower.starts_with("iconwidth=") => {
                    if action == b'-' {
                        return Err("Cannot combine '-' with IconWidth=n".into());
                    }
                    self.icon_width = htgate_util::atoi(&w[10..]).max(0) as u32;
                    0
                }
                _ if lower.starts_with("iconheight=") => {
                    if action == b'-' {
                        return Err("Cannot combine '-' with IconHeight=n".into());
                    }
                    self.icon_height = htgate_util::atoi(&w[11..]).max(0) as u32;
                    0
                }
                _ if lower.starts_with("namewidth=") => {
                    if action == b'-' {
                        return Err("Cannot combine '-' with NameWidth=n".into());
                    }
                    if w[10..].starts_with('*') {
                        self.name_adjust = WidthMode::Auto;
                    } else {
                        let width = htgate_util::atoi(&w[10..]);
                        if width != 0 && width < 5 {
                            return Err("NameWidth value must be greater than 5".into());
                        }
                        self.name_width = width.max(0) as usize;
                        self.name_adjust = WidthMode::Fixed;
                    }
                    0
                }
                _ if lower.starts_with("descriptionwidth=") => {
                    if action == b'-' {
                        return Err("Cannot combine '-' with DescriptionWidth=n".into());
                    }
                    if w[17..].starts_with('*') {
                        self.desc_adjust = WidthMode::Auto;
                    } else {
                        let width = htgate_util::atoi(&w[17..]);
                        if width != 0 && width < 12 {
                            return Err("DescriptionWidth value must be greater than 12".into());
                        }
                        self.desc_width = width.max(0) as usize;
                        self.desc_adjust = WidthMode::Fixed;
                    }
                    0
                }
                _ if lower.starts_with("type=") => {
                    self.ctype = Some(w[5..].to_string());
                    0
                }
                _ if lower.starts_with("charset=") => {
                    self.charset = Some(w[8..].to_string());
                    0
                }
                _ => return Err("Invalid directory indexing option".into()),
            };
            match action {
                0 => {
                    opts |= option;
                    opts_add = 0;
                    opts_remove = 0;
                }
                b'+' => {
                    opts_add |= option;
                    opts_remove &= !option;
                }
                _ => {
                    opts_remove |= option;
                    opts_add &= !option;
                }
            }
        }
        if opts & NO_OPTIONS != 0 && opts & !NO_OPTIONS != 0 {
            return Err("Cannot combine other IndexOptions keywords with 'None'".into());
        }
        self.incremented = opts_add;
        self.decremented = opts_remove;
        self.opts = opts;
        Ok(())
    }

    /// Apache's `merge_autoindex_configs` for the option part: `self` is
    /// the parent's merged settings, `child` the directory's own.
    pub fn merge(&self, child: &IndexOptions) -> IndexOptions {
        let base = self;
        let add = child;
        let mut new = IndexOptions {
            opts: 0,
            incremented: 0,
            decremented: 0,
            icon_width: if add.icon_width != 0 {
                add.icon_width
            } else {
                base.icon_width
            },
            icon_height: if add.icon_height != 0 {
                add.icon_height
            } else {
                base.icon_height
            },
            name_width: base.name_width,
            name_adjust: base.name_adjust,
            desc_width: base.desc_width,
            desc_adjust: base.desc_adjust,
            ctype: add.ctype.clone().or_else(|| base.ctype.clone()),
            charset: add.charset.clone().or_else(|| base.charset.clone()),
            old_date_format: add.old_date_format.or(base.old_date_format),
        };
        if add.opts == NO_OPTIONS {
            // An explicit "None" also stops +/- settings from above.
            new.opts = NO_OPTIONS;
        } else {
            if add.opts == OPTION_UNSET {
                // Only incremental settings here: inherit and adjust.
                new.incremented = (base.incremented | add.incremented) & !add.decremented;
                new.decremented = base.decremented | add.decremented;
                new.opts = base.opts & !NO_OPTIONS;
            } else {
                // Non-incremental settings replace everything inherited
                // (and, as in Apache, this context's own +/- are dropped).
                new.opts = add.opts;
            }
            new.opts |= new.incremented;
            new.opts &= !new.decremented;
        }
        if add.name_adjust != WidthMode::Unset {
            new.name_width = add.name_width;
            new.name_adjust = add.name_adjust;
        }
        if add.desc_adjust != WidthMode::Unset {
            new.desc_width = add.desc_width;
            new.desc_adjust = add.desc_adjust;
        }
        new
    }

    fn has(&self, bit: u32) -> bool {
        self.opts & bit != 0
    }

    /// `IndexOptions TrackModified`: the caller sends the directory's
    /// Last-Modified and ETag (and honours conditional requests).
    pub fn track_modified(&self) -> bool {
        self.has(TRACK_MODIFIED)
    }

    /// `IndexOptions ScanHTMLTitles`: the caller should fill
    /// [`Entry::description`] of HTML files with [`scan_html_title`].
    pub fn scan_html_titles(&self) -> bool {
        self.has(SCAN_HTML_TITLES)
    }

    /// `IndexOptions ShowForbidden`: entries whose sub-request answered
    /// 401 or 403 are listed anyway.
    pub fn show_forbidden(&self) -> bool {
        self.has(SHOW_FORBIDDEN)
    }

    /// The listing's Content-Type (`Type=`, `Charset=`; an empty charset
    /// means none).
    pub fn content_type(&self) -> String {
        let ctype = self.ctype.as_deref().unwrap_or("text/html");
        let charset = self.charset.as_deref().unwrap_or("ISO-8859-1");
        if charset.is_empty() {
            ctype.to_string()
        } else {
            format!("{ctype};charset={charset}")
        }
    }
}

/// One `IndexOptions` directive applied to `base`, the same context's
/// settings so far (start from `IndexOptions::default()`); inheritance
/// from parent directories is [`IndexOptions::merge`]'s business.
pub fn parse_index_options(words: &[String], base: &IndexOptions) -> Result<IndexOptions, String> {
    let mut o = base.clone();
    o.apply(words)?;
    Ok(o)
}

/// `IndexOrderDefault Ascending|Descending Name|Date|Size|Description`
/// → (key, descending).
pub fn parse_index_order_default(words: &[String]) -> Result<(SortKey, bool), String> {
    let [direction, key] = words else {
        return Err("IndexOrderDefault takes two arguments, \
                    {Ascending,Descending} {Name,Size,Description,Date}"
            .into());
    };
    let descending = if direction.eq_ignore_ascii_case("Ascending") {
        false
    } else if direction.eq_ignore_ascii_case("Descending") {
        true
    } else {
        return Err("First keyword must be 'Ascending' or 'Descending'".into());
    };
    let key = match key.to_ascii_lowercase().as_str() {
        "name" => SortKey::Name,
        "date" => SortKey::Modified,
        "size" => SortKey::Size,
        "description" => SortKey::Description,
        _ => return Err("Second keyword must be 'Name', 'Date', 'Size', or 'Description'".into()),
    };
    Ok((key, descending))
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ItemKind {
    Path,
    Type,
    Encoding,
}

/// An `AddIcon*` / `AddAlt*` rule (Apache's `struct item`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IconRule {
    kind: ItemKind,
    apply_to: String,
    data: String,
}

/// An `AddDescription` rule (Apache's `ai_desc_t`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DescRule {
    pattern: String,
    description: String,
    full_path: bool,
    wildcards: bool,
}

/// The whole mod_autoindex configuration of one directory context, or
/// the merged result for a request.
#[derive(Clone, Debug, Default)]
pub struct IndexConfig {
    pub options: IndexOptions,
    /// `IndexIgnore` patterns, as written.
    pub ignore: Vec<String>,
    /// `IndexIgnoreReset On` here: the parents' patterns are not
    /// inherited.
    pub ignore_reset: bool,
    /// `IndexOrderDefault`: (key, descending).
    pub order_default: Option<(SortKey, bool)>,
    pub header_name: Option<String>,
    pub readme_name: Option<String>,
    pub default_icon: Option<String>,
    pub style_sheet: Option<String>,
    pub head_insert: Option<String>,
    descriptions: Vec<DescRule>,
    icons: Vec<IconRule>,
    alts: Vec<IconRule>,
}

fn arity_error(name: &str, what: &str, help: &str) -> String {
    format!("{name} {what}, {help}")
}

fn parse_flag(name: &str, args: &[String]) -> Result<bool, String> {
    match args {
        [v] if v.eq_ignore_ascii_case("on") => Ok(true),
        [v] if v.eq_ignore_ascii_case("off") => Ok(false),
        _ => Err(format!("{name} must be On or Off")),
    }
}

fn take1<'a>(name: &str, args: &'a [String], help: &str) -> Result<&'a String, String> {
    match args {
        [v] => Ok(v),
        _ => Err(arity_error(name, "takes one argument", help)),
    }
}

/// `ap_is_matchexp`: does the string have a `*` or `?`.
fn is_matchexp(s: &str) -> bool {
    s.contains(['*', '?'])
}

/// `apr_fnmatch_test`: does the pattern use wildcards (`*`, `?`, or a
/// bracket expression that is closed).
fn fnmatch_test(s: &str) -> bool {
    let b = s.as_bytes();
    let mut nesting = 0;
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'?' | b'*' => return true,
            b'\\' => {
                i += 1;
                if i >= b.len() {
                    return false;
                }
            }
            b'[' => nesting += 1,
            b']' if nesting > 0 => return true,
            _ => {}
        }
        i += 1;
    }
    false
}

impl IndexConfig {
    /// Applies one directive of [`DIRECTIVES`] (name matched
    /// case-insensitively) to this context.  `Ok(false)`: not a
    /// mod_autoindex directive.  Errors are Apache's texts.
    pub fn apply_directive(&mut self, name: &str, args: &[String]) -> Result<bool, String> {
        let lname = name.to_ascii_lowercase();
        match lname.as_str() {
            "indexoptions" => self.options.apply(args)?,
            "indexorderdefault" => self.order_default = Some(parse_index_order_default(args)?),
            "indexignore" => {
                if args.is_empty() {
                    return Err(arity_error(
                        "IndexIgnore",
                        "requires at least one argument",
                        "one or more file extensions",
                    ));
                }
                self.ignore.extend(args.iter().cloned());
            }
            "indexignorereset" => self.ignore_reset = parse_flag("IndexIgnoreReset", args)?,
            "headername" => {
                self.header_name = Some(take1("HeaderName", args, "a filename")?.clone())
            }
            "readmename" => {
                self.readme_name = Some(take1("ReadmeName", args, "a filename")?.clone())
            }
            "defaulticon" => {
                self.default_icon = Some(take1("DefaultIcon", args, "an icon URL")?.clone())
            }
            "indexstylesheet" => {
                self.style_sheet =
                    Some(take1("IndexStyleSheet", args, "URL to style sheet")?.clone())
            }
            "indexheadinsert" => {
                self.head_insert = Some(
                    take1(
                        "IndexHeadInsert",
                        args,
                        "String to insert in HTML HEAD section",
                    )?
                    .clone(),
                )
            }
            "fancyindexing" => {
                return Err("The FancyIndexing directive is no longer supported. \
                            Use IndexOptions FancyIndexing."
                    .into())
            }
            "adddescription" => {
                let (desc, pats) = iterate2(
                    "AddDescription",
                    args,
                    "Descriptive text followed by one or more filenames",
                )?;
                for to in pats {
                    let full_path = to.contains('/');
                    let wildcards = full_path || fnmatch_test(to);
                    let pattern = if wildcards {
                        format!("{}{to}*", if full_path { "*/" } else { "*" })
                    } else {
                        to.clone()
                    };
                    self.descriptions.push(DescRule {
                        pattern,
                        description: desc.clone(),
                        full_path,
                        wildcards,
                    });
                }
            }
            "addicon" | "addiconbytype" | "addiconbyencoding" => {
                let kind = item_kind(&lname);
                let help = match kind {
                    ItemKind::Path => "an icon URL followed by one or more filenames",
                    ItemKind::Type => "an icon URL followed by one or more MIME types",
                    ItemKind::Encoding => "an icon URL followed by one or more content encodings",
                };
                let (icon, tos) = iterate2(name, args, help)?;
                for to in tos {
                    self.add_icon(kind, icon, to)?;
                }
            }
            "addalt" | "addaltbytype" | "addaltbyencoding" => {
                let kind = item_kind(&lname);
                let help = match kind {
                    ItemKind::Path => {
                        "alternate descriptive text followed by one or more filenames"
                    }
                    ItemKind::Type => {
                        "alternate descriptive text followed by one or more MIME types"
                    }
                    ItemKind::Encoding => {
                        "alternate descriptive text followed by one or more content encodings"
                    }
                };
                let (alt, tos) = iterate2(name, args, help)?;
                for to in tos {
                    self.alts.push(make_item(kind, to, alt));
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// `add_icon`: `(ALT,url)` also adds an alt text.
    fn add_icon(&mut self, kind: ItemKind, icon: &str, to: &str) -> Result<(), String> {
        let mut url = icon;
        if let Some(inner) = icon.strip_prefix('(') {
            let Some(close) = inner.find(')') else {
                return Err("missing closing paren".into());
            };
            // Same slicing as Apache's ap_getword_nc + "*cl = '\0'".
            let (alt, rest) = match inner.find(',') {
                Some(comma) => {
                    let end = if close > comma { close } else { inner.len() };
                    (&inner[..comma], &inner[comma + 1..end])
                }
                None => (inner, ""),
            };
            self.alts.push(make_item(kind, to, alt));
            url = rest;
        }
        self.icons.push(make_item(kind, to, url));
        Ok(())
    }

    /// Apache's `merge_autoindex_configs`: `self` is the parent's merged
    /// configuration, `child` the directory's own (unmerged) one.
    pub fn merge(&self, child: &IndexConfig) -> IndexConfig {
        IndexConfig {
            options: self.options.merge(&child.options),
            ignore: if child.ignore_reset {
                child.ignore.clone()
            } else {
                cat(&child.ignore, &self.ignore)
            },
            ignore_reset: false,
            order_default: child.order_default.or(self.order_default),
            header_name: child
                .header_name
                .clone()
                .or_else(|| self.header_name.clone()),
            readme_name: child
                .readme_name
                .clone()
                .or_else(|| self.readme_name.clone()),
            default_icon: child
                .default_icon
                .clone()
                .or_else(|| self.default_icon.clone()),
            style_sheet: child
                .style_sheet
                .clone()
                .or_else(|| self.style_sheet.clone()),
            head_insert: child
                .head_insert
                .clone()
                .or_else(|| self.head_insert.clone()),
            descriptions: cat(&child.descriptions, &self.descriptions),
            icons: cat(&child.icons, &self.icons),
            alts: cat(&child.alts, &self.alts),
        }
    }

    /// The listing's Content-Type header value.
    pub fn content_type(&self) -> String {
        self.options.content_type()
    }
}

/// `apr_array_append(add, base)`: the child's rules first, so they win.
fn cat<T: Clone>(add: &[T], base: &[T]) -> Vec<T> {
    add.iter().chain(base).cloned().collect()
}

fn item_kind(lname: &str) -> ItemKind {
    if lname.ends_with("bytype") {
        ItemKind::Type
    } else if lname.ends_with("byencoding") {
        ItemKind::Encoding
    } else {
        ItemKind::Path
    }
}

fn iterate2<'a>(
    name: &str,
    args: &'a [String],
    help: &str,
) -> Result<(&'a String, &'a [String]), String> {
    match args {
        [first, rest @ ..] if !rest.is_empty() => Ok((first, rest)),
        _ => Err(arity_error(name, "requires at least two arguments", help)),
    }
}

/// `push_item` (with add_alt/add_icon's `**DIRECTORY**` and lower-casing
/// of encodings).
fn make_item(kind: ItemKind, to: &str, data: &str) -> IconRule {
    let mut to = to.to_string();
    if kind == ItemKind::Path && to == "**DIRECTORY**" {
        to = "^^DIRECTORY^^".into();
    }
    if kind == ItemKind::Encoding {
        to.make_ascii_lowercase();
    }
    let apply_to = if kind == ItemKind::Path && !is_matchexp(&to) {
        format!("*{to}")
    } else {
        to
    };
    IconRule {
        kind,
        apply_to,
        data: data.to_string(),
    }
}

// ---------------------------------------------------------------------------
// Matching

/// `ap_strcmp_match` / `ap_strcasecmp_match`: `*` and `?` only, on bytes.
fn strcmp_match(s: &[u8], pat: &[u8], nocase: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if nocase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut si, mut pi) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    loop {
        if pi < pat.len() && pat[pi] == b'*' {
            while pi < pat.len() && pat[pi] == b'*' {
                pi += 1;
            }
            star = Some((pi, si));
            continue;
        }
        if si == s.len() {
            if pi == pat.len() {
                return true;
            }
        } else if pi < pat.len() && (pat[pi] == b'?' || eq(pat[pi], s[si])) {
            si += 1;
            pi += 1;
            continue;
        }
        match star {
            Some((sp, ss)) if ss < s.len() => {
                star = Some((sp, ss + 1));
                pi = sp;
                si = ss + 1;
            }
            _ => return false,
        }
    }
}

/// Whether `name` is hidden by the `IndexIgnore` patterns.  As in
/// Apache only the last path segment of a pattern counts (`/a/b*` hides
/// `b…` in every directory below where it was written), matched with `*`
/// and `?` case-sensitively; the parent directory link is tested as
/// `..`.
pub fn is_ignored(name: &str, ignore: &[String]) -> bool {
    ignore.iter().any(|p| {
        let last = p.rsplit('/').next().unwrap_or(p);
        strcmp_match(name.as_bytes(), last.as_bytes(), false)
    })
}

/// `find_title`: the text after the first `<title>` up to the next `<`,
/// line breaks turned into spaces (a leading one dropped).  `head` is
/// the start of the file; only [`TITLE_SCAN_BYTES`] of it are looked at.
/// Apache only does this for `text/html` files without a content
/// encoding.
pub fn scan_html_title(head: &[u8]) -> Option<String> {
    let mut buf = &head[..head.len().min(TITLE_SCAN_BYTES)];
    // The buffer is a C string: a NUL ends it.
    if let Some(nul) = buf.iter().position(|&b| b == 0) {
        buf = &buf[..nul];
    }
    let find = b"<title>";
    let mut p = 0;
    for x in 0..buf.len() {
        if buf[x].to_ascii_lowercase() == find[p] {
            p += 1;
            if p == find.len() {
                let mut title = &buf[x + 1..];
                if let Some(lt) = title.iter().position(|&b| b == b'<') {
                    title = &title[..lt];
                }
                // Line breaks at the start go, later ones become spaces.
                let out: Vec<u8> = title
                    .iter()
                    .skip_while(|&&b| b == b'\r' || b == b'\n')
                    .map(|&b| if b == b'\r' || b == b'\n' { b' ' } else { b })
                    .collect();
                return Some(String::from_utf8_lossy(&out).into_owned());
            }
        } else {
            // Apache restarts without re-testing this byte.
            p = 0;
        }
    }
    None
}

// ---------------------------------------------------------------------------
// Escaping

/// `ap_os_escape_path`: %-escapes (lower-case hex) all but alphanumerics
/// and `$-_.+!*'(),:;@&=/~`; unless `partial`, a `./` goes in front
/// when a `:` comes before any `/` (so `a:b` is not read as a scheme).
fn os_escape_path(s: &[u8], partial: bool) -> Vec<u8> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut out = Vec::with_capacity(s.len() + 8);
    if !partial {
        let colon = s.iter().position(|&b| b == b':');
        let slash = s.iter().position(|&b| b == b'/');
        if let Some(c) = colon {
            if slash.map_or(true, |sl| c < sl) {
                out.extend_from_slice(b"./");
            }
        }
    }
    for &b in s {
        if b.is_ascii_alphanumeric() || b"$-_.+!*'(),:;@&=/~".contains(&b) {
            out.push(b);
        } else {
            out.push(b'%');
            out.push(HEX[usize::from(b >> 4)]);
            out.push(HEX[usize::from(b & 15)]);
        }
    }
    out
}

/// `apr_strfsize`: at most four characters (`  2 `, `1.5K`, ` 12M`).
fn strfsize(size: i64) -> String {
    if size < 0 {
        return "  - ".into();
    }
    if size < 973 {
        return format!("{size:>3} ");
    }
    let ord = b"KMGTPE";
    let mut o = 0usize;
    let mut size = size;
    loop {
        let mut remain = size & 1023;
        size >>= 10;
        if size >= 973 {
            o += 1;
            continue;
        }
        let unit = char::from(ord[o.min(ord.len() - 1)]);
        if size < 9 || (size == 9 && remain < 973) {
            remain = ((remain * 5) + 256) / 512;
            if remain >= 10 {
                size += 1;
                remain = 0;
            }
            return format!("{size}.{remain}{unit}");
        }
        if remain >= 512 {
            size += 1;
        }
        return format!("{size:>3}{unit}");
    }
}

/// `apr_strnatcmp` / `apr_strnatcasecmp` (Martin Pool's natural order);
/// bytes compare as C `char`, which is signed on the platforms we run.
fn strnatcmp(a: &[u8], b: &[u8], fold: bool) -> Ordering {
    let at = |s: &[u8], i: usize| s.get(i).copied().unwrap_or(0);
    let (mut ai, mut bi) = (0usize, 0usize);
    loop {
        let mut ca = at(a, ai);
        let mut cb = at(b, bi);
        while ca.is_ascii_whitespace() || ca == 0x0b {
            ai += 1;
            ca = at(a, ai);
        }
        while cb.is_ascii_whitespace() || cb == 0x0b {
            bi += 1;
            cb = at(b, bi);
        }
        if ca.is_ascii_digit() && cb.is_ascii_digit() {
            let fractional = ca == b'0' || cb == b'0';
            let r = if fractional {
                compare_left(&a[ai..], &b[bi..])
            } else {
                compare_right(&a[ai..], &b[bi..])
            };
            if r != Ordering::Equal {
                return r;
            }
        }
        if ca == 0 && cb == 0 {
            return Ordering::Equal;
        }
        if fold {
            ca = ca.to_ascii_uppercase();
            cb = cb.to_ascii_uppercase();
        }
        match (ca as i8).cmp(&(cb as i8)) {
            Ordering::Equal => {}
            o => return o,
        }
        ai += 1;
        bi += 1;
    }
}

fn compare_right(a: &[u8], b: &[u8]) -> Ordering {
    let mut bias = Ordering::Equal;
    let mut i = 0;
    loop {
        let ca = a.get(i).copied().unwrap_or(0);
        let cb = b.get(i).copied().unwrap_or(0);
        match (ca.is_ascii_digit(), cb.is_ascii_digit()) {
            (false, false) => return bias,
            (false, true) => return Ordering::Less,
            (true, false) => return Ordering::Greater,
            _ => {
                if bias == Ordering::Equal {
                    bias = ca.cmp(&cb);
                }
            }
        }
        i += 1;
    }
}

fn compare_left(a: &[u8], b: &[u8]) -> Ordering {
    let mut i = 0;
    loop {
        let ca = a.get(i).copied().unwrap_or(0);
        let cb = b.get(i).copied().unwrap_or(0);
        match (ca.is_ascii_digit(), cb.is_ascii_digit()) {
            (false, false) => return Ordering::Equal,
            (false, true) => return Ordering::Less,
            (true, false) => return Ordering::Greater,
            _ => match ca.cmp(&cb) {
                Ordering::Equal => {}
                o => return o,
            },
        }
        i += 1;
    }
}

/// C `strcasecmp` in the C locale.
fn strcasecmp(a: &[u8], b: &[u8]) -> Ordering {
    a.iter()
        .map(u8::to_ascii_lowercase)
        .cmp(b.iter().map(u8::to_ascii_lowercase))
}

// ---------------------------------------------------------------------------
// Rendering

/// Apache's `struct ent`.
struct Ent {
    /// Display name: `sub/` for directories; the parent's URL path for
    /// the parent entry.
    name: String,
    parent: bool,
    icon: Option<String>,
    alt: Option<String>,
    desc: Option<String>,
    size: i64,
    /// Microseconds since the epoch, -1 for "unknown/not shown".
    lm: i64,
    isdir: bool,
}

#[derive(Clone, Copy)]
enum Zone {
    Local,
    #[cfg(test)]
    Utc,
}

fn micros(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |us| -us),
    }
}

fn format_time(us: i64, old: bool, zone: Zone) -> String {
    let fmt = if old {
        "%d-%b-%Y %H:%M"
    } else {
        "%Y-%m-%d %H:%M"
    };
    let Some(t) = chrono::DateTime::from_timestamp_micros(us) else {
        return String::new();
    };
    match zone {
        Zone::Local => t.with_timezone(&chrono::Local).format(fmt).to_string(),
        #[cfg(test)]
        Zone::Utc => t.format(fmt).to_string(),
    }
}

/// `find_item`.  `path` is the entry's path (or a `^^…^^` token).
fn find_item<'a>(
    list: &'a [IconRule],
    path: &str,
    content_type: Option<&str>,
    content_encoding: Option<&str>,
    path_only: bool,
) -> Option<&'a str> {
    let special = path.starts_with('^');
    for p in list {
        // Apache also checks the path against the directory the rule was
        // written for; the listed directory is always at or below it.
        if p.apply_to.is_empty() {
            return Some(&p.data);
        } else if p.kind == ItemKind::Path || special {
            if strcmp_match(path.as_bytes(), p.apply_to.as_bytes(), false) {
                return Some(&p.data);
            }
        } else if !path_only {
            match content_encoding {
                None => {
                    if p.kind == ItemKind::Type {
                        if let Some(ct) = content_type {
                            if strcmp_match(ct.as_bytes(), p.apply_to.as_bytes(), true) {
                                return Some(&p.data);
                            }
                        }
                    }
                }
                Some(enc) => {
                    if p.kind == ItemKind::Encoding
                        && strcmp_match(enc.as_bytes(), p.apply_to.as_bytes(), true)
                    {
                        return Some(&p.data);
                    }
                }
            }
        }
    }
    None
}

/// `find_desc`.
fn find_desc(list: &[DescRule], full: &str) -> Option<String> {
    let only = full.rsplit('/').next().unwrap_or(full);
    for t in list {
        let name = if t.full_path { full } else { only };
        let found = if t.wildcards {
            fnmatch(t.pattern.as_bytes(), name.as_bytes(), Flags::NONE)
        } else {
            name.contains(t.pattern.as_str())
        };
        if found {
            return Some(t.description.clone());
        }
    }
    None
}

/// `terminate_description`: cut to the column width, counting an HTML
/// tag as nothing and an entity as one character, ending a cut with `>`.
fn terminate_description(desc: &str, opts: u32, width: usize, adjust: WidthMode) -> Vec<u8> {
    let d = desc.as_bytes();
    let mut maxsize = width as i64;
    if adjust == WidthMode::Unset {
        if opts & SUPPRESS_ICON != 0 {
            maxsize += 6;
        }
        if opts & SUPPRESS_LAST_MOD != 0 {
            maxsize += 19;
        }
        if opts & SUPPRESS_SIZE != 0 {
            maxsize += 7;
        }
    }
    let mut x = 0usize;
    while x < d.len() && (maxsize > 0 || d[x] == b'<') {
        if d[x] == b'<' {
            while x < d.len() && d[x] != b'>' {
                x += 1;
            }
            if x >= d.len() {
                maxsize = 0;
                break;
            }
        } else if d[x] == b'&' {
            maxsize -= 1;
            while x < d.len() && d[x] != b';' {
                x += 1;
            }
            if x >= d.len() {
                maxsize = 0;
                break;
            }
        } else {
            maxsize -= 1;
        }
        x += 1;
    }
    let mut out = d.to_vec();
    if maxsize == 0 && x < d.len() && x > 0 {
        out[x - 1] = b'>';
        out.truncate(x);
    }
    out
}

/// The parent of `uri` (`ap_make_full_path(uri, "../")` normalised), or
/// `None` at the top.
fn parent_uri(uri: &str) -> Option<String> {
    if !uri.starts_with('/') {
        return None;
    }
    let full = if uri.ends_with('/') {
        format!("{uri}../")
    } else {
        format!("{uri}/../")
    };
    let mut segs: Vec<&str> = Vec::new();
    // Skip the leading "/" and the empty piece after the final "/".
    let inner = &full[1..full.len() - 1];
    for seg in inner.split('/') {
        match seg {
            "." => {}
            ".." => {
                segs.pop()?;
            }
            s => segs.push(s),
        }
    }
    if segs.is_empty() {
        Some("/".into())
    } else {
        Some(format!("/{}/", segs.join("/")))
    }
}

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

/// The parsed query: sort key/direction, format/version overrides, the
/// `P=` pattern and the arguments to repeat in the column links.
struct QueryArgs {
    key: u8,
    direction: u8,
    opts: u32,
    pattern: Option<Vec<u8>>,
    colargs: Vec<u8>,
}

fn parse_query(query: Option<&str>, cfg: &IndexConfig) -> QueryArgs {
    let (key, descending) = cfg.order_default.unwrap_or((SortKey::Name, false));
    let mut q = QueryArgs {
        key: key.letter(),
        direction: if descending { b'D' } else { b'A' },
        opts: cfg.options.opts,
        pattern: None,
        colargs: Vec::new(),
    };
    if q.opts & IGNORE_CLIENT != 0 {
        q.opts |= SUPPRESS_COLSORT;
        return q;
    }
    let mut fval: Vec<u8> = Vec::new();
    let mut vval: Vec<u8> = Vec::new();
    let mut ppre: &[u8] = b"";
    let mut epattern: Vec<u8> = Vec::new();
    let s = query.unwrap_or("").as_bytes();
    let at = |i: usize| s.get(i).copied().unwrap_or(0);
    // An argument value must be followed by '&', ';' or the end.
    let ends = |i: usize| matches!(at(i), b'&' | b';' | 0);
    let mut i = 0usize;
    while i < s.len() {
        let step = if at(i + 3) != 0 { 4 } else { 3 };
        if at(i) == b'C' && at(i + 1) == b'=' && b"NMSD".contains(&at(i + 2)) && ends(i + 3) {
            q.key = at(i + 2);
            i += step;
        } else if at(i) == b'O'
            && at(i + 1) == b'='
            && matches!(at(i + 2), b'A' | b'D')
            && ends(i + 3)
        {
            q.direction = at(i + 2);
            i += step;
        } else if at(i) == b'F' && at(i + 1) == b'=' && b"012".contains(&at(i + 2)) && ends(i + 3) {
            match at(i + 2) {
                b'0' => q.opts &= !(FANCY_INDEXING | TABLE_INDEXING),
                b'1' => q.opts = (q.opts | FANCY_INDEXING) & !TABLE_INDEXING,
                _ => q.opts |= FANCY_INDEXING | TABLE_INDEXING,
            }
            fval = vec![b';', b'F', b'=', at(i + 2)];
            i += step;
        } else if at(i) == b'V'
            && at(i + 1) == b'='
            && matches!(at(i + 2), b'0' | b'1')
            && ends(i + 3)
        {
            if at(i + 2) == b'0' {
                q.opts &= !VERSION_SORT;
            } else {
                q.opts |= VERSION_SORT;
            }
            vval = vec![b';', b'V', b'=', at(i + 2)];
            i += step;
        } else if at(i) == b'P' && at(i + 1) == b'=' {
            let start = i + 2;
            let mut eos = start;
            while eos < s.len() && s[eos] != b'&' && s[eos] != b';' {
                eos += 1;
            }
            if eos == start {
                q.pattern = None;
            } else {
                // Apache ignores a pattern with a bad escape or an escaped `/` or NUL.
                match htgate_util::escape::unescape_url(&s[start..eos]).ok() {
                    Some(p) => {
                        ppre = b";P=";
                        epattern = os_escape_path(&p, true);
                        q.pattern = Some(p);
                    }
                    None => q.pattern = None,
                }
            }
            if eos < s.len() && eos + 1 < s.len() {
                i = eos + 1;
            } else {
                break;
            }
        } else {
            // Syntax error: Apache ignores the rest.
            break;
        }
    }
    q.colargs = [fval, vval, ppre.to_vec(), epattern].concat();
    q
}

/// Sort order (`dsortf`).
fn compare(e1: &Ent, e2: &Ent, key: u8, ascending: bool, opts: u32) -> Ordering {
    match (e1.parent, e2.parent) {
        (true, true) => return Ordering::Equal,
        (true, false) => return Ordering::Less,
        (false, true) => return Ordering::Greater,
        _ => {}
    }
    if e1.isdir != e2.isdir {
        return if e1.isdir {
            Ordering::Less
        } else {
            Ordering::Greater
        };
    }
    let (c1, c2) = if ascending { (e1, e2) } else { (e2, e1) };
    let version = opts & VERSION_SORT != 0;
    let ignore_case = opts & IGNORE_CASE != 0;
    match key {
        b'M' => match c1.lm.cmp(&c2.lm) {
            Ordering::Equal => {}
            o => return o,
        },
        b'S' => match c1.size.cmp(&c2.size) {
            Ordering::Equal => {}
            o => return o,
        },
        b'D' => {
            let d1 = c1.desc.as_deref().unwrap_or("").as_bytes();
            let d2 = c2.desc.as_deref().unwrap_or("").as_bytes();
            let r = if version {
                strnatcmp(d1, d2, false)
            } else {
                d1.cmp(d2)
            };
            if r != Ordering::Equal {
                return r;
            }
        }
        _ => {}
    }
    let (n1, n2) = (c1.name.as_bytes(), c2.name.as_bytes());
    let mut result = Ordering::Equal;
    if version {
        if ignore_case {
            result = strnatcmp(n1, n2, true);
        }
        if result == Ordering::Equal {
            result = strnatcmp(n1, n2, false);
        }
    }
    if result == Ordering::Equal && ignore_case {
        result = strcasecmp(n1, n2);
    }
    if result == Ordering::Equal {
        result = n1.cmp(n2);
    }
    result
}

/// The full listing page (Apache's exact bytes; names that are not
/// valid UTF-8 after Apache's byte-wise truncation are possible, hence
/// bytes).
pub fn render_listing(listing: &Listing<'_>, cfg: &IndexConfig) -> Vec<u8> {
    render_in(listing, cfg, Zone::Local)
}

/// [`render_listing`] without header/readme inserts, as a `String`
/// (a name cut inside a UTF-8 sequence by the column width gets a
/// replacement character here; [`render_listing`] keeps Apache's bytes).
pub fn render(
    dir_uri: &str,
    query: Option<&str>,
    entries: Vec<Entry>,
    cfg: &IndexConfig,
) -> String {
    let listing = Listing {
        dir_uri,
        query,
        entries,
        ..Listing::default()
    };
    match String::from_utf8(render_listing(&listing, cfg)) {
        Ok(s) => s,
        Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
    }
}

fn render_in(listing: &Listing<'_>, cfg: &IndexConfig, zone: Zone) -> Vec<u8> {
    let q = parse_query(listing.query, cfg);
    let opts = q.opts;
    let xhtml = opts & EMIT_XHTML != 0;
    let fancy_or_table = opts & (FANCY_INDEXING | TABLE_INDEXING) != 0;
    let ascending = q.direction == b'A';
    let mut out: Vec<u8> = Vec::with_capacity(4096 + listing.entries.len() * 160);

    // Title: the escaped URI without its trailing slashes.
    let mut title = Vec::new();
    escape_html(&mut title, listing.dir_uri.as_bytes());
    while title.len() > 1 && title.last() == Some(&b'/') {
        title.pop();
    }
    let title = String::from_utf8_lossy(&title).into_owned();

    // emit_head
    let suppress_amble = opts & SUPPRESS_PREAMBLE != 0;
    let mut emit_amble = true;
    let mut emit_h1 = true;
    match &listing.header {
        Some(Insert::Html(body)) => {
            emit_amble = false;
            emit_h1 = false;
            if !suppress_amble {
                preamble(&mut out, cfg, xhtml, &title);
            }
            out.extend_from_slice(body);
        }
        Some(Insert::Text(body)) => {
            preamble(&mut out, cfg, xhtml, &title);
            emit_amble = false;
            emit_plain(&mut out, body);
            emit_h1 = false;
        }
        None => {}
    }
    if emit_amble {
        preamble(&mut out, cfg, xhtml, &title);
    }
    if emit_h1 {
        if cfg.style_sheet.is_some() {
            push_str(
                &mut out,
                &format!("  <h1 id=\"indextitle\">Index of {title}</h1>\n"),
            );
        } else {
            push_str(&mut out, &format!("<h1>Index of {title}</h1>\n"));
        }
    }

    // Entries.
    let mut ents: Vec<Ent> = Vec::with_capacity(listing.entries.len() + 1);
    let dir_path = if listing.dir_uri.ends_with('/') {
        listing.dir_uri.to_string()
    } else {
        format!("{}/", listing.dir_uri)
    };
    if let Some(parent) = parent_uri(listing.dir_uri) {
        if !is_ignored("..", &cfg.ignore) {
            // Icons, alts and descriptions see the parent as "<dir>/..".
            let testpath = format!("{dir_path}..");
            let mut e = Ent {
                name: parent,
                parent: true,
                icon: None,
                alt: None,
                desc: None,
                size: -1,
                lm: -1,
                isdir: false,
            };
            if opts & FANCY_INDEXING != 0 {
                e.icon = find_item(&cfg.icons, &testpath, None, None, true)
                    .or_else(|| find_item(&cfg.icons, "^^DIRECTORY^^", None, None, true))
                    .map(str::to_string);
                e.alt = Some(
                    find_item(&cfg.alts, &testpath, None, None, true)
                        .or_else(|| find_item(&cfg.alts, "^^DIRECTORY^^", None, None, true))
                        .unwrap_or("PARENTDIR")
                        .to_string(),
                );
                e.desc = find_desc(&cfg.descriptions, &testpath);
            }
            ents.push(e);
        }
    }
    for entry in &listing.entries {
        if entry.name == "." || entry.name == ".." || entry.name.is_empty() {
            continue;
        }
        if let Some(p) = &q.pattern {
            if !fnmatch(p, entry.name.as_bytes(), P_FLAGS) {
                continue;
            }
        }
        if is_ignored(&entry.name, &cfg.ignore) {
            continue;
        }
        let full = format!("{dir_path}{}", entry.name);
        let mut e = Ent {
            name: if entry.is_dir {
                format!("{}/", entry.name)
            } else {
                entry.name.clone()
            },
            parent: false,
            icon: None,
            alt: None,
            desc: None,
            size: -1,
            lm: -1,
            isdir: false,
        };
        if fancy_or_table {
            e.lm = entry.modified.map_or(-1, micros);
            let ct = entry
                .content_type
                .as_deref()
                .map(|t| t.split(';').next().unwrap_or(t).trim());
            if entry.is_dir {
                e.isdir = opts & FOLDERS_FIRST != 0;
                e.icon = find_item(&cfg.icons, &full, None, None, true)
                    .or_else(|| find_item(&cfg.icons, "^^DIRECTORY^^", None, None, true))
                    .map(str::to_string);
                e.alt = Some(
                    find_item(&cfg.alts, &full, None, None, true)
                        .or_else(|| find_item(&cfg.alts, "^^DIRECTORY^^", None, None, true))
                        .unwrap_or("DIR")
                        .to_string(),
                );
            } else {
                let enc = entry.content_encoding.as_deref();
                e.icon = find_item(&cfg.icons, &full, ct, enc, false).map(str::to_string);
                e.alt = find_item(&cfg.alts, &full, ct, enc, false).map(str::to_string);
                e.size = entry
                    .size
                    .map_or(-1, |s| i64::try_from(s).unwrap_or(i64::MAX));
            }
            e.desc = find_desc(&cfg.descriptions, &full).or_else(|| entry.description.clone());
        }
        if q.key == b'M' && e.lm < 0 {
            e.lm = 0;
        }
        ents.push(e);
    }
    ents.sort_by(|a, b| compare(a, b, q.key, ascending, opts));

    output_directories(
        &mut out,
        &ents,
        cfg,
        opts,
        q.key,
        q.direction,
        &q.colargs,
        zone,
    );

    // emit_tail
    let mut suppress_sig = false;
    let mut suppress_post = false;
    match &listing.readme {
        Some(Insert::Html(body)) => {
            out.extend_from_slice(body);
            suppress_sig = true;
            suppress_post = suppress_amble;
        }
        Some(Insert::Text(body)) => {
            emit_plain(&mut out, body);
            suppress_sig = true;
        }
        None => {}
    }
    if !suppress_sig {
        if let Some(sig) = &listing.signature {
            push_str(&mut out, sig);
        }
    }
    if !suppress_post {
        push_str(&mut out, "</body></html>\n");
    }
    out
}

fn preamble(out: &mut Vec<u8>, cfg: &IndexConfig, xhtml: bool, title: &str) {
    if xhtml {
        push_str(out, DOCTYPE_XHTML_1_0T);
        push_str(out, "<html xmlns=\"http://www.w3.org/1999/xhtml\">\n");
    } else {
        push_str(out, DOCTYPE_HTML_4_01);
        push_str(out, "<html>\n");
    }
    push_str(
        out,
        &format!(" <head>\n  <title>Index of {title}</title>\n"),
    );
    if let Some(ss) = &cfg.style_sheet {
        push_str(
            out,
            &format!(
                "  <link rel=\"stylesheet\" href=\"{ss}\" type=\"text/css\"{}",
                if xhtml { " />\n" } else { ">\n" }
            ),
        );
    }
    if let Some(h) = &cfg.head_insert {
        push_str(out, h);
    }
    push_str(out, " </head>\n <body>\n");
}

/// `do_emit_plain`: a text file inside `<pre>`, with `<`, `>`, `&`
/// escaped.
fn emit_plain(out: &mut Vec<u8>, body: &[u8]) {
    push_str(out, "<pre>\n");
    for &b in body {
        match b {
            b'<' => out.extend_from_slice(b"&lt;"),
            b'>' => out.extend_from_slice(b"&gt;"),
            b'&' => out.extend_from_slice(b"&amp;"),
            _ => out.push(b),
        }
    }
    push_str(out, "</pre>\n");
}

/// `emit_link`: a column heading, a sort link unless sorting is off.
fn emit_link(
    out: &mut Vec<u8>,
    anchor: &str,
    column: u8,
    curkey: u8,
    curdir: u8,
    colargs: &[u8],
    nosort: bool,
) {
    if nosort {
        push_str(out, anchor);
        return;
    }
    let dir = if curkey == column && curdir == b'A' {
        'D'
    } else {
        'A'
    };
    push_str(out, &format!("<a href=\"?C={};O={dir}", char::from(column)));
    out.extend_from_slice(colargs);
    push_str(out, &format!("\">{anchor}</a>"));
}

fn icon_img(out: &mut Vec<u8>, src: &str, alt: &str, o: &IndexOptions, xhtml: bool) {
    push_str(out, "<img src=\"");
    escape_html(out, src.as_bytes());
    push_str(out, &format!("\" alt=\"{alt}\""));
    if o.icon_width != 0 {
        push_str(out, &format!(" width=\"{}\"", o.icon_width));
    }
    if o.icon_height != 0 {
        push_str(out, &format!(" height=\"{}\"", o.icon_height));
    }
    if xhtml {
        push_str(out, " /");
    }
    push_str(out, ">");
}

fn spaces(out: &mut Vec<u8>, n: usize) {
    out.resize(out.len() + n, b' ');
}

#[allow(clippy::too_many_arguments)]
fn output_directories(
    out: &mut Vec<u8>,
    ar: &[Ent],
    cfg: &IndexConfig,
    opts: u32,
    keyid: u8,
    direction: u8,
    colargs: &[u8],
    zone: Zone,
) {
    let d = &cfg.options;
    let xhtml = opts & EMIT_XHTML != 0;
    let nosort = opts & SUPPRESS_COLSORT != 0;
    let ss = cfg.style_sheet.is_some();
    let old_dates = d.old_date_format.unwrap_or(false);
    let mut name_width = d.name_width;
    let mut desc_width = d.desc_width;
    if opts & (FANCY_INDEXING | TABLE_INDEXING) == FANCY_INDEXING {
        if d.name_adjust == WidthMode::Auto {
            for e in ar {
                name_width = name_width.max(e.name.len());
            }
        }
        if d.desc_adjust == WidthMode::Auto {
            for e in ar {
                if let Some(desc) = &e.desc {
                    desc_width = desc_width.max(desc.len());
                }
            }
        }
    }
    let cls = |class: &str, plain: &str| -> String {
        if ss {
            format!(" class=\"{class}\">")
        } else {
            plain.to_string()
        }
    };
    let mut breakrow = String::new();
    if opts & TABLE_INDEXING != 0 {
        let mut cols = 1;
        if ss {
            push_str(
                out,
                "  <table id=\"indexlist\">\n   <tr class=\"indexhead\">",
            );
        } else {
            push_str(out, "  <table>\n   <tr>");
        }
        if opts & SUPPRESS_ICON == 0 {
            push_str(
                out,
                &format!("<th{}", cls("indexcolicon", " valign=\"top\">")),
            );
            match find_item(&cfg.icons, "^^BLANKICON^^", None, None, true) {
                Some(tp) => {
                    icon_img(out, tp, "[ICO]", d, xhtml);
                    push_str(out, "</th>");
                }
                None => push_str(out, "&nbsp;</th>"),
            }
            cols += 1;
        }
        push_str(out, &format!("<th{}", cls("indexcolname", ">")));
        emit_link(out, "Name", b'N', keyid, direction, colargs, nosort);
        if opts & SUPPRESS_LAST_MOD == 0 {
            push_str(out, &format!("</th><th{}", cls("indexcollastmod", ">")));
            emit_link(
                out,
                "Last modified",
                b'M',
                keyid,
                direction,
                colargs,
                nosort,
            );
            cols += 1;
        }
        if opts & SUPPRESS_SIZE == 0 {
            push_str(out, &format!("</th><th{}", cls("indexcolsize", ">")));
            emit_link(out, "Size", b'S', keyid, direction, colargs, nosort);
            cols += 1;
        }
        if opts & SUPPRESS_DESC == 0 {
            push_str(out, &format!("</th><th{}", cls("indexcoldesc", ">")));
            emit_link(out, "Description", b'D', keyid, direction, colargs, nosort);
            cols += 1;
        }
        if opts & SUPPRESS_RULES == 0 {
            breakrow = format!(
                "   <tr{}><th colspan=\"{cols}\"><hr{}></th></tr>\n",
                if ss { " class=\"indexbreakrow\"" } else { "" },
                if xhtml { " /" } else { "" }
            );
        }
        push_str(out, "</th></tr>\n");
        push_str(out, &breakrow);
    } else if opts & FANCY_INDEXING != 0 {
        push_str(out, "<pre>");
        if opts & SUPPRESS_ICON == 0 {
            match find_item(&cfg.icons, "^^BLANKICON^^", None, None, true) {
                Some(tp) => {
                    icon_img(out, tp, "Icon ", d, xhtml);
                    push_str(out, " ");
                }
                None => spaces(out, 6),
            }
        }
        emit_link(out, "Name", b'N', keyid, direction, colargs, nosort);
        spaces(out, name_width.saturating_sub(4));
        push_str(out, " ");
        if opts & SUPPRESS_LAST_MOD == 0 {
            emit_link(
                out,
                "Last modified",
                b'M',
                keyid,
                direction,
                colargs,
                nosort,
            );
            spaces(out, 6);
        }
        if opts & SUPPRESS_SIZE == 0 {
            emit_link(out, "Size", b'S', keyid, direction, colargs, nosort);
            spaces(out, 2);
        }
        if opts & SUPPRESS_DESC == 0 {
            emit_link(out, "Description", b'D', keyid, direction, colargs, nosort);
        }
        if opts & SUPPRESS_RULES == 0 {
            push_str(out, if xhtml { "<hr />" } else { "<hr>" });
        } else {
            push_str(out, "\n");
        }
    } else {
        push_str(out, "<ul>");
    }

    for (x, e) in ar.iter().enumerate() {
        let anchor = {
            let mut a = Vec::new();
            escape_html(&mut a, &os_escape_path(e.name.as_bytes(), false));
            a
        };
        let t2: &[u8] = if x == 0 && e.parent {
            b"Parent Directory"
        } else {
            e.name.as_bytes()
        };
        // Names longer than the column are cut byte-wise to width-3 and
        // end in "..>", as Apache does.
        let truncate = |t2: &[u8]| -> (Vec<u8>, usize) {
            if t2.len() > name_width {
                let keep = name_width.saturating_sub(3);
                let mut v = t2[..keep.min(t2.len())].to_vec();
                v.extend_from_slice(b"..>");
                v.truncate(name_width);
                (v, name_width)
            } else {
                (t2.to_vec(), t2.len())
            }
        };
        if opts & TABLE_INDEXING != 0 {
            if ss {
                let parity = if x & 1 == 1 { "odd" } else { "even" };
                match (&e.alt, opts & ADDALTCLASS != 0) {
                    (Some(alt), true) => push_str(
                        out,
                        &format!("   <tr class=\"{parity}-{}\">", alt.to_ascii_lowercase()),
                    ),
                    _ => push_str(out, &format!("   <tr class=\"{parity}\">")),
                }
            } else {
                push_str(out, "<tr>");
            }
            if opts & SUPPRESS_ICON == 0 {
                push_str(
                    out,
                    &format!("<td{}", cls("indexcolicon", " valign=\"top\">")),
                );
                if opts & ICONS_ARE_LINKS != 0 {
                    push_str(out, "<a href=\"");
                    out.extend_from_slice(&anchor);
                    push_str(out, "\">");
                }
                match e.icon.as_deref().or(cfg.default_icon.as_deref()) {
                    Some(icon) => {
                        let alt = format!("[{}]", e.alt.as_deref().unwrap_or("   "));
                        icon_img(out, icon, &alt, d, xhtml);
                    }
                    None => push_str(out, "&nbsp;"),
                }
                if opts & ICONS_ARE_LINKS != 0 {
                    push_str(out, "</a></td>");
                } else {
                    push_str(out, "</td>");
                }
            }
            push_str(out, &format!("<td{}", cls("indexcolname", ">")));
            push_str(out, "<a href=\"");
            out.extend_from_slice(&anchor);
            push_str(out, "\">");
            if d.name_adjust == WidthMode::Auto {
                escape_html(out, t2);
                push_str(out, "</a>");
            } else {
                let (shown, nwidth) = truncate(t2);
                escape_html(out, &shown);
                push_str(out, "</a>");
                spaces(out, name_width.saturating_sub(nwidth));
            }
            if opts & SUPPRESS_LAST_MOD == 0 {
                if e.lm != -1 {
                    push_str(
                        out,
                        &format!("</td><td{}", cls("indexcollastmod", " align=\"right\">")),
                    );
                    push_str(out, &format_time(e.lm, old_dates, zone));
                    push_str(out, "  ");
                } else if ss {
                    push_str(out, "</td><td class=\"indexcollastmod\">&nbsp;");
                } else {
                    push_str(out, "</td><td>&nbsp;");
                }
            }
            if opts & SUPPRESS_SIZE == 0 {
                push_str(
                    out,
                    &format!("</td><td{}", cls("indexcolsize", " align=\"right\">")),
                );
                push_str(out, &strfsize(e.size));
            }
            if opts & SUPPRESS_DESC == 0 {
                push_str(out, &format!("</td><td{}", cls("indexcoldesc", ">")));
                match &e.desc {
                    Some(desc) if d.desc_adjust == WidthMode::Auto => push_str(out, desc),
                    Some(desc) => out.extend_from_slice(&terminate_description(
                        desc,
                        opts,
                        desc_width,
                        d.desc_adjust,
                    )),
                    None => push_str(out, "&nbsp;"),
                }
            }
            push_str(out, "</td></tr>\n");
        } else if opts & FANCY_INDEXING != 0 {
            if opts & SUPPRESS_ICON == 0 {
                if opts & ICONS_ARE_LINKS != 0 {
                    push_str(out, "<a href=\"");
                    out.extend_from_slice(&anchor);
                    push_str(out, "\">");
                }
                match e.icon.as_deref().or(cfg.default_icon.as_deref()) {
                    Some(icon) => {
                        let alt = format!("[{}]", e.alt.as_deref().unwrap_or("   "));
                        icon_img(out, icon, &alt, d, xhtml);
                    }
                    None => spaces(out, 5),
                }
                if opts & ICONS_ARE_LINKS != 0 {
                    push_str(out, "</a> ");
                } else {
                    push_str(out, " ");
                }
            }
            let (shown, nwidth) = truncate(t2);
            push_str(out, "<a href=\"");
            out.extend_from_slice(&anchor);
            push_str(out, "\">");
            escape_html(out, &shown);
            push_str(out, "</a>");
            spaces(out, name_width.saturating_sub(nwidth));
            push_str(out, " ");
            if opts & SUPPRESS_LAST_MOD == 0 {
                if e.lm != -1 {
                    push_str(out, &format_time(e.lm, old_dates, zone));
                    push_str(out, "  ");
                } else {
                    spaces(out, 19);
                }
            }
            if opts & SUPPRESS_SIZE == 0 {
                push_str(out, &strfsize(e.size));
                push_str(out, "  ");
            }
            if opts & SUPPRESS_DESC == 0 {
                if let Some(desc) = &e.desc {
                    out.extend_from_slice(&terminate_description(
                        desc,
                        opts,
                        desc_width,
                        d.desc_adjust,
                    ));
                }
            }
            push_str(out, "\n");
        } else {
            push_str(out, "<li><a href=\"");
            out.extend_from_slice(&anchor);
            push_str(out, "\"> ");
            escape_html(out, t2);
            push_str(out, "</a></li>\n");
        }
    }
    if opts & TABLE_INDEXING != 0 {
        push_str(out, &breakrow);
        push_str(out, "</table>\n");
    } else if opts & FANCY_INDEXING != 0 {
        if opts & SUPPRESS_RULES == 0 {
            push_str(
                out,
                if xhtml {
                    "<hr /></pre>\n"
                } else {
                    "<hr></pre>\n"
                },
            );
        } else {
            push_str(out, "</pre>\n");
        }
    } else {
        push_str(out, "</ul>\n");
    }
}

#[cfg(test)]
mod tests {
    //! The `*_HTML` constants are Apache 2.4.71's answers (mod_autoindex
    //! as loaded by the conformance oracle, `curl` on a throw-away
    //! instance) for the small tree built by [`tree`], with the
    //! configuration and query named in each test.
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

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
        Some(
            UNIX_EPOCH
                + Duration::from_secs(base + (day - 1) * 86_400 + 12 * 3600 + (30 + day) * 60),
        )
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
            terminate_description("x".repeat(30).as_str(), SUPPRESS_SIZE, 23, WidthMode::Unset)
                .len(),
            30
        );
    }
}

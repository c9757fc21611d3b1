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

mod config;
mod entries;
mod format;
mod matching;
mod options;
mod query;
mod render;
mod sort;
#[cfg(test)]
mod tests;

#[cfg(test)]
use config::parse_index_order_default;
pub use config::IndexConfig;
pub use entries::scan_html_title;
#[cfg(test)]
use matching::is_ignored;
#[cfg(test)]
use options::parse_index_options;
pub use options::IndexOptions;
pub use render::{render, render_listing};

use std::time::SystemTime;

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

/// `find_title` reads this much of a file (MAX_STRING_LEN - 1).
pub const TITLE_SCAN_BYTES: usize = 8191;

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

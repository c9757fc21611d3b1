//! The content-type table: file extension → media type, as mod_mime's
//! `TypesConfig` (Debian's `/etc/mime.types`) plus `AddType`/`RemoveType`.
//!
//! The built-in table is Debian's `/etc/mime.types` (package media-types
//! 10.0.0), which is what Apache on Debian reads at start-up.  It is parsed
//! once per process and shared; a [`MimeTable`] keeps its own changes in a
//! small overlay so cloning one per directory stays cheap.

use std::collections::HashMap;
use std::sync::{Arc, OnceLock};

type Map = HashMap<Box<str>, Box<str>>;

/// Extension (lower case, no dot) → content type.
#[derive(Clone, Debug)]
pub struct MimeTable {
    /// The shared, immutable base table.
    base: Arc<Map>,
    /// Changes made on this table: `Some` adds or replaces, `None` removes.
    overlay: HashMap<Box<str>, Option<Box<str>>>,
}

/// Normalises an extension as mod_mime does for `AddType` and lookups:
/// one leading dot is dropped and ASCII letters are lower-cased.
fn normalise(ext: &str) -> std::borrow::Cow<'_, str> {
    let ext = ext.strip_prefix('.').unwrap_or(ext);
    if ext.bytes().any(|b| b.is_ascii_uppercase()) {
        std::borrow::Cow::Owned(ext.to_ascii_lowercase())
    } else {
        std::borrow::Cow::Borrowed(ext)
    }
}

/// Parses `mime.types` text: `type ext ext ...` per line, `#` comments.
/// Like mod_mime, a later line wins when an extension appears twice.
fn parse_mime_types(text: &str) -> Map {
    let mut map = Map::new();
    for line in text.lines() {
        if line.starts_with('#') {
            continue;
        }
        let mut words = line.split_ascii_whitespace();
        let Some(ctype) = words.next() else {
            continue;
        };
        for ext in words {
            map.insert(normalise(ext).into_owned().into_boxed_str(), ctype.into());
        }
    }
    map
}

/// `../shared/conformance/oracle`'s `MIME_TYPES`.
const REFERENCE_MIME_TYPES: &str = include_str!("../data/reference.types");

impl MimeTable {
    /// The built-in table (Debian's `/etc/mime.types`).
    pub fn builtin() -> MimeTable {
        static BASE: OnceLock<Arc<Map>> = OnceLock::new();
        let base = BASE.get_or_init(|| Arc::new(parse_mime_types(DEBIAN_MIME_TYPES)));
        MimeTable {
            base: Arc::clone(base),
            overlay: HashMap::new(),
        }
    }

    /// The conformance oracle's fixed table (its generated `mime.types`):
    /// what the recorded Apache answers were made with.
    pub fn reference() -> MimeTable {
        MimeTable::from_mime_types(REFERENCE_MIME_TYPES)
    }

    /// A table with no mappings at all.
    pub fn empty() -> MimeTable {
        MimeTable {
            base: Arc::new(Map::new()),
            overlay: HashMap::new(),
        }
    }

    /// A table read from the text of a `mime.types` file (`TypesConfig`).
    pub fn from_mime_types(text: &str) -> MimeTable {
        MimeTable {
            base: Arc::new(parse_mime_types(text)),
            overlay: HashMap::new(),
        }
    }

    /// The content type for one extension (case-insensitive, a leading dot
    /// is allowed).
    pub fn lookup(&self, ext: &str) -> Option<&str> {
        let ext = normalise(ext);
        match self.overlay.get(ext.as_ref()) {
            Some(Some(ctype)) => Some(ctype),
            Some(None) => None,
            None => self.base.get(ext.as_ref()).map(|c| &**c),
        }
    }

    /// Maps `ext` to `ctype` (`AddType ctype ext`).
    pub fn insert(&mut self, ext: &str, ctype: &str) {
        let ext = normalise(ext).into_owned().into_boxed_str();
        self.overlay.insert(ext, Some(ctype.into()));
    }

    /// Forgets the mapping of `ext` (`RemoveType ext`).
    pub fn remove(&mut self, ext: &str) {
        let ext = normalise(ext).into_owned().into_boxed_str();
        if self.base.contains_key(&ext) {
            self.overlay.insert(ext, None);
        } else {
            self.overlay.remove(&ext);
        }
    }
}

impl Default for MimeTable {
    fn default() -> Self {
        MimeTable::builtin()
    }
}

/// Debian's `/etc/mime.types` (media-types 10.0.0): a data file, parsed
/// once per process.
const DEBIAN_MIME_TYPES: &str = include_str!("../data/mime.types");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn required_web_types() {
        let t = MimeTable::builtin();
        let expect = [
            ("html", "text/html"),
            ("htm", "text/html"),
            ("txt", "text/plain"),
            ("css", "text/css"),
            ("js", "text/javascript"),
            ("mjs", "text/javascript"),
            ("json", "application/json"),
            ("xml", "application/xml"),
            ("svg", "image/svg+xml"),
            ("svgz", "image/svg+xml"),
            ("png", "image/png"),
            ("jpg", "image/jpeg"),
            ("jpeg", "image/jpeg"),
            ("jpe", "image/jpeg"),
            ("gif", "image/gif"),
            ("webp", "image/webp"),
            ("ico", "image/vnd.microsoft.icon"),
            ("pdf", "application/pdf"),
            ("zip", "application/zip"),
            ("woff", "font/woff"),
            ("woff2", "font/woff2"),
            ("ttf", "font/ttf"),
            ("otf", "font/otf"),
            ("eot", "application/vnd.ms-fontobject"),
            ("mp4", "video/mp4"),
            ("webm", "video/webm"),
            ("mp3", "audio/mpeg"),
            ("ogg", "audio/ogg"),
            ("wasm", "application/wasm"),
            ("csv", "text/csv"),
            ("md", "text/markdown"),
            ("gz", "application/gzip"),
            ("tar", "application/x-tar"),
            ("avif", "image/avif"),
            ("bmp", "image/bmp"),
            ("tif", "image/tiff"),
            ("tiff", "image/tiff"),
            ("rss", "application/x-rss+xml"),
            ("atom", "application/atom+xml"),
            ("webmanifest", "application/manifest+json"),
            ("xhtml", "application/xhtml+xml"),
            ("ics", "text/calendar"),
            ("apng", "image/apng"),
        ];
        for (ext, ctype) in expect {
            assert_eq!(t.lookup(ext), Some(ctype), "{ext}");
        }
    }

    #[test]
    fn lookup_is_case_insensitive_and_takes_a_dot() {
        let t = MimeTable::builtin();
        assert_eq!(t.lookup("HTML"), Some("text/html"));
        assert_eq!(t.lookup(".Png"), Some("image/png"));
        assert_eq!(t.lookup("nosuchext"), None);
        assert_eq!(t.lookup(""), None);
    }

    #[test]
    fn insert_and_remove_do_not_touch_clones() {
        let base = MimeTable::builtin();
        let mut t = base.clone();
        t.insert(".PHP", "application/x-httpd-php");
        t.insert("html", "text/plain");
        t.remove("css");
        t.remove("nosuchext");
        assert_eq!(t.lookup("php"), Some("application/x-httpd-php"));
        assert_eq!(t.lookup("html"), Some("text/plain"));
        assert_eq!(t.lookup("css"), None);
        assert_eq!(base.lookup("css"), Some("text/css"));
        assert_eq!(base.lookup("html"), Some("text/html"));
        t.insert("css", "text/x-css");
        assert_eq!(t.lookup("css"), Some("text/x-css"));
    }

    #[test]
    fn mime_types_text_later_line_wins() {
        let t = MimeTable::from_mime_types("# comment\ntext/a aa bb\n\ntext/b BB\nlonely/type\n");
        assert_eq!(t.lookup("aa"), Some("text/a"));
        assert_eq!(t.lookup("bb"), Some("text/b"));
        assert_eq!(MimeTable::empty().lookup("html"), None);
    }
}

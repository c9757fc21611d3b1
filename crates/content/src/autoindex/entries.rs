//! The entries of a listing: Apache's `struct ent` made from the
//! caller's [`Entry`](super::Entry)s (the parent link, `IndexIgnore`,
//! `P=`, icons, alts and descriptions), and `find_title` for
//! `ScanHTMLTitles`.

use super::config::IndexConfig;
use super::matching::{find_desc, find_item, is_ignored};
use super::options::{FANCY_INDEXING, FOLDERS_FIRST, TABLE_INDEXING};
use super::query::{QueryArgs, P_FLAGS};
use super::{Listing, TITLE_SCAN_BYTES};
use htgate_util::fnmatch::fnmatch;
use std::time::SystemTime;

/// Apache's `struct ent`.
pub(super) struct Ent {
    /// Display name: `sub/` for directories; the parent's URL path for
    /// the parent entry.
    pub(super) name: String,
    pub(super) parent: bool,
    pub(super) icon: Option<String>,
    pub(super) alt: Option<String>,
    pub(super) desc: Option<String>,
    pub(super) size: i64,
    /// Microseconds since the epoch, -1 for "unknown/not shown".
    pub(super) lm: i64,
    pub(super) isdir: bool,
}

fn micros(t: SystemTime) -> i64 {
    match t.duration_since(SystemTime::UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_micros()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_micros()).map_or(i64::MIN, |us| -us),
    }
}

/// The parent of `uri` (`ap_make_full_path(uri, "../")` normalised), or
/// `None` at the top.
pub(super) fn parent_uri(uri: &str) -> Option<String> {
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

/// The listing's entries as `struct ent`s, unsorted: the parent link
/// first (unless ignored), then the caller's entries without `.`, `..`
/// and those `P=` or `IndexIgnore` hide.  Icons, alts, descriptions,
/// sizes and dates are only filled in for FancyIndexing and HTMLTable.
pub(super) fn make_entries(listing: &Listing<'_>, cfg: &IndexConfig, q: &QueryArgs) -> Vec<Ent> {
    let opts = q.opts;
    let fancy_or_table = opts & (FANCY_INDEXING | TABLE_INDEXING) != 0;
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
    ents
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

//! `IndexOptions`: Apache's option bits, the directive's parser and the
//! odd merge rules of `merge_autoindex_configs` for them.

// Apache's option bits, same values and names as mod_autoindex.c.
pub(super) const NO_OPTIONS: u32 = 1 << 0;
pub(super) const ICONS_ARE_LINKS: u32 = 1 << 1;
pub(super) const SCAN_HTML_TITLES: u32 = 1 << 2;
pub(super) const SUPPRESS_ICON: u32 = 1 << 3;
pub(super) const SUPPRESS_LAST_MOD: u32 = 1 << 4;
pub(super) const SUPPRESS_SIZE: u32 = 1 << 5;
pub(super) const SUPPRESS_DESC: u32 = 1 << 6;
pub(super) const SUPPRESS_PREAMBLE: u32 = 1 << 7;
pub(super) const SUPPRESS_COLSORT: u32 = 1 << 8;
pub(super) const SUPPRESS_RULES: u32 = 1 << 9;
pub(super) const FOLDERS_FIRST: u32 = 1 << 10;
pub(super) const VERSION_SORT: u32 = 1 << 11;
pub(super) const TRACK_MODIFIED: u32 = 1 << 12;
pub(super) const FANCY_INDEXING: u32 = 1 << 13;
pub(super) const TABLE_INDEXING: u32 = 1 << 14;
pub(super) const IGNORE_CLIENT: u32 = 1 << 15;
pub(super) const IGNORE_CASE: u32 = 1 << 16;
pub(super) const EMIT_XHTML: u32 = 1 << 17;
pub(super) const SHOW_FORBIDDEN: u32 = 1 << 18;
pub(super) const ADDALTCLASS: u32 = 1 << 19;
/// "No non-incremental IndexOptions seen here": decides whether the
/// merge inherits the parent's options.
pub(super) const OPTION_UNSET: u32 = 1 << 20;

const DEFAULT_ICON_WIDTH: u32 = 20;
const DEFAULT_ICON_HEIGHT: u32 = 22;
const DEFAULT_NAME_WIDTH: usize = 23;
const DEFAULT_DESC_WIDTH: usize = 23;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
/// How a column width was set: `NameWidth=n`/`-NameWidth` (fixed),
/// `NameWidth=*` (fit the longest), or not at all here.
pub(super) enum WidthMode {
    Fixed,
    Auto,
    Unset,
}

/// The `IndexOptions` state of one directory context (or the merged
/// result), with Apache's three bit sets: the non-incremental options,
/// and the `+`/`-` ones waiting to be applied at merge time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IndexOptions {
    pub(super) opts: u32,
    incremented: u32,
    decremented: u32,
    pub(super) icon_width: u32,
    pub(super) icon_height: u32,
    pub(super) name_width: usize,
    pub(super) name_adjust: WidthMode,
    pub(super) desc_width: usize,
    pub(super) desc_adjust: WidthMode,
    ctype: Option<String>,
    charset: Option<String>,
    pub(super) old_date_format: Option<bool>,
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

    /// `IndexOptions TrackModified` (parsed; listings are sent without
    /// the directory's Last-Modified and ETag).
    #[cfg(test)]
    pub(crate) fn track_modified(&self) -> bool {
        self.has(TRACK_MODIFIED)
    }

    /// `IndexOptions ScanHTMLTitles`: the caller should fill
    /// [`Entry::description`](super::Entry::description) of HTML files
    /// with [`scan_html_title`](super::scan_html_title).
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
#[cfg(test)]
pub(crate) fn parse_index_options(
    words: &[String],
    base: &IndexOptions,
) -> Result<IndexOptions, String> {
    let mut o = base.clone();
    o.apply(words)?;
    Ok(o)
}

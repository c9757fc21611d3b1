//! [`IndexConfig`]: the mod_autoindex directives of one directory context
//! (`IndexIgnore`, `AddIcon*`, `AddAlt*`, `AddDescription`, …) and their
//! merge onto the parent's settings.

use super::options::IndexOptions;
use super::SortKey;

/// `IndexOrderDefault Ascending|Descending Name|Date|Size|Description`
/// → (key, descending).
pub(crate) fn parse_index_order_default(words: &[String]) -> Result<(SortKey, bool), String> {
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
pub(super) enum ItemKind {
    Path,
    Type,
    Encoding,
}

/// An `AddIcon*` / `AddAlt*` rule (Apache's `struct item`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct IconRule {
    pub(super) kind: ItemKind,
    pub(super) apply_to: String,
    pub(super) data: String,
}

/// An `AddDescription` rule (Apache's `ai_desc_t`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct DescRule {
    pub(super) pattern: String,
    pub(super) description: String,
    pub(super) full_path: bool,
    pub(super) wildcards: bool,
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
    pub(super) descriptions: Vec<DescRule>,
    pub(super) icons: Vec<IconRule>,
    pub(super) alts: Vec<IconRule>,
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
    /// Applies one directive of [`DIRECTIVES`](super::DIRECTIVES) (name matched
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

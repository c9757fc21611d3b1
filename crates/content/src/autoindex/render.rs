//! The listing page: the three layouts (plain `<ul>`, FancyIndexing
//! `<pre>`, HTMLTable), column headings with their sort links, and the
//! header and readme inserts (`emit_head`, `output_directories`,
//! `emit_tail`).

use super::config::IndexConfig;
use super::entries::{make_entries, Ent};
use super::format::{format_time, os_escape_path, strfsize, terminate_description, Zone};
use super::matching::find_item;
use super::options::{
    IndexOptions, WidthMode, ADDALTCLASS, EMIT_XHTML, FANCY_INDEXING, ICONS_ARE_LINKS,
    SUPPRESS_COLSORT, SUPPRESS_DESC, SUPPRESS_ICON, SUPPRESS_LAST_MOD, SUPPRESS_PREAMBLE,
    SUPPRESS_RULES, SUPPRESS_SIZE, TABLE_INDEXING,
};
use super::query::parse_query;
use super::sort::compare;
use super::{Entry, Insert, Listing};
use htgate_util::escape::escape_html;

const DOCTYPE_HTML_4_01: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\" \
                                 \"http://www.w3.org/TR/html4/strict.dtd\">\n";
const DOCTYPE_XHTML_1_0T: &str = "<!DOCTYPE html PUBLIC \"-//W3C//DTD XHTML 1.0 \
                                  Transitional//EN\"\n\"http://www.w3.org/TR/xhtml1/DTD/\
                                  xhtml1-transitional.dtd\">\n";

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

pub(super) fn render_in(listing: &Listing<'_>, cfg: &IndexConfig, zone: Zone) -> Vec<u8> {
    let q = parse_query(listing.query, cfg);
    let opts = q.opts;
    let xhtml = opts & EMIT_XHTML != 0;
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
    let mut ents = make_entries(listing, cfg, &q);
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

fn push_str(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
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

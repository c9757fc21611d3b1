//! The replay report as one HTML page with no external assets: the sites
//! ranked by difference count, then each difference with its request, the
//! two answers side by side and `htgate explain`'s account of the request.

use htgate_util::escape::escape_html;

use super::ReplayReport;

const STYLE: &str = "body{font:14px/1.4 system-ui,sans-serif;margin:2em;color:#222}\
h1{font-size:1.5em}table{border-collapse:collapse;margin:.5em 0 1.5em}\
td,th{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top}\
th{background:#f3f3f3}.bad{color:#a00;font-weight:bold}.ok{color:#070}\
pre{background:#f7f7f7;padding:.6em;overflow:auto;max-height:30em}\
details{margin:.4em 0 1em}summary{cursor:pointer}code{font-size:.95em}";

fn e(s: &str) -> String {
    let mut out = Vec::with_capacity(s.len());
    escape_html(&mut out, s.as_bytes());
    // Escaping only replaces ASCII bytes: still UTF-8.
    String::from_utf8_lossy(&out).into_owned()
}

/// The page.
pub fn render(r: &ReplayReport) -> String {
    let mut h = String::new();
    h.push_str("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str("<title>htgate replay report</title>");
    h.push_str(&format!("<style>{STYLE}</style></head><body>\n"));
    h.push_str("<h1>htgate replay report</h1>\n");
    h.push_str(&format!(
        "<p id=\"summary\">{} requests replayed from {} log lines against Apache at <code>{}</code> and htgate at <code>{}</code>: <span class=\"{}\">{} differences</span>.</p>\n",
        r.replayed,
        r.lines_read,
        e(&r.apache),
        e(&r.htgate),
        if r.differences.is_empty() { "ok" } else { "bad" },
        r.differences.len()
    ));
    h.push_str("<p>Compared: status, Location (each server's own port removed), Content-Type, Vary, Cache-Control, the names Set-Cookie sets, and a digest of the body. PHP pages change from one request to the next, so for them only the status and the type are compared.</p>\n");
    if r.credentials > 0 {
        h.push_str(&format!(
            "<p class=\"bad\">{} requests {} their logged cookies or credentials.</p>\n",
            r.credentials,
            if r.with_credentials {
                "were replayed WITH"
            } else {
                "were replayed without"
            }
        ));
    }
    if !r.skipped.is_empty() {
        h.push_str("<table id=\"skipped\"><tr><th>not replayed</th><th>lines</th></tr>\n");
        for (why, n) in &r.skipped {
            h.push_str(&format!("<tr><td>{}</td><td>{n}</td></tr>\n", e(why)));
        }
        h.push_str("</table>\n");
    }
    h.push_str("<h2>Sites</h2>\n<table id=\"sites\"><tr><th>site</th><th>requests</th><th>differences</th><th>PHP pages</th></tr>\n");
    for (site, st) in r.ranked_sites() {
        h.push_str(&format!(
            "<tr><td><a href=\"#site-{id}\">{name}</a></td><td>{}</td><td class=\"{}\">{}</td><td>{}</td></tr>\n",
            st.replayed,
            if st.differing > 0 { "bad" } else { "ok" },
            st.differing,
            st.php_pages,
            id = e(site),
            name = e(site),
        ));
    }
    h.push_str("</table>\n<h2>Differences</h2>\n");
    // One section per distinct request and difference, with the log
    // lines it came from: a day of traffic repeats its URLs.
    let mut sections: Vec<(Vec<usize>, usize)> = Vec::new();
    let mut index: std::collections::HashMap<String, usize> = std::collections::HashMap::new();
    let mut anchor = Vec::with_capacity(r.differences.len());
    for (i, d) in r.differences.iter().enumerate() {
        let key = format!(
            "{} {} {} {:?}",
            d.site,
            d.request.method,
            d.request.url(),
            d.fields
        );
        let n = *index.entry(key).or_insert_with(|| {
            sections.push((Vec::new(), i));
            sections.len() - 1
        });
        sections[n].0.push(d.request.line);
        anchor.push(sections[n].1);
    }
    h.push_str("<table id=\"differences\"><tr><th>site</th><th>log line</th><th>request</th><th>fields</th></tr>\n");
    for (i, d) in r.differences.iter().enumerate() {
        let fields: Vec<&str> = d.fields.iter().map(|f| f.field).collect();
        h.push_str(&format!(
            "<tr><td>{}</td><td>{}</td><td><a href=\"#d{}\"><code>{} {}</code></a></td><td>{}</td></tr>\n",
            e(&d.site),
            d.request.line,
            anchor[i],
            e(&d.request.method),
            e(&d.request.url()),
            e(&fields.join(", "))
        ));
    }
    h.push_str("</table>\n");
    let mut last_site = None;
    for (lines, i) in &sections {
        let d = &r.differences[*i];
        if last_site != Some(&d.site) {
            h.push_str(&format!("<h3 id=\"site-{0}\">{0}</h3>\n", e(&d.site)));
            last_site = Some(&d.site);
        }
        let shown: Vec<String> = lines.iter().take(20).map(|l| l.to_string()).collect();
        let more = if lines.len() > 20 {
            format!(" and {} more", lines.len() - 20)
        } else {
            String::new()
        };
        h.push_str(&format!(
            "<section id=\"d{i}\"><h4><code>{} {}</code> ({} time{}: log line{} {}{}{})</h4>\n",
            e(&d.request.method),
            e(&d.request.url()),
            lines.len(),
            if lines.len() == 1 { "" } else { "s" },
            if lines.len() == 1 { "" } else { "s" },
            shown.join(", "),
            more,
            if d.php { "; PHP page" } else { "" }
        ));
        h.push_str("<table><tr><th>field</th><th>Apache</th><th>htgate</th></tr>\n");
        for f in &d.fields {
            h.push_str(&format!(
                "<tr><td>{}</td><td>{}</td><td class=\"bad\">{}</td></tr>\n",
                e(f.field),
                e(&f.apache),
                e(&f.htgate)
            ));
        }
        h.push_str("</table>\n");
        match &d.explain {
            Some(x) => h.push_str(&format!(
                "<details open><summary>htgate explain {}</summary><pre>{}</pre></details>\n",
                e(&d.request.url()),
                e(x)
            )),
            None => h.push_str("<p>No explanation: give <code>--config</code> (htgate's htgate.toml) to see what htgate's rules did.</p>\n"),
        }
        h.push_str("</section>\n");
    }
    h.push_str("</body></html>\n");
    h
}

#[cfg(test)]
mod tests {
    use super::super::{Answer, Difference, FieldDiff, ReplayReport, Replayed, SiteStats};
    use super::*;

    fn diff(line: usize, target: &str) -> Difference {
        Difference {
            site: "a.test".into(),
            request: Replayed {
                line,
                method: "GET".into(),
                scheme: "http",
                host: "a.test".into(),
                target: target.into(),
                headers: Vec::new(),
            },
            apache: Answer::default(),
            htgate: Answer::default(),
            fields: vec![FieldDiff {
                field: "status",
                apache: "200".into(),
                htgate: "<403>".into(),
            }],
            php: false,
            explain: Some("line 2: RewriteRule <x> - [F]".into()),
        }
    }

    #[test]
    fn repeated_requests_share_one_section_and_text_is_escaped() {
        let mut r = ReplayReport::default();
        r.sites.insert(
            "a.test".into(),
            SiteStats {
                replayed: 3,
                differing: 3,
                php_pages: 0,
            },
        );
        r.differences = vec![diff(1, "/x"), diff(2, "/y"), diff(3, "/x")];
        let page = render(&r);
        assert_eq!(page.matches("<section").count(), 2);
        assert!(page.contains("(2 times: log lines 1, 3)"), "{page}");
        assert_eq!(page.matches("href=\"#d0\"").count(), 2);
        assert!(page.contains("&lt;403&gt;") && !page.contains("<403>"));
        assert!(page.contains("RewriteRule &lt;x&gt;"));
    }
}

//! The configuration of certificates on demand: what is refused, and
//! where the error points.

use super::*;

fn parse(source: &str) -> Result<Config, ConfigErrors> {
    Config::parse(&std::env::temp_dir().join("htgate.toml"), source)
}

fn file(acme: &str, sites: &str) -> String {
    format!(
        "[[listen]]\naddress = \"127.0.0.1:80\"\n{acme}\n{sites}",
        sites = sites.replace("ROOT", &std::env::temp_dir().display().to_string())
    )
}

const ACME: &str = "[acme]\ndirectory = \"https://acme.test/dir\"\nstorage = \"acme\"";

const GATE: &str = "[acme.on_demand]\nask = \"http://127.0.0.1:5555/check\"";

/// (line, message) of every error.
fn errors(src: &str) -> Vec<(usize, String)> {
    match parse(src) {
        Ok(_) => Vec::new(),
        Err(e) => e.0.into_iter().map(|e| (e.line, e.message)).collect(),
    }
}

#[test]
fn a_site_with_patterns_and_the_gate_parses_with_defaults() {
    let src = file(
        &format!("{ACME}\n{GATE}"),
        "[[site]]\nname = \"c\"\ndomains = [\"c.example\"]\nroot = \"ROOT\"\non_demand = [\"*.customer.example\", \"shop.example\"]\n\n[[site]]\nname = \"any\"\ndomains = [\"any.example\"]\nroot = \"ROOT\"\non_demand_any = true\n",
    );
    let cfg = parse(&src).unwrap_or_else(|e| panic!("{e}"));
    let gate = cfg
        .file
        .acme
        .as_ref()
        .and_then(|a| a.on_demand.as_ref())
        .expect("the gate")
        .get_ref();
    assert_eq!(
        (
            gate.max_orders,
            gate.max_orders_per_site,
            gate.rate_window_seconds,
            gate.deny_cache_seconds,
            gate.max_pending,
            gate.ask_timeout_ms,
            gate.max_pending_per_site
        ),
        (60, 10, 3600, 3600, 100, 5000, 20)
    );
    assert_eq!(cfg.file.site[0].on_demand.len(), 2);
    assert!(cfg.file.site[1].on_demand_any);
}

#[test]
fn on_demand_without_the_ask_url_is_refused_at_the_site() {
    let sites = "[[site]]\nname = \"c\"\ndomains = [\"c.example\"]\nroot = \"ROOT\"\non_demand = [\"*.customer.example\"]\n";
    for acme in [ACME, ""] {
        let got = errors(&file(acme, sites));
        let line = file(acme, sites)
            .lines()
            .position(|l| l.starts_with("name = \"c\""))
            .map(|i| i + 1);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(Some(got[0].0), line, "{got:?}");
        assert!(
            got[0].1.contains("[acme.on_demand]") && got[0].1.contains("ask"),
            "{got:?}"
        );
    }
    let any = "[[site]]\nname = \"c\"\ndomains = [\"c.example\"]\nroot = \"ROOT\"\non_demand_any = true\n";
    assert_eq!(errors(&file(ACME, any)).len(), 1);
}

#[test]
fn the_gate_itself_is_checked() {
    let sites = "[[site]]\nname = \"c\"\ndomains = [\"c.example\"]\nroot = \"ROOT\"\non_demand = [\"*.customer.example\"]\n";
    let got = errors(&file(
        &format!("{ACME}\n[acme.on_demand]\nask = \"https://ask.example/\""),
        sites,
    ));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, 7, "the ask line: {got:?}");
    assert!(got[0].1.contains("http://"), "{got:?}");
    let got = errors(&file(
        &format!("{ACME}\n{GATE}\nmax_pending = 0\nmax_orders = 0"),
        sites,
    ));
    let messages: Vec<&str> = got.iter().map(|(_, m)| m.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("max_pending = 0 is out of range")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("max_orders = 0 is out of range")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("more than max_pending")),
        "{messages:?}"
    );
    assert_eq!(got.len(), 3, "{got:?}");
    let got = errors(&file(
        &format!("{ACME}\n{GATE}\npublic_addresses = [\"203.0.113.5\", \"here\"]"),
        sites,
    ));
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(got[0].0, 8, "{got:?}");
    assert!(got[0].1.contains("`here` is not an IP address"), "{got:?}");
    let got = errors(&file(&format!("{ACME}\n{GATE}\nasks = 1"), sites));
    assert!(
        got.iter().any(|(_, m)| m.contains("unknown field")),
        "{got:?}"
    );
}

#[test]
fn patterns_are_dns_names_of_no_other_site() {
    let src = file(
        &format!("{ACME}\n{GATE}"),
        "[[site]]\nname = \"a\"\ndomains = [\"a.example\", \"*.shop.example\"]\nroot = \"ROOT\"\n\n[[site]]\nname = \"b\"\ndomains = [\"b.example\"]\nroot = \"ROOT\"\non_demand = [\"a.example\", \"*.shop.example\", \"x.shop.example\", \"192.0.2.1\", \"*.com\", \"x_y.example\", \"ok.example\"]\n\n[[site]]\nname = \"c\"\ndomains = [\"c.example\"]\nroot = \"ROOT\"\non_demand = [\"ok.example\"]\nacme = false\n",
    );
    let got = errors(&src);
    let messages: Vec<&str> = got.iter().map(|(_, m)| m.as_str()).collect();
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`a.example` is a domain of site `a`")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`*.shop.example` is a domain of site `a`")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("IP address")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("`*.com`")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("x_y.example")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("pattern of site `b` already")),
        "{messages:?}"
    );
    assert!(
        messages.iter().any(|m| m.contains("needs `acme = true`")),
        "{messages:?}"
    );
    assert!(
        messages
            .iter()
            .any(|m| m.contains("`x.shop.example` is under `*.shop.example` of site `a`")),
        "{messages:?}"
    );
    assert_eq!(got.len(), 8, "{messages:?}");
    assert!(got.iter().all(|(line, _)| *line > 1), "located: {got:?}");
}

#[test]
fn at_most_one_site_takes_every_name() {
    let src = file(
        &format!("{ACME}\n{GATE}"),
        "[[site]]\nname = \"a\"\ndomains = [\"a.example\"]\nroot = \"ROOT\"\non_demand_any = true\n\n[[site]]\nname = \"b\"\ndomains = [\"b.example\"]\nroot = \"ROOT\"\non_demand_any = true\n",
    );
    let got = errors(&src);
    assert_eq!(got.len(), 1, "{got:?}");
    assert!(got[0].1.contains("site `a` already"), "{got:?}");
}

#[test]
fn sites_from_the_cluster_store_cannot_take_what_the_file_took() {
    let src = file(
        &format!("{ACME}\n{GATE}"),
        "[[site]]\nname = \"a\"\ndomains = [\"a.example\"]\nroot = \"ROOT\"\non_demand = [\"*.customer.example\"]\non_demand_any = true\n",
    );
    let mut cfg = parse(&src).unwrap_or_else(|e| panic!("{e}"));
    let root = std::env::temp_dir().display().to_string();
    let doc = |keys: &str| {
        format!("[[site]]\nname = \"s\"\ndomains = [\"s.example\"]\nroot = \"{root}\"\n{keys}\n")
    };
    let err = cfg
        .add_store_sites(
            "etcd:/htgate/sites/s",
            &doc("on_demand = [\"*.customer.example\"]"),
        )
        .expect_err("the file's pattern");
    assert!(
        err.to_string().contains("pattern of site `a` already"),
        "{err}"
    );
    assert!(
        err.to_string().starts_with("etcd:/htgate/sites/s:5:"),
        "{err}"
    );
    let err = cfg
        .add_store_sites("etcd:/htgate/sites/s", &doc("on_demand_any = true"))
        .expect_err("the file's catch-all");
    assert!(err.to_string().contains("site `a` already"), "{err}");
    cfg.add_store_sites(
        "etcd:/htgate/sites/s",
        &doc("on_demand = [\"x.customer.example\"]"),
    )
    .unwrap_or_else(|e| {
        panic!("an exact name under another site's on-demand pattern is fine: {e}")
    });
    assert_eq!(cfg.file.site.len(), 2);
}

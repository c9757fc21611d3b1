use super::*;

fn parse(source: &str) -> Result<Config, ConfigErrors> {
    let dir = std::env::temp_dir();
    Config::parse(&dir.join("htgate.toml"), source)
}

fn root() -> String {
    std::env::temp_dir().display().to_string()
}

#[test]
fn a_full_file_parses() {
    let src = format!(
        r#"
client_https_headers = "pass"
trusted_proxies = ["10.0.0.0/8", "127.0.0.1"]
certificates_dir = "certs"

[[listen]]
address = "127.0.0.1:8080"
[[listen]]
address = "127.0.0.1:8443"
tls = true

[acme]
directory = "https://acme.test/dir"
contact = ["mailto:ops@example.net"]
storage = "acme"

[[site]]
name = "example"
domains = ["example.com", "*.example.com"]
root = "{}"
force_https = true
hsts = {{ max_age = 600, include_subdomains = true }}
"#,
        root()
    );
    let cfg = parse(&src).expect("valid");
    assert_eq!(cfg.file.client_https_headers, ClientHttpsHeaders::Pass);
    assert_eq!(cfg.listeners().len(), 2);
    let site = &cfg.file.site[0];
    assert!(site.force_https);
    assert_eq!(
        site.hsts.as_ref().map(|h| h.get_ref().header_value()),
        Some("max-age=600; includeSubDomains".to_string())
    );
    assert_eq!(
        cfg.upload_dir(site),
        Some(std::env::temp_dir().join("certs").join("example"))
    );
    assert!(cfg.file.acme.as_ref().map(|a| a.storage.is_absolute()) == Some(true));
}

#[test]
fn unknown_keys_name_the_line() {
    let src = format!(
        "[[listen]]\naddress = \"127.0.0.1:80\"\n\n[[site]]\nname = \"a\"\ndomains = [\"a.test\"]\nroot = \"{}\"\nforce_htps = true\n",
        root()
    );
    let err = parse(&src).expect_err("unknown key");
    let e = &err.0[0];
    assert_eq!(e.line, 8, "{err}");
    assert!(e.message.contains("force_htps"), "{err}");
    assert!(err.to_string().contains("htgate.toml:8:"), "{err}");
}

#[test]
fn bad_values_name_the_line() {
    let src = format!(
        "[[listen]]\naddress = \"127.0.0.1:80\"\n[[site]]\nname = \"a\"\ndomains = [\"a.test\", \"Bad..Name\"]\nroot = \"{}\"\n[[site]]\nname = \"b\"\ndomains = [\"a.test\"]\nroot = \"/nonexistent/htgate\"\n",
        root()
    );
    let err = parse(&src).expect_err("bad values");
    let text = err.to_string();
    assert!(text.contains(":5:22: `Bad..Name` has upper-case"), "{text}");
    assert!(
        text.contains(":9:12: domain `a.test` belongs to site `a` already"),
        "{text}"
    );
    assert!(text.contains(":10:8: root `/nonexistent/htgate`"), "{text}");
}

#[test]
fn a_bad_address_is_a_located_error() {
    let err = parse("[[listen]]\naddress = \"localhost\"\n").expect_err("bad address");
    assert_eq!(err.0[0].line, 2, "{err}");
}

#[test]
fn domain_syntax() {
    assert!(check_domain("example.com").is_ok());
    assert!(check_domain("*.example.com").is_ok());
    assert!(check_domain("xn--bcher-kva.example").is_ok());
    assert!(check_domain("*.com").is_err());
    assert!(check_domain("a.*.com").is_err());
    assert!(check_domain("-a.com").is_err());
    assert!(check_domain("a_b.com").is_err());
    assert!(check_domain("").is_err());
}

#[test]
fn hsts_preload_rules() {
    let src = format!(
        "[[listen]]\naddress = \"127.0.0.1:80\"\n[[site]]\nname = \"a\"\ndomains = [\"a.test\"]\nroot = \"{}\"\nhsts = {{ max_age = 60, preload = true }}\n",
        root()
    );
    let err = parse(&src).expect_err("preload");
    assert!(
        err.to_string().contains(":7:8: site `a`: hsts preload"),
        "{err}"
    );
}

#[test]
fn line_col_counts_characters() {
    assert_eq!(line_col("ab\ncd", 0), (1, 1));
    assert_eq!(line_col("ab\ncd", 4), (2, 2));
    assert_eq!(line_col("é\nx", 3), (2, 1));
}

#[test]
fn log_and_admin_keys() {
    let src = format!(
        r#"
access_log = "all.access.log"
error_log = "error.log"
log_level = "info,htaccess=debug"

[admin]
listen = "127.0.0.1:9180"

[[listen]]
address = "127.0.0.1:8080"

[[site]]
name = "a"
domains = ["a.test"]
root = "{}"
access_log = "a.access.log"
"#,
        root()
    );
    let cfg = parse(&src).expect("valid");
    let dir = std::fs::canonicalize(std::env::temp_dir()).expect("tmp");
    assert_eq!(
        cfg.file.access_log.as_ref().map(|p| p.get_ref().clone()),
        Some(dir.join("all.access.log"))
    );
    assert_eq!(
        cfg.file.site[0]
            .access_log
            .as_ref()
            .map(|p| p.get_ref().clone()),
        Some(dir.join("a.access.log"))
    );
    assert_eq!(
        cfg.file.admin.as_ref().map(|a| a.listen.get_ref().port()),
        Some(9180)
    );
}

#[test]
fn bad_log_and_admin_values_name_the_line() {
    let src = format!(
        "log_level = \"verbose\"\nerror_log = \"/nonexistent/htgate/error.log\"\n[admin]\nlisten = \"127.0.0.1:8080\"\n[[listen]]\naddress = \"127.0.0.1:8080\"\n[[site]]\nname = \"a\"\ndomains = [\"a.test\"]\nroot = \"{}\"\naccess_log = \"{}\"\n",
        root(),
        root()
    );
    let err = parse(&src).expect_err("bad values");
    let text = err.to_string();
    assert!(text.contains(":1:13: log_level `verbose`"), "{text}");
    assert!(
        text.contains(":2:13: error_log `/nonexistent/htgate/error.log`: the folder"),
        "{text}"
    );
    assert!(
        text.contains(":4:10: [admin] listen 127.0.0.1:8080 is also a [[listen]] address"),
        "{text}"
    );
    assert!(text.contains(":11:14: access_log `"), "{text}");
    assert!(text.contains("is a folder"), "{text}");

    let err = parse("[admin]\nlisten = \"127.0.0.1:9180\"\nport = 1\n").expect_err("unknown key");
    assert_eq!(err.0[0].line, 3, "{err}");
}

#[test]
fn php_settings_come_from_the_site_then_the_top_level_then_the_defaults() {
    let src = format!(
        "php_max_concurrent = 4\nphp_body_min_rate = 0\nphp_body_memory_bytes = 1024\nphp_request_buffering = false\n\n\
         [[listen]]\naddress = \"127.0.0.1:80\"\n\n\
         [[site]]\nname = \"a\"\ndomains = [\"a.test\"]\nroot = \"{r}\"\nphp_max_concurrent = 2\nphp_queue_length = 0\nphp_queue_timeout_seconds = 9\nphp_body_timeout_seconds = 7\nphp_request_buffering = true\n\n\
         [[site]]\nname = \"b\"\ndomains = [\"b.test\"]\nroot = \"{r}\"\n",
        r = root()
    );
    let cfg = parse(&src).expect("valid");
    let a = cfg.php_settings(&cfg.file.site[0]);
    let b = cfg.php_settings(&cfg.file.site[1]);
    let d = htgate_engine::php_gate::PhpSettings::default();
    assert_eq!(
        a,
        htgate_engine::php_gate::PhpSettings {
            request_buffering: true,
            body_memory_bytes: 1024,
            body_timeout: std::time::Duration::from_secs(7),
            body_min_rate: 0,
            max_concurrent: 2,
            queue_length: 0,
            queue_timeout: std::time::Duration::from_secs(9),
        }
    );
    assert_eq!(
        b,
        htgate_engine::php_gate::PhpSettings {
            request_buffering: false,
            body_memory_bytes: 1024,
            body_min_rate: 0,
            max_concurrent: 4,
            ..d.clone()
        }
    );
    // the documented defaults
    assert!(d.request_buffering);
    assert_eq!(d.body_memory_bytes, 65536);
    assert_eq!(d.body_timeout, std::time::Duration::from_secs(20));
    assert_eq!(d.body_min_rate, 500);
    assert_eq!(d.max_concurrent, 10);
    assert_eq!(d.queue_length, 50);
    assert_eq!(d.queue_timeout, std::time::Duration::from_secs(5));
}

#[test]
fn php_settings_out_of_range_name_the_line() {
    let src = format!(
        "php_body_memory_bytes = 999999999\n\n[[listen]]\naddress = \"127.0.0.1:80\"\n\n[[site]]\nname = \"a\"\ndomains = [\"a.test\"]\nroot = \"{}\"\nphp_max_concurrent = 0\nphp_queue_timeout_seconds = 0\nphp_body_timeout_seconds = 0\n",
        root()
    );
    let errs = parse(&src).expect_err("out of range").0;
    let at = |key: &str| {
        errs.iter()
            .find(|e| e.message.starts_with(key))
            .map(|e| (e.line, e.col))
    };
    assert_eq!(at("php_body_memory_bytes"), Some((1, 25)), "{errs:?}");
    assert_eq!(at("php_max_concurrent"), Some((10, 22)), "{errs:?}");
    assert_eq!(at("php_queue_timeout_seconds"), Some((11, 29)), "{errs:?}");
    assert_eq!(at("php_body_timeout_seconds"), Some((12, 28)), "{errs:?}");
    let err = parse(&src.replace("php_max_concurrent = 0", "php_max_concurrent = -1"))
        .expect_err("negative");
    assert!(err.to_string().contains(":10:"), "{err}");
}

#[test]
fn acme_profiles_parse_and_impossible_ones_are_refused() {
    let acme = "[acme]\ndirectory = \"https://acme.test/dir\"\nstorage = \"acme\"\nprofile = \"shortlived\"\n";
    let site = |extra: &str| {
        format!(
            "[[site]]\nname = \"a\"\ndomains = [\"a.test\"]\nroot = \"{}\"\n{extra}",
            root()
        )
    };
    let listen = "[[listen]]\naddress = \"127.0.0.1:80\"\n";
    let cfg = parse(&format!(
        "{listen}{acme}{}",
        site("acme_profile = \"classic\"\n")
    ))
    .expect("valid");
    assert_eq!(
        cfg.file.acme.as_ref().and_then(|a| a.profile.as_deref()),
        Some("shortlived")
    );
    assert_eq!(cfg.file.site[0].acme_profile.as_deref(), Some("classic"));

    let err = parse(&format!(
        "{listen}{acme}{}",
        site("acme = false\nacme_profile = \"classic\"\n")
    ))
    .expect_err("no automatic certificates")
    .to_string();
    assert!(
        err.contains("acme_profile is set but the site gets no automatic certificates"),
        "{err}"
    );
    let err = parse(&format!("{listen}{}", site("acme_profile = \"classic\"\n")))
        .expect_err("no [acme]")
        .to_string();
    assert!(err.contains("no [acme]"), "{err}");
    let err = parse(&format!("{listen}{acme}{}", site("acme_profile = \" \"\n")))
        .expect_err("blank")
        .to_string();
    assert!(err.contains("is not a profile name"), "{err}");
}

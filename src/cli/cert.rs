//! `htgate cert install | list | check`: certificates per site and domain,
//! in words a hosting customer understands.

use htgate_hosting::certs::{fmt_time, CertSource, CertStore, Served};
use htgate_hosting::config::Config;
use htgate_hosting::tls::validate::Trust;
use htgate_util::unix_now;
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;

/// Days before expiry from which a certificate is reported as expiring.
const EXPIRING_DAYS: i64 = 14;

fn load_config(path: &Path) -> Result<Config, ExitCode> {
    Config::load(path).map_err(|e| {
        eprintln!("{e}");
        eprintln!("error: the configuration has errors; nothing was changed");
        ExitCode::FAILURE
    })
}

/// `htgate cert install --site NAME --cert FULLCHAIN --key KEY`.
pub(super) fn install(config: &Path, site: &str, cert: &Path, key: &Path, ecdsa: bool) -> ExitCode {
    let config = match load_config(config) {
        Ok(c) => c,
        Err(code) => return code,
    };
    let Some(site_cfg) = config.site(site) else {
        let names: Vec<&str> = config
            .file
            .site
            .iter()
            .map(|s| s.name.get_ref().as_str())
            .collect();
        eprintln!(
            "error: there is no site `{site}` in {} (sites: {})",
            config.path.display(),
            names.join(", ")
        );
        return ExitCode::FAILURE;
    };
    let Some(dir) = config.upload_dir(site_cfg) else {
        eprintln!("error: site `{site}` has no folder for uploaded certificates: set `certificates_dir` at the top of {} or `certificate = {{ dir = \"...\" }}` in the site", config.path.display());
        return ExitCode::FAILURE;
    };
    let read = |p: &Path, what: &str| {
        std::fs::read(p).map_err(|e| {
            eprintln!("error: cannot read the {what} {}: {e}", p.display());
            ExitCode::FAILURE
        })
    };
    let (cert_pem, key_pem) = match (read(cert, "certificate file"), read(key, "key file")) {
        (Ok(c), Ok(k)) => (c, k),
        (Err(code), _) | (_, Err(code)) => return code,
    };
    let domains: Vec<String> = site_cfg
        .domains
        .iter()
        .map(|d| d.get_ref().clone())
        .collect();
    let trust = match htgate_hosting::run::trust(&config) {
        Ok(t) => t,
        Err(e) => {
            eprintln!("error: {e:#}");
            return ExitCode::FAILURE;
        }
    };
    // The server's user (the owner of certificates_dir) must be able to
    // read what this command, often run as root, writes.
    let owner = htgate_hosting::tls::upload::Owner::of_upload_parent(&dir);
    let site_dir = dir.clone();
    let dir = if ecdsa {
        // The second certificate of a site that has both: checked to be
        // ECDSA before anything is written.
        match htgate_hosting::tls::validate::validate(
            &cert_pem,
            &key_pem,
            &domains,
            unix_now(),
            &trust,
        ) {
            Ok(v) if !htgate_hosting::certs::is_ecdsa(&v.certified) => {
                eprintln!("error: --ecdsa needs an ECDSA key (this one is not); install an RSA certificate without --ecdsa");
                return ExitCode::FAILURE;
            }
            _ => dir.join(htgate_hosting::certs::ECDSA_SUBDIR),
        }
    } else {
        dir
    };
    let installed = htgate_hosting::tls::upload::install_owned(
        &dir,
        &cert_pem,
        &key_pem,
        &domains,
        unix_now(),
        &trust,
        owner,
    )
    .and_then(|v| {
        // the site's folder too, when the ECDSA one was made inside it
        htgate_hosting::tls::upload::give(&site_dir, owner).map(|()| v)
    });
    match installed {
        Ok(v) => {
            println!(
                "installed for site `{site}` in {}: {} issued by {}, valid until {}",
                dir.display(),
                v.leaf.subject,
                v.leaf.issuer,
                fmt_time(v.leaf.not_after)
            );
            for w in &v.warnings {
                println!("note: {w}");
            }
            println!(
                "a running htgate serves it within {} seconds",
                config.file.cert_check_seconds
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: the certificate was not installed: {e}");
            eprintln!("the certificate served until now stays in place");
            ExitCode::FAILURE
        }
    }
}

/// One line of `cert list`.
struct Row {
    site: String,
    domain: String,
    source: CertSource,
    served: Arc<Served>,
    problems: Vec<String>,
    /// When the automatic certificate is renewed: the CA's renewal window
    /// (ARI) and the chosen time, or the third-of-lifetime rule and why.
    renewal: Option<String>,
}

/// Why a certificate of a site cannot be used, if it is there but broken
/// (the server keeps the previous one; a fresh start has none).
fn upload_problem(store: &CertStore, site: usize, trust: &Trust) -> Option<String> {
    let cfg = store.sites().get(site)?;
    let dir = cfg.upload_dir.as_ref()?;
    // `cert check` runs as root, which reads everything: ask for the
    // server's user (the owner of the folder holding the upload folder).
    if let Some(owner) = htgate_hosting::tls::upload::Owner::of_upload_parent(dir) {
        let ecdsa = dir.join(htgate_hosting::certs::ECDSA_SUBDIR);
        for d in [dir.as_path(), ecdsa.as_path()] {
            let files = [
                htgate_hosting::tls::upload::CHAIN_FILE,
                htgate_hosting::tls::upload::KEY_FILE,
            ];
            for p in std::iter::once(d.to_path_buf()).chain(files.iter().map(|f| d.join(f))) {
                if !htgate_hosting::tls::upload::readable_by(&p, owner) {
                    return Some(format!(
                        "the server cannot read {} ({}): it runs as uid {}, the owner of {}; run `htgate cert install` again (it gives the files to that user) or chown them",
                        p.display(),
                        htgate_hosting::tls::upload::describe_access(&p),
                        owner.uid,
                        dir.parent().map_or_else(String::new, |p| p.display().to_string())
                    ));
                }
            }
        }
    }
    match htgate_hosting::tls::upload::load_installed(dir, trust) {
        Ok(_) => None,
        Err(e) => Some(format!(
            "the uploaded certificate in {} is not usable: {e}",
            dir.display()
        )),
    }
}

fn rows(
    config: &Config,
    store: &CertStore,
    acme: Option<&htgate_hosting::acme::AcmeManager>,
    now: i64,
) -> Vec<Row> {
    let snap = store.snapshot();
    let trust = htgate_hosting::run::trust(config).unwrap_or_else(|_| Trust::mozilla());
    let tls_listener = config.listeners().iter().any(|(_, tls)| *tls);
    let acme_status = acme.map(|a| a.status()).unwrap_or_default();
    let mut out = Vec::new();
    let on_demand = store.on_demand_names();
    for (i, site) in store.sites().iter().enumerate() {
        let broken_upload = upload_problem(store, i, &trust);
        // Its listed domains, then the names it got on demand.
        let extra = on_demand.get(&i).map_or(&[][..], Vec::as_slice);
        for domain in site.domains.iter().chain(extra) {
            // A wildcard is checked with a name it stands for.
            let probe = match domain.strip_prefix("*.") {
                Some(rest) => format!("any-name.{rest}"),
                None => domain.clone(),
            };
            let (served, source) = snap.choose(Some(&probe), now);
            let mut problems = Vec::new();
            if !tls_listener {
                problems.push("no TLS listener is configured: https:// connections are refused (the browser shows a connection error)".to_string());
            }
            if !served.covers(&probe) {
                problems.push(format!(
                    "no certificate names {domain}: visitors see \"Your connection is not private\" (NET::ERR_CERT_COMMON_NAME_INVALID); upload one with `htgate cert install`{}",
                    if site.acme && !domain.starts_with("*.") && config.file.acme.is_some() {
                        " or wait for the automatic one"
                    } else if domain.starts_with("*.") {
                        " (automatic certificates cannot cover wildcards)"
                    } else {
                        ""
                    }
                ));
            } else if served.not_after < now {
                problems.push(format!(
                    "the certificate expired on {}: visitors see NET::ERR_CERT_DATE_INVALID",
                    fmt_time(served.not_after)
                ));
            } else if served.not_after - now < EXPIRING_DAYS * 86_400 {
                problems.push(format!(
                    "the certificate expires soon ({}, in {} days)",
                    fmt_time(served.not_after),
                    (served.not_after - now) / 86_400
                ));
            }
            if let Some(p) = &broken_upload {
                problems.push(p.clone());
            }
            if let Some(up) = snap.uploaded(i) {
                if source != CertSource::Uploaded && up.not_after < now {
                    problems.push(format!(
                        "the uploaded certificate expired on {}; the {} certificate is served instead",
                        fmt_time(up.not_after),
                        source
                    ));
                }
            }
            let status = acme_status.iter().find(|s| &s.domain == domain);
            match status.and_then(|st| st.last_error.as_ref().map(|e| (st, e))) {
                Some((st, err)) => {
                    let next = st
                        .next_attempt
                        .map(|t| format!("; next try {}", fmt_time(t)))
                        .unwrap_or_default();
                    problems.push(format!(
                        "getting the automatic certificate is failing ({} attempts{next}): {err}",
                        st.failures
                    ));
                }
                None if site.acme
                    && acme.is_some()
                    && !domain.starts_with("*.")
                    && !served.covers(&probe) =>
                {
                    problems.push(
                        "the automatic certificate is pending: the running server orders it (a failure would show here)"
                            .to_string(),
                    );
                }
                None => {}
            }
            let renewal = status
                .and_then(|st| st.renewal.as_ref())
                .map(|plan| plan.describe());
            out.push(Row {
                site: site.name.clone(),
                domain: domain.clone(),
                source,
                served,
                problems,
                renewal,
            });
        }
    }
    out
}

/// A configuration and its certificates as on disk now.
struct Opened {
    config: Config,
    store: Arc<CertStore>,
    acme: Option<Arc<htgate_hosting::acme::AcmeManager>>,
}

fn open(path: &Path) -> Result<Opened, ExitCode> {
    open_loaded(load_config(path)?).map_err(|e| {
        eprintln!("error: {e:#}");
        ExitCode::FAILURE
    })
}

fn open_loaded(config: Config) -> anyhow::Result<Opened> {
    let acme = config
        .file
        .acme
        .as_ref()
        .map(|a| htgate_hosting::acme::AcmeManager::new(htgate_hosting::run::acme_settings(a)));
    let store = htgate_hosting::run::cert_store(&config, acme.clone())?;
    Ok(Opened {
        config,
        store,
        acme,
    })
}

/// `htgate cert list`: which certificate serves each domain.
pub(super) fn list(config: &Path) -> ExitCode {
    let Opened {
        config,
        store,
        acme,
    } = match open(config) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let now = unix_now();
    let snap = store.snapshot();
    let mut site = String::new();
    for row in rows(&config, &store, acme.as_deref(), now) {
        if row.site != site {
            println!("site {}", row.site);
            site = row.site.clone();
            // The second certificate of a site that has both an RSA and
            // an ECDSA one: served to clients that offer ECDSA.
            let index = store.sites().iter().position(|s| s.name == row.site);
            if let Some(e) = index.and_then(|i| snap.uploaded_ecdsa(i)) {
                println!(
                    "  {:<32} {:<9} {}  issuer: {}  expires: {}",
                    "(ECDSA slot)",
                    "uploaded",
                    e.subject,
                    e.issuer,
                    fmt_time(e.not_after)
                );
            }
        }
        println!(
            "  {:<32} {:<9} {}  issuer: {}  expires: {}",
            row.domain,
            row.source.to_string(),
            row.served.subject,
            row.served.issuer,
            fmt_time(row.served.not_after)
        );
        if let Some(r) = &row.renewal {
            println!("      {r}");
        }
        for p in &row.problems {
            println!("      problem: {p}");
        }
    }
    ExitCode::SUCCESS
}

/// `htgate cert check`: only the problems; exit status 1 when there are.
pub(super) fn check(config: &Path) -> ExitCode {
    let Opened {
        config,
        store,
        acme,
    } = match open(config) {
        Ok(v) => v,
        Err(code) => return code,
    };
    let mut n = 0;
    for row in rows(&config, &store, acme.as_deref(), unix_now()) {
        for p in &row.problems {
            println!("{} {}: {p}", row.site, row.domain);
            n += 1;
        }
        // Not a problem: when the automatic certificate is renewed.
        if let Some(r) = &row.renewal {
            println!("{} {}: {r}", row.site, row.domain);
        }
    }
    if n == 0 {
        println!("all domains have a valid certificate");
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The certificate part of `htgate check --config`: `(is_error, message)`.
/// Errors are what the server cannot use (a store that does not open, an
/// uploaded certificate it cannot read or that does not validate); the
/// rest of `cert check`'s findings (no certificate yet for a domain, one
/// that expires soon) are warnings: a new site waits for its automatic one.
pub(super) fn config_problems(config: &Config) -> Vec<(bool, String)> {
    let opened = match open_loaded(config.clone()) {
        Ok(o) => o,
        Err(e) => return vec![(true, format!("certificates: {e:#}"))],
    };
    let trust = htgate_hosting::run::trust(config).unwrap_or_else(|_| Trust::mozilla());
    let mut out = Vec::new();
    let mut broken = Vec::new();
    for (i, site) in opened.store.sites().iter().enumerate() {
        if let Some(p) = upload_problem(&opened.store, i, &trust) {
            out.push((true, format!("site `{}`: {p}", site.name)));
            broken.push(p);
        }
    }
    for row in rows(
        &opened.config,
        &opened.store,
        opened.acme.as_deref(),
        unix_now(),
    ) {
        // a broken upload is an error above, once per site, not per domain
        for p in row.problems.into_iter().filter(|p| !broken.contains(p)) {
            out.push((false, format!("site `{}` {}: {p}", row.site, row.domain)));
        }
    }
    out
}

#[cfg(test)]
mod renewal_tests {
    use super::*;

    /// A CA and, for each name, a leaf it signed carrying the Authority
    /// Key Identifier (what the RFC 9773 identifier is made of), stored as
    /// the automatic certificate of that name under `acme`.
    fn store_automatic(acme: &Path, names: &[&str]) -> Vec<String> {
        let ca_key = rcgen::KeyPair::generate().expect("key");
        let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let ca = ca_params.self_signed(&ca_key).expect("CA");
        names
            .iter()
            .map(|name| {
                let key = rcgen::KeyPair::generate().expect("key");
                let mut params =
                    rcgen::CertificateParams::new(vec![name.to_string()]).expect("params");
                params.use_authority_key_identifier_extension = true;
                let leaf = params.signed_by(&key, &ca, &ca_key).expect("leaf");
                let dir = acme.join("certificates").join(name);
                std::fs::create_dir_all(&dir).expect("mkdir");
                std::fs::write(dir.join("fullchain.pem"), leaf.pem() + &ca.pem()).expect("chain");
                std::fs::write(dir.join("privkey.pem"), key.serialize_pem()).expect("key");
                htgate_hosting::acme::certificate_id(leaf.der()).expect("has an AKI")
            })
            .collect()
    }

    /// `cert check` / `cert list` show the CA's window and the chosen
    /// time, or the third-of-lifetime rule and that the CA offers no
    /// renewal information, from what the running server stored.
    #[test]
    fn the_renewal_window_or_the_lifetime_rule_is_shown() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let root = tmp.path().join("site");
        std::fs::create_dir_all(&root).expect("root");
        let config = tmp.path().join("htgate.toml");
        std::fs::write(
            &config,
            format!(
                "[[listen]]\naddress = \"127.0.0.1:0\"\n\n[acme]\ndirectory = \"https://127.0.0.1:9/directory\"\nstorage = \"acme\"\n\n[[site]]\nname = \"a\"\ndomains = [\"a.test\", \"b.test\", \"c.test\"]\nroot = \"{}\"\n",
                root.display()
            ),
        )
        .expect("config");
        let acme = tmp.path().join("acme");
        let ids = store_automatic(&acme, &["a.test", "b.test", "c.test"]);
        let record = |id: &str, offered: bool, window: bool| {
            let mut text =
                format!("cert_id = \"{id}\"\noffered = {offered}\nnext_fetch = 1893456000\n");
            if window {
                text.push_str(
                    "renew_at = 1893456000\n[window]\nstart = 1893400000\nend = 1893500000\n",
                );
            }
            text
        };
        let write = |name: &str, text: String| {
            std::fs::write(
                acme.join("certificates")
                    .join(name)
                    .join("renewal-info.toml"),
                text,
            )
            .expect("record")
        };
        write("a.test", record(&ids[0], true, true));
        write("b.test", record(&ids[1], false, false));
        // c.test: a record about another certificate (the one replaced).
        write("c.test", record(&ids[0], true, true));

        let opened = open(&config).unwrap_or_else(|_| panic!("opens"));
        let rows = rows(
            &opened.config,
            &opened.store,
            opened.acme.as_deref(),
            unix_now(),
        );
        let renewal = |domain: &str| {
            rows.iter()
                .find(|r| r.domain == domain)
                .and_then(|r| r.renewal.clone())
                .unwrap_or_default()
        };
        assert_eq!(
            renewal("a.test"),
            "renewal at 2030-01-01 00:00:00 UTC (the CA's renewal window is 2029-12-31 08:26:40 UTC to 2030-01-01 12:13:20 UTC)"
        );
        let b = renewal("b.test");
        assert!(
            b.contains("a third of the lifetime left; the CA offers no renewal information (ARI)"),
            "{b}"
        );
        let c = renewal("c.test");
        assert!(c.contains("renewal information not fetched yet"), "{c}");
    }
}

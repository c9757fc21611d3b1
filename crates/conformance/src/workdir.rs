//! One case's work directory (the oracle's `Workdir`, `make_cert` and
//! `run_all`'s base folder): the site tree, a certificate for the case's
//! hosts, and room for a server's config and logs.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use regex::Regex;

use crate::case::{cached, case_hosts, ip_re, request_hosts, Case};

/// A case's work directory: `BASE/caseNNN-NAME/` holding `site/` (the
/// document root), `cert.pem` and `key.pem`.
#[derive(Debug, Clone)]
pub struct Workdir {
    /// `BASE/caseNNN-NAME`: server configs and logs go here.
    pub dir: PathBuf,
    /// The document root (`dir/site`).
    pub root: PathBuf,
    /// A self-signed certificate for every host of the case.
    pub cert: PathBuf,
    pub key: PathBuf,
    /// The hosts the reference virtual host answers to (the oracle's
    /// `{hosts}`): ServerName first, then ServerAliases; never empty.
    pub hosts: Vec<String>,
}

fn mkdir_755(p: &Path) -> std::io::Result<()> {
    fs::create_dir(p)?;
    fs::set_permissions(p, fs::Permissions::from_mode(0o755))
}

/// The oracle's `Workdir.__init__`: `BASE/caseNNN-NAME/site` with the
/// directories (sorted), then the files (sorted, mode 644), then the
/// certificate beside `site/`.
pub fn build(base: &Path, c: &Case, index: usize) -> Result<Workdir, String> {
    let io = |e: std::io::Error| format!("{:?}: {e}", e.kind());
    let file_name = format!("{}.case", c.stem);
    let clean: String = file_name
        .chars()
        .map(|ch| {
            if ch.is_ascii_alphanumeric() || ch == '_' || ch == '-' {
                ch
            } else {
                '_'
            }
        })
        .take(40)
        .collect();
    let dir = base.join(format!("case{index:03}-{clean}"));
    mkdir_755(&dir).map_err(io)?;
    let root = dir.join("site");
    mkdir_755(&root).map_err(io)?;
    let mkdirs = |rel: &str| -> std::io::Result<()> {
        let mut cur = root.clone();
        for part in rel.split('/') {
            cur.push(part);
            if !cur.is_dir() {
                mkdir_755(&cur)?;
            }
        }
        Ok(())
    };
    let mut dirs = c.dirs.clone();
    dirs.sort();
    for d in &dirs {
        mkdirs(d).map_err(io)?;
    }
    let mut files: Vec<_> = c.files.iter().collect();
    files.sort_by(|a, b| a.path.cmp(&b.path));
    for f in files {
        if let Some((parent, _)) = f.path.rsplit_once('/') {
            mkdirs(parent).map_err(io)?;
        }
        let p = root.join(&f.path);
        fs::write(&p, &f.content).map_err(io)?;
        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).map_err(io)?;
    }
    let (cert, key) = make_cert(&dir, c)?;
    let mut hosts = request_hosts(c);
    if hosts.is_empty() {
        hosts.push("localhost".to_string());
    }
    Ok(Workdir {
        dir,
        root,
        cert,
        key,
        hosts,
    })
}

/// The oracle's `make_cert`, with rcgen instead of openssl: a self-signed
/// P-256 certificate, CN=localhost, CA:FALSE, whose subjectAltName holds
/// 127.0.0.1 and every host of the case (IP literals as IP entries).
fn make_cert(dir: &Path, c: &Case) -> Result<(PathBuf, PathBuf), String> {
    static DNS_OK: OnceLock<Regex> = OnceLock::new();
    let dns_ok = cached(&DNS_OK, r"^[a-z0-9*_.-]+$");
    let fail = |e: &dyn std::fmt::Display| format!("cannot make a certificate: {e}");
    let mut params = rcgen::CertificateParams::default();
    let mut dn = rcgen::DistinguishedName::new();
    dn.push(rcgen::DnType::CommonName, "localhost");
    params.distinguished_name = dn;
    params.is_ca = rcgen::IsCa::ExplicitNoCa;
    params.subject_alt_names = vec![rcgen::SanType::IpAddress([127, 0, 0, 1].into())];
    for h in case_hosts(c) {
        if ip_re().is_match(&h) {
            // openssl rejects an "IP:" entry that is not an address.
            let ip = h.trim_matches(['[', ']']).parse().map_err(|e| fail(&e))?;
            params.subject_alt_names.push(rcgen::SanType::IpAddress(ip));
        } else if dns_ok.is_match(&h) {
            let name = h.clone().try_into().map_err(|e| fail(&e))?;
            params.subject_alt_names.push(rcgen::SanType::DnsName(name));
        }
    }
    let key = rcgen::KeyPair::generate().map_err(|e| fail(&e))?;
    let cert = params.self_signed(&key).map_err(|e| fail(&e))?;
    let (cert_path, key_path) = (dir.join("cert.pem"), dir.join("key.pem"));
    // World-readable: a throwaway test key, and Apache started as root
    // reads it after dropping to www-data.
    let write = |p: &Path, s: String| {
        fs::write(p, s)
            .and_then(|_| fs::set_permissions(p, fs::Permissions::from_mode(0o644)))
            .map_err(|e| fail(&e))
    };
    write(&cert_path, cert.pem())?;
    write(&key_path, key.serialize_pem())?;
    Ok((cert_path, key_path))
}

/// The work directories' parent: a real path (so that `{root}` replacement
/// matches what the server reports) made only of characters that need no
/// quoting in a command template, as the oracle's `run_all` ensures; mode
/// 755 so that a server dropping privileges can read the sites.
pub fn make_base() -> Result<tempfile::TempDir, String> {
    static SAFE: OnceLock<Regex> = OnceLock::new();
    let safe = cached(&SAFE, r"^[A-Za-z0-9_./+-]+$");
    let mk = |dir: Option<&Path>| {
        let mut b = tempfile::Builder::new();
        b.prefix("htgate-conformance-");
        match dir {
            Some(d) => b.tempdir_in(d),
            None => b.tempdir(),
        }
        .map_err(|e| format!("cannot make a temporary folder: {e}"))
    };
    let mut base = mk(None)?;
    let real = fs::canonicalize(base.path()).map_err(|e| e.to_string())?;
    if !safe.is_match(&real.to_string_lossy()) {
        base = mk(Some(Path::new("/tmp")))?;
    }
    fs::set_permissions(base.path(), fs::Permissions::from_mode(0o755))
        .map_err(|e| format!("cannot chmod {}: {e}", base.path().display()))?;
    Ok(base)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::case::parse_case_bytes;

    #[test]
    fn workdir_holds_the_site_and_a_certificate() {
        let text = "x\n-- site/.htaccess --\n# nothing\n-- site/a/b.html --\n-- site/empty/ --\n\
                    -- requests --\nGET http://Www.Example.com/\nGET https://127.0.0.1/\n";
        let c = parse_case_bytes(text.as_bytes(), "w.case", "w.x").expect("parses");
        let base = tempfile::tempdir().expect("tempdir");
        let wd = build(base.path(), &c, 7).expect("workdir");
        assert_eq!(wd.root, base.path().join("case007-w_x_case/site"));
        assert_eq!(
            fs::read(wd.root.join(".htaccess")).expect("read"),
            b"# nothing\n"
        );
        assert_eq!(
            fs::read(wd.root.join("a/b.html")).expect("read"),
            b"/a/b.html\n"
        );
        assert!(wd.root.join("empty").is_dir());
        let mode = fs::metadata(wd.root.join("a/b.html"))
            .expect("meta")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o644);
        let pem = fs::read_to_string(&wd.cert).expect("cert");
        assert!(pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(fs::read_to_string(&wd.key)
            .expect("key")
            .contains("PRIVATE KEY"));
        assert_eq!(
            case_hosts(&c),
            vec!["127.0.0.1", "localhost", "www.example.com"]
        );
        assert_eq!(wd.hosts, vec!["www.example.com", "127.0.0.1"]);
    }
}

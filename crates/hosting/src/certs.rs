//! Which certificate answers a TLS handshake.
//!
//! Per SNI name: the site's uploaded certificate when it is valid now and
//! covers the name (exact names before wildcards, by the site lookup), else
//! the site's automatic (ACME) certificate for that name, else the shared
//! default certificate.  No SNI: the shared default certificate.
//!
//! The choice is made per handshake from an immutable snapshot (arc-swap),
//! so expiry is noticed at the next handshake and a reload never blocks a
//! handshake.  Files are re-read only when their identity (inode, size,
//! mtime) changed; a broken file on disk never replaces a working
//! certificate in memory.

use super::routing::DomainMap;
use crate::tls::validate::{name_matches, Trust, ValidatedCert};
use arc_swap::ArcSwap;
use rustls::sign::CertifiedKey;
use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// Where a served certificate came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CertSource {
    Uploaded,
    Automatic,
    Shared,
}

impl std::fmt::Display for CertSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            CertSource::Uploaded => "uploaded",
            CertSource::Automatic => "automatic",
            CertSource::Shared => "shared",
        })
    }
}

/// A certificate ready to serve, with the facts `cert list` shows.
#[derive(Debug)]
pub struct Served {
    pub certified: Arc<CertifiedKey>,
    pub names: Vec<String>,
    pub subject: String,
    pub issuer: String,
    pub not_before: i64,
    pub not_after: i64,
}

impl Served {
    pub(crate) fn from_validated(v: &ValidatedCert) -> Served {
        Served {
            certified: v.certified.clone(),
            names: v.leaf.dns_names.clone(),
            subject: v.leaf.subject.clone(),
            issuer: v.leaf.issuer.clone(),
            not_before: v.leaf.not_before,
            not_after: v.leaf.not_after,
        }
    }

    /// A chain and key taken as they are (the shared default certificate
    /// may be self-signed).
    pub(crate) fn from_chain(
        chain: Vec<rustls_pki_types::CertificateDer<'static>>,
        key: rustls_pki_types::PrivateKeyDer<'static>,
    ) -> Result<Served, htgate_server::tls::TlsError> {
        let (names, subject, issuer, not_before, not_after) = match chain.first() {
            Some(leaf) => leaf_facts(leaf)?,
            None => return Err(htgate_server::tls::TlsError::EmptyChain),
        };
        Ok(Served {
            certified: htgate_server::tls::certified_key(chain, key)?,
            names,
            subject,
            issuer,
            not_before,
            not_after,
        })
    }

    /// Valid at `now` (unix seconds).
    pub(crate) fn valid_at(&self, now: i64) -> bool {
        self.not_before <= now && now <= self.not_after
    }

    pub fn covers(&self, host: &str) -> bool {
        self.names.iter().any(|n| name_matches(n, host))
    }
}

/// What a site contributes to certificate selection.
#[derive(Debug, Clone)]
pub struct SiteCertConfig {
    pub name: String,
    pub domains: Vec<String>,
    /// The folder of its uploaded certificate.
    pub upload_dir: Option<PathBuf>,
    /// Whether its exact domains get automatic certificates.
    pub acme: bool,
    /// Names beyond `domains` it takes certificates for on demand.
    pub on_demand: Vec<String>,
    /// It takes every name no site lists or matches, on demand.
    pub on_demand_any: bool,
}

/// One consistent view, swapped as a whole.
pub struct CertSnapshot {
    /// Shared by every snapshot of one store: only the certificates change.
    sites: Arc<DomainMap<usize>>,
    uploaded: Vec<Option<Arc<Served>>>,
    automatic: HashMap<String, Arc<Served>>,
    default: Arc<Served>,
}

impl CertSnapshot {
    /// The certificate for a handshake naming `sni` at `now`, for a client
    /// that can (`ecdsa`) or cannot verify ECDSA signatures.
    pub fn choose(&self, sni: Option<&str>, now: i64) -> (Arc<Served>, CertSource) {
        self.choose_for(sni, now, false)
    }

    /// As [`CertSnapshot::choose`]; a site's ECDSA upload goes first to
    /// clients that offer an ECDSA signature scheme (smaller, faster
    /// handshakes), its main upload to the others.
    pub(crate) fn choose_for(
        &self,
        sni: Option<&str>,
        now: i64,
        ecdsa: bool,
    ) -> (Arc<Served>, CertSource) {
        let Some(name) = sni else {
            return (self.default.clone(), CertSource::Shared);
        };
        let name = name.trim_end_matches('.').to_ascii_lowercase();
        if let Some(&i) = self.sites.lookup(&name) {
            let variants: &[usize] = if ecdsa { &[ECDSA, MAIN] } else { &[MAIN] };
            for &v in variants {
                if let Some(Some(up)) = self.uploaded.get(slot(i, v)) {
                    if up.valid_at(now) && up.covers(&name) {
                        return (up.clone(), CertSource::Uploaded);
                    }
                }
            }
            if let Some(auto) = self.automatic.get(&name) {
                if auto.valid_at(now) {
                    return (auto.clone(), CertSource::Automatic);
                }
            }
        }
        (self.default.clone(), CertSource::Shared)
    }

    /// The uploaded certificate of site number `i`, valid or not.
    pub fn uploaded(&self, i: usize) -> Option<&Arc<Served>> {
        self.uploaded.get(slot(i, MAIN)).and_then(|u| u.as_ref())
    }

    /// The ECDSA upload of site number `i` (its `ecdsa/` folder).
    pub fn uploaded_ecdsa(&self, i: usize) -> Option<&Arc<Served>> {
        self.uploaded.get(slot(i, ECDSA)).and_then(|u| u.as_ref())
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileKey {
    ino: u64,
    size: u64,
    mtime: i64,
    mtime_ns: i64,
}

fn file_key(path: &Path) -> Option<FileKey> {
    let m = std::fs::metadata(path).ok()?;
    Some(FileKey {
        ino: m.ino(),
        size: m.size(),
        mtime: m.mtime(),
        mtime_ns: m.mtime_nsec(),
    })
}

/// A site's two upload slots: the main certificate (any key type) in its
/// upload folder, and an optional ECDSA one in the `ecdsa/` folder inside
/// it, for sites that have both an RSA and an ECDSA certificate.
const MAIN: usize = 0;
const ECDSA: usize = 1;
pub const ECDSA_SUBDIR: &str = "ecdsa";
/// How the ECDSA slot of a site is named to the upload hook and in the
/// cluster store (`blog@ecdsa`; `@` is never in a site name).
pub(crate) const ECDSA_SLOT_SUFFIX: &str = "@ecdsa";

fn slot(site: usize, variant: usize) -> usize {
    site * 2 + variant
}

/// The files of an upload folder.
pub(crate) const UPLOAD_CHAIN: &str = "fullchain.pem";
pub(crate) const UPLOAD_KEY: &str = "privkey.pem";

/// Told the name of a site whose upload folder changed.
pub(crate) type UploadHook = Arc<dyn Fn(&str) + Send + Sync>;

/// Reads certificates from disk into snapshots.
pub struct CertStore {
    sites: Vec<SiteCertConfig>,
    default: Arc<Served>,
    trust: Trust,
    acme: Option<Arc<crate::acme::AcmeManager>>,
    state: Mutex<StoreState>,
    current: ArcSwap<CertSnapshot>,
    /// Told the slot's name (the site's, or `site@ecdsa`) whenever an
    /// upload folder's files changed (the cluster shares uploads this way).
    upload_hook: std::sync::OnceLock<UploadHook>,
    /// Given the names a site takes on demand that have no certificate
    /// yet, at their handshake.
    on_demand: std::sync::OnceLock<Arc<crate::acme::OnDemand>>,
}

/// The identity of an upload folder's two files when last read, and the
/// certificate they gave (None: none, or never a usable one).
type UploadSlot = (Option<(FileKey, FileKey)>, Option<Arc<Served>>);

#[derive(Default)]
struct StoreState {
    /// Per site.
    uploaded: Vec<UploadSlot>,
    automatic: HashMap<String, Arc<Served>>,
    /// Upload folders whose files the server may not read, reported once
    /// until that changes (the check runs every `cert_check_seconds`).
    unreadable: std::collections::HashSet<PathBuf>,
}

impl CertStore {
    /// A store for `sites`; reads everything once.
    pub fn new(
        sites: Vec<SiteCertConfig>,
        default: Arc<Served>,
        trust: Trust,
        acme: Option<Arc<crate::acme::AcmeManager>>,
    ) -> Arc<CertStore> {
        let mut map = DomainMap::default();
        for (i, s) in sites.iter().enumerate() {
            for d in &s.domains {
                map.insert(d, i);
            }
            for p in &s.on_demand {
                map.insert_on_demand(p, i);
            }
            if s.on_demand_any {
                map.set_catch_all(i);
            }
        }
        let store = Arc::new(CertStore {
            current: ArcSwap::from_pointee(CertSnapshot {
                sites: Arc::new(map),
                uploaded: vec![None; sites.len() * 2],
                automatic: HashMap::new(),
                default: default.clone(),
            }),
            state: Mutex::new(StoreState {
                uploaded: vec![(None, None); sites.len() * 2],
                automatic: HashMap::new(),
                unreadable: Default::default(),
            }),
            sites,
            default,
            trust,
            acme,
            upload_hook: std::sync::OnceLock::new(),
            on_demand: std::sync::OnceLock::new(),
        });
        store.refresh();
        store.refresh_automatic_all();
        store
    }

    pub fn snapshot(&self) -> Arc<CertSnapshot> {
        self.current.load_full()
    }

    pub fn sites(&self) -> &[SiteCertConfig] {
        &self.sites
    }

    pub fn trust(&self) -> &Trust {
        &self.trust
    }

    /// Hands names without a certificate that a site takes on demand to
    /// `on_demand` (once).
    pub(crate) fn set_on_demand(&self, on_demand: Arc<crate::acme::OnDemand>) {
        let _ = self.on_demand.set(on_demand);
    }

    /// The certificate for a handshake (the resolver of every TLS
    /// listener): [`CertSnapshot::choose_for`], and a name a site takes on
    /// demand that got the shared certificate is handed to the on-demand
    /// queue, so a later handshake gets its own.  Never blocks.
    pub fn resolve_handshake(&self, sni: Option<&str>, now: i64, ecdsa: bool) -> Arc<Served> {
        let snap = self.snapshot();
        let (served, source) = snap.choose_for(sni, now, ecdsa);
        if let (CertSource::Shared, Some(od), Some(sni)) = (source, self.on_demand.get(), sni) {
            let name = sni.trim_end_matches('.').to_ascii_lowercase();
            if let Some((&i, crate::routing::Tier::OnDemand)) = snap.sites.lookup_tier(&name) {
                if let Some(site) = self.sites.get(i) {
                    od.request(&name, &site.name);
                }
            }
        }
        served
    }

    /// Sets the hook told about changed upload folders (once).
    pub(crate) fn set_upload_hook(&self, hook: UploadHook) {
        let _ = self.upload_hook.set(hook);
    }

    /// Re-reads upload folders whose files changed, and publishes a new
    /// snapshot.  Called periodically and after `cert install`.
    pub fn refresh(&self) {
        let mut changed: Vec<String> = Vec::new();
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        let now = htgate_util::unix_now();
        for (i, site) in self.sites.iter().enumerate() {
            let Some(main_dir) = &site.upload_dir else {
                continue;
            };
            for variant in [MAIN, ECDSA] {
                let (dir, label) = match variant {
                    MAIN => (main_dir.clone(), site.name.clone()),
                    _ => (
                        main_dir.join(ECDSA_SUBDIR),
                        format!("{}{ECDSA_SLOT_SUFFIX}", site.name),
                    ),
                };
                // Permission denied looks like "no files" to the refresh
                // below: say it (the server's user cannot read what root
                // installed, for one), once.
                let denied = [UPLOAD_CHAIN, UPLOAD_KEY].iter().find_map(|f| {
                    let p = dir.join(f);
                    match std::fs::metadata(&p).and_then(|_| std::fs::File::open(&p)) {
                        Err(e) if e.kind() == std::io::ErrorKind::PermissionDenied => Some(p),
                        _ => None,
                    }
                });
                match denied {
                    Some(p) => {
                        if state.unreadable.insert(dir.clone()) {
                            tracing::error!(
                                site = %site.name,
                                "the server cannot read {} ({}): the uploaded certificate is not served; the files and their folder must be readable by the user htgate runs as (`htgate cert install` gives them to the owner of the folder holding the upload folder)",
                                p.display(),
                                crate::tls::upload::describe_access(&p)
                            );
                        }
                    }
                    None => {
                        state.unreadable.remove(&dir);
                    }
                }
                let Some(entry) = state.uploaded.get_mut(slot(i, variant)) else {
                    continue;
                };
                if self.refresh_slot(site, &dir, variant, entry, now) {
                    changed.push(label);
                }
            }
        }
        self.publish(&state);
        drop(state);
        if let Some(hook) = self.upload_hook.get() {
            for site in &changed {
                hook(site);
            }
        }
    }

    /// Re-reads one upload slot if its files changed; `true` if they did.
    fn refresh_slot(
        &self,
        site: &SiteCertConfig,
        dir: &Path,
        variant: usize,
        slot: &mut UploadSlot,
        now: i64,
    ) -> bool {
        let keys = file_key(&dir.join(UPLOAD_CHAIN)).zip(file_key(&dir.join(UPLOAD_KEY)));
        if keys == slot.0 {
            return false;
        }
        let what = if variant == ECDSA {
            "ECDSA certificate"
        } else {
            "certificate"
        };
        match keys {
            None => {
                if slot.1.is_some() {
                    tracing::warn!(
                        site = %site.name,
                        "the uploaded {what} was removed from {}: serving the site's other certificates instead",
                        dir.display()
                    );
                }
                *slot = (None, None);
            }
            Some(k) => match crate::tls::upload::load_installed(dir, &self.trust) {
                Ok(Some(v)) if variant == ECDSA && !is_ecdsa(&v.certified) => {
                    tracing::error!(
                        site = %site.name,
                        "the certificate in {} does not have an ECDSA key, not served from there (put RSA certificates in the upload folder itself)",
                        dir.display()
                    );
                    htgate_telemetry::metrics::reload("certificate", false);
                    slot.0 = Some(k);
                }
                Ok(Some(v)) => {
                    let served = Served::from_validated(&v);
                    tracing::info!(
                        site = %site.name,
                        subject = %served.subject,
                        "serving the uploaded {what} from {} (expires {})",
                        dir.display(),
                        fmt_time(served.not_after)
                    );
                    if !served.valid_at(now) {
                        tracing::warn!(site = %site.name, "the uploaded {what} is not valid now (expired {}): serving the site's other certificates instead", fmt_time(served.not_after));
                    }
                    htgate_telemetry::metrics::reload("certificate", true);
                    *slot = (Some(k), Some(Arc::new(served)));
                }
                Ok(None) => *slot = (Some(k), None),
                Err(e) => {
                    // Keep serving what worked; remember the identity so
                    // the same broken files are not re-read every time.
                    tracing::error!(
                        site = %site.name,
                        "the certificate files in {} are not usable, keeping the previous certificate: {e}",
                        dir.display()
                    );
                    htgate_telemetry::metrics::reload("certificate", false);
                    slot.0 = Some(k);
                }
            },
        }
        true
    }

    /// Reloads the automatic certificate of `domain` (after issuance or
    /// renewal).
    pub fn refresh_automatic(&self, domain: &str) {
        let Some(acme) = &self.acme else { return };
        let Ok(mut state) = self.state.lock() else {
            return;
        };
        if let Some(stored) = acme.stored(domain) {
            match htgate_server::tls::certified_key(stored.chain.clone(), stored.key.clone_key()) {
                Ok(ck) => {
                    let names = vec![domain.to_string()];
                    let issuer = stored_issuer(&stored.chain);
                    state.automatic.insert(
                        domain.to_string(),
                        Arc::new(Served {
                            certified: ck,
                            names,
                            subject: format!("CN={domain}"),
                            issuer,
                            not_before: stored.not_before,
                            not_after: stored.not_after,
                        }),
                    );
                    htgate_telemetry::metrics::reload("certificate", true);
                }
                Err(e) => {
                    htgate_telemetry::metrics::reload("certificate", false);
                    tracing::error!(%domain, "the stored automatic certificate is not usable: {e}")
                }
            }
        }
        self.publish(&state);
    }

    fn refresh_automatic_all(&self) {
        for d in self.automatic_domains() {
            self.refresh_automatic(&d);
        }
    }

    /// The exact domains that get automatic certificates.
    pub(crate) fn automatic_domains(&self) -> Vec<String> {
        if self.acme.is_none() {
            return Vec::new();
        }
        let mut out: Vec<String> = self
            .sites
            .iter()
            .filter(|s| s.acme)
            .flat_map(|s| s.domains.iter())
            .filter(|d| !d.starts_with("*."))
            .cloned()
            .collect();
        // Names ordered on demand before (this run or an earlier one) are
        // renewed as long as a site still takes them.
        if let Some(acme) = &self.acme {
            let snap = self.snapshot();
            out.extend(
                crate::acme::stored_domains(&acme.settings().storage)
                    .into_iter()
                    .filter(|d| {
                        matches!(
                            snap.sites.lookup_tier(d),
                            Some((_, crate::routing::Tier::OnDemand))
                        )
                    }),
            );
        }
        out.sort();
        out.dedup();
        out
    }

    /// The names sites got certificates for on demand, by site number
    /// (the certificates loaded now whose names a site takes on demand),
    /// for `cert list` and the metrics.  From memory: no file is read.
    pub fn on_demand_names(&self) -> HashMap<usize, Vec<String>> {
        let snap = self.snapshot();
        let mut out: HashMap<usize, Vec<String>> = HashMap::new();
        for name in snap.automatic.keys() {
            if let Some((&site, crate::routing::Tier::OnDemand)) = snap.sites.lookup_tier(name) {
                out.entry(site).or_default().push(name.clone());
            }
        }
        for names in out.values_mut() {
            names.sort();
        }
        out
    }

    fn publish(&self, state: &StoreState) {
        let old = self.current.load();
        self.current.store(Arc::new(CertSnapshot {
            sites: old.sites.clone(),
            uploaded: state.uploaded.iter().map(|(_, s)| s.clone()).collect(),
            automatic: state.automatic.clone(),
            default: self.default.clone(),
        }));
    }
}

/// Whether a certified key signs with ECDSA.
pub fn is_ecdsa(key: &CertifiedKey) -> bool {
    key.key.algorithm() == rustls::SignatureAlgorithm::ECDSA
}

type LeafFacts = (Vec<String>, String, String, i64, i64);

/// Names, subject, issuer and validity of a leaf certificate.
fn leaf_facts(
    leaf: &rustls_pki_types::CertificateDer<'static>,
) -> Result<LeafFacts, htgate_server::tls::TlsError> {
    use x509_parser::extensions::GeneralName;
    let (_, x) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| htgate_server::tls::TlsError::BadCertificate(e.to_string()))?;
    let mut names: Vec<String> = Vec::new();
    if let Ok(Some(san)) = x.subject_alternative_name() {
        for n in &san.value.general_names {
            if let GeneralName::DNSName(d) = n {
                names.push(d.to_ascii_lowercase());
            }
        }
    }
    Ok((
        names,
        x.subject().to_string(),
        x.issuer().to_string(),
        x.validity().not_before.timestamp(),
        x.validity().not_after.timestamp(),
    ))
}

fn stored_issuer(chain: &[rustls_pki_types::CertificateDer<'static>]) -> String {
    chain
        .first()
        .and_then(|c| {
            x509_parser::parse_x509_certificate(c.as_ref())
                .ok()
                .map(|(_, x)| x.issuer().to_string())
        })
        .unwrap_or_default()
}

/// An RFC 3339 date for logs and `cert list`.
pub use htgate_util::fmt_time;

impl std::fmt::Debug for CertStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CertStore")
            .field("sites", &self.sites.len())
            .finish()
    }
}

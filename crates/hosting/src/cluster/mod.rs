//! Several nodes behind one load balancer, sharing certificates, ACME work
//! and sites through a store (etcd, or a shared folder).
//!
//! What is shared, under the store's prefix:
//!
//! | key | value | written by |
//! | --- | --- | --- |
//! | `certs/<domain>` | automatic certificate (JSON: chain + key PEM) | the node that ordered it |
//! | `account` | the ACME account (`account.toml`'s text) | the first node that made one |
//! | `uploads/<site>` | a customer's uploaded certificate (JSON) | the node it was uploaded to |
//! | `challenges/<token>` | HTTP-01 key authorization, bound to the order's lock | the ordering node |
//! | `sites/<name>` | a `[[site]]` document (TOML) | `htgate site publish` |
//! | `locks/acme/<domain>` | the ACME lock (etcd lock API / lock file) | the ordering node |
//! | `owners/acme/<domain>` | which node holds that lock, bound to it | the ordering node |
//!
//! Every node keeps a local copy of what it got (the ACME storage folder,
//! the upload folders, the cache folder for sites), so a node whose store
//! is unreachable, even across a restart, keeps serving its last good
//! state; `htgate_cluster_store_up` and the error log say so.
//!
//! Modules: `store` (the interface), `folder` and `etcd` (the back ends),
//! `watcher` (list + watch with reconnection), and this file (the keys and
//! what the ACME manager and the server ask of the cluster).

pub mod folder;
pub mod store;
pub mod watcher;

#[cfg(feature = "etcd")]
pub mod etcd;

use crate::acme::{Challenges, StoredCert};
use crate::config::ClusterConfig;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
pub use store::Store;
pub(crate) use store::{Event, HeldLock, StoreError};

/// The key prefixes (relative to the store's own prefix).
pub mod keys {
    pub(crate) const CERTS: &str = "certs/";
    pub(crate) const ACCOUNT: &str = "account";
    pub(crate) const UPLOADS: &str = "uploads/";
    pub(crate) const CHALLENGES: &str = "challenges/";
    pub const SITES: &str = "sites/";
    pub(crate) const OWNERS: &str = "owners/";
}

/// A certificate chain and its key as stored (automatic or uploaded).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct CertPair {
    pub chain_pem: String,
    pub key_pem: String,
}

impl CertPair {
    pub(crate) fn encode(&self) -> Vec<u8> {
        serde_json::to_vec(self).unwrap_or_default()
    }

    pub(crate) fn decode(bytes: &[u8]) -> Result<CertPair, String> {
        serde_json::from_slice(bytes).map_err(|e| format!("not a stored certificate: {e}"))
    }
}

/// One node's handle on the shared store.
pub struct Cluster {
    store: Arc<dyn Store>,
    node: String,
    lock_ttl: Duration,
    timeout: Duration,
    /// Every node's pending HTTP-01 answers (this node's own included),
    /// filled by the challenge watch; served by the HTTP front.
    challenges: Challenges,
    /// The sites documents from the store, by site name.
    sites: Mutex<BTreeMap<String, String>>,
    cache: Option<PathBuf>,
    up: AtomicBool,
    /// Bounds the store look-ups for unknown challenge tokens: anyone can
    /// ask for `/.well-known/acme-challenge/<anything>`, and a flood of
    /// made-up tokens must not become a flood of etcd requests.
    lookups: tokio::sync::Semaphore,
}

/// Store look-ups for unknown challenge tokens in flight at once, per node.
const CHALLENGE_LOOKUPS: usize = 8;

impl Cluster {
    /// The cluster of a `[cluster]` table.  Connecting happens on first
    /// use, so this succeeds while the store is down.
    pub fn from_config(c: &ClusterConfig) -> anyhow::Result<Arc<Cluster>> {
        let timeout = Duration::from_millis(c.timeout_ms.max(1));
        let store: Arc<dyn Store> = if let Some(folder) = &c.folder {
            std::fs::create_dir_all(folder.get_ref()).map_err(|e| {
                anyhow::anyhow!("[cluster] folder {}: {e}", folder.get_ref().display())
            })?;
            Arc::new(folder::FolderStore::new(
                folder.get_ref(),
                Duration::from_millis(250),
            ))
        } else {
            etcd_store(c, timeout)?
        };
        let node = c.node.clone().unwrap_or_else(host_name);
        Ok(Cluster::new(
            store,
            node,
            Duration::from_secs(c.lock_ttl_seconds.max(2)),
            timeout,
            c.cache.clone(),
        ))
    }

    pub fn new(
        store: Arc<dyn Store>,
        node: String,
        lock_ttl: Duration,
        timeout: Duration,
        cache: Option<PathBuf>,
    ) -> Arc<Cluster> {
        let cluster = Cluster {
            store,
            node,
            lock_ttl,
            timeout,
            challenges: Challenges::default(),
            sites: Mutex::new(BTreeMap::new()),
            cache,
            up: AtomicBool::new(false),
            lookups: tokio::sync::Semaphore::new(CHALLENGE_LOOKUPS),
        };
        cluster.load_cached_sites();
        htgate_telemetry::metrics::cluster_store_up(false);
        Arc::new(cluster)
    }

    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    pub fn challenges(&self) -> Challenges {
        self.challenges.clone()
    }

    /// Called by the watcher as watches come and go.
    pub(crate) fn set_up(&self, up: bool) {
        let was = self.up.swap(up, Ordering::Relaxed);
        htgate_telemetry::metrics::cluster_store_up(up);
        if was && !up {
            tracing::error!(target: "cluster", store = %self.store.describe(), "the cluster store is unreachable: serving the last good certificates and sites until it is back");
        } else if !was && up {
            tracing::info!(target: "cluster", store = %self.store.describe(), node = %self.node, "connected to the cluster store");
        }
    }

    /// Takes the cluster-wide lock for ordering `domain`; waits while
    /// another node holds it (at most `wait`).
    pub(crate) async fn acme_lock(
        &self,
        domain: &str,
        wait: Duration,
    ) -> Result<Box<dyn HeldLock>, StoreError> {
        let lock = self
            .store
            .lock(&format!("acme/{domain}"), self.lock_ttl, wait)
            .await?;
        // Who holds it, for operators (and gone with the lock).
        if let Err(e) = lock
            .put_bound(
                &format!("{}acme/{domain}", keys::OWNERS),
                self.node.as_bytes(),
            )
            .await
        {
            tracing::warn!(target: "cluster", domain, "cannot record the lock's owner: {e}");
        }
        tracing::info!(target: "cluster", domain, node = %self.node, "holding the cluster ACME lock");
        Ok(lock)
    }

    /// The automatic certificate another node stored for `domain`.
    pub(crate) async fn shared_cert(&self, domain: &str) -> Result<Option<StoredCert>, StoreError> {
        let Some(bytes) = self.store.get(&format!("{}{domain}", keys::CERTS)).await? else {
            return Ok(None);
        };
        match CertPair::decode(&bytes)
            .and_then(|p| StoredCert::from_pem(domain, p.chain_pem, p.key_pem))
        {
            Ok(cert) => Ok(Some(cert)),
            Err(reason) => {
                tracing::warn!(target: "cluster", domain, %reason, "the certificate in the cluster store is unusable; ordering a new one");
                Ok(None)
            }
        }
    }

    pub(crate) async fn publish_cert(&self, cert: &StoredCert) -> Result<(), StoreError> {
        let pair = CertPair {
            chain_pem: cert.chain_pem.clone(),
            key_pem: cert.key_pem.clone(),
        };
        self.store
            .put(&format!("{}{}", keys::CERTS, cert.domain), &pair.encode())
            .await
    }

    pub(crate) async fn shared_account(&self) -> Result<Option<Vec<u8>>, StoreError> {
        self.store.get(keys::ACCOUNT).await
    }

    pub(crate) async fn publish_account(&self, text: &[u8]) -> Result<(), StoreError> {
        self.store.put(keys::ACCOUNT, text).await
    }

    /// The answer to an HTTP-01 request: from the watch, else asked of the
    /// store directly (the CA may ask before the watch delivered it).
    pub(crate) async fn challenge_answer(&self, token: &str) -> Option<String> {
        if let Some(a) = self.challenges.answer(token) {
            return Some(a);
        }
        // ACME tokens are base64url, at least 128 bits (RFC 8555 8.3).
        if !(22..=128).contains(&token.len())
            || !token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        {
            return None;
        }
        let _permit = self.lookups.try_acquire().ok()?;
        let key = format!("{}{token}", keys::CHALLENGES);
        match tokio::time::timeout(self.timeout, self.store.get(&key)).await {
            Ok(Ok(Some(v))) => String::from_utf8(v).ok(),
            _ => None,
        }
    }

    /// The site documents, by name (the last good state).
    pub fn sites(&self) -> BTreeMap<String, String> {
        self.sites.lock().map(|s| s.clone()).unwrap_or_default()
    }

    /// Replaces the site documents; `true` if they changed.  They are kept
    /// in the cache folder for the next start.
    pub(crate) fn set_sites(&self, sites: BTreeMap<String, String>) -> bool {
        let Ok(mut current) = self.sites.lock() else {
            return false;
        };
        if *current == sites {
            return false;
        }
        *current = sites;
        if let Some(dir) = &self.cache {
            if let Err(e) = save_cache(dir, &current) {
                tracing::warn!(target: "cluster", folder = %dir.display(), "cannot keep the cluster's sites for the next start: {e}");
            }
        }
        true
    }

    fn load_cached_sites(&self) {
        let Some(dir) = &self.cache else { return };
        let Ok(entries) = std::fs::read_dir(dir.join("sites")) else {
            return;
        };
        let mut sites = BTreeMap::new();
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            let Some(site) = name.strip_suffix(".toml") else {
                continue;
            };
            if let Ok(text) = std::fs::read_to_string(e.path()) {
                sites.insert(site.to_string(), text);
            }
        }
        if let Ok(mut s) = self.sites.lock() {
            *s = sites;
        }
    }

    /// Stores a site document after checking it against `config` (the
    /// node's file) and the store's other sites: what `htgate site
    /// publish` does.  `origin` names the document in errors
    /// (`site.toml:3:1: ...`).  Returns the site's name.
    pub async fn publish_site(
        &self,
        config: &crate::config::Config,
        origin: &str,
        text: &str,
    ) -> Result<String, String> {
        // Against the file alone first: the document's own errors, and
        // which site it holds.
        let mut alone = config.clone();
        alone
            .add_store_sites(origin, text)
            .map_err(|e| e.to_string())?;
        let name = match &alone.file.site[config.file.site.len()..] {
            [site] => site.name.get_ref().clone(),
            more => {
                return Err(format!(
                    "{origin}: a site document holds exactly one [[site]] (this one has {})",
                    more.len()
                ))
            }
        };
        // Then with the store's other sites (no name or domain twice); a
        // broken document already there is not this one's fault.
        let key = format!("{}{name}", keys::SITES);
        let mut merged = config.clone();
        for (other, value) in self
            .store
            .list(keys::SITES)
            .await
            .map_err(|e| e.to_string())?
        {
            if other != key {
                let origin = format!("{}:{other}", self.store.describe());
                let _ = merged.add_store_sites(&origin, &String::from_utf8_lossy(&value));
            }
        }
        merged
            .add_store_sites(origin, text)
            .map_err(|e| e.to_string())?;
        self.store
            .put(&key, text.as_bytes())
            .await
            .map_err(|e| e.to_string())?;
        Ok(name)
    }

    pub async fn remove_site(&self, name: &str) -> Result<bool, String> {
        let key = format!("{}{name}", keys::SITES);
        let had = self
            .store
            .get(&key)
            .await
            .map_err(|e| e.to_string())?
            .is_some();
        self.store.delete(&key).await.map_err(|e| e.to_string())?;
        Ok(had)
    }

    /// The node's file plus the store's sites.  A document with errors is
    /// left out (the error log says why, with its line and column); the
    /// others are served.
    pub(crate) fn merged_config(&self, config: &crate::config::Config) -> crate::config::Config {
        let mut merged = config.clone();
        for (name, text) in self.sites() {
            let origin = format!("{}:{}{name}", self.store.describe(), keys::SITES);
            if let Err(e) = merged.add_store_sites(&origin, &text) {
                tracing::error!(target: "cluster", site = %name, "the site in the cluster store is refused (the other sites are served):\n{e}");
            }
        }
        merged
    }
}

fn save_cache(dir: &std::path::Path, sites: &BTreeMap<String, String>) -> std::io::Result<()> {
    let folder = dir.join("sites");
    std::fs::create_dir_all(&folder)?;
    for (name, text) in sites {
        crate::acme::write_atomic(&folder.join(format!("{name}.toml")), text.as_bytes(), 0o600)?;
    }
    for e in std::fs::read_dir(&folder)?.flatten() {
        let file = e.file_name().to_string_lossy().into_owned();
        if let Some(site) = file.strip_suffix(".toml") {
            if !sites.contains_key(site) {
                let _ = std::fs::remove_file(e.path());
            }
        }
    }
    Ok(())
}

fn host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|h| h.trim().to_string())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| format!("node-{}", std::process::id()))
}

#[cfg(feature = "etcd")]
fn etcd_store(c: &ClusterConfig, timeout: Duration) -> anyhow::Result<Arc<dyn Store>> {
    let read = |p: &PathBuf, what: &str| {
        std::fs::read(p).map_err(|e| anyhow::anyhow!("[cluster] {what} {}: {e}", p.display()))
    };
    let user = match (&c.username, &c.password_file) {
        (Some(u), Some(p)) => {
            let password = String::from_utf8(read(p, "password_file")?).map_err(|_| {
                anyhow::anyhow!("[cluster] password_file {} is not UTF-8", p.display())
            })?;
            Some((
                u.clone(),
                password.trim_end_matches(['\r', '\n']).to_string(),
            ))
        }
        _ => None,
    };
    let ca = c.ca.as_ref().map(|p| read(p, "ca")).transpose()?;
    let identity = match (&c.client_cert, &c.client_key) {
        (Some(cert), Some(key)) => Some((read(cert, "client_cert")?, read(key, "client_key")?)),
        _ => None,
    };
    Ok(Arc::new(etcd::EtcdStore::new(etcd::EtcdSettings {
        endpoints: c.etcd.iter().map(|e| e.get_ref().clone()).collect(),
        prefix: c.prefix.get_ref().clone(),
        timeout,
        user,
        ca,
        identity,
    })))
}

#[cfg(not(feature = "etcd"))]
fn etcd_store(_: &ClusterConfig, _: Duration) -> anyhow::Result<Arc<dyn Store>> {
    // The configuration check refuses `etcd` in such a build already.
    anyhow::bail!("[cluster] etcd: this htgate was built without the `etcd` feature")
}

//! What a config-mode node does with the cluster store: install the
//! certificates other nodes got, serve every node's HTTP-01 answers, share
//! and install customers' uploaded certificates, and serve the sites kept
//! in the store.
//!
//! Uploads go both ways, for both of a site's upload slots (the main
//! certificate, and the ECDSA one of its `ecdsa/` folder: `site@ecdsa`).  A change in a site's upload folder (a
//! `htgate cert install`, a control panel writing the files) is published
//! once its files validate; a change in the store is installed with the
//! same validation as an upload on this node (`tls::upload::install`), and
//! refused, with the working certificate kept, when it does not pass.  To
//! tell our own installs from new local uploads, each site remembers what
//! its folder and the store held at the last sync; one mutex orders the
//! two directions so neither sees the other's half-done work.

use super::run::Shared;
use crate::cluster::{keys, watcher::Apply, CertPair, Cluster, Event};
use async_trait::async_trait;
use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Weak};

/// What one site's upload looked like at the last sync.
#[derive(Default, Clone)]
struct Synced {
    local: Option<CertPair>,
    remote: Option<CertPair>,
}

pub(crate) struct NodeSync {
    shared: Weak<Shared>,
    cluster: Arc<Cluster>,
    uploads: tokio::sync::Mutex<HashMap<String, Synced>>,
}

/// The prefixes a node watches.
pub(crate) const PREFIXES: [&str; 4] = [keys::SITES, keys::CERTS, keys::CHALLENGES, keys::UPLOADS];

impl NodeSync {
    pub(crate) fn new(shared: &Arc<Shared>, cluster: Arc<Cluster>) -> Arc<NodeSync> {
        Arc::new(NodeSync {
            shared: Arc::downgrade(shared),
            cluster,
            uploads: tokio::sync::Mutex::new(HashMap::new()),
        })
    }

    /// The folder and domains of an upload slot on this node: a site's
    /// name (its upload folder) or `site@ecdsa` (the `ecdsa/` folder in it).
    fn upload_target(&self, slot: &str) -> Option<(PathBuf, Vec<String>)> {
        let shared = self.shared.upgrade()?;
        let store = shared.store.load_full();
        let (site, ecdsa) = match slot.strip_suffix(super::certs::ECDSA_SLOT_SUFFIX) {
            Some(site) => (site, true),
            None => (slot, false),
        };
        let s = store.sites().iter().find(|s| s.name == site)?;
        let dir = s.upload_dir.clone()?;
        let dir = if ecdsa {
            dir.join(super::certs::ECDSA_SUBDIR)
        } else {
            dir
        };
        Some((dir, s.domains.clone()))
    }

    /// A local upload folder changed (called from the certificate store).
    pub(crate) async fn local_upload_changed(&self, site: &str) {
        let Some((dir, _)) = self.upload_target(site) else {
            return;
        };
        let mut uploads = self.uploads.lock().await;
        let synced = uploads.entry(site.to_string()).or_default();
        let local = read_local(&dir);
        if local == synced.local {
            return; // what we installed from the store, or no change
        }
        self.publish_local(site, &dir, local, synced).await;
    }

    /// Shares this node's upload (or its removal).
    async fn publish_local(
        &self,
        site: &str,
        dir: &Path,
        local: Option<CertPair>,
        synced: &mut Synced,
    ) {
        let key = format!("{}{site}", keys::UPLOADS);
        let store = self.cluster.store();
        let result = match &local {
            Some(pair) => {
                let Some(shared) = self.shared.upgrade() else {
                    return;
                };
                let trust = shared.store.load().trust().clone();
                // Only what would be served here is shared.
                if let Err(e) = crate::tls::upload::load_installed(dir, &trust) {
                    tracing::warn!(target: "cluster", site, "the uploaded certificate in {} is not usable, not shared: {e}", dir.display());
                    return;
                }
                store.put(&key, &pair.encode()).await
            }
            None => store.delete(&key).await,
        };
        match result {
            Ok(()) => {
                tracing::info!(target: "cluster", site, removed = local.is_none(), "shared the uploaded certificate with the other nodes");
                synced.local = local.clone();
                synced.remote = local;
            }
            // Left unsynced: the next snapshot (after reconnecting) retries.
            Err(e) => {
                tracing::warn!(target: "cluster", site, "cannot share the uploaded certificate yet (retried when the store is back): {e}")
            }
        }
    }

    /// Installs the store's upload for `site`, validated as an upload here.
    async fn install_remote(&self, site: &str, pair: Option<CertPair>, synced: &mut Synced) {
        let Some((dir, domains)) = self.upload_target(site) else {
            return;
        };
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let store = shared.store.load_full();
        let trust = store.trust().clone();
        let d = dir.clone();
        let p = pair.clone();
        let site_name = site.to_string();
        let installed = tokio::task::spawn_blocking(move || match &p {
            Some(pair) => crate::tls::upload::install(
                &d,
                pair.chain_pem.as_bytes(),
                pair.key_pem.as_bytes(),
                &domains,
                htgate_util::unix_now(),
                &trust,
            )
            .map(|_| ())
            .map_err(|e| e.to_string()),
            None => {
                for f in [super::certs::UPLOAD_CHAIN, super::certs::UPLOAD_KEY] {
                    match std::fs::remove_file(d.join(f)) {
                        Ok(()) => {}
                        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                        Err(e) => return Err(e.to_string()),
                    }
                }
                Ok(())
            }
        })
        .await
        .map_err(|e| e.to_string())
        .and_then(|r| r);
        synced.remote = pair.clone();
        match installed {
            Ok(()) => {
                synced.local = read_local(&dir);
                tracing::info!(target: "cluster", site = %site_name, removed = pair.is_none(), "installed the uploaded certificate from the cluster");
                let s = store.clone();
                let _ = tokio::task::spawn_blocking(move || s.refresh()).await;
            }
            Err(e) => {
                tracing::error!(target: "cluster", site = %site_name, "refused the uploaded certificate from the cluster, keeping the current one: {e}");
            }
        }
    }

    /// Brings one site's upload in step after (re)connecting.
    async fn reconcile_upload(&self, site: &str, remote: Option<CertPair>) {
        let Some((dir, _)) = self.upload_target(site) else {
            return;
        };
        let mut uploads = self.uploads.lock().await;
        let local = read_local(&dir);
        let synced = uploads
            .entry(site.to_string())
            // First sight (start): the folder as it is counts as synced, so
            // the store's newer upload wins over an old local copy.
            .or_insert_with(|| Synced {
                local: local.clone(),
                remote: None,
            });
        if local != synced.local {
            // Changed here while the store was away.
            self.publish_local(site, &dir, local, synced).await;
        } else if remote.is_some() {
            if remote != synced.remote && remote != local {
                self.install_remote(site, remote, synced).await;
            } else {
                synced.remote = remote;
            }
        } else if synced.remote.is_some() {
            // Removed from the store while we were away.
            self.install_remote(site, None, synced).await;
        } else if local.is_some() {
            // The store never had it (a new cluster): share ours.
            self.publish_local(site, &dir, local, synced).await;
        }
    }

    async fn remote_upload(&self, site: &str, remote: Option<CertPair>) {
        let mut uploads = self.uploads.lock().await;
        let Some((dir, _)) = self.upload_target(site) else {
            return;
        };
        let synced = uploads.entry(site.to_string()).or_insert_with(|| Synced {
            local: read_local(&dir),
            remote: None,
        });
        if remote == synced.remote {
            return;
        }
        if remote.is_some() && remote == read_local(&dir) {
            synced.remote = remote;
            return;
        }
        self.install_remote(site, remote, synced).await;
    }

    async fn remote_cert(&self, domain: &str, value: &[u8]) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        let Some(acme) = shared.acme.clone() else {
            return;
        };
        let cert = match CertPair::decode(value)
            .and_then(|p| crate::acme::StoredCert::from_pem(domain, p.chain_pem, p.key_pem))
        {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(target: "cluster", domain, "ignored an unusable certificate from the cluster: {e}");
                return;
            }
        };
        let a = acme.clone();
        let installed = tokio::task::spawn_blocking(move || a.install_shared(&cert)).await;
        match installed {
            Ok(Ok(true)) => {
                tracing::info!(target: "cluster", domain, "installed the automatic certificate another node got");
                let store = shared.store.load_full();
                let d = domain.to_string();
                let _ = tokio::task::spawn_blocking(move || store.refresh_automatic(&d)).await;
            }
            Ok(Ok(false)) => {}
            Ok(Err(e)) => {
                tracing::error!(target: "cluster", domain, "cannot store the certificate from the cluster: {e}")
            }
            Err(_) => {}
        }
    }

    /// The sites documents changed: reload with them.
    async fn sites_changed(&self) {
        let Some(shared) = self.shared.upgrade() else {
            return;
        };
        if let Err(e) = super::reload::reload_and_rewatch(&shared).await {
            tracing::error!(target: "cluster", "reloading for the cluster's sites failed, the running configuration is kept: {e}");
            return;
        }
        // A new site may have an upload waiting in the store.
        if let Ok(items) = self.cluster.store().list(keys::UPLOADS).await {
            self.snapshot(keys::UPLOADS, items).await;
        }
    }
}

fn read_local(dir: &Path) -> Option<CertPair> {
    let chain = std::fs::read_to_string(dir.join(super::certs::UPLOAD_CHAIN)).ok()?;
    let key = std::fs::read_to_string(dir.join(super::certs::UPLOAD_KEY)).ok()?;
    Some(CertPair {
        chain_pem: chain,
        key_pem: key,
    })
}

fn name_of<'a>(prefix: &str, key: &'a str) -> Option<&'a str> {
    key.strip_prefix(prefix)
        .filter(|n| !n.is_empty() && !n.contains('/'))
}

#[async_trait]
impl Apply for NodeSync {
    async fn snapshot(&self, prefix: &'static str, items: Vec<(String, Vec<u8>)>) {
        match prefix {
            keys::SITES => {
                let sites = items
                    .iter()
                    .filter_map(|(k, v)| {
                        Some((
                            name_of(prefix, k)?.to_string(),
                            String::from_utf8_lossy(v).into_owned(),
                        ))
                    })
                    .collect();
                if self.cluster.set_sites(sites) {
                    self.sites_changed().await;
                }
            }
            keys::CERTS => {
                for (k, v) in &items {
                    if let Some(domain) = name_of(prefix, k) {
                        self.remote_cert(domain, v).await;
                    }
                }
            }
            keys::CHALLENGES => {
                let answers = items
                    .iter()
                    .filter_map(|(k, v)| {
                        Some((
                            name_of(prefix, k)?.to_string(),
                            String::from_utf8(v.clone()).ok()?,
                        ))
                    })
                    .collect();
                self.cluster.challenges().replace_all(answers);
            }
            keys::UPLOADS => {
                let mut remote: HashMap<String, CertPair> = HashMap::new();
                for (k, v) in &items {
                    if let (Some(site), Ok(pair)) = (name_of(prefix, k), CertPair::decode(v)) {
                        remote.insert(site.to_string(), pair);
                    }
                }
                let sites: Vec<String> = match self.shared.upgrade() {
                    Some(shared) => shared
                        .store
                        .load()
                        .sites()
                        .iter()
                        .filter(|s| s.upload_dir.is_some())
                        .flat_map(|s| {
                            [
                                s.name.clone(),
                                format!("{}{}", s.name, super::certs::ECDSA_SLOT_SUFFIX),
                            ]
                        })
                        .collect(),
                    None => return,
                };
                for site in sites {
                    let r = remote.remove(&site);
                    self.reconcile_upload(&site, r).await;
                }
            }
            _ => {}
        }
    }

    async fn event(&self, prefix: &'static str, event: Event) {
        let (key, value) = match &event {
            Event::Put { key, value } => (key.as_str(), Some(value.as_slice())),
            Event::Delete { key } => (key.as_str(), None),
        };
        let Some(name) = name_of(prefix, key) else {
            return;
        };
        match prefix {
            keys::SITES => {
                let mut sites = self.cluster.sites();
                match value {
                    Some(v) => {
                        sites.insert(name.to_string(), String::from_utf8_lossy(v).into_owned())
                    }
                    None => sites.remove(name),
                };
                if self.cluster.set_sites(sites) {
                    self.sites_changed().await;
                }
            }
            keys::CERTS => {
                if let Some(v) = value {
                    self.remote_cert(name, v).await;
                }
                // A deleted shared certificate keeps being served here
                // until it expires; renewal orders a new one.
            }
            keys::CHALLENGES => {
                let challenges = self.cluster.challenges();
                match value.and_then(|v| String::from_utf8(v.to_vec()).ok()) {
                    Some(answer) => challenges.insert(name, answer),
                    None => challenges.remove(name),
                }
            }
            keys::UPLOADS => {
                let pair = match value.map(CertPair::decode) {
                    Some(Ok(p)) => Some(p),
                    Some(Err(e)) => {
                        tracing::warn!(target: "cluster", site = name, "ignored an unreadable upload in the cluster store: {e}");
                        return;
                    }
                    None => None,
                };
                self.remote_upload(name, pair).await;
            }
            _ => {}
        }
    }
}

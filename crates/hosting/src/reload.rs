//! Hot reload: what the file watcher reports, applied to the running
//! server.
//!
//! `.htaccess` changes recompile just that directory (its `ArcSwap` is
//! replaced; requests in flight keep the version they started with);
//! folder changes re-check the cached directories under them; a replaced
//! root forgets the site's cache; certificate files refresh the store;
//! htgate.toml (and the shared certificate's files) reload the whole
//! configuration, which is refused if it has errors.  `Rescan` (the
//! periodic fallback, or lost events) re-checks everything by file
//! identity.

use super::run::Shared;
use crate::config::Config;
use crate::watch::{Change, WatchSpec, Watcher};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

/// A burst of events for one file within this window is one change.  Kept
/// short: it is added to every reload's latency.
const DEBOUNCE: Duration = Duration::from_millis(5);

/// What to watch for a configuration.
pub(crate) fn watch_spec(config: &Config) -> WatchSpec {
    let mut files: Vec<PathBuf> = vec![config.path.clone()];
    if let Some(c) = &config.file.default_certificate {
        files.push(c.cert.clone());
        files.push(c.key.clone());
    }
    files.extend(config.file.extra_ca_roots.iter().cloned());
    let dirs: Vec<PathBuf> = config
        .file
        .site
        .iter()
        .filter_map(|s| config.upload_dir(s))
        .flat_map(|d| [d.join(super::certs::ECDSA_SUBDIR), d])
        .collect();
    WatchSpec {
        trees: config
            .file
            .site
            .iter()
            .map(|s| s.root.get_ref().clone())
            .collect(),
        files,
        dirs,
        debounce: DEBOUNCE,
        poll_interval: match config.file.reload_poll_seconds {
            0 => None,
            n => Some(Duration::from_secs(n)),
        },
        use_events: config.file.watch,
    }
}

/// Starts the watcher for `shared`'s configuration; changes are applied
/// on tokio's blocking pool of `rt`.
pub(crate) fn start_watcher(
    shared: &Arc<Shared>,
    rt: tokio::runtime::Handle,
) -> Result<Watcher, crate::watch::WatchError> {
    let spec = watch_spec(&shared.config.load());
    let weak = Arc::downgrade(shared);
    Watcher::start(
        spec,
        Box::new(move |changes| {
            if let Some(shared) = weak.upgrade() {
                apply(&shared, changes, &rt);
            }
        }),
    )
}

fn is_under(path: &Path, root: &str) -> bool {
    path.starts_with(root)
}

/// Applies one debounced batch.
pub(crate) fn apply(shared: &Arc<Shared>, changes: Vec<Change>, rt: &tokio::runtime::Handle) {
    let hosting = shared.hosting.load_full();
    let config = shared.config.load_full();
    let mut refresh_certs = false;
    let mut reload_config = false;
    for change in changes {
        match change {
            Change::Htaccess(ref dir) | Change::Tree(ref dir) => {
                for hs in hosting.sites.iter() {
                    if is_under(dir, &hs.site.docroot) {
                        // The compile errors logged now name the site.
                        let _site = tracing::error_span!("reload", site = %hs.name).entered();
                        hs.site.apply_change(&change);
                    }
                }
            }
            Change::Root(ref root) => {
                for hs in hosting.sites.iter() {
                    if Path::new(&hs.site.docroot) == root {
                        let _site = tracing::error_span!("reload", site = %hs.name).entered();
                        hs.site.apply_change(&change);
                    }
                }
            }
            Change::File(path) => {
                let is_config = path == config.path;
                let is_default_cert = config
                    .file
                    .default_certificate
                    .as_ref()
                    .is_some_and(|c| c.cert == path || c.key == path)
                    || config.file.extra_ca_roots.contains(&path);
                if is_config || is_default_cert {
                    reload_config = true;
                } else {
                    refresh_certs = true;
                }
            }
            Change::Rescan => {
                for hs in hosting.sites.iter() {
                    let n = hs.site.apply_change(&Change::Rescan);
                    if n > 0 {
                        tracing::info!(target: "reload", site = %hs.name, changed = n, "periodic re-check found changed .htaccess files");
                    }
                }
                refresh_certs = true;
            }
        }
    }
    if refresh_certs && !reload_config {
        shared.store.load().refresh();
    }
    if reload_config {
        let shared = shared.clone();
        rt.spawn(async move {
            let _ = reload_and_rewatch(&shared).await;
        });
    }
}

/// Reloads the configuration and, when it was taken, points the watcher
/// at the new set of roots and files.
pub(crate) async fn reload_and_rewatch(shared: &Arc<Shared>) -> Result<(), String> {
    let reloaded = super::run::reload(shared).await;
    htgate_telemetry::metrics::reload("config", reloaded.is_ok());
    reloaded?;
    let spec = watch_spec(&shared.config.load());
    if let Ok(guard) = shared.watcher.lock() {
        if let Some(w) = guard.as_ref() {
            if let Err(e) = w.update(spec) {
                tracing::warn!(target: "reload", "cannot update the watched paths: {e}");
            }
        }
    }
    Ok(())
}

//! The folder back end: one file per key under one folder.
//!
//! For a single node (`[cluster] folder = "..."`), or for a few nodes that
//! share the folder over NFS.  Values are written atomically (temporary
//! sibling, fsync, rename), so a reader never sees half a certificate.
//! Watches poll the folder (NFS delivers no inotify events for other
//! machines' writes).  Locks are files holding an owner token and an
//! expiry that the holder renews; a holder that dies stops renewing and the
//! lock is taken over once it has expired.  Taking over an expired lock is
//! not atomic across NFS clients the way etcd's leases are: this back end
//! suits small set-ups, etcd is the one for real clusters.

use super::store::{valid_key, Event, HeldLock, Store, StoreError, Watch};
use async_trait::async_trait;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Where locks live inside the folder (not a key prefix anyone lists).
const LOCKS: &str = "locks";

pub(crate) struct FolderStore {
    root: PathBuf,
    /// How often a watch looks at the folder.
    poll: Duration,
}

impl FolderStore {
    pub(crate) fn new(root: impl Into<PathBuf>, poll: Duration) -> FolderStore {
        FolderStore {
            root: root.into(),
            poll: poll.max(Duration::from_millis(10)),
        }
    }

    fn path(&self, key: &str) -> Result<PathBuf, StoreError> {
        if !valid_key(key) {
            return Err(self.failed(format!("refused key {key:?}")));
        }
        Ok(self.root.join(key))
    }

    fn failed(&self, detail: String) -> StoreError {
        StoreError::Failed {
            store: self.describe(),
            detail,
        }
    }

    fn io(&self, what: &str, path: &Path, e: std::io::Error) -> StoreError {
        let detail = format!("cannot {what} {}: {e}", path.display());
        if self.root.is_dir() {
            StoreError::Failed {
                store: self.describe(),
                detail,
            }
        } else {
            StoreError::Unreachable {
                store: self.describe(),
                detail,
            }
        }
    }
}

/// Runs blocking file work off the async workers.
async fn blocking<T: Send + 'static>(
    store: String,
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| StoreError::Failed {
            store,
            detail: format!("file task failed: {e}"),
        })?
}

/// Every file under `dir`, as keys relative to `root`; temporary files
/// (dot names) are skipped.
fn walk(root: &Path, dir: &Path, out: &mut BTreeMap<String, Vec<u8>>) -> std::io::Result<()> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let entry = entry?;
        let name = entry.file_name();
        if name.to_string_lossy().starts_with('.') {
            continue;
        }
        let path = entry.path();
        let kind = entry.file_type()?;
        if kind.is_dir() {
            walk(root, &path, out)?;
        } else if kind.is_file() {
            let Ok(rel) = path.strip_prefix(root) else {
                continue;
            };
            let key = rel.to_string_lossy().into_owned();
            if !valid_key(&key) {
                continue;
            }
            match std::fs::read(&path) {
                Ok(value) => {
                    out.insert(key, value);
                }
                // Deleted between the listing and the read.
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
    }
    Ok(())
}

fn list_sync(root: &Path, prefix: &str) -> std::io::Result<BTreeMap<String, Vec<u8>>> {
    let mut out = BTreeMap::new();
    let start = root.join(prefix.trim_end_matches('/'));
    walk(root, &start, &mut out)?;
    out.retain(|k, _| k.starts_with(prefix));
    Ok(out)
}

fn write_value(path: &Path, value: &[u8]) -> std::io::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    crate::acme::write_atomic(path, value, 0o600)
}

#[async_trait]
impl Store for FolderStore {
    fn describe(&self) -> String {
        format!("folder {}", self.root.display())
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let path = self.path(key)?;
        match tokio::fs::read(&path).await {
            Ok(v) => Ok(Some(v)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound && self.root.is_dir() => Ok(None),
            Err(e) => Err(self.io("read", &path, e)),
        }
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let path = self.path(key)?;
        let value = value.to_vec();
        let describe = self.describe();
        let p = path.clone();
        blocking(describe.clone(), move || {
            write_value(&p, &value).map_err(|e| StoreError::Failed {
                store: describe,
                detail: format!("cannot write {}: {e}", p.display()),
            })
        })
        .await
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let path = self.path(key)?;
        match tokio::fs::remove_file(&path).await {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(self.io("delete", &path, e)),
        }
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let root = self.root.clone();
        let prefix = prefix.to_string();
        let describe = self.describe();
        let d = describe.clone();
        blocking(describe, move || {
            if !root.is_dir() {
                return Err(StoreError::Unreachable {
                    store: d,
                    detail: format!("{} is not a folder", root.display()),
                });
            }
            list_sync(&root, &prefix)
                .map(|m| m.into_iter().collect())
                .map_err(|e| StoreError::Failed {
                    store: d,
                    detail: format!("cannot list {}: {e}", root.display()),
                })
        })
        .await
    }

    async fn watch(&self, prefix: &str) -> Result<Watch, StoreError> {
        let mut known: BTreeMap<String, Vec<u8>> = self.list(prefix).await?.into_iter().collect();
        let root = self.root.clone();
        let prefix = prefix.to_string();
        let poll = self.poll;
        let describe = self.describe();
        let (tx, rx) = tokio::sync::mpsc::channel::<Result<Event, StoreError>>(256);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(poll).await;
                let (r, p) = (root.clone(), prefix.clone());
                let now = tokio::task::spawn_blocking(move || list_sync(&r, &p)).await;
                let now = match now {
                    Ok(Ok(now)) => now,
                    Ok(Err(e)) => {
                        let _ = tx
                            .send(Err(StoreError::Unreachable {
                                store: describe.clone(),
                                detail: e.to_string(),
                            }))
                            .await;
                        return;
                    }
                    Err(_) => return,
                };
                for (key, value) in &now {
                    if known.get(key) != Some(value) {
                        let event = Event::Put {
                            key: key.clone(),
                            value: value.clone(),
                        };
                        if tx.send(Ok(event)).await.is_err() {
                            return;
                        }
                    }
                }
                for key in known.keys().filter(|k| !now.contains_key(*k)) {
                    if tx
                        .send(Ok(Event::Delete { key: key.clone() }))
                        .await
                        .is_err()
                    {
                        return;
                    }
                }
                known = now;
            }
        });
        Ok(Box::pin(futures_util::stream::unfold(rx, |mut rx| async {
            rx.recv().await.map(|item| (item, rx))
        })))
    }

    async fn lock(
        &self,
        name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Box<dyn HeldLock>, StoreError> {
        let path = self.path(&format!("{LOCKS}/{name}"))?;
        let token = lock_token();
        let deadline = tokio::time::Instant::now() + wait;
        loop {
            let (p, t) = (path.clone(), token.clone());
            let taken = tokio::task::spawn_blocking(move || try_lock(&p, &t, ttl))
                .await
                .map_err(|e| self.failed(format!("lock task failed: {e}")))?
                .map_err(|e| self.io("lock", &path, e))?;
            if taken {
                break;
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(StoreError::lock_timeout(self.describe(), name, wait));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let renew = {
            let (path, token) = (path.clone(), token.clone());
            tokio::spawn(async move {
                loop {
                    tokio::time::sleep(ttl / 3).await;
                    let (p, t) = (path.clone(), token.clone());
                    let still = tokio::task::spawn_blocking(move || renew_lock(&p, &t, ttl)).await;
                    if !matches!(still, Ok(Ok(true))) {
                        tracing::warn!(lock = %path.display(), "lost the lock file (expired or taken over)");
                        return;
                    }
                }
            })
        };
        Ok(Box::new(FolderLock {
            store: FolderStore::new(self.root.clone(), self.poll),
            path,
            token,
            renew,
            bound: Mutex::new(Vec::new()),
        }))
    }
}

#[derive(Serialize, Deserialize)]
struct LockFile {
    token: String,
    /// Unix milliseconds after which the lock is free.
    expires_ms: u64,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
        .unwrap_or(0)
}

fn lock_token() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    format!(
        "{}-{}-{}",
        std::process::id(),
        now_ms(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

fn lock_bytes(token: &str, ttl: Duration) -> Vec<u8> {
    let file = LockFile {
        token: token.to_string(),
        expires_ms: now_ms().saturating_add(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX)),
    };
    serde_json::to_vec(&file).unwrap_or_default()
}

fn read_lock(path: &Path) -> Option<LockFile> {
    serde_json::from_slice(&std::fs::read(path).ok()?).ok()
}

/// One attempt: create the lock file, or take over an expired one.
fn try_lock(path: &Path, token: &str, ttl: Duration) -> std::io::Result<bool> {
    use std::io::Write;
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)?;
    }
    match std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(path)
    {
        Ok(mut f) => {
            f.write_all(&lock_bytes(token, ttl))?;
            f.sync_all()?;
            Ok(true)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            let expired = match read_lock(path) {
                Some(held) => held.expires_ms < now_ms(),
                // Unreadable: a holder died between create and write, or a
                // stranger's file; free it once it is older than a ttl.
                None => std::fs::metadata(path)
                    .and_then(|m| m.modified())
                    .map(|t| t.elapsed().unwrap_or_default() > ttl)
                    .unwrap_or(true),
            };
            if expired {
                // Move it aside (one taker wins the rename), then race for
                // a fresh create.
                let aside = path.with_extension(format!("stale-{token}"));
                if std::fs::rename(path, &aside).is_ok() {
                    let _ = std::fs::remove_file(&aside);
                }
            }
            Ok(false)
        }
        Err(e) => Err(e),
    }
}

/// Pushes the expiry forward if the lock is still ours.
fn renew_lock(path: &Path, token: &str, ttl: Duration) -> std::io::Result<bool> {
    match read_lock(path) {
        Some(held) if held.token == token => {
            crate::acme::write_atomic(path, &lock_bytes(token, ttl), 0o600)?;
            Ok(true)
        }
        _ => Ok(false),
    }
}

struct FolderLock {
    store: FolderStore,
    path: PathBuf,
    token: String,
    renew: tokio::task::JoinHandle<()>,
    bound: Mutex<Vec<String>>,
}

#[async_trait]
impl HeldLock for FolderLock {
    async fn put_bound(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        self.store.put(key, value).await?;
        if let Ok(mut b) = self.bound.lock() {
            b.push(key.to_string());
        }
        Ok(())
    }

    async fn release(self: Box<Self>) {
        self.renew.abort();
        let keys: Vec<String> = self.bound.lock().map(|b| b.clone()).unwrap_or_default();
        for key in keys {
            let _ = self.store.delete(&key).await;
        }
        let (path, token) = (self.path.clone(), self.token.clone());
        let _ = tokio::task::spawn_blocking(move || {
            if read_lock(&path).is_some_and(|held| held.token == token) {
                let _ = std::fs::remove_file(&path);
            }
        })
        .await;
    }
}

impl Drop for FolderLock {
    fn drop(&mut self) {
        // Not released (cancelled): stop renewing; it expires after its ttl.
        self.renew.abort();
    }
}

/// Shared by the tests of this module and of the sync.
#[cfg(test)]
pub(crate) fn temp_store() -> (tempfile::TempDir, std::sync::Arc<dyn Store>) {
    let dir = tempfile::tempdir().expect("tempdir");
    let store: std::sync::Arc<dyn Store> =
        std::sync::Arc::new(FolderStore::new(dir.path(), Duration::from_millis(20)));
    (dir, store)
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures_util::StreamExt;

    #[tokio::test]
    async fn values_round_trip_and_list_by_prefix() {
        let (_dir, store) = temp_store();
        assert_eq!(store.get("certs/a.example").await.expect("get"), None);
        store.put("certs/a.example", b"A").await.expect("put");
        store.put("certs/b.example", b"B").await.expect("put");
        store.put("sites/blog", b"S").await.expect("put");
        assert_eq!(
            store.get("certs/a.example").await.expect("get").as_deref(),
            Some(&b"A"[..])
        );
        let certs = store.list("certs/").await.expect("list");
        assert_eq!(
            certs,
            vec![
                ("certs/a.example".to_string(), b"A".to_vec()),
                ("certs/b.example".to_string(), b"B".to_vec())
            ]
        );
        store.delete("certs/a.example").await.expect("delete");
        store
            .delete("certs/a.example")
            .await
            .expect("twice is fine");
        assert_eq!(store.list("certs/").await.expect("list").len(), 1);
        assert!(store.put("../escape", b"x").await.is_err());
    }

    #[tokio::test]
    async fn a_watch_reports_puts_and_deletes() {
        let (_dir, store) = temp_store();
        store.put("certs/old", b"1").await.expect("put");
        let mut watch = store.watch("certs/").await.expect("watch");
        store.put("certs/new", b"2").await.expect("put");
        store.put("sites/other", b"3").await.expect("put");
        let next = tokio::time::timeout(Duration::from_secs(5), watch.next()).await;
        assert_eq!(
            next.expect("in time").expect("open").expect("event"),
            Event::Put {
                key: "certs/new".into(),
                value: b"2".to_vec()
            }
        );
        store.delete("certs/old").await.expect("delete");
        let next = tokio::time::timeout(Duration::from_secs(5), watch.next()).await;
        assert_eq!(
            next.expect("in time").expect("open").expect("event"),
            Event::Delete {
                key: "certs/old".into()
            }
        );
    }

    #[tokio::test]
    async fn a_lock_is_exclusive_and_freed_when_its_holder_stops_renewing() {
        let (_dir, store) = temp_store();
        let ttl = Duration::from_millis(600);
        let held = store
            .lock("acme/a.example", ttl, Duration::from_secs(1))
            .await
            .expect("first");
        held.put_bound("challenges/tok", b"ka")
            .await
            .expect("bound");
        let second = store
            .lock("acme/a.example", ttl, Duration::from_millis(1500))
            .await;
        assert!(second.is_err(), "held and renewed: the waiter times out");
        held.release().await;
        assert_eq!(
            store.get("challenges/tok").await.expect("get"),
            None,
            "bound keys go with the lock"
        );
        let again = store
            .lock("acme/a.example", ttl, Duration::from_secs(1))
            .await
            .expect("free after release");
        // A holder that dies (dropped without release) stops renewing.
        drop(again);
        let started = std::time::Instant::now();
        let taken = store
            .lock("acme/a.example", ttl, Duration::from_secs(5))
            .await
            .expect("taken over after expiry");
        assert!(started.elapsed() >= ttl / 2, "not before it expired");
        taken.release().await;
    }
}

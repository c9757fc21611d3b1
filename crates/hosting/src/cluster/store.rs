//! The storage interface every node of a cluster shares: a key-value store
//! with prefix listing, watches and lease-bound locks.
//!
//! Keys are relative (`certs/example.com`); a back end adds its own prefix.
//! Two back ends: [`super::folder::FolderStore`] (files in one folder: a
//! single node, or nodes sharing a folder over NFS) and, with the `etcd`
//! feature, `super::etcd::EtcdStore`.  What is stored where is decided in
//! [`super::keys`], never by a back end.

use async_trait::async_trait;
use futures_util::stream::BoxStream;
use std::time::Duration;

/// A store failure, in words for a log line.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The store cannot be reached (etcd down, folder unmounted).
    #[error("{store} is unreachable: {detail}")]
    Unreachable { store: String, detail: String },
    /// The store answered but refused or failed the operation.
    #[error("{store}: {detail}")]
    Failed { store: String, detail: String },
    /// A lock's lease ended while it was held (the node lost its session).
    #[error("{store}: the lock {name} was lost")]
    LockLost { store: String, name: String },
}

impl StoreError {
    /// A lock that stayed taken for all of `wait`.
    pub(crate) fn lock_timeout(store: String, name: &str, wait: Duration) -> StoreError {
        StoreError::Failed {
            store,
            detail: format!(
                "timed out after {}s waiting for the lock {name}",
                wait.as_secs()
            ),
        }
    }
}

/// One change under a watched prefix.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    Put { key: String, value: Vec<u8> },
    Delete { key: String },
}

/// A watch: events in order; the stream ends or yields an error when the
/// connection is lost, and the caller lists again and watches anew.
pub(crate) type Watch = BoxStream<'static, Result<Event, StoreError>>;

/// A held lock.  It is bound to a lease that the back end keeps alive; if
/// the node dies the lease runs out after the lock's time-to-live and the
/// next waiter gets the lock.  Keys put through it vanish with it.
#[async_trait]
pub trait HeldLock: Send + Sync {
    /// Store `value` under `key` for as long as the lock is held.
    async fn put_bound(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    /// Give the lock up (and delete the keys bound to it).
    async fn release(self: Box<Self>);
}

/// The operations htgate needs from a shared store.  Every call is bounded
/// in time by the back end: a store that stops answering yields
/// [`StoreError::Unreachable`], never a hang.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// What this store is, for logs (`etcd http://10.0.0.5:2379`).
    fn describe(&self) -> String;
    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError>;
    async fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError>;
    async fn delete(&self, key: &str) -> Result<(), StoreError>;
    /// Every key under `prefix`, with its value, sorted by key.
    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;
    /// Changes under `prefix` from now on.
    async fn watch(&self, prefix: &str) -> Result<Watch, StoreError>;
    /// Waits (at most `wait`) for the lock `name`; it is held until
    /// released, or until `ttl` after this node stops renewing it.
    async fn lock(
        &self,
        name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Box<dyn HeldLock>, StoreError>;
}

/// Whether `key` is one this store accepts: relative, `/`-separated parts
/// of ASCII letters, digits, `.`, `-`, `_`, `*`, `@`, never `.` or `..`.  Keys
/// come from site and domain names that were checked already; this keeps
/// the folder back end inside its folder whatever happens upstream.
pub(crate) fn valid_key(key: &str) -> bool {
    !key.is_empty()
        && key.split('/').all(|part| {
            !part.is_empty()
                && part != "."
                && part != ".."
                && part.bytes().all(|b| {
                    b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b'*' | b'@')
                })
        })
}

#[cfg(test)]
mod tests {
    use super::valid_key;

    #[test]
    fn keys_stay_inside_the_store() {
        assert!(valid_key("certs/example.com"));
        assert!(valid_key("uploads/blog_1"));
        assert!(valid_key("certs/*.example.com"));
        for bad in [
            "", "/abs", "a//b", "../x", "a/../b", "a/./b", "a b", "a\0b", "é",
        ] {
            assert!(!valid_key(bad), "{bad:?}");
        }
    }
}

//! The etcd back end (the `etcd` cargo feature): etcd's v3 API through the
//! `etcd-client` crate.
//!
//! The client is made on first use and kept (its gRPC channel reconnects by
//! itself), so a node starts while etcd is down and catches up when it
//! comes back.  Every call is bounded by `timeout`.  Locks are etcd's own
//! lock API on a lease the node keeps alive; keys put through a held lock
//! carry that lease and vanish with it.

use super::store::{valid_key, Event, HeldLock, Store, StoreError, Watch};
use async_trait::async_trait;
use etcd_client::{
    Certificate, Client, ConnectOptions, EventType, GetOptions, Identity, LockOptions, PutOptions,
    TlsOptions, WatchOptions,
};
use std::time::Duration;

/// What the `[cluster]` table says about etcd.
#[derive(Debug, Clone)]
pub struct EtcdSettings {
    pub endpoints: Vec<String>,
    /// Every key starts with it (`/htgate/`), so several clusters can share
    /// one etcd.
    pub prefix: String,
    pub timeout: Duration,
    pub user: Option<(String, String)>,
    /// PEM CA that signed etcd's server certificate.
    pub ca: Option<Vec<u8>>,
    /// PEM client certificate and key, for etcd's `--client-cert-auth`.
    pub identity: Option<(Vec<u8>, Vec<u8>)>,
}

pub struct EtcdStore {
    settings: EtcdSettings,
    client: tokio::sync::Mutex<Option<Client>>,
}

impl EtcdStore {
    pub fn new(settings: EtcdSettings) -> EtcdStore {
        EtcdStore {
            settings,
            client: tokio::sync::Mutex::new(None),
        }
    }

    fn full(&self, key: &str) -> Result<String, StoreError> {
        if !valid_key(key.trim_end_matches('/')) {
            return Err(self.failed(format!("refused key {key:?}")));
        }
        Ok(format!("{}{key}", self.settings.prefix))
    }

    fn failed(&self, detail: String) -> StoreError {
        StoreError::Failed {
            store: self.describe(),
            detail,
        }
    }

    fn unreachable(&self, detail: String) -> StoreError {
        StoreError::Unreachable {
            store: self.describe(),
            detail,
        }
    }

    /// Transport failures and "unavailable" mean etcd cannot be reached;
    /// anything else is etcd saying no.
    fn error(&self, e: etcd_client::Error) -> StoreError {
        use etcd_client::Error as E;
        match &e {
            E::TransportError(_) | E::IoError(_) => self.unreachable(e.to_string()),
            E::GRpcStatus(status)
                if matches!(
                    status.code(),
                    tonic::Code::Unavailable | tonic::Code::DeadlineExceeded
                ) =>
            {
                self.unreachable(e.to_string())
            }
            _ => self.failed(e.to_string()),
        }
    }

    fn options(&self) -> ConnectOptions {
        let s = &self.settings;
        // No per-request timeout here: a lock call waits as long as the
        // holder holds; every other call is bounded by `bounded`.
        let mut o = ConnectOptions::new()
            .with_connect_timeout(s.timeout)
            .with_keep_alive(Duration::from_secs(5), s.timeout);
        if let Some((user, password)) = &s.user {
            o = o.with_user(user.clone(), password.clone());
        }
        if s.ca.is_some() || s.identity.is_some() {
            // tonic's TLS asks rustls for the default provider.
            htgate_server::tls::install_default_provider();
            let mut tls = TlsOptions::new();
            if let Some(ca) = &s.ca {
                tls = tls.ca_certificate(Certificate::from_pem(ca));
            }
            if let Some((cert, key)) = &s.identity {
                tls = tls.identity(Identity::from_pem(cert, key));
            }
            o = o.with_tls(tls);
        }
        o
    }

    /// The client, connecting on first use.
    async fn client(&self) -> Result<Client, StoreError> {
        let mut slot = self.client.lock().await;
        if let Some(c) = slot.as_ref() {
            return Ok(c.clone());
        }
        let connect = Client::connect(&self.settings.endpoints, Some(self.options()));
        let client = match tokio::time::timeout(self.settings.timeout, connect).await {
            Ok(Ok(c)) => c,
            Ok(Err(e)) => return Err(self.error(e)),
            Err(_) => {
                return Err(self.unreachable(format!(
                    "no answer within {} ms",
                    self.settings.timeout.as_millis()
                )))
            }
        };
        *slot = Some(client.clone());
        Ok(client)
    }

    /// Runs one call within the timeout.
    async fn bounded<T>(
        &self,
        call: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
    ) -> Result<T, StoreError> {
        match tokio::time::timeout(self.settings.timeout, call).await {
            Ok(r) => r.map_err(|e| self.error(e)),
            Err(_) => Err(self.unreachable(format!(
                "no answer within {} ms",
                self.settings.timeout.as_millis()
            ))),
        }
    }

    fn relative(&self, key: &[u8]) -> Option<String> {
        let key = std::str::from_utf8(key).ok()?;
        key.strip_prefix(&self.settings.prefix).map(str::to_string)
    }
}

#[async_trait]
impl Store for EtcdStore {
    fn describe(&self) -> String {
        format!("etcd {}", self.settings.endpoints.join(","))
    }

    async fn get(&self, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
        let full = self.full(key)?;
        let mut c = self.client().await?;
        let resp = self.bounded(c.get(full, None)).await?;
        Ok(resp.kvs().first().map(|kv| kv.value().to_vec()))
    }

    async fn put(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        let full = self.full(key)?;
        let mut c = self.client().await?;
        self.bounded(c.put(full, value.to_vec(), None)).await?;
        Ok(())
    }

    async fn delete(&self, key: &str) -> Result<(), StoreError> {
        let full = self.full(key)?;
        let mut c = self.client().await?;
        self.bounded(c.delete(full, None)).await?;
        Ok(())
    }

    async fn list(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let full = self.full(prefix)?;
        let mut c = self.client().await?;
        let resp = self
            .bounded(c.get(full, Some(GetOptions::new().with_prefix())))
            .await?;
        let mut out: Vec<(String, Vec<u8>)> = resp
            .kvs()
            .iter()
            .filter_map(|kv| Some((self.relative(kv.key())?, kv.value().to_vec())))
            .collect();
        out.sort();
        Ok(out)
    }

    async fn watch(&self, prefix: &str) -> Result<Watch, StoreError> {
        let full = self.full(prefix)?;
        let mut c = self.client().await?;
        let stream = self
            .bounded(c.watch(full, Some(WatchOptions::new().with_prefix())))
            .await?;
        let describe = self.describe();
        let strip = self.settings.prefix.clone();
        // Each etcd message carries several events: flatten them.
        let events = futures_util::stream::unfold(
            (stream, std::collections::VecDeque::<Event>::new(), false),
            move |(mut stream, mut pending, done)| {
                let describe = describe.clone();
                let strip = strip.clone();
                async move {
                    loop {
                        if let Some(e) = pending.pop_front() {
                            return Some((Ok(e), (stream, pending, done)));
                        }
                        if done {
                            return None;
                        }
                        match stream.message().await {
                            Ok(Some(resp)) => {
                                if resp.canceled() {
                                    let err = StoreError::Unreachable {
                                        store: describe.clone(),
                                        detail: format!(
                                            "the watch was cancelled: {}",
                                            resp.cancel_reason()
                                        ),
                                    };
                                    return Some((Err(err), (stream, pending, true)));
                                }
                                for ev in resp.events() {
                                    let Some(kv) = ev.kv() else { continue };
                                    let Some(key) = std::str::from_utf8(kv.key())
                                        .ok()
                                        .and_then(|k| k.strip_prefix(strip.as_str()))
                                        .map(str::to_string)
                                    else {
                                        continue;
                                    };
                                    pending.push_back(match ev.event_type() {
                                        EventType::Put => Event::Put {
                                            key,
                                            value: kv.value().to_vec(),
                                        },
                                        EventType::Delete => Event::Delete { key },
                                    });
                                }
                            }
                            Ok(None) => {
                                let err = StoreError::Unreachable {
                                    store: describe.clone(),
                                    detail: "the watch stream ended".to_string(),
                                };
                                return Some((Err(err), (stream, pending, true)));
                            }
                            Err(e) => {
                                let err = StoreError::Unreachable {
                                    store: describe.clone(),
                                    detail: e.to_string(),
                                };
                                return Some((Err(err), (stream, pending, true)));
                            }
                        }
                    }
                }
            },
        );
        Ok(Box::pin(events))
    }

    async fn lock(
        &self,
        name: &str,
        ttl: Duration,
        wait: Duration,
    ) -> Result<Box<dyn HeldLock>, StoreError> {
        let full = self.full(&format!("locks/{name}"))?;
        let mut c = self.client().await?;
        let ttl_secs = i64::try_from(ttl.as_secs().max(1)).unwrap_or(60);
        let lease = self.bounded(c.lease_grant(ttl_secs, None)).await?.id();
        // Keep the lease alive from the start: waiting for the lock may take
        // longer than its ttl.
        let keeper = {
            let mut c = c.clone();
            let describe = self.describe();
            tokio::spawn(async move {
                let every = Duration::from_secs(u64::try_from(ttl_secs).unwrap_or(1)) / 3;
                loop {
                    match c.lease_keep_alive(lease).await {
                        Ok((mut keeper, mut stream)) => loop {
                            if keeper.keep_alive().await.is_err() {
                                break;
                            }
                            match tokio::time::timeout(every * 2, stream.message()).await {
                                Ok(Ok(Some(resp))) if resp.ttl() > 0 => {}
                                Ok(Ok(Some(_))) => {
                                    tracing::warn!(store = %describe, "the lease of an ACME lock expired");
                                    return;
                                }
                                _ => break,
                            }
                            tokio::time::sleep(every.max(Duration::from_millis(200))).await;
                        },
                        Err(e) => {
                            tracing::warn!(store = %describe, "cannot renew a lock's lease: {e}")
                        }
                    }
                    tokio::time::sleep(Duration::from_millis(500)).await;
                }
            })
        };
        let locked = tokio::time::timeout(
            wait,
            c.lock(full.clone(), Some(LockOptions::new().with_lease(lease))),
        )
        .await;
        let key = match locked {
            Ok(Ok(resp)) => resp.key().to_vec(),
            Ok(Err(e)) => {
                keeper.abort();
                let _ = self.bounded(c.lease_revoke(lease)).await;
                return Err(self.error(e));
            }
            Err(_) => {
                keeper.abort();
                let _ = self.bounded(c.lease_revoke(lease)).await;
                return Err(StoreError::lock_timeout(self.describe(), name, wait));
            }
        };
        Ok(Box::new(EtcdLock {
            client: c,
            prefix: self.settings.prefix.clone(),
            describe: self.describe(),
            timeout: self.settings.timeout,
            lease,
            key,
            keeper,
            released: false,
        }))
    }
}

struct EtcdLock {
    client: Client,
    prefix: String,
    describe: String,
    timeout: Duration,
    lease: i64,
    key: Vec<u8>,
    keeper: tokio::task::JoinHandle<()>,
    /// Set by `release`, so that the drop that follows revokes nothing.
    released: bool,
}

#[async_trait]
impl HeldLock for EtcdLock {
    async fn put_bound(&self, key: &str, value: &[u8]) -> Result<(), StoreError> {
        if !valid_key(key) {
            return Err(StoreError::Failed {
                store: self.describe.clone(),
                detail: format!("refused key {key:?}"),
            });
        }
        let mut c = self.client.clone();
        let put = c.put(
            format!("{}{key}", self.prefix),
            value.to_vec(),
            Some(PutOptions::new().with_lease(self.lease)),
        );
        match tokio::time::timeout(self.timeout, put).await {
            Ok(Ok(_)) => Ok(()),
            Ok(Err(e)) => Err(StoreError::Failed {
                store: self.describe.clone(),
                detail: e.to_string(),
            }),
            Err(_) => Err(StoreError::Unreachable {
                store: self.describe.clone(),
                detail: format!("no answer within {} ms", self.timeout.as_millis()),
            }),
        }
    }

    async fn release(mut self: Box<Self>) {
        self.keeper.abort();
        let mut c = self.client.clone();
        let _ = tokio::time::timeout(self.timeout, c.unlock(self.key.clone())).await;
        // Revoking deletes the keys bound to the lease (challenge answers).
        let _ = tokio::time::timeout(self.timeout, c.lease_revoke(self.lease)).await;
        self.released = true;
    }
}

impl Drop for EtcdLock {
    fn drop(&mut self) {
        // Dropped without release (the order was cancelled): stop renewing,
        // and revoke if a runtime is still there; else the lease runs out.
        self.keeper.abort();
        if self.released {
            return;
        }
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            let mut c = self.client.clone();
            let (lease, timeout) = (self.lease, self.timeout);
            rt.spawn(async move {
                let _ = tokio::time::timeout(timeout, c.lease_revoke(lease)).await;
            });
        }
    }
}

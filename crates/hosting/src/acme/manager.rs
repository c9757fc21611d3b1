//! The public façade: on-demand orders, the background renewal loop and the
//! per-domain state shown by `htgate cert list/check`.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use futures_util::StreamExt;
use instant_acme::Account;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::challenges::Challenges;
use super::error::AcmeError;
use super::issue;
use super::profiles;
use super::renewal_info::{self, RenewalPlan};
use super::schedule::{backoff_delay, normalize, renewal_due, skip_reason};
use super::settings::AcmeSettings;
use super::store::{self, StoredCert};
use htgate_util::unix_now;

/// Bound on one whole order (account, validation, issuance), so a CA that
/// stops answering mid-order cannot stall the renewal loop forever.
const ORDER_TIMEOUT: Duration = Duration::from_secs(300);

/// The loop re-checks at least this often, so a clock jump or a certificate
/// replaced on disk by hand is noticed within the hour.
const MAX_SLEEP: Duration = Duration::from_secs(3600);

/// Orders that run at once: a host adding many sites does not wait for
/// them one by one (an order takes seconds to minutes), and the CA is not
/// flooded (Let's Encrypt counts new orders per account and per hour).
pub(super) const CONCURRENT_ORDERS: usize = 4;

/// Renewal-information requests at once (each is one small GET; a host
/// with thousands of certificates is not asked one by one).
const RENEWAL_INFO_FETCHES: usize = 8;

/// Bound on loading the account (the CA's directory) before asking for
/// renewal information: the renewal loop waits for it.
const ACCOUNT_TIMEOUT: Duration = Duration::from_secs(30);

/// A certificate whose renewal information is due: name, certificate,
/// what was known.
type Due = (String, StoredCert, Option<renewal_info::RenewalRecord>);

/// What `htgate cert list/check` shows for one domain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DomainStatus {
    pub domain: String,
    /// Expiry of the stored certificate, Unix seconds.
    pub not_after: Option<i64>,
    /// The last failure, in plain words; cleared by a success.
    pub last_error: Option<String>,
    /// Consecutive failures.
    pub failures: u32,
    /// When the loop tries again after a failure, Unix seconds.
    pub next_attempt: Option<i64>,
    /// When the stored certificate is renewed and why: the CA's renewal
    /// window (ARI) or the third-of-lifetime rule.
    pub renewal: Option<RenewalPlan>,
}

#[derive(Default, Clone, serde::Serialize, serde::Deserialize)]
struct DomainState {
    failures: u32,
    last_error: Option<String>,
    next_attempt: Option<i64>,
}

/// Failures are kept on disk (`storage/failures.toml`): a restart must not
/// reset the back-off (and hammer the CA), and `htgate cert check`, which
/// runs in its own process, reports a renewal that keeps failing.
const FAILURES_FILE: &str = "failures.toml";

fn load_failures(storage: &std::path::Path) -> HashMap<String, DomainState> {
    std::fs::read_to_string(storage.join(FAILURES_FILE))
        .ok()
        .and_then(|t| toml::from_str(&t).ok())
        .unwrap_or_default()
}

/// Keeps certificates issued and renewed for a changing list of domains.
pub struct AcmeManager {
    settings: AcmeSettings,
    challenges: Challenges,
    state: Mutex<HashMap<String, DomainState>>,
    /// The account, loaded once; `None` until the first order.
    account: tokio::sync::Mutex<Option<Account>>,
    /// Orders running at once, at most [`CONCURRENT_ORDERS`]: CAs
    /// rate-limit orders per account.
    order_slots: tokio::sync::Semaphore,
    /// One order per name at a time: the loop and an admin's `renew_now`
    /// must not order the same name twice.
    name_locks: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
    /// Orders running now, and the most there were at once (the tests
    /// show the limit is used and kept).
    orders_now: std::sync::atomic::AtomicUsize,
    most_at_once: std::sync::atomic::AtomicUsize,
    /// In a cluster: one order per domain across all nodes, certificates
    /// and the account shared through the store.
    cluster: Option<Arc<crate::cluster::Cluster>>,
    /// Each site's ACME profile by domain (see [`AcmeManager::set_site_profiles`]).
    site_profiles: Mutex<HashMap<String, String>>,
}

impl AcmeManager {
    pub fn new(settings: AcmeSettings) -> Arc<Self> {
        Arc::new(AcmeManager {
            state: Mutex::new(load_failures(&settings.storage)),
            settings,
            challenges: Challenges::default(),
            account: tokio::sync::Mutex::new(None),
            order_slots: tokio::sync::Semaphore::new(CONCURRENT_ORDERS),
            name_locks: Mutex::new(HashMap::new()),
            orders_now: Default::default(),
            most_at_once: Default::default(),
            cluster: None,
            site_profiles: Mutex::default(),
        })
    }

    /// A manager that coordinates with the other nodes of `cluster`; its
    /// HTTP-01 answers are the cluster's (every node's).
    pub(crate) fn clustered(
        settings: AcmeSettings,
        cluster: Arc<crate::cluster::Cluster>,
    ) -> Arc<Self> {
        Arc::new(AcmeManager {
            state: Mutex::new(load_failures(&settings.storage)),
            settings,
            challenges: cluster.challenges(),
            account: tokio::sync::Mutex::new(None),
            order_slots: tokio::sync::Semaphore::new(CONCURRENT_ORDERS),
            name_locks: Mutex::new(HashMap::new()),
            orders_now: Default::default(),
            most_at_once: Default::default(),
            cluster: Some(cluster),
            site_profiles: Mutex::default(),
        })
    }

    /// Stores a certificate another node got (from the cluster's watch);
    /// `Ok(true)` when it replaced what was stored here.
    pub(crate) fn install_shared(&self, cert: &StoredCert) -> Result<bool, AcmeError> {
        let domain = normalize(&cert.domain);
        if self
            .stored(&domain)
            .is_some_and(|have| have.chain_pem == cert.chain_pem)
        {
            return Ok(false);
        }
        store::save_cert(&self.settings.storage, cert)?;
        self.record_success(&domain);
        Ok(true)
    }

    /// The sites' own ACME profiles (`acme_profile`), by domain; replaces
    /// the previous map (a configuration reload calls it again).
    pub fn set_site_profiles(&self, by_domain: HashMap<String, String>) {
        let normalized = by_domain
            .into_iter()
            .map(|(domain, profile)| (normalize(&domain), profile))
            .collect();
        *self
            .site_profiles
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = normalized;
    }

    /// The pending HTTP-01 answers, for the HTTP server.
    pub fn challenges(&self) -> Challenges {
        self.challenges.clone()
    }

    pub fn settings(&self) -> &AcmeSettings {
        &self.settings
    }

    /// Certificate stored on disk for this domain (storage/certificates/<domain>/fullchain.pem + privkey.pem), if any.
    pub fn stored(&self, domain: &str) -> Option<StoredCert> {
        store::load_cert(&self.settings.storage, &normalize(domain))
    }

    /// Whether `cert` is due for renewal at `now` (Unix seconds) by the
    /// lifetime rule alone (tests; the loop asks [`Self::renewal_time`],
    /// which knows the CA's window).
    #[cfg(test)]
    pub(crate) fn needs_renewal(&self, cert: &StoredCert, now: i64) -> bool {
        now >= renewal_due(cert.not_before, cert.not_after, self.settings.renew_before)
    }

    /// One order for one DNS name over HTTP-01; the result is stored and
    /// recorded in [`AcmeManager::status`] (a failure starts the back-off the
    /// background loop honours; this call itself never waits for it).
    pub(crate) async fn obtain(&self, domain: &str) -> Result<StoredCert, AcmeError> {
        let domain = normalize(domain);
        if let Some(reason) = skip_reason(&domain) {
            return Err(AcmeError::NotEligible { domain, reason });
        }
        let name_lock = self
            .name_locks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(domain.clone())
            .or_default()
            .clone();
        let _this_name = name_lock.lock().await;
        // Never closed: `None` cannot happen, and would only mean no limit.
        let _slot = self.order_slots.acquire().await.ok();
        let _counted = OrderCount::enter(self);
        // In a cluster: the lock first (while another node orders this
        // name, wait for it), then look again: that node may have stored
        // a certificate that makes this order unnecessary.
        let lock = match &self.cluster {
            Some(cluster) => {
                let wait = ORDER_TIMEOUT + ORDER_TIMEOUT / 2;
                match cluster.acme_lock(&domain, wait).await {
                    Ok(lock) => Some(lock),
                    Err(e) => {
                        let err = AcmeError::Cluster {
                            domain: domain.clone(),
                            detail: format!("cannot take the cluster's ACME lock: {e}"),
                        };
                        htgate_telemetry::metrics::acme_failure();
                        let (failures, retry_in) = self.record_failure(&domain, &err);
                        let next_try = next_try_at(retry_in);
                        tracing::warn!(domain, outcome = "failed", failures, retry_in_s = retry_in.as_secs(), next_try = %next_try, error = %err, "ACME order not started");
                        return Err(err);
                    }
                }
            }
            None => None,
        };
        let result = self.obtain_locked(&domain, lock.as_deref()).await;
        if let Some(lock) = lock {
            lock.release().await;
        }
        result
    }

    /// The order itself, with the cluster's lock (if any) held.
    async fn obtain_locked(
        &self,
        domain: &str,
        lock: Option<&dyn crate::cluster::HeldLock>,
    ) -> Result<StoredCert, AcmeError> {
        let domain = domain.to_string();
        if let (Some(cluster), Some(_)) = (&self.cluster, lock) {
            match cluster.shared_cert(&domain).await {
                // Not due by its own plan (the CA's renewal window for
                // this very certificate, else the lifetime rule): another
                // node's fresh certificate is used, while the one being
                // renewed early (ARI) is not mistaken for a replacement.
                // (Comparing it with the stored one instead would order
                // again after the shared one had been synced here.)
                Ok(Some(shared))
                    if shared.not_before <= unix_now()
                        && self.renewal_time(&domain, &shared).0 > unix_now() =>
                {
                    self.install_shared(&shared)?;
                    tracing::info!(
                        domain,
                        expires = %htgate_util::fmt_time(shared.not_after),
                        "another node ordered this certificate: using it"
                    );
                    return Ok(shared);
                }
                Ok(_) => {}
                Err(e) => {
                    return Err(AcmeError::Cluster {
                        domain,
                        detail: format!("cannot read the shared certificate: {e}"),
                    })
                }
            }
            self.adopt_shared_account(cluster).await;
        }
        let kind = if self.stored(&domain).is_some() {
            "renewal"
        } else {
            "issuance"
        };
        let started = Instant::now();
        let result = match tokio::time::timeout(ORDER_TIMEOUT, self.order(&domain, lock)).await {
            Ok(result) => result,
            Err(_) => Err(AcmeError::Timeout {
                domain: domain.clone(),
                stage: "running the order",
                after: ORDER_TIMEOUT,
            }),
        };
        let duration_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        if let (Ok(cert), Some(cluster)) = (&result, &self.cluster) {
            // Before the lock goes: the next node to take it must find it.
            if let Err(e) = cluster.publish_cert(cert).await {
                tracing::error!(target: "cluster", domain, "cannot share the new certificate with the other nodes (they will order their own): {e}");
            }
            self.publish_account(cluster).await;
        }
        match &result {
            Ok(cert) => {
                self.record_success(&domain);
                tracing::info!(
                    domain,
                    kind,
                    outcome = "ok",
                    duration_ms,
                    expires = %htgate_util::fmt_time(cert.not_after),
                    "ACME certificate stored"
                );
            }
            Err(err) => {
                htgate_telemetry::metrics::acme_failure();
                let (failures, retry_in) = self.record_failure(&domain, err);
                let next_try = next_try_at(retry_in);
                tracing::warn!(domain, kind, outcome = "failed", duration_ms, failures, retry_in_s = retry_in.as_secs(), next_try = %next_try, error = %err, "ACME order failed");
            }
        }
        result
    }

    /// Force renewal of a domain now (used by tests and by an admin command).
    pub async fn renew_now(&self, domain: &str) -> Result<StoredCert, AcmeError> {
        self.obtain(domain).await
    }

    /// Account, order, store; retried once with a new account when the CA
    /// has forgotten the stored one (pebble restarts, deactivation).
    async fn order(
        &self,
        domain: &str,
        lock: Option<&dyn crate::cluster::HeldLock>,
    ) -> Result<StoredCert, AcmeError> {
        let mut fresh = false;
        loop {
            let account = self.account(fresh).await?;
            let options = self.order_options(&account, domain)?;
            htgate_telemetry::metrics::acme_order();
            match issue::new_order(&account, domain, &options).await {
                Ok(order) => {
                    let replaces = options.replaces.as_ref().map(ToString::to_string);
                    tracing::info!(domain, profile = ?options.profile, replaces = ?replaces, "placed an ACME order");
                    let cert = issue::complete_order(order, domain, &self.challenges, lock).await?;
                    store::save_cert(&self.settings.storage, &cert)?;
                    return Ok(cert);
                }
                Err(Some(err)) => return Err(err),
                Err(None) if !fresh => {
                    tracing::warn!(
                        domain,
                        "the CA does not know the stored ACME account; creating a new one"
                    );
                    fresh = true;
                }
                Err(None) => {
                    return Err(AcmeError::AccountRefused {
                        url: self.settings.directory_url.clone(),
                        detail: "the CA does not recognise a freshly created account".to_string(),
                    })
                }
            }
        }
    }

    /// The profile (checked against the directory: an unlisted one is an
    /// error and no order) and, on a renewal, the certificate replaced.
    fn order_options(
        &self,
        account: &Account,
        domain: &str,
    ) -> Result<issue::OrderOptions, AcmeError> {
        let wanted = {
            let sites = self
                .site_profiles
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            profiles::wanted(&sites, self.settings.profile.as_deref(), domain).map(str::to_string)
        };
        let listed = profiles::listed(account);
        let profile = profiles::check(
            wanted.as_deref(),
            &listed,
            domain,
            &self.settings.directory_url,
        )?;
        // Not when the CA is known to offer no renewal information (if
        // unknown, instant-acme refuses it locally and the order goes
        // without it).
        let record = renewal_info::load(&self.settings.storage, domain);
        let replaces = self
            .stored(domain)
            .and_then(|old| renewal_info::identifier(&old).ok())
            .filter(|id| {
                !record
                    .as_ref()
                    .is_some_and(|r| !r.offered && r.cert_id == id.to_string())
            });
        Ok(issue::OrderOptions { replaces, profile })
    }

    /// Uses the cluster's account when there is one (one account for all
    /// nodes: CAs rate-limit per account).
    async fn adopt_shared_account(&self, cluster: &crate::cluster::Cluster) {
        let path = self.settings.storage.join(store::ACCOUNT_FILE);
        match cluster.shared_account().await {
            Ok(Some(text)) => {
                if std::fs::read(&path).ok().as_deref() != Some(text.as_slice()) {
                    let written = std::fs::create_dir_all(&self.settings.storage)
                        .and_then(|()| store::write_atomic(&path, &text, 0o600));
                    match written {
                        Ok(()) => *self.account.lock().await = None,
                        Err(e) => {
                            tracing::warn!(target: "cluster", "cannot store the cluster's ACME account in {}: {e}", path.display())
                        }
                    }
                }
            }
            Ok(None) => {}
            Err(e) => {
                tracing::warn!(target: "cluster", "cannot read the cluster's ACME account: {e}")
            }
        }
    }

    /// Shares this node's account if the cluster has none or another one.
    async fn publish_account(&self, cluster: &crate::cluster::Cluster) {
        let path = self.settings.storage.join(store::ACCOUNT_FILE);
        let Ok(text) = std::fs::read(&path) else {
            return;
        };
        if cluster.shared_account().await.ok().flatten().as_deref() != Some(text.as_slice()) {
            if let Err(e) = cluster.publish_account(&text).await {
                tracing::warn!(target: "cluster", "cannot share the ACME account: {e}");
            }
        }
    }

    async fn account(&self, fresh: bool) -> Result<Account, AcmeError> {
        let mut cached = self.account.lock().await;
        if let (Some(account), false) = (cached.as_ref(), fresh) {
            return Ok(account.clone());
        }
        let account = issue::load_or_create_account(&self.settings, fresh).await?;
        *cached = Some(account.clone());
        Ok(account)
    }

    fn state(&self) -> MutexGuard<'_, HashMap<String, DomainState>> {
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn record_success(&self, domain: &str) {
        let mut state = self.state();
        state.insert(domain.to_string(), DomainState::default());
        self.save_failures(&state);
    }

    /// Writes the failing domains (best effort: the log has the failure).
    fn save_failures(&self, state: &HashMap<String, DomainState>) {
        let failing: std::collections::BTreeMap<&String, &DomainState> =
            state.iter().filter(|(_, s)| s.failures > 0).collect();
        let path = self.settings.storage.join(FAILURES_FILE);
        let result = toml::to_string(&failing)
            .map_err(|e| std::io::Error::other(e.to_string()))
            .and_then(|text| {
                std::fs::create_dir_all(&self.settings.storage)?;
                store::write_atomic(&path, text.as_bytes(), 0o600)
            });
        if let Err(e) = result {
            tracing::warn!("cannot record ACME failures in {}: {e}", path.display());
        }
    }

    /// Count the failure and schedule the next try; returns (failures, wait).
    fn record_failure(&self, domain: &str, err: &AcmeError) -> (u32, Duration) {
        let mut state = self.state();
        let entry = state.entry(domain.to_string()).or_default();
        entry.failures = entry.failures.saturating_add(1);
        let wait = backoff_delay(self.settings.retry_base, entry.failures);
        entry.next_attempt =
            Some(unix_now() + i64::try_from(wait.as_secs()).unwrap_or(i64::MAX / 2));
        entry.last_error = Some(err.to_string());
        let out = (entry.failures, wait);
        self.save_failures(&state);
        out
    }

    /// Asks the CA for the renewal information that is due of the stored
    /// certificates of `list`, [`RENEWAL_INFO_FETCHES`] at a time; once the
    /// CA does not answer, the rest wait for the next try too (a CA that
    /// is down costs one timeout per pass, not one per certificate).
    async fn refresh_renewal_info(&self, list: &[String]) {
        let storage = &self.settings.storage;
        let now = unix_now();
        let mut seen = HashSet::new();
        let due: Vec<Due> = list
            .iter()
            .map(|raw| normalize(raw))
            .filter(|domain| skip_reason(domain).is_none() && seen.insert(domain.clone()))
            .filter_map(|domain| {
                let cert = self.stored(&domain)?;
                let record = renewal_info::load(storage, &domain);
                renewal_info::fetch_due(&cert, record.as_ref(), now)
                    .then_some((domain, cert, record))
            })
            .collect();
        if due.is_empty() {
            return;
        }
        // The account (and with it the directory) is loaded once; bounded,
        // since the loop waits for this.
        let account = match tokio::time::timeout(ACCOUNT_TIMEOUT, self.account(false)).await {
            Ok(Ok(account)) => account,
            Ok(Err(e)) => return self.not_fetched(&due, now, &e.to_string()),
            Err(_) => {
                let error = format!(
                    "the ACME directory gave no answer within {}s",
                    ACCOUNT_TIMEOUT.as_secs()
                );
                return self.not_fetched(&due, now, &error);
            }
        };
        let down = std::sync::atomic::AtomicBool::new(false);
        let (account, down) = (&account, &down);
        futures_util::stream::iter(due.into_iter().map(|(domain, cert, before)| async move {
            use std::sync::atomic::Ordering::Relaxed;
            let record = if down.load(Relaxed) {
                let error = "the CA did not answer another request of this pass".to_string();
                renewal_info::not_fetched(&cert, before.as_ref(), &self.settings, now, error)
            } else {
                let (record, answered) =
                    renewal_info::fetch(account, &self.settings, &cert, before.as_ref(), now).await;
                if !answered {
                    down.store(true, Relaxed);
                }
                record
            };
            renewal_info::log_change(&domain, before.as_ref(), &record);
            renewal_info::save(storage, &domain, &record);
        }))
        .buffer_unordered(RENEWAL_INFO_FETCHES)
        .collect::<Vec<()>>()
        .await;
    }

    /// Records that renewal information could not be asked for `due`.
    fn not_fetched(&self, due: &[Due], now: i64, error: &str) {
        for (domain, cert, before) in due {
            let record = renewal_info::not_fetched(
                cert,
                before.as_ref(),
                &self.settings,
                now,
                error.to_string(),
            );
            renewal_info::log_change(domain, before.as_ref(), &record);
            renewal_info::save(&self.settings.storage, domain, &record);
        }
    }

    /// When `cert` is renewed (Unix seconds), and when its renewal
    /// information is fetched next: the CA's window when it offered one,
    /// else the third-of-lifetime rule.
    fn renewal_time(&self, domain: &str, cert: &StoredCert) -> (i64, Option<i64>) {
        let record = renewal_info::load(&self.settings.storage, domain);
        let plan = renewal_info::plan(cert, record.as_ref(), self.settings.renew_before);
        let next_fetch = record.filter(|r| r.offered).map(|r| r.next_fetch);
        (plan.renew_at(), next_fetch)
    }

    /// A manager answering HTTP-01 from `challenges` (tests: one
    /// challenge server for several managers).
    #[cfg(test)]
    pub(crate) fn with_challenges(settings: AcmeSettings, challenges: Challenges) -> Arc<Self> {
        let mut manager = Self::new(settings);
        if let Some(fresh) = Arc::get_mut(&mut manager) {
            fresh.challenges = challenges;
        }
        manager
    }

    /// The most orders that ran at once since the start.
    #[cfg(test)]
    pub(crate) fn most_orders_at_once(&self) -> usize {
        self.most_at_once.load(std::sync::atomic::Ordering::Relaxed)
    }

    pub fn status(&self) -> Vec<DomainStatus> {
        let mut names: BTreeSet<String> = self.state().keys().cloned().collect();
        names.extend(store::stored_domains(&self.settings.storage));
        names
            .into_iter()
            .map(|domain| {
                let stored = self.stored(&domain);
                let not_after = stored.as_ref().map(|cert| cert.not_after);
                let renewal = stored.as_ref().map(|cert| {
                    let record = renewal_info::load(&self.settings.storage, &domain);
                    renewal_info::plan(cert, record.as_ref(), self.settings.renew_before)
                });
                let state = self.state();
                let entry = state.get(&domain);
                DomainStatus {
                    not_after,
                    last_error: entry.and_then(|e| e.last_error.clone()),
                    failures: entry.map_or(0, |e| e.failures),
                    next_attempt: entry.and_then(|e| e.next_attempt),
                    renewal,
                    domain,
                }
            })
            .collect()
    }

    /// Background loop: keeps every domain in `domains` issued and renewed;
    /// calls `on_cert(domain)` after every new certificate; ends when the
    /// watch sender is dropped (shutdown).
    pub fn spawn(
        self: &Arc<Self>,
        mut domains: watch::Receiver<Vec<String>>,
        on_cert: Arc<dyn Fn(&str) + Send + Sync>,
    ) -> JoinHandle<()> {
        let manager = Arc::clone(self);
        tokio::spawn(async move {
            let mut reported_skips = HashSet::new();
            loop {
                let list = domains.borrow_and_update().clone();
                let next_due = manager.run_due(&list, &mut reported_skips, &on_cert).await;
                let wait = next_due.map_or(MAX_SLEEP, |due| {
                    Duration::from_secs(u64::try_from(due - unix_now()).unwrap_or(0))
                        .clamp(Duration::from_secs(1), MAX_SLEEP)
                });
                tokio::select! {
                    _ = tokio::time::sleep(wait) => {}
                    changed = domains.changed() => {
                        if changed.is_err() {
                            tracing::info!("ACME renewal loop stopped: the domain list was dropped");
                            return;
                        }
                    }
                }
            }
        })
    }

    /// One pass over `list`: order what is due, and return the earliest time
    /// (Unix seconds) something else becomes due.
    async fn run_due(
        &self,
        list: &[String],
        reported_skips: &mut HashSet<String>,
        on_cert: &Arc<dyn Fn(&str) + Send + Sync>,
    ) -> Option<i64> {
        self.refresh_renewal_info(list).await;
        let mut next_due: Option<i64> = None;
        let mut earliest = |t: i64| next_due = Some(next_due.map_or(t, |n| n.min(t)));
        let mut seen = HashSet::new();
        let mut due: Vec<(bool, String)> = Vec::new();
        for raw in list {
            let domain = normalize(raw);
            if !seen.insert(domain.clone()) {
                continue;
            }
            if let Some(reason) = skip_reason(&domain) {
                if reported_skips.insert(domain.clone()) {
                    tracing::warn!(domain, reason, "no ACME certificate for this name");
                }
                continue;
            }
            self.state().entry(domain.clone()).or_default();
            let now = unix_now();
            let retry_at = self.state().get(&domain).and_then(|s| s.next_attempt);
            if let Some(at) = retry_at.filter(|&at| at > now) {
                earliest(at);
                continue;
            }
            let stored = self.stored(&domain);
            if let Some(cert) = &stored {
                let (renew_at, next_fetch) = self.renewal_time(&domain, cert);
                if now < renew_at {
                    earliest(next_fetch.map_or(renew_at, |f| f.min(renew_at)));
                    continue;
                }
            }
            let serving = stored.is_some_and(|c| c.not_after > now);
            due.push((serving, domain));
        }
        by_urgency(&mut due);
        let mut orders =
            futures_util::stream::iter(due.into_iter().map(|(_, domain)| async move {
                let result = self.obtain(&domain).await;
                (domain, result)
            }))
            .buffer_unordered(CONCURRENT_ORDERS);
        while let Some((domain, result)) = orders.next().await {
            match result {
                Ok(cert) => {
                    on_cert(&domain);
                    earliest(renewal_due(
                        cert.not_before,
                        cert.not_after,
                        self.settings.renew_before,
                    ));
                    // The new certificate's renewal information is asked
                    // for in the next pass, not an hour later.
                    earliest(unix_now() + 1);
                }
                Err(_) => {
                    // Already logged and recorded by `obtain`.
                    if let Some(at) = self.state().get(&domain).and_then(|s| s.next_attempt) {
                        earliest(at);
                    }
                }
            }
        }
        next_due
    }
}

/// When a failed order is tried again, as people read it in the log.
fn next_try_at(retry_in: Duration) -> String {
    let secs = i64::try_from(retry_in.as_secs()).unwrap_or(i64::MAX);
    htgate_util::fmt_time(unix_now().saturating_add(secs))
}

/// Counts an order in `orders_now` for as long as it lives.
struct OrderCount<'a>(&'a AcmeManager);

impl<'a> OrderCount<'a> {
    fn enter(m: &'a AcmeManager) -> OrderCount<'a> {
        use std::sync::atomic::Ordering::Relaxed;
        let now = m.orders_now.fetch_add(1, Relaxed) + 1;
        m.most_at_once.fetch_max(now, Relaxed);
        OrderCount(m)
    }
}

impl Drop for OrderCount<'_> {
    fn drop(&mut self) {
        self.0
            .orders_now
            .fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
    }
}

/// Names that have no valid certificate (their visitors see an error now)
/// before renewals of certificates that still serve; list order otherwise.
/// `due`: (a valid certificate serves it, the name).
fn by_urgency(due: &mut [(bool, String)]) {
    due.sort_by_key(|(serving, _)| *serving);
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::PrivateKeyDer;

    /// README.md and SECURITY.md give the number.
    #[test]
    fn the_documents_name_the_concurrent_order_limit() {
        let readme = include_str!("../../../../README.md");
        assert!(readme.contains(&format!("`CONCURRENT_ORDERS` ({CONCURRENT_ORDERS})")));
        let security = include_str!("../../../../SECURITY.md");
        assert!(security.contains(&format!("| ACME orders at once | {CONCURRENT_ORDERS};")));
    }

    /// A failed order's log line gives the next try as a date people
    /// read (`next_try=2026-12-07 14:31:00 UTC`), not seconds alone.  (The
    /// line itself is not captured here: a scoped tracing subscriber in a
    /// test process whose other threads log is not reliable.)
    #[test]
    fn the_next_try_is_a_date() {
        let t = next_try_at(Duration::from_secs(3600));
        let parsed = chrono::NaiveDateTime::parse_from_str(&t, "%Y-%m-%d %H:%M:%S UTC")
            .unwrap_or_else(|e| panic!("{t}: {e}"));
        let at = parsed.and_utc().timestamp();
        let want = unix_now() + 3600;
        assert!((want - 5..=want).contains(&at), "{t}");
    }

    #[test]
    fn names_without_a_valid_certificate_are_ordered_first() {
        let mut due: Vec<(bool, String)> = [(true, "a"), (false, "b"), (true, "c"), (false, "d")]
            .iter()
            .map(|(s, n)| (*s, n.to_string()))
            .collect();
        by_urgency(&mut due);
        let names: Vec<&str> = due.iter().map(|(_, n)| n.as_str()).collect();
        assert_eq!(names, ["b", "d", "a", "c"]);
    }

    const DAY: i64 = 24 * 60 * 60;

    fn manager(renew_before: Option<Duration>) -> Arc<AcmeManager> {
        let mut settings = AcmeSettings::new("https://127.0.0.1:1/dir", "/nonexistent/htgate-acme");
        settings.renew_before = renew_before;
        AcmeManager::new(settings)
    }

    fn cert(not_before: i64, lifetime_days: i64) -> StoredCert {
        StoredCert {
            domain: "example.com".into(),
            chain_pem: String::new(),
            key_pem: String::new(),
            chain: Vec::new(),
            key: PrivateKeyDer::Pkcs8(Vec::new().into()),
            not_before,
            not_after: not_before + lifetime_days * DAY,
        }
    }

    #[test]
    fn needs_renewal_at_a_third_left_or_renew_before() {
        let t0 = 1_700_000_000;
        let m = manager(None);
        let c90 = cert(t0, 90);
        assert!(!m.needs_renewal(&c90, t0 + 60 * DAY - 1));
        assert!(m.needs_renewal(&c90, t0 + 60 * DAY));
        let c45 = cert(t0, 45);
        assert!(!m.needs_renewal(&c45, t0 + 30 * DAY - 1));
        assert!(m.needs_renewal(&c45, t0 + 30 * DAY));
        assert!(
            m.needs_renewal(&c45, t0 + 50 * DAY),
            "expired certificates are due"
        );

        let m = manager(Some(Duration::from_secs(7 * DAY as u64)));
        assert!(!m.needs_renewal(&c90, t0 + 83 * DAY - 1));
        assert!(m.needs_renewal(&c90, t0 + 83 * DAY));
    }

    #[tokio::test]
    async fn wildcards_and_ips_are_refused_without_contacting_the_ca() {
        let m = manager(None);
        for name in ["*.example.com", "192.0.2.7", "::1"] {
            let err = m.obtain(name).await.expect_err(name);
            assert!(
                matches!(err, AcmeError::NotEligible { .. }),
                "{name}: {err}"
            );
        }
        assert!(m.status().is_empty(), "refusals are not failures");
    }

    #[tokio::test]
    async fn the_loop_skips_wildcards_and_ips() {
        let m = manager(None);
        let (tx, rx) = watch::channel(vec!["*.example.com".to_string(), "203.0.113.5".to_string()]);
        let calls = Arc::new(Mutex::new(0u32));
        let counter = Arc::clone(&calls);
        let handle = m.spawn(
            rx,
            Arc::new(move |_: &str| *counter.lock().unwrap_or_else(|p| p.into_inner()) += 1),
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        drop(tx);
        tokio::time::timeout(Duration::from_secs(5), handle)
            .await
            .expect("the loop ends when the list is dropped")
            .expect("no panic");
        assert_eq!(*calls.lock().unwrap_or_else(|p| p.into_inner()), 0);
        assert!(
            m.status().is_empty(),
            "skipped names are neither ordered nor failed"
        );
    }

    #[tokio::test]
    async fn an_unreachable_directory_is_named_and_backs_off() {
        // Port 1 on loopback: nothing listens, the connection is refused at once.
        let tmp = tempfile::tempdir().expect("tempdir");
        let mut settings = AcmeSettings::new("https://127.0.0.1:1/dir", tmp.path());
        settings.retry_base = Duration::from_secs(60);
        let m = AcmeManager::new(settings);
        let before = unix_now();
        let err = m.obtain("example.com").await.expect_err("no CA");
        let text = err.to_string();
        assert!(
            matches!(err, AcmeError::DirectoryUnreachable { .. }),
            "{text}"
        );
        assert!(
            text.contains("https://127.0.0.1:1/dir") && text.contains("unreachable"),
            "{text}"
        );
        let err = m.obtain("example.com").await.expect_err("no CA");
        assert!(matches!(err, AcmeError::DirectoryUnreachable { .. }));
        let status = m.status();
        assert_eq!(status.len(), 1);
        assert_eq!(status[0].failures, 2);
        let next = status[0].next_attempt.expect("scheduled");
        assert!(
            next >= before + 120 && next <= unix_now() + 120,
            "second failure waits 2 x base"
        );
        assert!(status[0]
            .last_error
            .as_deref()
            .is_some_and(|e| e.contains("unreachable")));
    }
}

//! Renewal information (RFC 9773) and ACME profiles, end to end against
//! pebble with a directory double in front of it (`directory_double`):
//! the installed pebble (2.4.0) offers neither, so the double adds
//! `renewalInfo` windows and `meta.profiles` to pebble's real directory
//! and records the new orders' payloads; the orders themselves are real
//! pebble's. Skipped with a note without pebble, failing under `CI=true`.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::directory_double::{DirectoryDouble, Offer};
use super::error::AcmeError;
use super::pebble::{serve_challenges, Pebble};
use super::renewal_info::{self, RenewalPlan};
use super::schedule::renewal_due;
use super::{AcmeManager, AcmeSettings};
use htgate_util::unix_now;

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(60);
const HOUR: i64 = 3600;

/// Pebble, the double in front of it, and the challenge server; the
/// managers are made by the test (settings differ).
struct Rig {
    double: DirectoryDouble,
    server: tokio::task::JoinHandle<()>,
    challenges: super::Challenges,
    // Dropped last: kills pebble, then removes the storage.
    pebble: Pebble,
    storage: tempfile::TempDir,
}

impl Drop for Rig {
    fn drop(&mut self) {
        self.server.abort();
    }
}

impl Rig {
    async fn start(offer: Offer<'_>) -> Rig {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind challenge port");
        let port = listener.local_addr().expect("local addr").port();
        let pebble = Pebble::start_for_test(port).await;
        let double = DirectoryDouble::start(&pebble, offer)
            .await
            .unwrap_or_else(|e| panic!("the directory double did not start: {e}"));
        // One set of answers served for every manager of the test: they
        // share it through `manager_with`.
        let challenges = super::Challenges::default();
        let server = serve_challenges(listener, challenges.clone());
        Rig {
            double,
            server,
            challenges,
            pebble,
            storage: tempfile::tempdir().expect("tempdir"),
        }
    }

    /// Settings for the double's directory (pebble's root, 1 s retries,
    /// renewal information re-fetched after 1 s at the soonest).
    fn settings(&self) -> AcmeSettings {
        let mut settings = self.pebble.settings(self.storage.path().join("acme"));
        settings.directory_url = self.double.directory_url();
        settings.renewal_info_recheck = Duration::from_secs(1);
        settings
    }

    fn manager(&self, settings: AcmeSettings) -> Arc<AcmeManager> {
        AcmeManager::with_challenges(settings, self.challenges.clone())
    }

    async fn bounded<T>(&self, what: &str, fut: impl std::future::Future<Output = T>) -> T {
        match tokio::time::timeout(WAIT, fut).await {
            Ok(value) => value,
            Err(_) => panic!("timed out: {what}\n{}", self.pebble.logs()),
        }
    }

    /// Polls `done` every 50 ms, at most [`WAIT`].
    async fn until(&self, what: &str, mut done: impl FnMut() -> bool) {
        self.bounded(what, async {
            while !done() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
    }
}

/// The loop over `names`, reporting new certificates on the channel.
fn run_loop(
    manager: &Arc<AcmeManager>,
    names: &[&str],
) -> (
    watch::Sender<Vec<String>>,
    mpsc::UnboundedReceiver<String>,
    tokio::task::JoinHandle<()>,
) {
    let (list_tx, list_rx) = watch::channel(names.iter().map(|n| n.to_string()).collect());
    let (cert_tx, cert_rx) = mpsc::unbounded_channel::<String>();
    let on_cert = Arc::new(move |domain: &str| {
        let _ = cert_tx.send(domain.to_string());
    });
    (list_tx, cert_rx, manager.spawn(list_rx, on_cert))
}

fn suggested(manager: &AcmeManager, domain: &str) -> Option<(i64, i64, i64)> {
    let status = manager.status().into_iter().find(|s| s.domain == domain)?;
    match status.renewal? {
        RenewalPlan::Suggested {
            window_start,
            window_end,
            renew_at,
            ..
        } => Some((window_start, window_end, renew_at)),
        RenewalPlan::Lifetime { .. } => None,
    }
}

const ARI: Offer<'static> = Offer {
    renewal_info: true,
    profiles: &[],
};

/// (a) A window in the future: the renewal time is inside it, nothing is
/// ordered before it, and a restart keeps the chosen time without asking
/// the CA again before its Retry-After.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ari_future_window_sets_the_renewal_time_inside_it() {
    if !Pebble::available_or_skip("ari_future_window_sets_the_renewal_time_inside_it") {
        return;
    }
    let rig = Rig::start(ARI).await;
    let now = unix_now();
    let window = (now + 10 * HOUR, now + 20 * HOUR);
    rig.double.set(|c| {
        c.window = Some(window);
        c.retry_after = 6 * 3600;
    });
    let mut settings = rig.settings();
    // The CA's Retry-After (6 h) is honoured above this.
    settings.renewal_info_recheck = Duration::from_secs(3600);
    let m = rig.manager(settings.clone());
    let cert = rig
        .bounded("obtain", m.obtain("ari-a.test"))
        .await
        .unwrap_or_else(|e| panic!("obtain failed: {e}\n{}", rig.pebble.logs()));
    let id = renewal_info::identifier(&cert).expect("pebble's leaf has an AKI");

    let (list_tx, mut certs, task) = run_loop(&m, &["ari-a.test"]);
    rig.until("the window is fetched", || {
        suggested(&m, "ari-a.test").is_some()
    })
    .await;
    let (start, end, renew_at) = suggested(&m, "ari-a.test").expect("a window");
    assert_eq!((start, end), window);
    assert!((start..end).contains(&renew_at), "{renew_at} in {window:?}");
    assert_eq!(rig.double.seen().renewal_info, vec![id.to_string()]);
    // The loop went on to sleep: no order before the window.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(certs.try_recv().is_err(), "nothing renewed");
    assert_eq!(
        rig.double.seen().new_orders.len(),
        1,
        "only the first order"
    );
    drop(list_tx);
    rig.bounded("loop exit", task).await.expect("loop ends");

    // A restart: the stored choice and next fetch are kept.
    let record = renewal_info::load(&settings.storage, "ari-a.test").expect("stored record");
    assert!(
        record.next_fetch >= now + 6 * HOUR - 5,
        "Retry-After honoured"
    );
    let again = rig.manager(settings);
    assert_eq!(
        suggested(&again, "ari-a.test"),
        Some((start, end, renew_at))
    );
    let (list_tx, mut certs, task) = run_loop(&again, &["ari-a.test"]);
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        rig.double.seen().renewal_info.len(),
        1,
        "not asked again before the Retry-After"
    );
    assert!(certs.try_recv().is_err(), "no renewal after a restart");
    drop(list_tx);
    rig.bounded("loop exit", task).await.expect("loop ends");
}

/// (b) The window moves into the past (what a CA does before revoking):
/// renewed at once, and the order names the certificate it replaces.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ari_window_moved_into_the_past_renews_at_once_naming_the_old_certificate() {
    if !Pebble::available_or_skip(
        "ari_window_moved_into_the_past_renews_at_once_naming_the_old_certificate",
    ) {
        return;
    }
    let rig = Rig::start(ARI).await;
    let now = unix_now();
    rig.double.set(|c| {
        c.window = Some((now + 10 * HOUR, now + 20 * HOUR));
        c.retry_after = 1;
    });
    let m = rig.manager(rig.settings());
    let old = rig
        .bounded("obtain", m.obtain("ari-b.test"))
        .await
        .unwrap_or_else(|e| panic!("obtain failed: {e}\n{}", rig.pebble.logs()));
    let old_id = renewal_info::identifier(&old).expect("AKI").to_string();
    let first_order = &rig.double.seen().new_orders[0];
    assert!(
        first_order.get("replaces").is_none(),
        "a first issuance replaces nothing: {first_order}"
    );

    let (list_tx, mut certs, task) = run_loop(&m, &["ari-b.test"]);
    rig.until("the window is fetched", || {
        suggested(&m, "ari-b.test").is_some()
    })
    .await;
    let chosen = suggested(&m, "ari-b.test");
    // Asked again (Retry-After 1 s) with the same window: the same instant.
    rig.until("asked three times", || {
        rig.double.seen().renewal_info.len() >= 3
    })
    .await;
    assert_eq!(suggested(&m, "ari-b.test"), chosen, "the choice is kept");
    assert!(certs.try_recv().is_err(), "not renewed before the window");

    // Moved for this certificate only (a CA answers per certificate: the
    // new one gets the usual window).
    let moved_at = unix_now();
    rig.double.set(|c| {
        c.windows
            .insert(old_id.clone(), (moved_at - 2 * HOUR, moved_at - HOUR));
    });
    let renewed = rig.bounded("renewal", certs.recv()).await;
    assert_eq!(renewed.as_deref(), Some("ari-b.test"));
    let new = m.stored("ari-b.test").expect("stored");
    assert_ne!(new.serial_hex(), old.serial_hex(), "a new certificate");
    let orders = rig.double.seen().new_orders;
    assert_eq!(orders.len(), 2, "{orders:?}");
    assert_eq!(
        orders[1]["replaces"].as_str(),
        Some(old_id.as_str()),
        "the renewal names the old certificate: {}",
        orders[1]
    );
    // Within the recheck interval (1 s) plus one pass, not hours later.
    assert!(unix_now() - moved_at <= 20, "renewed at once");
    // The new certificate's window is asked for, and it is not renewed.
    tokio::time::sleep(Duration::from_millis(2500)).await;
    assert!(certs.try_recv().is_err(), "renewed only once");
    assert_eq!(rig.double.seen().new_orders.len(), 2);
    let new_id = renewal_info::identifier(&new).expect("AKI").to_string();
    assert!(
        rig.double.seen().renewal_info.contains(&new_id),
        "the new certificate's window was asked for"
    );
    drop(list_tx);
    rig.bounded("loop exit", task).await.expect("loop ends");
}

/// The CA refuses the `replaces` (alreadyReplaced): ordered once more
/// without it, and the renewal succeeds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ari_refused_replaces_orders_again_without_it() {
    if !Pebble::available_or_skip("ari_refused_replaces_orders_again_without_it") {
        return;
    }
    let rig = Rig::start(ARI).await;
    rig.double.set(|c| c.refuse_replaces = true);
    let m = rig.manager(rig.settings());
    let old = rig
        .bounded("obtain", m.obtain("ari-r.test"))
        .await
        .unwrap_or_else(|e| panic!("obtain failed: {e}\n{}", rig.pebble.logs()));
    let new = rig
        .bounded("renew", m.renew_now("ari-r.test"))
        .await
        .unwrap_or_else(|e| panic!("renewal failed: {e}\n{}", rig.pebble.logs()));
    assert_ne!(new.serial_hex(), old.serial_hex());
    let orders = rig.double.seen().new_orders;
    assert_eq!(orders.len(), 3, "{orders:?}");
    assert!(
        orders[1].get("replaces").is_some(),
        "refused: {}",
        orders[1]
    );
    assert!(orders[2].get("replaces").is_none(), "again: {}", orders[2]);
    assert_eq!(m.status()[0].failures, 0);
}

/// (c) No `renewalInfo` in the directory: the third-of-lifetime rule, no
/// fetch, and renewals name no certificate.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_renewal_info_the_third_of_lifetime_rule_applies() {
    if !Pebble::available_or_skip("without_renewal_info_the_third_of_lifetime_rule_applies") {
        return;
    }
    let rig = Rig::start(Offer {
        renewal_info: false,
        profiles: &[],
    })
    .await;
    let m = rig.manager(rig.settings());
    let cert = rig
        .bounded("obtain", m.obtain("plain.test"))
        .await
        .unwrap_or_else(|e| panic!("obtain failed: {e}\n{}", rig.pebble.logs()));
    let (list_tx, mut certs, task) = run_loop(&m, &["plain.test"]);
    let lifetime = |m: &AcmeManager| {
        m.status().into_iter().find_map(|s| match s.renewal {
            Some(RenewalPlan::Lifetime { renew_at, why }) if why.contains("offers no") => {
                Some(renew_at)
            }
            _ => None,
        })
    };
    rig.until("the loop finds no renewal information", || {
        lifetime(&m).is_some()
    })
    .await;
    assert_eq!(
        lifetime(&m),
        Some(renewal_due(cert.not_before, cert.not_after, None))
    );
    assert!(rig.double.seen().renewal_info.is_empty(), "nothing fetched");
    assert!(certs.try_recv().is_err(), "not renewed");
    drop(list_tx);
    rig.bounded("loop exit", task).await.expect("loop ends");

    rig.bounded("renew", m.renew_now("plain.test"))
        .await
        .unwrap_or_else(|e| panic!("renewal failed: {e}\n{}", rig.pebble.logs()));
    let orders = rig.double.seen().new_orders;
    assert_eq!(orders.len(), 2, "no retry: {orders:?}");
    assert!(orders[1].get("replaces").is_none(), "{}", orders[1]);
}

/// (d) A profile the directory lists is asked for; a site's unlisted one
/// is refused before any order, naming the site's domain and the list;
/// a directory listing none says so.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_listed_are_used_and_unlisted_ones_refused_without_an_order() {
    if !Pebble::available_or_skip(
        "profiles_listed_are_used_and_unlisted_ones_refused_without_an_order",
    ) {
        return;
    }
    let rig = Rig::start(Offer {
        renewal_info: true,
        profiles: &[
            ("classic", "90-day certificates"),
            ("shortlived", "6-day certificates"),
        ],
    })
    .await;
    let mut settings = rig.settings();
    settings.profile = Some("shortlived".to_string());
    let m = rig.manager(settings);
    rig.bounded("obtain", m.obtain("short.test"))
        .await
        .unwrap_or_else(|e| panic!("obtain failed: {e}\n{}", rig.pebble.logs()));
    let orders = rig.double.seen().new_orders;
    assert_eq!(orders.len(), 1);
    assert_eq!(orders[0]["profile"].as_str(), Some("shortlived"));

    // A site's own profile wins; an unlisted one is an error, no order.
    m.set_site_profiles([("Odd.Test".to_string(), "tiny".to_string())].into());
    let err = rig
        .bounded("refused", m.obtain("odd.test"))
        .await
        .expect_err("unlisted profile");
    let text = err.to_string();
    assert!(matches!(err, AcmeError::UnknownProfile { .. }), "{text}");
    assert!(
        text.contains("\"tiny\"")
            && text.contains("odd.test")
            && text.contains("classic, shortlived"),
        "{text}"
    );
    assert_eq!(rig.double.seen().new_orders.len(), 1, "no order placed");
    let status = m.status();
    let odd = status.iter().find(|s| s.domain == "odd.test").expect("odd");
    assert_eq!(odd.failures, 1);

    // The site's listed profile.
    m.set_site_profiles([("classic.test".to_string(), "classic".to_string())].into());
    rig.bounded("obtain", m.obtain("classic.test"))
        .await
        .unwrap_or_else(|e| panic!("obtain failed: {e}\n{}", rig.pebble.logs()));
    assert_eq!(
        rig.double.seen().new_orders[1]["profile"].as_str(),
        Some("classic")
    );

    // A directory that lists no profiles.
    let plain = Rig::start(Offer {
        renewal_info: false,
        profiles: &[],
    })
    .await;
    let mut settings = plain.settings();
    settings.profile = Some("shortlived".to_string());
    let err = plain
        .bounded("refused", plain.manager(settings).obtain("none.test"))
        .await
        .expect_err("no profiles listed")
        .to_string();
    assert!(err.contains("lists no profiles"), "{err}");
    assert!(plain.double.seen().new_orders.is_empty());
}

/// A stored certificate carrying an Authority Key Identifier (what the
/// renewal-information identifier is made of), signed by a made-up CA.
fn cert_with_aki(domain: &str) -> super::StoredCert {
    let ca_key = rcgen::KeyPair::generate().expect("key");
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).expect("CA");
    let key = rcgen::KeyPair::generate().expect("key");
    let mut params = rcgen::CertificateParams::new(vec![domain.to_string()]).expect("params");
    params.use_authority_key_identifier_extension = true;
    let leaf = params.signed_by(&key, &ca, &ca_key).expect("leaf");
    super::StoredCert::from_pem(domain, leaf.pem() + &ca.pem(), key.serialize_pem())
        .expect("a valid pair")
}

/// A CA that cannot be reached: the pass does not wait on it per
/// certificate, the third-of-lifetime rule applies, the failure is shown,
/// and it is asked again after the shortest wait (1 h), not in a loop.
#[tokio::test]
async fn an_unreachable_ca_keeps_the_lifetime_rule_and_asks_again_later() {
    let tmp = tempfile::tempdir().expect("tempdir");
    // Port 1 on loopback: nothing listens, the connection is refused.
    let settings = AcmeSettings::new("https://127.0.0.1:1/dir", tmp.path());
    let m = AcmeManager::new(settings.clone());
    let names = ["one.test", "two.test"];
    for name in names {
        super::store::save_cert(&settings.storage, &cert_with_aki(name)).expect("stored");
    }
    let before = unix_now();
    let (list_tx, mut certs, task) = run_loop(&m, &names);
    let failed = |m: &AcmeManager| {
        m.status()
            .iter()
            .filter(|s| {
                matches!(&s.renewal, Some(RenewalPlan::Lifetime { why, .. })
                    if why.contains("fetching the CA's renewal information failed")
                        && why.contains("unreachable"))
            })
            .count()
    };
    tokio::time::timeout(Duration::from_secs(10), async {
        while failed(&m) < names.len() {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("not recorded: {:?}", m.status()));
    for name in names {
        let record = renewal_info::load(&settings.storage, name).expect("record");
        assert!(
            record.next_fetch >= before + 3600,
            "asked again after an hour: {record:?}"
        );
    }
    assert!(
        certs.try_recv().is_err(),
        "valid certificates are not renewed"
    );
    drop(list_tx);
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .expect("the loop ends")
        .expect("no panic");
}

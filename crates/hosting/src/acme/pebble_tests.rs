//! End-to-end tests against a real pebble CA on loopback (skipped with a
//! note when pebble is not installed, failing under `CI=true`).

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::error::AcmeError;
use super::pebble::{serve_challenges, Pebble};
use super::{AcmeManager, StoredCert};

/// Every wait in these tests is bounded by this.
const WAIT: Duration = Duration::from_secs(60);

/// A pebble, a manager using it, and (if `serve`) the manager's answers
/// served on the port pebble validates against.
struct Rig {
    manager: Arc<AcmeManager>,
    server: Option<tokio::task::JoinHandle<()>>,
    // Dropped last: kills pebble, then removes the storage.
    pebble: Pebble,
    storage: tempfile::TempDir,
}

impl Drop for Rig {
    fn drop(&mut self) {
        if let Some(server) = self.server.take() {
            server.abort();
        }
    }
}

async fn rig(serve: bool) -> Rig {
    // Bind first: pebble must be told the port, the server needs the manager,
    // and the manager needs pebble's URL.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind challenge port");
    let port = listener.local_addr().expect("local addr").port();
    let pebble = Pebble::start_for_test(port).await;
    let storage = tempfile::tempdir().expect("tempdir");
    let manager = AcmeManager::new(pebble.settings(storage.path().join("acme")));
    // Not serving = nothing listens on the port pebble fetches from.
    let server = serve.then(|| serve_challenges(listener, manager.challenges()));
    Rig {
        manager,
        server,
        pebble,
        storage,
    }
}

/// (DNS SANs, serial) of the leaf.
fn leaf_info(cert: &StoredCert) -> (Vec<String>, String) {
    let leaf = cert.chain.first().expect("a leaf");
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf).expect("leaf parses");
    let names = super::pebble::dns_names(leaf);
    (names, parsed.raw_serial_as_string())
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .map(|m| m.permissions().mode() & 0o777)
        .unwrap_or(0)
}

async fn bounded<T>(what: &str, rig: &Rig, fut: impl std::future::Future<Output = T>) -> T {
    match tokio::time::timeout(WAIT, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out: {what}\n{}", rig.pebble.logs()),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_obtain_then_renew_replaces_the_certificate() {
    if !Pebble::available_or_skip("pebble_obtain_then_renew_replaces_the_certificate") {
        return;
    }
    let rig = rig(true).await;
    let m = &rig.manager;

    let first = bounded("obtain", &rig, m.obtain("site1.test"))
        .await
        .unwrap_or_else(|e| panic!("obtain failed: {e}\n{}", rig.pebble.logs()));
    let (names, first_serial) = leaf_info(&first);
    assert_eq!(names, vec!["site1.test"]);
    assert!(first.chain.len() >= 2, "leaf + pebble's intermediate");
    assert!(first.not_after > first.not_before);
    assert!(
        m.challenges().is_empty(),
        "answers withdrawn after the order"
    );

    let stored = m.stored("site1.test").expect("stored on disk");
    assert_eq!(stored.chain, first.chain);
    let acme = rig.storage.path().join("acme");
    let dir = acme.join("certificates/site1.test");
    assert_eq!(mode(&dir.join("privkey.pem")), 0o600);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&acme.join("account.toml")), 0o600);
    assert!(!m.needs_renewal(&stored, htgate_util::unix_now()));

    let renewed = bounded("renew", &rig, m.renew_now("site1.test"))
        .await
        .unwrap_or_else(|e| panic!("renewal failed: {e}\n{}", rig.pebble.logs()));
    let (names, renewed_serial) = leaf_info(&renewed);
    assert_eq!(names, vec!["site1.test"]);
    assert_ne!(renewed_serial, first_serial, "a new certificate");
    assert_ne!(renewed.key_pem, first.key_pem, "with a fresh key");
    let stored = m.stored("site1.test").expect("still stored");
    assert_eq!(
        stored.serial_hex(),
        renewed_serial,
        "the new one replaced the old one"
    );

    let status = m.status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].failures, 0);
    assert_eq!(status[0].not_after, Some(renewed.not_after));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_spawn_issues_new_domains_and_calls_on_cert() {
    if !Pebble::available_or_skip("pebble_spawn_issues_new_domains_and_calls_on_cert") {
        return;
    }
    let rig = rig(true).await;
    let (list_tx, list_rx) = watch::channel(vec![
        "site2.test".to_string(),
        "*.wild.test".to_string(),
        "127.0.0.2".to_string(),
    ]);
    let (cert_tx, mut cert_rx) = mpsc::unbounded_channel::<String>();
    let on_cert = Arc::new(move |domain: &str| {
        let _ = cert_tx.send(domain.to_string());
    });
    let task = rig.manager.spawn(list_rx, on_cert);

    let first = bounded("first on_cert", &rig, cert_rx.recv()).await;
    assert_eq!(first.as_deref(), Some("site2.test"));
    assert!(rig.manager.stored("site2.test").is_some());

    // A new name in the list wakes the loop at once.
    list_tx.send_modify(|list| list.push("site3.test".to_string()));
    let second = bounded("second on_cert", &rig, cert_rx.recv()).await;
    assert_eq!(second.as_deref(), Some("site3.test"));
    assert!(rig.manager.stored("site3.test").is_some());

    // Already issued names are not ordered again on the next pass.
    list_tx.send_modify(|list| list.push("site2.test".to_string()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        cert_rx.try_recv().is_err(),
        "no re-issuance of a fresh certificate"
    );

    let domains: Vec<String> = rig.manager.status().into_iter().map(|s| s.domain).collect();
    assert_eq!(
        domains,
        vec!["site2.test", "site3.test"],
        "wildcard and IP skipped"
    );

    drop(list_tx);
    bounded("loop exit", &rig, task)
        .await
        .expect("the loop ends cleanly when the list is dropped");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_failed_validation_names_the_url_and_backs_off() {
    if !Pebble::available_or_skip("pebble_failed_validation_names_the_url_and_backs_off") {
        return;
    }
    let rig = rig(false).await;
    let before = htgate_util::unix_now();
    let err = bounded("failing order", &rig, rig.manager.obtain("fail.test"))
        .await
        .expect_err("nothing answers the challenge");
    let text = err.to_string();
    eprintln!("failed validation reads: {text}");
    assert!(matches!(err, AcmeError::ChallengeFailed { .. }), "{text}");
    assert!(
        text.contains("http://fail.test/.well-known/acme-challenge/"),
        "names the URL the CA tried: {text}"
    );
    assert!(
        text.contains("urn:ietf:params:acme:error:"),
        "includes the CA's problem: {text}"
    );
    assert!(
        rig.manager.challenges().is_empty(),
        "answers withdrawn after a failure"
    );
    assert!(rig.manager.stored("fail.test").is_none());

    let status = rig.manager.status();
    assert_eq!(status.len(), 1);
    assert_eq!(status[0].domain, "fail.test");
    assert_eq!(status[0].failures, 1);
    assert_eq!(status[0].last_error.as_deref(), Some(text.as_str()));
    // pebble's settings use a 1 s base: the first retry is 1 s later.
    let next = status[0].next_attempt.expect("a retry is scheduled");
    assert!(
        next > before && next <= htgate_util::unix_now() + 1,
        "{next} vs {before}"
    );
}

/// Several new names are ordered at once, never more than
/// `CONCURRENT_ORDERS`, and all of them are issued.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pebble_orders_run_concurrently_within_the_limit() {
    if !Pebble::available_or_skip("pebble_orders_run_concurrently_within_the_limit") {
        return;
    }
    let rig = rig(true).await;
    let names: Vec<String> = (1..=6).map(|i| format!("many{i}.test")).collect();
    let (list_tx, list_rx) = watch::channel(names.clone());
    let (cert_tx, mut cert_rx) = mpsc::unbounded_channel::<String>();
    let on_cert = Arc::new(move |domain: &str| {
        let _ = cert_tx.send(domain.to_string());
    });
    let task = rig.manager.spawn(list_rx, on_cert);
    let mut issued = Vec::new();
    while issued.len() < names.len() {
        let got = bounded("on_cert", &rig, cert_rx.recv()).await;
        issued.push(got.expect("a name"));
    }
    issued.sort();
    let mut want = names.clone();
    want.sort();
    assert_eq!(issued, want);
    let most = rig.manager.most_orders_at_once();
    assert!(
        most > 1 && most <= super::manager::CONCURRENT_ORDERS,
        "{most} orders at once"
    );
    drop(list_tx);
    bounded("loop exit", &rig, task)
        .await
        .expect("the loop ends");
}

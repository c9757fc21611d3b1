//! Certificates on demand end to end: a whole config-mode server
//! (`run::start`) ordering from a real pebble CA on loopback, real TLS
//! handshakes against its listener, and an `ask` service made here.
//! Skipped with a note when pebble is not installed, failing under
//! `CI=true`.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::on_demand::Stats;
use super::pebble::Pebble;
use crate::config::Config;
use crate::run::HostingServer;

/// The longest wait for any one thing in these tests.
const WAIT: Duration = Duration::from_secs(30);

/// An `ask` service: records every name asked about, answers 200 to the
/// names `allow` accepts and 403 to the others.
struct AskService {
    port: u16,
    asked: Arc<Mutex<Vec<String>>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for AskService {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl AskService {
    async fn start(allow: fn(&str) -> bool) -> AskService {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind the ask service");
        let port = listener.local_addr().expect("local addr").port();
        let asked = Arc::new(Mutex::new(Vec::new()));
        let record = asked.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let record = record.clone();
                tokio::spawn(async move {
                    let mut head = Vec::new();
                    let mut chunk = [0u8; 512];
                    while !head.windows(4).any(|w| w == b"\r\n\r\n") && head.len() < 8192 {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => break,
                            Ok(n) => head.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let text = String::from_utf8_lossy(&head);
                    let target = text.split(' ').nth(1).unwrap_or("");
                    let domain = target
                        .split_once("domain=")
                        .map(|(_, d)| d.to_string())
                        .unwrap_or_default();
                    let status = if allow(&domain) {
                        "200 OK"
                    } else {
                        "403 Forbidden"
                    };
                    // A connection closed before its request (a worker
                    // stopped mid-ask at a restart) asked nothing.
                    if head.is_empty() {
                        return;
                    }
                    record
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(domain);
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        AskService { port, asked, task }
    }

    fn asked(&self) -> Vec<String> {
        self.asked.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }
}

/// A pebble, an ask service and a server taking `*.customer.test` on
/// demand (with `listed.test` as its one listed domain).
struct Rig {
    server: Option<HostingServer>,
    ask: AskService,
    tls: std::net::SocketAddr,
    config: std::path::PathBuf,
    _dir: tempfile::TempDir,
    // Dropped last: kills pebble.
    pebble: Pebble,
}

impl Rig {
    async fn start(allow: fn(&str) -> bool, limits: &str) -> Rig {
        Rig::start_with(allow, limits, "on_demand = [\"*.customer.test\"]").await
    }

    /// As [`Rig::start`], the site's on-demand keys being `on_demand`.
    async fn start_with(allow: fn(&str) -> bool, limits: &str, on_demand: &str) -> Rig {
        let http_port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let pebble = Pebble::start_for_test(http_port).await;
        let ask = AskService::start(allow).await;
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("www");
        std::fs::create_dir(&root).expect("root");
        std::fs::write(root.join("index.html"), "the customers' site\n").expect("index.html");
        let text = format!(
            r#"
watch = false
[[listen]]
address = "127.0.0.1:{http_port}"
[[listen]]
address = "127.0.0.1:0"
tls = true

[acme]
directory = "{directory}"
storage = "{storage}"
ca_root = "{ca_root}"
retry_seconds = 1

[acme.on_demand]
ask = "http://127.0.0.1:{ask_port}/check"
ask_timeout_ms = 2000
{limits}

[[site]]
name = "customers"
domains = ["listed.test"]
root = "{root}"
{on_demand}
"#,
            directory = pebble.directory_url(),
            storage = dir.path().join("acme").display(),
            ca_root = pebble.ca_root_pem_path().display(),
            ask_port = ask.port,
            root = root.display(),
        );
        let path = dir.path().join("htgate.toml");
        std::fs::write(&path, &text).expect("write htgate.toml");
        let config = Config::load(&path).unwrap_or_else(|e| panic!("config refused: {e}"));
        let server = crate::run::start(&config)
            .await
            .unwrap_or_else(|e| panic!("the server did not start: {e:#}"));
        let tls = server.addr(true).expect("a TLS listener");
        Rig {
            server: Some(server),
            ask,
            tls,
            config: path,
            _dir: dir,
            pebble,
        }
    }

    fn server(&self) -> &HostingServer {
        self.server.as_ref().expect("running")
    }

    fn on_demand(&self) -> Arc<super::OnDemand> {
        self.server()
            .shared
            .on_demand
            .clone()
            .expect("[acme.on_demand] configured")
    }

    /// Names the manager ordered or stored, but for the listed one.
    fn ordered(&self) -> Vec<String> {
        let manager = self.server().acme().expect("[acme] configured");
        manager
            .status()
            .into_iter()
            .map(|s| s.domain)
            .filter(|d| d != "listed.test")
            .collect()
    }

    /// Stops the server and starts a new one from the same file and
    /// ACME storage (a restart).
    async fn restart(&mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
        let config = Config::load(&self.config).unwrap_or_else(|e| panic!("{e}"));
        let server = crate::run::start(&config)
            .await
            .unwrap_or_else(|e| panic!("the server did not restart: {e:#}"));
        self.tls = server.addr(true).expect("a TLS listener");
        self.server = Some(server);
    }

    async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.shutdown().await;
        }
    }
}

/// What a handshake got: the leaf's DNS names, issuer and serial.
struct Leaf {
    names: Vec<String>,
    issuer: String,
    serial: String,
}

/// What a handshake with `sni` got: the leaf's DNS names and issuer.
async fn handshake(addr: std::net::SocketAddr, sni: &str) -> (Vec<String>, String) {
    let leaf = handshake_leaf(addr, sni).await;
    (leaf.names, leaf.issuer)
}

async fn handshake_leaf(addr: std::net::SocketAddr, sni: &str) -> Leaf {
    let sni = sni.to_string();
    tokio::task::spawn_blocking(move || handshake_blocking(addr, &sni))
        .await
        .expect("handshake task")
}

fn handshake_blocking(addr: std::net::SocketAddr, sni: &str) -> Leaf {
    let name = rustls_pki_types::ServerName::try_from(sni.to_string()).expect("a DNS name");
    let mut conn = rustls::ClientConnection::new(client_config(), name).expect("client");
    let mut tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    tcp.set_write_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp)
            .unwrap_or_else(|e| panic!("handshake with SNI {sni}: {e}"));
    }
    let leaf = conn
        .peer_certificates()
        .and_then(|c| c.first())
        .expect("the server sent a certificate")
        .clone();
    let (_, x) = x509_parser::parse_x509_certificate(leaf.as_ref()).expect("the leaf parses");
    let names = super::pebble::dns_names(leaf.as_ref());
    Leaf {
        names,
        issuer: x.issuer().to_string(),
        serial: x.raw_serial_as_string(),
    }
}

/// `GET /` over TLS with `sni` as SNI and Host: the whole answer.
fn get_blocking(addr: std::net::SocketAddr, sni: &str) -> String {
    use std::io::{Read, Write};
    let name = rustls_pki_types::ServerName::try_from(sni.to_string()).expect("a DNS name");
    let conn = rustls::ClientConnection::new(client_config(), name).expect("client");
    let tcp = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("connect {addr}: {e}"));
    tcp.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    tls.write_all(format!("GET / HTTP/1.1\r\nHost: {sni}\r\nConnection: close\r\n\r\n").as_bytes())
        .expect("send the request");
    let mut answer = Vec::new();
    // A close without close_notify is an error here; what came counts.
    let _ = tls.read_to_end(&mut answer);
    String::from_utf8_lossy(&answer).into_owned()
}

/// A client that takes any certificate (the tests look at it by hand).
fn client_config() -> Arc<rustls::ClientConfig> {
    let provider = rustls::crypto::ring::default_provider();
    let verifier = Arc::new(AcceptAny(provider.signature_verification_algorithms));
    Arc::new(
        rustls::ClientConfig::builder_with_provider(Arc::new(provider))
            .with_safe_default_protocol_versions()
            .expect("protocol versions")
            .dangerous()
            .with_custom_certificate_verifier(verifier)
            .with_no_client_auth(),
    )
}

/// The client of these tests checks what it got by hand.
#[derive(Debug)]
struct AcceptAny(rustls::crypto::WebPkiSupportedAlgorithms);

impl rustls::client::danger::ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &rustls_pki_types::CertificateDer<'_>,
        _intermediates: &[rustls_pki_types::CertificateDer<'_>],
        _server_name: &rustls_pki_types::ServerName<'_>,
        _ocsp: &[u8],
        _now: rustls_pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        Ok(rustls::client::danger::ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(message, cert, dss, &self.0)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &rustls_pki_types::CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &self.0)
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.supported_schemes()
    }
}

/// Polls `done` every 50 ms for at most [`WAIT`].
async fn wait_for(what: &str, rig: &Rig, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + WAIT;
    while !done() {
        if Instant::now() > deadline {
            panic!("timed out after {WAIT:?}: {what}\n{}", rig.pebble.logs());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn from_pebble(issuer: &str) -> bool {
    issuer.contains("Pebble")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_an_allowed_name_gets_its_own_certificate_within_seconds() {
    if !Pebble::available_or_skip("on_demand_an_allowed_name_gets_its_own_certificate") {
        return;
    }
    let mut rig = Rig::start(|_| true, "").await;
    let name = "shop.customer.test";
    let started = Instant::now();
    let (names, issuer) = handshake(rig.tls, name).await;
    assert!(
        !names.iter().any(|n| n == name) && !from_pebble(&issuer),
        "the first handshake gets the shared certificate: {names:?} by {issuer}"
    );
    let deadline = started + WAIT;
    let took = loop {
        let (names, issuer) = handshake(rig.tls, name).await;
        if names == [name] && from_pebble(&issuer) {
            break started.elapsed();
        }
        assert!(
            Instant::now() < deadline,
            "no certificate for {name} after {WAIT:?} (last: {names:?} by {issuer})\n{}",
            rig.pebble.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("{name}: its own certificate {took:?} after the first handshake");
    // The name is the site's: its requests are answered from its root.
    let tls = rig.tls;
    let answer = tokio::task::spawn_blocking(move || get_blocking(tls, name))
        .await
        .expect("request task");
    assert!(
        answer.starts_with("HTTP/1.1 200") && answer.ends_with("the customers' site\n"),
        "{answer}"
    );
    assert!(took < Duration::from_secs(20), "{took:?}");
    assert_eq!(
        rig.ask.asked(),
        [name],
        "asked once, however many handshakes"
    );
    let od = rig.on_demand();
    assert_eq!(Stats::get(&od.stats().orders), 1);
    assert_eq!(Stats::get(&od.stats().issued), 1);
    assert_eq!(rig.ordered(), [name]);
    // Kept for renewal with the listed names (and after a restart: it is
    // in the ACME storage and matches the site's pattern).
    assert!(rig
        .server()
        .store()
        .automatic_domains()
        .contains(&name.to_string()));
    assert_eq!(
        rig.server().store().on_demand_names().get(&0).cloned(),
        Some(vec![name.to_string()]),
        "cert list shows it"
    );
    let rows = crate::cert_metrics::cert_rows(&rig.server().store(), htgate_util::unix_now());
    assert!(
        rows.iter().any(|r| r.site == "customers"
            && r.domain == name
            && r.source == "automatic"
            && r.valid),
        "the metrics show it"
    );
    // A reload keeps serving it, and new names still reach the queue.
    rig.server()
        .reload()
        .await
        .unwrap_or_else(|e| panic!("reload: {e}"));
    let (names, issuer) = handshake(rig.tls, name).await;
    assert!(
        names == [name] && from_pebble(&issuer),
        "after a reload: {names:?} by {issuer}"
    );
    let queued = Stats::get(&od.stats().queued);
    let _ = handshake(rig.tls, "after-reload.customer.test").await;
    assert_eq!(
        Stats::get(&od.stats().queued),
        queued + 1,
        "queued after a reload"
    );
    wait_for("the second name's certificate", &rig, || {
        Stats::get(&od.stats().issued) == 2
    })
    .await;
    // After a restart the first handshake gets it: no ask, no order.
    rig.restart().await;
    let (names, issuer) = handshake(rig.tls, name).await;
    assert!(
        names == [name] && from_pebble(&issuer),
        "{names:?} by {issuer}"
    );
    assert_eq!(
        rig.ask.asked(),
        [name, "after-reload.customer.test"],
        "no new ask after the restart"
    );
    assert_eq!(Stats::get(&rig.on_demand().stats().queued), 0);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_a_name_the_ask_url_refuses_is_never_ordered_nor_asked_again() {
    if !Pebble::available_or_skip("on_demand_a_name_the_ask_url_refuses_is_never_ordered") {
        return;
    }
    let rig = Rig::start(|d| d != "evil.customer.test", "").await;
    let od = rig.on_demand();
    let name = "evil.customer.test";
    let (names, _) = handshake(rig.tls, name).await;
    assert!(!names.iter().any(|n| n == name));
    wait_for("the ask URL's refusal", &rig, || {
        Stats::get(&od.stats().denied_by_ask) == 1
    })
    .await;
    assert_eq!(rig.ask.asked(), [name], "the ask service saw the name");
    assert!(od.is_refused(name));
    // Handshakes after the refusal: the deny cache answers, no new ask.
    for _ in 0..5 {
        let (names, issuer) = handshake(rig.tls, name).await;
        assert!(!names.iter().any(|n| n == name) && !from_pebble(&issuer));
    }
    // Wait for other names to pass through, so that the refused one had
    // every chance to be ordered.
    let (_, _) = handshake(rig.tls, "ok.customer.test").await;
    wait_for("the allowed name's certificate", &rig, || {
        Stats::get(&od.stats().issued) == 1
    })
    .await;
    assert_eq!(rig.ask.asked(), [name, "ok.customer.test"]);
    assert_eq!(
        Stats::get(&od.stats().queued),
        2,
        "the refused name queued once"
    );
    assert_eq!(Stats::get(&od.stats().orders), 1);
    assert_eq!(rig.ordered(), ["ok.customer.test"], "no order for {name}");
    let manager = rig.server().acme().expect("acme");
    assert!(manager.stored(name).is_none());
    // A name outside every pattern never reaches the queue at all.
    let _ = handshake(rig.tls, "elsewhere.test").await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(Stats::get(&od.stats().queued), 2);
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_a_flood_of_random_names_orders_nothing_beyond_the_rate_limit() {
    if !Pebble::available_or_skip("on_demand_a_flood_of_random_names") {
        return;
    }
    let rig = Rig::start(
        |_| true,
        "max_orders = 3\nmax_orders_per_site = 2\nmax_pending = 50",
    )
    .await;
    let od = rig.on_demand();
    const FLOOD: u64 = 200;
    let seed = htgate_util::unix_now();
    // Four clients at once, 50 random names each.
    let addr = rig.tls;
    let clients: Vec<_> = (0..4u64)
        .map(|c| {
            tokio::task::spawn_blocking(move || {
                for i in (c..FLOOD).step_by(4) {
                    let name = format!("r{seed:x}{i}x{}.customer.test", i * 7919 % 1000);
                    let _ = handshake_blocking(addr, &name);
                }
            })
        })
        .collect();
    for client in clients {
        tokio::time::timeout(WAIT, client)
            .await
            .expect("the flood's handshakes in time")
            .expect("no panic");
    }
    let stats = od.stats();
    wait_for("every queued name looked at", &rig, || {
        Stats::get(&stats.queued) + Stats::get(&stats.queue_full) == FLOOD
            && Stats::get(&stats.handled) == Stats::get(&stats.queued)
    })
    .await;
    let (orders, asked, limited, full) = (
        Stats::get(&stats.orders),
        rig.ask.asked().len() as u64,
        Stats::get(&stats.rate_limited),
        Stats::get(&stats.queue_full),
    );
    eprintln!("flood of {FLOOD}: {orders} orders, {asked} asked, {limited} rate limited, {full} dropped (queue full)");
    assert_eq!(orders, 2, "max_orders_per_site = 2");
    assert_eq!(asked, 2, "no ask once the limit is reached");
    assert_eq!(
        limited + full + orders,
        FLOOD,
        "every other name refused and counted"
    );
    assert!(limited > 0);
    // The two orders finish; nothing else was ordered.
    wait_for("the two orders", &rig, || {
        Stats::get(&stats.issued) + Stats::get(&stats.order_failed) == 2
    })
    .await;
    assert_eq!(rig.ordered().len(), 2, "{:?}", rig.ordered());
    rig.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_a_name_whose_dns_points_elsewhere_is_neither_asked_about_nor_ordered() {
    if !Pebble::available_or_skip("on_demand_a_name_whose_dns_points_elsewhere") {
        return;
    }
    // The system's resolver knows no `.test` name: none points here.
    let rig = Rig::start(|_| true, "public_addresses = [\"192.0.2.10\"]").await;
    let od = rig.on_demand();
    let _ = handshake(rig.tls, "nowhere.customer.test").await;
    wait_for("the DNS check's refusal", &rig, || {
        Stats::get(&od.stats().dns_elsewhere) == 1
    })
    .await;
    assert!(rig.ask.asked().is_empty(), "{:?}", rig.ask.asked());
    assert_eq!(Stats::get(&od.stats().orders), 0);
    assert!(rig.ordered().is_empty(), "{:?}", rig.ordered());
    rig.stop().await;
}

/// A cluster node (folder store `shared`) taking `*.customer.test` on
/// demand; its plain listener on `http_port` (0: any).
async fn cluster_node(
    base: &std::path::Path,
    node: &str,
    http_port: u16,
    pebble: &Pebble,
    ask_port: u16,
) -> HostingServer {
    let dir = base.join(node);
    std::fs::create_dir_all(dir.join("www")).expect("root");
    let text = format!(
        r#"
watch = false
[[listen]]
address = "127.0.0.1:{http_port}"
[[listen]]
address = "127.0.0.1:0"
tls = true

[cluster]
folder = "{shared}"
node = "{node}"

[acme]
directory = "{directory}"
storage = "{storage}"
ca_root = "{ca_root}"
retry_seconds = 1

[acme.on_demand]
ask = "http://127.0.0.1:{ask_port}/check"

[[site]]
name = "customers"
domains = ["listed.test"]
root = "{root}"
on_demand = ["*.customer.test"]
"#,
        shared = base.join("shared").display(),
        directory = pebble.directory_url(),
        storage = dir.join("acme").display(),
        ca_root = pebble.ca_root_pem_path().display(),
        root = dir.join("www").display(),
    );
    let path = dir.join("htgate.toml");
    std::fs::write(&path, &text).expect("write htgate.toml");
    let config = Config::load(&path).unwrap_or_else(|e| panic!("config refused: {e}"));
    crate::run::start(&config)
        .await
        .unwrap_or_else(|e| panic!("node {node} did not start: {e:#}"))
}

/// The serial of the leaf a handshake with `sni` got, if pebble issued it
/// for that name.
fn pebble_serial(addr: std::net::SocketAddr, sni: &str) -> Option<String> {
    let leaf = handshake_blocking(addr, sni);
    (leaf.names == [sni] && from_pebble(&leaf.issuer)).then_some(leaf.serial)
}

/// Two nodes see the first handshake for a name at once: both ask, both
/// go to order, the cluster's one-order-per-name lock lets one order and
/// the other take its certificate: both serve the same one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_in_a_cluster_two_nodes_order_a_name_once() {
    if !Pebble::available_or_skip("on_demand_in_a_cluster_two_nodes_order_a_name_once") {
        return;
    }
    let http_port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let pebble = Pebble::start_for_test(http_port).await;
    let ask = AskService::start(|_| true).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    std::fs::create_dir_all(tmp.path().join("shared")).expect("shared folder");
    // Node a answers the CA's validations for both (the cluster shares
    // the answers).
    let a = cluster_node(tmp.path(), "a", http_port, &pebble, ask.port).await;
    let b = cluster_node(tmp.path(), "b", 0, &pebble, ask.port).await;
    let (tls_a, tls_b) = (
        a.addr(true).expect("a's TLS"),
        b.addr(true).expect("b's TLS"),
    );
    let name = "both.customer.test";
    let (first_a, first_b) = tokio::join!(handshake(tls_a, name), handshake(tls_b, name));
    assert!(!from_pebble(&first_a.1) && !from_pebble(&first_b.1));
    let deadline = Instant::now() + WAIT;
    let (serial_a, serial_b) = loop {
        let got = tokio::task::spawn_blocking(move || {
            (pebble_serial(tls_a, name), pebble_serial(tls_b, name))
        })
        .await
        .expect("handshakes");
        if let (Some(x), Some(y)) = got {
            break (x, y);
        }
        assert!(
            Instant::now() < deadline,
            "both nodes do not serve a certificate for {name} after {WAIT:?}\n{}",
            pebble.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(
        serial_a, serial_b,
        "one order: the same certificate on both nodes"
    );
    let orders: u64 = [&a, &b]
        .iter()
        .map(|n| {
            n.shared
                .on_demand
                .as_ref()
                .map_or(0, |od| Stats::get(&od.stats().orders))
        })
        .sum();
    eprintln!(
        "cluster: {orders} node(s) went to order, {} asks, one certificate",
        ask.asked().len()
    );
    assert!((1..=2).contains(&orders), "{orders}");
    a.shutdown().await;
    b.shutdown().await;
}

/// `on_demand_any`: any name no site lists gets a certificate if the
/// `ask` URL allows it; a listed name never goes through the queue.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_any_takes_every_name_the_ask_url_allows() {
    if !Pebble::available_or_skip("on_demand_any_takes_every_name_the_ask_url_allows") {
        return;
    }
    let rig = Rig::start_with(|d| d == "anything.example", "", "on_demand_any = true").await;
    let od = rig.on_demand();
    let _ = handshake(rig.tls, "listed.test").await;
    let _ = handshake(rig.tls, "anything.example").await;
    let _ = handshake(rig.tls, "refused.example").await;
    let deadline = Instant::now() + WAIT;
    loop {
        let (names, issuer) = handshake(rig.tls, "anything.example").await;
        if names == ["anything.example"] && from_pebble(&issuer) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "no certificate for anything.example after {WAIT:?}\n{}",
            rig.pebble.logs()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    wait_for("the refusal", &rig, || {
        Stats::get(&od.stats().denied_by_ask) == 1
    })
    .await;
    let mut asked = rig.ask.asked();
    asked.sort();
    assert_eq!(
        asked,
        ["anything.example", "refused.example"],
        "listed.test is not asked about"
    );
    assert_eq!(Stats::get(&od.stats().queued), 2);
    assert_eq!(rig.ordered(), ["anything.example"]);
    rig.stop().await;
}

/// An order that fails at once (no CA answers) leaves the name refused for
/// the deny time, counted `order_failed`: not ordered again at the next
/// handshake. No pebble needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_demand_a_failed_order_refuses_the_name_for_the_deny_time() {
    let ask = AskService::start(|_| true).await;
    let tmp = tempfile::tempdir().expect("tempdir");
    // Port 1 on loopback: nothing listens, the order fails at once.
    let manager = super::AcmeManager::new(super::AcmeSettings::new(
        "https://127.0.0.1:1/dir",
        tmp.path(),
    ));
    let settings = super::OnDemandSettings {
        ask: crate::config::AskUrl::parse(&format!("http://127.0.0.1:{}/check", ask.port))
            .expect("url"),
        ask_timeout: Duration::from_secs(2),
        max_orders: 10,
        max_orders_per_site: 10,
        window: Duration::from_secs(3600),
        deny_for: Duration::from_secs(3600),
        max_pending: 10,
        max_pending_per_site: 10,
        public_addresses: Vec::new(),
    };
    let od = super::OnDemand::new(settings);
    let issued = Arc::new(Mutex::new(Vec::<String>::new()));
    let seen = issued.clone();
    let worker = od
        .spawn(
            manager,
            Arc::new(move |d: &str| {
                seen.lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(d.to_string())
            }),
        )
        .expect("the first spawn starts the worker");
    od.request("fails.customer.test", "customers");
    let deadline = Instant::now() + WAIT;
    while Stats::get(&od.stats().order_failed) == 0 {
        assert!(Instant::now() < deadline, "the order did not fail in time");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert!(od.is_refused("fails.customer.test"));
    od.request("fails.customer.test", "customers");
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(Stats::get(&od.stats().queued), 1, "not queued again");
    assert_eq!(Stats::get(&od.stats().orders), 1);
    assert_eq!(ask.asked(), ["fails.customer.test"]);
    assert!(issued.lock().unwrap_or_else(|p| p.into_inner()).is_empty());
    worker.abort();
}

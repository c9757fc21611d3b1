//! Three htgate nodes, one real etcd, Debian's pebble, and a load balancer
//! (a round-robin TCP proxy in this test) in front of the nodes' HTTP
//! ports, which is where pebble validates HTTP-01.  Everything on
//! loopback, every wait bounded.
//!
//! In order: a domain every node wants gets exactly one ACME order and all
//! three serve its certificate; a certificate uploaded through node A is
//! served by B and C within a second; a site published to the store gets
//! its certificate even though the node holding the ACME lock is killed in
//! the middle of the order; with etcd stopped every node keeps serving.

/// Built without the etcd back end: under CI this must not pass silently.
#[cfg(not(feature = "etcd"))]
#[test]
fn cluster_of_three_nodes_with_etcd_and_pebble() {
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("CI=true but the tests were built without the `etcd` feature: run `cargo test --all-features` (needs protobuf-compiler)");
    }
    eprintln!(
        "skipping the cluster test: built without the `etcd` feature (cargo test --all-features)"
    );
}

#[cfg(feature = "etcd")]
mod with_etcd {
    use crate::support::cms::KillOnDrop;
    use crate::support::{pki, probe};
    use htgate_hosting::acme::pebble::Pebble;
    use htgate_hosting::cluster::etcd::{EtcdSettings, EtcdStore};
    use htgate_hosting::cluster::Store;
    use std::net::SocketAddr;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Stdio};
    use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
    use std::sync::{Arc, Mutex};
    use std::time::{Duration, Instant};

    const PREFIX: &str = "/htgate-test/";

    fn free_port() -> u16 {
        std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .expect("a free port")
    }

    fn on_path(binary: &str) -> bool {
        std::env::var_os("PATH").is_some_and(|paths| {
            std::env::split_paths(&paths).any(|dir| dir.join(binary).is_file())
        })
    }

    fn tail(path: &Path) -> String {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        let start = text.len().saturating_sub(6000);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(0);
        format!("--- {} ---\n{}", path.display(), &text[start..])
    }

    struct Etcd {
        child: Option<KillOnDrop>,
        url: String,
        peer_url: String,
        data: PathBuf,
        log: PathBuf,
    }

    impl Etcd {
        fn start(dir: &Path) -> Etcd {
            let mut etcd = Etcd {
                child: None,
                url: format!("http://127.0.0.1:{}", free_port()),
                peer_url: format!("http://127.0.0.1:{}", free_port()),
                data: dir.join("etcd-data"),
                log: dir.join("etcd.log"),
            };
            etcd.run();
            etcd
        }

        /// Starts (or restarts, with the same data and ports) the server.
        fn run(&mut self) {
            let out = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.log)
                .expect("etcd log");
            let child = Command::new("etcd")
                .args(["--name", "test"])
                .arg("--data-dir")
                .arg(&self.data)
                .args(["--listen-client-urls", &self.url])
                .args(["--advertise-client-urls", &self.url])
                .args(["--listen-peer-urls", &self.peer_url])
                .args(["--initial-advertise-peer-urls", &self.peer_url])
                .args(["--initial-cluster", &format!("test={}", self.peer_url)])
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log"))
                .stderr(out)
                .spawn()
                .expect("etcd runs");
            self.child = Some(KillOnDrop(child));
        }

        fn stop(&mut self) {
            self.child.take();
        }
    }

    fn etcd_client(url: &str) -> EtcdStore {
        EtcdStore::new(EtcdSettings {
            endpoints: vec![url.to_string()],
            prefix: PREFIX.to_string(),
            timeout: Duration::from_secs(2),
            user: None,
            ca: None,
            identity: None,
        })
    }

    /// The load balancer: each connection goes to the next live backend
    /// (pebble's validation, like a real one, lands on any node).  With
    /// `hold` set, a new connection waits before it is passed on.
    struct Balancer {
        port: u16,
        backends: Arc<Mutex<Vec<SocketAddr>>>,
        hold: Arc<AtomicBool>,
        held: Arc<AtomicUsize>,
    }

    impl Balancer {
        async fn start() -> Balancer {
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
                .await
                .expect("bind");
            let port = listener.local_addr().expect("addr").port();
            let backends: Arc<Mutex<Vec<SocketAddr>>> = Arc::default();
            let hold = Arc::new(AtomicBool::new(false));
            let held = Arc::new(AtomicUsize::new(0));
            let (b, h, n) = (backends.clone(), hold.clone(), held.clone());
            tokio::spawn(async move {
                let next = AtomicUsize::new(0);
                loop {
                    let Ok((mut client, _)) = listener.accept().await else {
                        continue;
                    };
                    let list = b.lock().map(|l| l.clone()).unwrap_or_default();
                    let start = next.fetch_add(1, Ordering::Relaxed);
                    let delay = h.load(Ordering::SeqCst);
                    if delay {
                        n.fetch_add(1, Ordering::SeqCst);
                    }
                    tokio::spawn(async move {
                        if delay {
                            tokio::time::sleep(Duration::from_secs(4)).await;
                        }
                        for i in 0..list.len() {
                            let to = list[(start + i) % list.len()];
                            if let Ok(mut server) = tokio::net::TcpStream::connect(to).await {
                                let _ = tokio::time::timeout(
                                    Duration::from_secs(30),
                                    tokio::io::copy_bidirectional(&mut client, &mut server),
                                )
                                .await;
                                return;
                            }
                        }
                    });
                }
            });
            Balancer {
                port,
                backends,
                hold,
                held,
            }
        }
    }

    struct Node {
        name: String,
        dir: PathBuf,
        config: PathBuf,
        http: SocketAddr,
        https: SocketAddr,
        admin: SocketAddr,
        child: Option<KillOnDrop>,
    }

    impl Node {
        fn log(&self) -> PathBuf {
            self.dir.join("htgate.log")
        }

        fn start(&mut self) {
            let out = std::fs::File::create(self.log()).expect("node log");
            let child = Command::new(env!("CARGO_BIN_EXE_htgate"))
                .arg("serve")
                .arg("--config")
                .arg(&self.config)
                .stdin(Stdio::null())
                .stdout(out.try_clone().expect("log"))
                .stderr(out)
                .spawn()
                .expect("htgate runs");
            self.child = Some(KillOnDrop(child));
        }

        fn kill(&mut self) {
            self.child.take();
        }

        fn alive(&self) -> bool {
            self.child.is_some()
        }
    }

    /// One metric's value from a node's admin listener.
    async fn metric(node: &Node, name: &str) -> Option<f64> {
        let a = probe::get(node.admin, None, "localhost", "/metrics", &[]).await;
        a.body.lines().find_map(|l| {
            let (n, v) = l.split_once(' ')?;
            (n == name).then(|| v.trim().parse().ok())?
        })
    }

    /// The serial of the leaf a node serves for `name`, if it is not the
    /// shared default certificate.
    async fn leaf(node: &Node, name: &str) -> Option<(String, String)> {
        let chain = tokio::time::timeout(
            Duration::from_secs(5),
            probe::served_chain(node.https, Some(name)),
        )
        .await
        .ok()?;
        let leaf = chain.first()?;
        (probe::dns_names(leaf).iter().any(|n| n == name) && probe::cn(leaf) != "default.test")
            .then(|| (probe::serial(leaf), probe::cn(leaf)))
    }

    /// How many orders for `domain` the node's log records.
    fn orders_for(node: &Node, domain: &str) -> usize {
        let needle = format!("placed an ACME order domain=\"{domain}\"");
        std::fs::read_to_string(node.log())
            .unwrap_or_default()
            .matches(&needle)
            .count()
    }

    /// Whether `addr` serves the leaf with `serial` for `name`.
    async fn serves(addr: SocketAddr, name: &'static str, serial: String) -> Option<()> {
        let chain = tokio::time::timeout(
            Duration::from_secs(5),
            probe::served_chain(addr, Some(name)),
        )
        .await
        .ok()?;
        (probe::serial(chain.first()?) == serial).then_some(())
    }

    async fn wait_for<T, F>(limit: Duration, mut f: impl FnMut() -> F) -> Option<T>
    where
        F: std::future::Future<Output = Option<T>>,
    {
        let end = Instant::now() + limit;
        loop {
            if let Some(v) = f().await {
                return Some(v);
            }
            if Instant::now() >= end {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    fn logs(nodes: &[Node], etcd: &Etcd, pebble: &Pebble) -> String {
        let mut out: Vec<String> = nodes.iter().map(|n| tail(&n.log())).collect();
        out.push(tail(&etcd.log));
        out.push(pebble.logs());
        out.join("\n")
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn cluster_of_three_nodes_with_etcd_and_pebble() {
        let ci = std::env::var("CI").is_ok_and(|v| v == "true");
        if !on_path("etcd") {
            assert!(
                !ci,
                "etcd not installed (apt-get install -y etcd-server) but CI=true"
            );
            eprintln!("skipping the cluster test: etcd not installed");
            return;
        }
        if !Pebble::available_or_skip("cluster_of_three_nodes_with_etcd_and_pebble") {
            return;
        }
        let tmp = tempfile::tempdir().expect("tempdir");
        let base = tmp.path().to_path_buf();
        let mut etcd = Etcd::start(&base);
        let kv = etcd_client(&etcd.url);
        let up = wait_for(Duration::from_secs(20), || async {
            kv.list("sites/").await.ok().map(|_| ())
        })
        .await;
        assert!(up.is_some(), "etcd did not come up\n{}", tail(&etcd.log));

        let balancer = Balancer::start().await;
        let pebble = Pebble::start(balancer.port).expect("pebble starts");

        // The sites' files are shared by every node (NFS in real life).
        let www = base.join("www");
        for site in ["one", "two"] {
            std::fs::create_dir_all(www.join(site)).expect("site root");
            std::fs::write(www.join(site).join("index.html"), format!("{site}\n")).expect("index");
        }
        // A private CA for the customer's upload, trusted by every node.
        let ca = pki::root("Cluster Test Root");
        let inter = pki::intermediate("Cluster Test Intermediate", &ca);
        std::fs::write(base.join("upload-ca.pem"), ca.pem()).expect("ca");
        let default = pki::self_signed(&["default.test"]);

        let mut nodes: Vec<Node> = (1..=3)
            .map(|i| {
                let name = format!("node-{i}");
                let dir = base.join(&name);
                std::fs::create_dir_all(dir.join("certs/one")).expect("node dir");
                std::fs::write(dir.join("default.pem"), default.pem()).expect("default");
                std::fs::write(dir.join("default.key"), default.key_pem()).expect("default");
                let (http, https, admin) = (free_port(), free_port(), free_port());
                let config = dir.join("htgate.toml");
                let text = format!(
                    r#"log_level = "info"
certificates_dir = "certs"
extra_ca_roots = ["{ca}"]
cert_check_seconds = 1
[default_certificate]
cert = "default.pem"
key = "default.key"
[[listen]]
address = "127.0.0.1:{http}"
[[listen]]
address = "127.0.0.1:{https}"
tls = true
[admin]
listen = "127.0.0.1:{admin}"
[acme]
directory = "{dir}"
storage = "acme"
ca_root = "{root}"
retry_seconds = 1
[cluster]
etcd = ["{etcd}"]
prefix = "{PREFIX}"
node = "{name}"
lock_ttl_seconds = 3
timeout_ms = 1000
cache = "cluster-cache"
[[site]]
name = "one"
domains = ["one.test"]
root = "{www}/one"
"#,
                    ca = base.join("upload-ca.pem").display(),
                    dir = pebble.directory_url(),
                    root = pebble.ca_root_pem_path().display(),
                    etcd = etcd.url,
                    www = www.display(),
                );
                std::fs::write(&config, text).expect("config");
                Node {
                    name,
                    dir,
                    config,
                    http: ([127, 0, 0, 1], http).into(),
                    https: ([127, 0, 0, 1], https).into(),
                    admin: ([127, 0, 0, 1], admin).into(),
                    child: None,
                }
            })
            .collect();
        if let Ok(mut b) = balancer.backends.lock() {
            *b = nodes.iter().map(|n| n.http).collect();
        }
        for n in &mut nodes {
            n.start();
        }
        for n in &nodes {
            let listening = wait_for(Duration::from_secs(30), || async {
                let mut all = true;
                for a in [n.http, n.https, n.admin] {
                    all &= tokio::net::TcpStream::connect(a).await.is_ok();
                }
                all.then_some(())
            })
            .await;
            assert!(
                listening.is_some(),
                "{} did not start\n{}",
                n.name,
                tail(&n.log())
            );
        }

        // 1. One domain, three nodes wanting it: one order, one certificate
        //    served everywhere.
        let mut serials = Vec::new();
        for n in &nodes {
            let got = wait_for(Duration::from_secs(90), || leaf(n, "one.test")).await;
            let Some((serial, _)) = got else {
                panic!(
                    "{} never served an ACME certificate for one.test\n{}",
                    n.name,
                    logs(&nodes, &etcd, &pebble)
                );
            };
            serials.push(serial);
        }
        assert!(
            serials.windows(2).all(|w| w[0] == w[1]),
            "the nodes serve different certificates: {serials:?}"
        );
        let mut orders = 0.0;
        for n in &nodes {
            orders += metric(n, "htgate_acme_orders_total").await.unwrap_or(0.0);
        }
        assert_eq!(
            orders,
            1.0,
            "expected exactly one ACME order across the cluster\n{}",
            logs(&nodes, &etcd, &pebble)
        );
        assert_eq!(
            nodes
                .iter()
                .map(|n| orders_for(n, "one.test"))
                .sum::<usize>(),
            1,
            "the nodes' logs show more than one order"
        );
        for n in &nodes {
            assert_eq!(
                metric(n, "htgate_cluster_store_up").await,
                Some(1.0),
                "{} says the store is down",
                n.name
            );
        }

        // 2. A customer's upload through node A: B and C serve it within 1 s.
        let upload = pki::leaf(&["one.test"], &inter, Duration::from_secs(30 * 86_400));
        std::fs::write(
            base.join("up.pem"),
            format!("{}{}", upload.pem(), inter.pem()),
        )
        .expect("upload");
        std::fs::write(base.join("up.key"), upload.key_pem()).expect("upload key");
        let installed = Command::new(env!("CARGO_BIN_EXE_htgate"))
            .args(["cert", "install", "--site", "one"])
            .arg("--config")
            .arg(&nodes[0].config)
            .arg("--cert")
            .arg(base.join("up.pem"))
            .arg("--key")
            .arg(base.join("up.key"))
            .output()
            .expect("htgate cert install runs");
        assert!(
            installed.status.success(),
            "{}",
            String::from_utf8_lossy(&installed.stderr)
        );
        let uploaded_at = Instant::now();
        let upload_serial = probe::serial(&upload.der().into());
        let is_upload = |n: &Node| serves(n.https, "one.test", upload_serial.clone());
        for n in &nodes[1..] {
            let served = wait_for(Duration::from_secs(1), || is_upload(n)).await;
            assert!(
                served.is_some(),
                "{} did not serve node-1's upload within 1 s\n{}",
                n.name,
                logs(&nodes, &etcd, &pebble)
            );
        }
        eprintln!(
            "the upload reached nodes 2 and 3 in {} ms",
            uploaded_at.elapsed().as_millis()
        );

        // 3. A site published to the store; the node that takes the ACME
        //    lock for it is killed in the middle of the order (while the CA's
        //    validation request is held at the balancer); another finishes.
        balancer.hold.store(true, Ordering::SeqCst);
        let doc = base.join("two.toml");
        std::fs::write(
            &doc,
            format!(
                "[[site]]\nname = \"two\"\ndomains = [\"two.test\"]\nroot = \"{}/two\"\n",
                www.display()
            ),
        )
        .expect("doc");
        let published = Command::new(env!("CARGO_BIN_EXE_htgate"))
            .args(["site", "publish"])
            .arg("--config")
            .arg(&nodes[1].config)
            .arg(&doc)
            .output()
            .expect("htgate site publish runs");
        assert!(
            published.status.success(),
            "{}",
            String::from_utf8_lossy(&published.stderr)
        );
        // Every node serves the new site (plain HTTP) within a second.
        for n in &nodes {
            let ok = wait_for(Duration::from_secs(1), || async {
                let a = probe::get(n.http, None, "two.test", "/", &[]).await;
                (a.status == 200 && a.body == "two\n").then_some(())
            })
            .await;
            assert!(ok.is_some(), "{} does not serve the published site", n.name);
        }
        // Mid-order: the holder published its answer, told the CA, and the
        // CA's validation request is waiting at the balancer.
        let holder = wait_for(Duration::from_secs(30), || async {
            let owner = kv.get("owners/acme/two.test").await.ok().flatten()?;
            let challenges = kv.list("challenges/").await.ok()?;
            (!challenges.is_empty() && balancer.held.load(Ordering::SeqCst) > 0)
                .then(|| String::from_utf8_lossy(&owner).into_owned())
        })
        .await
        .unwrap_or_else(|| {
            panic!(
                "no node took the lock and published a challenge for two.test\n{}",
                logs(&nodes, &etcd, &pebble)
            )
        });
        let victim = nodes
            .iter()
            .position(|n| n.name == holder)
            .unwrap_or_else(|| panic!("unknown lock owner {holder:?}"));
        nodes[victim].kill();
        balancer.hold.store(false, Ordering::SeqCst);
        if let Ok(mut b) = balancer.backends.lock() {
            b.retain(|a| *a != nodes[victim].http);
        }
        for n in nodes.iter().filter(|n| n.alive()) {
            let got = wait_for(Duration::from_secs(90), || leaf(n, "two.test")).await;
            assert!(
                got.is_some(),
                "{} never served a certificate for two.test after {holder} died mid-order\n{}",
                n.name,
                logs(&nodes, &etcd, &pebble)
            );
        }
        let retaken = nodes
            .iter()
            .filter(|n| n.alive())
            .map(|n| orders_for(n, "two.test"))
            .sum::<usize>();
        assert_eq!(
            retaken,
            1,
            "one surviving node places the order the dead one left unfinished\n{}",
            logs(&nodes, &etcd, &pebble)
        );

        // 4. etcd stops: every node keeps serving its sites and certificates
        //    and says the store is down.
        etcd.stop();
        for n in nodes.iter().filter(|n| n.alive()) {
            let down = wait_for(Duration::from_secs(30), || async {
                (metric(n, "htgate_cluster_store_up").await == Some(0.0)).then_some(())
            })
            .await;
            assert!(down.is_some(), "{} did not notice etcd stopping", n.name);
            let a = probe::get(n.https, Some(Some("one.test")), "one.test", "/", &[]).await;
            assert_eq!((a.status, a.body.as_str()), (200, "one\n"), "{}", n.name);
            assert!(is_upload(n).await.is_some(), "{} lost the upload", n.name);
            assert!(
                leaf(n, "two.test").await.is_some(),
                "{} lost two.test",
                n.name
            );
            let a = probe::get(n.http, None, "two.test", "/", &[]).await;
            assert_eq!(a.status, 200, "{}", n.name);
        }
        if std::env::var_os("HTGATE_TEST_SHOW_LOGS").is_some() {
            eprintln!("{}", logs(&nodes, &etcd, &pebble));
        }
        let log = std::fs::read_to_string(nodes[(victim + 1) % 3].log()).unwrap_or_default();
        assert!(
            log.contains("unreachable"),
            "the error log does not say the store is unreachable\n{log}"
        );

        // 5. etcd is back: the nodes reconnect, and changes flow again (the
        //    published site is removed and every node stops serving it).
        etcd.run();
        for n in nodes.iter().filter(|n| n.alive()) {
            let up = wait_for(Duration::from_secs(30), || async {
                (metric(n, "htgate_cluster_store_up").await == Some(1.0)).then_some(())
            })
            .await;
            assert!(
                up.is_some(),
                "{} did not reconnect to etcd\n{}",
                n.name,
                logs(&nodes, &etcd, &pebble)
            );
        }
        let survivor = nodes.iter().find(|n| n.alive()).expect("a live node");
        let removed = Command::new(env!("CARGO_BIN_EXE_htgate"))
            .args(["site", "remove", "two"])
            .arg("--config")
            .arg(&survivor.config)
            .output()
            .expect("htgate site remove runs");
        assert!(
            removed.status.success(),
            "{}",
            String::from_utf8_lossy(&removed.stderr)
        );
        for n in nodes.iter().filter(|n| n.alive()) {
            // Unknown names get the first site, as in Apache.
            let gone = wait_for(Duration::from_secs(5), || async {
                let a = probe::get(n.http, None, "two.test", "/", &[]).await;
                (a.body == "one\n").then_some(())
            })
            .await;
            assert!(gone.is_some(), "{} still serves the removed site", n.name);
        }
    }
}

//! HTTP/3: the same answers as HTTP/1.1 and HTTP/2 (the demo site's
//! force-HTTPS + WordPress rules, and every request of a few recorded
//! conformance cases), Alt-Svc, `/metrics` by protocol, a certificate
//! replaced on disk served to the next QUIC handshake, and the config
//! checks of `http3`.

use crate::support::protocols::{quic_served_chain, request, Protocol, Reply};
use crate::support::{files, pki, probe};
use htgate_conformance::case::parse_case_file;
use htgate_hosting::config::Config;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const DEADLINE: Duration = Duration::from_secs(15);

/// Fields that describe the connection or the moment, not the answer:
/// `Alt-Svc` is sent over TCP only (a client on HTTP/3 has switched).
const NOT_COMPARED: [&str; 5] = [
    "date",
    "alt-svc",
    "connection",
    "keep-alive",
    "transfer-encoding",
];

/// What must be equal across protocols: status, every other header field
/// (sorted, values as sent) and the body.
fn comparable(r: &Reply) -> (u16, Vec<(String, String)>, Vec<u8>) {
    let mut headers: Vec<(String, String)> = r
        .headers
        .iter()
        .filter(|(n, _)| !NOT_COMPARED.contains(&n.as_str()))
        .map(|(n, v)| {
            let mut value = String::from_utf8_lossy(v.as_bytes()).into_owned();
            // mod_expires's access-based times follow the clock: compared
            // as their distance from the answer's Date.
            if n == http::header::EXPIRES {
                value = relative_to_date(r, &value).unwrap_or(value);
            }
            (n.as_str().to_string(), value)
        })
        .collect();
    headers.sort();
    (r.status, headers, r.body.clone())
}

/// `Expires` as seconds after the answer's `Date`.
fn relative_to_date(r: &Reply, expires: &str) -> Option<String> {
    let date = httpdate::parse_http_date(r.header("date")?).ok()?;
    let at = httpdate::parse_http_date(expires).ok()?;
    let secs = match at.duration_since(date) {
        Ok(d) => i128::from(d.as_secs()),
        Err(e) => -i128::from(e.duration().as_secs()),
    };
    Some(format!("Date{secs:+}s"))
}

/// Sends one request over the three protocols and checks the answers
/// agree; returns the HTTP/3 one.
async fn same_over_all(
    addr: SocketAddr,
    sni: &str,
    method: &str,
    host: &str,
    path: &str,
    headers: &[(String, String)],
) -> Reply {
    let mut answers = Vec::new();
    for p in [Protocol::H1, Protocol::H2, Protocol::H3] {
        let reply = request(p, addr, sni, method, host, path, headers)
            .await
            .unwrap_or_else(|e| panic!("{p:?} {method} {host}{path}: {e}"));
        answers.push((p, reply));
    }
    let (_, h1) = &answers[0];
    for (p, r) in &answers[1..] {
        assert_eq!(
            comparable(h1),
            comparable(r),
            "{method} {host}{path}: HTTP/1.1 and {p:?} differ"
        );
    }
    // Over TCP the listener advertises HTTP/3 (unless a customer's own
    // Alt-Svc was set).
    assert_eq!(
        h1.header("alt-svc"),
        Some(format!("h3=\":{}\"; ma=86400", addr.port()).as_str()),
        "{path}"
    );
    answers[2].1.clone()
}

/// A TCP and UDP port both free now.
fn free_port_pair() -> u16 {
    for _ in 0..50 {
        let tcp = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let port = tcp.local_addr().expect("addr").port();
        if std::net::UdpSocket::bind(("127.0.0.1", port)).is_ok() {
            return port;
        }
    }
    panic!("no free TCP+UDP port pair");
}

/// Stops the demo at the end of the test, whatever happens.
struct Demo(std::process::Child);

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(pid) = i32::try_from(self.0.id()) {
            if let Some(pid) = rustix::process::Pid::from_raw(pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::TERM);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.0.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_site_answers_alike_over_http1_http2_and_http3() {
    let https_port = free_port_pair();
    let https = format!("127.0.0.1:{https_port}");
    let mut child = Command::new(env!("CARGO_BIN_EXE_htgate"))
        .args([
            "demo",
            "--http",
            "127.0.0.1:0",
            "--https",
            &https,
            "--http3",
        ])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let demo = Demo(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut udp = None;
    while udp.is_none() {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the demo starts with HTTP/3");
        if let Some(rest) = line.strip_prefix("htgate HTTP/3 on udp://") {
            udp = Some(rest.trim().parse::<SocketAddr>().expect("udp address"));
        }
    }
    let addr: SocketAddr = https.parse().expect("addr");
    assert_eq!(udp, Some(addr), "HTTP/3 is on the TLS port");

    let none: Vec<(String, String)> = Vec::new();
    // The front controller, a file, the denied wp-config.php, a folder,
    // a query string, a 404-style permalink, HEAD.
    for (method, path, status) in [
        ("GET", "/", 200),
        ("GET", "/hello-world", 200),
        ("GET", "/2024/01/a-post/?replytocom=5", 200),
        ("GET", "/index.html", 200),
        ("GET", "/wp-content/style.css", 200),
        ("GET", "/wp-content", 301),
        ("GET", "/wp-config.php", 403),
        ("HEAD", "/hello-world", 200),
        ("HEAD", "/wp-content/style.css", 200),
    ] {
        let r = same_over_all(addr, "localhost", method, "localhost", path, &none).await;
        assert_eq!(r.status, status, "{method} {path}");
        if status == 200 {
            assert_eq!(
                r.header("strict-transport-security"),
                Some("max-age=300"),
                "{path}: HTTPS is on over HTTP/3"
            );
        }
        if method == "HEAD" {
            assert!(r.body.is_empty(), "{path}: HEAD has no body");
            assert!(r.header("content-length").is_some(), "{path}");
        }
    }
    let front = request(
        Protocol::H3,
        addr,
        "localhost",
        "GET",
        "localhost",
        "/x",
        &none,
    )
    .await
    .expect("h3");
    assert!(
        String::from_utf8_lossy(&front.body).contains("the front controller"),
        "the rewrite reached index.html over HTTP/3"
    );
    drop(demo);
}

/// Recorded cases whose every request is sent over TLS with HTTP/1.1,
/// HTTP/2 and HTTP/3: the answers must agree.  (The recordings are
/// Apache's over HTTP/1.1; what is checked here is that the protocol
/// changes nothing.)
const CASES: [&str; 6] = [
    "corpus-wordpress",
    "force-https-header",
    "directory-slash",
    "errordocument",
    "files-access",
    "expires-cache-control",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conformance_cases_answer_alike_over_http3() {
    let base = htgate_conformance::make_base().expect("base");
    let mut compared = 0;
    for (i, name) in CASES.iter().enumerate() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("fixtures/conformance")
            .join(format!("{name}.case"));
        let case = parse_case_file(&path, name).expect("case");
        let wd = htgate_conformance::build_workdir(base.path(), &case, i).expect("workdir");
        let mut opts = htgate_conformance::quick_options(&wd);
        opts.http3 = true;
        let server = htgate_hosting::quick::start(opts).await.expect("start");
        let addr = server.https_addr;
        assert_eq!(server.http3_addr, Some(addr));
        for req in &case.requests {
            // TRACE echoes the request's own header fields, which differ
            // by protocol by design.
            if req.method == "TRACE" {
                continue;
            }
            let sni = req.host.split(':').next().unwrap_or("localhost");
            same_over_all(
                addr,
                sni,
                &req.method,
                &req.authority,
                &req.target,
                &req.headers,
            )
            .await;
            compared += 1;
        }
        server.shutdown().await;
    }
    assert!(compared >= 30, "only {compared} requests compared");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_mode_http3_reloads_certificates_and_counts_requests() {
    let dir = tempfile::tempdir().expect("tempdir");
    let write = |rel: &str, text: &str| files::write(dir.path(), rel, text);
    let ca = pki::root("h3 Root");
    let inter = pki::intermediate("h3 Intermediate", &ca);
    write("ca.pem", &ca.pem());
    write("site/index.html", "home over any protocol\n");
    let install = |leaf: &pki::Issued| pki::install_upload(dir.path(), "certs/s", leaf, &inter);
    let first = pki::leaf(&["s.test"], &inter, 30 * pki::DAY);
    install(&first);
    let root = dir.path().join("site").display().to_string();
    write(
        "htgate.toml",
        &format!(
            "certificates_dir = \"certs\"\nextra_ca_roots = [\"ca.pem\"]\ncert_check_seconds = 3600\n\
             [admin]\nlisten = \"127.0.0.1:0\"\n\
             [[listen]]\naddress = \"127.0.0.1:0\"\ntls = true\nhttp3 = true\n\
             [[listen]]\naddress = \"127.0.0.2:0\"\ntls = true\nhttp3 = true\nalt_svc = false\n\
             [[site]]\nname = \"s\"\ndomains = [\"s.test\"]\nroot = \"{root}\"\n"
        ),
    );
    let cfg = Config::load(&dir.path().join("htgate.toml")).expect("config");
    let server = htgate_hosting::run::start(&cfg).await.expect("start");
    let https = server.addr(true).expect("https");
    let quiet = server
        .addrs()
        .into_iter()
        .find(|(a, tls)| *tls && *a != https)
        .map(|(a, _)| a)
        .expect("second TLS listener");
    let mut h3_addrs = server.http3_addrs();
    h3_addrs.sort();
    assert_eq!(h3_addrs, vec![https, quiet]);
    // `alt_svc = false`: HTTP/3 served, not advertised.
    let none: Vec<(String, String)> = Vec::new();
    let tcp = request(Protocol::H1, quiet, "s.test", "GET", "s.test", "/", &none)
        .await
        .expect("h1");
    assert_eq!(tcp.header("alt-svc"), None);
    let udp = request(Protocol::H3, quiet, "s.test", "GET", "s.test", "/", &none)
        .await
        .expect("h3");
    assert_eq!(udp.status, 200);
    let admin = server.admin_addr().expect("admin");

    let chain = quic_served_chain(https, "s.test").await.expect("chain");
    assert_eq!(chain[0].as_ref(), first.der().as_slice());

    let h3_count = || async {
        let m = probe::get(admin, None, "127.0.0.1", "/metrics", &[]).await;
        m.body
            .lines()
            .find(|l| l.starts_with("htgate_requests_by_protocol_total{protocol=\"h3\"}"))
            .and_then(|l| l.rsplit(' ').next()?.parse::<u64>().ok())
            .unwrap_or(0)
    };
    let before = h3_count().await;
    for _ in 0..3 {
        let r = same_over_all(https, "s.test", "GET", "s.test", "/", &none).await;
        assert_eq!(r.body, b"home over any protocol\n");
    }
    let after = h3_count().await;
    assert!(
        after >= before + 3,
        "h3 requests counted: {before} -> {after}"
    );

    let second = pki::leaf(&["s.test"], &inter, 60 * pki::DAY);
    install(&second);
    let started = Instant::now();
    let mut served = Vec::new();
    while started.elapsed() < DEADLINE {
        served = quic_served_chain(https, "s.test").await.expect("chain")[0].to_vec();
        if served == second.der() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        served,
        second.der(),
        "the replaced certificate is not served to a new QUIC handshake"
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_http3_nothing_is_advertised_or_served_over_udp() {
    let dir = tempfile::tempdir().expect("tempdir");
    files::write(dir.path(), "index.html", "x\n");
    let opts = htgate_hosting::quick::QuickOptions::new(dir.path().to_path_buf());
    let server = htgate_hosting::quick::start(opts).await.expect("start");
    assert_eq!(server.http3_addr, None);
    let none: Vec<(String, String)> = Vec::new();
    let r = request(
        Protocol::H2,
        server.https_addr,
        "localhost",
        "GET",
        "localhost",
        "/",
        &none,
    )
    .await
    .expect("h2");
    assert_eq!(r.status, 200);
    assert_eq!(r.header("alt-svc"), None);
    // Nothing listens on UDP: no answer (within 2 s is enough to tell).
    let h3 = tokio::time::timeout(
        Duration::from_secs(2),
        request(
            Protocol::H3,
            server.https_addr,
            "localhost",
            "GET",
            "localhost",
            "/",
            &none,
        ),
    )
    .await;
    assert!(!matches!(h3, Ok(Ok(_))), "HTTP/3 answered without --http3");
    server.shutdown().await;
}

#[test]
fn http3_on_a_plain_listener_is_a_config_error_with_its_place() {
    let dir = tempfile::tempdir().expect("tempdir");
    files::write(dir.path(), "site/index.html", "x\n");
    let root = dir.path().join("site").display().to_string();
    let text = format!(
        "[[listen]]\naddress = \"127.0.0.1:0\"\nhttp3 = true\n[[site]]\nname = \"s\"\ndomains = [\"s.test\"]\nroot = \"{root}\"\n"
    );
    files::write(dir.path(), "htgate.toml", &text);
    let err = match Config::load(&dir.path().join("htgate.toml")) {
        Ok(_) => panic!("accepted http3 without tls"),
        Err(e) => e.to_string(),
    };
    assert!(err.contains("htgate.toml:3:9"), "{err}");
    assert!(err.contains("HTTP/3 runs over QUIC"), "{err}");
}

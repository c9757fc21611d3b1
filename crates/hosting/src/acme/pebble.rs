//! Test helper: a throw-away pebble ACME CA on loopback.
//!
//! Not used by the server. It lives in the library (rather than under
//! `#[cfg(test)]`) so that integration tests and other modules' tests can
//! use it too. [`Pebble::start`] runs `pebble-challtestsrv` as a DNS server
//! that resolves every name to 127.0.0.1, and `pebble` itself on free
//! loopback ports with a freshly generated HTTPS certificate; both are
//! killed on drop. Pebble validates HTTP-01 by fetching
//! `http://<domain>:<http_port>/.well-known/acme-challenge/<token>`, which
//! [`serve_challenges`] answers from a [`Challenges`].

use std::fs::{self, File};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rustls_pki_types::{CertificateDer, ServerName};

use super::settings::AcmeSettings;

/// The key of the test root, kept in pebble's private temp folder so that
/// other loopback test servers can get certificates the client trusts.
const ROOT_KEY_FILE: &str = "ca-key.pem";

/// The test root's name and uses.
fn root_params() -> Result<rcgen::CertificateParams, rcgen::Error> {
    let mut ca_params = rcgen::CertificateParams::new(Vec::<String>::new())?;
    ca_params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(rcgen::DnType::CommonName, "htgate test pebble root");
    ca_params.key_usages = vec![
        rcgen::KeyUsagePurpose::KeyCertSign,
        rcgen::KeyUsagePurpose::CrlSign,
    ];
    Ok(ca_params)
}

/// How long pebble may take to come up.
const START_TIMEOUT: Duration = Duration::from_secs(10);

/// A running pebble + challtestsrv pair; both processes die with it.
pub struct Pebble {
    dir: PathBuf,
    port: u16,
    ca_root: PathBuf,
    pebble: Option<Child>,
    challtestsrv: Option<Child>,
}

impl Pebble {
    /// Both binaries are on PATH.
    pub fn available() -> bool {
        on_path("pebble") && on_path("pebble-challtestsrv")
    }

    /// For tests: `true` when pebble can run. Otherwise panics under CI
    /// (`CI=true`: a CI machine without pebble must not pass silently) and
    /// returns `false` with a note elsewhere, so the caller skips.
    pub fn available_or_skip(test: &str) -> bool {
        if Self::available() {
            return true;
        }
        if std::env::var("CI").is_ok_and(|v| v == "true") {
            panic!(
                "pebble not installed (apt-get install -y pebble) but CI=true; {test} cannot run"
            );
        }
        eprintln!("skipping {test}: pebble not installed (apt-get install -y pebble)");
        false
    }

    /// For tests: [`Pebble::start`] off the async workers (it waits for the
    /// processes to come up); panics when pebble does not start.
    pub async fn start_for_test(http_port: u16) -> Pebble {
        tokio::task::spawn_blocking(move || Pebble::start(http_port))
            .await
            .expect("start task")
            .unwrap_or_else(|e| panic!("pebble did not start: {e}"))
    }

    /// Start pebble validating HTTP-01 on `http_port` of whatever address a
    /// name resolves to (always 127.0.0.1 here).
    pub fn start(http_port: u16) -> Result<Pebble, String> {
        let dir = private_temp_dir()?;
        let mut me = Pebble {
            ca_root: dir.join("ca.pem"),
            dir,
            port: 0,
            pebble: None,
            challtestsrv: None,
        };
        let (cert_path, key_path) = me.write_https_certificate()?;

        let dns_port = free_udp_and_tcp_port()?;
        let challtest_management = free_tcp_port()?;
        // -http01/-https01/-tlsalpn01 "" : challtestsrv only serves DNS here;
        // the challenge answers come from the code under test.
        let log = me.log_file("challtestsrv.log")?;
        me.challtestsrv = Some(
            Command::new("pebble-challtestsrv")
                .args(["-defaultIPv4", "127.0.0.1", "-defaultIPv6", ""])
                .args(["-dns01", &format!("127.0.0.1:{dns_port}")])
                .args(["-http01", "", "-https01", "", "-tlsalpn01", ""])
                .args(["-management", &format!("127.0.0.1:{challtest_management}")])
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log)
                .spawn()
                .map_err(|e| format!("cannot run pebble-challtestsrv: {e}"))?,
        );
        me.wait_until("pebble-challtestsrv listening", || {
            TcpStream::connect(("127.0.0.1", challtest_management)).is_ok()
        })?;

        me.port = free_tcp_port()?;
        let config = pebble_config(
            me.port,
            free_tcp_port()?,
            free_tcp_port()?,
            &cert_path,
            &key_path,
            http_port,
        );
        let config_path = me.dir.join("pebble-config.json");
        fs::write(&config_path, config).map_err(|e| format!("write pebble config: {e}"))?;
        let log = me.log_file("pebble.log")?;
        me.pebble = Some(
            Command::new("pebble")
                .arg("-config")
                .arg(&config_path)
                .args(["-dnsserver", &format!("127.0.0.1:{dns_port}")])
                // No random 0-15 s sleep before validating.
                .env("PEBBLE_VA_NOSLEEP", "1")
                // Pebble rejects 5 % of good nonces by default to test
                // clients' retries; tests want determinism.
                .env("PEBBLE_WFE_NONCEREJECT", "0")
                // A renewal must really validate again, not reuse an authz.
                .env("PEBBLE_AUTHZREUSE", "0")
                .stdin(Stdio::null())
                .stdout(log.try_clone().map_err(|e| e.to_string())?)
                .stderr(log)
                .spawn()
                .map_err(|e| format!("cannot run pebble: {e}"))?,
        );
        let root = me.root_certificate()?;
        let port = me.port;
        me.wait_until("pebble's directory answering", || {
            directory_answers(port, &root)
        })?;
        Ok(me)
    }

    /// The directory URL to put in [`AcmeSettings::directory_url`].
    pub fn directory_url(&self) -> String {
        format!("https://127.0.0.1:{}/dir", self.port)
    }

    /// The root of pebble's HTTPS certificate, for [`AcmeSettings::ca_root`].
    pub fn ca_root_pem_path(&self) -> &Path {
        &self.ca_root
    }

    /// Settings for this pebble with short retries (1 s base).
    pub fn settings(&self, storage: impl Into<PathBuf>) -> AcmeSettings {
        let mut settings = AcmeSettings::new(self.directory_url(), storage);
        settings.ca_root = Some(self.ca_root.clone());
        settings.contact = vec!["mailto:admin@example.test".to_string()];
        settings.retry_base = Duration::from_secs(1);
        settings
    }

    /// Both processes' output so far, for failure messages.
    pub fn logs(&self) -> String {
        let read = |name: &str| fs::read_to_string(self.dir.join(name)).unwrap_or_default();
        format!(
            "--- pebble ---\n{}\n--- challtestsrv ---\n{}",
            read("pebble.log"),
            read("challtestsrv.log")
        )
    }

    /// A CA and a leaf for localhost/127.0.0.1 signed by it: pebble serves
    /// the leaf, the client trusts the CA (webpki refuses a self-signed
    /// leaf as its own anchor in some configurations; a real chain is safe).
    fn write_https_certificate(&self) -> Result<(PathBuf, PathBuf), String> {
        let err = |e: rcgen::Error| format!("generate pebble's certificate: {e}");
        let ca_key = rcgen::KeyPair::generate().map_err(err)?;
        let ca = root_params()
            .map_err(err)?
            .self_signed(&ca_key)
            .map_err(err)?;

        let key = rcgen::KeyPair::generate().map_err(err)?;
        let mut params =
            rcgen::CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
                .map_err(err)?;
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "localhost");
        let leaf = params.signed_by(&key, &ca, &ca_key).map_err(err)?;

        let cert_path = self.dir.join("pebble-cert.pem");
        let key_path = self.dir.join("pebble-key.pem");
        let write = |path: &Path, text: String| {
            fs::write(path, text).map_err(|e| format!("write {}: {e}", path.display()))
        };
        write(&self.ca_root, ca.pem())?;
        write(&self.dir.join(ROOT_KEY_FILE), ca_key.serialize_pem())?;
        write(&cert_path, leaf.pem())?;
        write(&key_path, key.serialize_pem())?;
        Ok((cert_path, key_path))
    }

    /// A certificate for 127.0.0.1 under the root pebble's own HTTPS
    /// certificate chains to (`(chain PEM, key PEM)`): for another test
    /// server the ACME client talks to (it trusts one root only).
    #[cfg(test)]
    pub(crate) fn loopback_certificate(&self) -> Result<(String, String), String> {
        let err = |e: rcgen::Error| format!("sign a loopback certificate: {e}");
        let key_pem = fs::read_to_string(self.dir.join(ROOT_KEY_FILE))
            .map_err(|e| format!("read the root's key: {e}"))?;
        let ca_key = rcgen::KeyPair::from_pem(&key_pem).map_err(err)?;
        // The same name and key as the root written at the start: what a
        // signature is checked against.
        let ca = root_params()
            .map_err(err)?
            .self_signed(&ca_key)
            .map_err(err)?;
        let key = rcgen::KeyPair::generate().map_err(err)?;
        let params = rcgen::CertificateParams::new(vec!["127.0.0.1".to_string()]).map_err(err)?;
        let leaf = params.signed_by(&key, &ca, &ca_key).map_err(err)?;
        Ok((leaf.pem(), key.serialize_pem()))
    }

    fn root_certificate(&self) -> Result<CertificateDer<'static>, String> {
        use rustls_pki_types::pem::PemObject;
        CertificateDer::from_pem_file(&self.ca_root)
            .map_err(|e| format!("read {}: {e}", self.ca_root.display()))
    }

    fn log_file(&self, name: &str) -> Result<File, String> {
        File::create(self.dir.join(name)).map_err(|e| format!("create {name}: {e}"))
    }

    /// Poll `ready` for up to START_TIMEOUT; fail early if a process died.
    fn wait_until(&mut self, what: &str, mut ready: impl FnMut() -> bool) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if ready() {
                return Ok(());
            }
            let exited = [
                ("pebble", &mut self.pebble),
                ("pebble-challtestsrv", &mut self.challtestsrv),
            ]
            .into_iter()
            .find_map(|(name, child)| match child.as_mut().map(Child::try_wait) {
                Some(Ok(Some(status))) => Some((name, status)),
                _ => None,
            });
            if let Some((name, status)) = exited {
                return Err(format!(
                    "{name} exited ({status}) before {what}\n{}",
                    self.logs()
                ));
            }
            if Instant::now() > deadline {
                return Err(format!(
                    "timed out after {START_TIMEOUT:?} waiting for {what}\n{}",
                    self.logs()
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        for child in [self.pebble.take(), self.challtestsrv.take()]
            .into_iter()
            .flatten()
        {
            let mut child = child;
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Serve `challenges` over plain HTTP on `listener` (what htgate's own HTTP
/// server does in production): 200 with the key authorization for a known
/// token, 404 otherwise. The task ends when aborted.
#[cfg(test)]
pub(crate) fn serve_challenges(
    listener: tokio::net::TcpListener,
    challenges: super::Challenges,
) -> tokio::task::JoinHandle<()> {
    use http_body_util::Full;
    use hyper::body::Bytes;

    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let challenges = challenges.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |request: hyper::Request<hyper::body::Incoming>| {
                        let answer = challenges.answer_path(request.uri().path());
                        async move {
                            let (status, body) = match answer {
                                Some(key_authorization) => {
                                    (hyper::StatusCode::OK, key_authorization)
                                }
                                None => (hyper::StatusCode::NOT_FOUND, "not found\n".to_string()),
                            };
                            hyper::Response::builder()
                                .status(status)
                                .header("content-type", "text/plain")
                                .body(Full::new(Bytes::from(body)))
                        }
                    },
                );
                let io = hyper_util::rt::TokioIo::new(stream);
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(io, service)
                    .await;
            });
        }
    })
}

/// The pebble JSON config (written by hand: serde_json is only a dev-dependency).
fn pebble_config(
    port: u16,
    management: u16,
    tls_port: u16,
    cert: &Path,
    key: &Path,
    http_port: u16,
) -> String {
    format!(
        r#"{{"pebble":{{"listenAddress":"127.0.0.1:{port}","managementListenAddress":"127.0.0.1:{management}","certificate":{cert},"privateKey":{key},"httpPort":{http_port},"tlsPort":{tls_port},"ocspResponderURL":"","externalAccountBindingRequired":false}}}}"#,
        cert = json_string(&cert.display().to_string()),
        key = json_string(&key.display().to_string()),
    )
}

fn json_string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// GET /dir over TLS trusting `root`: proves both that pebble is up and that
/// the generated certificate is what a client will accept.
fn directory_answers(port: u16, root: &CertificateDer<'static>) -> bool {
    let attempt = || -> Result<bool, Box<dyn std::error::Error>> {
        let mut roots = rustls::RootCertStore::empty();
        roots.add(root.clone())?;
        let config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(roots)
        .with_no_client_auth();
        let server_name = ServerName::try_from("127.0.0.1")?.to_owned();
        let connection = rustls::ClientConnection::new(Arc::new(config), server_name)?;
        let tcp =
            TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(1))?;
        tcp.set_read_timeout(Some(Duration::from_secs(2)))?;
        tcp.set_write_timeout(Some(Duration::from_secs(2)))?;
        let mut tls = rustls::StreamOwned::new(connection, tcp);
        tls.write_all(
            format!("GET /dir HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nConnection: close\r\n\r\n")
                .as_bytes(),
        )?;
        let mut head = [0u8; 12];
        tls.read_exact(&mut head)?;
        Ok(&head == b"HTTP/1.1 200")
    };
    attempt().unwrap_or(false)
}

fn on_path(binary: &str) -> bool {
    use std::os::unix::fs::PermissionsExt;
    std::env::var_os("PATH").is_some_and(|path| {
        std::env::split_paths(&path).any(|dir| {
            fs::metadata(dir.join(binary))
                .is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        })
    })
}

/// A fresh folder under the system temp dir (tempfile is a dev-dependency only).
fn private_temp_dir() -> Result<PathBuf, String> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    let dir = std::env::temp_dir().join(format!(
        "htgate-pebble-{}-{}-{nanos}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    fs::create_dir(&dir).map_err(|e| format!("create {}: {e}", dir.display()))?;
    Ok(dir)
}

/// A loopback TCP port nobody uses right now (the kernel picks it).
fn free_tcp_port() -> Result<u16, String> {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| format!("find a free port: {e}"))
}

/// A port free for both UDP and TCP (DNS listens on both).
fn free_udp_and_tcp_port() -> Result<u16, String> {
    for _ in 0..50 {
        let udp =
            UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("find a free UDP port: {e}"))?;
        let port = udp.local_addr().map_err(|e| e.to_string())?.port();
        if TcpListener::bind(("127.0.0.1", port)).is_ok() {
            return Ok(port);
        }
    }
    Err("no port free for both UDP and TCP".to_string())
}

/// The DNS names in a certificate's subject alternative names (tests).
pub fn dns_names(der: &[u8]) -> Vec<String> {
    let Ok((_, x)) = x509_parser::parse_x509_certificate(der) else {
        return Vec::new();
    };
    x.subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter_map(|n| match n {
                    x509_parser::extensions::GeneralName::DNSName(d) => Some(d.to_string()),
                    _ => None,
                })
                .collect()
        })
        .unwrap_or_default()
}

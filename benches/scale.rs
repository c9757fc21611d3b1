//! Scale bench (issue 8): 10,000 sites in config mode, each with
//! WordPress's `.htaccess` (every 500th Drupal's, every 500th+250 Joomla's,
//! from ../shared/corpus/htaccess).  Prints the start-up time (spawn to the
//! first answered request), the server's RSS after one request to every
//! site, and the first-request time (which includes the lazy `.htaccess`
//! compile) next to a second, warm request.
//!
//!     cargo bench --bench scale            # HTGATE_SCALE_SITES=N to change 10,000
//!
//! It runs the release binary (`CARGO_BIN_EXE_htgate`) as a child so that
//! the RSS is the server's alone.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

/// One GET over a kept-alive connection; returns the status.
fn get(conn: &mut BufReader<TcpStream>, host: &str, path: &str) -> std::io::Result<u16> {
    let req = format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n");
    conn.get_mut().write_all(req.as_bytes())?;
    let mut line = String::new();
    conn.read_line(&mut line)?;
    let status: u16 = line
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    loop {
        let mut h = String::new();
        if conn.read_line(&mut h)? == 0 {
            break;
        }
        let t = h.trim_end();
        if t.is_empty() {
            break;
        }
        if let Some((k, v)) = t.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                len = v.trim().parse().unwrap_or(0);
            }
        }
    }
    let mut body = vec![0u8; len];
    conn.read_exact(&mut body)?;
    Ok(status)
}

fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1).and_then(|n| n.parse().ok()))
        })
        .unwrap_or(0)
}

fn main() {
    // `cargo bench` passes `--bench`; nothing to filter here.
    let n: usize = std::env::var("HTGATE_SCALE_SITES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10_000);
    let corpus = Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared/corpus/htaccess");
    let read = |f: &str| std::fs::read(corpus.join(f)).expect("corpus file under ../shared");
    let wordpress = read("wordpress.htaccess");
    let drupal = read("drupal.htaccess");
    let joomla = read("joomla.htaccess");

    let tmp = tempfile::tempdir().expect("temp dir");
    let port = free_port();
    let tls_port = free_port();
    let mut toml = format!(
        "[[listen]]\naddress = \"127.0.0.1:{port}\"\n\n[[listen]]\naddress = \"127.0.0.1:{tls_port}\"\ntls = true\n\n"
    );
    let t = Instant::now();
    for i in 0..n {
        let root = tmp.path().join(format!("s{i}"));
        std::fs::create_dir_all(&root).expect("site dir");
        let ht = match i % 500 {
            0 => &drupal,
            250 => &joomla,
            _ => &wordpress,
        };
        std::fs::write(root.join(".htaccess"), ht).expect("write");
        std::fs::write(root.join("style.css"), b"body{color:#333}\n").expect("write");
        std::fs::write(root.join("index.html"), b"<h1>hi</h1>\n").expect("write");
        toml.push_str(&format!(
            "[[site]]\nname = \"s{i}\"\ndomains = [\"s{i}.example.test\"]\nroot = \"{}\"\n\n",
            root.display()
        ));
    }
    let cfg = tmp.path().join("htgate.toml");
    std::fs::write(&cfg, toml).expect("write config");
    println!("sites: {n} (generated in {:.2?})", t.elapsed());

    let start = Instant::now();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_htgate"))
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start htgate");
    let pid = child.id();
    let mut conn = loop {
        if start.elapsed() > Duration::from_secs(120) {
            let _ = child.kill();
            panic!("htgate did not start within 120 s");
        }
        match TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break BufReader::new(s),
            Err(_) => std::thread::sleep(Duration::from_millis(5)),
        }
    };
    let first = get(&mut conn, "s1.example.test", "/style.css").expect("first request");
    let startup = start.elapsed();
    println!(
        "startup (spawn to first answer): {startup:.2?} (status {first}), RSS {} KiB",
        rss_kib(pid)
    );

    // One request to every site: the first one compiles its `.htaccess`.
    let t = Instant::now();
    let mut worst = Duration::ZERO;
    let mut bad = 0;
    for i in 0..n {
        let one = Instant::now();
        let s = get(&mut conn, &format!("s{i}.example.test"), "/style.css").unwrap_or(0);
        worst = worst.max(one.elapsed());
        if s != 200 {
            bad += 1;
        }
    }
    let cold = t.elapsed();
    let rss = rss_kib(pid);
    // The same again, warm.
    let t = Instant::now();
    for i in 0..n {
        let _ = get(&mut conn, &format!("s{i}.example.test"), "/style.css");
    }
    let warm = t.elapsed();
    println!(
        "first request per site: {:.1} µs mean (worst {worst:.2?}), {bad} not 200",
        cold.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "second request per site: {:.1} µs mean",
        warm.as_secs_f64() * 1e6 / n as f64
    );
    println!(
        "RSS after one request to every site: {} KiB ({:.1} MiB)",
        rss,
        rss as f64 / 1024.0
    );
    println!("RSS after the warm pass: {} KiB", rss_kib(pid));
    let _ = child.kill();
    let _ = child.wait();
}

//! Hot-reload latency: the time from `rename()` of a new `.htaccess` over
//! the old one to the first request answered with the new rules, with
//! inotify events and with the polling fallback alone.
//!
//! `cargo bench --bench reload` prints the median and p99 of each mode.
//! (Not criterion: each sample is one real save observed through real
//! requests, and the polling mode's samples are up to a poll interval
//! long.)  `HTGATE_RELOAD_SAMPLES` and `HTGATE_RELOAD_POLL_SAMPLES` change
//! the sample counts (default 200 and 20).

use htgate_hosting::config::Config;
use std::net::SocketAddr;
use std::path::Path;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

async fn header_x_v(addr: SocketAddr) -> Option<String> {
    let mut s = tokio::net::TcpStream::connect(addr).await.ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: s.test\r\nConnection: close\r\n\r\n")
        .await
        .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).await.ok()?;
    let text = String::from_utf8_lossy(&buf);
    text.lines()
        .find_map(|l| l.strip_prefix("X-V: ").or_else(|| l.strip_prefix("x-v: ")))
        .map(|v| v.trim().to_string())
}

fn replace(dir: &Path, version: usize) {
    let tmp = dir.join(".htaccess.tmp");
    if std::fs::write(&tmp, format!("Header always set X-V v{version}\n")).is_ok() {
        let _ = std::fs::rename(&tmp, dir.join(".htaccess"));
    }
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

async fn measure(label: &str, extra: &str, samples: usize, jitter: Option<Duration>) {
    let dir = match tempfile::tempdir() {
        Ok(d) => d,
        Err(e) => return eprintln!("tempdir: {e}"),
    };
    let site = dir.path().join("site");
    let _ = std::fs::create_dir_all(&site);
    let _ = std::fs::write(site.join("index.html"), "x");
    replace(&site, 0);
    let text = format!(
        "{extra}\n[[listen]]\naddress = \"127.0.0.1:0\"\n[[site]]\nname = \"s\"\ndomains = [\"s.test\"]\nroot = \"{}\"\n",
        site.display()
    );
    let cfg_path = dir.path().join("htgate.toml");
    let _ = std::fs::write(&cfg_path, text);
    let config = match Config::load(&cfg_path) {
        Ok(c) => c,
        Err(e) => return eprintln!("{e}"),
    };
    let server = match htgate_hosting::run::start(&config).await {
        Ok(s) => s,
        Err(e) => return eprintln!("start: {e:#}"),
    };
    let Some(addr) = server.addr(false) else {
        return;
    };
    // Warm the cache so the first sample measures a reload, not a load.
    let _ = header_x_v(addr).await;
    let mut times = Vec::with_capacity(samples);
    let mut timeouts = 0;
    // Saves come at random moments relative to the poll timer, as real
    // ones do (a fixed rhythm would measure the timer's phase).
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    for i in 1..=samples {
        if let Some(spread) = jitter {
            seed = seed
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            let frac = (seed >> 33) as f64 / (1u64 << 31) as f64;
            tokio::time::sleep(spread.mul_f64(frac)).await;
        }
        let want = format!("v{i}");
        let started = Instant::now();
        replace(&site, i);
        loop {
            if header_x_v(addr).await.as_deref() == Some(want.as_str()) {
                times.push(started.elapsed());
                break;
            }
            if started.elapsed() > Duration::from_secs(10) {
                timeouts += 1;
                break;
            }
        }
    }
    if std::env::var_os("HTGATE_RELOAD_VERBOSE").is_some() {
        eprintln!("{label}: {times:?}");
    }
    times.sort();
    println!(
        "{label:<28} samples {:>4}  median {:>9.2?}  p99 {:>9.2?}  max {:>9.2?}  timeouts {timeouts}",
        times.len(),
        percentile(&times, 0.5),
        percentile(&times, 0.99),
        times.last().copied().unwrap_or_default(),
    );
    server.shutdown().await;
}

fn samples(var: &str, default: usize) -> usize {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes
    // nothing we need: run a tiny sample then, so the bench stays tested.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (n, np) = if quick {
        (3, 1)
    } else {
        (
            samples("HTGATE_RELOAD_SAMPLES", 200),
            samples("HTGATE_RELOAD_POLL_SAMPLES", 20),
        )
    };
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => return eprintln!("runtime: {e}"),
    };
    rt.block_on(async {
        measure("inotify events", "reload_poll_seconds = 0", n, None).await;
        measure(
            "polling only (interval 1 s)",
            "watch = false\nreload_poll_seconds = 1",
            np,
            Some(Duration::from_secs(1)),
        )
        .await;
    });
}

//! The command line as an operator meets it: `check --config` (the
//! configtest), `serve` without arguments, the demo (HSTS over HTTPS only,
//! its folder removed on a stop and on a failed start), completions and
//! man pages generated from the CLI definition.

use crate::support::probe;
use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

fn htgate(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_htgate"))
        .args(args)
        .env_remove("RUST_LOG")
        .output()
        .expect("run htgate")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A one-site configuration under `dir` (its root is `dir/site`).
fn config_in(dir: &Path) -> String {
    let root = dir.join("site");
    std::fs::create_dir_all(root.join("shop")).expect("mkdir");
    std::fs::write(
        root.join(".htaccess"),
        "RewriteEngine On\nRewriteRule ^old$ /new [R=301,L]\n",
    )
    .expect("write");
    let path = dir.join("htgate.toml");
    std::fs::write(
        &path,
        format!(
            "certificates_dir = \"{}/uploaded\"\n\n[[listen]]\naddress = \"127.0.0.1:8080\"\n\n[[site]]\nname = \"a\"\ndomains = [\"a.test\"]\nroot = \"{}\"\n",
            dir.display(),
            root.display()
        ),
    )
    .expect("write config");
    path.to_string_lossy().into_owned()
}

#[test]
fn check_config_is_the_configtest() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path();
    let config = config_in(dir);

    let out = htgate(&["check", "--config", &config]);
    let t = text(&out);
    assert!(out.status.success(), "{t}");
    assert!(
        t.contains("the configuration file is valid (1 site)"),
        "{t}"
    );
    assert!(t.contains("checked 1 file: 0 errors"), "{t}");

    // A broken .htaccess in a subfolder of a site: file:line:col, exit 1.
    let shop = dir.join("site/shop/.htaccess");
    std::fs::write(&shop, "Options +Indexes\nRewriteEngine Onn\n").expect("write");
    let out = htgate(&["check", "--config", &config]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(
        t.contains(&format!("{}:2:", shop.display())) && t.contains("error"),
        "{t}"
    );
    std::fs::remove_file(&shop).expect("rm");

    // An uploaded certificate the server cannot use is an error.
    let up = dir.join("uploaded/a");
    std::fs::create_dir_all(&up).expect("mkdir");
    std::fs::write(up.join("fullchain.pem"), "not a certificate\n").expect("write");
    std::fs::write(up.join("privkey.pem"), "not a key\n").expect("write");
    let out = htgate(&["check", "--config", &config]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("site `a`: the uploaded certificate in"), "{t}");
    std::fs::remove_dir_all(dir.join("uploaded")).expect("rm");

    // An error in the configuration itself: its file:line:col.
    let broken = std::fs::read_to_string(&config)
        .expect("read")
        .replace("root =", "rooot =");
    std::fs::write(&config, broken).expect("write");
    let out = htgate(&["check", "--config", &config]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains(&format!("{config}:")), "{t}");
    assert!(t.contains("rooot"), "{t}");

    // The config given as a .htaccess path: say how to check it.
    let out = htgate(&["check", &config]);
    let t = text(&out);
    assert_eq!(out.status.code(), Some(1), "{t}");
    assert!(t.contains("htgate check --config"), "{t}");
}

#[test]
fn serve_without_arguments_names_both_ways_to_run() {
    let out = htgate(&["serve"]);
    let t = text(&out);
    assert!(!out.status.success());
    assert!(
        t.contains("--config <FILE>") && t.contains("--root <DIR>"),
        "{t}"
    );
}

#[test]
fn completions_and_man_pages_come_from_the_cli_definition() {
    let out = htgate(&["completions", "bash"]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    for word in ["serve", "check", "explain", "cert", "--config", "--root"] {
        assert!(t.contains(word), "bash completion lacks {word}");
    }
    let out = htgate(&["man"]);
    let t = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success());
    assert!(t.contains(".TH htgate 1"), "{t}");
    let tmp = tempfile::tempdir().expect("tempdir");
    let out = htgate(&["man", "--dir", &tmp.path().to_string_lossy()]);
    assert!(out.status.success(), "{}", text(&out));
    for page in [
        "htgate.1",
        "htgate-serve.1",
        "htgate-check.1",
        "htgate-cert-install.1",
    ] {
        let p = tmp.path().join(page);
        let body = std::fs::read_to_string(&p).unwrap_or_default();
        assert!(body.contains(".SH SYNOPSIS"), "{page}: {body}");
    }
}

/// The demo's folder, from its first line.
fn demo_folder(line: &str) -> Option<std::path::PathBuf> {
    line.strip_prefix("htgate demo site in ").map(Into::into)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_sends_hsts_over_https_only_and_cleans_up() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_htgate"))
        .args(["demo", "--http", "127.0.0.1:0", "--https", "127.0.0.1:0"])
        .env_remove("RUST_LOG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn");
    let stderr = child.stderr.take().expect("stderr");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    let (mut folder, mut addrs) = (None, None);
    while addrs.is_none() {
        let line = rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the demo starts");
        folder = folder.or(demo_folder(&line));
        if let Some(rest) = line.strip_prefix("htgate listening on http://") {
            let (h, s) = rest.split_once(" and https://").expect("two addresses");
            addrs = Some((
                h.parse::<SocketAddr>().expect("http"),
                s.trim().parse::<SocketAddr>().expect("https"),
            ));
        }
    }
    let folder = folder.expect("the demo names its folder");
    let (http, https) = addrs.expect("listening");
    assert!(folder.join(".htaccess").is_file());

    let plain = probe::get(http, None, "localhost", "/hello-world", &[]).await;
    assert_eq!(plain.status, 301);
    assert_eq!(plain.header("strict-transport-security"), None);
    let tls = probe::get(
        https,
        Some(Some("localhost")),
        "localhost",
        "/hello-world",
        &[],
    )
    .await;
    assert_eq!(tls.status, 200);
    assert_eq!(tls.header("strict-transport-security"), Some("max-age=300"));
    assert!(tls.body.contains("the front controller"), "{}", tls.body);
    assert!(!tls.body.contains("<?php"), "{}", tls.body);
    let denied = probe::get(
        https,
        Some(Some("localhost")),
        "localhost",
        "/wp-config.php",
        &[],
    )
    .await;
    assert_eq!(denied.status, 403);

    let status = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(20);
    let exited = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "the demo did not stop");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exited.success());
    assert!(!folder.exists(), "{} left behind", folder.display());

    // A failed start (the port is taken) removes its folder too.
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let busy = taken.local_addr().expect("addr").to_string();
    let out = htgate(&["demo", "--http", &busy, "--https", "127.0.0.1:0"]);
    let t = text(&out);
    assert!(!out.status.success(), "{t}");
    assert!(t.contains("choose a free port with --http ADDR"), "{t}");
    let folder = t
        .lines()
        .find_map(demo_folder)
        .expect("the demo names its folder");
    assert!(!folder.exists(), "{} left behind", folder.display());
}

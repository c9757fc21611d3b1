//! Two in-process nodes sharing the folder back end (`[cluster] folder`):
//! an upload on one is served by the other, a published site is served by
//! both, and what the store refuses or cannot use never reaches a node.
//! No etcd needed: this runs under the plain `cargo test`.

use crate::support::probe::eventually;
use crate::support::{files, pki, probe};
use htgate_hosting::cluster::Cluster;
use htgate_hosting::config::Config;
use htgate_hosting::run::{start, HostingServer};
use std::path::Path;
use std::time::Duration;

fn node_config(base: &Path, node: &str) -> Config {
    let text = format!(
        r#"
certificates_dir = "certs"
extra_ca_roots = ["../ca.pem"]
cert_check_seconds = 1
[default_certificate]
cert = "../default.pem"
key = "../default.key"
[[listen]]
address = "127.0.0.1:0"
[[listen]]
address = "127.0.0.1:0"
tls = true
[cluster]
folder = "../shared"
node = "{node}"
cache = "cache"
[[site]]
name = "one"
domains = ["one.test"]
root = "../www/one"
"#
    );
    files::write(base, &format!("{node}/htgate.toml"), &text);
    std::fs::create_dir_all(base.join(node).join("certs/one")).expect("upload folder");
    match Config::load(&base.join(node).join("htgate.toml")) {
        Ok(c) => c,
        Err(e) => panic!("config: {e}"),
    }
}

async fn serial_for(server: &HostingServer, name: &str) -> String {
    let https = server.addr(true).expect("https");
    let chain = probe::served_chain(https, Some(name)).await;
    chain.first().map(probe::serial).unwrap_or_default()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_share_uploads_and_sites_through_a_folder() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path();
    let ca = pki::root("Folder Cluster Root");
    let inter = pki::intermediate("Folder Cluster Intermediate", &ca);
    files::write(base, "ca.pem", &ca.pem());
    let default = pki::self_signed(&["default.test"]);
    files::write(base, "default.pem", &default.pem());
    files::write(base, "default.key", &default.key_pem());
    files::write(base, "www/one/index.html", "one\n");
    files::write(base, "www/two/index.html", "two\n");
    std::fs::create_dir_all(base.join("shared")).expect("shared folder");

    let config_a = node_config(base, "a");
    let config_b = node_config(base, "b");
    let a = start(&config_a).await.expect("node a");
    let b = start(&config_b).await.expect("node b");

    // An upload on A (as `htgate cert install` does it) reaches B.
    let leaf = pki::leaf(&["one.test"], &inter, Duration::from_secs(30 * 86_400));
    let trust = htgate_hosting::run::trust(&config_a).expect("trust");
    // As `htgate cert install` does it.
    let upload_on_a = || {
        htgate_hosting::tls::upload::install(
            &base.join("a/certs/one"),
            format!("{}{}", leaf.pem(), inter.pem()).as_bytes(),
            leaf.key_pem().as_bytes(),
            &["one.test".to_string()],
            htgate_util::unix_now(),
            &trust,
        )
        .expect("a valid upload")
    };
    upload_on_a();
    let want = probe::serial(&leaf.der().into());
    assert!(
        eventually(Duration::from_secs(10), || async {
            serial_for(&b, "one.test").await == want
        })
        .await,
        "node b does not serve node a's upload"
    );
    assert_eq!(serial_for(&a, "one.test").await, want);

    // Deleting it on B deletes it everywhere: A falls back too.
    for f in ["fullchain.pem", "privkey.pem"] {
        std::fs::remove_file(base.join("b/certs/one").join(f)).expect("delete");
    }
    assert!(
        eventually(Duration::from_secs(10), || async {
            serial_for(&a, "one.test").await != want
        })
        .await,
        "node a still serves the upload deleted on node b"
    );
    assert!(!base.join("a/certs/one/fullchain.pem").exists());

    // Uploaded again on A, for the rest of the test.
    upload_on_a();
    assert!(
        eventually(Duration::from_secs(10), || async {
            serial_for(&b, "one.test").await == want
        })
        .await,
        "node b does not serve node a's second upload"
    );

    // A site published to the store is served by both nodes.
    let cluster = Cluster::from_config(config_a.file.cluster.as_ref().expect("cluster").get_ref())
        .expect("cluster");
    let doc = format!(
        "[[site]]\nname = \"two\"\ndomains = [\"two.test\"]\nroot = \"{}\"\n",
        base.join("www/two").display()
    );
    let name = cluster
        .publish_site(&config_a, "two.toml", &doc)
        .await
        .expect("published");
    assert_eq!(name, "two");
    for server in [&a, &b] {
        let http = server.addr(false).expect("http");
        assert!(
            eventually(Duration::from_secs(10), || async {
                let r = probe::get(http, None, "two.test", "/", &[]).await;
                r.status == 200 && r.body == "two\n"
            })
            .await,
            "the published site is not served"
        );
    }

    // Kept for a restart while the store is away.
    assert!(base.join("b/cache/sites/two.toml").is_file());

    // A document that takes another site's domain is refused, with where.
    let clash = "[[site]]\nname = \"three\"\ndomains = [\"one.test\"]\nroot = \"/\"\n";
    let err = cluster
        .publish_site(&config_a, "three.toml", clash)
        .await
        .expect_err("domain clash");
    assert!(
        err.contains("one.test") && err.contains("three.toml:3:"),
        "no line and domain in: {err}"
    );
    // One written to the store behind htgate's back is left out by the
    // nodes (the error log says why); the other sites keep working.
    cluster
        .store()
        .put("sites/broken", b"[[site]]\nname = \"broken\"\nnope = 1\n")
        .await
        .expect("put");
    tokio::time::sleep(Duration::from_millis(800)).await;
    let http = b.addr(false).expect("http");
    let r = probe::get(http, None, "two.test", "/", &[]).await;
    assert_eq!((r.status, r.body.as_str()), (200, "two\n"));

    // Removing the site from the store stops it on both nodes (unknown
    // names get the first site, as in Apache).
    assert!(cluster.remove_site("two").await.expect("removed"));
    assert!(
        eventually(Duration::from_secs(10), || async {
            let r = probe::get(http, None, "two.test", "/", &[]).await;
            r.body == "one\n"
        })
        .await,
        "the removed site is still served"
    );
    // The cache follows the store.
    assert!(!base.join("b/cache/sites/two.toml").exists());
    a.shutdown().await;
    b.shutdown().await;
}

#[test]
fn cluster_config_errors_say_where() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path();
    files::write(base, "www/index.html", "x\n");
    let check = |cluster: &str| {
        let text = format!(
            "[[listen]]\naddress = \"127.0.0.1:0\"\n[cluster]\n{cluster}\n[[site]]\nname = \"s\"\ndomains = [\"s.test\"]\nroot = \"www\"\n"
        );
        files::write(base, "htgate.toml", &text);
        Config::load(&base.join("htgate.toml"))
            .map(|_| ())
            .map_err(|e| e.to_string())
    };
    let err = check("node = \"x\"").expect_err("no store");
    assert!(
        err.contains("htgate.toml:3:1") && err.contains("needs a store"),
        "{err}"
    );
    let err = check("etcd = [\"http://127.0.0.1:2379\"]\nfolder = \"f\"").expect_err("both");
    assert!(err.contains(":5:") && err.contains("choose one"), "{err}");
    let err = check("etcd = [\"127.0.0.1:2379\"]").expect_err("not a URL");
    assert!(err.contains(":4:") && err.contains("not a URL"), "{err}");
    let err = check("folder = \"f\"\nprefix = \"htgate\"").expect_err("prefix");
    assert!(err.contains("prefix"), "{err}");
    let etcd = check("etcd = [\"http://127.0.0.1:2379\"]");
    if cfg!(feature = "etcd") {
        assert!(etcd.is_ok(), "{etcd:?}");
    } else {
        let err = etcd.expect_err("no etcd in this build");
        assert!(err.contains("--features etcd"), "{err}");
    }
}

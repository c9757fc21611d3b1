//! End-to-end tests on the real filesystem: each save style must produce
//! its change within a bounded deadline. Run with
//! `RUST_LOG=htgate::watch=trace` and `--nocapture` to see the raw events.

use std::fs;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError};
use std::time::{Duration, Instant};

use super::*;

/// Generous: the machine running the tests may be busy.
const DEADLINE: Duration = Duration::from_secs(10);

struct Rig {
    watcher: Watcher,
    rx: Receiver<(Instant, Vec<Change>)>,
}

fn init_log() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_test_writer()
        .try_init();
}

fn spec(trees: &[&Path], files: &[&Path], dirs: &[&Path]) -> WatchSpec {
    let paths = |ps: &[&Path]| ps.iter().map(|p| p.to_path_buf()).collect();
    WatchSpec {
        trees: paths(trees),
        files: paths(files),
        dirs: paths(dirs),
        debounce: Duration::from_millis(50),
        poll_interval: None,
        use_events: true,
    }
}

fn start(spec: WatchSpec) -> Rig {
    init_log();
    let (tx, rx) = channel();
    let sink = Box::new(move |changes: Vec<Change>| {
        let _ = tx.send((Instant::now(), changes));
    });
    let watcher = Watcher::start(spec, sink).expect("watcher starts");
    Rig { watcher, rx }
}

impl Rig {
    /// Waits until every change in `wants` has been reported (in any
    /// batches); returns the batches seen meanwhile.
    fn wait_all(&self, wants: &[Change]) -> Vec<Vec<Change>> {
        let deadline = Instant::now() + DEADLINE;
        let mut seen: Vec<Vec<Change>> = Vec::new();
        loop {
            let missing: Vec<&Change> = wants
                .iter()
                .filter(|w| !seen.iter().flatten().any(|c| c == *w))
                .collect();
            if missing.is_empty() {
                return seen;
            }
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok((_, batch)) => {
                    assert!(!batch.is_empty(), "the sink got an empty batch");
                    seen.push(batch);
                }
                Err(_) => panic!("no {missing:?} within {DEADLINE:?}; saw {seen:?}"),
            }
        }
    }

    fn wait_for(&self, want: Change) -> Vec<Vec<Change>> {
        self.wait_all(&[want])
    }

    /// Everything reported within `window`.
    fn quiet(&self, window: Duration) -> Vec<Vec<Change>> {
        let end = Instant::now() + window;
        let mut seen = Vec::new();
        while let Ok((_, batch)) = self
            .rx
            .recv_timeout(end.saturating_duration_since(Instant::now()))
        {
            seen.push(batch);
        }
        seen
    }
}

fn write(path: &Path, text: &str) {
    fs::write(path, text).expect("write");
}

fn ht(dir: &Path) -> Change {
    Change::Htaccess(dir.to_path_buf())
}

fn site() -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().expect("tempdir");
    let root = tmp.path().join("site");
    fs::create_dir_all(root.join("a")).expect("mkdir");
    write(&root.join(".htaccess"), "RewriteEngine On\n");
    write(&root.join("a/.htaccess"), "Require all granted\n");
    (tmp, root)
}

#[test]
fn htaccess_written_in_place() {
    let (_tmp, root) = site();
    let rig = start(spec(&[&root], &[], &[]));
    write(&root.join("a/.htaccess"), "Require all denied\n");
    rig.wait_for(ht(&root.join("a")));
}

#[test]
fn htaccess_renamed_over() {
    let (_tmp, root) = site();
    let rig = start(spec(&[&root], &[], &[]));
    write(&root.join(".htaccess.tmp-4242"), "Redirect /x /y\n");
    fs::rename(root.join(".htaccess.tmp-4242"), root.join(".htaccess")).expect("rename");
    rig.wait_for(ht(&root));
}

#[test]
fn htaccess_deleted_then_recreated() {
    let (_tmp, root) = site();
    let rig = start(spec(&[&root], &[], &[]));
    fs::remove_file(root.join("a/.htaccess")).expect("rm");
    write(&root.join("a/.htaccess"), "Require all denied\n");
    rig.wait_for(ht(&root.join("a")));
}

#[test]
fn htaccess_in_new_subfolder_reports_tree_then_is_watched() {
    let (_tmp, root) = site();
    let rig = start(spec(&[&root], &[], &[]));
    let new = root.join("new");
    fs::create_dir(&new).expect("mkdir");
    write(&new.join(".htaccess"), "Require all denied\n");
    rig.wait_for(Change::Tree(new.clone()));
    // notify has added the new folder's watch by now.
    write(&new.join(".htaccess"), "Require all granted\n");
    rig.wait_for(ht(&new));
}

#[test]
fn renamed_parent_folder_reports_both_names() {
    let (_tmp, root) = site();
    fs::create_dir(root.join("a/b")).expect("mkdir");
    write(&root.join("a/b/.htaccess"), "Require all granted\n");
    let rig = start(spec(&[&root], &[], &[]));
    fs::rename(root.join("a"), root.join("c")).expect("rename");
    rig.wait_all(&[Change::Tree(root.join("a")), Change::Tree(root.join("c"))]);
    write(&root.join("c/b/.htaccess"), "Require all denied\n");
    rig.wait_for(ht(&root.join("c/b")));
}

#[test]
fn symlinked_root_repointed_reports_root_and_watches_new_target() {
    init_log();
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = tmp.path();
    for target in ["t1", "t2"] {
        fs::create_dir(base.join(target)).expect("mkdir");
        write(
            &base.join(target).join(".htaccess"),
            "Require all granted\n",
        );
    }
    let root = base.join("site");
    symlink("t1", &root).expect("symlink");
    let rig = start(spec(&[&root], &[], &[]));
    // `ln -sfn t2 site`: a new link renamed over the old one.
    symlink("t2", base.join("site.tmp")).expect("symlink");
    fs::rename(base.join("site.tmp"), &root).expect("rename");
    rig.wait_for(Change::Root(root.clone()));
    write(&base.join("t2/.htaccess"), "Require all denied\n");
    rig.wait_for(ht(&root));
}

#[test]
fn replaced_root_reports_root_and_watches_the_new_folder() {
    let (tmp, root) = site();
    let staged = tmp.path().join("site.new");
    fs::create_dir(&staged).expect("mkdir");
    let rig = start(spec(&[&root], &[], &[]));
    fs::rename(&root, tmp.path().join("site.old")).expect("rename");
    fs::rename(&staged, &root).expect("rename");
    rig.wait_for(Change::Root(root.clone()));
    write(&root.join(".htaccess"), "Require all denied\n");
    rig.wait_for(ht(&root));
}

#[test]
fn editor_noise_alone_is_silent() {
    let (tmp, root) = site();
    let certs = tmp.path().join("certs");
    fs::create_dir(&certs).expect("mkdir");
    let rig = start(spec(&[&root], &[], &[&certs]));
    for dir in [&root, &certs] {
        write(&dir.join(".htaccess.swp"), "swap");
        write(&dir.join("4913"), "");
        fs::remove_file(dir.join("4913")).expect("rm");
        write(&dir.join(".htaccess~"), "backup");
    }
    let noise = rig.quiet(Duration::from_millis(500));
    assert!(noise.is_empty(), "editor noise reported: {noise:?}");
    write(&root.join(".htaccess"), "Require all denied\n");
    rig.wait_for(ht(&root));
}

#[test]
fn burst_of_writes_is_one_batch() {
    let (_tmp, root) = site();
    let debounce = Duration::from_millis(1000);
    let rig = start(WatchSpec {
        debounce,
        ..spec(&[&root], &[], &[])
    });
    let t0 = Instant::now();
    for i in 0..100 {
        write(&root.join(".htaccess"), &format!("# version {i}\n"));
    }
    let took = t0.elapsed();
    let first = rig.wait_for(ht(&root));
    let after = rig.quiet(Duration::from_millis(300));
    if took >= debounce {
        eprintln!("burst took {took:?}, longer than the window: not checking the count");
        return;
    }
    assert_eq!(first, vec![vec![ht(&root)]]);
    assert!(after.is_empty(), "more batches after the burst: {after:?}");
}

#[test]
fn file_watch_survives_rename_over_and_recreate() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let cert = tmp.path().join("cert.pem");
    write(&cert, "one");
    let rig = start(spec(&[], &[&cert], &[]));
    let changed = Change::File(cert.clone());

    write(&tmp.path().join("cert.pem.tmp"), "two");
    fs::rename(tmp.path().join("cert.pem.tmp"), &cert).expect("rename");
    rig.wait_for(changed.clone());

    fs::remove_file(&cert).expect("rm");
    rig.wait_for(changed.clone());
    write(&cert, "three");
    rig.wait_for(changed.clone());

    write(&cert, "four");
    rig.wait_for(changed);
}

#[test]
fn dir_watch_reports_entries() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let rig = start(spec(&[], &[], &[tmp.path()]));
    write(&tmp.path().join("example.com.pem"), "cert");
    rig.wait_for(Change::File(tmp.path().join("example.com.pem")));
}

#[test]
fn polling_only_emits_rescan() {
    let (_tmp, root) = site();
    let rig = start(WatchSpec {
        poll_interval: Some(Duration::from_millis(100)),
        use_events: false,
        ..spec(&[&root], &[], &[])
    });
    rig.wait_for(Change::Rescan);
    rig.wait_for(Change::Rescan);
}

#[test]
fn backend_error_falls_back_to_polling() {
    let (_tmp, root) = site();
    let rig = start(spec(&[&root], &[], &[]));
    let limit = notify::Error::new(notify::ErrorKind::MaxFilesWatch);
    let injected = rig
        .watcher
        .shared
        .wake
        .send(Msg::Event(backend::Source::Tree, Err(limit)));
    assert!(injected.is_ok());
    rig.wait_for(Change::Rescan);
    // Then the default 2 s polling, although the spec asked for none.
    rig.wait_for(Change::Rescan);
}

#[test]
fn update_adds_and_removes_trees() {
    let (tmp, a) = site();
    let b = tmp.path().join("other");
    fs::create_dir(&b).expect("mkdir");
    let rig = start(spec(&[&a], &[], &[]));

    rig.watcher
        .update(spec(&[&a, &b], &[], &[]))
        .expect("update");
    write(&b.join(".htaccess"), "Require all denied\n");
    rig.wait_for(ht(&b));
    write(&a.join(".htaccess"), "Require all denied\n");
    rig.wait_for(ht(&a));

    rig.watcher.update(spec(&[&b], &[], &[])).expect("update");
    write(&a.join(".htaccess"), "Require all granted\n");
    write(&b.join(".htaccess"), "Require all granted\n");
    let seen = rig.wait_for(ht(&b));
    assert!(
        !seen.iter().flatten().any(|c| *c == ht(&a)),
        "removed tree still reported: {seen:?}"
    );
}

#[test]
fn drop_stops_the_thread() {
    let (_tmp, root) = site();
    let rig = start(spec(&[&root], &[], &[]));
    drop(rig.watcher);
    // The sink (and its sender) goes when the thread ends.
    let deadline = Instant::now() + DEADLINE;
    loop {
        match rig
            .rx
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
        {
            Ok(_) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
            Err(RecvTimeoutError::Timeout) => panic!("watcher thread still running"),
        }
    }
}

#[test]
fn rename_to_sink_latency() {
    for debounce_ms in [0, 50] {
        let (_tmp, root) = site();
        let rig = start(WatchSpec {
            debounce: Duration::from_millis(debounce_ms),
            ..spec(&[&root], &[], &[])
        });
        write(&root.join(".htaccess.tmp-1"), "Require all denied\n");
        let _ = rig.quiet(Duration::from_millis(100 + debounce_ms));
        let t0 = Instant::now();
        fs::rename(root.join(".htaccess.tmp-1"), root.join(".htaccess")).expect("rename");
        let deadline = t0 + DEADLINE;
        let at = loop {
            match rig
                .rx
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok((at, batch)) if batch.contains(&ht(&root)) => break at,
                Ok(_) => continue,
                Err(_) => panic!("no change after rename"),
            }
        };
        eprintln!(
            "rename -> sink latency with {debounce_ms} ms debounce: {:?}",
            at.duration_since(t0)
        );
    }
}

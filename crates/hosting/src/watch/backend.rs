//! The notify side: two inotify instances and the bookkeeping of which
//! watches are in place.
//!
//! Two instances, not one: inotify gives one watch descriptor per inode and
//! instance, and notify keeps one path per descriptor, so a folder watched
//! both as part of a tree and as a file's parent (or through a symlinked
//! root) would be reported under only one of its names.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::sync::Arc;

use notify::{Config, Event, RecommendedWatcher, RecursiveMode, Watcher as _};

use super::classify::{flat_wants, tree_wants};
use super::plan::Plan;
use super::Change;

/// Which instance an event came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Source {
    Tree,
    Flat,
}

/// Messages to the worker thread.
#[derive(Debug)]
pub(super) enum Msg {
    Event(Source, notify::Result<Event>),
    /// Look at the stop flag and the plan again now.
    Wake,
}

/// One instance and the paths it watches.
struct Instance {
    watcher: Option<RecommendedWatcher>,
    /// Watches in place (or given up on: see `degrade`).
    watched: HashSet<PathBuf>,
    /// Wanted, but the path was missing or the watch failed: retried.
    missing: HashSet<PathBuf>,
}

impl Instance {
    fn new() -> Instance {
        Instance {
            watcher: None,
            watched: HashSet::new(),
            missing: HashSet::new(),
        }
    }
}

pub(super) struct Backend {
    tx: SyncSender<Msg>,
    overflow: Arc<AtomicBool>,
    tree: Instance,
    flat: Instance,
    links: Links,
    /// Events can no longer be trusted (watch limit, backend error): the
    /// worker polls instead.
    pub degraded: bool,
}

/// What a failed `watch` call means for us.
enum WatchFailure {
    /// Not there (yet): retry later.
    Missing,
    /// inotify cannot take more watches, or failed otherwise: poll.
    Degrade,
}

impl Backend {
    pub(super) fn new(tx: SyncSender<Msg>, overflow: Arc<AtomicBool>) -> Backend {
        Backend {
            tx,
            overflow,
            tree: Instance::new(),
            flat: Instance::new(),
            links: Links::default(),
            degraded: false,
        }
    }

    pub(super) fn has_missing(&self) -> bool {
        !self.tree.missing.is_empty() || !self.flat.missing.is_empty()
    }

    /// Brings the watches in line with `plan`: removes what is no longer
    /// wanted, adds what is new, leaves the rest alone (so events for paths
    /// in both the old and new plan keep flowing).
    pub(super) fn reconcile(&mut self, plan: &Plan, out: &mut Vec<Change>) {
        if !plan.use_events {
            self.drop_instances();
            return;
        }
        let trees: HashSet<PathBuf> = plan.trees.keys().cloned().collect();
        let flats: HashSet<PathBuf> = plan.flat.keys().cloned().collect();
        self.reconcile_instance(Source::Tree, &trees, out);
        self.reconcile_instance(Source::Flat, &flats, out);
    }

    fn reconcile_instance(
        &mut self,
        source: Source,
        wanted: &HashSet<PathBuf>,
        out: &mut Vec<Change>,
    ) {
        self.instance(source).missing.retain(|p| wanted.contains(p));
        let stale: Vec<PathBuf> = self
            .instance(source)
            .watched
            .difference(wanted)
            .cloned()
            .collect();
        for path in stale {
            self.unwatch(source, &path);
        }
        let new: Vec<PathBuf> = wanted
            .iter()
            .filter(|p| !self.instance(source).watched.contains(*p))
            .cloned()
            .collect();
        for path in new {
            self.watch(source, path, out);
        }
    }

    /// Tries again the watches whose path was missing; reports what came
    /// back, since it may have changed while unwatched.
    pub(super) fn repair(&mut self, plan: &Plan, out: &mut Vec<Change>) {
        for source in [Source::Tree, Source::Flat] {
            let missing: Vec<PathBuf> = self.instance(source).missing.iter().cloned().collect();
            for path in missing {
                self.watch(source, path.clone(), out);
                if self.instance(source).watched.contains(&path) {
                    report_back(plan, source, &path, out);
                }
            }
        }
    }

    /// A tree root now names another folder (or none): drop the old
    /// recursive watch, which follows the old inode, and watch the new one.
    pub(super) fn rewatch_tree(&mut self, root: &Path, out: &mut Vec<Change>) {
        self.unwatch(Source::Tree, root);
        self.watch(Source::Tree, root.to_path_buf(), out);
    }

    /// A non-recursive watch is gone with its folder; retried by `repair`.
    pub(super) fn lose_flat(&mut self, dir: &Path) {
        self.unwatch(Source::Flat, dir);
        self.flat.missing.insert(dir.to_path_buf());
    }

    /// An error reported by notify's event loop (failed watch of a new
    /// folder, failed read): from now on events may be missing.
    pub(super) fn backend_error(&mut self, err: &notify::Error, out: &mut Vec<Change>) {
        self.degrade(&format!("inotify error: {err}"), out);
    }

    fn degrade(&mut self, why: &str, out: &mut Vec<Change>) {
        if !self.degraded {
            tracing::warn!("watch: {why}; falling back to polling");
        }
        self.degraded = true;
        out.push(Change::Rescan);
    }

    fn watch(&mut self, source: Source, path: PathBuf, out: &mut Vec<Change>) {
        let (mode, target) = match source {
            Source::Tree => (RecursiveMode::Recursive, resolve_root(&path)),
            Source::Flat => (RecursiveMode::NonRecursive, path.clone()),
        };
        let result = match self.ensure_watcher(source, out) {
            Some(w) => w.watch(&target, mode),
            None => return, // no inotify instance: polling covers it
        };
        let (failure, err_text) = match result {
            Ok(()) => (None, String::new()),
            Err(err) => (Some(classify_failure(&err, &path)), err.to_string()),
        };
        if failure.is_none() && source == Source::Tree {
            self.links.insert(&path, target);
        }
        let inst = self.instance(source);
        match failure {
            None => {
                inst.missing.remove(&path);
                inst.watched.insert(path);
            }
            Some(WatchFailure::Missing) => {
                inst.missing.insert(path);
            }
            Some(WatchFailure::Degrade) => {
                // A partial recursive watch stays in place; retrying would
                // walk the tree again only to fail again, so it counts as
                // watched and polling covers the rest.
                inst.missing.remove(&path);
                inst.watched.insert(path.clone());
                self.degrade(&format!("cannot watch {}: {err_text}", path.display()), out);
            }
        }
    }

    fn unwatch(&mut self, source: Source, path: &Path) {
        let target = match source {
            Source::Tree => self.links.remove(path),
            Source::Flat => Some(path.to_path_buf()),
        };
        let inst = self.instance(source);
        inst.watched.remove(path);
        inst.missing.remove(path);
        let Some(target) = target else {
            return; // another tree root still needs that folder's watch
        };
        if let Some(w) = inst.watcher.as_mut() {
            // Already gone with its folder is fine: notify drops the watches
            // of deleted folders itself.
            if let Err(err) = w.unwatch(&target) {
                tracing::debug!(path = %target.display(), "watch: unwatch: {err}");
            }
        }
    }

    /// The event with paths under a symlinked root's target spelled under
    /// the root instead, if it has any such path.
    pub(super) fn through_links(&self, ev: &Event) -> Option<Event> {
        self.links.translate(ev)
    }

    fn ensure_watcher(
        &mut self,
        source: Source,
        out: &mut Vec<Change>,
    ) -> Option<&mut RecommendedWatcher> {
        if self.instance(source).watcher.is_none() {
            match new_watcher(source, self.tx.clone(), Arc::clone(&self.overflow)) {
                Ok(w) => self.instance(source).watcher = Some(w),
                Err(err) => {
                    // Typically EMFILE: max_user_instances reached.
                    self.degrade(&format!("cannot start inotify: {err}"), out);
                    return None;
                }
            }
        }
        self.instance(source).watcher.as_mut()
    }

    fn drop_instances(&mut self) {
        self.links = Links::default();
        for source in [Source::Tree, Source::Flat] {
            let inst = self.instance(source);
            inst.watcher = None;
            inst.watched.clear();
            inst.missing.clear();
        }
    }

    fn instance(&mut self, source: Source) -> &mut Instance {
        match source {
            Source::Tree => &mut self.tree,
            Source::Flat => &mut self.flat,
        }
    }
}

/// Tree roots that are symlinks and the folders actually watched for them.
///
/// notify is told not to follow symlinks (see `new_watcher`), and its walk
/// then skips a symlinked root too; so the root's target is watched and
/// its events are renamed back under the root.
#[derive(Debug, Default)]
struct Links {
    /// Root → the folder watched for it (only where they differ).
    target_of: HashMap<PathBuf, PathBuf>,
    /// Watched folder → root (one root per folder: two roots linked to the
    /// same folder are reported under the one watched last).
    root_of: HashMap<PathBuf, PathBuf>,
}

impl Links {
    fn insert(&mut self, root: &Path, target: PathBuf) {
        self.remove(root);
        if target != root {
            self.root_of.insert(target.clone(), root.to_path_buf());
            self.target_of.insert(root.to_path_buf(), target);
        }
    }

    /// Forgets `root`; returns the folder whose watch may now go, or None
    /// when another root still uses it.
    fn remove(&mut self, root: &Path) -> Option<PathBuf> {
        let Some(target) = self.target_of.remove(root) else {
            return (!self.root_of.contains_key(root)).then(|| root.to_path_buf());
        };
        if self.root_of.get(&target).is_some_and(|r| r == root) {
            self.root_of.remove(&target);
        }
        let shared = self.target_of.values().any(|t| *t == target);
        (!shared).then_some(target)
    }

    fn translate(&self, ev: &Event) -> Option<Event> {
        if self.root_of.is_empty() {
            return None;
        }
        let paths: Vec<Option<PathBuf>> = ev.paths.iter().map(|p| self.translate_path(p)).collect();
        if paths.iter().all(Option::is_none) {
            return None;
        }
        let mut out = ev.clone();
        out.paths = paths
            .into_iter()
            .zip(&ev.paths)
            .map(|(t, p)| t.unwrap_or_else(|| p.clone()))
            .collect();
        Some(out)
    }

    fn translate_path(&self, path: &Path) -> Option<PathBuf> {
        let (target, root) = path
            .ancestors()
            .find_map(|a| self.root_of.get_key_value(a))?;
        let rest = path.strip_prefix(target).ok()?;
        Some(if rest.as_os_str().is_empty() {
            root.clone()
        } else {
            root.join(rest)
        })
    }
}

/// The folder to watch for a tree root: its target when the root is a
/// symlink (`ln -sfn release-42 current` deploys), else the root itself.
fn resolve_root(root: &Path) -> PathBuf {
    match std::fs::symlink_metadata(root) {
        Ok(meta) if meta.file_type().is_symlink() => {
            std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf())
        }
        _ => root.to_path_buf(),
    }
}

fn classify_failure(err: &notify::Error, path: &Path) -> WatchFailure {
    let missing = match &err.kind {
        notify::ErrorKind::PathNotFound => true,
        notify::ErrorKind::Io(io) => io.kind() == std::io::ErrorKind::NotFound,
        _ => false,
    };
    if missing {
        // Also what a folder deleted in the middle of notify's walk gives.
        tracing::debug!(path = %path.display(), "watch: not there (yet), will retry");
        WatchFailure::Missing
    } else {
        // Including EACCES: notify's recursive walk stops at the first
        // folder it may not watch, so the tree is only partly watched.
        WatchFailure::Degrade
    }
}

/// The changes to report for a watch set up again after its path was
/// missing: whatever it covers may be new.
fn report_back(plan: &Plan, source: Source, path: &Path, out: &mut Vec<Change>) {
    match source {
        Source::Tree => out.extend(plan.trees.get(path).cloned().map(Change::Root)),
        Source::Flat => {
            if let Some(interest) = plan.flat.get(path) {
                out.extend(interest.files.values().cloned().map(Change::File));
                out.extend(interest.dir.iter().cloned().map(Change::File));
            }
        }
    }
}

/// An inotify instance whose callback filters events and queues them
/// without ever blocking notify's thread: when the queue is full the event
/// is dropped and `overflow` makes the worker report a `Rescan`.
fn new_watcher(
    source: Source,
    tx: SyncSender<Msg>,
    overflow: Arc<AtomicBool>,
) -> notify::Result<RecommendedWatcher> {
    let handler = move |res: notify::Result<Event>| {
        if let Ok(ev) = &res {
            tracing::trace!(?source, ?ev, "watch: raw event");
            let wanted = match source {
                Source::Tree => tree_wants(ev),
                Source::Flat => flat_wants(ev),
            };
            if !wanted {
                return;
            }
        }
        if let Err(TrySendError::Full(_)) = tx.try_send(Msg::Event(source, res)) {
            overflow.store(true, Ordering::Relaxed);
        }
    };
    // Symlinks inside a tree are not followed: a customer's `ln -s / x`
    // would otherwise have us watch the whole disk and exhaust the watch
    // limit for every site. (A symlinked root itself is still followed.)
    RecommendedWatcher::new(handler, Config::default().with_follow_symlinks(false))
}

#[cfg(test)]
mod tests {
    use super::*;
    use notify::event::{CreateKind, EventKind};

    #[test]
    fn links_rename_target_paths_back_under_the_root() {
        let mut links = Links::default();
        links.insert(Path::new("/www/site"), PathBuf::from("/releases/42"));
        let ev = Event::new(EventKind::Create(CreateKind::Folder))
            .add_path(PathBuf::from("/releases/42/new"));
        let linked = links.translate(&ev).map(|e| e.paths);
        assert_eq!(linked, Some(vec![PathBuf::from("/www/site/new")]));
        let elsewhere = Event::new(EventKind::Any).add_path(PathBuf::from("/releases/41/x"));
        assert!(links.translate(&elsewhere).is_none());
        assert_eq!(
            links.remove(Path::new("/www/site")),
            Some(PathBuf::from("/releases/42"))
        );
        assert!(links.translate(&ev).is_none());
    }

    #[test]
    fn a_folder_shared_by_two_roots_keeps_its_watch() {
        let mut links = Links::default();
        links.insert(Path::new("/a"), PathBuf::from("/t"));
        links.insert(Path::new("/b"), PathBuf::from("/t"));
        assert_eq!(links.remove(Path::new("/a")), None);
        assert_eq!(
            links.remove(Path::new("/plain")),
            Some(PathBuf::from("/plain"))
        );
    }
}

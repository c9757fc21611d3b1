//! Raw notify events → [`Change`]s.
//!
//! What inotify (through notify 8) reports for the ways files get saved:
//! - in place: `Modify(Data)` (inotify merges the truncate's and the
//!   writes' back-to-back IN_MODIFYs into one), then `Access(Close(Write))`;
//!   `Access(Open)` too, as for every open (dropped in notify's callback);
//! - temp file renamed over: `Create(File)`/`Modify`/`Close(Write)` for the
//!   temp name, then `Modify(Name(From))` temp, `Modify(Name(To))` target and
//!   `Modify(Name(Both))` [temp, target] sharing one tracker (the cookie);
//! - delete then re-create: `Remove(File)`, then `Create(File)`, `Modify`,
//!   `Close(Write)`;
//! - mkdir: `Create(Folder)`; notify then adds the new folder's watch itself,
//!   so files written before that are never reported (hence `Tree`);
//! - folder renamed: `Name(From)`, `Name(To)`, `Name(Both)`, with no file /
//!   folder kind (notify drops IN_ISDIR for renames), so the destination is
//!   stat'ed; a `From` never paired (moved out of the tree) is reported as a
//!   `Tree` to be safe;
//! - a root's own watch: `Remove(Folder)` (deleted) or `Name(From)` with the
//!   root's path and no tracker (IN_MOVE_SELF: moved away, e.g. replaced by
//!   `mv site site.old; mv site.new site`); a symlinked root re-pointed
//!   (`ln -sfn`: coreutils 9 makes a randomly named link and renames it over)
//!   shows only in the parent: `Create`, `Name(From)` of the temp name,
//!   `Name(To)` of the root's name.

use std::collections::HashMap;
use std::ffi::OsStr;
use std::path::{Path, PathBuf};

use notify::event::{
    AccessKind, AccessMode, CreateKind, EventKind, ModifyKind, RemoveKind, RenameMode,
};
use notify::Event;

use super::noise::is_editor_noise;
use super::plan::Plan;
use super::Change;

/// The per-directory configuration file name.
pub(super) const ACCESS_FILE: &str = ".htaccess";

/// What one event asks of the worker.
#[derive(Debug, Default, PartialEq, Eq)]
pub(super) struct Effects {
    pub changes: Vec<Change>,
    /// Absolute tree roots whose recursive watch must be set up again.
    pub rewatch: Vec<PathBuf>,
    /// Absolute folders whose non-recursive watch is gone.
    pub lost_flat: Vec<PathBuf>,
    /// Something awaits the end of the burst (an unpaired rename): open the
    /// debounce window even without a change.
    pub open_window: bool,
}

/// Renames seen from their `From` side only, by notify tracker.
#[derive(Debug, Default)]
pub(super) struct Renames {
    pending: HashMap<usize, PathBuf>,
}

impl Renames {
    /// Renames whose `To` never came (moved out of the watched trees): the
    /// moved entry may have been a folder, so report it as one.
    pub(super) fn take_unpaired(&mut self) -> impl Iterator<Item = Change> + '_ {
        self.pending.drain().map(|(_, path)| Change::Tree(path))
    }
}

/// An event from the recursive watch of the trees.
pub(super) fn tree_event(plan: &Plan, renames: &mut Renames, ev: &Event, fx: &mut Effects) {
    if ev.need_rescan() {
        fx.changes.push(Change::Rescan);
    }
    if let (EventKind::Modify(ModifyKind::Name(RenameMode::Both)), [from, to]) =
        (ev.kind, ev.paths.as_slice())
    {
        if let Some(tracker) = ev.tracker() {
            renames.pending.remove(&tracker);
        }
        // From and To already reported a .htaccess; what is left is a
        // folder moved inside the trees: both names are stale or new.
        if !is_non_dir(to) {
            push_tree(plan, from, fx);
            push_tree(plan, to, fx);
        }
        return;
    }
    for path in &ev.paths {
        tree_path_event(plan, renames, ev, path, fx);
    }
}

fn tree_path_event(plan: &Plan, renames: &mut Renames, ev: &Event, path: &Path, fx: &mut Effects) {
    let Some((abs_root, orig_root)) = plan.tree_of(path) else {
        return; // a late event for a tree no longer watched
    };
    if path == abs_root {
        if is_name_change(ev.kind) {
            fx.changes.push(Change::Root(orig_root.to_path_buf()));
            fx.rewatch.push(abs_root.to_path_buf());
        }
        return;
    }
    let Some(caller) = plan.in_caller_terms(path) else {
        return;
    };
    if is_access_file(path) {
        if matters_for_file(ev.kind) {
            if let Some(dir) = caller.parent() {
                fx.changes.push(Change::Htaccess(dir.to_path_buf()));
            }
        }
        return;
    }
    match ev.kind {
        EventKind::Create(CreateKind::Folder) | EventKind::Remove(RemoveKind::Folder) => {
            fx.changes.push(Change::Tree(caller));
        }
        EventKind::Modify(ModifyKind::Name(RenameMode::From)) => {
            from_side(renames, ev, path, caller, fx);
        }
        EventKind::Create(CreateKind::Any | CreateKind::Other)
        | EventKind::Modify(ModifyKind::Name(
            RenameMode::To | RenameMode::Any | RenameMode::Other,
        )) if !is_non_dir(path) => {
            // Moved in (or made) here and possibly a folder.
            fx.changes.push(Change::Tree(caller));
        }
        _ => {}
    }
}

/// The old name of something renamed: a folder's cache must go, but whether
/// it was a folder is known only if the `To` side arrives (and is stat'ed).
fn from_side(renames: &mut Renames, ev: &Event, path: &Path, caller: PathBuf, fx: &mut Effects) {
    if path.file_name().is_some_and(is_editor_noise) {
        return; // the temp file of a save; its destination is what counts
    }
    match ev.tracker() {
        Some(tracker) => {
            renames.pending.insert(tracker, caller);
            fx.open_window = true;
        }
        None => fx.changes.push(Change::Tree(caller)),
    }
}

fn push_tree(plan: &Plan, path: &Path, fx: &mut Effects) {
    if let Some(caller) = plan.in_caller_terms(path) {
        fx.changes.push(Change::Tree(caller));
    }
}

/// An event from the non-recursive watches (watched files' parents,
/// watched folders, tree roots' parents).
pub(super) fn flat_event(plan: &Plan, ev: &Event, fx: &mut Effects) {
    if ev.need_rescan() {
        fx.changes.push(Change::Rescan);
    }
    if matches!(
        ev.kind,
        EventKind::Modify(ModifyKind::Name(RenameMode::Both))
    ) {
        return; // its From and To sides were reported one by one
    }
    for path in &ev.paths {
        if plan.flat.contains_key(path.as_path()) && is_name_change(ev.kind) {
            lost_flat_dir(plan, path, fx);
        }
        flat_entry_event(plan, ev.kind, path, fx);
    }
}

/// The watched folder itself was removed or moved away: its watch is gone
/// (or follows the moved inode), and everything watched in it changed.
fn lost_flat_dir(plan: &Plan, dir: &Path, fx: &mut Effects) {
    let Some(interest) = plan.flat.get(dir) else {
        return;
    };
    fx.lost_flat.push(dir.to_path_buf());
    fx.changes
        .extend(interest.files.values().cloned().map(Change::File));
    fx.changes
        .extend(interest.dir.iter().cloned().map(Change::File));
    for root in interest.roots.values() {
        if let Some(orig) = plan.trees.get(root) {
            fx.changes.push(Change::Root(orig.clone()));
        }
        fx.rewatch.push(root.clone());
    }
}

fn flat_entry_event(plan: &Plan, kind: EventKind, path: &Path, fx: &mut Effects) {
    let (Some(parent), Some(name)) = (path.parent(), path.file_name()) else {
        return;
    };
    let Some(interest) = plan.flat.get(parent) else {
        return;
    };
    if matters_for_file(kind) {
        if let Some(file) = interest.files.get(name) {
            fx.changes.push(Change::File(file.clone()));
        }
        if let Some(dir) = &interest.dir {
            if !is_editor_noise(name) {
                fx.changes.push(Change::File(dir.join(name)));
            }
        }
    }
    if is_name_change(kind) {
        if let Some(root) = interest.roots.get(name) {
            if let Some(orig) = plan.trees.get(root) {
                fx.changes.push(Change::Root(orig.clone()));
            }
            fx.rewatch.push(root.clone());
        }
    }
}

fn is_access_file(path: &Path) -> bool {
    path.file_name() == Some(OsStr::new(ACCESS_FILE))
}

/// Kinds that change what a file holds or whether it is there. Opening,
/// reading and closing a file unwritten are not (the server's own reads
/// produce them all the time).
fn matters_for_file(kind: EventKind) -> bool {
    match kind {
        EventKind::Access(AccessKind::Close(AccessMode::Write)) => true,
        EventKind::Access(_) => false,
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(_) => true,
        EventKind::Any | EventKind::Other => false,
    }
}

/// Kinds by which a name comes to point at something else.
fn is_name_change(kind: EventKind) -> bool {
    matches!(
        kind,
        EventKind::Create(_) | EventKind::Remove(_) | EventKind::Modify(ModifyKind::Name(_))
    )
}

/// True only when `path` is known to be something other than a folder; an
/// entry already gone again counts as a possible folder (safe side).
fn is_non_dir(path: &Path) -> bool {
    std::fs::metadata(path).is_ok_and(|m| !m.is_dir())
}

/// Whether notify's callback should queue the event at all. Runs on notify's
/// thread for every event, so it is cheap and drops the bulk: opens (every
/// file the server serves), reads, and writes to files that are not
/// `.htaccess` (logs, caches, uploads).
pub(super) fn tree_wants(ev: &Event) -> bool {
    if ev.need_rescan() || ev.paths.iter().any(|p| is_access_file(p)) {
        return true;
    }
    match ev.kind {
        EventKind::Create(kind) => kind != CreateKind::File,
        EventKind::Remove(kind) => kind != RemoveKind::File,
        EventKind::Modify(ModifyKind::Name(_)) => true,
        EventKind::Other | EventKind::Any => true,
        EventKind::Access(_) | EventKind::Modify(_) => false,
    }
}

/// Same as [`tree_wants`] for the non-recursive watches: only reads are
/// dropped (their folders are small and every entry may matter).
pub(super) fn flat_wants(ev: &Event) -> bool {
    ev.need_rescan()
        || matters_for_file(ev.kind)
        || matches!(ev.kind, EventKind::Other | EventKind::Any)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::watch::WatchSpec;
    use std::time::Duration;

    fn plan() -> Plan {
        let spec = WatchSpec {
            trees: vec![PathBuf::from("/nonexistent-root/site")],
            files: vec![PathBuf::from("/nonexistent-etc/htgate.toml")],
            dirs: vec![PathBuf::from("/nonexistent-certs")],
            debounce: Duration::from_millis(50),
            poll_interval: None,
            use_events: true,
        };
        Plan::new(&spec, Path::new("/"))
    }

    fn ev(kind: EventKind, paths: &[&str]) -> Event {
        paths
            .iter()
            .fold(Event::new(kind), |e, p| e.add_path(PathBuf::from(p)))
    }

    fn tree(e: &Event) -> Effects {
        let mut fx = Effects::default();
        tree_event(&plan(), &mut Renames::default(), e, &mut fx);
        fx
    }

    fn flat(e: &Event) -> Effects {
        let mut fx = Effects::default();
        flat_event(&plan(), e, &mut fx);
        fx
    }

    #[test]
    fn htaccess_writes_name_their_directory() {
        let fx = tree(&ev(
            EventKind::Modify(ModifyKind::Any),
            &["/nonexistent-root/site/a/.htaccess"],
        ));
        assert_eq!(
            fx.changes,
            vec![Change::Htaccess(PathBuf::from("/nonexistent-root/site/a"))]
        );
        let fx = tree(&ev(
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            &["/nonexistent-root/site/.htaccess"],
        ));
        assert_eq!(fx.changes, vec![]);
    }

    #[test]
    fn unpaired_rename_of_a_possible_folder_is_a_tree_change() {
        let plan = plan();
        let mut renames = Renames::default();
        let mut fx = Effects::default();
        let from = ev(
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            &["/nonexistent-root/site/old"],
        )
        .set_tracker(7);
        tree_event(&plan, &mut renames, &from, &mut fx);
        assert!(fx.open_window && fx.changes.is_empty());
        let unpaired: Vec<_> = renames.take_unpaired().collect();
        assert_eq!(
            unpaired,
            vec![Change::Tree(PathBuf::from("/nonexistent-root/site/old"))]
        );
    }

    #[test]
    fn root_moved_away_asks_for_a_new_watch() {
        let fx = tree(&ev(
            EventKind::Modify(ModifyKind::Name(RenameMode::From)),
            &["/nonexistent-root/site"],
        ));
        assert_eq!(
            fx.changes,
            vec![Change::Root(PathBuf::from("/nonexistent-root/site"))]
        );
        assert_eq!(fx.rewatch, vec![PathBuf::from("/nonexistent-root/site")]);
        let fx = flat(&ev(
            EventKind::Create(CreateKind::Any),
            &["/nonexistent-root/site"],
        ));
        assert_eq!(
            fx.changes,
            vec![Change::Root(PathBuf::from("/nonexistent-root/site"))]
        );
    }

    #[test]
    fn flat_watches_filter_by_name_and_noise() {
        let fx = flat(&ev(
            EventKind::Modify(ModifyKind::Any),
            &["/nonexistent-etc/other.toml"],
        ));
        assert_eq!(fx.changes, vec![]);
        let fx = flat(&ev(
            EventKind::Remove(RemoveKind::File),
            &["/nonexistent-etc/htgate.toml"],
        ));
        assert_eq!(
            fx.changes,
            vec![Change::File(PathBuf::from("/nonexistent-etc/htgate.toml"))]
        );
        let fx = flat(&ev(
            EventKind::Create(CreateKind::File),
            &["/nonexistent-certs/.cert.pem.swp"],
        ));
        assert_eq!(fx.changes, vec![]);
        let fx = flat(&ev(
            EventKind::Create(CreateKind::File),
            &["/nonexistent-certs/cert.pem"],
        ));
        assert_eq!(
            fx.changes,
            vec![Change::File(PathBuf::from("/nonexistent-certs/cert.pem"))]
        );
    }

    #[test]
    fn callback_filter_drops_reads_and_unrelated_writes() {
        let open = ev(
            EventKind::Access(AccessKind::Open(AccessMode::Any)),
            &["/nonexistent-root/site/index.php"],
        );
        let log = ev(
            EventKind::Modify(ModifyKind::Any),
            &["/nonexistent-root/site/error_log"],
        );
        let mkdir = ev(
            EventKind::Create(CreateKind::Folder),
            &["/nonexistent-root/site/new"],
        );
        let ht = ev(
            EventKind::Access(AccessKind::Close(AccessMode::Write)),
            &["/x/.htaccess"],
        );
        assert!(!tree_wants(&open) && !tree_wants(&log));
        assert!(tree_wants(&mkdir) && tree_wants(&ht));
        assert!(!flat_wants(&open));
    }
}

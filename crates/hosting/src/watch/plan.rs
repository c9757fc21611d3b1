//! What to watch, derived from a [`WatchSpec`]: which folders to watch
//! recursively, which non-recursively, and what each event there means.
//!
//! notify reports absolute paths, so every watched path is made absolute
//! here (against the current directory, without resolving symlinks) and
//! mapped back to the spelling the caller used when a change is reported.

use std::collections::HashMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::WatchSpec;

/// Interest in the direct entries of one folder watched non-recursively.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(super) struct FlatDir {
    /// Entry name → the watched file, as the caller spelled it.
    pub files: HashMap<OsString, PathBuf>,
    /// The folder as the caller spelled it, when every entry matters.
    pub dir: Option<PathBuf>,
    /// Entry name → absolute root of a tree whose own name lives here (the
    /// root may be a symlink re-pointed, or a folder replaced).
    pub roots: HashMap<OsString, PathBuf>,
}

#[derive(Debug, Clone)]
pub(super) struct Plan {
    /// Absolute tree root → the root as the caller spelled it.
    pub trees: HashMap<PathBuf, PathBuf>,
    /// Absolute folder → what matters in it.
    pub flat: HashMap<PathBuf, FlatDir>,
    pub debounce: Duration,
    pub poll_interval: Option<Duration>,
    pub use_events: bool,
}

impl Plan {
    pub(super) fn new(spec: &WatchSpec, cwd: &Path) -> Plan {
        let mut plan = Plan {
            trees: HashMap::new(),
            flat: HashMap::new(),
            debounce: spec.debounce,
            poll_interval: spec.poll_interval,
            use_events: spec.use_events,
        };
        for root in &spec.trees {
            plan.add_tree(root, cwd);
        }
        for file in &spec.files {
            plan.add_file(file, cwd);
        }
        for dir in &spec.dirs {
            plan.flat.entry(absolute(dir, cwd)).or_default().dir = Some(dir.clone());
        }
        plan
    }

    fn add_tree(&mut self, root: &Path, cwd: &Path) {
        let abs = absolute(root, cwd);
        // The parent is watched too, for the root's own name: that is the
        // only place where re-pointing a symlinked root is visible.
        if let (Some(parent), Some(name)) = (abs.parent(), abs.file_name()) {
            let entry = self.flat.entry(parent.to_path_buf()).or_default();
            entry.roots.insert(name.to_os_string(), abs.clone());
        }
        self.trees.insert(abs, root.to_path_buf());
    }

    fn add_file(&mut self, file: &Path, cwd: &Path) {
        let abs = absolute(file, cwd);
        match (abs.parent(), abs.file_name()) {
            // The parent, not the file, is watched: a watch on the file
            // itself dies with its inode when an editor renames a new copy
            // over it or deletes and re-creates it.
            (Some(parent), Some(name)) => {
                let entry = self.flat.entry(parent.to_path_buf()).or_default();
                entry.files.insert(name.to_os_string(), file.to_path_buf());
            }
            _ => tracing::warn!(path = %file.display(), "watch: not a file path, ignored"),
        }
    }

    /// The tree an absolute path lies in (the innermost, when trees nest):
    /// its absolute root and its root as spelled by the caller.
    pub(super) fn tree_of(&self, path: &Path) -> Option<(&Path, &Path)> {
        path.ancestors()
            .find_map(|a| self.trees.get_key_value(a))
            .map(|(abs, orig)| (abs.as_path(), orig.as_path()))
    }

    /// `path` (absolute, inside a tree) spelled as the caller spelled the tree.
    pub(super) fn in_caller_terms(&self, path: &Path) -> Option<PathBuf> {
        let (abs, orig) = self.tree_of(path)?;
        let rest = path.strip_prefix(abs).ok()?;
        Some(if rest.as_os_str().is_empty() {
            orig.to_path_buf()
        } else {
            orig.join(rest)
        })
    }
}

/// `path` made absolute against `cwd`, with `.` and doubled separators
/// dropped (so that it compares equal to what notify reports), symlinks kept.
pub(super) fn absolute(path: &Path, cwd: &Path) -> PathBuf {
    let joined = if path.is_absolute() {
        path.to_path_buf()
    } else {
        cwd.join(path)
    };
    joined.components().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec() -> WatchSpec {
        WatchSpec {
            trees: vec![PathBuf::from("sites/a/"), PathBuf::from("/srv/b")],
            files: vec![
                PathBuf::from("htgate.toml"),
                PathBuf::from("/etc/tls/cert.pem"),
            ],
            dirs: vec![PathBuf::from("/etc/tls")],
            debounce: Duration::from_millis(50),
            poll_interval: None,
            use_events: true,
        }
    }

    #[test]
    fn relative_paths_are_reported_as_given() {
        let plan = Plan::new(&spec(), Path::new("/cwd"));
        assert_eq!(
            plan.in_caller_terms(Path::new("/cwd/sites/a/x/.htaccess")),
            Some(PathBuf::from("sites/a/x/.htaccess"))
        );
        assert_eq!(
            plan.in_caller_terms(Path::new("/cwd/sites/a")),
            Some(PathBuf::from("sites/a/"))
        );
        assert_eq!(plan.in_caller_terms(Path::new("/elsewhere/x")), None);
    }

    #[test]
    fn files_and_roots_watch_their_parents() {
        let plan = Plan::new(&spec(), Path::new("/cwd"));
        let cwd = &plan.flat[Path::new("/cwd")];
        assert_eq!(
            cwd.files[&OsString::from("htgate.toml")],
            PathBuf::from("htgate.toml")
        );
        let tls = &plan.flat[Path::new("/etc/tls")];
        assert_eq!(tls.dir, Some(PathBuf::from("/etc/tls")));
        assert!(tls.files.contains_key(&OsString::from("cert.pem")));
        let sites = &plan.flat[Path::new("/cwd/sites")];
        assert_eq!(
            sites.roots[&OsString::from("a")],
            PathBuf::from("/cwd/sites/a")
        );
        assert!(plan.flat[Path::new("/srv")]
            .roots
            .contains_key(&OsString::from("b")));
    }
}

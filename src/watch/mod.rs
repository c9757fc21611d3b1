//! File watcher (in progress).

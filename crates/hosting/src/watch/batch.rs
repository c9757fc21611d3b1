//! Debouncing: changes collected during one burst window, deduplicated in
//! first-seen order.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use super::Change;

/// The changes of the current burst. The window opens at the first change
/// and is not extended by later ones, so a process that writes for ever
/// still gets its changes reported every `debounce`.
#[derive(Debug, Default)]
pub(super) struct Batch {
    changes: Vec<Change>,
    seen: HashSet<Change>,
    opened: Option<Instant>,
}

impl Batch {
    /// Adds a change; a repeat of one already in the batch is dropped.
    pub(super) fn push(&mut self, change: Change, now: Instant) {
        if self.seen.insert(change.clone()) {
            self.changes.push(change);
            self.opened.get_or_insert(now);
        }
    }

    /// Opens the window without a change: something (an unpaired rename)
    /// is decided when it closes.
    pub(super) fn open(&mut self, now: Instant) {
        self.opened.get_or_insert(now);
    }

    /// When the open batch must be handed to the sink.
    pub(super) fn deadline(&self, debounce: Duration) -> Option<Instant> {
        self.opened.map(|t| t + debounce)
    }

    /// The batch, if its window has passed; never an empty one.
    pub(super) fn take_due(&mut self, now: Instant, debounce: Duration) -> Option<Vec<Change>> {
        if !self.deadline(debounce).is_some_and(|d| now >= d) {
            return None;
        }
        self.seen.clear();
        self.opened = None;
        if self.changes.is_empty() {
            return None;
        }
        Some(std::mem::take(&mut self.changes))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::PathBuf;

    #[test]
    fn dedups_in_first_seen_order_and_waits_for_the_window() {
        let t0 = Instant::now();
        let d = Duration::from_millis(50);
        let mut b = Batch::default();
        assert_eq!(b.take_due(t0 + d, d), None, "empty batch is never due");
        b.push(Change::Htaccess(PathBuf::from("/a")), t0);
        b.push(Change::Rescan, t0 + Duration::from_millis(10));
        b.push(
            Change::Htaccess(PathBuf::from("/a")),
            t0 + Duration::from_millis(20),
        );
        assert_eq!(b.take_due(t0 + Duration::from_millis(49), d), None);
        let got = b.take_due(t0 + d, d);
        assert_eq!(
            got,
            Some(vec![Change::Htaccess(PathBuf::from("/a")), Change::Rescan])
        );
        assert_eq!(b.deadline(d), None);
        b.open(t0);
        assert_eq!(
            b.take_due(t0 + d, d),
            None,
            "a window without changes closes silently"
        );
        assert_eq!(b.deadline(d), None);
    }
}

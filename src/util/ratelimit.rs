//! Log lines that an attacker can cause, at most one per kind and key
//! (a site, a client address) every [`INTERVAL`]: a flood of hostile
//! requests must leave a trace without filling the disk.  The lines in
//! between are counted and the next line that is written says how many
//! were left out; the metrics count every event.

use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

/// At most one line per kind and key this often.
pub const INTERVAL: Duration = Duration::from_secs(10);
/// Keys remembered at most (then the memory starts again).
const MAX_KEYS: usize = 10_000;

type Table = Mutex<HashMap<(&'static str, String), (Instant, u64)>>;

fn table() -> &'static Table {
    static T: OnceLock<Table> = OnceLock::new();
    T.get_or_init(|| Mutex::new(HashMap::new()))
}

/// Whether a line of `kind` about `key` may be written now: `Some(n)`,
/// `n` being the lines of that kind and key left out since the last one;
/// `None`: leave this one out.
pub fn allow(kind: &'static str, key: &str) -> Option<u64> {
    allow_at(kind, key, Instant::now())
}

fn allow_at(kind: &'static str, key: &str, now: Instant) -> Option<u64> {
    let Ok(mut t) = table().lock() else {
        return Some(0);
    };
    if t.len() >= MAX_KEYS && !t.contains_key(&(kind, key.to_string())) {
        t.clear();
    }
    match t.get_mut(&(kind, key.to_string())) {
        Some((last, skipped)) if now.duration_since(*last) < INTERVAL => {
            *skipped += 1;
            None
        }
        Some((last, skipped)) => {
            let n = *skipped;
            *last = now;
            *skipped = 0;
            Some(n)
        }
        None => {
            t.insert((kind, key.to_string()), (now, 0));
            Some(0)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_and_a_count_of_the_rest() {
        let t0 = Instant::now();
        assert_eq!(allow_at("test-kind", "k", t0), Some(0));
        assert_eq!(allow_at("test-kind", "k", t0), None);
        assert_eq!(
            allow_at("test-kind", "k", t0 + Duration::from_secs(1)),
            None
        );
        // another key is not held back
        assert_eq!(allow_at("test-kind", "other", t0), Some(0));
        assert_eq!(allow_at("test-kind", "k", t0 + INTERVAL), Some(2));
        assert_eq!(allow_at("test-kind", "k", t0 + INTERVAL), None);
    }
}

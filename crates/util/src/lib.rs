//! Apache's (and APR's) small helpers that several modules need, defined
//! once.

pub mod budget;
pub mod escape;
pub mod fnmatch;

/// A Unix time as people read it in logs and command output:
/// `2026-12-07 13:05:20 UTC`.
pub fn fmt_time(unix: i64) -> String {
    chrono::DateTime::from_timestamp(unix, 0)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S UTC").to_string())
        .unwrap_or_else(|| unix.to_string())
}

/// Seconds since the Unix epoch (0 on a clock set before it).
pub fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0)
}

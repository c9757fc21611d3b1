//! Fair sharing of PHP between the sites of one process: how a PHP
//! request's body is taken in (buffered, with a minimum rate) and how many
//! PHP requests of one site may run at once.
//!
//! A site over its limit waits in a short FIFO queue (bounded in length and
//! time) and is then answered 503 with `Retry-After`: its flood, or its
//! slow PHP, queues behind its own limit instead of taking the PHP-FPM
//! workers and the server's sockets that other sites need.

use std::sync::Arc;
use std::time::Duration;

use super::limits::Gate;
use tokio::sync::OwnedSemaphorePermit;

/// Default of `php_body_memory_bytes`: a body up to this stays in memory.
pub const BODY_MEMORY_BYTES: usize = 64 * 1024;
/// Default of `php_body_timeout_seconds` (mod_reqtimeout's `body=20`).
pub const BODY_TIMEOUT: Duration = Duration::from_secs(20);
/// Default of `php_body_min_rate` (mod_reqtimeout's `MinRate=500`).
pub const BODY_MIN_RATE: u64 = 500;
/// Default of `php_max_concurrent`: about two Debian pools
/// (`pm.max_children = 5`) — enough for one busy site, well below what a
/// shared machine's PHP-FPM pools add up to.
pub const MAX_CONCURRENT: usize = 10;
/// Default of `php_queue_length`.
pub const QUEUE_LENGTH: usize = 50;
/// Default of `php_queue_timeout_seconds`.
pub const QUEUE_TIMEOUT: Duration = Duration::from_secs(5);

/// One site's PHP settings (htgate.toml's `php_*` keys).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PhpSettings {
    /// Read the whole body before a PHP-FPM connection is taken.
    pub request_buffering: bool,
    /// Bodies up to this stay in memory, larger ones go to a temp file.
    pub body_memory_bytes: usize,
    /// The first bytes of the body must come within this, and the
    /// deadline never runs further ahead than this.
    pub body_timeout: Duration,
    /// Bytes per second that push the deadline one second on; 0: none
    /// (then `body_timeout` is the longest wait between two reads).
    pub body_min_rate: u64,
    /// PHP requests of the site that may run at once.
    pub max_concurrent: usize,
    /// Requests that may wait for a turn (0: none wait).
    pub queue_length: usize,
    /// The longest wait for a turn.
    pub queue_timeout: Duration,
}

impl Default for PhpSettings {
    fn default() -> PhpSettings {
        PhpSettings {
            request_buffering: true,
            body_memory_bytes: BODY_MEMORY_BYTES,
            body_timeout: BODY_TIMEOUT,
            body_min_rate: BODY_MIN_RATE,
            max_concurrent: MAX_CONCURRENT,
            queue_length: QUEUE_LENGTH,
            queue_timeout: QUEUE_TIMEOUT,
        }
    }
}

impl PhpSettings {
    /// The FastCGI client's body policy for these settings.
    pub(crate) fn body_policy(&self) -> htgate_fastcgi::BodyPolicy {
        htgate_fastcgi::BodyPolicy {
            buffer: self.request_buffering,
            memory_bytes: self.body_memory_bytes,
            min_rate: Some(htgate_fastcgi::MinRate {
                initial: self.body_timeout,
                bytes_per_second: self.body_min_rate,
            }),
        }
    }
}

pub use super::limits::Refused;

/// One site's limit on PHP requests running at once (a
/// [`super::limits::Gate`] with the site's name).
pub struct PhpGate {
    site: Arc<String>,
    gate: Gate,
}

impl PhpGate {
    pub fn new(site: Arc<String>, settings: &PhpSettings) -> PhpGate {
        PhpGate {
            site,
            gate: Gate::new(
                settings.max_concurrent,
                settings.queue_length,
                settings.queue_timeout,
            ),
        }
    }

    /// The site's name, for logs and metrics.
    pub fn site(&self) -> &Arc<String> {
        &self.site
    }

    /// A turn to run one PHP request, held until the permit is dropped
    /// (with the answer's body).
    pub async fn enter(&self) -> Result<OwnedSemaphorePermit, Refused> {
        self.gate.enter().await
    }

    /// The `Retry-After` of a refusal, in seconds: the queue's wait.
    pub fn retry_after(&self) -> u64 {
        self.gate.wait().as_secs().max(1)
    }

    /// Requests running now (for tests).
    pub fn running(&self) -> usize {
        self.gate.held()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(max: usize, queue: usize, wait_ms: u64) -> PhpGate {
        PhpGate::new(
            Arc::new("t".into()),
            &PhpSettings {
                max_concurrent: max,
                queue_length: queue,
                queue_timeout: Duration::from_millis(wait_ms),
                ..PhpSettings::default()
            },
        )
    }

    #[tokio::test]
    async fn over_the_limit_waits_then_is_refused() {
        let g = gate(1, 1, 100);
        let first = g.enter().await.expect("a turn");
        // one waits its 100 ms, and while it waits the queue is full
        let (waited, full) = tokio::join!(g.enter(), async {
            tokio::time::sleep(Duration::from_millis(20)).await;
            g.enter().await
        });
        assert_eq!(waited.err(), Some(Refused::Timeout));
        assert_eq!(full.err(), Some(Refused::QueueFull));
        drop(first);
        assert!(g.enter().await.is_ok(), "a turn again once the first ended");
    }

    #[tokio::test]
    async fn a_waiter_gets_the_turn_that_ends() {
        let g = Arc::new(gate(1, 4, 2000));
        let first = g.enter().await.expect("a turn");
        let waiter = {
            let g = Arc::clone(&g);
            tokio::spawn(async move { g.enter().await.map(|_| ()) })
        };
        tokio::time::sleep(Duration::from_millis(50)).await;
        drop(first);
        assert_eq!(waiter.await.expect("join"), Ok(()));
    }

    #[tokio::test]
    async fn no_queue_refuses_at_once() {
        let g = gate(2, 0, 5000);
        let _a = g.enter().await.expect("a turn");
        let _b = g.enter().await.expect("a turn");
        assert_eq!(g.running(), 2);
        let started = std::time::Instant::now();
        assert_eq!(g.enter().await.err(), Some(Refused::QueueFull));
        assert!(started.elapsed() < Duration::from_secs(1));
    }
}

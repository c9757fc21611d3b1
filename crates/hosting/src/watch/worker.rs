//! The background thread: turns queued events into changes, runs the
//! debounce, polling and repair timers, and calls the sink.

use std::collections::HashSet;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use super::backend::{Backend, Msg, Source};
use super::batch::Batch;
use super::classify::{flat_event, tree_event, Effects, Renames};
use super::plan::Plan;
use super::Change;

/// Polling period when events are off or broken and the spec names none.
pub(super) const DEFAULT_POLL: Duration = Duration::from_secs(2);

/// Longest the thread sleeps without looking at the stop flag.
const MAX_WAIT: Duration = Duration::from_millis(100);

/// Messages handled per lock hold, so `update()` never waits long.
const DRAIN_LIMIT: usize = 4096;

pub(super) type Sink = Box<dyn Fn(Vec<Change>) + Send + 'static>;

/// Everything the worker and `Watcher::update` share.
pub(super) struct Shared {
    pub state: Mutex<State>,
    pub stop: AtomicBool,
    pub overflow: Arc<AtomicBool>,
    pub wake: SyncSender<Msg>,
}

impl Shared {
    pub(super) fn state(&self) -> MutexGuard<'_, State> {
        // A panic elsewhere while holding the lock leaves consistent-enough
        // tables; carrying on beats stopping hot reload.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

pub(super) struct State {
    pub plan: Plan,
    pub backend: Backend,
    renames: Renames,
    batch: Batch,
    rewatch: HashSet<PathBuf>,
    poll_every: Option<Duration>,
    next_poll: Option<Instant>,
    next_repair: Option<Instant>,
}

impl State {
    pub(super) fn new(plan: Plan, backend: Backend) -> State {
        State {
            plan,
            backend,
            renames: Renames::default(),
            batch: Batch::default(),
            rewatch: HashSet::new(),
            poll_every: None,
            next_poll: None,
            next_repair: None,
        }
    }

    /// Installs a new plan and adjusts the watches to it.
    pub(super) fn replan(&mut self, plan: Plan) {
        self.plan = plan;
        let mut out = Vec::new();
        self.backend.reconcile(&self.plan, &mut out);
        self.push_all(out, Instant::now());
    }

    pub(super) fn push_all(&mut self, changes: Vec<Change>, now: Instant) {
        for change in changes {
            self.batch.push(change, now);
        }
    }

    fn handle(&mut self, msg: Msg, now: Instant) {
        let mut fx = Effects::default();
        match msg {
            Msg::Wake => return,
            Msg::Event(Source::Tree, Ok(ev)) => {
                // Both spellings: the target of a symlinked root may itself
                // lie inside another tree.
                if let Some(linked) = self.backend.through_links(&ev) {
                    tree_event(&self.plan, &mut self.renames, &linked, &mut fx);
                }
                tree_event(&self.plan, &mut self.renames, &ev, &mut fx);
            }
            Msg::Event(Source::Flat, Ok(ev)) => flat_event(&self.plan, &ev, &mut fx),
            Msg::Event(_, Err(err)) => self.backend.backend_error(&err, &mut fx.changes),
        }
        self.apply(fx, now);
    }

    fn apply(&mut self, fx: Effects, now: Instant) {
        self.push_all(fx.changes, now);
        if fx.open_window {
            self.batch.open(now);
        }
        for dir in fx.lost_flat {
            self.backend.lose_flat(&dir);
        }
        self.rewatch.extend(fx.rewatch);
    }

    /// Timers and deferred work; called after every wake-up.
    fn tick(&mut self, now: Instant) {
        self.rewatch_roots(now);
        self.poll(now);
        self.repair(now);
    }

    /// Deferred to here so that a burst naming a root many times (its
    /// parent's event and its own) walks the new tree once.
    fn rewatch_roots(&mut self, now: Instant) {
        let roots: Vec<PathBuf> = self.rewatch.drain().collect();
        let mut out = Vec::new();
        for root in roots.iter().filter(|r| self.plan.trees.contains_key(*r)) {
            if self.plan.use_events {
                self.backend.rewatch_tree(root, &mut out);
            }
        }
        self.push_all(out, now);
    }

    fn poll(&mut self, now: Instant) {
        let every = self.poll_interval();
        if every != self.poll_every {
            self.poll_every = every;
            self.next_poll = every.map(|d| now + d);
        }
        if let (Some(due), Some(every)) = (self.next_poll, every) {
            if now >= due {
                self.batch.push(Change::Rescan, now);
                self.next_poll = Some(now + every);
            }
        }
    }

    /// The spec's polling period; when events are off or broken and the
    /// spec names none, the default, since events alone cannot be trusted.
    fn poll_interval(&self) -> Option<Duration> {
        let fallback = self.backend.degraded || !self.plan.use_events;
        self.plan.poll_interval.or(fallback.then_some(DEFAULT_POLL))
    }

    fn repair(&mut self, now: Instant) {
        if !self.plan.use_events || !self.backend.has_missing() {
            self.next_repair = None;
            return;
        }
        let every = self.plan.poll_interval.unwrap_or(DEFAULT_POLL);
        let due = *self.next_repair.get_or_insert(now + every);
        if now >= due {
            let mut out = Vec::new();
            self.backend.repair(&self.plan, &mut out);
            self.push_all(out, now);
            self.next_repair = None;
        }
    }

    fn next_deadline(&self) -> Option<Instant> {
        [
            self.batch.deadline(self.plan.debounce),
            self.next_poll,
            self.next_repair,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// The finished burst, if its window has closed.
    fn take_due(&mut self, now: Instant) -> Option<Vec<Change>> {
        let closed = self
            .batch
            .deadline(self.plan.debounce)
            .is_some_and(|d| now >= d);
        if closed {
            let unpaired: Vec<Change> = self.renames.take_unpaired().collect();
            self.push_all(unpaired, now);
        }
        self.batch.take_due(now, self.plan.debounce)
    }
}

/// The thread's body; returns when the stop flag is set.
pub(super) fn run(shared: Arc<Shared>, rx: Receiver<Msg>, sink: Sink) {
    while !shared.stop.load(Ordering::Acquire) {
        let wait = wait_time(&shared);
        let first = match rx.recv_timeout(wait) {
            Ok(msg) => Some(msg),
            Err(RecvTimeoutError::Timeout) => None,
            // Cannot happen while `shared` holds a sender; stop anyway.
            Err(RecvTimeoutError::Disconnected) => break,
        };
        if shared.stop.load(Ordering::Acquire) {
            break;
        }
        if let Some(changes) = process(&shared, &rx, first) {
            deliver(&sink, changes);
        }
    }
}

fn wait_time(shared: &Shared) -> Duration {
    let now = Instant::now();
    match shared.state().next_deadline() {
        Some(deadline) => deadline.saturating_duration_since(now).min(MAX_WAIT),
        None => MAX_WAIT,
    }
}

/// Handles the message that woke us and whatever else is queued, runs the
/// timers, and returns a batch that is due (the lock is released before the
/// sink runs, so the sink may call `update()`).
fn process(shared: &Shared, rx: &Receiver<Msg>, first: Option<Msg>) -> Option<Vec<Change>> {
    let mut state = shared.state();
    let now = Instant::now();
    let queued = std::iter::from_fn(|| rx.try_recv().ok()).take(DRAIN_LIMIT);
    for msg in first.into_iter().chain(queued) {
        state.handle(msg, now);
    }
    if shared.overflow.swap(false, Ordering::AcqRel) {
        tracing::warn!("watch: event queue full, events dropped; asking for a rescan");
        state.batch.push(Change::Rescan, now);
    }
    let now = Instant::now();
    state.tick(now);
    state.take_due(now)
}

fn deliver(sink: &Sink, changes: Vec<Change>) {
    tracing::debug!(?changes, "watch: changes");
    // A panicking consumer must not end hot reload for good.
    if catch_unwind(AssertUnwindSafe(|| sink(changes))).is_err() {
        tracing::error!("watch: the change handler panicked");
    }
}

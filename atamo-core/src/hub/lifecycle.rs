//! Where the hub is in its life, as every task sees it: taking events, draining, done.

use std::sync::atomic::AtomicBool;
use std::sync::Mutex;

use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// The signals of a hub's shutdown, in the order they fire.
pub(crate) struct Lifecycle {
    /// Whether publishes and registrations are still taken.
    pub(crate) accepting: AtomicBool,
    /// Shutdown began: the router stops intake and routes what it holds.
    pub(crate) drain: CancellationToken,
    /// The router is done: workers stop once their queue is empty.
    pub(crate) intake_done: CancellationToken,
    /// The deadline passed: workers abandon what they hold; agents see it as cancellation.
    pub(crate) abort: CancellationToken,
    /// Stops the request stores' timer tasks, last of all.
    pub(crate) store_stop: CancellationToken,
}

impl Lifecycle {
    pub(crate) fn new() -> Self {
        Self {
            accepting: AtomicBool::new(true),
            drain: CancellationToken::new(),
            intake_done: CancellationToken::new(),
            abort: CancellationToken::new(),
            store_stop: CancellationToken::new(),
        }
    }
}

/// What a worker did after shutdown began.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct WorkerReport {
    pub(crate) abandoned: u64,
}

/// The hub's spawned tasks, kept so that shutdown can await every one.
#[derive(Default)]
pub(crate) struct Tasks {
    /// One per agent.
    workers: Mutex<Vec<JoinHandle<WorkerReport>>>,
    /// Event providers' tasks, request stores' timer tasks, a stateful hub's node tasks.
    side: Mutex<Vec<JoinHandle<()>>>,
    /// The stateful hub's settle writer, awaited once the workers are done.
    settler: Mutex<Option<JoinHandle<()>>>,
}

fn locked<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(poisoned) => poisoned.into_inner(),
    }
}

impl Tasks {
    pub(crate) fn track_worker(&self, task: JoinHandle<WorkerReport>) {
        let mut workers = locked(&self.workers);
        workers.retain(|t| !t.is_finished());
        workers.push(task);
    }

    pub(crate) fn track_side(&self, task: JoinHandle<()>) {
        let mut tasks = locked(&self.side);
        tasks.retain(|t| !t.is_finished());
        tasks.push(task);
    }

    pub(crate) fn set_settler(&self, task: JoinHandle<()>) {
        *locked(&self.settler) = Some(task);
    }

    pub(crate) fn take_workers(&self) -> Vec<JoinHandle<WorkerReport>> {
        std::mem::take(&mut *locked(&self.workers))
    }

    pub(crate) fn take_side(&self) -> Vec<JoinHandle<()>> {
        std::mem::take(&mut *locked(&self.side))
    }

    pub(crate) fn take_settler(&self) -> Option<JoinHandle<()>> {
        locked(&self.settler).take()
    }
}

//! The worker's task under supervision: the loop is restarted after a panic with everything it
//! owns outside the loop's future (its queue, held actions, retries, calls in flight and the
//! round's settles); only what the loop had in hand at that moment is lost.

use tokio::sync::mpsc;

use super::call::Calls;
use super::run::Worker;
use crate::hub::components::ComponentHandle;
use crate::hub::dispatch::Dispatch;
use crate::hub::lifecycle::WorkerReport;
use crate::hub::supervise::Restarts;

impl Worker {
    /// Runs the worker until its queue is closed and drained (or the hub's deadline passes),
    /// restarting its loop after a panic. The agent's calls in flight go on across a restart.
    pub(crate) async fn supervised(
        mut self,
        mut rx: mpsc::Receiver<Dispatch>,
        component: ComponentHandle,
    ) -> WorkerReport {
        // The calls borrow the agent from here, for as long as the worker runs.
        let agent = self.agent.clone();
        let mut inflight = Calls::new(&*agent);
        let mut restarts = Restarts::new(
            "the action it was handling (a durable one stays leased to this node until the \
             node restarts)",
        );
        loop {
            match restarts
                .life(&component, self.run(&mut inflight, &mut rx))
                .await
            {
                Ok(report) => return report,
                Err(panic) => {
                    restarts.panicked(&component, &panic, None).await;
                }
            }
        }
    }
}

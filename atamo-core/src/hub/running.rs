//! A running hub: handles out, graceful shutdown.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinHandle;
use tokio::time::Instant;

use super::control::Control;
use super::handle::HubHandle;
use super::lifecycle::WorkerReport;
use super::router::RouterReport;
use super::shared::Shared;
use crate::telemetry::{ShutdownReport, TelemetryKind};

/// A running hub. Owns its tasks: keep it, and [`shutdown`](Hub::shutdown) or
/// [`run_until`](Hub::run_until) it to stop gracefully. Hand out [`HubHandle`]s to publishers and
/// a [`Control`] to the controller.
///
/// Dropping a `Hub` without shutting it down starts the same graceful stop in the background
/// (intake closes; queued work still runs) but nobody learns what was abandoned.
pub struct Hub {
    shared: Arc<Shared>,
    router: Option<JoinHandle<RouterReport>>,
    grace: Duration,
}

impl Hub {
    /// A running hub: what the builder starts.
    pub(crate) fn new(
        shared: Arc<Shared>,
        router: JoinHandle<RouterReport>,
        grace: Duration,
    ) -> Self {
        Self {
            shared,
            router: Some(router),
            grace,
        }
    }

    /// A handle for publishing.
    pub fn handle(&self) -> HubHandle {
        HubHandle::from_shared(&self.shared)
    }

    /// The controller's handle.
    pub fn control(&self) -> Control {
        Control {
            shared: self.shared.clone(),
        }
    }

    /// Runs until `signal` completes (for example `tokio::signal::ctrl_c()`), then shuts down
    /// gracefully.
    pub async fn run_until<F: std::future::Future>(self, signal: F) -> ShutdownReport {
        signal.await;
        self.shutdown().await
    }

    /// Stops intake, lets accepted events be routed and in-flight actions finish within the
    /// grace period, then abandons what is left, reporting each abandoned action in telemetry.
    pub async fn shutdown(mut self) -> ShutdownReport {
        let started = Instant::now();
        let shared = self.shared.clone();
        shared.lifecycle.accepting.store(false, Ordering::Release);
        shared
            .bus
            .emit(TelemetryKind::ShutdownStarted { grace: self.grace });
        tracing::info!(grace = ?self.grace, "hub shutting down");
        shared.lifecycle.drain.cancel();
        // Live feeds never end on their own, and nobody will be left to watch them.
        let stores = match shared.stores.lock() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        };
        let feeds: usize = stores
            .iter()
            .filter_map(std::sync::Weak::upgrade)
            .map(|s| s.cancel_live_feeds())
            .sum();
        if feeds > 0 {
            tracing::info!(feeds, "live feeds cancelled for shutdown");
        }
        let deadline = tokio::time::sleep(self.grace);
        tokio::pin!(deadline);

        let mut report = ShutdownReport::default();
        let router = self.router.take();
        let mut wait_all = std::pin::pin!(async {
            let r = match router {
                Some(r) => r.await.unwrap_or_default(),
                None => RouterReport::default(),
            };
            // Set by the router once it has routed what it held; set here too, for a router
            // that failed.
            shared.lifecycle.intake_done.cancel();
            // Workers registered while the router drained are picked up by the second take.
            let mut w = WorkerReport::default();
            loop {
                let tasks = shared.tasks.take_workers();
                if tasks.is_empty() {
                    break;
                }
                for t in tasks {
                    w.abandoned += t.await.unwrap_or_default().abandoned;
                }
            }
            // Settles of the last actions are written before the hub says it has stopped.
            if let Some(d) = &shared.durable {
                d.stop.cancel();
                if let Some(settler) = shared.tasks.take_settler() {
                    let _ = settler.await;
                }
            }
            (r, w)
        });
        let (r, w) = tokio::select! {
            done = &mut wait_all => done,
            _ = &mut deadline => {
                report.deadline_passed = true;
                shared.lifecycle.abort.cancel();
                wait_all.await
            }
        };
        // Providers were told to stop when intake closed; timers stop now. What is still
        // running once the deadline has passed is aborted.
        shared.lifecycle.store_stop.cancel();
        for mut task in shared.tasks.take_side() {
            if !report.deadline_passed {
                tokio::select! {
                    _ = &mut task => continue,
                    _ = &mut deadline => {
                        report.deadline_passed = true;
                        shared.lifecycle.abort.cancel();
                    }
                }
            }
            task.abort();
        }
        report.events_drained = r.drained;
        report.actions_abandoned = r.abandoned + w.abandoned;
        report.elapsed = started.elapsed();
        tracing::info!(?report, "hub stopped");
        shared.bus.emit(TelemetryKind::Stopped {
            report: report.clone(),
        });
        report
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        if self.router.is_some() {
            self.shared
                .lifecycle
                .accepting
                .store(false, Ordering::Release);
            self.shared.lifecycle.drain.cancel();
            self.shared.lifecycle.store_stop.cancel();
            if let Some(d) = &self.shared.durable {
                d.stop.cancel();
            }
        }
    }
}

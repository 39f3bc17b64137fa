//! The monitor's handle: starts its task, lists active alerts, stops with the hub.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::Arc;

use tokio::task::JoinHandle;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::hub::components::ComponentHandle;
use crate::hub::supervise::Restarts;
use crate::hub::{ConfigProblem, Control, EventTypeDef, Hub, HubHandle};
use crate::telemetry::TelemetrySubscriber;

use super::active::{ActiveAlert, Shared};
use super::config::AlertConfig;
use super::names::ALERT_EVENT_TYPE;
use super::task::Task;
use super::units::lock;

/// Watches a hub and raises and resolves alerts per agent (see the [module](crate::alerts) docs).
///
/// Dropping it stops its task.
pub struct AlertMonitor {
    shared: Arc<Shared>,
    stop: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for AlertMonitor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AlertMonitor")
            .field("running", &self.is_running())
            .field("active", &self.active().len())
            .finish_non_exhaustive()
    }
}

impl Drop for AlertMonitor {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

impl AlertMonitor {
    /// Starts watching `hub`: registers the [`ALERT_EVENT_TYPE`] event type if it is not
    /// registered yet, subscribes to telemetry and spawns one task on the hub's runtime.
    pub fn start(hub: &Hub, config: AlertConfig) -> Self {
        Self::watch(&hub.control(), config)
    }

    /// [`start`](Self::start) for a controller that holds only the hub's [`Control`]. Alert
    /// events are published through the hub's in-process [`HubHandle`].
    pub fn watch(control: &Control, config: AlertConfig) -> Self {
        register_alert_type(control);
        // Subscribed before the task runs, so nothing after `start` returns is missed.
        let sub = control.subscribe();
        let epoch = Instant::now();
        let shared = Arc::new(Shared::default());
        let stop = CancellationToken::new();
        let mut task = Task {
            control: control.clone(),
            handle: HubHandle::from_shared(&control.shared),
            config,
            epoch,
            agents: BTreeMap::new(),
            active: BTreeMap::new(),
            shared: shared.clone(),
            outbox: VecDeque::new(),
            touched: Vec::new(),
        };
        // Agents registered now are watched from now on.
        for agent in control.health().agents {
            task.ensure(&agent.id, epoch);
        }
        let span = tracing::info_span!("alert_monitor");
        let component = control.shared.components.register("alert_monitor", false);
        let handle = control
            .shared
            .runtime
            .spawn(supervised(task, sub, stop.clone(), component).instrument(span));
        Self {
            shared,
            stop,
            task: Some(handle),
        }
    }

    /// The alerts raised and not yet resolved, by agent, then alert.
    pub fn active(&self) -> Vec<ActiveAlert> {
        lock(&self.shared.active).clone()
    }

    /// How many telemetry steps the monitor missed because it fell behind.
    pub fn missed_telemetry(&self) -> u64 {
        self.shared.missed.load(Ordering::Relaxed)
    }

    /// How many alert events could not be published (the hub refused them, or the outbox
    /// overflowed). Their telemetry was recorded all the same.
    pub fn dropped_events(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }

    /// Whether the monitor's task is still running.
    pub fn is_running(&self) -> bool {
        self.task.as_ref().is_some_and(|t| !t.is_finished())
    }

    /// Stops the monitor. Its task ends at its next step; active alerts stay listed.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// Waits until the monitor's task has ended: after [`stop`](Self::stop), or once the
    /// hub has shut down.
    pub async fn join(mut self) {
        if let Some(task) = self.task.take() {
            if let Err(e) = task.await {
                tracing::warn!(error = %e, "alert monitor task ended abnormally");
            }
        }
    }
}

/// Runs the monitor's loop until it is stopped, restarted after a panic with its windows and
/// active alerts (the telemetry batch it was handling is lost).
async fn supervised(
    mut task: Task,
    mut sub: TelemetrySubscriber,
    stop: CancellationToken,
    component: ComponentHandle,
) {
    let mut restarts = Restarts::new("the telemetry batch it was handling");
    loop {
        match restarts.life(&component, task.run(&mut sub, &stop)).await {
            Ok(()) => return,
            Err(panic) => {
                if !restarts.panicked(&component, &panic, Some(&stop)).await {
                    return;
                }
            }
        }
    }
}

pub(super) fn register_alert_type(control: &Control) {
    if control
        .event_types()
        .iter()
        .any(|d| d.name.as_str() == ALERT_EVENT_TYPE)
    {
        return;
    }
    if let Err(e) = control.register_event_type(EventTypeDef::new(ALERT_EVENT_TYPE)) {
        // Registered meanwhile by someone else: fine.
        let benign = e
            .problems
            .iter()
            .all(|p| matches!(p, ConfigProblem::Duplicate { .. }));
        if !benign {
            tracing::warn!(error = %e, "could not register the {ALERT_EVENT_TYPE} event type");
        }
    }
}

//! `ProcessSupervisor`: keeps the process agents that run, and are registered with the hub,
//! equal to a desired list.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use atamo_core::hub::ConfigProblem;
use atamo_core::telemetry::TelemetryRecvError;
use atamo_core::{ActionType, AgentId, AgentSpec, Control, MessageTemplate, TelemetryKind};
use futures_util::future::join_all;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::agent::ProcessAgent;
use super::error::ProcessError;
use super::spec::ProcessSpec;
use super::state::{ProcessState, StopHow};

/// One process agent as it should be: its id, its program, and how it is registered.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct DesiredAgent {
    /// The id it is registered under.
    pub id: AgentId,
    /// The program and its supervision.
    pub spec: ProcessSpec,
    /// The action types it handles.
    pub handles: Vec<ActionType>,
    /// How many calls may run at once (the hub's default when `None`).
    pub concurrency: Option<usize>,
    /// How many dispatched actions may wait (the hub's default when `None`).
    pub queue_capacity: Option<usize>,
    /// Fields every action for it must carry.
    pub action_template: Option<MessageTemplate>,
    /// Who to tell about it.
    pub owner: Option<String>,
    /// Its version, for the operator.
    pub version: Option<String>,
}

impl DesiredAgent {
    /// Agent `id` running `spec`, handling nothing yet.
    pub fn new(id: impl Into<AgentId>, spec: ProcessSpec) -> Self {
        Self {
            id: id.into(),
            spec,
            handles: Vec::new(),
            concurrency: None,
            queue_capacity: None,
            action_template: None,
            owner: None,
            version: None,
        }
    }

    /// Sets who to tell about it.
    #[must_use]
    pub fn owner(mut self, owner: impl Into<String>) -> Self {
        self.owner = Some(owner.into());
        self
    }

    /// Sets its version.
    #[must_use]
    pub fn version(mut self, version: impl Into<String>) -> Self {
        self.version = Some(version.into());
        self
    }

    /// Sets the fields every action for it must carry.
    #[must_use]
    pub fn action_template(mut self, template: MessageTemplate) -> Self {
        self.action_template = Some(template);
        self
    }

    /// Adds action types it handles.
    #[must_use]
    pub fn handles<I, T>(mut self, types: I) -> Self
    where
        I: IntoIterator<Item = T>,
        T: Into<ActionType>,
    {
        self.handles.extend(types.into_iter().map(Into::into));
        self
    }

    /// Sets how many calls may run at once.
    #[must_use]
    pub fn concurrency(mut self, n: usize) -> Self {
        self.concurrency = Some(n);
        self
    }

    /// Sets how many dispatched actions may wait.
    #[must_use]
    pub fn queue_capacity(mut self, n: usize) -> Self {
        self.queue_capacity = Some(n);
        self
    }

    fn agent_spec(&self, agent: &ProcessAgent) -> AgentSpec {
        let mut spec = AgentSpec::from_arc(self.id.clone(), Arc::new(agent.clone()))
            .handles(self.handles.iter().cloned())
            .metadata(self.spec.config.clone());
        if let Some(n) = self.concurrency {
            spec = spec.concurrency(n);
        }
        if let Some(n) = self.queue_capacity {
            spec = spec.queue_capacity(n);
        }
        if let Some(template) = &self.action_template {
            spec = spec.action_template(template.clone());
        }
        if let Some(o) = &self.owner {
            spec = spec.owner(o.clone());
        }
        if let Some(v) = &self.version {
            spec = spec.version(v.clone());
        }
        spec
    }
}

/// What one [`ProcessSupervisor::reconcile`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct ReconcileReport {
    /// Agents started and registered.
    pub started: Vec<AgentId>,
    /// Agents whose spec changed (or whose process was offline or unregistered from the hub),
    /// stopped and started again.
    pub restarted: Vec<AgentId>,
    /// Agents no longer desired, unregistered and stopped, with how their process ended.
    pub stopped: Vec<(AgentId, StopHow)>,
    /// Agents already running as desired.
    pub unchanged: Vec<AgentId>,
    /// Agents that could not be started or registered, with why. They are not running.
    pub failed: Vec<(AgentId, String)>,
}

impl ReconcileReport {
    /// Whether every desired agent runs.
    pub fn is_ok(&self) -> bool {
        self.failed.is_empty()
    }
}

/// Runs a set of process agents and keeps it equal to a desired list, the way a cluster
/// orchestrator reconciles desired and actual state.
///
/// [`reconcile`](Self::reconcile) starts and registers the agents that are desired but not
/// running, unregisters and stops (gracefully) those running but no longer desired, and
/// restarts those whose entry changed. An agent that is offline, or that somebody removed
/// from the hub, counts as not running, so reconciling again brings it back.
///
/// It also watches the hub: when an agent it runs is unregistered through
/// [`Control::unregister_agent`], its process is stopped gracefully. The watch subscribes to
/// telemetry ([`TelemetryKind::AgentUnregistered`]); when the subscription lags and events
/// are lost, it compares its agents with [`Control::agents`] instead.
///
/// Dropping the supervisor stops the watch; the processes live on while the hub holds their
/// agents. Call [`shutdown`](Self::shutdown) to stop them all.
pub struct ProcessSupervisor {
    state: Arc<State>,
    watch: CancellationToken,
}

struct State {
    control: Control,
    running: Mutex<BTreeMap<AgentId, Running>>,
}

struct Running {
    desired: DesiredAgent,
    agent: ProcessAgent,
}

impl std::fmt::Debug for ProcessSupervisor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ProcessSupervisor").finish_non_exhaustive()
    }
}

impl Drop for ProcessSupervisor {
    fn drop(&mut self) {
        self.watch.cancel();
    }
}

impl ProcessSupervisor {
    /// A supervisor that registers its agents with `control`'s hub and records telemetry
    /// there. Must be called inside a tokio runtime (it starts the watch task).
    pub fn new(control: Control) -> Self {
        let telemetry = control.subscribe();
        let state = Arc::new(State {
            control,
            running: Mutex::new(BTreeMap::new()),
        });
        let watch = CancellationToken::new();
        tokio::spawn(
            watch_hub(state.clone(), telemetry, watch.clone())
                .instrument(tracing::info_span!("process_supervisor")),
        );
        Self { state, watch }
    }

    /// Makes the running agents equal to `desired`; see the type's documentation. Agents are
    /// started one after the other, stopped all at once. One agent failing does not stop the
    /// others: the report lists what happened to each.
    pub async fn reconcile(&self, desired: Vec<DesiredAgent>) -> ReconcileReport {
        let mut report = ReconcileReport::default();
        let control = &self.state.control;
        let mut running = self.state.running.lock().await;

        let mut wanted: BTreeMap<AgentId, DesiredAgent> = BTreeMap::new();
        for entry in desired {
            if wanted.contains_key(&entry.id) {
                report.failed.push((
                    entry.id.clone(),
                    "listed twice in the desired agents".into(),
                ));
                continue;
            }
            wanted.insert(entry.id.clone(), entry);
        }

        // What runs but should not, or not like this: remove it from the hub, then stop.
        let registered: BTreeSet<AgentId> = control.agents().into_iter().map(|a| a.id).collect();
        let mut to_stop = Vec::new();
        let mut replaced = BTreeSet::new();
        let ids: Vec<AgentId> = running.keys().cloned().collect();
        for id in ids {
            let keep = running.get(&id).is_some_and(|r| {
                wanted.get(&id) == Some(&r.desired)
                    && registered.contains(&id)
                    && matches!(
                        r.agent.state(),
                        ProcessState::Running { .. } | ProcessState::Restarting
                    )
            });
            if keep {
                report.unchanged.push(id);
                continue;
            }
            let Some(old) = running.remove(&id) else {
                continue;
            };
            if registered.contains(&id) {
                unregister(control, &id);
            }
            if wanted.contains_key(&id) {
                replaced.insert(id.clone());
            }
            to_stop.push((id, old.agent));
        }
        let stops = join_all(to_stop.into_iter().map(|(id, agent)| async move {
            let how = agent.stop().await;
            (id, how)
        }))
        .await;
        for (id, how) in stops {
            if !replaced.contains(&id) {
                report.stopped.push((id, how));
            }
        }

        // What should run but does not: start it, then register it.
        for (id, entry) in wanted {
            if running.contains_key(&id) {
                continue;
            }
            match start(control, &entry).await {
                Ok(agent) => {
                    running.insert(
                        id.clone(),
                        Running {
                            desired: entry,
                            agent,
                        },
                    );
                    if replaced.contains(&id) {
                        report.restarted.push(id);
                    } else {
                        report.started.push(id);
                    }
                }
                Err(e) => {
                    tracing::error!(agent = %id, "cannot start the process agent: {e}");
                    report.failed.push((id, e.to_string()));
                }
            }
        }
        report
    }

    /// The agent running as `id`, if any.
    pub async fn agent(&self, id: &AgentId) -> Option<ProcessAgent> {
        let running = self.state.running.lock().await;
        running.get(id).map(|r| r.agent.clone())
    }

    /// The ids of the agents it runs.
    pub async fn running(&self) -> Vec<AgentId> {
        let running = self.state.running.lock().await;
        running.keys().cloned().collect()
    }

    /// Unregisters and stops every agent it runs; the same as reconciling to nothing.
    pub async fn shutdown(&self) -> ReconcileReport {
        self.reconcile(Vec::new()).await
    }
}

fn unregister(control: &Control, id: &AgentId) {
    if let Err(e) = control.unregister_agent(id) {
        // Somebody removed it meanwhile: fine.
        if !e
            .problems
            .iter()
            .all(|p| matches!(p, ConfigProblem::NotFound { .. }))
        {
            tracing::warn!(agent = %id, "cannot unregister the process agent: {e}");
        }
    }
}

/// Starts the process, then registers the agent; a registration that fails stops it again.
async fn start(control: &Control, entry: &DesiredAgent) -> Result<ProcessAgent, ProcessError> {
    let agent = ProcessAgent::start(entry.id.clone(), entry.spec.clone(), control.clone()).await?;
    if let Err(error) = control.register_agent(entry.agent_spec(&agent)) {
        agent.stop().await;
        return Err(ProcessError::Register {
            agent: entry.id.clone(),
            error,
        });
    }
    Ok(agent)
}

/// Stops the agents somebody unregistered from the hub.
async fn watch_hub(
    state: Arc<State>,
    mut telemetry: atamo_core::telemetry::TelemetrySubscriber,
    cancel: CancellationToken,
) {
    loop {
        let event = tokio::select! {
            _ = cancel.cancelled() => return,
            event = telemetry.recv() => event,
        };
        match event {
            Ok(event) => {
                if let TelemetryKind::AgentUnregistered { agent } = &event.kind {
                    stop_unregistered(&state, Some(agent)).await;
                }
            }
            Err(TelemetryRecvError::Lagged { missed }) => {
                tracing::debug!(missed, "telemetry lagged: checking every agent");
                stop_unregistered(&state, None).await;
            }
            Err(_) => return, // closed: the hub is gone
        }
    }
}

/// Stops `only` (or every agent) if it is no longer registered with the hub. Reconcile holds
/// the same lock, so an agent it is replacing (unregistered, then registered again) is seen
/// registered here and left alone.
async fn stop_unregistered(state: &State, only: Option<&AgentId>) {
    let mut running = state.running.lock().await;
    if only.is_some_and(|id| !running.contains_key(id)) {
        return;
    }
    let registered: BTreeSet<AgentId> = state.control.agents().into_iter().map(|a| a.id).collect();
    let gone: Vec<AgentId> = running
        .keys()
        .filter(|id| only.is_none_or(|o| o == *id) && !registered.contains(*id))
        .cloned()
        .collect();
    for id in gone {
        if let Some(old) = running.remove(&id) {
            tracing::info!(agent = %id, "unregistered from the hub: stopping its process");
            tokio::spawn(async move {
                old.agent.stop().await;
            });
        }
    }
}

//! What the benchmarks share: a one-rule hub, a runtime, a publish-and-wait loop, the median.

/// A hub builder with what every benchmark measures through: one event type (whose events
/// carry `field`), one agent handling one action type of the same name, and one rule sending
/// every event of the type to the agent with `field` copied into the action.
pub fn one_rule_hub(
    event_type: &str,
    field: &str,
    agent_id: &str,
    agent: impl atamo_core::Agent,
    sharing: atamo_core::rules::Sharing,
) -> anyhow::Result<atamo_core::HubBuilder> {
    use atamo_config::{Rule, RuleBook};
    use atamo_core::{ActionTypeDef, AgentSpec, EventTypeDef, Hub};

    let template = serde_json::json!({ field: format!("{{{{payload.{field}}}}}") });
    let rule = Rule::new("bench-rule", event_type, agent_id, agent_id, template).shared(sharing);
    Ok(Hub::builder()
        .event_type(EventTypeDef::new(event_type).requiring([field])?)
        .action_type(ActionTypeDef::new(agent_id))
        .agent(AgentSpec::new(agent_id, agent).handles([agent_id]))
        .provider(
            "rules",
            RuleBook::with_rules(vec![rule])?,
            atamo_core::rules::ProviderScope::AllEvents,
        ))
}

/// A multi-thread runtime with `threads` workers (default: one per core), and how many it has.
pub fn runtime(threads: Option<usize>) -> anyhow::Result<(tokio::runtime::Runtime, usize)> {
    let mut rt = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = threads {
        rt.worker_threads(n);
    }
    let threads = threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    Ok((rt.enable_all().build()?, threads))
}

/// Publishes `events` fire-and-forget through `handle`, then waits (up to `limit`) until the
/// agent has counted them all in `done` (it wakes `finished` on the last one).
pub async fn publish_and_wait(
    handle: &atamo_core::HubHandle,
    events: Vec<atamo_core::Event>,
    done: &std::sync::atomic::AtomicU64,
    finished: &tokio::sync::Notify,
    limit: std::time::Duration,
) -> anyhow::Result<()> {
    use anyhow::Context;
    let n = events.len() as u64;
    for e in events {
        handle
            .publish(e)
            .await
            .map_err(|e| anyhow::anyhow!("{e}"))?;
    }
    tokio::time::timeout(limit, async {
        while done.load(std::sync::atomic::Ordering::Relaxed) < n {
            finished.notified().await;
        }
    })
    .await
    .context("the agent did not finish every action in time")
}

/// The median of some measurements.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    match xs.len() {
        0 => 0.0,
        n if n % 2 == 1 => xs[n / 2],
        n => (xs[n / 2 - 1] + xs[n / 2]) / 2.0,
    }
}

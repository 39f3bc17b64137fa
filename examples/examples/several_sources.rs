//! Guide 03: several sources. One request is routed to two agents, a CRM that answers once and
//! an order history that answers in pages; the client collects both, then sees what a request
//! looks like when one of its two sources fails.
//!
//! Run it: `cargo run -p atamo-examples --example several_sources`

use std::time::Duration;

use atamo_config::{Rule, RuleBook};
use atamo_core::request::{PartStatus, RequestSnapshot};
use atamo_core::rules::ProviderScope;
use atamo_core::{
    agent_fn, ActionTypeDef, AgentError, AgentSpec, Event, EventTypeDef, Hub, Principal, Reply,
    RequestState,
};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 1. Two rules for the same request type: each source gets its own action.
    let rules = RuleBook::with_rules(vec![
        Rule::new(
            "find-in-crm",
            "customer.find",
            "crm",
            "customer.lookup",
            json!({"id": "{{payload.customer.id}}"}),
        ),
        Rule::new(
            "find-orders",
            "customer.find",
            "orders",
            "orders.list",
            json!({"customer": "{{payload.customer.id}}"}),
        ),
    ])?;

    // 2. The CRM answers once, with its reply. The order history answers page by page: every
    //    page but the last with `ctx.answer`, the last one as its reply.
    let crm = agent_fn(|action, _ctx| async move {
        let id = action.payload()["id"].as_u64().unwrap_or_default();
        let name = if id == 42 {
            "Ada Lovelace"
        } else {
            "Charles Babbage"
        };
        Ok(Reply::with(json!({"id": id, "name": name})))
    });
    let orders = agent_fn(|action, ctx| async move {
        let customer = action.payload()["customer"].as_u64().unwrap_or_default();
        if customer == 13 {
            return Err(AgentError::permanent(
                "order history of customer 13 is archived",
            ));
        }
        ctx.answer(json!({"page": 1, "orders": [1001, 1002]}))
            .await
            .map_err(|e| AgentError::permanent(e.to_string()))?;
        Ok(Reply::with(json!({"page": 2, "orders": [1003]})))
    });
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("customer.find").requiring(["customer.id"])?)
        .action_type(ActionTypeDef::new("customer.lookup"))
        .action_type(ActionTypeDef::new("orders.list"))
        .agent(AgentSpec::new("crm", crm).handles(["customer.lookup"]))
        .agent(AgentSpec::new("orders", orders).handles(["orders.list"]))
        .provider("rules", rules, ProviderScope::AllEvents)
        .build()?;
    let handle = hub.handle();

    // 3. One request, two sources: `wait` returns when both have ended their part.
    for customer in [42, 13] {
        let find = Event::new(
            "customer.find",
            Principal::user("alice"),
            json!({"customer": {"id": customer}}),
        );
        let receipt = handle.request(find).await?;
        println!("customer {customer}: request {}", receipt.request_id);
        let done = handle
            .wait(receipt.request_id, Duration::from_secs(5))
            .await?;
        print_result(&done);
    }

    let report = hub.shutdown().await;
    println!(
        "stopped: {} actions abandoned, took {:?}",
        report.actions_abandoned, report.elapsed
    );
    Ok(())
}

/// Prints the request's state, then each source's part with its answers.
fn print_result(done: &RequestSnapshot) {
    match done.state {
        RequestState::Complete => println!("  state: complete"),
        RequestState::PartiallyFailed { failed, of } => {
            println!("  state: partially failed ({failed} of {of} sources failed)");
        }
        RequestState::Failed => println!("  state: failed (every source failed)"),
        other => println!("  state: {other:?}"),
    }
    // Answers arrive interleaved, in arrival order; group them by the agent that gave them.
    for part in &done.parts {
        let status = match &part.status {
            PartStatus::Done => "done".to_string(),
            PartStatus::Failed { error } => format!("failed: {error}"),
            other => format!("{other:?}"),
        };
        println!("  {}: {status}", part.agent);
        for answer in done.answers.iter().filter(|a| a.agent == part.agent) {
            println!(
                "    seq {} last {}: {}",
                answer.seq, answer.last, answer.payload
            );
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().unwrap();
    }
}

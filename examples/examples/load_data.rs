//! Guide 02: load data asynchronously. A client asks the hub to find a customer, gets a request
//! id at once, and collects the answer either by waiting for it or by coming back later and
//! polling, until the answer's keep-alive time has passed.
//!
//! Run it: `cargo run -p atamo-examples --example load_data`

use std::time::Duration;

use atamo_config::{Rule, RuleBook};
use atamo_core::request::RequestStatus;
use atamo_core::rules::ProviderScope;
use atamo_core::{
    agent_fn, ActionTypeDef, AgentError, AgentSpec, Event, EventTypeDef, Hub, Principal, Reply,
    RequestOptions,
};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 1. One rule: a `customer.find` request goes to the `crm` agent as a `customer.lookup`.
    let rules = RuleBook::with_rules(vec![Rule::new(
        "find-customer",
        "customer.find",
        "crm",
        "customer.lookup",
        json!({"id": "{{payload.customer.id}}"}),
    )])?;

    // 2. The hub. The agent answers by returning its result in the `Reply`.
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("customer.find").requiring(["customer.id"])?)
        .action_type(ActionTypeDef::new("customer.lookup"))
        .agent(
            AgentSpec::new(
                "crm",
                agent_fn(|action, _ctx| async move {
                    let id = action.payload()["id"]
                        .as_u64()
                        .ok_or_else(|| AgentError::permanent("no customer id"))?;
                    // A slow database.
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    let name = match id {
                        42 => "Ada Lovelace",
                        7 => "Grace Hopper",
                        _ => return Err(AgentError::permanent(format!("no customer {id}"))),
                    };
                    println!("  [crm] found customer {id}");
                    Ok(Reply::with(json!({"id": id, "name": name})))
                }),
            )
            .handles(["customer.lookup"]),
        )
        .provider("rules", rules, ProviderScope::AllEvents)
        .build()?;
    let handle = hub.handle();
    let alice = Principal::user("alice");

    // 3. Load once: send, get the id at once, wait for the answer, leave.
    println!("load once:");
    let find_42 = Event::new(
        "customer.find",
        alice.clone(),
        json!({"customer": {"id": 42}}),
    );
    let receipt = handle.request(find_42).await?;
    println!("  sent request {}", receipt.request_id);
    let done = handle
        .wait(receipt.request_id, Duration::from_secs(5))
        .await?;
    println!("  state: {:?}", done.state);
    for answer in &done.answers {
        println!(
            "  answer #{} from {} (last: {}): {}",
            answer.seq, answer.agent, answer.last, answer.payload
        );
    }

    // 4. Send now, come back later: poll says where the request stands, without waiting.
    //    This request keeps its answer for 300 ms after it completes (the default is 5 minutes).
    println!("send now, come back later:");
    let find_7 = Event::new("customer.find", alice, json!({"customer": {"id": 7}}));
    let receipt = handle
        .request_with(
            find_7,
            RequestOptions::new().keep_alive(Duration::from_millis(300)),
        )
        .await?;
    let id = receipt.request_id;
    println!("  sent request {id}");
    print_poll("poll at once", handle.poll(id));

    println!("  ... doing something else for 100 ms");
    tokio::time::sleep(Duration::from_millis(100)).await;
    print_poll("poll later", handle.poll(id));

    println!("  ... away for 500 ms (the keep-alive is 300 ms)");
    tokio::time::sleep(Duration::from_millis(500)).await;
    print_poll("poll after the keep-alive", handle.poll(id));

    let report = hub.shutdown().await;
    println!(
        "stopped: {} actions abandoned, took {:?}",
        report.actions_abandoned, report.elapsed
    );
    Ok(())
}

/// Prints what `poll` found: the request's state and answers, or that they are gone.
fn print_poll(when: &str, status: RequestStatus) {
    match status {
        RequestStatus::Known(snapshot) => {
            let answers: Vec<String> = snapshot
                .answers
                .iter()
                .map(|a| a.payload.to_string())
                .collect();
            println!(
                "  {when}: {:?}, answers: [{}]",
                snapshot.state,
                answers.join(", ")
            );
        }
        RequestStatus::Expired { .. } => {
            println!("  {when}: expired, the answers are gone");
        }
        RequestStatus::Unknown { .. } => println!("  {when}: unknown to this hub"),
        // `RequestStatus` may grow: treat anything new as "not available".
        _ => println!("  {when}: not available"),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().unwrap();
    }
}

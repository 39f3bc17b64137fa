//! Guide 04: a live feed. An agent streams prices for as long as somebody watches; the client
//! subscribes late (and gets the prices kept meanwhile), reads a few live ones, disconnects, and
//! the agent stops.
//!
//! Run it: `cargo run -p atamo-examples --example live_feed`

use std::sync::Arc;
use std::time::Duration;

use atamo_config::{Rule, RuleBook};
use atamo_core::request::{AnswerError, PartStatus, RequestStatus};
use atamo_core::rules::ProviderScope;
use atamo_core::{
    agent_fn, ActionTypeDef, AgentError, AgentSpec, Event, EventTypeDef, Hub, Principal,
    RequestOptions, RequestUpdate,
};
use serde_json::json;
use tokio::sync::Notify;

/// How often the ticker sends a price.
const TICK: Duration = Duration::from_millis(20);
/// How many unread updates a request may hold before the agent's `answer` waits.
const BUFFER: usize = 8;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 1. One rule: watching a symbol starts a `prices.stream` call on the ticker.
    let rules = RuleBook::with_rules(vec![Rule::new(
        "watch-prices",
        "prices.watch",
        "ticker",
        "prices.stream",
        json!({"symbol": "{{payload.symbol}}"}),
    )])?;

    // 2. The ticker answers again and again until the request ends. `answer` fails with
    //    `AnswerError::Ended` once the request is over; `ctx.cancelled()` interrupts the wait
    //    between two prices. (`stopped` only lets this example print in order.)
    let stopped = Arc::new(Notify::new());
    let ticker = {
        let stopped = stopped.clone();
        agent_fn(move |action, ctx| {
            let stopped = stopped.clone();
            async move {
                let symbol = action.payload()["symbol"].clone();
                let mut sent = 0u64;
                loop {
                    let price = json!({"symbol": symbol, "price": price_at(sent)});
                    match ctx.answer(price).await {
                        Ok(()) => sent += 1,
                        Err(AnswerError::Ended) => break,
                        Err(other) => return Err(AgentError::permanent(other.to_string())),
                    }
                    tokio::select! {
                        _ = tokio::time::sleep(TICK) => {}
                        _ = ctx.cancelled() => break,
                    }
                }
                println!("  [ticker] feed stopped after {sent} prices");
                stopped.notify_one();
                // The client went away: say so (the request already records this part as
                // stopped; `Cancelled` keeps the telemetry honest).
                Err(AgentError::Cancelled)
            }
        })
    };

    // 3. The hub, with a small answer buffer so that backpressure shows.
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("prices.watch").requiring(["symbol"])?)
        .action_type(ActionTypeDef::new("prices.stream"))
        .agent(AgentSpec::new("ticker", ticker).handles(["prices.stream"]))
        .provider("rules", rules, ProviderScope::AllEvents)
        .answer_buffer(BUFFER)
        .build()?;
    let handle = hub.handle();

    // 4. A live feed: cancelled when its last subscriber goes away.
    let watch = Event::new(
        "prices.watch",
        Principal::user("alice"),
        json!({"symbol": "ACME"}),
    );
    let receipt = handle
        .request_with(watch, RequestOptions::new().live_feed())
        .await?;
    let id = receipt.request_id;
    println!("watching ACME: request {id}");

    // 5. Nobody reads yet: the ticker fills the buffer, then its `answer` waits (backpressure).
    tokio::time::sleep(Duration::from_millis(300)).await;
    let kept = match handle.poll(id) {
        RequestStatus::Known(snapshot) => snapshot.answers.len(),
        _ => 0,
    };
    println!("after 300 ms with no reader: {kept} prices kept, the ticker waits");

    // 6. Subscribe late: first what was kept, then live prices.
    let mut feed = handle.subscribe(id)?;
    let mut read = 0;
    while read < 12 {
        match feed.next().await {
            Some(RequestUpdate::Answer(a)) => {
                read += 1;
                let source = if a.seq as usize <= kept {
                    "kept"
                } else {
                    "live"
                };
                println!(
                    "  #{:<2} {} {} ({source})",
                    a.seq,
                    a.payload["symbol"].as_str().unwrap_or("?"),
                    a.payload["price"]
                );
            }
            Some(RequestUpdate::Finished(state)) => {
                println!("  feed ended: {state:?}");
                break;
            }
            Some(_) => {}
            None => break,
        }
    }

    // 7. Disconnect: dropping the last subscription cancels the request and stops the ticker.
    println!("disconnecting");
    drop(feed);
    tokio::time::timeout(Duration::from_secs(2), stopped.notified()).await?;
    if let RequestStatus::Known(snapshot) = handle.poll(id) {
        let parts = snapshot.parts.iter().map(|p| match &p.status {
            PartStatus::Stopped => format!("{} stopped", p.agent),
            other => format!("{} {other:?}", p.agent),
        });
        println!(
            "request: {:?}; {}",
            snapshot.state,
            parts.collect::<Vec<_>>().join(", ")
        );
    }

    let report = hub.shutdown().await;
    println!(
        "stopped: {} actions abandoned, took {:?}",
        report.actions_abandoned, report.elapsed
    );
    Ok(())
}

/// A made-up price that moves a little with every tick.
fn price_at(tick: u64) -> f64 {
    let cents = 10_000 + (tick * 37 % 50) as i64 - 25;
    cents as f64 / 100.0
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().unwrap();
    }
}

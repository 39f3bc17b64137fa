//! Guide 08: failures. A mail agent fails; the hub retries it with backoff; when the retries
//! run out the action becomes a dead letter, the controller sees a `retries_exhausted` alert,
//! and alice — who asked to hear about her own failed orders — gets a message through a rule.
//! Then the mail server is fixed and the dead letter is sent again.
//!
//! Run it: `cargo run -p atamo-examples --example failures`

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use atamo_config::{Rule, RuleBook, Subject};
use atamo_core::failure::{RetryPolicy, EXHAUSTED_EVENT};
use atamo_core::rules::ProviderScope;
use atamo_core::{
    agent_fn, ActionTypeDef, AgentError, AgentSpec, Event, EventTypeDef, Hub, Principal, Reply,
    TelemetryKind,
};
use serde_json::json;
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 1. Rules: every order is confirmed by mail; and alice wants a note whenever one of her
    //    own actions fails for good. (Leave that rule out and failures go to the controller
    //    only: telemetry, the dead-letter store, and the `retries_exhausted` alert.)
    let rules = RuleBook::with_rules(vec![
        Rule::new(
            "confirm",
            "order.created",
            "mailer",
            "email.send",
            json!({"to": "{{payload.email}}", "order": "{{payload.order}}"}),
        ),
        Rule::new(
            "tell-alice",
            EXHAUSTED_EVENT,
            "inbox",
            "note",
            json!({"text": "Your {{payload.action_type}} failed: {{payload.error.reason}}"}),
        )
        .for_subject(Subject::User("alice".into())),
    ])?;

    // 2. A mail agent whose server is down until `fixed` is set. Its errors are retryable.
    let fixed = Arc::new(AtomicBool::new(false));
    let mailer = {
        let fixed = fixed.clone();
        agent_fn(move |action, _ctx| {
            let up = fixed.load(Ordering::SeqCst);
            async move {
                if up {
                    println!(
                        "mailer: sent {} (attempt {})",
                        action.payload(),
                        action.attempt()
                    );
                    Ok(Reply::done())
                } else {
                    Err(AgentError::retry("SMTP server unreachable"))
                }
            }
        })
    };
    let (notes_tx, mut notes) = mpsc::unbounded_channel();
    let inbox = agent_fn(move |action, _ctx| {
        let _ = notes_tx.send(action.payload()["text"].clone());
        async { Ok(Reply::done()) }
    });

    // 3. The mailer retries: 3 attempts, 50 ms doubling. (Retries are opt-in per agent, action
    //    type or rule: re-sending is only safe for an agent that treats the action id as an
    //    idempotency key.)
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("order.created"))
        .action_type(ActionTypeDef::new("email.send"))
        .action_type(ActionTypeDef::new("note"))
        .agent(
            AgentSpec::new("mailer", mailer)
                .handles(["email.send"])
                .retry(
                    RetryPolicy::attempts(3)
                        .backoff(Duration::from_millis(50), Duration::from_secs(1)),
                )
                .owner("ops@example.com"),
        )
        .agent(AgentSpec::new("inbox", inbox).handles(["note"]))
        .provider("rules", rules, ProviderScope::AllEvents)
        .build()?;
    let control = hub.control();

    // 4. The controller watches the failure steps.
    let mut telemetry = control.subscribe();
    let watcher = tokio::spawn(async move {
        while let Ok(step) = telemetry.recv().await {
            match &step.kind {
                TelemetryKind::ActionRetrying {
                    error,
                    next_attempt,
                    after,
                    ..
                } => println!("controller: {error}; attempt {next_attempt} in {after:?}"),
                TelemetryKind::ActionDeadLettered { attempts, .. } => {
                    println!("controller: dead letter after {attempts} attempts")
                }
                TelemetryKind::Alert { alert, detail, .. } => {
                    println!("controller: ALERT {alert}: {detail}")
                }
                TelemetryKind::Stopped { .. } => break,
                _ => {}
            }
        }
    });

    // 5. alice orders; the mail fails three times.
    let order = json!({"order": 7, "email": "alice@example.com"});
    hub.handle()
        .publish(Event::new("order.created", Principal::user("alice"), order))
        .await?;
    let note = tokio::time::timeout(Duration::from_secs(10), notes.recv()).await?;
    println!("alice's inbox: {}", note.unwrap_or_default());

    // 6. The dead letter waits for an operator: fix the server, send it again.
    let letters = control.dead_letters();
    anyhow::ensure!(letters.len() == 1, "one dead letter");
    println!(
        "dead letter: {} to {} failed {} times: {}",
        letters[0].action.action_type(),
        letters[0].action.agent(),
        letters[0].attempts,
        letters[0].error
    );
    fixed.store(true, Ordering::SeqCst);
    control.redrive(letters[0].action.id()).await?;

    hub.shutdown().await;
    watcher.await?;
    anyhow::ensure!(control.dead_letters().is_empty(), "redriven");
    Ok(())
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().unwrap();
    }
}

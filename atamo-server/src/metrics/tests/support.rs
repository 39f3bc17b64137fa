//! What the metric tests share: a hub whose actions end in every way, and a wait for the
//! metrics to show something.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use atamo_core::failure::RetryPolicy;
use atamo_core::rules::{PlannedAction, Proposal, ProviderScope};
use atamo_core::{
    agent_fn, ActionTypeDef, AgentError, AgentSpec, Event, EventTypeDef, Hub, Principal, Reply,
};

use super::exposition::{parse, Exposition};
use crate::metrics::Metrics;

/// Renders and parses until `pred` holds (up to 10 s).
pub(super) async fn until(
    metrics: &Metrics,
    what: &str,
    pred: impl Fn(&Exposition) -> bool,
) -> Exposition {
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    loop {
        let text = metrics.render();
        let x = parse(&text).unwrap_or_else(|e| panic!("{e}\n{text}"));
        if pred(&x) {
            return x;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "timed out waiting for {what}:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

pub(super) const N: u64 = 4;
pub(super) const MAILER_TAKES: Duration = Duration::from_millis(30);

/// Every `order.created` goes to three agents: `mailer` (succeeds after 30 ms), `flaky`
/// (fails its first attempt, retryably) and `broken` (fails for good: dead letter).
pub(super) fn orders_hub() -> Hub {
    let rules = |event: &Event, _: &Principal, out: &mut Vec<Proposal>| {
        if event.event_type().as_str() != "order.created" {
            return;
        }
        for (rule, agent, action) in [
            ("mail", "mailer", "mail"),
            ("ship", "flaky", "ship"),
            ("bill", "broken", "bill"),
        ] {
            out.push(Proposal::action(
                rule.into(),
                PlannedAction::new(agent, action, event.payload().clone()),
            ));
        }
    };
    let mailer = agent_fn(|_, _| async {
        tokio::time::sleep(MAILER_TAKES).await;
        Ok(Reply::done())
    });
    let flaky = agent_fn(|action, _| {
        std::future::ready(if action.attempt() == 1 {
            Err(AgentError::retry("warming up"))
        } else {
            Ok(Reply::done())
        })
    });
    let broken = agent_fn(|_, _| std::future::ready(Err(AgentError::permanent("no such account"))));
    Hub::builder()
        .event_type(EventTypeDef::new("order.created").requiring(["n"]).unwrap())
        .action_type(ActionTypeDef::new("mail"))
        .action_type(ActionTypeDef::new("ship"))
        .action_type(ActionTypeDef::new("bill"))
        .agent(AgentSpec::new("mailer", mailer).handles(["mail"]))
        .agent(
            AgentSpec::new("flaky", flaky).handles(["ship"]).retry(
                RetryPolicy::attempts(3)
                    .backoff(Duration::from_millis(1), Duration::from_millis(1))
                    .jitter(0.0),
            ),
        )
        .agent(AgentSpec::new("broken", broken).handles(["bill"]))
        .provider("orders", rules, ProviderScope::AllEvents)
        .build()
        .unwrap()
}

pub(super) fn alice() -> Principal {
    Principal::user("alice")
}

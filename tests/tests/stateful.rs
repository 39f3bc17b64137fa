//! A stateful hub on the in-memory store: commits before acknowledging, dedupe, durable
//! retries and dead letters, redrive through the store, the audit path, per-type and per-rule
//! durability, request answers in the result store, and actions claimed from the store.
//! (The SQLite and PostgreSQL stores pass the same store conformance suite; the crash tests
//! run the hub on them in child processes.)

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use atamo_config::Rule;
use atamo_core::agent::{AgentError, Reply};
use atamo_core::failure::RetryPolicy;
use atamo_core::hub::StoreSettings;
use atamo_core::store::{
    AcceptEvent, ActionQueue, ActionRecord, ActionState, AuditLog, AuditQuery, BatchWriter,
    Durability, EventLog, EventRecord, Maintenance, MemoryStore, NewAction, RequestResults,
    WriteBatch,
};
use atamo_core::{
    ActionId, AgentSpec, Event, EventTypeDef, Hub, HubBuilder, Principal, PublishError,
    RequestOptions,
};
use atamo_tests::orders::{notify_rule, order};
use atamo_tests::RecordingAgent;
use serde_json::json;

fn stateful(store: &Arc<MemoryStore>, rules: Vec<Rule>) -> HubBuilder {
    atamo_tests::orders::builder(&["notify"], rules).store_with(
        store.clone(),
        StoreSettings::default()
            .claim_interval(Duration::from_millis(20))
            .lease(Duration::from_secs(5)),
    )
}

/// A stateful hub sending every order to `agent` as `mailer`.
fn mailer_hub(store: &Arc<MemoryStore>, agent: &RecordingAgent) -> Hub {
    stateful(store, vec![notify_rule("mailer")])
        .agent(AgentSpec::new("mailer", agent.agent()).handles(["notify"]))
        .build()
        .unwrap()
}

/// Waits (up to 10 s) until the stored action is in `state`.
async fn until_state(store: &MemoryStore, id: ActionId, state: ActionState) {
    for _ in 0..1000 {
        if store
            .action(id)
            .await
            .unwrap()
            .is_some_and(|r| r.state == state)
        {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!(
        "action {id} never became {state:?}: {:?}",
        store.action(id).await.unwrap()
    );
}

async fn steps_of(hub: &Hub, event: atamo_core::EventId) -> Vec<String> {
    let page = hub
        .control()
        .audit(AuditQuery {
            event_id: Some(event),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    // Newest first: read back in the order they happened.
    page.items.iter().rev().map(|r| r.step.clone()).collect()
}

#[tokio::test]
async fn an_event_is_committed_before_it_is_acknowledged_and_its_path_is_audited() {
    let store = Arc::new(MemoryStore::new());
    let agent = RecordingAgent::new();
    let hub = mailer_hub(&store, &agent);
    let receipt = hub.handle().publish(order(7)).await.unwrap();
    // Acknowledged: the event is in the store already.
    let stored = store
        .event(receipt.event_id)
        .await
        .unwrap()
        .expect("stored");
    assert_eq!(stored.payload, json!({"n": 7}));
    agent.wait_for(1).await;
    let action = agent.received()[0].clone();
    assert_eq!(action.idempotency_key(), action.id());
    until_state(&store, action.id(), ActionState::Done).await;
    let row = store.action(action.id()).await.unwrap().unwrap();
    assert_eq!(row.record.payload, json!({"n": 7}));
    assert_eq!(row.attempt, 1);
    assert_eq!(
        steps_of(&hub, receipt.event_id).await,
        [
            "accepted",
            "rule_matched",
            "action_dispatched",
            "action_succeeded"
        ]
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn a_second_event_with_the_same_dedupe_key_gets_the_first_receipt() {
    let store = Arc::new(MemoryStore::new());
    let agent = RecordingAgent::new();
    let hub = mailer_hub(&store, &agent);
    let keyed = |n: u64| {
        Event::builder("order.created", Principal::user("alice"))
            .payload(json!({"n": n}))
            .dedupe_key("order-7")
            .build()
    };
    let first = hub.handle().publish(keyed(1)).await.unwrap();
    let second_event = keyed(2);
    let second_id = second_event.id();
    let second = hub.handle().publish(second_event).await.unwrap();
    assert_eq!(second, first);
    agent.wait_for(1).await;
    // Another key goes through.
    let other = Event::builder("order.created", Principal::user("alice"))
        .payload(json!({"n": 3}))
        .dedupe_key("order-8")
        .build();
    let third = hub.handle().publish(other).await.unwrap();
    assert_ne!(third, first);
    agent.wait_for(2).await;
    until_state(&store, agent.received()[0].id(), ActionState::Done).await;
    assert!(steps_of(&hub, second_id).await.is_empty(), "no audit trail");
    assert_eq!(steps_of(&hub, first.event_id).await.len(), 4);
    let report = hub.shutdown().await;
    assert!(!report.deadline_passed);
    let sent: Vec<_> = agent
        .received()
        .iter()
        .map(|a| a.payload()["n"].clone())
        .collect();
    assert_eq!(sent, [json!(1), json!(3)]);
    assert!(store.event(second_id).await.unwrap().is_none());
}

#[tokio::test]
async fn retries_and_dead_letters_are_kept_in_the_store_and_redriven_from_it() {
    let store = Arc::new(MemoryStore::new());
    let agent = RecordingAgent::new();
    let fail = Arc::new(std::sync::atomic::AtomicBool::new(true));
    let failing = fail.clone();
    let mailer = agent.agent_with(move |action| {
        if failing.load(std::sync::atomic::Ordering::SeqCst) {
            Err(AgentError::retry(format!(
                "attempt {} failed",
                action.attempt()
            )))
        } else {
            Ok(Reply::done())
        }
    });
    let hub = stateful(&store, vec![notify_rule("mailer")])
        .agent(AgentSpec::new("mailer", mailer).handles(["notify"]).retry(
            RetryPolicy::attempts(3).backoff(Duration::from_millis(10), Duration::from_millis(20)),
        ))
        .build()
        .unwrap();
    let receipt = hub.handle().publish(order(1)).await.unwrap();
    agent.wait_for(3).await;
    let id = agent.received()[0].id();
    until_state(&store, id, ActionState::Dead).await;
    let row = store.action(id).await.unwrap().unwrap();
    assert_eq!(row.attempt, 3, "each retry raised the fenced attempt");
    assert_eq!(
        row.last_error.as_ref().unwrap()["reason"],
        "attempt 3 failed"
    );
    let dead = store.dead_letters(None, 10).await.unwrap();
    assert_eq!(dead.items.len(), 1);

    fail.store(false, std::sync::atomic::Ordering::SeqCst);
    hub.control().redrive(id).await.unwrap();
    agent.wait_for(4).await;
    until_state(&store, id, ActionState::Done).await;
    let redriven = agent.received()[3].clone();
    assert_eq!(
        redriven.id(),
        id,
        "the same action, with the same idempotency key"
    );
    assert_eq!(redriven.attempt(), 4);
    let steps = steps_of(&hub, receipt.event_id).await;
    assert_eq!(
        steps,
        [
            "accepted",
            "rule_matched",
            "action_dispatched",
            "action_retrying",
            "action_retrying",
            "action_dead_lettered",
            "action_failed",
            "action_succeeded"
        ]
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn durability_is_chosen_per_event_type_and_per_rule() {
    let store = Arc::new(MemoryStore::new());
    let agent = RecordingAgent::new();
    let fast = Rule::new(
        "fast",
        "order.created",
        "mailer",
        "notify",
        json!({"fast": "{{payload.n}}"}),
    )
    .durability(Durability::Memory);
    let hub = stateful(&store, vec![notify_rule("mailer"), fast])
        .event_type(EventTypeDef::new("metrics.tick").durability(Durability::Memory))
        .action_type(atamo_core::ActionTypeDef::new("count"))
        .agent(AgentSpec::new("mailer", agent.agent()).handles(["notify", "count"]))
        .provider(
            "ticks",
            |e: &Event, _: &Principal, out: &mut Vec<atamo_core::rules::Proposal>| {
                out.push(atamo_core::rules::Proposal::action(
                    "count".into(),
                    atamo_core::rules::PlannedAction::new("mailer", "count", e.payload().clone()),
                ))
            },
            atamo_core::rules::ProviderScope::EventTypes(vec!["metrics.tick".into()]),
        )
        .build()
        .unwrap();
    let order_receipt = hub.handle().publish(order(1)).await.unwrap();
    let tick = Event::new("metrics.tick", Principal::user("alice"), json!({"v": 1}));
    let tick_receipt = hub.handle().publish(tick).await.unwrap();
    agent.wait_for(3).await;
    hub.shutdown().await;
    // The order is stored with its durable action only; the memory rule's action is not.
    let mut stored = 0;
    for a in agent.received() {
        if store.action(a.id()).await.unwrap().is_some() {
            stored += 1;
            assert_eq!(a.rule().unwrap().as_str(), "notify");
        }
    }
    assert_eq!(stored, 1);
    assert!(store.event(order_receipt.event_id).await.unwrap().is_some());
    // The memory-only type leaves no event or action behind, only its audit trail.
    assert!(store.event(tick_receipt.event_id).await.unwrap().is_none());
}

#[tokio::test]
async fn a_requests_answers_stay_in_the_result_store() {
    let store = Arc::new(MemoryStore::new());
    let finder = atamo_core::agent_fn(|action, ctx| async move {
        for row in 0..3 {
            ctx.answer(json!({"row": row})).await.unwrap();
        }
        Ok(Reply::with(
            json!({"rows": 3, "for": action.payload()["n"]}),
        ))
    });
    let hub = stateful(&store, vec![notify_rule("finder")])
        .keep_alive(Duration::from_secs(60))
        .agent(AgentSpec::new("finder", finder).handles(["notify"]))
        .build()
        .unwrap();
    let receipt = hub
        .handle()
        .request_with(order(42), RequestOptions::default())
        .await
        .unwrap();
    let done = hub
        .handle()
        .wait(receipt.request_id, Duration::from_secs(10))
        .await
        .unwrap();
    assert_eq!(done.answers.len(), 4);
    let mut kept = Vec::new();
    for _ in 0..500 {
        kept = hub
            .handle()
            .stored_answers(receipt.request_id)
            .await
            .unwrap();
        if !kept.is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(kept.len(), 1);
    assert_eq!(
        kept[0].answers,
        [json!({"row": 0}), json!({"row": 1}), json!({"row": 2})]
    );
    assert_eq!(kept[0].outcome, Ok(json!({"rows": 3, "for": 42})));
    // The request's steps carry its id in the audit log.
    let page = hub
        .control()
        .audit(AuditQuery {
            request_id: Some(receipt.request_id),
            ..AuditQuery::default()
        })
        .await
        .unwrap();
    assert!(page.items.iter().any(|r| r.step == "action_succeeded"));
    hub.shutdown().await;
}

#[tokio::test]
async fn ready_actions_in_the_store_are_claimed_and_run_with_their_idempotency_key() {
    // Actions another node left behind (its lease ended) are ready in the store.
    let store = Arc::new(MemoryStore::new());
    let mut batch = WriteBatch::default();
    let mut ids = Vec::new();
    for n in 0..5 {
        let event = EventRecord::new(
            "order.created",
            Principal::user("alice"),
            json!({"n": n}),
            atamo_core::message::Timestamp::now(),
        );
        let record = ActionRecord {
            rule: Some("notify".into()),
            provider: Some("rules".into()),
            ..ActionRecord::new(&event, "mailer", "notify", json!({"n": n.to_string()}))
        };
        ids.push(record.id);
        batch.accepts.push(AcceptEvent {
            event,
            dedupe_window: Duration::ZERO,
            actions: vec![NewAction {
                record,
                lease: None,
            }],
        });
    }
    store.write(batch).await.unwrap();
    let agent = RecordingAgent::new();
    let hub = mailer_hub(&store, &agent);
    agent.wait_for(5).await;
    for id in &ids {
        until_state(&store, *id, ActionState::Done).await;
    }
    let mut got: Vec<ActionId> = agent
        .received()
        .iter()
        .map(|a| a.idempotency_key())
        .collect();
    got.sort();
    let mut want = ids.clone();
    want.sort();
    assert_eq!(got, want);
    hub.shutdown().await;
}

#[tokio::test]
async fn an_event_the_store_cannot_take_comes_back_to_the_publisher() {
    use atamo_core::store::{
        ActionRow, AuditRecord, CheckReport, Claimed, Cursor, EventQuery, NodeId, Page,
        PruneReport, ResultRecord, Retention, StoreError, StoreStats, WriteOutcome,
    };
    use atamo_core::{async_trait, EventId, RequestId};

    /// A store that refuses every write; the rest is a memory store's.
    struct Broken(MemoryStore);
    #[async_trait]
    impl BatchWriter for Broken {
        async fn write(&self, _: WriteBatch) -> Result<WriteOutcome, StoreError> {
            Err(StoreError::unavailable("disk full"))
        }
    }
    #[async_trait]
    impl ActionQueue for Broken {
        async fn claim(
            &self,
            n: &NodeId,
            l: usize,
            d: Duration,
        ) -> Result<Vec<Claimed>, StoreError> {
            self.0.claim(n, l, d).await
        }
        async fn heartbeat(&self, n: &NodeId, d: Duration) -> Result<u64, StoreError> {
            self.0.heartbeat(n, d).await
        }
        async fn recover_expired(&self) -> Result<u64, StoreError> {
            self.0.recover_expired().await
        }
        async fn action(&self, id: ActionId) -> Result<Option<ActionRow>, StoreError> {
            self.0.action(id).await
        }
        async fn dead_letters(
            &self,
            c: Option<Cursor>,
            l: usize,
        ) -> Result<Page<ActionRow>, StoreError> {
            self.0.dead_letters(c, l).await
        }
        async fn redrive(&self, id: ActionId) -> Result<bool, StoreError> {
            self.0.redrive(id).await
        }
    }
    #[async_trait]
    impl RequestResults for Broken {
        async fn results(&self, r: RequestId) -> Result<Vec<ResultRecord>, StoreError> {
            self.0.results(r).await
        }
    }
    #[async_trait]
    impl AuditLog for Broken {
        async fn audit(&self, q: AuditQuery) -> Result<Page<AuditRecord>, StoreError> {
            self.0.audit(q).await
        }
    }
    #[async_trait]
    impl EventLog for Broken {
        async fn event(&self, id: EventId) -> Result<Option<EventRecord>, StoreError> {
            self.0.event(id).await
        }
        async fn events(&self, q: EventQuery) -> Result<Page<EventRecord>, StoreError> {
            self.0.events(q).await
        }
    }
    #[async_trait]
    impl Maintenance for Broken {
        fn backend(&self) -> &'static str {
            "broken"
        }
        async fn prune(&self, r: &Retention) -> Result<PruneReport, StoreError> {
            self.0.prune(r).await
        }
        async fn stats(&self) -> Result<StoreStats, StoreError> {
            self.0.stats().await
        }
        async fn check(&self) -> Result<CheckReport, StoreError> {
            self.0.check().await
        }
    }
    let agent = RecordingAgent::new();
    let hub = atamo_tests::orders::builder(&["notify"], vec![notify_rule("mailer")])
        .store(Arc::new(Broken(MemoryStore::new())))
        .agent(AgentSpec::new("mailer", agent.agent()).handles(["notify"]))
        .build()
        .unwrap();
    let event = order(1);
    let id = event.id();
    match hub.handle().publish(event).await {
        Err(PublishError::Store { event, error }) => {
            assert_eq!(event.id(), id);
            assert!(error.to_string().contains("disk full"), "{error}");
        }
        other => panic!("expected a store error, got {other:?}"),
    }
    hub.shutdown().await;
    assert_eq!(agent.count(), 0, "nothing of a refused event is sent");
}

#[tokio::test]
async fn the_hub_prunes_what_its_retention_no_longer_keeps_per_tenant() {
    let store = Arc::new(MemoryStore::new());
    let agent = RecordingAgent::new();
    let mut retention = atamo_core::store::Retention {
        max_age: Some(Duration::from_millis(100)),
        ..Default::default()
    };
    // The "gold" tenant keeps its history for an hour.
    retention
        .tenants
        .insert("gold".into(), Duration::from_secs(3600));
    let hub = atamo_tests::orders::builder(&["notify"], vec![notify_rule("mailer")])
        .store_with(
            store.clone(),
            StoreSettings::default()
                .retention(retention)
                .prune_interval(Duration::from_millis(20)),
        )
        .agent(AgentSpec::new("mailer", agent.agent()).handles(["notify"]))
        .build()
        .unwrap();
    let plain = hub.handle().publish(order(1)).await.unwrap();
    let gold_event = Event::new(
        "order.created",
        Principal::user("carol").in_tenant("gold"),
        json!({"n": 2}),
    );
    let gold = hub.handle().publish(gold_event).await.unwrap();
    agent.wait_for(2).await;
    let ids: Vec<ActionId> = agent.received().iter().map(|a| a.id()).collect();
    for id in &ids {
        until_state(&store, *id, ActionState::Done).await;
    }
    // Within a few prune rounds the plain event's trail is gone; gold's stays.
    let mut gone = false;
    for _ in 0..500 {
        if steps_of(&hub, plain.event_id).await.is_empty()
            && store.event(plain.event_id).await.unwrap().is_none()
        {
            gone = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(gone, "the plain event was never pruned");
    assert!(store.event(gold.event_id).await.unwrap().is_some());
    assert_eq!(steps_of(&hub, gold.event_id).await.len(), 4);
    hub.shutdown().await;
}

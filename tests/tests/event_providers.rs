//! Event providers: a custom client-facing front registers its event types, packages client
//! input into events and requests, delivers answers to clients that come back, and keeps them
//! in its own level-1 cache.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration;

use atamo_config::{Rule, RuleBook};
use atamo_core::agent::{agent_fn, Reply};
use atamo_core::async_trait;
use atamo_core::hub::{CacheSettings, EventProvider, ProviderLink};
use atamo_core::rules::ProviderScope;
use atamo_core::{
    ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal, RequestId, RequestStatus,
};
use serde_json::{json, Value};
use tokio::sync::{mpsc, oneshot};

/// One line from a client, and where to send the reply.
struct Line {
    client: String,
    text: String,
    reply: oneshot::Sender<Value>,
}

/// A tiny line protocol: `ask <type> <json>` sends a request and replies with its id;
/// `fetch <id>` replies with the request's state and answers (for clients that come back).
struct LineProvider {
    input: std::sync::Mutex<Option<mpsc::Receiver<Line>>>,
}

#[async_trait]
impl EventProvider for LineProvider {
    fn name(&self) -> &str {
        "lines"
    }

    fn event_types(&self) -> Vec<EventTypeDef> {
        vec![EventTypeDef::new("stock.level").requiring(["sku"]).unwrap()]
    }

    fn cache(&self) -> CacheSettings {
        CacheSettings::default().keep_alive(Duration::from_secs(30))
    }

    async fn run(self: Arc<Self>, link: ProviderLink) {
        let mut input = self.input.lock().unwrap().take().expect("run once");
        loop {
            let line = tokio::select! {
                line = input.recv() => match line { Some(l) => l, None => return },
                _ = link.stopped() => return,
            };
            let reply = handle(&link, &line.client, &line.text).await;
            let _ = line.reply.send(reply);
        }
    }
}

async fn handle(link: &ProviderLink, client: &str, text: &str) -> Value {
    let mut words = text.splitn(3, ' ');
    match (words.next(), words.next(), words.next()) {
        (Some("ask"), Some(event_type), Some(payload)) => {
            let payload: Value = match serde_json::from_str(payload) {
                Ok(v) => v,
                Err(e) => return json!({"error": e.to_string()}),
            };
            let event = Event::new(event_type, Principal::user(client), payload);
            match link.hub().request(event).await {
                Ok(r) => json!({"request": r.request_id.to_string()}),
                Err(e) => json!({"error": e.to_string()}),
            }
        }
        (Some("fetch"), Some(id), None) => match id.parse::<RequestId>() {
            Ok(id) => serde_json::to_value(link.hub().poll(id)).unwrap(),
            Err(e) => json!({"error": e.to_string()}),
        },
        _ => json!({"error": format!("cannot parse {text:?}")}),
    }
}

async fn say(tx: &mpsc::Sender<Line>, client: &str, text: &str) -> Value {
    let (reply, answer) = oneshot::channel();
    tx.send(Line {
        client: client.into(),
        text: text.into(),
        reply,
    })
    .await
    .unwrap();
    answer.await.unwrap()
}

#[tokio::test(start_paused = true)]
async fn a_custom_provider_serves_requests_and_keeps_answers_in_its_own_cache() {
    let stock = agent_fn(|action, _| async move {
        Ok(Reply::with(
            json!({"sku": action.payload()["sku"], "level": 12}),
        ))
    });
    let hub = Hub::builder()
        .action_type(ActionTypeDef::new("lookup"))
        .agent(AgentSpec::new("stock", stock).handles(["lookup"]))
        .keep_alive(Duration::from_secs(3600))
        .build()
        .unwrap();
    let (tx, rx) = mpsc::channel(8);
    let control = hub.control();
    control
        .attach(LineProvider {
            input: std::sync::Mutex::new(Some(rx)),
        })
        .unwrap();
    // The provider brought its event type; rules can use it.
    assert!(control
        .event_types()
        .iter()
        .any(|t| t.name.as_str() == "stock.level"));
    assert_eq!(control.event_providers(), ["lines"]);
    control
        .register_provider(
            "rules",
            RuleBook::with_rules(vec![Rule::new(
                "stock",
                "stock.level",
                "stock",
                "lookup",
                json!({"sku": "{{payload.sku}}"}),
            )])
            .unwrap(),
            ProviderScope::AllEvents,
        )
        .unwrap();

    // A client asks and disconnects; it comes back later with the id.
    let asked = say(&tx, "carol", r#"ask stock.level {"sku": "A-1"}"#).await;
    let id: RequestId = asked["request"].as_str().unwrap().parse().unwrap();
    let mut fetched = json!(null);
    for _ in 0..100 {
        fetched = say(&tx, "carol", &format!("fetch {id}")).await;
        if fetched["state"] == "complete" {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert_eq!(fetched["status"], "known");
    assert_eq!(fetched["state"], "complete");
    assert_eq!(
        fetched["answers"][0]["payload"],
        json!({"sku": "A-1", "level": 12})
    );

    // Bad input is answered with an error naming the problem.
    let bad = say(&tx, "carol", r#"ask stock.level {"size": 1}"#).await;
    assert!(bad["error"].as_str().unwrap().contains("`sku`"), "{bad}");

    // The answers live in the provider's cache, not the in-process one...
    assert!(matches!(
        hub.handle().poll(id),
        RequestStatus::Unknown { .. }
    ));
    // ...with the provider's keep-alive (30 s), not the hub's (1 h).
    tokio::time::sleep(Duration::from_secs(31)).await;
    let gone = say(&tx, "carol", &format!("fetch {id}")).await;
    assert_eq!(gone["status"], "expired");

    // A second provider of the same name is refused.
    let (_tx2, rx2) = mpsc::channel(1);
    let dup = control
        .attach(LineProvider {
            input: std::sync::Mutex::new(Some(rx2)),
        })
        .unwrap_err();
    assert!(dup
        .to_string()
        .contains("event provider `lines` is already registered"));

    // Shutdown tells the provider to stop; it returns and nothing waits for the deadline.
    let report = hub.shutdown().await;
    assert!(!report.deadline_passed);
}

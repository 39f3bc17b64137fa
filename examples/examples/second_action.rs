//! Guide 07: a second action for another user. Two rules on the same event type: alice's orders
//! are created in the shop's REST API (POST, alice's token); bob's make the API look the customer
//! up instead (GET, bob's token). One built-in HTTP agent does both; the rules decide the action,
//! the credential provider decides whose token goes with it.
//!
//! Run it: `cargo run -p atamo-examples --example second_action`

use std::sync::Arc;
use std::time::Duration;

use atamo_agents::builtin::http::HttpAgent;
use atamo_agents::builtin::ConfigCredentials;
use atamo_config::{Rule, RuleBook, Subject};
use atamo_core::rules::ProviderScope;
use atamo_core::{ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal};
use serde_json::json;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    // 0. A stand-in for the shop's REST API on 127.0.0.1 (see `fake_api` below). It records what
    //    it receives so that we can print it at the end.
    let api = fake_api::start()?;

    // 1. Credentials: per agent, per user. In a real program these come from a configuration
    //    file or a vault (implement `CredentialProvider`).
    let credentials: ConfigCredentials = serde_json::from_value(json!({
        "shop-api": {
            "alice": {"token": "alice-token"},
            "bob": {"token": "bob-token"}
        }
    }))?;

    // 2. The HTTP agent: where the API is. Every action's path goes below `base_url`.
    let config = json!({
        "base_url": format!("{}/v1", api.base_url()),
        "headers": {"Accept": "application/json"},
        "timeout_ms": 5000
    });
    let shop = HttpAgent::from_config("shop-api", &config, Arc::new(credentials))?;

    // 3. Two rules on the same event type, each for one user, each with its own action.
    let rules = RuleBook::with_rules(vec![
        // alice's orders are created in the shop (the agent's default method is POST).
        Rule::new(
            "alice-creates-orders",
            "order.created",
            "shop-api",
            "http.request",
            json!({
                "path": "/orders",
                "body": {
                    "id": "{{payload.order.id}}",
                    "customer": "{{payload.customer}}",
                    "placed_by": "{{user}}"
                }
            }),
        )
        .for_subject(Subject::User("alice".into())),
        // bob's make the shop look the customer up.
        Rule::new(
            "bob-checks-customers",
            "order.created",
            "shop-api",
            "http.request",
            json!({
                "method": "GET",
                "path": "/customers/{{payload.customer}}",
                "query": {"order": "{{payload.order.id}}"}
            }),
        )
        .for_subject(Subject::User("bob".into())),
    ])?;

    // 4. The hub.
    let hub = Hub::builder()
        .event_type(EventTypeDef::new("order.created").requiring(["order.id", "customer"])?)
        .action_type(ActionTypeDef::new("http.request"))
        .agent(
            AgentSpec::new("shop-api", shop)
                .handles(["http.request"])
                .metadata(config),
        )
        .provider("rules", rules, ProviderScope::AllEvents)
        .build()?;
    let handle = hub.handle();

    // 5. The same event, sent by alice, by bob, and by carol (whom no rule mentions).
    for user in ["alice", "bob", "carol"] {
        let event = Event::new(
            "order.created",
            Principal::user(user),
            json!({"order": {"id": 7}, "customer": "c-42"}),
        );
        for planned in handle.dry_run(&event).actions() {
            println!("{user}: the rules plan {}", planned.payload);
        }
        let receipt = handle.request(event).await?;
        let done = handle
            .wait(receipt.request_id, Duration::from_secs(10))
            .await?;
        println!("{user}: {}", done.state);
        for answer in &done.answers {
            println!("  [{}] {}", answer.agent, answer.payload);
        }
    }

    // 6. What the API received: alice's POST with her token, bob's GET with his.
    println!("the API received:");
    let received = api.received();
    for request in &received {
        println!("  {request}");
    }
    hub.shutdown().await;

    anyhow::ensure!(
        received.len() == 2,
        "expected two requests, got {received:?}"
    );
    anyhow::ensure!(
        received[0].line == "POST /v1/orders"
            && received[0].authorization == "Bearer alice-token"
            && received[0].body.contains("\"placed_by\":\"alice\""),
        "alice's request: {:?}",
        received[0]
    );
    anyhow::ensure!(
        received[1].line == "GET /v1/customers/c-42?order=7"
            && received[1].authorization == "Bearer bob-token",
        "bob's request: {:?}",
        received[1]
    );
    Ok(())
}

/// A tiny HTTP/1.1 server on 127.0.0.1 with two routes, standing in for a real REST API:
/// `POST /v1/orders` and `GET /v1/customers/{id}`. It answers one request per connection and
/// records each. (Your program talks to an API that already exists; this only makes the
/// example self-contained.)
mod fake_api {
    use std::fmt;
    use std::io::{BufRead, BufReader, Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::{Arc, Mutex};

    /// One request as the server saw it.
    #[derive(Debug, Clone)]
    pub struct Received {
        /// Method and target, such as `GET /v1/customers/c-42?order=7`.
        pub line: String,
        /// The `Authorization` header ("" when absent).
        pub authorization: String,
        /// The body.
        pub body: String,
    }

    impl fmt::Display for Received {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            write!(f, "{}  (Authorization: {})", self.line, self.authorization)?;
            if !self.body.is_empty() {
                write!(f, "  {}", self.body)?;
            }
            Ok(())
        }
    }

    pub struct FakeApi {
        base_url: String,
        received: Arc<Mutex<Vec<Received>>>,
    }

    impl FakeApi {
        pub fn base_url(&self) -> &str {
            &self.base_url
        }

        pub fn received(&self) -> Vec<Received> {
            self.received.lock().map(|r| r.clone()).unwrap_or_default()
        }
    }

    pub fn start() -> std::io::Result<FakeApi> {
        let listener = TcpListener::bind("127.0.0.1:0")?;
        let base_url = format!("http://{}", listener.local_addr()?);
        let received = Arc::new(Mutex::new(Vec::new()));
        let log = Arc::clone(&received);
        // The thread ends with the program.
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let _ = serve(stream, &log);
            }
        });
        Ok(FakeApi { base_url, received })
    }

    /// Reads one request, records it, then answers.
    fn serve(stream: TcpStream, log: &Mutex<Vec<Received>>) -> std::io::Result<()> {
        let mut reader = BufReader::new(stream.try_clone()?);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let mut words = line.split_whitespace();
        let (method, target) = (words.next().unwrap_or(""), words.next().unwrap_or(""));
        let (mut length, mut authorization) = (0, String::new());
        loop {
            let mut header = String::new();
            reader.read_line(&mut header)?;
            let header = header.trim_end();
            if header.is_empty() {
                break;
            }
            if let Some((name, value)) = header.split_once(':') {
                match name.to_ascii_lowercase().as_str() {
                    "content-length" => length = value.trim().parse().unwrap_or(0),
                    "authorization" => authorization = value.trim().to_owned(),
                    _ => {}
                }
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body)?;
        if let Ok(mut log) = log.lock() {
            log.push(Received {
                line: format!("{method} {target}"),
                authorization,
                body: String::from_utf8_lossy(&body).into_owned(),
            });
        }
        let path = target.split('?').next().unwrap_or("");
        let (status, extra, answer) = match (method, path) {
            ("POST", "/v1/orders") => (
                "201 Created",
                "Location: /v1/orders/7\r\n",
                r#"{"order":7,"status":"accepted"}"#.to_owned(),
            ),
            ("GET", customer) if customer.starts_with("/v1/customers/") => (
                "200 OK",
                "",
                format!(
                    r#"{{"id":"{}","name":"Carol","open_orders":[7]}}"#,
                    &customer["/v1/customers/".len()..]
                ),
            ),
            _ => (
                "404 Not Found",
                "",
                r#"{"error":"no such route"}"#.to_owned(),
            ),
        };
        let mut stream = stream;
        write!(
            stream,
            "HTTP/1.1 {status}\r\nContent-Type: application/json\r\n{extra}Content-Length: {}\r\nConnection: close\r\n\r\n{answer}",
            answer.len()
        )?;
        stream.flush()
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_example_runs() {
        super::main().unwrap();
    }
}

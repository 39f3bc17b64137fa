//! The built-in email agent against a real SMTP receiver on loopback (the sink in
//! `support_email`): a rule's template fills the mail from the event, the sink receives exactly
//! that mail; login with the agent's credentials; how failures are classified; bad
//! configurations.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support_email;

use std::sync::Arc;
use std::time::Duration;

use atamo_agents::builtin::email::EmailAgent;
use atamo_agents::builtin::{
    ConfigCredentials, Credential, CredentialProvider, NoCredentials, Secret,
};
use atamo_config::{Rule, RuleBook};
use atamo_core::agent::AgentError;
use atamo_core::failure::RetryPolicy;
use atamo_core::request::{PartStatus, RequestSnapshot};
use atamo_core::rules::ProviderScope;
use atamo_core::{ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal, RequestState};
use serde_json::{json, Value};
use support_email::{Behaviour, Sink};

const WAIT: Duration = Duration::from_secs(10);

fn config(port: u16) -> Value {
    json!({"host": "127.0.0.1", "port": port, "tls": "none",
           "sender": "Atamo <hub@example.com>", "timeout_ms": 5000})
}

/// A hub where `order.created` sends one `email.send` action, made by `template`, to `mailer`.
fn hub(agent: EmailAgent, template: Value, retry: Option<RetryPolicy>) -> Hub {
    let rules = RuleBook::with_rules(vec![Rule::new(
        "confirm",
        "order.created",
        "mailer",
        "email.send",
        template,
    )])
    .unwrap();
    let mut spec = AgentSpec::new("mailer", agent)
        .handles(["email.send"])
        .metadata(json!({"kind": "email"}))
        .retry(RetryPolicy::none());
    if let Some(policy) = retry {
        spec = spec.retry(policy);
    }
    Hub::builder()
        .event_type(EventTypeDef::new("order.created"))
        .action_type(ActionTypeDef::new("email.send"))
        .agent(spec)
        .provider("rules", rules, ProviderScope::AllEvents)
        .build()
        .unwrap()
}

fn confirmation_template() -> Value {
    json!({
        "to": "{{payload.customer.email}}",
        "subject": "Order {{payload.order.id}} confirmed",
        "body": "Hello {{payload.customer.name}},\nyour order {{payload.order.id}} is confirmed.\n.\n.hidden line\n..two dots\n-- Atamo"
    })
}

fn order(user: &str) -> Event {
    Event::new(
        "order.created",
        Principal::user(user),
        json!({"order": {"id": 42}, "customer": {"email": "carol@example.com", "name": "Zoë Ørsted"}}),
    )
}

/// Sends `event` as a request and waits for it to end.
async fn run(hub: &Hub, event: Event) -> RequestSnapshot {
    let h = hub.handle();
    let receipt = h.request(event).await.unwrap();
    h.wait(receipt.request_id, WAIT).await.unwrap()
}

/// The error of the request's only part.
fn failure(done: &RequestSnapshot) -> AgentError {
    assert_eq!(done.state, RequestState::Failed, "{done:?}");
    match &done.parts[0].status {
        PartStatus::Failed { error } => error.clone(),
        other => panic!("expected a failed part, got {other:?}"),
    }
}

fn email_agent(port: u16, creds: Arc<dyn CredentialProvider>, login: bool) -> EmailAgent {
    let mut c = config(port);
    c["login"] = json!(login);
    EmailAgent::from_config("mailer", &c, creds).unwrap()
}

#[tokio::test]
async fn a_rule_fills_the_mail_from_the_event_and_the_sink_receives_exactly_it() {
    let sink = Sink::start(Behaviour::default()).await;
    let hub = hub(
        email_agent(sink.port(), Arc::new(NoCredentials), false),
        confirmation_template(),
        None,
    );
    let done = run(&hub, order("alice")).await;
    assert_eq!(done.state, RequestState::Complete, "{done:?}");

    // The answer: who was accepted, and the Message-ID (made from the action id).
    assert_eq!(done.answers.len(), 1);
    let answer = &*done.answers[0].payload;
    assert_eq!(answer["accepted"], json!(["carol@example.com"]));
    let message_id = answer["message_id"].as_str().unwrap();
    assert_eq!(
        message_id,
        format!("<{}@example.com>", done.parts[0].action)
    );

    let mails = sink.messages();
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.from, "hub@example.com", "envelope sender");
    assert_eq!(mail.to, ["carol@example.com"], "envelope recipients");
    assert_eq!(mail.auth, None, "no login was asked for");
    assert_eq!(mail.header("From").unwrap(), "Atamo <hub@example.com>");
    assert_eq!(mail.header("To").unwrap(), "carol@example.com");
    assert_eq!(mail.header("Subject").unwrap(), "Order 42 confirmed");
    assert_eq!(mail.header("Message-ID").unwrap(), message_id);
    assert!(mail.header("Date").is_some());
    assert!(mail
        .header("Content-Type")
        .unwrap()
        .starts_with("text/plain"));
    // Non-ASCII text and lines starting with a dot (one of them a lone dot, which would end
    // the DATA early if the client did not dot-stuff it) arrive intact.
    assert_eq!(
        mail.text_body().trim_end(),
        "Hello Zoë Ørsted,\nyour order 42 is confirmed.\n.\n.hidden line\n..two dots\n-- Atamo"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn several_recipients_cc_bcc_and_an_html_part() {
    let sink = Sink::start(Behaviour::default()).await;
    let template = json!({
        "to": ["{{payload.customer.email}}", "Dave Example <dave@example.com>"],
        "cc": "erin@example.com, frank@example.com",
        "bcc": ["audit@example.com"],
        "subject": "Order {{payload.order.id}}",
        "body": "plain text",
        "html": "<p>Order <b>{{payload.order.id}}</b></p>"
    });
    let hub = hub(
        email_agent(sink.port(), Arc::new(NoCredentials), false),
        template,
        None,
    );
    let done = run(&hub, order("alice")).await;
    assert_eq!(done.state, RequestState::Complete, "{done:?}");
    let all = [
        "carol@example.com",
        "dave@example.com",
        "erin@example.com",
        "frank@example.com",
        "audit@example.com",
    ];
    let mut accepted: Vec<String> =
        serde_json::from_value(done.answers[0].payload["accepted"].clone()).unwrap();
    accepted.sort();
    let mut expected = all.map(String::from).to_vec();
    expected.sort();
    assert_eq!(accepted, expected);

    let mail = &sink.messages()[0];
    let mut rcpt = mail.to.clone();
    rcpt.sort();
    assert_eq!(rcpt, expected, "every recipient is in the envelope");
    assert_eq!(
        mail.header("To").unwrap(),
        "carol@example.com, \"Dave Example\" <dave@example.com>"
    );
    assert_eq!(
        mail.header("Cc").unwrap(),
        "erin@example.com, frank@example.com"
    );
    assert_eq!(mail.header("Bcc"), None, "Bcc stays out of the headers");
    assert!(mail
        .header("Content-Type")
        .unwrap()
        .starts_with("multipart/alternative"));
    assert!(mail.data.contains("text/html"));
    assert!(mail.data.contains("<p>Order <b>42</b></p>"));
    hub.shutdown().await;
}

#[tokio::test]
async fn it_logs_in_with_the_credential_of_the_user_it_acts_for() {
    let sink = Sink::start(Behaviour {
        auth: Some(("hub".into(), "s3cret-hub".into())),
        ..Behaviour::default()
    })
    .await;
    let creds = ConfigCredentials::new()
        .with(
            "mailer",
            "*",
            Credential::Password {
                user: "hub".into(),
                password: Secret::new("s3cret-hub"),
            },
        )
        .with(
            "mailer",
            "mallory",
            Credential::Password {
                user: "mallory".into(),
                password: Secret::new("wrong-pass"),
            },
        );
    let hub = hub(
        email_agent(sink.port(), Arc::new(creds), true),
        confirmation_template(),
        None,
    );

    // alice has no credential of her own: the agent's ("*") one is used.
    let done = run(&hub, order("alice")).await;
    assert_eq!(done.state, RequestState::Complete, "{done:?}");
    let mails = sink.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].auth,
        Some(("hub".to_owned(), "s3cret-hub".to_owned()))
    );

    // mallory's own credential is used for her, and the server refuses it (535): permanent,
    // and the password is nowhere in the error.
    let done = run(&hub, order("mallory")).await;
    let error = failure(&done);
    assert!(matches!(error, AgentError::Permanent { .. }), "{error:?}");
    let text = format!(
        "{error} {error:?} {}",
        serde_json::to_string(&error).unwrap()
    );
    assert!(text.contains("535"), "{text}");
    assert!(!text.contains("wrong-pass"), "{text}");
    assert_eq!(
        sink.logins().last().unwrap(),
        &("mallory".to_owned(), "wrong-pass".to_owned())
    );
    assert_eq!(sink.messages().len(), 1, "nothing more was sent");
    hub.shutdown().await;
}

#[tokio::test]
async fn login_without_a_credential_is_permanent() {
    let sink = Sink::start(Behaviour::default()).await;
    let hub = hub(
        email_agent(sink.port(), Arc::new(NoCredentials), true),
        confirmation_template(),
        None,
    );
    let error = failure(&run(&hub, order("alice")).await);
    assert!(
        matches!(&error, AgentError::Permanent { reason } if reason.contains("`alice`")),
        "{error:?}"
    );
    assert_eq!(sink.connections(), 0);
    hub.shutdown().await;
}

#[tokio::test]
async fn a_bad_action_is_permanent_and_names_the_field() {
    let sink = Sink::start(Behaviour::default()).await;
    for (template, field) in [
        (
            json!({"to": "not an address", "subject": "s", "body": "b"}),
            "`to`",
        ),
        (
            json!({"to": ["carol@example.com", "carol at example"], "subject": "s", "body": "b"}),
            "`to[1]`",
        ),
        (
            json!({"to": "carol@example.com", "cc": "@nowhere", "subject": "s", "body": "b"}),
            "`cc`",
        ),
        (json!({"to": "carol@example.com", "body": "b"}), "`subject`"),
        (
            json!({"to": "carol@example.com", "subject": "s", "body": "b", "from": "boss@example.com"}),
            "`from`",
        ),
    ] {
        let hub = hub(
            email_agent(sink.port(), Arc::new(NoCredentials), false),
            template.clone(),
            Some(RetryPolicy::attempts(3)),
        );
        let error = failure(&run(&hub, order("alice")).await);
        match &error {
            AgentError::Permanent { reason } => {
                assert!(reason.contains(field), "{field} not named in {reason}")
            }
            other => panic!("{template}: expected permanent, got {other:?}"),
        }
        hub.shutdown().await;
    }
    assert_eq!(sink.connections(), 0, "no bad mail reached the server");
}

#[tokio::test]
async fn a_451_on_rcpt_is_retryable_and_a_550_permanent() {
    for (reply, retryable) in [
        ("451 4.3.0 mailbox busy, try later", true),
        ("550 5.1.1 no such user", false),
    ] {
        let sink = Sink::start(Behaviour {
            rcpt_reply: Some(reply.into()),
            ..Behaviour::default()
        })
        .await;
        let hub = hub(
            email_agent(sink.port(), Arc::new(NoCredentials), false),
            confirmation_template(),
            None,
        );
        let error = failure(&run(&hub, order("alice")).await);
        assert_eq!(error.is_retryable(), retryable, "{reply}: {error:?}");
        assert!(
            matches!(&error, AgentError::Retry { reason, .. } | AgentError::Permanent { reason } if reason.contains(&reply[..3])),
            "{error:?}"
        );
        assert!(sink.messages().is_empty());
        hub.shutdown().await;
    }
}

#[tokio::test]
async fn a_deferred_mail_is_sent_on_the_retry() {
    let sink = Sink::start(Behaviour {
        rcpt_reply: Some("451 4.7.1 greylisted, come back later".into()),
        rcpt_failures: 1,
        ..Behaviour::default()
    })
    .await;
    let retry =
        RetryPolicy::attempts(3).backoff(Duration::from_millis(10), Duration::from_millis(50));
    let hub = hub(
        email_agent(sink.port(), Arc::new(NoCredentials), false),
        confirmation_template(),
        Some(retry),
    );
    let done = run(&hub, order("alice")).await;
    assert_eq!(done.state, RequestState::Complete, "{done:?}");
    assert_eq!(sink.connections(), 2);
    let mails = sink.messages();
    assert_eq!(mails.len(), 1);
    assert_eq!(
        mails[0].header("Message-ID").unwrap(),
        done.answers[0].payload["message_id"].as_str().unwrap(),
        "the retry sends the same Message-ID"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn a_closed_port_is_retryable() {
    let port = {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        listener.local_addr().unwrap().port()
    };
    let hub = hub(
        email_agent(port, Arc::new(NoCredentials), false),
        confirmation_template(),
        None,
    );
    let error = failure(&run(&hub, order("alice")).await);
    assert!(matches!(error, AgentError::Retry { .. }), "{error:?}");
    hub.shutdown().await;
}

#[tokio::test]
async fn a_silent_server_times_out_retryably() {
    let sink = Sink::start(Behaviour {
        silent: true,
        ..Behaviour::default()
    })
    .await;
    let mut c = config(sink.port());
    c["timeout_ms"] = json!(300);
    let agent = EmailAgent::from_config("mailer", &c, Arc::new(NoCredentials)).unwrap();
    let hub = hub(agent, confirmation_template(), None);
    let started = std::time::Instant::now();
    let error = failure(&run(&hub, order("alice")).await);
    assert!(error.is_retryable(), "{error:?}");
    assert!(
        matches!(error, AgentError::Timeout { .. } | AgentError::Retry { .. }),
        "{error:?}"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    hub.shutdown().await;
}

#[test]
fn a_bad_config_names_every_problem() {
    let bad = json!({
        "host": "",
        "port": 70000,
        "tls": "ssl",
        "sender": "not a mailbox",
        "timeout_ms": 0,
        "login": "yes",
        "password": "hunter2"
    });
    let e = EmailAgent::from_config("mailer", &bad, Arc::new(NoCredentials)).unwrap_err();
    assert_eq!((e.agent.as_str(), e.kind), ("mailer", "email"));
    let all = e.problems.join("\n");
    for field in [
        "`host`",
        "`port`",
        "`tls`",
        "`sender`",
        "`timeout_ms`",
        "`login`",
        "password",
    ] {
        assert!(all.contains(field), "{field} not named in:\n{all}");
    }
    assert!(e.problems.len() >= 7, "{all}");

    let missing =
        EmailAgent::from_config("mailer", &json!({}), Arc::new(NoCredentials)).unwrap_err();
    let all = missing.problems.join("\n");
    assert!(all.contains("host") && all.contains("sender"), "{all}");

    // The defaults: STARTTLS on port 587, a 30 s timeout, no login.
    let ok = EmailAgent::from_config(
        "mailer",
        &json!({"host": "smtp.example.com", "sender": "hub@example.com"}),
        Arc::new(NoCredentials),
    )
    .unwrap();
    let c = ok.config();
    assert_eq!(
        (c.port, c.tls, c.timeout_ms, c.login),
        (
            None,
            atamo_agents::builtin::email::TlsMode::Starttls,
            30_000,
            false
        )
    );
}

//! The built-in SQL agent against a real SQLite file and a real PostgreSQL server on loopback:
//! named statements and routines fed by rule templates, parameters bound (an injection attempt
//! is stored as plain text), long results streamed as feeds, failures classed as retryable or
//! permanent, and bad configurations refused with every problem named.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support_sql;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use atamo_agents::builtin::sql::SqlAgent;
use atamo_agents::builtin::{ConfigCredentials, Credential, NoCredentials, Secret};
use atamo_config::{Rule, RuleBook};
use atamo_core::agent::AgentError;
use atamo_core::request::{PartStatus, RequestSnapshot};
use atamo_core::rules::ProviderScope;
use atamo_core::{ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal, RequestState};
use serde_json::{json, Value};
use support_sql::{free_port, Pg};

const WAIT: Duration = Duration::from_secs(30);
const INJECTION: &str = "x'); DROP TABLE notes; --";

/// A hub where events of type `run` go to the SQL agent `db` through a rule with `template`.
fn hub(agent: SqlAgent, template: Value) -> Hub {
    let rule = Rule::new("run-sql", "run", "db", "sql", template);
    Hub::builder()
        .event_type(EventTypeDef::new("run"))
        .action_type(ActionTypeDef::new("sql"))
        .provider(
            "rules",
            RuleBook::with_rules(vec![rule]).unwrap(),
            ProviderScope::AllEvents,
        )
        .agent(
            AgentSpec::new("db", agent)
                .handles(["sql"])
                .retry(atamo_core::failure::RetryPolicy::none()),
        )
        .build()
        .unwrap()
}

/// Sends a `run` request for `user` and waits for it to end.
async fn run(hub: &Hub, user: &str, payload: Value) -> RequestSnapshot {
    let h = hub.handle();
    let receipt = h
        .request(Event::new("run", Principal::user(user), payload))
        .await
        .unwrap();
    h.wait(receipt.request_id, WAIT).await.unwrap()
}

fn answers(done: &RequestSnapshot) -> Vec<Value> {
    done.answers.iter().map(|a| (*a.payload).clone()).collect()
}

/// The rows of a completed request: every answer but the final `{"rows": n}`.
fn rows(done: &RequestSnapshot) -> Vec<Value> {
    assert_eq!(
        done.state,
        RequestState::Complete,
        "request failed: {:?}",
        done.parts
    );
    let mut all = answers(done);
    let last = all.pop().expect("a final answer");
    assert_eq!(
        last,
        json!({"rows": all.len()}),
        "the final reply counts the rows"
    );
    all
}

/// The error a failed request's one part ended with.
fn failure(done: &RequestSnapshot) -> AgentError {
    match &done.parts[0].status {
        PartStatus::Failed { error } => error.clone(),
        other => panic!(
            "expected a failure, got {other:?} with answers {:?}",
            answers(done)
        ),
    }
}

fn reason(e: &AgentError) -> String {
    match e {
        AgentError::Retry { reason, .. } | AgentError::Permanent { reason } => reason.clone(),
        other => panic!("expected a retry or a permanent failure, got {other:?}"),
    }
}

fn temp_db(name: &str) -> (PathBuf, PathBuf) {
    let dir = std::env::temp_dir().join(format!(
        "atamo-sql-{name}-{}-{}",
        std::process::id(),
        fastrand_u64()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    let db = dir.join("notes.db");
    (dir, db)
}

fn fastrand_u64() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn sqlite_agent(db: &std::path::Path) -> SqlAgent {
    let config = json!({"sqlite": {
        "path": db,
        "statements": {
            "add_note": "INSERT INTO notes(author, body) VALUES (?1, ?2)",
            "add_note_named": "INSERT INTO notes(author, body) VALUES (:author, :body)",
            "notes_by": "SELECT id, author, body FROM notes WHERE author = :author ORDER BY id",
            "numbers": "SELECT n, 'row ' || n AS label FROM numbers WHERE n <= ?1 ORDER BY n"
        }
    }});
    SqlAgent::from_config("db", &config, Arc::new(NoCredentials)).unwrap()
}

fn create_notes(db: &std::path::Path) {
    let conn = rusqlite::Connection::open(db).unwrap();
    conn.execute_batch(
        "CREATE TABLE notes(id INTEGER PRIMARY KEY, author TEXT NOT NULL, body TEXT NOT NULL);",
    )
    .unwrap();
}

// ---------------------------------------------------------------------------------------------
// SQLite

#[tokio::test]
async fn sqlite_named_statement_inserts_through_a_rule_and_an_injection_stays_text() {
    let (dir, db) = temp_db("insert");
    create_notes(&db);
    let hub = hub(
        sqlite_agent(&db),
        json!({"statement": "add_note", "params": ["{{user}}", "{{payload.body}}"]}),
    );

    let done = run(&hub, "alice", json!({"body": "hello, world"})).await;
    assert_eq!(
        rows(&done),
        Vec::<Value>::new(),
        "an INSERT returns no rows"
    );
    let done = run(&hub, "bob", json!({"body": INJECTION})).await;
    assert_eq!(done.state, RequestState::Complete, "{:?}", done.parts);
    // A plain event (no request, nobody to answer) runs the statement too.
    hub.handle()
        .publish(Event::new(
            "run",
            Principal::user("carol"),
            json!({"body": "by event"}),
        ))
        .await
        .unwrap();
    let count = || {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT count(*) FROM notes", [], |r| r.get::<_, i64>(0))
            .unwrap()
    };
    let start = std::time::Instant::now();
    while count() < 3 {
        assert!(start.elapsed() < WAIT, "the event's insert never happened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    hub.shutdown().await;

    // Read back directly: the table is there, the attempt is plain text.
    let conn = rusqlite::Connection::open(&db).unwrap();
    let mut stmt = conn
        .prepare("SELECT author, body FROM notes ORDER BY id")
        .unwrap();
    let stored: Vec<(String, String)> = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect();
    assert_eq!(
        stored,
        [
            ("alice".to_owned(), "hello, world".to_owned()),
            ("bob".to_owned(), INJECTION.to_owned()),
            ("carol".to_owned(), "by event".to_owned()),
        ]
    );
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn sqlite_named_parameters_are_bound_by_name_and_rows_come_back_as_objects() {
    let (dir, db) = temp_db("named");
    create_notes(&db);
    let agent = sqlite_agent(&db);
    let hub = hub(agent, json!("{{payload}}"));

    for body in ["one", INJECTION, "two"] {
        let done = run(
            &hub,
            "alice",
            json!({"statement": "add_note_named", "params": {"author": "{{user}}", "body": body}}),
        )
        .await;
        assert_eq!(done.state, RequestState::Complete, "{:?}", done.parts);
    }
    // `{{user}}` inside the payload is data, not a template: stored as written.
    let done = run(
        &hub,
        "alice",
        json!({"statement": "notes_by", "params": {"author": "{{user}}"}}),
    )
    .await;
    assert_eq!(
        rows(&done),
        [
            json!({"id": 1, "author": "{{user}}", "body": "one"}),
            json!({"id": 2, "author": "{{user}}", "body": INJECTION}),
            json!({"id": 3, "author": "{{user}}", "body": "two"}),
        ]
    );
    hub.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn sqlite_a_long_result_is_a_feed_in_order() {
    let (dir, db) = temp_db("stream");
    {
        let mut conn = rusqlite::Connection::open(&db).unwrap();
        conn.execute_batch("CREATE TABLE numbers(n INTEGER PRIMARY KEY)")
            .unwrap();
        let tx = conn.transaction().unwrap();
        for n in 1..=1500 {
            tx.execute("INSERT INTO numbers(n) VALUES (?1)", [n])
                .unwrap();
        }
        tx.commit().unwrap();
    }
    let hub = hub(
        sqlite_agent(&db),
        json!({"statement": "numbers", "params": ["{{payload.upto}}"]}),
    );
    let h = hub.handle();
    let receipt = h
        .request(Event::new(
            "run",
            Principal::user("alice"),
            json!({"upto": 1000}),
        ))
        .await
        .unwrap();
    // Read it as a feed: each row arrives as its own answer, not the last one, in order.
    let mut sub = h.subscribe(receipt.request_id).unwrap();
    let mut seen = Vec::new();
    while let Some(update) = tokio::time::timeout(WAIT, sub.next()).await.unwrap() {
        if let atamo_core::RequestUpdate::Answer(a) = update {
            seen.push((a.seq, a.last, (*a.payload).clone()));
        }
    }
    assert_eq!(seen.len(), 1001);
    for (i, (seq, last, payload)) in seen.iter().take(1000).enumerate() {
        let n = i as u64 + 1;
        assert_eq!(*seq, n);
        assert!(!last);
        assert_eq!(*payload, json!({"n": n, "label": format!("row {n}")}));
    }
    assert_eq!(seen[1000].2, json!({"rows": 1000}));
    assert!(seen[1000].1, "the count is the last answer");
    hub.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn sqlite_a_cancelled_feed_stops_reading() {
    let (dir, db) = temp_db("cancel");
    let config = json!({"sqlite": {
        "path": db,
        "statements": {"endless": "WITH RECURSIVE c(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM c) SELECT n FROM c"}
    }});
    let agent = SqlAgent::from_config("db", &config, Arc::new(NoCredentials)).unwrap();
    let hub = hub(agent, json!({"statement": "endless"}));
    let h = hub.handle();
    let receipt = h
        .request(Event::new("run", Principal::user("alice"), json!({})))
        .await
        .unwrap();
    let mut sub = h.subscribe(receipt.request_id).unwrap();
    let mut got = 0;
    while got < 10 {
        if let Some(atamo_core::RequestUpdate::Answer(a)) =
            tokio::time::timeout(WAIT, sub.next()).await.unwrap()
        {
            got += 1;
            assert_eq!(*a.payload, json!({"n": got}));
        }
    }
    assert!(h.cancel(receipt.request_id));
    let done = h.wait(receipt.request_id, WAIT).await.unwrap();
    assert_eq!(done.state, RequestState::Cancelled);
    assert_ne!(
        done.parts[0].status,
        PartStatus::Running,
        "{:?}",
        done.parts
    );
    // The hub stops promptly: the endless statement is no longer being read.
    tokio::time::timeout(WAIT, hub.shutdown()).await.unwrap();
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test]
async fn sqlite_bad_actions_and_sql_errors_are_permanent_and_named() {
    let (dir, db) = temp_db("errors");
    create_notes(&db);
    let hub = hub(sqlite_agent(&db), json!("{{payload}}"));

    let cases = [
        (
            json!({"statement": "nope", "params": []}),
            "no statement named `nope`",
        ),
        (json!({"params": ["a", "b"]}), "field `statement`: required"),
        (
            json!({"statement": "add_note", "params": ["a"]}),
            "takes 2 parameter(s), got 1",
        ),
        (
            json!({"statement": "add_note", "params": "a"}),
            "field `params`: expected an array or an object",
        ),
        (
            json!({"statement": "add_note", "params": [], "sql": "DROP TABLE notes"}),
            "field `sql`: unknown",
        ),
        (
            json!({"statement": "add_note_named", "params": {"author": "a"}}),
            "field `params.body`: missing",
        ),
        (
            json!({"statement": "add_note_named", "params": {"author": "a", "body": "b", "x": 1}}),
            "no parameter(s) `x`",
        ),
        // NOT NULL constraint: the database's message.
        (
            json!({"statement": "add_note", "params": ["a", null]}),
            "NOT NULL constraint failed: notes.body",
        ),
    ];
    for (payload, expected) in cases {
        let done = run(&hub, "alice", payload.clone()).await;
        let error = failure(&done);
        assert!(
            matches!(error, AgentError::Permanent { .. }),
            "{payload}: {error:?}"
        );
        assert!(reason(&error).contains(expected), "{payload}: {error:?}");
    }
    // A missing table is a SQL error too.
    std::fs::remove_file(&db).unwrap();
    let done = run(
        &hub,
        "alice",
        json!({"statement": "add_note", "params": ["a", "b"]}),
    )
    .await;
    let error = failure(&done);
    assert!(matches!(error, AgentError::Permanent { .. }), "{error:?}");
    assert!(reason(&error).contains("no such table: notes"), "{error:?}");
    // A database that cannot be opened is retryable.
    let bad = SqlAgent::from_config(
        "db",
        &json!({"sqlite": {"path": dir.join("missing-dir/x.db"), "statements": {"s": "SELECT 1"}}}),
        Arc::new(NoCredentials),
    )
    .unwrap();
    let hub2 = self::hub(bad, json!({"statement": "s"}));
    let error = failure(&run(&hub2, "alice", json!({})).await);
    assert!(matches!(error, AgentError::Retry { .. }), "{error:?}");
    hub.shutdown().await;
    hub2.shutdown().await;
    std::fs::remove_dir_all(dir).unwrap();
}

// ---------------------------------------------------------------------------------------------
// PostgreSQL

/// A fresh schema for one test, with a `notes` table.
/// Creates procedure `<schema>.add_note(who, body, stars)`, inserting into `<schema>.notes`.
async fn create_add_note(client: &tokio_postgres::Client, s: &str) {
    client
        .batch_execute(&format!(
            "CREATE PROCEDURE {s}.add_note(who text, body text, stars integer)
             LANGUAGE sql AS $$
                 INSERT INTO {s}.notes(author, body, stars) VALUES (who, body, stars)
             $$;"
        ))
        .await
        .unwrap();
}

async fn pg_schema(pg: &Pg, name: &str) -> (tokio_postgres::Client, String) {
    let client = pg.client().await;
    let schema = format!("t_{name}_{}", fastrand_u64());
    client
        .batch_execute(&format!(
            "CREATE SCHEMA {schema};
             CREATE TABLE {schema}.notes(id serial PRIMARY KEY, author text NOT NULL,
                                         body text NOT NULL, stars integer NOT NULL DEFAULT 0);"
        ))
        .await
        .unwrap();
    (client, schema)
}

fn pg_agent(pg: &Pg, call: &str, routine: &str) -> SqlAgent {
    let config = json!({"postgres": {"url": pg.url, "call": call, "routine": routine}});
    SqlAgent::from_config("db", &config, Arc::new(NoCredentials)).unwrap()
}

#[tokio::test]
async fn postgres_a_set_returning_function_with_parameters_is_a_feed() {
    let pg = Pg::start();
    let (client, s) = pg_schema(&pg, "feed").await;
    client
        .batch_execute(&format!(
            "CREATE FUNCTION {s}.series(who text, n integer, scale numeric)
             RETURNS TABLE(i integer, label text, scaled numeric, at date, tags jsonb)
             LANGUAGE sql AS $$
                 SELECT g, who || ' #' || g, g * scale, DATE '2024-01-01' + g,
                        jsonb_build_object('even', g % 2 = 0)
                 FROM generate_series(1, n) AS g
             $$;"
        ))
        .await
        .unwrap();
    let hub = hub(
        pg_agent(&pg, "function", &format!("{s}.series")),
        json!({"params": ["{{user}}", "{{payload.n}}", "{{payload.scale}}"]}),
    );
    let done = run(&hub, "alice", json!({"n": 500, "scale": 1.5})).await;
    let rows = rows(&done);
    assert_eq!(rows.len(), 500);
    assert_eq!(
        rows[0],
        json!({"i": 1, "label": "alice #1", "scaled": 1.5, "at": "2024-01-02", "tags": {"even": false}})
    );
    for (k, row) in rows.iter().enumerate() {
        assert_eq!(row["i"], json!(k + 1), "in order");
        assert_eq!(row["label"], json!(format!("alice #{}", k + 1)));
    }
    assert_eq!(rows[499]["tags"], json!({"even": true}));

    // Named notation, and an injection attempt as a parameter: just text.
    let hub2 = self::hub(
        pg_agent(&pg, "function", &format!("{s}.series")),
        json!({"params": {"n": 2, "who": "{{payload.who}}", "scale": "{{payload.scale}}"}}),
    );
    let done = run(&hub2, "bob", json!({"who": INJECTION, "scale": "2"})).await;
    let rows = self::rows(&done);
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["label"], json!(format!("{INJECTION} #2")));
    assert_eq!(rows[1]["scaled"], json!(4));
    hub.shutdown().await;
    hub2.shutdown().await;
}

#[tokio::test]
async fn postgres_a_procedure_with_parameters_acts_and_an_injection_is_stored_as_text() {
    let pg = Pg::start();
    let (client, s) = pg_schema(&pg, "proc").await;
    create_add_note(&client, &s).await;
    let hub = hub(
        pg_agent(&pg, "procedure", &format!("{s}.add_note")),
        json!({"params": ["{{user}}", "{{payload.body}}", "{{payload.stars}}"]}),
    );
    let done = run(&hub, "alice", json!({"body": "hello", "stars": 5})).await;
    assert_eq!(
        rows(&done),
        Vec::<Value>::new(),
        "a procedure without OUT values: no rows"
    );
    let done = run(&hub, "bob", json!({"body": INJECTION, "stars": "3"})).await;
    assert_eq!(done.state, RequestState::Complete, "{:?}", done.parts);
    hub.shutdown().await;

    let stored: Vec<(String, String, i32)> = client
        .query(
            &format!("SELECT author, body, stars FROM {s}.notes ORDER BY id"),
            &[],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1), r.get(2)))
        .collect();
    assert_eq!(
        stored,
        [
            ("alice".to_owned(), "hello".to_owned(), 5),
            ("bob".to_owned(), INJECTION.to_owned(), 3),
        ]
    );
    // The table is still there and still holds both rows.
    let count: i64 = client
        .query_one(&format!("SELECT count(*) FROM {s}.notes"), &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(count, 2);
}

#[tokio::test]
async fn postgres_a_procedure_returns_its_out_values() {
    let pg = Pg::start();
    let (client, s) = pg_schema(&pg, "out").await;
    client
        .batch_execute(&format!(
            "CREATE PROCEDURE {s}.add_and_count(who text, body text, INOUT total bigint DEFAULT NULL,
                                                INOUT echo jsonb DEFAULT NULL)
             LANGUAGE plpgsql AS $$
             BEGIN
                 INSERT INTO {s}.notes(author, body) VALUES (who, body);
                 SELECT count(*) INTO total FROM {s}.notes;
                 echo := jsonb_build_object('who', who);
             END $$;"
        ))
        .await
        .unwrap();
    let hub = hub(
        pg_agent(&pg, "procedure", &format!("{s}.add_and_count")),
        json!({"params": {"who": "{{user}}", "body": "{{payload.body}}"}}),
    );
    let done = run(&hub, "carol", json!({"body": "hi"})).await;
    assert_eq!(rows(&done), [json!({"total": 1, "echo": {"who": "carol"}})]);
    hub.shutdown().await;
}

#[tokio::test]
async fn postgres_sql_errors_are_permanent_with_the_database_message() {
    let pg = Pg::start();
    let (client, s) = pg_schema(&pg, "errors").await;
    create_add_note(&client, &s).await;
    let proc = format!("{s}.add_note");
    let hub = hub(pg_agent(&pg, "procedure", &proc), json!("{{payload}}"));
    let cases = [
        // A constraint: the NOT NULL column.
        (
            json!({"params": ["a", null, 1]}),
            "null value in column \"body\"",
        ),
        // A value that does not fit the parameter's type.
        (
            json!({"params": ["a", "b", "many"]}),
            "invalid input syntax for type integer: \"many\"",
        ),
        // No such routine for these arguments.
        (json!({"params": ["a"]}), "does not exist"),
        // The action's own problems.
        (json!({"statement": "x", "params": []}), "field `statement`"),
        (
            json!({"params": {"a b": 1}}),
            "`a b` is not a parameter name",
        ),
    ];
    for (payload, expected) in cases {
        let error = failure(&run(&hub, "alice", payload.clone()).await);
        assert!(
            matches!(error, AgentError::Permanent { .. }),
            "{payload}: {error:?}"
        );
        assert!(reason(&error).contains(expected), "{payload}: {error:?}");
    }
    // A routine that does not exist.
    let missing = self::hub(
        pg_agent(&pg, "function", &format!("{s}.nothing_here")),
        json!({"params": []}),
    );
    let error = failure(&run(&missing, "alice", json!({})).await);
    assert!(matches!(error, AgentError::Permanent { .. }), "{error:?}");
    assert!(reason(&error).contains("does not exist"), "{error:?}");
    hub.shutdown().await;
    missing.shutdown().await;
}

#[tokio::test]
async fn postgres_an_unreachable_server_is_retryable() {
    let port = free_port();
    let config = json!({"postgres": {
        "url": format!("host=127.0.0.1 port={port} user=atamo password=hunter2 dbname=postgres"),
        "call": "function",
        "routine": "public.anything",
        "connect_timeout_ms": 2000
    }});
    let agent = SqlAgent::from_config("db", &config, Arc::new(NoCredentials)).unwrap();
    assert!(!format!("{agent:?}").contains("hunter2"));
    let hub = hub(agent, json!({"params": ["{{user}}"]}));
    let error = failure(&run(&hub, "alice", json!({})).await);
    assert!(matches!(error, AgentError::Retry { .. }), "{error:?}");
    assert!(
        !reason(&error).contains("hunter2"),
        "no secret in errors: {error:?}"
    );
    hub.shutdown().await;
}

#[tokio::test]
async fn postgres_logs_in_as_the_events_user_when_a_password_is_configured() {
    let pg = Pg::start();
    let (client, s) = pg_schema(&pg, "login").await;
    let role = format!("{s}_alice");
    client
        .batch_execute(&format!(
            "CREATE ROLE {role} LOGIN PASSWORD 'pw';
             GRANT USAGE ON SCHEMA {s} TO {role};
             CREATE FUNCTION {s}.whoami() RETURNS text LANGUAGE sql AS $$ SELECT current_user::text $$;"
        ))
        .await
        .unwrap();
    let creds = ConfigCredentials::new()
        .with(
            "db",
            "alice",
            Credential::Password {
                user: role.clone(),
                password: Secret::new("pw"),
            },
        )
        .with("db", "mallory", Credential::Token(Secret::new("t")));
    let config =
        json!({"postgres": {"url": pg.url, "call": "function", "routine": format!("{s}.whoami")}});
    let agent = SqlAgent::from_config("db", &config, Arc::new(creds)).unwrap();
    let hub = hub(agent, json!({"params": []}));
    assert_eq!(
        rows(&run(&hub, "alice", json!({})).await),
        [json!({"whoami": role})]
    );
    assert_eq!(
        rows(&run(&hub, "bob", json!({})).await),
        [json!({"whoami": "atamo"})],
        "no credential: the connection string's user"
    );
    let error = failure(&run(&hub, "mallory", json!({})).await);
    assert!(reason(&error).contains("not a password"), "{error:?}");
    hub.shutdown().await;
}

// ---------------------------------------------------------------------------------------------
// Configuration

fn problems(config: Value) -> Vec<String> {
    let e = SqlAgent::from_config("db", &config, Arc::new(NoCredentials)).unwrap_err();
    assert_eq!((e.agent.as_str(), e.kind), ("db", "sql"));
    e.problems
}

#[test]
fn a_bad_configuration_names_every_problem() {
    let p = problems(json!({"postgres": {
        "url": "host=127.0.0.1 port=notaport password=hunter2",
        "call": "trigger",
        "routine": "notes; DROP TABLE notes",
        "connect_timeout_ms": "soon",
        "tls": true
    }}));
    let all = p.join("\n");
    for expected in [
        "`postgres.call`",
        "`postgres.routine`",
        "`postgres.url`",
        "`postgres.connect_timeout_ms`",
        "`postgres.tls`",
    ] {
        assert!(all.contains(expected), "{expected} not named in:\n{all}");
    }
    assert!(
        !all.contains("hunter2"),
        "the password is never repeated:\n{all}"
    );

    let p = problems(json!({"sqlite": {"statements": {}, "busy": 1}})).join("\n");
    for expected in ["`sqlite.path`", "`sqlite.statements`", "`sqlite.busy`"] {
        assert!(p.contains(expected), "{expected} not named in:\n{p}");
    }

    let p = problems(json!({})).join("\n");
    assert!(p.contains("exactly one of `sqlite` or `postgres`"), "{p}");
    let p = problems(json!({
        "sqlite": {"path": "/tmp/x.db", "statements": {"a": "SELECT 1"}},
        "postgres": {"url": "host=h", "call": "function", "routine": "f"}
    }))
    .join("\n");
    assert!(p.contains("got both"), "{p}");
    let p = problems(json!({"mysql": {}})).join("\n");
    assert!(p.contains("`mysql`") && p.contains("exactly one"), "{p}");
    let p =
        problems(json!({"postgres": {"url": "user=x", "call": "function", "routine": "a.b.c"}}))
            .join("\n");
    assert!(p.contains("names no host") && p.contains("`a.b.c`"), "{p}");

    // And good ones pass.
    for good in [
        json!({"sqlite": {"path": "/tmp/x.db", "statements": {"a": "SELECT 1"}, "busy_timeout_ms": 10}}),
        json!({"postgres": {"url": "postgresql://u@127.0.0.1:5432/db", "call": "procedure", "routine": "_p1"}}),
        json!({"postgres": {"url": "host=127.0.0.1", "call": "function", "routine": "crm.find_customers"}}),
    ] {
        SqlAgent::from_config("db", &good, Arc::new(NoCredentials)).unwrap();
    }
}

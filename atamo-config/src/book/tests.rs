use std::sync::Arc;

use super::*;
use serde_json::json;

fn alice_event() -> Event {
    Event::new(
        "order.created",
        Principal::user("alice").in_group("sales").in_tenant("acme"),
        json!({"customer": {"id": 42, "email": "a@example.com"}}),
    )
}

fn rule(id: &str, subject: Subject, template: Value) -> Rule {
    Rule::new(id, "order.created", "mailer", "email.send", template).for_subject(subject)
}

fn evaluate(book: &RuleBook, event: &Event) -> Vec<Proposal> {
    let mut out = Vec::new();
    book.evaluate(event, event.principal(), &mut out);
    out
}

fn ids(proposals: &[Proposal]) -> Vec<&str> {
    proposals.iter().map(|p| p.rule.as_str()).collect()
}

#[test]
fn evaluate_proposes_every_matching_rule_in_order() {
    let constant = json!({"text": "hello"});
    let book = RuleBook::with_rules(vec![
        rule(
            "anyone",
            Subject::Anyone,
            json!({"to": "{{payload.customer.email}}"}),
        ),
        rule("bob", Subject::User("bob".into()), json!({})),
        rule("sales", Subject::Group("sales".into()), constant.clone()),
        Rule::new(
            "other-type",
            "order.paid",
            "mailer",
            "email.send",
            json!({}),
        ),
        rule(
            "acme",
            Subject::Tenant("acme".into()),
            json!({"id": "{{payload.customer.id}}"}),
        ),
        rule("globex", Subject::Tenant("globex".into()), json!({})),
        rule(
            "broken",
            Subject::User("alice".into()),
            json!({"p": "{{payload.phone}}"}),
        ),
    ])
    .unwrap();
    let event = alice_event();
    let out = evaluate(&book, &event);
    assert_eq!(ids(&out), ["anyone", "sales", "acme", "broken"]);

    assert_eq!(
        out[0].outcome,
        Ok(PlannedAction::new(
            "mailer",
            "email.send",
            json!({"to": "a@example.com"})
        ))
    );
    assert_eq!(
        out[2].outcome,
        Ok(PlannedAction::new(
            "mailer",
            "email.send",
            json!({"id": 42})
        ))
    );
    assert_eq!(
        out[3].outcome,
        Err(RuleError::MissingField {
            rule: RuleId::new("broken"),
            field: "payload.phone".into(),
        })
    );

    // A constant template's payload is shared, not copied.
    let again = evaluate(&book, &event);
    let (Ok(a), Ok(b)) = (&out[1].outcome, &again[1].outcome) else {
        panic!("expected actions: {out:?}");
    };
    assert_eq!(*a.payload, constant);
    assert!(Arc::ptr_eq(&a.payload, &b.payload));

    let bob = Event::new("order.created", Principal::user("bob"), json!({}));
    let out = evaluate(&book, &bob);
    assert_eq!(ids(&out), ["anyone", "bob"]);
    assert!(out[0].outcome.is_err(), "bob's payload has no customer");
}

#[test]
fn insert_upsert_remove_and_list() {
    let book = RuleBook::new();
    assert!(book.is_empty());
    book.insert(rule("r1", Subject::Anyone, json!({"n": 1})))
        .unwrap();
    book.insert(rule("r2", Subject::Anyone, json!({"n": 2})))
        .unwrap();
    let err = book
        .insert(rule("r1", Subject::Anyone, json!({})))
        .unwrap_err();
    assert_eq!(
        err.problems,
        [RuleProblem::DuplicateId {
            rule: RuleId::new("r1")
        }]
    );
    assert_eq!(err.to_string(), "rule `r1` is defined more than once");

    let old = book
        .upsert(rule("r1", Subject::Anyone, json!({"n": 10})))
        .unwrap();
    assert_eq!(old.map(|r| r.template), Some(json!({"n": 1})));
    assert_eq!(
        book.upsert(rule("r3", Subject::Anyone, json!({"n": 3})))
            .unwrap(),
        None
    );
    let listed: Vec<Value> = book.list().into_iter().map(|r| r.template).collect();
    assert_eq!(listed, [json!({"n": 10}), json!({"n": 2}), json!({"n": 3})]);

    // A clone is a handle to the same rules.
    let handle = book.clone();
    assert_eq!(
        handle.remove(&RuleId::new("r2")).map(|r| r.template),
        Some(json!({"n": 2}))
    );
    assert_eq!(handle.remove(&RuleId::new("r2")), None);
    assert_eq!(book.len(), 2);
    assert_eq!(
        book.get(&RuleId::new("r3")).map(|r| r.template),
        Some(json!({"n": 3}))
    );
    assert_eq!(ids(&evaluate(&book, &alice_event())), ["r1", "r3"]);

    let bad = book.upsert(rule("r1", Subject::Anyone, json!("{{nope}}")));
    assert!(bad.is_err());
    assert_eq!(
        book.get(&RuleId::new("r1")).map(|r| r.template),
        Some(json!({"n": 10})),
        "a failed upsert changes nothing"
    );
}

#[test]
fn replace_all_is_atomic_and_lists_every_problem() {
    let book = RuleBook::with_rules(vec![rule("keep", Subject::Anyone, json!({}))]).unwrap();
    let snapshot = book.snapshot();

    let err = book
        .replace_all(vec![
            rule("a", Subject::Anyone, json!({})),
            rule(
                "b",
                Subject::Anyone,
                json!({"body": {"to": "{{payload.email"}}),
            ),
            rule("a", Subject::Anyone, json!({})),
            rule("c", Subject::Anyone, json!({"x": ["{{who}}"]})),
            Rule::new("d", "order.created", "", "email.send", json!({})),
            rule("a", Subject::Anyone, json!({})),
        ])
        .unwrap_err();
    assert_eq!(err.problems.len(), 4, "{err}");
    assert!(
        matches!(&err.problems[0], RuleProblem::Template { rule, source }
        if rule.as_str() == "b" && source.path() == "body.to")
    );
    assert_eq!(
        err.problems[1],
        RuleProblem::DuplicateId {
            rule: RuleId::new("a")
        }
    );
    assert!(
        matches!(&err.problems[2], RuleProblem::Template { rule, source }
        if rule.as_str() == "c" && source.path() == "x.0")
    );
    assert!(
        matches!(&err.problems[3], RuleProblem::InvalidName { rule, .. }
        if rule.as_str() == "d")
    );
    let text = err.to_string();
    assert_eq!(text.matches("; ").count(), 3, "{text}");
    assert!(
        text.starts_with("rule `b`: template at `body.to`: field reference `{{payload.email`"),
        "{text}"
    );
    assert!(text.contains("rule `d`: agent id is empty"), "{text}");

    // Nothing changed.
    assert!(Arc::ptr_eq(&snapshot, &book.snapshot()));
    assert_eq!(book.list(), [rule("keep", Subject::Anyone, json!({}))]);

    book.replace_all(vec![
        rule("x", Subject::Anyone, json!({})),
        rule("y", Subject::Anyone, json!({})),
    ])
    .unwrap();
    assert_eq!(ids(&evaluate(&book, &alice_event())), ["x", "y"]);
    // The old snapshot is still whole for whoever holds it.
    assert_eq!(snapshot.len(), 1);
}

#[test]
fn rules_are_listed_with_their_definition() {
    let book = RuleBook::with_rules(vec![rule(
        "r1",
        Subject::Group("sales".into()),
        json!({"to": "{{user}}"}),
    )])
    .unwrap();
    let infos = book.rules();
    assert_eq!(infos.len(), 1);
    assert_eq!(infos[0].id.as_str(), "r1");
    assert_eq!(
        infos[0].event_type.as_ref().map(EventType::as_str),
        Some("order.created")
    );
    assert_eq!(
        infos[0].definition,
        json!({
            "id": "r1", "event_type": "order.created", "group": "sales",
            "agent": "mailer", "action": "email.send", "template": {"to": "{{user}}"},
        })
    );
}

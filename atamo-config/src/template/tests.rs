//! Tests of template compilation and rendering.
use super::*;
use serde_json::json;

fn event() -> Event {
    Event::new(
        "order.created",
        Principal::user("alice")
            .in_group("sales")
            .in_group("emea")
            .in_tenant("acme"),
        json!({
            "customer": {"id": 42, "email": "a@example.com", "gone": null},
            "items": [{"sku": "A-1", "qty": 2}],
            "total": 19.5,
            "paid": true,
            "meta": {"k": [1, "v"]},
        }),
    )
}

fn render(template: Value, event: &Event) -> Result<Value, MissingField> {
    ActionTemplate::compile(&template).unwrap().render(event)
}

#[test]
fn whole_reference_keeps_the_json_type() {
    let e = event();
    assert_eq!(render(json!("{{payload.customer.id}}"), &e), Ok(json!(42)));
    assert_eq!(render(json!("{{ payload.total }}"), &e), Ok(json!(19.5)));
    assert_eq!(render(json!("{{payload.paid}}"), &e), Ok(json!(true)));
    assert_eq!(
        render(json!("{{payload.items}}"), &e),
        Ok(json!([{"sku": "A-1", "qty": 2}]))
    );
    assert_eq!(
        render(json!("{{payload.customer}}"), &e),
        Ok(json!({"id": 42, "email": "a@example.com", "gone": null}))
    );
    assert_eq!(
        render(json!("{{groups}}"), &e),
        Ok(json!(["sales", "emea"]))
    );
    assert_eq!(render(json!("{{payload}}"), &e), Ok(e.payload().clone()));
}

#[test]
fn embedded_references_render_as_text() {
    let e = event();
    assert_eq!(
        render(
            json!("{{user}}@{{ tenant }}: customer {{payload.customer.id}} ({{payload.customer.email}})"),
            &e
        ),
        Ok(json!("alice@acme: customer 42 (a@example.com)"))
    );
    assert_eq!(
        render(
            json!("meta {{payload.meta}} in {{groups}}, paid: {{payload.paid}}"),
            &e
        ),
        Ok(json!(
            r#"meta {"k":[1,"v"]} in ["sales","emea"], paid: true"#
        ))
    );
    assert_eq!(
        render(json!(" {{payload.total}}"), &e),
        Ok(json!(" 19.5")),
        "surrounding text makes it a string"
    );
}

#[test]
fn event_fields_render() {
    let e = event();
    assert_eq!(
        render(
            json!({"type": "{{event_type}}", "id": "{{event_id}}", "c": "c={{correlation_id}}"}),
            &e
        ),
        Ok(json!({
            "type": "order.created",
            "id": e.id().to_string(),
            "c": format!("c={}", e.correlation_id()),
        }))
    );
}

#[test]
fn nested_objects_and_arrays_render_and_keys_stay_literal() {
    let e = event();
    let out = render(
        json!({
            "{{user}}": "literal key",
            "body": {
                "to": ["{{payload.customer.email}}", "ops@example.com"],
                "lines": [{"sku": "{{payload.items.0.sku}}", "qty": "{{payload.items.0.qty}}"}],
                "fixed": {"a": [1, 2, null]},
            },
            "n": 3,
        }),
        &e,
    );
    assert_eq!(
        out,
        Ok(json!({
            "{{user}}": "literal key",
            "body": {
                "to": ["a@example.com", "ops@example.com"],
                "lines": [{"sku": "A-1", "qty": 2}],
                "fixed": {"a": [1, 2, null]},
            },
            "n": 3,
        }))
    );
}

#[test]
fn missing_fields_are_named() {
    let e = event();
    assert_eq!(
        render(json!({"to": "{{payload.customer.phone}}"}), &e),
        Err(MissingField {
            field: "payload.customer.phone".into()
        })
    );
    assert_eq!(
        render(json!("call {{payload.items.3.sku}}"), &e),
        Err(MissingField {
            field: "payload.items.3.sku".into()
        })
    );
}

#[test]
fn null_counts_as_missing() {
    let e = event();
    assert_eq!(
        render(json!("{{payload.customer.gone}}"), &e),
        Err(MissingField {
            field: "payload.customer.gone".into()
        })
    );
    assert_eq!(
        render(json!("x{{payload.customer.gone}}"), &e),
        Err(MissingField {
            field: "payload.customer.gone".into()
        })
    );
}

#[test]
fn tenant_is_missing_without_one() {
    let e = Event::new("order.created", Principal::user("bob"), json!({}));
    let err = MissingField {
        field: "tenant".into(),
    };
    assert_eq!(render(json!("{{tenant}}"), &e), Err(err.clone()));
    assert_eq!(render(json!(["t={{tenant}}"]), &e), Err(err));
    assert_eq!(render(json!("{{groups}}"), &e), Ok(json!([])));
}

#[test]
fn unclosed_reference_names_path_and_reference() {
    let err = ActionTemplate::compile(&json!({"body": {"to": "x {{payload.email"}})).unwrap_err();
    assert_eq!(
        err,
        TemplateError::Unclosed {
            path: "body.to".into(),
            reference: "{{payload.email".into(),
        }
    );
    assert_eq!(
        err.to_string(),
        "template at `body.to`: field reference `{{payload.email` is not closed with `}}`"
    );
}

#[test]
fn unknown_root_names_path_and_reference() {
    let err = ActionTemplate::compile(&json!({"items": ["ok", {"who": "{{ customer.id }}"}]}))
        .unwrap_err();
    assert_eq!(
        err,
        TemplateError::UnknownRoot {
            path: "items.1.who".into(),
            reference: "{{ customer.id }}".into(),
            root: "customer".into(),
        }
    );
    let text = err.to_string();
    assert!(text.starts_with("template at `items.1.who`: field reference `{{ customer.id }}` has unknown root `customer`"), "{text}");
    assert_eq!(err.path(), "items.1.who");
}

#[test]
fn other_bad_references_are_rejected() {
    for (template, reason) in [
        ("{{}}", "it is empty"),
        ("{{ user.name }}", "`user` has no fields"),
        ("{{payload..x}}", "has an empty segment"),
    ] {
        let err = ActionTemplate::compile(&json!(template)).unwrap_err();
        match &err {
            TemplateError::InvalidReference {
                path, reference, ..
            } => {
                assert_eq!(path, "");
                assert_eq!(reference, template);
            }
            other => panic!("unexpected {other:?}"),
        }
        assert!(err.to_string().contains(reason), "{err}");
        assert!(err.to_string().starts_with("template root:"), "{err}");
    }
}

#[test]
fn fields_lists_payload_paths_once_in_order() {
    let t = ActionTemplate::compile(&json!({
        "a": "{{payload.customer.id}} {{user}}",
        "b": ["{{payload.total}}", "{{payload}}", "{{payload.customer.id}}"],
    }))
    .unwrap();
    let fields: Vec<&str> = t.fields().iter().map(FieldPath::as_str).collect();
    assert_eq!(fields, ["customer.id", "total"]);
    assert!(!t.is_constant());
}

#[test]
fn constant_templates_share_one_value() {
    let t =
        ActionTemplate::compile(&json!({"text": "no field references }} here", "n": [1]})).unwrap();
    assert!(t.is_constant());
    let e = event();
    let a = t.render_shared(&e).unwrap();
    let b = t.render_shared(&e).unwrap();
    assert!(Arc::ptr_eq(&a, &b));
    assert_eq!(*a, json!({"text": "no field references }} here", "n": [1]}));
}

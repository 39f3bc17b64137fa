//! Checks init metadata against the JSON schema a plugin declares for a kind.
//!
//! Written here rather than taken from a JSON-Schema crate: plugins (including ones written in
//! C) declare small schemas, the host needs only the keywords below, and an error must name the
//! field at fault in the hub's own words. The full validators pull in regex engines and
//! network resolvers for a few dozen lines of checks. Unknown keywords are ignored, as JSON
//! Schema says.
//!
//! Supported: `type` (one or a list), `properties`, `required`, `additionalProperties` (a
//! boolean or a schema), `items`, `enum`, `const`, `minimum`, `maximum`, `minLength`,
//! `maxLength`, `minItems`, `maxItems`.

use serde_json::Value;

/// Every way `value` fails `schema`, each naming the field (`label`, `servers[2].port`, or
/// `(root)`).
pub fn check(value: &Value, schema: &Value) -> Vec<String> {
    let mut problems = Vec::new();
    walk(value, schema, "", &mut problems);
    problems
}

fn field(path: &str) -> String {
    if path.is_empty() {
        "(root)".to_owned()
    } else {
        format!("`{path}`")
    }
}

fn type_name(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_type(value: &Value, name: &str) -> bool {
    let actual = type_name(value);
    actual == name || (name == "number" && actual == "integer")
}

fn walk(value: &Value, schema: &Value, path: &str, problems: &mut Vec<String>) {
    let Some(schema) = schema.as_object() else {
        return;
    };
    if let Some(expected) = schema.get("type") {
        let names: Vec<&str> = match expected {
            Value::String(s) => vec![s.as_str()],
            Value::Array(list) => list.iter().filter_map(Value::as_str).collect(),
            _ => Vec::new(),
        };
        if !names.is_empty() && !names.iter().any(|n| is_type(value, n)) {
            problems.push(format!(
                "field {}: expected {}, got {}",
                field(path),
                names.join(" or "),
                type_name(value)
            ));
            return;
        }
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array) {
        if !allowed.contains(value) {
            problems.push(format!(
                "field {}: {} is not one of {}",
                field(path),
                value,
                Value::Array(allowed.clone())
            ));
        }
    }
    if let Some(expected) = schema.get("const") {
        if expected != value {
            problems.push(format!("field {}: must be {expected}", field(path)));
        }
    }
    if let Some(n) = value.as_f64() {
        if let Some(min) = schema.get("minimum").and_then(Value::as_f64) {
            if n < min {
                problems.push(format!(
                    "field {}: {n} is below the minimum {min}",
                    field(path)
                ));
            }
        }
        if let Some(max) = schema.get("maximum").and_then(Value::as_f64) {
            if n > max {
                problems.push(format!(
                    "field {}: {n} is above the maximum {max}",
                    field(path)
                ));
            }
        }
    }
    if let Some(s) = value.as_str() {
        let len = s.chars().count() as u64;
        if let Some(min) = schema.get("minLength").and_then(Value::as_u64) {
            if len < min {
                problems.push(format!(
                    "field {}: shorter than {min} characters",
                    field(path)
                ));
            }
        }
        if let Some(max) = schema.get("maxLength").and_then(Value::as_u64) {
            if len > max {
                problems.push(format!(
                    "field {}: longer than {max} characters",
                    field(path)
                ));
            }
        }
    }
    if let Some(items) = value.as_array() {
        let len = items.len() as u64;
        if let Some(min) = schema.get("minItems").and_then(Value::as_u64) {
            if len < min {
                problems.push(format!("field {}: fewer than {min} items", field(path)));
            }
        }
        if let Some(max) = schema.get("maxItems").and_then(Value::as_u64) {
            if len > max {
                problems.push(format!("field {}: more than {max} items", field(path)));
            }
        }
        if let Some(item_schema) = schema.get("items") {
            for (i, item) in items.iter().enumerate() {
                walk(item, item_schema, &format!("{path}[{i}]"), problems);
            }
        }
    }
    if let Some(object) = value.as_object() {
        let properties = schema.get("properties").and_then(Value::as_object);
        if let Some(required) = schema.get("required").and_then(Value::as_array) {
            for name in required.iter().filter_map(Value::as_str) {
                if !object.contains_key(name) {
                    problems.push(format!(
                        "field {}: required but missing",
                        field(&join(path, name))
                    ));
                }
            }
        }
        for (name, child) in object {
            let child_path = join(path, name);
            match properties.and_then(|p| p.get(name)) {
                Some(child_schema) => walk(child, child_schema, &child_path, problems),
                None => match schema.get("additionalProperties") {
                    Some(Value::Bool(false)) => problems.push(format!(
                        "field {}: unknown field{}",
                        field(&child_path),
                        properties
                            .map(|p| format!(
                                " (expected one of: {})",
                                p.keys().cloned().collect::<Vec<_>>().join(", ")
                            ))
                            .unwrap_or_default()
                    )),
                    Some(extra @ Value::Object(_)) => walk(child, extra, &child_path, problems),
                    _ => {}
                },
            }
        }
    }
}

fn join(path: &str, name: &str) -> String {
    if path.is_empty() {
        name.to_owned()
    } else {
        format!("{path}.{name}")
    }
}

#[cfg(test)]
mod tests {
    use super::check;
    use serde_json::json;

    #[test]
    fn names_each_field_at_fault() {
        let schema = json!({
            "type": "object",
            "properties": {
                "url": {"type": "string", "minLength": 1},
                "port": {"type": "integer", "minimum": 1, "maximum": 65535},
                "mode": {"enum": ["fast", "safe"]},
                "servers": {"type": "array", "items": {"type": "object",
                    "properties": {"host": {"type": "string"}}, "required": ["host"]}}
            },
            "required": ["url"],
            "additionalProperties": false
        });
        assert!(check(&json!({"url": "x", "port": 80}), &schema).is_empty());
        let problems = check(
            &json!({"port": 70000, "mode": "slow", "servers": [{"host": "a"}, {}], "colour": 1}),
            &schema,
        );
        assert_eq!(
            problems,
            vec![
                "field `url`: required but missing".to_owned(),
                "field `colour`: unknown field (expected one of: mode, port, servers, url)"
                    .to_owned(),
                "field `mode`: \"slow\" is not one of [\"fast\",\"safe\"]".to_owned(),
                "field `port`: 70000 is above the maximum 65535".to_owned(),
                "field `servers[1].host`: required but missing".to_owned(),
            ]
        );
        assert_eq!(
            check(&json!({"url": 5}), &schema),
            vec!["field `url`: expected string, got integer".to_owned()]
        );
        assert_eq!(
            check(&json!([1]), &schema),
            vec!["field (root): expected object, got array".to_owned()]
        );
    }
}

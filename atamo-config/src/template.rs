//! Action templates: JSON with `{{field references}}` filled from an event.
//!
//! A template is compiled once, when its rule is registered, into a tree whose strings are
//! already split into literal text and field references; rendering walks that tree without parsing
//! anything. Subtrees without field references are kept as plain JSON, and a template with no
//! field references at all renders to one shared [`Arc<Value>`].
//!
//! | field reference | value |
//! |---|---|
//! | `{{payload}}` | the whole event payload |
//! | `{{payload.customer.id}}` | a field of the payload (digits index arrays: `items.0.sku`) |
//! | `{{user}}` | the user's id |
//! | `{{tenant}}` | the tenant's id (missing when the user has no tenant) |
//! | `{{groups}}` | the user's groups, as an array of strings |
//! | `{{event_type}}` | the event's type |
//! | `{{event_id}}`, `{{correlation_id}}` | the event's ids, as strings |
//!
//! A string that is exactly one field reference becomes the value itself, keeping its JSON type
//! (`"{{payload.total}}"` renders to `42`, not `"42"`). A field reference inside a longer string is
//! written as text: strings without quotes, anything else as compact JSON. Object keys are never
//! templated. Whitespace inside the braces is allowed: `{{ user }}`.

use std::fmt::{self, Write as _};
use std::sync::Arc;

use atamo_core::message::{Event, FieldPath, Principal};
use serde_json::{Map, Value};

/// The field reference roots a template may use.
pub const ROOTS: &[&str] = &[
    "payload",
    "user",
    "tenant",
    "event_type",
    "correlation_id",
    "event_id",
    "groups",
];

/// Why a template does not compile. Each error names where in the template the bad string is
/// (`body.to`, `items.0`) and the field reference as written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// A `{{` is not followed by `}}`.
    #[error("template {}: field reference `{reference}` is not closed with `}}}}`", at(.path))]
    Unclosed {
        /// Where in the template, as a dotted path (empty for the template itself).
        path: String,
        /// The text from the unclosed `{{` to the end of the string.
        reference: String,
    },
    /// A field reference starts with a name that is not one of [`ROOTS`].
    #[error(
        "template {}: field reference `{reference}` has unknown root `{root}` (expected one of {})",
        at(.path),
        ROOTS.join(", ")
    )]
    UnknownRoot {
        /// Where in the template.
        path: String,
        /// The field reference as written, braces included.
        reference: String,
        /// The unknown name.
        root: String,
    },
    /// A field reference with a known root that is still not valid (empty, a bad payload path, or a
    /// field of a root that has none).
    #[error("template {}: field reference `{reference}` is invalid: {reason}", at(.path))]
    InvalidReference {
        /// Where in the template.
        path: String,
        /// The field reference as written, braces included.
        reference: String,
        /// What is wrong with it.
        reason: String,
    },
}

impl TemplateError {
    /// Where in the template the error is, as a dotted path (empty for the template itself).
    pub fn path(&self) -> &str {
        match self {
            Self::Unclosed { path, .. }
            | Self::UnknownRoot { path, .. }
            | Self::InvalidReference { path, .. } => path,
        }
    }
}

fn at(path: &str) -> String {
    if path.is_empty() {
        "root".to_owned()
    } else {
        format!("at `{path}`")
    }
}

/// A field reference whose value the event does not have: an absent or `null` payload field, or
/// `{{tenant}}` for a user without a tenant.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("template field `{field}` is missing from the event")]
pub struct MissingField {
    /// The field reference that could not be filled, e.g. `payload.customer.id` or `tenant`.
    pub field: String,
}

/// A JSON template compiled for fast rendering. See the [module docs](self) for the syntax.
///
/// ```
/// use atamo_config::ActionTemplate;
/// use atamo_core::message::{Event, Principal};
/// use serde_json::json;
///
/// let template = ActionTemplate::compile(&json!({
///     "to": "{{payload.customer.email}}",
///     "subject": "Order {{payload.order.id}} for {{ user }}",
///     "order": "{{payload.order}}",
/// }))?;
/// let event = Event::new(
///     "order.created",
///     Principal::user("alice"),
///     json!({"customer": {"email": "a@example.com"}, "order": {"id": 7}}),
/// );
/// assert_eq!(
///     template.render(&event)?,
///     json!({"to": "a@example.com", "subject": "Order 7 for alice", "order": {"id": 7}}),
/// );
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct ActionTemplate {
    root: Node,
    /// The rendered value when the template has no field references.
    constant: Option<Arc<Value>>,
    fields: Vec<FieldPath>,
}

#[derive(Debug, Clone)]
enum Node {
    /// A subtree without field references.
    Literal(Value),
    /// A string that is exactly one field reference.
    Whole(FieldRef),
    /// A string mixing text and field references.
    Text {
        segments: Vec<Segment>,
        literal_len: usize,
    },
    Array(Vec<Node>),
    Object(Vec<(String, Node)>),
}

#[derive(Debug, Clone)]
enum Segment {
    Literal(String),
    FieldRef(FieldRef),
}

#[derive(Debug, Clone)]
enum FieldRef {
    /// `{{payload}}`.
    Payload,
    /// `{{payload.<path>}}`; `name` is `payload.<path>`, for errors.
    Field {
        path: FieldPath,
        name: Arc<str>,
    },
    User,
    Tenant,
    EventType,
    CorrelationId,
    EventId,
    Groups,
}

/// What a render reads: the event and the principal it is rendered for.
struct Context<'a> {
    event: &'a Event,
    principal: &'a Principal,
}

impl ActionTemplate {
    /// Compiles a template, checking every field reference.
    pub fn compile(template: &Value) -> Result<Self, TemplateError> {
        let mut fields = Vec::new();
        let mut path = String::new();
        let root = compile_node(template, &mut path, &mut fields)?;
        let constant = match &root {
            Node::Literal(value) => Some(Arc::new(value.clone())),
            _ => None,
        };
        Ok(Self {
            root,
            constant,
            fields,
        })
    }

    /// The payload fields the template reads, in the order they first appear, without
    /// duplicates. `{{payload}}` (the whole payload) is not listed.
    pub fn fields(&self) -> &[FieldPath] {
        &self.fields
    }

    /// Whether the template has no field references, so every render returns the same shared value.
    pub fn is_constant(&self) -> bool {
        self.constant.is_some()
    }

    /// Renders the template for `event` and its principal.
    pub fn render(&self, event: &Event) -> Result<Value, MissingField> {
        match &self.constant {
            Some(value) => Ok(Value::clone(value)),
            None => render_node(&self.root, &self.context(event, event.principal())),
        }
    }

    /// Renders the template for `event` and its principal into a shared value. A template
    /// without field references returns the same `Arc` every time, without copying.
    pub fn render_shared(&self, event: &Event) -> Result<Arc<Value>, MissingField> {
        self.render_for(event, event.principal())
    }

    /// Renders for `event` with `principal` filling `{{user}}`, `{{tenant}}` and `{{groups}}`.
    pub(crate) fn render_for(
        &self,
        event: &Event,
        principal: &Principal,
    ) -> Result<Arc<Value>, MissingField> {
        match &self.constant {
            Some(value) => Ok(Arc::clone(value)),
            None => render_node(&self.root, &self.context(event, principal)).map(Arc::new),
        }
    }

    fn context<'a>(&self, event: &'a Event, principal: &'a Principal) -> Context<'a> {
        Context { event, principal }
    }
}

impl fmt::Debug for ActionTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ActionTemplate")
            .field("fields", &self.fields)
            .field("constant", &self.constant.is_some())
            .finish_non_exhaustive()
    }
}

// ---------------------------------------------------------------------------------------------
// Compiling

fn compile_node(
    value: &Value,
    path: &mut String,
    fields: &mut Vec<FieldPath>,
) -> Result<Node, TemplateError> {
    match value {
        Value::String(text) => compile_string(text, path, fields),
        Value::Array(items) => {
            let mut nodes = Vec::with_capacity(items.len());
            for (index, item) in items.iter().enumerate() {
                let len = push_segment(path, &index.to_string());
                nodes.push(compile_node(item, path, fields)?);
                path.truncate(len);
            }
            Ok(if nodes.iter().all(is_literal) {
                Node::Literal(value.clone())
            } else {
                Node::Array(nodes)
            })
        }
        Value::Object(map) => {
            let mut entries = Vec::with_capacity(map.len());
            for (key, item) in map {
                let len = push_segment(path, key);
                entries.push((key.clone(), compile_node(item, path, fields)?));
                path.truncate(len);
            }
            Ok(if entries.iter().all(|(_, node)| is_literal(node)) {
                Node::Literal(value.clone())
            } else {
                Node::Object(entries)
            })
        }
        Value::Null | Value::Bool(_) | Value::Number(_) => Ok(Node::Literal(value.clone())),
    }
}

/// Appends `.segment` (or `segment` at the root) and returns the length to truncate back to.
fn push_segment(path: &mut String, segment: &str) -> usize {
    let len = path.len();
    if !path.is_empty() {
        path.push('.');
    }
    path.push_str(segment);
    len
}

fn is_literal(node: &Node) -> bool {
    matches!(node, Node::Literal(_))
}

fn compile_string(
    text: &str,
    path: &str,
    fields: &mut Vec<FieldPath>,
) -> Result<Node, TemplateError> {
    let mut segments = Vec::new();
    let mut literal_len = 0;
    let mut rest = text;
    while let Some(open) = rest.find("{{") {
        if open > 0 {
            literal_len += open;
            segments.push(Segment::Literal(rest[..open].to_owned()));
        }
        let after_open = &rest[open + 2..];
        let Some(close) = after_open.find("}}") else {
            return Err(TemplateError::Unclosed {
                path: path.to_owned(),
                reference: rest[open..].to_owned(),
            });
        };
        let written = &rest[open..open + 2 + close + 2];
        let field_ref = parse_reference(&after_open[..close], written, path)?;
        if let FieldRef::Field { path: field, .. } = &field_ref {
            if !fields.contains(field) {
                fields.push(field.clone());
            }
        }
        segments.push(Segment::FieldRef(field_ref));
        rest = &after_open[close + 2..];
    }
    if !rest.is_empty() {
        literal_len += rest.len();
        segments.push(Segment::Literal(rest.to_owned()));
    }
    Ok(match segments.as_slice() {
        [] | [Segment::Literal(_)] => Node::Literal(Value::String(text.to_owned())),
        [Segment::FieldRef(field_ref)] => Node::Whole(field_ref.clone()),
        _ => Node::Text {
            segments,
            literal_len,
        },
    })
}

fn parse_reference(inner: &str, written: &str, path: &str) -> Result<FieldRef, TemplateError> {
    let invalid = |reason: String| TemplateError::InvalidReference {
        path: path.to_owned(),
        reference: written.to_owned(),
        reason,
    };
    let name = inner.trim();
    if name.is_empty() {
        return Err(invalid("it is empty".to_owned()));
    }
    let (root, field) = match name.split_once('.') {
        Some((root, field)) => (root, Some(field)),
        None => (name, None),
    };
    let simple = |field_ref: FieldRef| match field {
        None => Ok(field_ref),
        Some(_) => Err(invalid(format!("`{root}` has no fields"))),
    };
    match root {
        "payload" => match field {
            None => Ok(FieldRef::Payload),
            Some(field) => {
                let parsed = FieldPath::parse(field).map_err(|e| invalid(e.to_string()))?;
                Ok(FieldRef::Field {
                    path: parsed,
                    name: Arc::from(name),
                })
            }
        },
        "user" => simple(FieldRef::User),
        "tenant" => simple(FieldRef::Tenant),
        "event_type" => simple(FieldRef::EventType),
        "correlation_id" => simple(FieldRef::CorrelationId),
        "event_id" => simple(FieldRef::EventId),
        "groups" => simple(FieldRef::Groups),
        _ => Err(TemplateError::UnknownRoot {
            path: path.to_owned(),
            reference: written.to_owned(),
            root: root.to_owned(),
        }),
    }
}

// ---------------------------------------------------------------------------------------------
// Rendering

fn render_node(node: &Node, cx: &Context<'_>) -> Result<Value, MissingField> {
    match node {
        Node::Literal(value) => Ok(value.clone()),
        Node::Whole(field_ref) => field_value(field_ref, cx),
        Node::Text {
            segments,
            literal_len,
        } => {
            let mut out = String::with_capacity(literal_len + 16 * segments.len());
            for segment in segments {
                match segment {
                    Segment::Literal(text) => out.push_str(text),
                    Segment::FieldRef(field_ref) => write_field(field_ref, cx, &mut out)?,
                }
            }
            Ok(Value::String(out))
        }
        Node::Array(items) => items
            .iter()
            .map(|item| render_node(item, cx))
            .collect::<Result<Vec<_>, _>>()
            .map(Value::Array),
        Node::Object(entries) => {
            let mut map = Map::new();
            for (key, item) in entries {
                map.insert(key.clone(), render_node(item, cx)?);
            }
            Ok(Value::Object(map))
        }
    }
}

fn missing(field: &str) -> MissingField {
    MissingField {
        field: field.to_owned(),
    }
}

fn payload<'a>(cx: &Context<'a>) -> Result<&'a Value, MissingField> {
    let payload = cx.event.payload();
    if payload.is_null() {
        Err(missing("payload"))
    } else {
        Ok(payload)
    }
}

fn field<'a>(path: &FieldPath, name: &str, cx: &Context<'a>) -> Result<&'a Value, MissingField> {
    path.lookup(cx.event.payload()).ok_or_else(|| missing(name))
}

fn field_value(field_ref: &FieldRef, cx: &Context<'_>) -> Result<Value, MissingField> {
    Ok(match field_ref {
        FieldRef::Payload => payload(cx)?.clone(),
        FieldRef::Field { path, name } => field(path, name, cx)?.clone(),
        FieldRef::User => Value::String(cx.principal.user.as_str().to_owned()),
        FieldRef::Tenant => match &cx.principal.tenant {
            Some(tenant) => Value::String(tenant.as_str().to_owned()),
            None => return Err(missing("tenant")),
        },
        FieldRef::EventType => Value::String(cx.event.event_type().as_str().to_owned()),
        FieldRef::CorrelationId => Value::String(cx.event.correlation_id().to_string()),
        FieldRef::EventId => Value::String(cx.event.id().to_string()),
        FieldRef::Groups => Value::Array(
            cx.principal
                .groups
                .iter()
                .map(|group| Value::String(group.as_str().to_owned()))
                .collect(),
        ),
    })
}

/// Writes a field reference's value as text: strings without quotes, anything else as compact JSON.
fn write_field(
    field_ref: &FieldRef,
    cx: &Context<'_>,
    out: &mut String,
) -> Result<(), MissingField> {
    // Writing to a `String` cannot fail, so the `fmt::Result`s below are ignored.
    match field_ref {
        FieldRef::Payload => write_value(payload(cx)?, out),
        FieldRef::Field { path, name } => write_value(field(path, name, cx)?, out),
        FieldRef::User => out.push_str(cx.principal.user.as_str()),
        FieldRef::Tenant => match &cx.principal.tenant {
            Some(tenant) => out.push_str(tenant.as_str()),
            None => return Err(missing("tenant")),
        },
        FieldRef::EventType => out.push_str(cx.event.event_type().as_str()),
        FieldRef::CorrelationId => {
            let _ = write!(out, "{}", cx.event.correlation_id());
        }
        FieldRef::EventId => {
            let _ = write!(out, "{}", cx.event.id());
        }
        FieldRef::Groups => {
            let groups: Vec<&str> = cx.principal.groups.iter().map(|g| g.as_str()).collect();
            let _ = write!(out, "{}", Value::from(groups));
        }
    }
    Ok(())
}

fn write_value(value: &Value, out: &mut String) {
    match value {
        Value::String(text) => out.push_str(text),
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

#[cfg(test)]
mod tests;

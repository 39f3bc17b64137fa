//! The hub's actions and errors in the plugin protocol's terms, for native plugins and process
//! agents alike.

use std::time::Duration;

use atamo_core::agent::{AgentError, CallContext};
use atamo_core::Action;
use atamo_plugin_protocol::{CallError, CallRequest};

/// Builds what the plugin sees of an action. `encode_request` writes the same JSON directly;
/// a test checks that they agree.
pub(crate) fn call_request(action: &Action, ctx: &CallContext) -> CallRequest {
    let meta = action.meta();
    let event = &meta.event;
    CallRequest {
        action_id: meta.id.to_string(),
        action_type: meta.action_type.to_string(),
        attempt: meta.attempt,
        event_id: event.id.to_string(),
        event_type: event.event_type.to_string(),
        correlation_id: event.correlation_id.to_string(),
        user: event.principal.user.to_string(),
        groups: event
            .principal
            .groups
            .iter()
            .map(ToString::to_string)
            .collect(),
        tenant: event.principal.tenant.as_ref().map(ToString::to_string),
        request_id: ctx.request_id().map(|r| r.to_string()),
        payload: action.payload().clone(),
    }
}

/// The JSON of [`call_request`], written straight from the action's fields: no owned copy of
/// each id and name is made on the way (this runs once per native call).
pub(crate) fn encode_request(action: &Action, ctx: &CallContext) -> serde_json::Result<Vec<u8>> {
    use serde::ser::{SerializeSeq, SerializeStruct, Serializer};

    /// Serializes a `Display` value as a JSON string without building a `String` first.
    struct Text<'a, T: std::fmt::Display>(&'a T);
    impl<T: std::fmt::Display> serde::Serialize for Text<'_, T> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            s.collect_str(self.0)
        }
    }
    struct Groups<'a>(&'a [atamo_core::GroupId]);
    impl serde::Serialize for Groups<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let mut seq = s.serialize_seq(Some(self.0.len()))?;
            for g in self.0 {
                seq.serialize_element(g.as_str())?;
            }
            seq.end()
        }
    }
    struct Request<'a>(&'a Action, &'a CallContext);
    impl serde::Serialize for Request<'_> {
        fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
            let meta = self.0.meta();
            let event = &meta.event;
            let mut st = s.serialize_struct("CallRequest", 11)?;
            st.serialize_field("action_id", &Text(&meta.id))?;
            st.serialize_field("action_type", meta.action_type.as_str())?;
            st.serialize_field("attempt", &meta.attempt)?;
            st.serialize_field("event_id", &Text(&event.id))?;
            st.serialize_field("event_type", event.event_type.as_str())?;
            st.serialize_field("correlation_id", &Text(&event.correlation_id))?;
            st.serialize_field("user", event.principal.user.as_str())?;
            st.serialize_field("groups", &Groups(&event.principal.groups))?;
            if let Some(tenant) = &event.principal.tenant {
                st.serialize_field("tenant", tenant.as_str())?;
            }
            if let Some(request) = self.1.request_id() {
                st.serialize_field("request_id", &Text(&request))?;
            }
            st.serialize_field("payload", self.0.payload())?;
            st.end()
        }
    }
    serde_json::to_vec(&Request(action, ctx))
}

/// Maps a plugin's error onto the hub's.
pub(crate) fn agent_error(error: CallError) -> AgentError {
    match error {
        CallError::Retry { reason, after_ms } => AgentError::Retry {
            reason,
            after: after_ms.map(Duration::from_millis),
        },
        CallError::Permanent { reason } => AgentError::Permanent { reason },
        CallError::Timeout { after_ms } => AgentError::Timeout {
            after: Duration::from_millis(after_ms),
        },
        CallError::Panicked { message } => AgentError::Panicked { message },
        CallError::Crashed { reason } => AgentError::Crashed { reason },
        CallError::Cancelled => AgentError::Cancelled,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]

    use std::sync::{Arc, Mutex};

    use atamo_core::ids::RuleId;
    use atamo_core::rules::{PlannedAction, Proposal, ProviderScope};
    use atamo_core::{agent_fn, ActionTypeDef, AgentSpec, Event, EventTypeDef, Hub, Principal};
    use atamo_plugin_protocol::CallRequest;
    use serde_json::json;

    #[tokio::test]
    async fn the_direct_encoding_is_the_call_request() {
        let seen: Arc<Mutex<Vec<(CallRequest, CallRequest)>>> = Arc::default();
        let agent = {
            let seen = seen.clone();
            agent_fn(move |action, ctx| {
                let direct: CallRequest =
                    serde_json::from_slice(&super::encode_request(&action, &ctx).unwrap()).unwrap();
                seen.lock()
                    .unwrap()
                    .push((direct, super::call_request(&action, &ctx)));
                std::future::ready(Ok(atamo_core::Reply::done()))
            })
        };
        let hub = Hub::builder()
            .event_type(EventTypeDef::new("e"))
            .action_type(ActionTypeDef::new("a"))
            .agent(AgentSpec::new("x", agent).handles(["a"]))
            .provider(
                "p",
                |e: &Event, _: &Principal, out: &mut Vec<Proposal>| {
                    out.push(Proposal::action(
                        RuleId::from("r"),
                        PlannedAction::new("x", "a", e.payload().clone()),
                    ))
                },
                ProviderScope::EventTypes(vec!["e".into()]),
            )
            .build()
            .unwrap();
        let h = hub.handle();
        let who = Principal::user("alice")
            .in_group("ops")
            .in_group("vip")
            .in_tenant("acme");
        let r = h
            .request(Event::new(
                "e",
                who.clone(),
                json!({"q": "\"quoted\"", "n": [1, 2]}),
            ))
            .await
            .unwrap();
        h.wait(r.request_id, std::time::Duration::from_secs(10))
            .await
            .unwrap();
        h.publish(Event::new("e", Principal::user("bob"), json!({})))
            .await
            .unwrap();
        hub.shutdown().await;
        let seen = seen.lock().unwrap();
        assert_eq!(seen.len(), 2);
        for (direct, owned) in seen.iter() {
            assert_eq!(direct, owned);
        }
        assert_eq!(seen[0].0.groups, vec!["ops".to_owned(), "vip".to_owned()]);
        assert!(seen[0].0.request_id.is_some() && seen[1].0.request_id.is_none());
    }
}

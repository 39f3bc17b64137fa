//! Event types and action types.

use atamo_core::ids::{ActionType, EventType};
use atamo_core::store::RegistryWrite::Create;

use super::errors::{config_error, to_json};
use super::state::{Registry, ACTION_TYPE, EVENT_TYPE};
use crate::api::auth::Caller;
use crate::api::error::ApiError;
use crate::model::{ActionTypeBody, EventTypeBody};

impl Registry {
    pub(super) fn apply_event_type(&self, body: &EventTypeBody) -> Result<(), ApiError> {
        let def = body.to_def().map_err(ApiError::fields)?;
        self.inner
            .control
            .register_event_type(def)
            .map_err(config_error)
    }

    pub(super) fn apply_action_type(&self, body: &ActionTypeBody) -> Result<(), ApiError> {
        let mut def = body.to_def().map_err(ApiError::fields)?;
        if def.retry.is_none() {
            def.retry = self.inner.default_retry;
        }
        self.inner
            .control
            .register_action_type(def)
            .map_err(config_error)
    }

    /// Registers an event type and stores it.
    pub async fn create_event_type(
        &self,
        body: EventTypeBody,
        caller: &Caller,
    ) -> Result<(), ApiError> {
        let _w = self.inner.write.lock().await;
        self.apply_event_type(&body)?;
        let name = EventType::from(body.name.as_str());
        let control = &self.inner.control;
        self.persist_or_undo(
            &EVENT_TYPE,
            &body.name,
            to_json(&body)?,
            Create,
            caller,
            || {
                let _ = control.unregister_event_type(&name);
            },
        )
        .await
    }

    /// Every registered event type.
    pub fn event_types(&self) -> Vec<EventTypeBody> {
        self.inner
            .control
            .event_types()
            .iter()
            .map(EventTypeBody::from_def)
            .collect()
    }

    /// Registers an action type and stores it.
    pub async fn create_action_type(
        &self,
        body: ActionTypeBody,
        caller: &Caller,
    ) -> Result<(), ApiError> {
        let _w = self.inner.write.lock().await;
        self.apply_action_type(&body)?;
        let name = ActionType::from(body.name.as_str());
        let control = &self.inner.control;
        self.persist_or_undo(
            &ACTION_TYPE,
            &body.name,
            to_json(&body)?,
            Create,
            caller,
            || {
                let _ = control.unregister_action_type(&name);
            },
        )
        .await
    }

    /// Every registered action type.
    pub fn action_types(&self) -> Vec<ActionTypeBody> {
        self.inner
            .control
            .action_types()
            .iter()
            .map(ActionTypeBody::from_def)
            .collect()
    }
}

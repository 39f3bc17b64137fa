//! Agents: registered through the plugin host, and the action types they handle.

use atamo_core::store::RegistryWrite;

use super::errors::{registration_error, to_json};
use super::persist::change_record;
use super::state::{Registry, Source, AGENT};
use crate::api::auth::Caller;
use crate::api::error::ApiError;
use crate::model::AgentDef;

impl Registry {
    /// Registers the action types an agent handles that are not registered yet.
    fn ensure_action_types(&self, def: &AgentDef) {
        let known: Vec<String> = self
            .inner
            .control
            .action_types()
            .iter()
            .map(|t| t.name.to_string())
            .collect();
        for t in def.handled_types() {
            if !known.contains(&t) {
                let mut def = atamo_core::hub::ActionTypeDef::new(t.as_str());
                def.retry = self.inner.default_retry;
                let _ = self.inner.control.register_action_type(def);
            }
        }
    }

    pub(super) async fn apply_agent(&self, def: &AgentDef) -> Result<(), ApiError> {
        let problems = def.problems();
        if !problems.is_empty() {
            return Err(ApiError::fields(problems));
        }
        self.ensure_action_types(def);
        let registration = def
            .registration(&self.inner.plugins_dir)
            .map_err(|e| ApiError::field("config", e))?;
        self.inner
            .host
            .register_agent(registration)
            .await
            .map_err(registration_error)
    }

    pub(super) async fn remove_agent(&self, id: &str) {
        if let Err(e) = self.inner.host.unregister_agent(id).await {
            tracing::debug!(agent = id, error = %e, "agent was not registered");
        }
    }

    /// Registers an agent and stores it.
    pub async fn create_agent(&self, def: AgentDef, caller: &Caller) -> Result<(), ApiError> {
        let _w = self.inner.write.lock().await;
        if self.agent_def(&def.id).is_some()
            || self
                .inner
                .control
                .agents()
                .iter()
                .any(|a| a.id.as_str() == def.id)
        {
            return Err(ApiError::conflict(format!(
                "agent `{}` is already registered",
                def.id
            )));
        }
        self.apply_agent(&def).await?;
        let value = to_json(&def)?;
        if let Err(e) = self
            .persist(&AGENT, &def.id, value, RegistryWrite::Create, caller)
            .await
        {
            self.remove_agent(&def.id).await;
            return Err(e);
        }
        self.remember_agent(def, Source::Api);
        Ok(())
    }

    /// Replaces an agent's definition (the old one comes back if the new one fails).
    pub async fn replace_agent(&self, def: AgentDef, caller: &Caller) -> Result<(), ApiError> {
        let _w = self.inner.write.lock().await;
        let Some((old, source)) = self.agent_def(&def.id) else {
            return Err(ApiError::not_found(format!("agent `{}`", def.id)));
        };
        let problems = def.problems();
        if !problems.is_empty() {
            return Err(ApiError::fields(problems));
        }
        self.remove_agent(&def.id).await;
        if let Err(e) = self.apply_agent(&def).await {
            if let Err(back) = self.apply_agent(&old).await {
                tracing::error!(agent = %def.id, error = %back, "the previous definition could not be restored");
            }
            return Err(e);
        }
        let value = to_json(&def)?;
        if let Err(e) = self
            .persist(&AGENT, &def.id, value, RegistryWrite::Upsert, caller)
            .await
        {
            self.remove_agent(&def.id).await;
            let _ = self.apply_agent(&old).await;
            self.remember_agent(old, source);
            return Err(e);
        }
        self.remember_agent(def, Source::Api);
        Ok(())
    }

    /// Unregisters an agent and removes it from the store.
    pub async fn delete_agent(&self, id: &str, caller: &Caller) -> Result<(), ApiError> {
        let _w = self.inner.write.lock().await;
        let Some((old, _)) = self.agent_def(id) else {
            return Err(ApiError::not_found(format!("agent `{id}`")));
        };
        let in_use: Vec<String> = self
            .inner
            .rules
            .list()
            .iter()
            .filter(|r| r.agent.as_str() == id)
            .map(|r| r.id.to_string())
            .collect();
        if !in_use.is_empty() {
            return Err(ApiError::conflict(format!(
                "agent `{id}` is named by rules {}; delete or change them first",
                in_use.join(", ")
            )));
        }
        self.remove_agent(id).await;
        let record = change_record(caller, &AGENT, id, "deleted", &to_json(&old)?);
        self.inner
            .definitions
            .delete(&AGENT, id, vec![record])
            .await?;
        self.mark_applied(&AGENT, id, None);
        if let Ok(mut agents) = self.inner.agents.lock() {
            agents.remove(id);
        }
        Ok(())
    }
}

//! Refusals of the hub, the rule book and the plugin host as API errors.

use atamo_agents::registration::RegistrationError;
use atamo_config::RuleSetError;
use atamo_core::hub::ConfigError;
use serde::Serialize;
use serde_json::Value;

use crate::api::error::{ApiError, FieldError};

pub(super) fn config_error(e: ConfigError) -> ApiError {
    use atamo_core::hub::ConfigProblem;
    if e.problems
        .iter()
        .any(|p| matches!(p, ConfigProblem::Duplicate { .. }))
    {
        return ApiError::conflict(e.to_string());
    }
    ApiError::field("body", e.to_string())
}

pub(super) fn rules_error(e: RuleSetError) -> ApiError {
    use atamo_config::RuleProblem;
    if e.problems
        .iter()
        .any(|p| matches!(p, RuleProblem::DuplicateId { .. }))
    {
        return ApiError::conflict(e.to_string());
    }
    ApiError::invalid(
        e.problems
            .iter()
            .map(|p| FieldError {
                field: match p {
                    RuleProblem::Template { .. } => "template".into(),
                    _ => "body".into(),
                },
                message: p.to_string(),
            })
            .collect(),
    )
}

pub(super) fn registration_error(e: RegistrationError) -> ApiError {
    match e {
        RegistrationError::Builtin(p) => ApiError::invalid(
            p.problems
                .into_iter()
                .map(|m| FieldError {
                    field: "config".into(),
                    message: m,
                })
                .collect(),
        ),
        RegistrationError::Hub { error, .. } => config_error(error),
        other => ApiError::field("config", other.to_string()),
    }
}

pub(super) fn to_json<T: Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(ApiError::internal)
}

impl crate::api::error::Problem {
    /// The detail followed by every field problem, for logs.
    pub fn detail_with_fields(&self) -> String {
        if self.errors.is_empty() {
            return self.detail.clone();
        }
        let fields: Vec<String> = self
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.field, e.message))
            .collect();
        fields.join("; ")
    }
}

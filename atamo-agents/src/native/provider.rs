//! `NativeRuleProvider`: a plugin's rule-provider kind behind the hub's `RuleProvider` trait.

use std::sync::Arc;

use atamo_core::ids::{ProviderId, RuleId};
use atamo_core::rules::{PlannedAction, Proposal, RuleError, RuleProvider, ShareScope, Sharing};
use atamo_core::{Event, Principal};
use atamo_plugin_abi::{AtamoBytes, ATAMO_ERR_PANIC, ATAMO_OK};
use atamo_plugin_protocol::{EvaluateOut, EventIn, Role};
use serde_json::Value;

use super::error::LoadError;
use super::host::{Instance, PluginBuffer};
use super::loader::NativePlugin;

/// A rule provider implemented by a native plugin. `evaluate` crosses the C ABI once per
/// event, synchronously, on the hub's routing path.
pub struct NativeRuleProvider {
    instance: Instance,
    id: ProviderId,
}

impl std::fmt::Debug for NativeRuleProvider {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NativeRuleProvider")
            .field("id", &self.id)
            .field("plugin", &self.instance.plugin.info().name)
            .finish_non_exhaustive()
    }
}

impl NativeRuleProvider {
    /// Creates an instance of rule-provider kind `kind` of `plugin`, to be registered as `id`.
    pub fn new(
        plugin: Arc<NativePlugin>,
        kind: &str,
        config: &Value,
        id: impl Into<ProviderId>,
    ) -> Result<Self, LoadError> {
        let id = id.into();
        let label = format!("{}/{}", plugin.info().name, id);
        let instance = Instance::create(plugin, kind, Role::RuleProvider, config, label)?;
        Ok(Self { instance, id })
    }

    fn failed(&self, error: RuleError) -> Proposal {
        Proposal::failed(RuleId::from(self.id.to_string()), error)
    }
}

fn scope(name: Option<&str>) -> Result<ShareScope, String> {
    match name {
        None | Some("user") => Ok(ShareScope::User),
        Some("off") => Ok(ShareScope::Off),
        Some("tenant") => Ok(ShareScope::Tenant),
        Some("global") => Ok(ShareScope::Global),
        Some(other) => Err(format!(
            "coalesce `{other}` is not one of off, user, tenant, global"
        )),
    }
}

impl RuleProvider for NativeRuleProvider {
    fn evaluate(&self, event: &Event, principal: &Principal, out: &mut Vec<Proposal>) {
        let Some(evaluate) = self.instance.plugin.vtable.evaluate else {
            out.push(self.failed(RuleError::Provider {
                rule: RuleId::from(self.id.to_string()),
                message: "the plugin does not implement `evaluate`".to_owned(),
            }));
            return;
        };
        let meta = event.meta();
        let input = EventIn {
            event_id: meta.id.to_string(),
            event_type: meta.event_type.to_string(),
            correlation_id: meta.correlation_id.to_string(),
            user: principal.user.to_string(),
            groups: principal.groups.iter().map(ToString::to_string).collect(),
            tenant: principal.tenant.as_ref().map(ToString::to_string),
            payload: event.payload().clone(),
        };
        let bytes = serde_json::to_vec(&input).unwrap_or_default();
        let mut raw = PluginBuffer::empty();
        // SAFETY: the instance is alive; the bytes outlive the call; `raw` is writable.
        let code = unsafe {
            evaluate(
                self.instance.ptr,
                AtamoBytes {
                    ptr: bytes.as_ptr(),
                    len: bytes.len(),
                },
                &mut raw,
            )
        };
        let raw = PluginBuffer::take(raw);
        if code == ATAMO_ERR_PANIC {
            let message = serde_json::from_slice::<EvaluateOut>(raw.bytes())
                .ok()
                .and_then(|out| out.error)
                .unwrap_or_else(|| "the plugin panicked in evaluate".to_owned());
            out.push(self.failed(RuleError::ProviderPanicked {
                provider: self.id.clone(),
                message,
            }));
            return;
        }
        let rule = || RuleId::from(self.id.to_string());
        if code != ATAMO_OK {
            out.push(self.failed(RuleError::Provider {
                rule: rule(),
                message: format!("evaluate failed with code {code}"),
            }));
            return;
        }
        let result: EvaluateOut = match serde_json::from_slice(raw.bytes()) {
            Ok(result) => result,
            Err(e) => {
                out.push(self.failed(RuleError::Provider {
                    rule: rule(),
                    message: format!("unreadable proposals: {e}"),
                }));
                return;
            }
        };
        if let Some(message) = result.error {
            out.push(self.failed(RuleError::Provider {
                rule: rule(),
                message,
            }));
        }
        for p in result.proposals {
            let rule = RuleId::from(p.rule.as_str());
            let ttl = p
                .cache_ttl_ms
                .map(atamo_core::bounded::CacheTtl::from_millis)
                .transpose()
                .map_err(|e| format!("cache_ttl_ms: {e}"));
            match scope(p.coalesce.as_deref()).and_then(|scope| Ok((scope, ttl?))) {
                Ok((scope, result_ttl)) => out.push(Proposal::action(
                    rule,
                    PlannedAction::new(p.agent.as_str(), p.action.as_str(), p.payload)
                        .shared(Sharing { scope, result_ttl }),
                )),
                Err(message) => out.push(Proposal::failed(
                    rule.clone(),
                    RuleError::Provider { rule, message },
                )),
            }
        }
    }
}

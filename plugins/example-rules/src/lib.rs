//! An example rule-provider plugin: order routing that is more than passing an event through.
//!
//! For each `order.created` event it decides, from the order and the customer:
//!
//! - **VIP customers** (listed users, or members of the `vip` group) get a `notify` action to
//!   the `notify_agent`, with a personal message;
//! - **large orders** (amount at or above `review_threshold`, in the order's currency after
//!   conversion with the configured rates) get a `review` action to the `review_agent`;
//! - **orders shipping to a blocked region** get only a `hold` action to the `review_agent`:
//!   nothing else happens for them;
//! - an order without a positive `amount` is a failed rule (reported in telemetry), not a
//!   silent drop.
//!
//! Init metadata:
//! `{"notify_agent": "mailer", "review_agent": "review", "review_threshold": 1000,
//!   "vip_users": ["alice"], "rates": {"USD": 0.9}, "blocked_regions": ["XX"]}`

use std::collections::{BTreeMap, BTreeSet};

use atamo_plugin_sdk::{export_plugin, json, EventIn, PluginRuleProvider, ProposalOut};
use serde::Deserialize;

/// The provider.
pub struct OrderRouting {
    config: RoutingConfig,
}

/// Its init metadata.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoutingConfig {
    /// Agent that tells VIP customers about their order.
    pub notify_agent: String,
    /// Agent that reviews large or held orders.
    pub review_agent: String,
    /// Orders at or above this amount (in the base currency) are reviewed.
    pub review_threshold: f64,
    /// Customers treated as VIP besides members of the `vip` group.
    #[serde(default)]
    pub vip_users: BTreeSet<String>,
    /// Conversion rates into the base currency, by currency code; the base currency is 1.
    #[serde(default)]
    pub rates: BTreeMap<String, f64>,
    /// Shipping regions whose orders are held for review.
    #[serde(default)]
    pub blocked_regions: BTreeSet<String>,
}

impl PluginRuleProvider for OrderRouting {
    type Config = RoutingConfig;

    const DESCRIPTION: &'static str = "routes orders by customer tier, amount and region";

    const CONFIG_SCHEMA: &'static str = r#"{
        "type": "object",
        "properties": {
            "notify_agent": {"type": "string", "minLength": 1},
            "review_agent": {"type": "string", "minLength": 1},
            "review_threshold": {"type": "number", "minimum": 0},
            "vip_users": {"type": "array", "items": {"type": "string"}},
            "rates": {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
            "blocked_regions": {"type": "array", "items": {"type": "string"}}
        },
        "required": ["notify_agent", "review_agent", "review_threshold"],
        "additionalProperties": false
    }"#;

    fn new(config: RoutingConfig) -> Result<Self, String> {
        Ok(Self { config })
    }

    fn evaluate(&self, event: &EventIn) -> Result<Vec<ProposalOut>, String> {
        if event.event_type != "order.created" {
            return Ok(Vec::new());
        }
        let order = &event.payload;
        let amount = order["amount"]
            .as_f64()
            .filter(|a| *a > 0.0)
            .ok_or("order.created needs a positive `amount`")?;
        let currency = order["currency"].as_str().unwrap_or("EUR");
        let rate = match self.config.rates.get(currency) {
            Some(rate) => *rate,
            None if currency == "EUR" => 1.0,
            None => return Err(format!("no conversion rate for currency `{currency}`")),
        };
        let base_amount = amount * rate;
        let order_id = order["id"].clone();
        let c = &self.config;

        if let Some(region) = order["region"]
            .as_str()
            .filter(|r| c.blocked_regions.contains(*r))
        {
            return Ok(vec![ProposalOut {
                rule: "hold-blocked-region".into(),
                agent: c.review_agent.clone(),
                action: "hold".into(),
                payload: json!({"order": order_id, "region": region, "user": event.user}),
                coalesce: Some("off".into()),
                cache_ttl_ms: None,
            }]);
        }

        let mut out = Vec::new();
        let vip = c.vip_users.contains(&event.user) || event.groups.iter().any(|g| g == "vip");
        if vip {
            out.push(ProposalOut {
                rule: "notify-vip".into(),
                agent: c.notify_agent.clone(),
                action: "notify".into(),
                payload: json!({
                    "to": event.user,
                    "text": format!("Thank you, {}: order {} is on its way.", event.user, order_id),
                }),
                coalesce: None,
                cache_ttl_ms: None,
            });
        }
        if base_amount >= c.review_threshold {
            out.push(ProposalOut {
                rule: "review-large-order".into(),
                agent: c.review_agent.clone(),
                action: "review".into(),
                payload: json!({
                    "order": order_id,
                    "amount": amount,
                    "currency": currency,
                    "base_amount": base_amount,
                    "vip": vip,
                }),
                coalesce: Some("off".into()),
                cache_ttl_ms: None,
            });
        }
        Ok(out)
    }
}

export_plugin! {
    name: "example-order-routing",
    version: env!("CARGO_PKG_VERSION"),
    rule_providers: { "order-routing" => OrderRouting },
}

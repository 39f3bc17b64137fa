//! Prometheus metrics of the hub and of the HTTP service.
//!
//! [`Metrics::start`] subscribes to the hub's telemetry and counts it in a task of its own;
//! [`Metrics::observe_http`] records each finished HTTP request; [`Metrics::render`] answers
//! `GET /metrics` in the Prometheus text format (version 0.0.4, [`Metrics::CONTENT_TYPE`]),
//! encoded by `prometheus-client`. Gauges (queues, in-flight calls, agent status, components)
//! are read from [`Control::health`], [`Control::agent_statuses`] and [`Control::components`]
//! at render time, so they are never stale.
//!
//! # Metrics
//!
//! Counted from telemetry (from [`Metrics::start`] on):
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `atamo_events_accepted_total` | `event_type` | events the hub took in |
//! | `atamo_events_rejected_total` | `event_type` | events refused as invalid; `(unregistered)` for a type that is not registered |
//! | `atamo_event_problems_total` | `problem` | what was wrong with rejected events (`unknown_event_type`, `missing_field`, `payload_not_object`, `bad_name`, ...) |
//! | `atamo_events_unrouted_total` | `event_type` | accepted events no rule sent anywhere |
//! | `atamo_rule_errors_total` | `provider` | rules that matched but produced no action |
//! | `atamo_actions_dispatched_total` | `agent`, `action_type` | actions queued for an agent |
//! | `atamo_actions_total` | `agent`, `outcome` | what became of actions (see below) |
//! | `atamo_action_duration_seconds` | `agent` | histogram of call durations, every attempt, whatever its outcome |
//! | `atamo_follow_ups_failed_total` | `agent` | follow-up events an agent published that could not be published |
//! | `atamo_requests_finished_total` | `state` | requests that ended, by how (`complete`, `partially_failed`, `failed`, `no_route`, `cancelled`, `deadline_passed`) |
//! | `atamo_agent_health_checks_total` | `agent`, `outcome` | health probes, `ok` or `error` |
//! | `atamo_agent_process_changes_total` | `agent`, `change` | agent processes `started`, `exited`, `restarting`, `stopped`, `offline` |
//! | `atamo_alerts_raised_total` | `alert`, `agent` | every alert raised, one-shot notifications such as `retries_exhausted` included |
//! | `atamo_alerts_firing` | `alert`, `agent` | 1 for each alert raised and not resolved yet (see below) |
//! | `atamo_telemetry_events_total` | `kind` | every telemetry step counted, by kind (`accepted`, `action_succeeded`, ...) |
//! | `atamo_telemetry_missed_total` | | telemetry steps missed because the counting task fell behind |
//!
//! `outcome` of `atamo_actions_total`: `succeeded`, `failed` (for good), `retrying` (an attempt
//! failed and the action will be tried again), `dead_lettered`, `abandoned` (shutdown deadline),
//! `coalesced` (joined an identical call in flight), `served_from_cache`, `rerouted` (sent to
//! a fallback: counted for the agent it was meant for) and `redriven` (a dead letter sent
//! again).
//!
//! `atamo_alerts_firing` follows raise and resolve steps. `retries_exhausted` is a
//! notification, never resolved, so it is only counted in `atamo_alerts_raised_total`;
//! `agent_offline` stops firing when the agent's process starts again; every alert of an agent
//! stops firing when the agent is unregistered.
//!
//! Read at render time:
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `atamo_hub_accepting` | | 1 while the hub takes new events, 0 once it is shutting down |
//! | `atamo_hub_ready` | | 1 while the hub can accept and keep work, 0 while it cannot (as `/readyz`) |
//! | `atamo_component_up` | `component` | 1 while a long-lived component works (ready or degraded), 0 while it does not (`router`, `agent_worker:<agent>`, `settle_writer`, `store`, ...) |
//! | `atamo_component_restarts_total` | `component` | restarts of a component after a panic |
//! | `atamo_ingress_queue_length`, `atamo_ingress_queue_capacity` | | events accepted and not yet routed, and the most that can wait |
//! | `atamo_agent_queue_length`, `atamo_agent_queue_capacity` | `agent` | actions waiting for each agent, and the most that can wait |
//! | `atamo_agent_in_flight` | `agent` | calls running now |
//! | `atamo_agent_status` | `agent`, `state` | 1 for the agent's state (`unknown`, `online`, `degraded`, `offline`), 0 for the others |
//! | `atamo_telemetry_subscribers` | | telemetry subscribers connected (this one included) |
//! | `atamo_requests_running`, `atamo_requests_kept` | | requests running, finished requests whose answers are kept |
//! | `atamo_store_lost_leases_total` | | stateful hubs only: settles refused because another node had taken the action over |
//!
//! From the HTTP service ([`Metrics::observe_http`]):
//!
//! | metric | labels | what |
//! |---|---|---|
//! | `atamo_http_requests_total` | `method`, `route`, `status` | finished requests |
//! | `atamo_http_request_duration_seconds` | `method`, `route` | histogram of their durations |
//!
//! # Lag
//!
//! The hub never waits for a telemetry subscriber: one that falls behind misses the oldest
//! steps (the hub's `telemetry_capacity` says how far behind it may fall). The counting task
//! does nothing but bump counters, so it keeps up with the hub; when it does fall behind, the
//! steps it missed are counted in `atamo_telemetry_missed_total` and a warning is logged (at
//! most every 10 s), so `sum(atamo_telemetry_events_total) + atamo_telemetry_missed_total` is
//! every step the hub reported since the metrics started.
//!
//! # Cardinality
//!
//! Labels are names (agents, event and action types, providers, alerts, routes), never ids.
//! Rejected events of types that are not registered share the `(unregistered)` label; HTTP
//! methods other than the standard ones are `OTHER`; past 256 method and route pairs, new
//! routes are counted as `(other)` (and a warning is logged).
//!
//! [`Control::health`]: atamo_core::Control::health
//! [`Control::agent_statuses`]: atamo_core::Control::agent_statuses
//! [`Control::components`]: atamo_core::Control::components

mod alerts;
mod cache;
mod exporter;
mod families;
mod gauges;
mod http;
mod recorder;

#[cfg(test)]
mod tests;

pub use exporter::Metrics;

//! Reading `atamo.toml`: one parse into a spanned document, then every key and every array
//! entry checked on its own, each problem reported with the line where its value starts.

use std::borrow::Cow;
use std::collections::HashMap;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use atamo_config::{RuleProblem, RuleSet};
use atamo_core::alerts::{
    AgentThresholds, AlertConfig, ErrorRateThreshold, LatencyThreshold, QueueDepthThreshold,
    ThroughputThreshold,
};
use atamo_core::failure::{RetryPolicy, EXHAUSTED_EVENT, STATUS_CHANGED_EVENT};
use atamo_core::{AgentId, TenantId};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use toml::de::{DeTable, DeValue, ValueDeserializer};
use toml::Spanned;

use super::units::{check_node, check_postgres_url, check_schema, Addr, Bytes, Dur, FilePath};
use super::{ConfigIssue, Layer, LogFormat, StoreKind, DEFAULT_RATE_LIMIT};
use crate::model::{check_id, ActionTypeBody, AgentDef, AgentKind, EventTypeBody};

type Value<'i> = Spanned<DeValue<'i>>;

/// The top-level keys.
const TOP: &[&str] = &[
    "listen",
    "data_dir",
    "log_format",
    "plugins_dir",
    "store",
    "hub",
    "retry",
    "alerts",
    "retention",
    "http",
    "event_types",
    "action_types",
    "agents",
    "rules",
];

/// Event types the hub registers itself; rules may name them without declaring them.
const BUILTIN_EVENT_TYPES: [&str; 3] = [
    EXHAUSTED_EVENT,
    STATUS_CHANGED_EVENT,
    atamo_core::alerts::ALERT_EVENT_TYPE,
];

/// What the file says, with every error and warning in file order.
pub(super) struct Checked {
    pub layer: Layer,
    pub errors: Vec<ConfigIssue>,
    pub warnings: Vec<ConfigIssue>,
}

/// Checks the text of a configuration file (`file` names it in the issues).
pub(super) fn check(text: &str, file: Option<&Path>) -> Checked {
    let mut c = Checker {
        src: text,
        line_starts: std::iter::once(0)
            .chain(text.match_indices('\n').map(|(i, _)| i + 1))
            .collect(),
        file: file.map(Path::to_owned),
        errors: Vec::new(),
        warnings: Vec::new(),
    };
    let mut layer = Layer::default();
    match DeTable::parse(text) {
        Ok(root) => {
            let root: Value<'_> = Spanned::new(root.span(), DeValue::Table(root.into_inner()));
            c.reject_datetimes("", &root);
            c.root(&root, &mut layer);
        }
        Err(e) => {
            let span = e.span().unwrap_or(0..0);
            c.error(span, "", e.message());
        }
    }
    let by_place = |i: &ConfigIssue| (i.line, i.column);
    c.errors.sort_by_key(by_place);
    c.warnings.sort_by_key(by_place);
    Checked {
        layer,
        errors: c.errors,
        warnings: c.warnings,
    }
}

struct Checker<'s> {
    src: &'s str,
    /// The byte offset of each line's start: 0, then each one after a `\n`.
    line_starts: Vec<usize>,
    file: Option<PathBuf>,
    errors: Vec<ConfigIssue>,
    warnings: Vec<ConfigIssue>,
}

/// A rule as read, with where it was written.
struct RuleEntry<'v, 'i> {
    path: String,
    value: &'v Value<'i>,
    rule: atamo_config::Rule,
}

impl<'i> Checker<'_> {
    fn issue(&self, span: Range<usize>, path: &str, message: &str) -> ConfigIssue {
        let (line, column) = self.position(span.start);
        ConfigIssue {
            file: self.file.clone(),
            line: Some(line),
            column: Some(column),
            path: path.to_owned(),
            message: message.to_owned(),
        }
    }

    /// Line and column (from 1; the column in characters) of a byte offset.
    fn position(&self, offset: usize) -> (usize, usize) {
        let mut offset = offset.min(self.src.len());
        while !self.src.is_char_boundary(offset) {
            offset -= 1;
        }
        // The number of lines starting at or before the offset.
        let line = self.line_starts.partition_point(|&start| start <= offset);
        let line_start = self.line_starts[line - 1];
        (line, self.src[line_start..offset].chars().count() + 1)
    }

    fn error(&mut self, span: Range<usize>, path: &str, message: impl AsRef<str>) {
        let issue = self.issue(span, path, message.as_ref());
        self.errors.push(issue);
    }

    fn warn(&mut self, span: Range<usize>, path: &str, message: impl AsRef<str>) {
        let issue = self.issue(span, path, message.as_ref());
        self.warnings.push(issue);
    }

    /// The line of a span, for messages pointing at another place.
    fn line_of(&self, span: &Range<usize>) -> usize {
        self.position(span.start).0
    }

    /// `v` read as a `T`, or `None` with the error recorded where the offending value starts.
    fn get<T: DeserializeOwned>(&mut self, path: &str, v: &Value<'i>) -> Option<T> {
        if has_datetime(v) {
            // Already reported by `reject_datetimes`.
            return None;
        }
        match T::deserialize(ValueDeserializer::from(v.clone())) {
            Ok(t) => Some(t),
            Err(e) => {
                let span = e.span().unwrap_or_else(|| v.span());
                let path = format!("{path}{}", find_path(v, &span).unwrap_or_default());
                self.error(span, &path, e.message());
                None
            }
        }
    }

    /// The entries of table `v` whose keys are in `keys`, each with its path; unknown keys
    /// are reported.
    fn table<'v>(
        &mut self,
        path: &str,
        v: &'v Value<'i>,
        keys: &[&str],
    ) -> Vec<(&'v str, &'v Value<'i>, String)> {
        let Some(table) = v.get_ref().as_table() else {
            self.error(
                v.span(),
                path,
                format!("must be a table, not {}", v.get_ref().type_str()),
            );
            return Vec::new();
        };
        let mut out = Vec::new();
        for (key, value) in table.iter() {
            let name: &str = key.get_ref();
            let p = join(path, name);
            if keys.contains(&name) {
                out.push((name, value, p));
            } else {
                self.error(
                    key.span(),
                    &p,
                    format!("unknown key `{name}`; expected one of {}", list(keys)),
                );
            }
        }
        out
    }

    /// The entries of the array of tables `v`, each with its path (`agents[0]`).
    fn array<'v>(&mut self, path: &str, v: &'v Value<'i>) -> Vec<(String, &'v Value<'i>)> {
        let Some(items) = v.get_ref().as_array() else {
            self.error(
                v.span(),
                path,
                format!(
                    "must be an array of tables (`[[{path}]]`), not {}",
                    v.get_ref().type_str()
                ),
            );
            return Vec::new();
        };
        items
            .iter()
            .enumerate()
            .map(|(i, item)| (format!("{path}[{i}]"), item))
            .collect()
    }

    /// Dates and times have no meaning anywhere in the file, and would reach free-form JSON
    /// (agent settings, templates) as odd objects.
    fn reject_datetimes(&mut self, path: &str, v: &Value<'i>) {
        match v.get_ref() {
            DeValue::Datetime(_) => self.error(
                v.span(),
                path,
                "dates and times are not supported; write the value as a string",
            ),
            DeValue::Table(t) => {
                for (k, cv) in t.iter() {
                    self.reject_datetimes(&join(path, k.get_ref()), cv);
                }
            }
            DeValue::Array(a) => {
                for (i, cv) in a.iter().enumerate() {
                    self.reject_datetimes(&format!("{path}[{i}]"), cv);
                }
            }
            _ => {}
        }
    }

    fn root(&mut self, root: &Value<'i>, layer: &mut Layer) {
        let mut event_types = Vec::new();
        let mut action_types = Vec::new();
        let mut agents = Vec::new();
        let mut rules = Vec::new();
        for (key, v, path) in self.table("", root, TOP) {
            match key {
                "listen" => layer.listen = self.get::<Addr>(&path, v).map(|a| a.0),
                "data_dir" => layer.data_dir = self.get::<FilePath>(&path, v).map(|p| p.0),
                "log_format" => layer.log_format = self.get::<LogFormat>(&path, v),
                "plugins_dir" => {
                    layer.plugins_dir = self.get::<FilePath>(&path, v).map(|p| p.0);
                }
                "store" => self.store(&path, v, layer),
                "hub" => self.hub(&path, v, layer),
                "retry" => layer.retry = self.retry(&path, v),
                "alerts" => layer.alerts = Some(self.alerts(&path, v)),
                "retention" => self.retention(&path, v, layer),
                "http" => self.http(&path, v, layer),
                "event_types" => event_types = self.event_types(&path, v),
                "action_types" => action_types = self.action_types(&path, v),
                "agents" => agents = self.agents(&path, v),
                "rules" => rules = self.rules(&path, v),
                _ => {}
            }
        }
        self.cross_check(&event_types, &agents, &rules);
        layer.event_types = event_types;
        layer.action_types = action_types;
        layer.agents = agents.into_iter().map(|(_, _, a)| a).collect();
        layer.rules = rules.into_iter().map(|r| r.rule).collect();
    }

    fn store(&mut self, path: &str, v: &Value<'i>, layer: &mut Layer) {
        let mut kind = None;
        let mut kind_unreadable = false;
        let mut given: Vec<(&str, Range<usize>, String)> = Vec::new();
        for (key, cv, p) in self.table(path, v, &["kind", "path", "url", "schema", "node"]) {
            match key {
                "kind" => {
                    kind = self.get::<StoreKind>(&p, cv);
                    kind_unreadable = kind.is_none();
                }
                "path" => {
                    layer.store_path = self.get::<FilePath>(&p, cv).map(|f| f.0);
                    given.push((key, cv.span(), p));
                }
                "url" => {
                    if let Some(url) = self.get::<String>(&p, cv) {
                        if let Err(e) = check_postgres_url(&url) {
                            self.error(cv.span(), &p, e);
                        }
                        layer.store_url = Some(url);
                    }
                    given.push((key, cv.span(), p));
                }
                "schema" => {
                    if let Some(schema) = self.get::<String>(&p, cv) {
                        if let Err(e) = check_schema(&schema) {
                            self.error(cv.span(), &p, e);
                        }
                        layer.store_schema = Some(schema);
                    }
                    given.push((key, cv.span(), p));
                }
                "node" => {
                    if let Some(node) = self.get::<String>(&p, cv) {
                        if let Err(e) = check_node(&node) {
                            self.error(cv.span(), &p, e);
                        }
                        layer.node = Some(node);
                    }
                }
                _ => {}
            }
        }
        layer.store_kind = kind;
        if kind_unreadable {
            return;
        }
        let kind = kind.unwrap_or(StoreKind::Sqlite);
        let name = |k: StoreKind| match k {
            StoreKind::Sqlite => "sqlite",
            StoreKind::Postgres => "postgres",
            StoreKind::Memory => "memory",
        };
        for (key, span, p) in &given {
            let belongs = match *key {
                "path" => StoreKind::Sqlite,
                _ => StoreKind::Postgres,
            };
            if belongs != kind {
                self.error(
                    span.clone(),
                    p,
                    format!(
                        "`{key}` is a setting of the {} store, and this store is {}{}",
                        name(belongs),
                        name(kind),
                        if layer_kind_defaulted(v) {
                            format!(" (the default); set kind = \"{}\"", name(belongs))
                        } else {
                            String::new()
                        }
                    ),
                );
            }
        }
        if kind == StoreKind::Postgres && layer.store_url.is_none() && !given_has(&given, "url") {
            self.error(
                v.span(),
                &join(path, "url"),
                "the postgres store needs a url (`postgres://user:password@host/database`)",
            );
        }
    }

    fn hub(&mut self, path: &str, v: &Value<'i>, layer: &mut Layer) {
        let keys = ["keep_alive", "shutdown_grace", "dedupe_window", "lease"];
        for (key, cv, p) in self.table(path, v, &keys) {
            let value = self.get::<Dur>(&p, cv).map(|d| d.0);
            match key {
                "keep_alive" => layer.keep_alive = value,
                "shutdown_grace" => layer.shutdown_grace = value,
                "dedupe_window" => layer.dedupe_window = value,
                "lease" => {
                    if value.is_some_and(|d| d < Duration::from_millis(100)) {
                        self.error(cv.span(), &p, "must be at least 100ms");
                    }
                    layer.lease = value;
                }
                _ => {}
            }
        }
    }

    fn retry(&mut self, path: &str, v: &Value<'i>) -> Option<RetryPolicy> {
        let keys = [
            "max_attempts",
            "initial_backoff",
            "max_backoff",
            "multiplier",
            "jitter",
            "max_elapsed",
        ];
        let mut policy = RetryPolicy::default();
        let mut max_backoff_at = None;
        for (key, cv, p) in self.table(path, v, &keys) {
            match key {
                "max_attempts" => match self.get::<u32>(&p, cv) {
                    Some(0) => self.error(cv.span(), &p, "must be at least 1 (the first attempt)"),
                    Some(n) => policy.max_attempts = n,
                    None => {}
                },
                "initial_backoff" => {
                    if let Some(d) = self.get::<Dur>(&p, cv) {
                        policy.initial_backoff = d.0;
                    }
                }
                "max_backoff" => {
                    if let Some(d) = self.get::<Dur>(&p, cv) {
                        policy.max_backoff = d.0;
                        max_backoff_at = Some((cv.span(), p.clone()));
                    }
                }
                "max_elapsed" => {
                    if let Some(d) = self.get::<Dur>(&p, cv) {
                        policy.max_elapsed = Some(d.0);
                    }
                }
                "multiplier" => match self.get::<f64>(&p, cv) {
                    Some(m) if m.is_finite() && m >= 1.0 => policy.multiplier = m,
                    Some(_) => self.error(cv.span(), &p, "must be at least 1.0"),
                    None => {}
                },
                "jitter" => match self.get::<f64>(&p, cv) {
                    Some(j) if (0.0..=1.0).contains(&j) => policy.jitter = j,
                    Some(_) => self.error(cv.span(), &p, "must be from 0.0 to 1.0"),
                    None => {}
                },
                _ => {}
            }
        }
        if policy.max_backoff < policy.initial_backoff {
            let (span, p) = max_backoff_at.unwrap_or_else(|| (v.span(), join(path, "max_backoff")));
            self.error(
                span,
                &p,
                format!(
                    "must not be shorter than initial_backoff ({})",
                    humantime::format_duration(policy.initial_backoff)
                ),
            );
        }
        Some(policy)
    }

    fn alerts(&mut self, path: &str, v: &Value<'i>) -> AlertConfig {
        let mut config = AlertConfig::default();
        let keys = [
            "sample_interval",
            "error_rate",
            "latency_p95",
            "throughput",
            "queue_depth",
            "per_agent",
        ];
        let entries = self.table(path, v, &keys);
        // The thresholds for every agent first: each agent's own start from them.
        for (key, cv, p) in &entries {
            if *key == "sample_interval" {
                if let Some(d) = self.get::<Dur>(p, cv) {
                    if d.0 < Duration::from_millis(1) {
                        self.error(cv.span(), p, "must be at least 1ms");
                    }
                    config.sample_interval = d.0;
                }
            } else if *key != "per_agent" {
                self.threshold(key, p, cv, &mut config.default);
            }
        }
        for (_, cv, p) in entries.iter().filter(|(k, _, _)| *k == "per_agent") {
            let Some(table) = cv.get_ref().as_table() else {
                self.error(cv.span(), p, "must be a table of agent ids");
                continue;
            };
            for (agent, av) in table.iter() {
                let agent_path = join(p, agent.get_ref());
                if let Err(e) = check_id(agent.get_ref()) {
                    self.error(agent.span(), &agent_path, format!("agent id: {e}"));
                }
                let mut own = config.default.clone();
                let kinds = ["error_rate", "latency_p95", "throughput", "queue_depth"];
                for (key, kv, kp) in self.table(&agent_path, av, &kinds) {
                    self.threshold(key, &kp, kv, &mut own);
                }
                config
                    .per_agent
                    .insert(AgentId::new(&**agent.get_ref()), own);
            }
        }
        config
    }

    /// One alert kind: a table of thresholds, or `false` to turn it off.
    fn threshold(&mut self, key: &str, path: &str, v: &Value<'i>, into: &mut AgentThresholds) {
        if let Some(on) = v.get_ref().as_bool() {
            if on {
                self.error(
                    v.span(),
                    path,
                    "write the thresholds as a table, or `false` to turn this alert off",
                );
            } else {
                match key {
                    "error_rate" => into.error_rate = None,
                    "latency_p95" => into.latency_p95 = None,
                    "throughput" => into.throughput = None,
                    _ => into.queue_depth = None,
                }
            }
            return;
        }
        let window = |c: &mut Self, w: Option<Dur>, at: &str| -> Option<Duration> {
            match w {
                Some(Dur(d)) if d.is_zero() => {
                    c.error(
                        child_span(v, "window"),
                        &join(at, "window"),
                        "must be more than 0",
                    );
                    None
                }
                other => other.map(|d| d.0),
            }
        };
        match key {
            "error_rate" => {
                let Some(t) = self.get::<ErrorRateFile>(path, v) else {
                    return;
                };
                let mut out = ErrorRateThreshold::default();
                if let Some(rate) = t.max_rate {
                    if (0.0..=1.0).contains(&rate) {
                        out.max_rate = rate;
                    } else {
                        self.error(
                            child_span(v, "max_rate"),
                            &join(path, "max_rate"),
                            "must be a fraction from 0.0 to 1.0 (0.05 is 5 %)",
                        );
                    }
                }
                if let Some(w) = window(self, t.window, path) {
                    out.window = w;
                }
                if let Some(n) = t.min_calls {
                    out.min_calls = n;
                }
                into.error_rate = Some(out);
            }
            "latency_p95" => {
                let Some(t) = self.get::<LatencyFile>(path, v) else {
                    return;
                };
                let mut out = LatencyThreshold::new(t.max_p95.0);
                if let Some(w) = window(self, t.window, path) {
                    out.window = w;
                }
                if let Some(n) = t.min_calls {
                    out.min_calls = n;
                }
                into.latency_p95 = Some(out);
            }
            "throughput" => {
                let Some(t) = self.get::<ThroughputFile>(path, v) else {
                    return;
                };
                if !(t.min_per_sec.is_finite() && t.min_per_sec > 0.0) {
                    self.error(
                        child_span(v, "min_per_sec"),
                        &join(path, "min_per_sec"),
                        "must be more than 0",
                    );
                }
                let mut out = ThroughputThreshold::new(t.min_per_sec);
                if let Some(w) = window(self, t.window, path) {
                    out.window = w;
                }
                into.throughput = Some(out);
            }
            _ => {
                let Some(t) = self.get::<QueueDepthFile>(path, v) else {
                    return;
                };
                into.queue_depth = Some(QueueDepthThreshold::new(t.max_len, t.for_at_least.0));
            }
        }
    }

    fn retention(&mut self, path: &str, v: &Value<'i>, layer: &mut Layer) {
        for (key, cv, p) in self.table(path, v, &["audit", "tenants"]) {
            match key {
                "audit" => layer.retention.audit = self.age(&p, cv),
                _ => {
                    let Some(table) = cv.get_ref().as_table() else {
                        self.error(cv.span(), &p, "must be a table of tenants");
                        continue;
                    };
                    for (tenant, tv) in table.iter() {
                        let tp = join(&p, tenant.get_ref());
                        if let Err(e) = check_id(tenant.get_ref()) {
                            self.error(tenant.span(), &tp, format!("tenant: {e}"));
                        }
                        let entries = self.table(&tp, tv, &["audit"]);
                        if entries.is_empty() && tv.get_ref().is_table() {
                            self.error(tv.span(), &join(&tp, "audit"), "missing key `audit`");
                        }
                        for (_, av, ap) in entries {
                            if let Some(age) = self.age(&ap, av) {
                                layer
                                    .retention
                                    .tenants
                                    .insert(TenantId::new(&**tenant.get_ref()), age);
                            }
                        }
                    }
                }
            }
        }
    }

    /// A retention age: a duration longer than 0.
    fn age(&mut self, path: &str, v: &Value<'i>) -> Option<Duration> {
        let d = self.get::<Dur>(path, v)?.0;
        if d.is_zero() {
            self.error(v.span(), path, "must be more than 0");
            return None;
        }
        Some(d)
    }

    fn http(&mut self, path: &str, v: &Value<'i>, layer: &mut Layer) {
        let keys = ["body_limit", "rate_limit", "rate_burst", "request_wait_max"];
        let mut burst_at = None;
        for (key, cv, p) in self.table(path, v, &keys) {
            match key {
                "body_limit" => match self.get::<Bytes>(&p, cv) {
                    Some(Bytes(0)) => self.error(cv.span(), &p, "must be at least 1 byte"),
                    Some(Bytes(n)) => layer.body_limit = Some(n),
                    None => {}
                },
                "rate_limit" => layer.rate_limit = self.get::<u32>(&p, cv),
                "rate_burst" => {
                    layer.rate_burst = self.get::<u32>(&p, cv);
                    burst_at = Some((cv.span(), p));
                }
                "request_wait_max" => {
                    layer.request_wait_max = self.get::<Dur>(&p, cv).map(|d| d.0);
                }
                _ => {}
            }
        }
        let rate = layer.rate_limit.unwrap_or(DEFAULT_RATE_LIMIT);
        if let (Some(0), Some((span, p))) = (layer.rate_burst, burst_at) {
            if rate > 0 {
                self.error(span, &p, "must be at least 1 while rate_limit is on");
            }
        }
    }

    fn event_types(&mut self, path: &str, v: &Value<'i>) -> Vec<EventTypeBody> {
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for (p, entry) in self.array(path, v) {
            let Some(body) = self.get::<EventTypeBody>(&p, entry) else {
                continue;
            };
            if let Err(problems) = body.to_def() {
                self.problems(&p, entry, problems);
            }
            let at = child_span(entry, "name");
            self.unique(&mut seen, "event type", &body.name, &at, &join(&p, "name"));
            out.push(body);
        }
        out
    }

    fn action_types(&mut self, path: &str, v: &Value<'i>) -> Vec<ActionTypeBody> {
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for (p, entry) in self.array(path, v) {
            let Some(body) = self.get::<ActionTypeBody>(&p, entry) else {
                continue;
            };
            if let Err(problems) = body.to_def() {
                self.problems(&p, entry, problems);
            }
            let at = child_span(entry, "name");
            self.unique(&mut seen, "action type", &body.name, &at, &join(&p, "name"));
            out.push(body);
        }
        out
    }

    fn agents<'v>(
        &mut self,
        path: &str,
        v: &'v Value<'i>,
    ) -> Vec<(String, &'v Value<'i>, AgentDef)> {
        let mut out = Vec::new();
        let mut seen = HashMap::new();
        for (p, entry) in self.array(path, v) {
            let Some(agent) = self.get::<AgentDef>(&p, entry) else {
                continue;
            };
            let problems = agent.problems();
            self.problems(&p, entry, problems);
            self.builtin_config(&p, entry, agent.kind);
            let at = child_span(entry, "id");
            self.unique(&mut seen, "agent", &agent.id, &at, &join(&p, "id"));
            out.push((p, entry, agent));
        }
        out
    }

    fn rules<'v>(&mut self, path: &str, v: &'v Value<'i>) -> Vec<RuleEntry<'v, 'i>> {
        let mut out = Vec::new();
        for (p, entry) in self.array(path, v) {
            if let Some(rule) = self.get::<atamo_config::Rule>(&p, entry) {
                out.push(RuleEntry {
                    path: p,
                    value: entry,
                    rule,
                });
            }
        }
        let Err(e) = RuleSet::new(out.iter().map(|r| r.rule.clone()).collect()) else {
            return out;
        };
        for problem in e.problems {
            let id = match &problem {
                RuleProblem::DuplicateId { rule }
                | RuleProblem::Template { rule, .. }
                | RuleProblem::InvalidName { rule, .. } => rule.clone(),
                _ => {
                    let span = v.span();
                    self.error(span, path, problem.to_string());
                    continue;
                }
            };
            let mut same = out.iter().filter(|r| r.rule.id == id);
            let Some(first) = same.next() else {
                continue;
            };
            match &problem {
                RuleProblem::DuplicateId { .. } => {
                    let first_line = self.line_of(&child_span(first.value, "id"));
                    let later: Vec<_> = same
                        .map(|r| (child_span(r.value, "id"), join(&r.path, "id")))
                        .collect();
                    for (span, p) in later {
                        self.error(
                            span,
                            &p,
                            format!("rule `{id}` is defined more than once (first at line {first_line})"),
                        );
                    }
                }
                RuleProblem::Template { source, .. } => {
                    let template = first
                        .value
                        .get_ref()
                        .as_table()
                        .and_then(|t| t.get("template"));
                    let (span, p) = match template {
                        Some(t) => {
                            let (at, inner) = descend(t, source.path());
                            (at.span(), format!("{}.template{inner}", first.path))
                        }
                        None => (first.value.span(), first.path.clone()),
                    };
                    self.error(span, &p, source.to_string());
                }
                RuleProblem::InvalidName { source, .. } => {
                    let message = source.to_string();
                    let key = [
                        ("rule id", "id"),
                        ("event type", "event_type"),
                        ("agent id", "agent"),
                        ("action type", "action"),
                        ("user id", "user"),
                        ("group id", "group"),
                        ("tenant id", "tenant"),
                    ]
                    .into_iter()
                    .find_map(|(kind, key)| message.starts_with(kind).then_some(key));
                    let (span, p) = match key {
                        Some(key) => (child_span(first.value, key), join(&first.path, key)),
                        None => (first.value.span(), first.path.clone()),
                    };
                    self.error(span, &p, message);
                }
                _ => {}
            }
        }
        out
    }

    /// Reads a built-in agent's `config` into that agent's own settings type, without
    /// building the agent, so that a misspelt or missing setting is found before the service
    /// starts.
    fn builtin_config(&mut self, path: &str, entry: &Value<'i>, kind: AgentKind) {
        use atamo_agents::builtin::{command, email, http, sql};
        let Some(config) = entry.get_ref().as_table().and_then(|t| t.get("config")) else {
            // No settings: the agent's kind says what it misses.
            let empty = serde_json::Value::Object(Default::default());
            let missing = match kind {
                AgentKind::Http => serde_json::from_value::<http::HttpConfig>(empty).err(),
                AgentKind::Sql => serde_json::from_value::<sql::SqlConfig>(empty).err(),
                AgentKind::Email => serde_json::from_value::<email::EmailConfig>(empty).err(),
                AgentKind::Command => serde_json::from_value::<command::CommandConfig>(empty).err(),
                AgentKind::Native | AgentKind::Process => None,
            };
            if let Some(e) = missing {
                self.error(entry.span(), &join(path, "config"), e.to_string());
            }
            return;
        };
        if !config.get_ref().is_table() {
            // Reported by the model's validator.
            return;
        }
        let p = join(path, "config");
        match kind {
            AgentKind::Http => {
                // `url` stands for `base_url`, as the agent's registration reads it.
                let mut config = config.clone();
                if let DeValue::Table(t) = config.get_mut() {
                    if !t.contains_key("base_url") {
                        if let Some((key, url)) = t.remove_entry("url") {
                            t.insert(Spanned::new(key.span(), Cow::Borrowed("base_url")), url);
                        }
                    }
                }
                drop(self.get::<http::HttpConfig>(&p, &config));
            }
            AgentKind::Sql => drop(self.get::<sql::SqlConfig>(&p, config)),
            AgentKind::Email => drop(self.get::<email::EmailConfig>(&p, config)),
            AgentKind::Command => drop(self.get::<command::CommandConfig>(&p, config)),
            AgentKind::Native | AgentKind::Process => {}
        }
    }

    /// The problems a model validator found, as `(field, message)`, each at its field.
    fn problems(&mut self, path: &str, entry: &Value<'i>, problems: Vec<(String, String)>) {
        for (field, message) in problems {
            let span = locate(entry, &field);
            self.error(span, &format!("{path}.{field}"), message);
        }
    }

    /// Reports `name` when `seen` has it already, else records it.
    fn unique(
        &mut self,
        seen: &mut HashMap<String, usize>,
        what: &str,
        name: &str,
        at: &Range<usize>,
        path: &str,
    ) {
        match seen.get(name) {
            Some(first) => {
                let message =
                    format!("{what} `{name}` is declared more than once (first at line {first})");
                self.error(at.clone(), path, message);
            }
            None => {
                let line = self.line_of(at);
                seen.insert(name.to_owned(), line);
            }
        }
    }

    /// Rules against the agents and event types of the file. A name the file does not
    /// declare may be registered through the API later: a warning. An agent the file
    /// declares that does not handle the rule's action: an error.
    fn cross_check(
        &mut self,
        event_types: &[EventTypeBody],
        agents: &[(String, &Value<'i>, AgentDef)],
        rules: &[RuleEntry<'_, 'i>],
    ) {
        let declared: HashMap<&str, &AgentDef> =
            agents.iter().map(|(_, _, a)| (a.id.as_str(), a)).collect();
        for r in rules {
            let rule = &r.rule;
            match declared.get(rule.agent.as_str()) {
                None => self.warn(
                    child_span(r.value, "agent"),
                    &join(&r.path, "agent"),
                    format!(
                        "agent `{}` is not declared in this file; the rule acts once it is \
                         registered through the API",
                        rule.agent
                    ),
                ),
                Some(agent) => {
                    let handles = agent.handled_types();
                    if !handles.iter().any(|h| h == rule.action.as_str()) {
                        self.error(
                            child_span(r.value, "action"),
                            &join(&r.path, "action"),
                            format!(
                                "agent `{}` does not handle `{}` (it handles {})",
                                agent.id,
                                rule.action,
                                list(&handles.iter().map(String::as_str).collect::<Vec<_>>())
                            ),
                        );
                    }
                }
            }
            if let Some(fallback) = &rule.fallback {
                if !declared.contains_key(fallback.as_str()) {
                    self.warn(
                        child_span(r.value, "fallback"),
                        &join(&r.path, "fallback"),
                        format!(
                            "agent `{fallback}` is not declared in this file; it must be \
                             registered through the API"
                        ),
                    );
                }
            }
            let event_type = rule.event_type.as_str();
            if !BUILTIN_EVENT_TYPES.contains(&event_type)
                && !event_types.iter().any(|t| t.name == event_type)
            {
                self.warn(
                    child_span(r.value, "event_type"),
                    &join(&r.path, "event_type"),
                    format!(
                        "event type `{event_type}` is not declared in this file; the rule \
                         matches once it is registered through the API"
                    ),
                );
            }
        }
    }
}

fn layer_kind_defaulted(store: &Value<'_>) -> bool {
    store
        .get_ref()
        .as_table()
        .is_some_and(|t| t.get("kind").is_none())
}

fn given_has(given: &[(&str, Range<usize>, String)], key: &str) -> bool {
    given.iter().any(|(k, _, _)| *k == key)
}

/// `error_rate = { max_rate, window, min_calls }`, each optional.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ErrorRateFile {
    max_rate: Option<f64>,
    window: Option<Dur>,
    min_calls: Option<u64>,
}

/// `latency_p95 = { max_p95, window, min_calls }`, `max_p95` required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LatencyFile {
    max_p95: Dur,
    window: Option<Dur>,
    min_calls: Option<u64>,
}

/// `throughput = { min_per_sec, window }`, `min_per_sec` required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ThroughputFile {
    min_per_sec: f64,
    window: Option<Dur>,
}

/// `queue_depth = { max_len, for }`, both required.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct QueueDepthFile {
    max_len: usize,
    #[serde(rename = "for")]
    for_at_least: Dur,
}

fn join(path: &str, key: &str) -> String {
    if path.is_empty() {
        key.to_owned()
    } else {
        format!("{path}.{key}")
    }
}

/// `` `a`, `b` or `c` ``.
fn list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        None => "nothing".to_owned(),
        Some((last, [])) => last.clone(),
        Some((last, rest)) => format!("{} or {last}", rest.join(", ")),
    }
}

fn has_datetime(v: &Value<'_>) -> bool {
    match v.get_ref() {
        DeValue::Datetime(_) => true,
        DeValue::Table(t) => t.iter().any(|(_, cv)| has_datetime(cv)),
        DeValue::Array(a) => a.iter().any(has_datetime),
        _ => false,
    }
}

fn inside(outer: &Range<usize>, inner: &Range<usize>) -> bool {
    outer.start <= inner.start && inner.end <= outer.end
}

/// The path below `v` (`.kind`, `[2].url`) of the key or value at `span`.
fn find_path(v: &Value<'_>, span: &Range<usize>) -> Option<String> {
    match v.get_ref() {
        DeValue::Table(t) => t.iter().find_map(|(k, cv)| {
            let seg = format!(".{}", k.get_ref());
            if inside(&k.span(), span) {
                return Some(seg);
            }
            if let Some(rest) = find_path(cv, span) {
                return Some(seg + &rest);
            }
            inside(&cv.span(), span).then_some(seg)
        }),
        DeValue::Array(a) => a.iter().enumerate().find_map(|(i, cv)| {
            let seg = format!("[{i}]");
            if let Some(rest) = find_path(cv, span) {
                return Some(seg + &rest);
            }
            inside(&cv.span(), span).then_some(seg)
        }),
        _ => None,
    }
}

/// Where `key`'s value starts in table `v`; `v` itself when it has no such key.
fn child_span(v: &Value<'_>, key: &str) -> Range<usize> {
    v.get_ref()
        .as_table()
        .and_then(|t| t.get(key))
        .map_or_else(|| v.span(), Spanned::span)
}

/// Where a validator's field (`config`, `handles[1]`) starts in `entry`.
fn locate(entry: &Value<'_>, field: &str) -> Range<usize> {
    let (key, index) = match field.split_once('[') {
        Some((key, rest)) => (key, rest.trim_end_matches(']').parse::<usize>().ok()),
        None => (field, None),
    };
    let Some(value) = entry.get_ref().as_table().and_then(|t| t.get(key)) else {
        return entry.span();
    };
    index
        .and_then(|i| value.get_ref().as_array().and_then(|a| a.get(i)))
        .unwrap_or(value)
        .span()
}

/// The value at a dotted path below `v` (digits index arrays), as deep as the path leads,
/// with the path it followed (`.body.to`).
fn descend<'v, 'i>(v: &'v Value<'i>, dotted: &str) -> (&'v Value<'i>, String) {
    let mut at = v;
    let mut followed = String::new();
    for seg in dotted.split('.').filter(|s| !s.is_empty()) {
        let next = match at.get_ref() {
            DeValue::Table(t) => t.get(seg),
            DeValue::Array(a) => seg.parse::<usize>().ok().and_then(|i| a.get(i)),
            _ => None,
        };
        let Some(next) = next else {
            break;
        };
        at = next;
        followed.push('.');
        followed.push_str(seg);
    }
    (at, followed)
}

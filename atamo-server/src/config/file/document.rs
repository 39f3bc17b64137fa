//! The whole document: parsed once, its top-level keys handed to the section checkers, the
//! registrations checked against each other, every issue sorted by place.

use std::path::Path;

use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::checker::Checker;
use super::spans::Value;
use crate::config::issue::ConfigIssue;
use crate::config::layer::Layer;
use crate::config::settings::LogFormat;
use crate::config::units::{Addr, FilePath};

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

/// What the file says, with every error and warning in file order.
pub(crate) struct Checked {
    pub layer: Layer,
    pub errors: Vec<ConfigIssue>,
    pub warnings: Vec<ConfigIssue>,
}

/// Checks the text of a configuration file (`file` names it in the issues).
pub(crate) fn check(text: &str, file: Option<&Path>) -> Checked {
    let mut c = Checker::new(text, file);
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

impl<'i> Checker<'_> {
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
}

//! `[hub]`: the hub's timings.

use atamo_core::bounded::{DedupeWindow, Grace, KeepAlive, Lease};

use super::checker::Checker;
use super::spans::Value;
use crate::config::layer::Layer;

impl<'i> Checker<'_> {
    pub(super) fn hub(&mut self, path: &str, v: &Value<'i>, layer: &mut Layer) {
        let keys = ["keep_alive", "shutdown_grace", "dedupe_window", "lease"];
        for (key, cv, p) in self.table(path, v, &keys) {
            match key {
                "keep_alive" => layer.keep_alive = self.duration(&p, cv, KeepAlive::new),
                "shutdown_grace" => {
                    layer.shutdown_grace = self.duration(&p, cv, Grace::new);
                }
                "dedupe_window" => {
                    layer.dedupe_window = self.duration(&p, cv, DedupeWindow::new);
                }
                "lease" => layer.lease = self.duration(&p, cv, Lease::new),
                _ => {}
            }
        }
    }
}

//! `[hub]`: the hub's timings.

use std::time::Duration;

use super::checker::Checker;
use super::spans::Value;
use crate::config::layer::Layer;
use crate::config::units::Dur;

impl<'i> Checker<'_> {
    pub(super) fn hub(&mut self, path: &str, v: &Value<'i>, layer: &mut Layer) {
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
}

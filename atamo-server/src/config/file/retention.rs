//! `[retention]`: how long stored things are kept, for everyone and per tenant.

use std::time::Duration;

use atamo_core::TenantId;

use super::checker::Checker;
use super::spans::{join, Value};
use crate::config::layer::Layer;
use crate::config::units::Dur;
use crate::model::check_id;

impl<'i> Checker<'_> {
    pub(super) fn retention(&mut self, path: &str, v: &Value<'i>, layer: &mut Layer) {
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
    pub(super) fn age(&mut self, path: &str, v: &Value<'i>) -> Option<Duration> {
        let d = self.get::<Dur>(path, v)?.0;
        if d.is_zero() {
            self.error(v.span(), path, "must be more than 0");
            return None;
        }
        Some(d)
    }
}

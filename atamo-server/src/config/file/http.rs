//! `[http]`: the REST API's limits.

use super::checker::Checker;
use super::spans::Value;
use crate::config::layer::Layer;
use crate::config::settings::DEFAULT_RATE_LIMIT;
use crate::config::units::{check_body_limit, Bytes};
use atamo_core::bounded::Wait;

impl<'i> Checker<'_> {
    pub(super) fn http(&mut self, path: &str, v: &Value<'i>, layer: &mut Layer) {
        let keys = ["body_limit", "rate_limit", "rate_burst", "request_wait_max"];
        let mut burst_at = None;
        for (key, cv, p) in self.table(path, v, &keys) {
            match key {
                "body_limit" => {
                    if let Some(Bytes(n)) = self.get::<Bytes>(&p, cv) {
                        match check_body_limit(n) {
                            Ok(n) => layer.body_limit = Some(n),
                            Err(e) => self.error(cv.span(), &p, e),
                        }
                    }
                }
                "rate_limit" => layer.rate_limit = self.get::<u32>(&p, cv),
                "rate_burst" => {
                    layer.rate_burst = self.get::<u32>(&p, cv);
                    burst_at = Some((cv.span(), p));
                }
                "request_wait_max" => {
                    layer.request_wait_max = self.duration(&p, cv, Wait::new);
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
}

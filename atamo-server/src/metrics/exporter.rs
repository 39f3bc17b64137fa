//! [`Metrics`]: the handle the service keeps. It starts the recorder, records HTTP requests
//! and renders `GET /metrics`.

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Duration;

use atamo_core::telemetry::TelemetrySubscriber;
use atamo_core::Control;
use futures_util::FutureExt;
use prometheus_client::registry::Registry;
use tracing::Instrument;

use super::families::HubMetrics;
use super::gauges::HubGauges;
use super::http::HttpMetrics;
use super::recorder::{count, Tally};

/// The hub's and the HTTP service's metrics, rendered for Prometheus.
///
/// Dropping it (its last `Arc`) stops the counting task.
pub struct Metrics {
    registry: Registry,
    http: HttpMetrics,
    task: tokio::task::AbortHandle,
}

impl Drop for Metrics {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

/// Counts the hub's telemetry until it ends. A panic in counting is logged and counting
/// goes on with the same counters and subscription (the batch in hand is not counted).
async fn counting(mut sub: TelemetrySubscriber, mut tally: Tally) {
    loop {
        match AssertUnwindSafe(count(&mut sub, &mut tally))
            .catch_unwind()
            .await
        {
            Ok(()) => return,
            Err(panic) => {
                let panic = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_default();
                tracing::error!(%panic, "metrics counting panicked; restarting it");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

impl Metrics {
    /// The content type to answer `GET /metrics` with: the Prometheus text format 0.0.4.
    pub const CONTENT_TYPE: &'static str =
        prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

    /// Starts counting the hub's telemetry (a task on the current tokio runtime). Steps from
    /// this call on are counted; earlier ones are not.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(control: Control) -> Arc<Self> {
        let mut registry = Registry::with_prefix("atamo");
        let hub = HubMetrics::register(&mut registry);
        let http = HttpMetrics::register(&mut registry);
        registry.register_collector(Box::new(HubGauges {
            control: control.clone(),
        }));
        // Subscribed before the task runs, so nothing after `start` returns is missed.
        let sub = control.subscribe();
        let span = tracing::info_span!("metrics");
        let task = tokio::spawn(counting(sub, Tally::new(hub)).instrument(span)).abort_handle();
        Arc::new(Self {
            registry,
            http,
            task,
        })
    }

    /// Records one finished HTTP request: `route` is the route template
    /// (`/v1/events/{id}`), never the raw path.
    pub fn observe_http(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        self.http.observe(method, route, status, elapsed);
    }

    /// The exposition text (gauges read from [`Control::health`] now).
    pub fn render(&self) -> String {
        let mut out = String::with_capacity(16 * 1024);
        if let Err(e) =
            prometheus_client::encoding::prometheus_text::encode(&mut out, &self.registry)
        {
            // Writing to a String fails only if a metric's encoding does.
            tracing::error!(error = %e, "metrics could not be encoded");
        }
        out
    }
}

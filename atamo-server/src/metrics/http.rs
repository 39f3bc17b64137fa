//! The HTTP service's metrics: requests by method, route template and status, and their
//! durations.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::{Registry, Unit};

use super::families::HistogramFamily;

/// Upper bounds (seconds) of the HTTP request duration buckets; waiting for a request's
/// answers may take a while.
const HTTP_BUCKETS: [f64; 16] = [
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
    60.0,
];

/// The `route` of HTTP requests past [`MAX_HTTP_ROUTES`].
const OTHER_ROUTE: &str = "(other)";
/// The most method and route pairs the HTTP metrics keep apart.
pub(super) const MAX_HTTP_ROUTES: usize = 256;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HttpLabels {
    method: &'static str,
    route: String,
    status: u16,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RouteLabels {
    method: &'static str,
    route: String,
}

fn http_histogram() -> Histogram {
    Histogram::new(HTTP_BUCKETS)
}

/// The HTTP service's metrics.
pub(super) struct HttpMetrics {
    requests: Family<HttpLabels, Counter>,
    duration: HistogramFamily<RouteLabels>,
    /// Method and route pairs seen.
    routes: AtomicUsize,
    overflow_warned: AtomicBool,
}

impl HttpMetrics {
    pub(super) fn register(r: &mut Registry) -> Self {
        let m = Self {
            requests: Family::default(),
            duration: Family::new_with_constructor(http_histogram),
            routes: AtomicUsize::new(0),
            overflow_warned: AtomicBool::new(false),
        };
        r.register(
            "http_requests",
            "Finished HTTP requests, by method, route template and status",
            m.requests.clone(),
        );
        r.register_with_unit(
            "http_request_duration",
            "How long HTTP requests took to answer, by method and route template",
            Unit::Seconds,
            m.duration.clone(),
        );
        m
    }

    pub(super) fn observe(&self, method: &str, route: &str, status: u16, elapsed: Duration) {
        let method = method_label(method);
        let mut labels = RouteLabels {
            method,
            route: route.to_owned(),
        };
        // A new pair takes one of the places; concurrent first requests may overshoot the
        // limit by a few, which is harmless.
        if self.duration.get(&labels).is_none()
            && self.routes.fetch_add(1, Ordering::Relaxed) >= MAX_HTTP_ROUTES
        {
            self.routes.fetch_sub(1, Ordering::Relaxed);
            if !self.overflow_warned.swap(true, Ordering::Relaxed) {
                tracing::warn!(
                    route,
                    "more than {MAX_HTTP_ROUTES} HTTP method and route pairs; new ones are \
                     counted as route=\"{OTHER_ROUTE}\" (is a raw path passed as the route?)"
                );
            }
            labels.route = OTHER_ROUTE.to_owned();
        }
        self.duration
            .get_or_create(&labels)
            .observe(elapsed.as_secs_f64());
        self.requests
            .get_or_create(&HttpLabels {
                method,
                route: labels.route,
                status,
            })
            .inc();
    }
}

/// The standard methods by name; anything else is `OTHER`, so that clients cannot make up
/// label values.
fn method_label(method: &str) -> &'static str {
    const KNOWN: [&str; 9] = [
        "GET", "HEAD", "POST", "PUT", "DELETE", "CONNECT", "OPTIONS", "TRACE", "PATCH",
    ];
    KNOWN
        .into_iter()
        .find(|m| m.eq_ignore_ascii_case(method))
        .unwrap_or("OTHER")
}

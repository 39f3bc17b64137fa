use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::Stream;
use tokio::sync::mpsc;

use super::TelemetryEvent;

/// The sending side of a monitored event's telemetry. The event and each of its actions hold
/// one; when the last action ends, the last sender goes and the client's stream ends.
#[derive(Clone)]
pub(crate) struct Monitor(mpsc::UnboundedSender<TelemetryEvent>);

impl Monitor {
    pub(crate) fn new() -> (Self, MonitorStream) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Self(tx), MonitorStream { rx })
    }

    pub(crate) fn send(&self, ev: TelemetryEvent) {
        // The client may have stopped listening; that is its choice.
        let _ = self.0.send(ev);
    }
}

/// The telemetry of one monitored event, from `accepted` until every one of its actions has
/// ended (succeeded, failed or abandoned).
///
/// Its memory is bounded by the number of steps of one event, so it never needs to drop
/// anything, and it never slows routing.
pub struct MonitorStream {
    rx: mpsc::UnboundedReceiver<TelemetryEvent>,
}

impl MonitorStream {
    /// The next step, or `None` once every action of the event has ended.
    pub async fn next(&mut self) -> Option<TelemetryEvent> {
        self.rx.recv().await
    }

    /// Collects every remaining step until the event's work is done.
    pub async fn collect(mut self) -> Vec<TelemetryEvent> {
        let mut out = Vec::new();
        while let Some(ev) = self.rx.recv().await {
            out.push(ev);
        }
        out
    }
}

impl Stream for MonitorStream {
    type Item = TelemetryEvent;
    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.rx.poll_recv(cx)
    }
}

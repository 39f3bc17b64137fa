//! Tasks spawned on the plugin's runtime, whose panics reach the call that awaits them.

/// Spawns a task on the plugin's runtime. Awaiting the handle gives the task's output; if the
/// task panicked, the panic continues in the awaiting task, so a call that awaits a task
/// that panics fails as `Panicked` rather than hanging or losing the panic.
pub fn spawn<F>(future: F) -> JoinHandle<F::Output>
where
    F: std::future::Future + Send + 'static,
    F::Output: Send + 'static,
{
    JoinHandle(crate::runtime::handle().spawn(future))
}

/// A task spawned with [`spawn`].
#[derive(Debug)]
pub struct JoinHandle<T>(tokio::task::JoinHandle<T>);

impl<T> std::future::Future for JoinHandle<T> {
    type Output = T;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<T> {
        match std::pin::Pin::new(&mut self.0).poll(cx) {
            std::task::Poll::Ready(Ok(value)) => std::task::Poll::Ready(value),
            std::task::Poll::Ready(Err(err)) if err.is_panic() => {
                std::panic::resume_unwind(err.into_panic())
            }
            std::task::Poll::Ready(Err(_)) => {
                // Cancelled: only happens when the runtime shuts down, which ends the call too.
                std::panic::resume_unwind(Box::new("spawned task was cancelled"))
            }
            std::task::Poll::Pending => std::task::Poll::Pending,
        }
    }
}

impl<T> JoinHandle<T> {
    /// Stops the task.
    pub fn abort(&self) {
        self.0.abort();
    }
}

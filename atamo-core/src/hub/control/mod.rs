//! The controller's side: registering what the hub routes with ([`registry`]), listing and
//! watching it ([`watch`]), and operating it ([`operate`]: control messages, the store, dead
//! letters).

mod operate;
mod registry;
mod watch;

use std::sync::Arc;

use super::definitions::ConfigError;
use super::routing::Routing;
use super::shared::Shared;

/// The controller's handle: registers and removes event types, action types, agents and rule
/// providers at runtime, lists them, reports health and hands out telemetry subscriptions.
///
/// Every change is atomic: the router sees the registry before or after it, never halfway.
/// Cheap to clone.
#[derive(Clone)]
pub struct Control {
    pub(crate) shared: Arc<Shared>,
}

impl std::fmt::Debug for Control {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Control").finish_non_exhaustive()
    }
}

impl Control {
    fn update<T>(
        &self,
        f: impl FnOnce(&mut Routing) -> Result<T, ConfigError>,
    ) -> Result<T, ConfigError> {
        let _serial = match self.shared.control_lock.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        };
        let mut next = (**self.shared.routing.load()).clone();
        let out = f(&mut next)?;
        next.reindex();
        self.shared.routing.store(Arc::new(next));
        Ok(out)
    }
}

//! The hub's register of its long-lived components: each task reports its state here through
//! its [`ComponentHandle`], the store's condition is read from the store itself, and intake
//! asks [`Components::refusal`] before it accepts an event.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use crate::message::Timestamp;
use crate::status::{ComponentState, ComponentStatus, NotReady, Readiness};
use crate::store::Store;

/// The name a stateful hub's store is listed under.
pub(crate) const STORE: &str = "store";

/// Every long-lived component of one hub, with its state.
pub(crate) struct Components {
    inner: Mutex<Inner>,
    /// How many essential components are not working now: intake reads it with one atomic
    /// load, and looks closer only when it is not zero.
    down: AtomicUsize,
    /// A stateful hub's store, whose condition is read when asked (it costs no I/O).
    store: Option<Arc<dyn Store>>,
}

#[derive(Default)]
struct Inner {
    next: u64,
    entries: BTreeMap<u64, Entry>,
    /// The store's condition as last read, and since when it holds.
    store_seen: Option<(ComponentState, Timestamp)>,
}

struct Entry {
    name: Arc<str>,
    essential: bool,
    state: ComponentState,
    since: Timestamp,
    restarts: u64,
}

impl Entry {
    fn status(&self) -> ComponentStatus {
        ComponentStatus {
            name: self.name.to_string(),
            state: self.state.clone(),
            since: self.since,
            restarts: self.restarts,
            essential: self.essential,
        }
    }

    /// Whether the entry counts in `down`.
    fn is_down(&self) -> bool {
        self.essential && !self.state.is_working()
    }
}

impl Components {
    pub(crate) fn new(store: Option<Arc<dyn Store>>) -> Arc<Self> {
        Arc::new(Self {
            inner: Mutex::new(Inner::default()),
            down: AtomicUsize::new(0),
            store,
        })
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        match self.inner.lock() {
            Ok(g) => g,
            Err(poisoned) => poisoned.into_inner(),
        }
    }

    /// Lists a new component, ready. It stays listed until its handle is dropped (or, for a
    /// component that failed for good, until the hub is dropped).
    pub(crate) fn register(
        self: &Arc<Self>,
        name: impl Into<Arc<str>>,
        essential: bool,
    ) -> ComponentHandle {
        let name = name.into();
        let mut inner = self.lock();
        let id = inner.next;
        inner.next += 1;
        inner.entries.insert(
            id,
            Entry {
                name: name.clone(),
                essential,
                state: ComponentState::Ready,
                since: Timestamp::now(),
                restarts: 0,
            },
        );
        ComponentHandle {
            components: self.clone(),
            id,
            name,
            listed_after_drop: false,
        }
    }

    /// Changes a component's state (and counts a restart when `restarted`).
    fn set(&self, id: u64, state: ComponentState, restarted: bool) {
        let mut inner = self.lock();
        let Some(entry) = inner.entries.get_mut(&id) else {
            return;
        };
        let was_down = entry.is_down();
        if restarted {
            entry.restarts += 1;
        }
        if entry.state != state {
            entry.state = state;
            entry.since = Timestamp::now();
        }
        let is_down = entry.is_down();
        self.count(was_down, is_down);
    }

    fn remove(&self, id: u64) {
        let mut inner = self.lock();
        if let Some(entry) = inner.entries.remove(&id) {
            self.count(entry.is_down(), false);
        }
    }

    fn count(&self, was_down: bool, is_down: bool) {
        match (was_down, is_down) {
            (false, true) => {
                self.down.fetch_add(1, Ordering::AcqRel);
            }
            (true, false) => {
                self.down.fetch_sub(1, Ordering::AcqRel);
            }
            _ => {}
        }
    }

    /// Why the hub cannot accept and keep an event now, or `None` when it can: cheap enough
    /// for every publish (one atomic load, and a stateful hub's store condition).
    pub(crate) fn refusal(&self) -> Option<String> {
        if self.down.load(Ordering::Acquire) > 0 {
            let reasons = self.reasons();
            if !reasons.is_empty() {
                return Some(Readiness::from_reasons(reasons).summary());
            }
        }
        let store = self.store.as_ref()?;
        let condition = store.condition();
        if condition.is_working() {
            return None;
        }
        let reason = condition.reason().unwrap_or("not working").to_owned();
        Some(
            NotReady {
                component: STORE.into(),
                reason,
            }
            .to_string(),
        )
    }

    /// The essential components that are not working, and the store if it is not.
    pub(crate) fn reasons(&self) -> Vec<NotReady> {
        let store = self.store_status();
        let inner = self.lock();
        let mut reasons: Vec<NotReady> = inner
            .entries
            .values()
            .filter(|e| e.is_down())
            .map(|e| NotReady {
                component: e.name.to_string(),
                reason: e.state.reason().unwrap_or("not working").to_owned(),
            })
            .collect();
        if let Some(store) = store.filter(|s| !s.state.is_working()) {
            reasons.push(NotReady {
                component: store.name,
                reason: store.state.reason().unwrap_or("not working").to_owned(),
            });
        }
        reasons
    }

    /// Every component, by name; the store's condition read now.
    pub(crate) fn list(&self) -> Vec<ComponentStatus> {
        let store = self.store_status();
        let inner = self.lock();
        let mut out: Vec<ComponentStatus> = inner.entries.values().map(Entry::status).collect();
        out.extend(store);
        out.sort_by(|a, b| a.name.cmp(&b.name));
        out
    }

    /// The store's condition, with the time it was first seen in it.
    fn store_status(&self) -> Option<ComponentStatus> {
        let store = self.store.as_ref()?;
        let condition = store.condition();
        let mut inner = self.lock();
        let since = match &inner.store_seen {
            Some((seen, since)) if *seen == condition => *since,
            _ => {
                let now = Timestamp::now();
                inner.store_seen = Some((condition.clone(), now));
                now
            }
        };
        Some(ComponentStatus {
            name: STORE.into(),
            state: condition,
            since,
            restarts: 0,
            essential: true,
        })
    }
}

/// A component's link to the register: it reports through it, and is unlisted when it is
/// dropped (its task ended) unless it [failed for good](Self::failed_for_good).
pub(crate) struct ComponentHandle {
    components: Arc<Components>,
    id: u64,
    name: Arc<str>,
    listed_after_drop: bool,
}

impl ComponentHandle {
    /// The component's name.
    pub(crate) fn name(&self) -> &str {
        &self.name
    }

    /// Working again.
    pub(crate) fn ready(&self) {
        self.components.set(self.id, ComponentState::Ready, false);
    }

    /// Restarted after a panic, in `state`.
    pub(crate) fn restarted(&self, state: ComponentState) {
        self.components.set(self.id, state, true);
    }

    /// Not working, and not coming back: it stays listed as failed for as long as the hub
    /// lives.
    pub(crate) fn failed_for_good(mut self, reason: impl Into<String>) {
        self.components.set(
            self.id,
            ComponentState::Failed {
                reason: reason.into(),
            },
            false,
        );
        self.listed_after_drop = true;
    }
}

impl Drop for ComponentHandle {
    fn drop(&mut self) {
        if !self.listed_after_drop {
            self.components.remove(self.id);
        }
    }
}

impl std::fmt::Debug for ComponentHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ComponentHandle")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

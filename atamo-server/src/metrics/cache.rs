//! A small map of metric handles for the recorder's hot path.

use std::collections::HashMap;

/// Metric handles by name, for the counting task's hot path: most steps of a batch concern
/// the same agent or event type as the step before, so the last hit is compared first (a
/// short string comparison) before the map is asked.
pub(super) struct Cache<K, V> {
    items: Vec<(K, V)>,
    index: HashMap<K, usize>,
    last: usize,
}

impl<K: Clone + Eq + std::hash::Hash, V> Cache<K, V> {
    pub(super) fn new() -> Self {
        Self {
            items: Vec::new(),
            index: HashMap::new(),
            last: 0,
        }
    }

    pub(super) fn get(&mut self, key: &K, make: impl FnOnce() -> V) -> &mut V {
        let hit = match self.items.get(self.last) {
            Some((k, _)) if k == key => Some(self.last),
            _ => self.index.get(key).copied(),
        };
        let i = match hit {
            Some(i) => i,
            None => {
                self.items.push((key.clone(), make()));
                let i = self.items.len() - 1;
                self.index.insert(key.clone(), i);
                i
            }
        };
        self.last = i;
        &mut self.items[i].1
    }
}

//! Resolved metric handles, kept by label values.
//!
//! Looking a labelled series up through `metrics::counter!` and friends
//! builds a key and hashes it into the recorder's registry on every call. Hot
//! paths instead resolve a handle once per label combination (label values
//! come from closed sets, so the cache stays small) and keep it here: after
//! the first use, recording costs a read lock, a small hash and an atomic
//! update.
//!
//! A handle belongs to the recorder that was current when it was resolved,
//! so a cache must live no longer than that recorder: in the binary that is
//! the process-wide recorder; tests that use a local recorder create their
//! caches inside it.

use std::collections::HashMap;
use std::hash::Hash;
use std::sync::RwLock;

/// Handles of type `H`, one per key `K`, created on first use.
pub struct HandleCache<K, H> {
    handles: RwLock<HashMap<K, H>>,
}

impl<K: Hash + Eq + Copy, H: Clone> Default for HandleCache<K, H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Copy, H: Clone> HandleCache<K, H> {
    pub fn new() -> Self {
        Self {
            handles: RwLock::new(HashMap::new()),
        }
    }

    /// The handle of `key`, made by `make` the first time.
    pub fn get(&self, key: K, make: impl FnOnce() -> H) -> H {
        if let Ok(handles) = self.handles.read() {
            if let Some(handle) = handles.get(&key) {
                return handle.clone();
            }
        }
        let handle = make();
        if let Ok(mut handles) = self.handles.write() {
            handles.entry(key).or_insert_with(|| handle.clone());
        }
        handle
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn makes_each_handle_once() {
        let cache: HandleCache<(&str, u8), u32> = HandleCache::new();
        let made = Cell::new(0);
        let make = |v| {
            made.set(made.get() + 1);
            v
        };
        assert_eq!(cache.get(("a", 1), || make(10)), 10);
        assert_eq!(cache.get(("a", 1), || make(99)), 10);
        assert_eq!(cache.get(("a", 2), || make(20)), 20);
        assert_eq!(made.get(), 2);
    }
}

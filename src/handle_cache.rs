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
use std::sync::{OnceLock, RwLock};

/// Handles of type `H`, one per key `K`, created on first use.
///
/// Keys are a few label values from closed sets, hashed on every record:
/// foldhash rather than the DoS-resistant default, since no key comes from a
/// client.
pub struct HandleCache<K, H> {
    handles: RwLock<HashMap<K, H, foldhash::fast::RandomState>>,
}

impl<K: Hash + Eq + Copy, H: Clone> Default for HandleCache<K, H> {
    fn default() -> Self {
        Self::new()
    }
}

impl<K: Hash + Eq + Copy, H: Clone> HandleCache<K, H> {
    pub fn new() -> Self {
        Self {
            handles: RwLock::new(HashMap::default()),
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

/// A label value in a cache key, compared and hashed by address.
///
/// Label values are `&'static str`s from the code's own closed sets, so
/// hashing and comparing their bytes on every record buys nothing. Two
/// equal strings at different addresses are two keys whose handles name
/// the same series (the recorder keys series by content), so the cache is
/// still right, with one entry more.
#[derive(Debug, Clone, Copy)]
pub struct Label(pub &'static str);

impl PartialEq for Label {
    fn eq(&self, other: &Self) -> bool {
        // Address and length: `ptr::eq` compares wide pointers whole.
        std::ptr::eq(self.0, other.0)
    }
}

impl Eq for Label {}

impl Hash for Label {
    fn hash<S: std::hash::Hasher>(&self, state: &mut S) {
        state.write_usize(self.0.as_ptr() as usize);
        state.write_usize(self.0.len());
    }
}

/// Handles of type `H` for keys that are small indices (an enum's position
/// in its `ALL` list), created on first use. Reading a resolved handle is one
/// atomic load: no hash, no lock, no reference count.
pub struct HandleTable<H, const N: usize> {
    slots: [OnceLock<H>; N],
}

impl<H, const N: usize> Default for HandleTable<H, N> {
    fn default() -> Self {
        Self {
            slots: std::array::from_fn(|_| OnceLock::new()),
        }
    }
}

impl<H, const N: usize> HandleTable<H, N> {
    /// The handle at `index` (below `N`), made by `make` the first time.
    pub fn get(&self, index: usize, make: impl FnOnce() -> H) -> &H {
        self.slots[index].get_or_init(make)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::cell::Cell;

    #[test]
    fn a_table_makes_each_handle_once() {
        let table: HandleTable<usize, 3> = HandleTable::default();
        let made = Cell::new(0);
        for round in 0..3 {
            for index in 0..3 {
                let value = table.get(index, || {
                    made.set(made.get() + 1);
                    index * 10
                });
                assert_eq!(*value, index * 10, "round {round}");
            }
        }
        assert_eq!(made.get(), 3);
    }

    #[test]
    fn labels_are_keys_by_address() {
        static ROUTE: &str = "/predict";
        let owned = String::from("/predict");
        let elsewhere: &'static str = Box::leak(owned.into_boxed_str());
        assert_eq!(Label(ROUTE), Label(ROUTE));
        assert_ne!(Label(ROUTE), Label(elsewhere), "same text, other address");
        assert_ne!(
            Label(&ROUTE[..2]),
            Label(ROUTE),
            "same address, other length"
        );
        let cache: HandleCache<Label, usize> = HandleCache::new();
        assert_eq!(cache.get(Label(ROUTE), || 1), 1);
        assert_eq!(cache.get(Label(ROUTE), || 2), 1);
        assert_eq!(cache.get(Label(elsewhere), || 3), 3);
    }

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

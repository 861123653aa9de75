//! A bounded store of recent predictions, keyed by request id, so feedback and
//! ground truth that arrive later can be matched to what the model answered.
//!
//! Bounded two ways: at most `capacity` entries (the least recently used is
//! evicted first), and each entry lives at most `ttl` after it was recorded
//! (expired entries are dropped when looked up or when they reach the front).
//! Request ids longer than `MAX_ID_BYTES` are never stored.

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use super::answer::ACTION_DIMS;
use super::marks::ParsedMarks;
use super::task::Task;

/// Longest request id kept.
pub const MAX_ID_BYTES: usize = 256;

/// What was recorded about one answer.
#[derive(Debug, Clone)]
pub struct Prediction {
    pub task: Task,
    /// The answer text, cut at the store's text cap (on a char boundary).
    pub text: String,
    pub normalized_actions: Option<[f64; ACTION_DIMS]>,
    pub delta_values: Option<[f64; ACTION_DIMS]>,
    pub marks: ParsedMarks,
    /// Whether feedback was already counted for this id.
    pub rated: bool,
}

struct Slot {
    prediction: Prediction,
    recorded: Instant,
    tick: u64,
}

/// Why an entry left the store.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Eviction {
    Capacity,
    Expired,
}

/// LRU + TTL map from request id to prediction.
pub struct PredictionStore {
    capacity: usize,
    ttl: Duration,
    slots: HashMap<String, Slot>,
    /// Access order: tick -> id; the smallest tick is the least recently used.
    order: BTreeMap<u64, String>,
    next_tick: u64,
    evicted: [u64; 2],
}

/// The result of a lookup.
#[derive(Debug)]
pub enum Lookup<'a> {
    Found(&'a mut Prediction),
    /// Never recorded, or evicted for capacity.
    Unknown,
    /// Recorded, but older than the TTL.
    Expired,
}

impl PredictionStore {
    pub fn new(capacity: usize, ttl: Duration) -> Self {
        Self {
            capacity: capacity.max(1),
            ttl,
            slots: HashMap::new(),
            order: BTreeMap::new(),
            next_tick: 0,
            evicted: [0, 0],
        }
    }

    pub fn len(&self) -> usize {
        self.slots.len()
    }

    pub fn is_empty(&self) -> bool {
        self.slots.is_empty()
    }

    /// Entries evicted so far, for capacity and for age.
    pub fn evictions(&self) -> (u64, u64) {
        (self.evicted[0], self.evicted[1])
    }

    /// Records (or replaces) the prediction of `id`. Returns false when the id
    /// is empty or too long to keep.
    pub fn insert(&mut self, id: &str, prediction: Prediction, now: Instant) -> bool {
        if id.is_empty() || id.len() > MAX_ID_BYTES {
            return false;
        }
        self.drop_expired_front(now);
        if let Some(old) = self.slots.remove(id) {
            self.order.remove(&old.tick);
        }
        while self.slots.len() >= self.capacity {
            let Some((_, oldest)) = self.order.pop_first() else {
                break;
            };
            self.slots.remove(&oldest);
            self.evicted[0] += 1;
        }
        let tick = self.bump();
        self.order.insert(tick, id.to_owned());
        self.slots.insert(
            id.to_owned(),
            Slot {
                prediction,
                recorded: now,
                tick,
            },
        );
        true
    }

    /// Looks `id` up and marks it recently used.
    pub fn get(&mut self, id: &str, now: Instant) -> Lookup<'_> {
        let expired = match self.slots.get(id) {
            None => return Lookup::Unknown,
            Some(slot) => now.saturating_duration_since(slot.recorded) > self.ttl,
        };
        if expired {
            if let Some(slot) = self.slots.remove(id) {
                self.order.remove(&slot.tick);
                self.evicted[1] += 1;
            }
            return Lookup::Expired;
        }
        let tick = self.bump();
        match self.slots.get_mut(id) {
            Some(slot) => {
                self.order.remove(&slot.tick);
                slot.tick = tick;
                self.order.insert(tick, id.to_owned());
                Lookup::Found(&mut slot.prediction)
            }
            None => Lookup::Unknown,
        }
    }

    fn bump(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    /// Drops expired entries from the least-recently-used end.
    fn drop_expired_front(&mut self, now: Instant) {
        while let Some((&tick, id)) = self.order.first_key_value() {
            let expired = self
                .slots
                .get(id)
                .is_none_or(|slot| now.saturating_duration_since(slot.recorded) > self.ttl);
            if !expired {
                break;
            }
            if let Some(id) = self.order.remove(&tick) {
                if self.slots.remove(&id).is_some() {
                    self.evicted[1] += 1;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn prediction(text: &str) -> Prediction {
        Prediction {
            task: Task::Chat,
            text: text.into(),
            normalized_actions: None,
            delta_values: None,
            marks: ParsedMarks::default(),
            rated: false,
        }
    }

    #[test]
    fn least_recently_used_goes_first() {
        let now = Instant::now();
        let mut store = PredictionStore::new(2, Duration::from_secs(60));
        assert!(store.insert("a", prediction("A"), now));
        assert!(store.insert("b", prediction("B"), now));
        assert!(matches!(store.get("a", now), Lookup::Found(_)));
        assert!(store.insert("c", prediction("C"), now));
        assert!(matches!(store.get("b", now), Lookup::Unknown));
        assert!(matches!(store.get("a", now), Lookup::Found(p) if p.text == "A"));
        assert!(matches!(store.get("c", now), Lookup::Found(_)));
        assert_eq!(store.len(), 2);
        assert_eq!(store.evictions(), (1, 0));
    }

    #[test]
    fn entries_expire() {
        let start = Instant::now();
        let mut store = PredictionStore::new(10, Duration::from_secs(5));
        store.insert("a", prediction("A"), start);
        store.insert("b", prediction("B"), start + Duration::from_secs(4));
        let later = start + Duration::from_secs(6);
        assert!(matches!(store.get("a", later), Lookup::Expired));
        assert!(matches!(store.get("a", later), Lookup::Unknown));
        assert!(matches!(store.get("b", later), Lookup::Found(_)));
        store.insert("c", prediction("C"), start + Duration::from_secs(20));
        assert_eq!(store.len(), 1, "b expired and was swept on insert");
        assert_eq!(store.evictions(), (0, 2));
    }

    #[test]
    fn rejects_unusable_ids() {
        let mut store = PredictionStore::new(10, Duration::from_secs(5));
        let now = Instant::now();
        assert!(!store.insert("", prediction(""), now));
        assert!(!store.insert(&"x".repeat(MAX_ID_BYTES + 1), prediction(""), now));
        assert!(store.is_empty());
    }
}

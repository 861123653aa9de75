//! A bounded store of recent predictions, keyed by request id, so feedback and
//! ground truth that arrive later can be matched to what the model answered.
//!
//! Bounded two ways: at most `capacity` entries (the least recently used is
//! evicted first), and each entry lives at most `ttl` after it was recorded
//! (expired entries are dropped when looked up or when they reach the front).
//! Request ids longer than `MAX_ID_BYTES` are never stored.

use std::collections::VecDeque;
use std::hash::BuildHasher;
use std::time::{Duration, Instant};

use hashbrown::HashTable;

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
    id: Box<str>,
    /// The hash of `id`, kept so the table never hashes an id twice.
    hash: u64,
    prediction: Prediction,
    recorded: Instant,
    /// The tick of this id's live entry in `order`.
    tick: u64,
}

/// One use of an id in the recency queue. Ticks are unique, so `hash` and
/// `tick` find the slot whose live use this is without the id itself;
/// `recorded` is the slot's time of recording, so the expiry sweep needs no
/// lookup while nothing expired.
struct Use {
    tick: u64,
    hash: u64,
    recorded: Instant,
}

/// LRU + TTL map from request id to prediction.
///
/// Recency is a queue of `(tick, hash)`, oldest use first. A use pushes a
/// new entry and leaves the old one behind as stale (its tick no longer
/// matches the slot's), so recording and touching are O(1) with one
/// allocation per new id (its key); stale entries are skipped when they
/// reach the front and swept out once they outnumber the live ones.
///
/// An id is hashed once per call: the table keeps each slot's hash, and the
/// queue finds slots by hash and tick. This runs for every answered request.
pub struct PredictionStore {
    capacity: usize,
    ttl: Duration,
    /// Request ids come from clients: SipHash with random keys, not a
    /// faster hash whose collisions a client could arrange.
    hasher: std::hash::RandomState,
    slots: HashTable<Slot>,
    order: VecDeque<Use>,
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
            hasher: std::hash::RandomState::new(),
            slots: HashTable::new(),
            order: VecDeque::new(),
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
        let tick = self.bump();
        let hash = self.hasher.hash_one(id);
        if let Some(slot) = self.slots.find_mut(hash, |slot| &*slot.id == id) {
            slot.prediction = prediction;
            slot.recorded = now;
            slot.tick = tick;
        } else {
            while self.slots.len() >= self.capacity {
                if !self.pop_least_recent() {
                    break;
                }
                self.evicted[0] += 1;
            }
            self.slots.insert_unique(
                hash,
                Slot {
                    id: id.into(),
                    hash,
                    prediction,
                    recorded: now,
                    tick,
                },
                |slot| slot.hash,
            );
        }
        self.order.push_back(Use {
            tick,
            hash,
            recorded: now,
        });
        self.sweep_stale();
        true
    }

    /// Looks `id` up and marks it recently used.
    pub fn get(&mut self, id: &str, now: Instant) -> Lookup<'_> {
        let hash = self.hasher.hash_one(id);
        let Ok(mut found) = self.slots.find_entry(hash, |slot| &*slot.id == id) else {
            return Lookup::Unknown;
        };
        if now.saturating_duration_since(found.get().recorded) > self.ttl {
            // Its queue entry turns stale with the slot gone.
            found.remove();
            self.evicted[1] += 1;
            return Lookup::Expired;
        }
        self.next_tick += 1;
        let tick = self.next_tick;
        // The slot takes its new tick before the sweep below, which would
        // otherwise take the entry pushed here for stale.
        let slot = found.get_mut();
        slot.tick = tick;
        self.order.push_back(Use {
            tick,
            hash,
            recorded: slot.recorded,
        });
        self.sweep_stale();
        // Ticks are unique: the slot is the one with this tick.
        match self.slots.find_mut(hash, |slot| slot.tick == tick) {
            Some(slot) => Lookup::Found(&mut slot.prediction),
            None => Lookup::Unknown,
        }
    }

    fn bump(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    /// Removes `entry`'s slot when the entry is its live use.
    fn remove_if_live(&mut self, entry: &Use) -> bool {
        match self
            .slots
            .find_entry(entry.hash, |slot| slot.tick == entry.tick)
        {
            Ok(slot) => {
                slot.remove();
                true
            }
            Err(_) => false,
        }
    }

    /// Removes the least recently used entry.
    fn pop_least_recent(&mut self) -> bool {
        while let Some(entry) = self.order.pop_front() {
            if self.remove_if_live(&entry) {
                return true;
            }
        }
        false
    }

    /// Drops expired entries from the least-recently-used end.
    fn drop_expired_front(&mut self, now: Instant) {
        while let Some(entry) = self.order.front() {
            // Only the front is swept; an expired entry further back goes
            // when it is looked up or reaches the front.
            if now.saturating_duration_since(entry.recorded) <= self.ttl {
                break;
            }
            if let Some(entry) = self.order.pop_front() {
                if self.remove_if_live(&entry) {
                    self.evicted[1] += 1;
                }
            }
        }
    }

    /// Keeps the queue within twice the live entries (plus slack), so a hot
    /// id touched again and again cannot grow it without bound.
    fn sweep_stale(&mut self) {
        if self.order.len() <= 2 * self.slots.len() + 64 {
            return;
        }
        let slots = &self.slots;
        self.order.retain(|entry| {
            slots
                .find(entry.hash, |slot| slot.tick == entry.tick)
                .is_some()
        });
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
    fn a_hot_id_does_not_grow_the_recency_queue() {
        let now = Instant::now();
        let mut store = PredictionStore::new(4, Duration::from_secs(60));
        store.insert("a", prediction("A"), now);
        store.insert("b", prediction("B"), now);
        for _ in 0..10_000 {
            assert!(matches!(store.get("a", now), Lookup::Found(_)));
        }
        store.insert("b", prediction("B2"), now);
        assert!(
            store.order.len() <= 2 * store.len() + 64,
            "{}",
            store.order.len()
        );
        assert_eq!(store.len(), 2);
        // "b" was replaced after the touches of "a": "a" goes first.
        store.insert("c", prediction("C"), now);
        store.insert("d", prediction("D"), now);
        store.insert("e", prediction("E"), now);
        assert!(matches!(store.get("a", now), Lookup::Unknown));
        assert!(matches!(store.get("b", now), Lookup::Found(p) if p.text == "B2"));
        assert_eq!(store.evictions(), (1, 0));
    }

    #[test]
    fn a_sweep_during_a_lookup_keeps_the_touched_id_in_line() {
        let now = Instant::now();
        let mut store = PredictionStore::new(2, Duration::from_secs(60));
        store.insert("a", prediction("A"), now);
        store.insert("b", prediction("B"), now);
        // The queue is swept when it passes 2 * 2 + 64 entries: every 67th
        // touch, the 201st among them.
        for _ in 0..201 {
            assert!(matches!(store.get("a", now), Lookup::Found(_)));
        }
        store.insert("c", prediction("C"), now); // evicts b
        store.insert("d", prediction("D"), now); // evicts a, the older use
        assert!(matches!(store.get("a", now), Lookup::Unknown));
        assert!(matches!(store.get("c", now), Lookup::Found(_)));
        assert!(matches!(store.get("d", now), Lookup::Found(_)));
        assert_eq!((store.len(), store.evictions()), (2, (2, 0)));
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

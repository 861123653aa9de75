//! Output diversity over a sliding window of recent answers.
//!
//! - distinct-n ratio (Li et al. 2016, "A Diversity-Promoting Objective Function
//!   for Neural Conversation Models"): distinct n-grams / total n-grams across
//!   the window's answers, for n = 1 and 2. It falls when the model keeps
//!   saying the same words.
//! - identical-answer ratio: the share of the window taken by its single most
//!   frequent (normalised) answer. 1.0 means every answer was the same, the
//!   signature of a model that has collapsed.
//!
//! Counts are maintained incrementally (add on push, subtract on evict), so an
//! update costs O(n-grams of one answer). Memory: `capacity` answers, each
//! holding at most `MAX_GRAMS_PER_ANSWER` n-gram hashes per n.

use std::collections::VecDeque;

use super::text;

/// Keys are n-gram hashes already; seeded foldhash spreads them.
type HashMap<K, V> = std::collections::HashMap<K, V, foldhash::fast::RandomState>;

/// n-grams of one answer kept in the window (longer answers count their prefix).
pub const MAX_GRAMS_PER_ANSWER: usize = 64;
/// The n of the distinct-n ratios exported.
pub const DISTINCT_NS: [usize; 2] = [1, 2];

struct Entry {
    answer: u64,
    grams: [Vec<u64>; 2],
}

/// A window of the last `capacity` non-empty answers.
pub struct DiversityWindow {
    capacity: usize,
    entries: VecDeque<Entry>,
    answers: HashMap<u64, u32>,
    grams: [HashMap<u64, u32>; 2],
    gram_totals: [usize; 2],
}

/// The window's gauges.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Diversity {
    pub answers: usize,
    /// distinct-1 and distinct-2 ratios (1.0 when the window is empty).
    pub distinct: [f64; 2],
    pub identical_answer_ratio: f64,
}

impl DiversityWindow {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            entries: VecDeque::new(),
            answers: HashMap::default(),
            grams: [HashMap::default(), HashMap::default()],
            gram_totals: [0, 0],
        }
    }

    /// True until the first non-empty answer.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Adds one answer's token hashes ([`text::token_hashes`]; empty answers
    /// are not counted).
    pub fn push(&mut self, tokens: &[u64]) {
        if tokens.is_empty() {
            return;
        }
        if self.entries.len() == self.capacity {
            if let Some(old) = self.entries.pop_front() {
                self.remove(old);
            }
        }
        let answer = text::ngram_hash(tokens);
        *self.answers.entry(answer).or_default() += 1;
        let grams = DISTINCT_NS.map(|n| {
            tokens
                .windows(n)
                .take(MAX_GRAMS_PER_ANSWER)
                .map(text::ngram_hash)
                .collect::<Vec<_>>()
        });
        for (k, hashes) in grams.iter().enumerate() {
            for h in hashes {
                *self.grams[k].entry(*h).or_default() += 1;
            }
            self.gram_totals[k] += hashes.len();
        }
        self.entries.push_back(Entry { answer, grams });
    }

    fn remove(&mut self, old: Entry) {
        decrement(&mut self.answers, old.answer);
        for (k, hashes) in old.grams.iter().enumerate() {
            for h in hashes {
                decrement(&mut self.grams[k], *h);
            }
            self.gram_totals[k] -= hashes.len();
        }
    }

    pub fn diversity(&self) -> Diversity {
        let distinct = [0, 1].map(|k| {
            if self.gram_totals[k] == 0 {
                1.0
            } else {
                self.grams[k].len() as f64 / self.gram_totals[k] as f64
            }
        });
        let top = self.answers.values().copied().max().unwrap_or(0);
        Diversity {
            answers: self.entries.len(),
            distinct,
            identical_answer_ratio: if self.entries.is_empty() {
                0.0
            } else {
                f64::from(top) / self.entries.len() as f64
            },
        }
    }
}

fn decrement(map: &mut HashMap<u64, u32>, key: u64) {
    if let Some(count) = map.get_mut(&key) {
        *count -= 1;
        if *count == 0 {
            map.remove(&key);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collapsed_model_scores_one() {
        let mut w = DiversityWindow::new(10);
        for _ in 0..25 {
            w.push(&text::token_hashes("click the red button"));
        }
        let d = w.diversity();
        assert_eq!(d.answers, 10);
        assert_eq!(d.identical_answer_ratio, 1.0);
        assert!((d.distinct[0] - 4.0 / 40.0).abs() < 1e-12);
        assert!((d.distinct[1] - 3.0 / 30.0).abs() < 1e-12);
    }

    #[test]
    fn window_forgets_old_answers() {
        let mut w = DiversityWindow::new(3);
        for text in ["a b", "a b", "a b", "c d", "e f", "g h"] {
            w.push(&text::token_hashes(text));
        }
        let d = w.diversity();
        assert_eq!(d.distinct, [1.0, 1.0]);
        assert!((d.identical_answer_ratio - 1.0 / 3.0).abs() < 1e-12);
        assert_eq!(w.answers.len(), 3);
        assert_eq!(w.grams[0].len(), 6);
    }
}

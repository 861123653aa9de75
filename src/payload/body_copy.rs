//! Bounded copies of sampled bodies.
//!
//! Every byte held by a copy — while the body streams, while the sample
//! waits in the queue and while it is analysed — is reserved from one shared
//! [`CopyBudget`], so the memory all copies take together is capped by
//! configuration, not by traffic. The reservation is released when the
//! copy (and every clone of its bytes handle) is dropped.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;

/// The memory all body copies may hold at once.
#[derive(Debug)]
pub struct CopyBudget {
    used: AtomicUsize,
    cap: usize,
}

impl CopyBudget {
    pub fn new(cap: usize) -> Arc<Self> {
        Arc::new(CopyBudget {
            used: AtomicUsize::new(0),
            cap,
        })
    }

    /// Bytes reserved right now.
    pub fn used(&self) -> usize {
        self.used.load(Ordering::Relaxed)
    }

    pub fn cap(&self) -> usize {
        self.cap
    }

    fn try_reserve(&self, bytes: usize) -> bool {
        self.used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                used.checked_add(bytes).filter(|&total| total <= self.cap)
            })
            .is_ok()
    }

    fn release(&self, bytes: usize) {
        let _ = self
            .used
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |used| {
                Some(used.saturating_sub(bytes))
            });
    }
}

/// Bytes reserved from a budget, given back on drop.
#[derive(Debug)]
struct Reservation {
    budget: Arc<CopyBudget>,
    bytes: usize,
}

impl Reservation {
    fn grow(&mut self, more: usize) -> bool {
        if self.budget.try_reserve(more) {
            self.bytes += more;
            true
        } else {
            false
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        self.budget.release(self.bytes);
    }
}

/// How a copy ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CopyOutcome {
    /// The whole body was copied.
    Complete,
    /// The body is larger than `--sample-max-bytes`; nothing is kept.
    TooLarge,
    /// The shared copy budget was exhausted; nothing is kept.
    OverBudget,
}

/// A copy being filled as the body streams.
#[derive(Debug)]
pub struct BodyCopy {
    buf: Vec<u8>,
    limit: usize,
    reservation: Reservation,
    outcome: CopyOutcome,
}

impl BodyCopy {
    /// A copy of at most `limit` bytes; `expected` (Content-Length) sizes it up front.
    pub fn new(budget: Arc<CopyBudget>, limit: usize, expected: Option<u64>) -> Self {
        let mut copy = BodyCopy {
            buf: Vec::new(),
            limit,
            reservation: Reservation { budget, bytes: 0 },
            outcome: CopyOutcome::Complete,
        };
        match expected {
            Some(len) if len > limit as u64 => copy.give_up(CopyOutcome::TooLarge),
            Some(len) if len > 0 => {
                // Infallible by the guard above: len <= limit fits in usize.
                let len = usize::try_from(len).unwrap_or(limit);
                if copy.reservation.grow(len) {
                    copy.buf.reserve_exact(len);
                } else {
                    copy.give_up(CopyOutcome::OverBudget);
                }
            }
            _ => {}
        }
        copy
    }

    fn give_up(&mut self, outcome: CopyOutcome) {
        self.outcome = outcome;
        self.buf = Vec::new();
        let held = self.reservation.bytes;
        self.reservation.budget.release(held);
        self.reservation.bytes = 0;
    }

    /// Appends a chunk, or gives up when the limit or the budget is reached.
    pub fn push(&mut self, chunk: &[u8]) {
        if self.outcome != CopyOutcome::Complete || chunk.is_empty() {
            return;
        }
        let needed = self.buf.len().saturating_add(chunk.len());
        if needed > self.limit {
            self.give_up(CopyOutcome::TooLarge);
            return;
        }
        if needed > self.reservation.bytes {
            // Grow geometrically (bounded by the limit) so appends stay amortised O(1).
            let target = needed
                .max(self.reservation.bytes.saturating_mul(2))
                .min(self.limit);
            if !self.reservation.grow(target - self.reservation.bytes) {
                self.give_up(CopyOutcome::OverBudget);
                return;
            }
            self.buf.reserve_exact(target - self.buf.len());
        }
        self.buf.extend_from_slice(chunk);
    }

    pub fn outcome(&self) -> CopyOutcome {
        self.outcome
    }

    /// Ends the copy.
    pub fn finish(self) -> CopiedBody {
        CopiedBody {
            bytes: match self.outcome {
                CopyOutcome::Complete => Bytes::from(self.buf),
                _ => Bytes::new(),
            },
            outcome: self.outcome,
            _reservation: Arc::new(self.reservation),
        }
    }
}

/// A finished copy; holds its budget reservation until the last clone is dropped.
#[derive(Debug, Clone)]
pub struct CopiedBody {
    /// The body, empty unless `outcome` is `Complete`.
    pub bytes: Bytes,
    pub outcome: CopyOutcome,
    _reservation: Arc<Reservation>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn copies_within_limit_and_releases_on_drop() {
        let budget = CopyBudget::new(100);
        let mut copy = BodyCopy::new(budget.clone(), 50, None);
        copy.push(b"hello ");
        copy.push(b"world");
        assert!(budget.used() >= 11 && budget.used() <= 50);
        let done = copy.finish();
        assert_eq!(done.outcome, CopyOutcome::Complete);
        assert_eq!(&done.bytes[..], b"hello world");
        let clone = done.clone();
        drop(done);
        assert!(budget.used() > 0);
        drop(clone);
        assert_eq!(budget.used(), 0);
    }

    #[test]
    fn too_large_keeps_nothing() {
        let budget = CopyBudget::new(100);
        let mut copy = BodyCopy::new(budget.clone(), 8, None);
        copy.push(b"12345");
        copy.push(b"67890");
        assert_eq!(copy.outcome(), CopyOutcome::TooLarge);
        assert_eq!(budget.used(), 0);
        let done = copy.finish();
        assert!(done.bytes.is_empty());
        let announced = BodyCopy::new(budget.clone(), 8, Some(9));
        assert_eq!(announced.outcome(), CopyOutcome::TooLarge);
    }

    #[test]
    fn budget_is_shared() {
        let budget = CopyBudget::new(10);
        let first = BodyCopy::new(budget.clone(), 10, Some(8));
        let second = BodyCopy::new(budget.clone(), 10, Some(8));
        assert_eq!(first.outcome(), CopyOutcome::Complete);
        assert_eq!(second.outcome(), CopyOutcome::OverBudget);
        drop(first);
        assert_eq!(budget.used(), 0);
        let mut third = BodyCopy::new(budget.clone(), 10, None);
        third.push(&[1; 10]);
        assert_eq!(third.outcome(), CopyOutcome::Complete);
        assert_eq!(budget.used(), 10);
    }
}

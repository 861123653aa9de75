//! One histogram series with fixed buckets, counted in place.
//!
//! A sample finds its bucket by binary search over the upper bounds and
//! costs two relaxed atomic updates (its bucket's count and the sum). There
//! is no clock read, no allocation and nothing left to fold in later, so
//! recording stays cheap on the request path, where the proxy records about
//! twenty samples per answered request.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counts per bucket and the sum of all samples.
#[derive(Debug)]
pub struct BucketHistogram {
    /// Upper bounds, strictly increasing (Prometheus `le`, inclusive).
    bounds: Box<[f64]>,
    /// Samples per bucket, not cumulative; one more slot than `bounds`
    /// for the samples above the last bound (`le="+Inf"` only).
    counts: Box<[AtomicU64]>,
    /// The sum of all samples, as `f64` bits.
    sum: AtomicU64,
}

/// What one series holds at one moment.
#[derive(Debug, Clone, PartialEq)]
pub struct Snapshot {
    /// `(upper bound, samples <= bound)` per bucket, cumulative, without
    /// the `+Inf` bucket (which is `count`).
    pub buckets: Vec<(f64, u64)>,
    pub count: u64,
    pub sum: f64,
}

impl BucketHistogram {
    /// A series with these upper bounds. Bounds that are NaN, repeated or out
    /// of order are dropped, so the search below is always over a sorted list.
    pub fn new(bounds: &[f64]) -> Self {
        let mut sorted: Vec<f64> = bounds.iter().copied().filter(|b| !b.is_nan()).collect();
        sorted.sort_by(f64::total_cmp);
        sorted.dedup();
        let counts = (0..=sorted.len()).map(|_| AtomicU64::new(0)).collect();
        Self {
            bounds: sorted.into_boxed_slice(),
            counts,
            sum: AtomicU64::new(0f64.to_bits()),
        }
    }

    /// Counts `count` samples of `value`. A NaN belongs in no bucket and would
    /// turn the sum into NaN for good, so it is not counted.
    pub fn record_n(&self, value: f64, count: u64) {
        if value.is_nan() || count == 0 {
            return;
        }
        // The first bound >= value: `le` buckets include their bound.
        let index = self.bounds.partition_point(|bound| *bound < value);
        self.counts[index].fetch_add(count, Relaxed);
        let added = value * count as f64;
        let mut current = self.sum.load(Relaxed);
        loop {
            let next = (f64::from_bits(current) + added).to_bits();
            match self
                .sum
                .compare_exchange_weak(current, next, Relaxed, Relaxed)
            {
                Ok(_) => return,
                Err(seen) => current = seen,
            }
        }
    }

    /// The cumulative bucket counts, the count and the sum. Each bucket is
    /// read once and the count is their total, so the `+Inf` bucket always
    /// equals `_count` and the buckets never decrease along `le`; a sample
    /// recorded while this runs may be in the sum but not yet in a bucket.
    pub fn snapshot(&self) -> Snapshot {
        let mut cumulative = 0u64;
        let mut buckets = Vec::with_capacity(self.bounds.len());
        for (bound, count) in self.bounds.iter().zip(self.counts.iter()) {
            cumulative += count.load(Relaxed);
            buckets.push((*bound, cumulative));
        }
        let overflow = self.counts.last().map_or(0, |c| c.load(Relaxed));
        Snapshot {
            buckets,
            count: cumulative + overflow,
            sum: f64::from_bits(self.sum.load(Relaxed)),
        }
    }
}

impl metrics::HistogramFn for BucketHistogram {
    fn record(&self, value: f64) {
        self.record_n(value, 1);
    }

    fn record_many(&self, value: f64, count: usize) {
        self.record_n(value, count as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sample_on_a_bound_counts_in_that_bucket() {
        let histogram = BucketHistogram::new(&[0.1, 1.0, 2.0]);
        for value in [0.1, 0.5, 1.0, 2.0, 2.5, -3.0] {
            histogram.record_n(value, 1);
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets, vec![(0.1, 2), (1.0, 4), (2.0, 5)]);
        assert_eq!(snapshot.count, 6);
        assert!((snapshot.sum - 3.1).abs() < 1e-12, "{}", snapshot.sum);
    }

    #[test]
    fn infinities_land_at_the_ends_and_nan_is_not_counted() {
        let histogram = BucketHistogram::new(&[0.0, 1.0]);
        histogram.record_n(f64::NEG_INFINITY, 1);
        histogram.record_n(f64::INFINITY, 1);
        histogram.record_n(f64::NAN, 1);
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets, vec![(0.0, 1), (1.0, 1)]);
        assert_eq!(snapshot.count, 2);
        assert!(snapshot.sum.is_nan(), "-inf + inf is NaN, as in any sum");
    }

    #[test]
    fn repeated_samples_count_and_sum_as_many() {
        let histogram = BucketHistogram::new(&[1.0, 10.0]);
        histogram.record_n(4.0, 3);
        histogram.record_n(4.0, 0);
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets, vec![(1.0, 0), (10.0, 3)]);
        assert_eq!((snapshot.count, snapshot.sum), (3, 12.0));
    }

    #[test]
    fn bounds_are_sorted_and_deduplicated() {
        let histogram = BucketHistogram::new(&[2.0, f64::NAN, 1.0, 2.0]);
        histogram.record_n(1.5, 1);
        assert_eq!(histogram.snapshot().buckets, vec![(1.0, 0), (2.0, 1)]);
    }

    #[test]
    fn concurrent_recorders_lose_no_sample() {
        let histogram = std::sync::Arc::new(BucketHistogram::new(&[0.5]));
        let threads: Vec<_> = (0..4)
            .map(|i| {
                let histogram = histogram.clone();
                std::thread::spawn(move || {
                    for _ in 0..10_000 {
                        histogram.record_n(if i % 2 == 0 { 0.25 } else { 1.0 }, 1);
                    }
                })
            })
            .collect();
        for thread in threads {
            thread.join().expect("recorder thread");
        }
        let snapshot = histogram.snapshot();
        assert_eq!(snapshot.buckets, vec![(0.5, 20_000)]);
        assert_eq!(snapshot.count, 40_000);
        assert_eq!(snapshot.sum, 20_000.0 * 0.25 + 20_000.0);
    }
}

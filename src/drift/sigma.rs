//! Median heuristic for the RBF bandwidth: σ = sqrt(m / 2), m the lower
//! median of the squared distances over the reference pairs i < j
//! (Gretton et al. 2012, §8; the same convention as alibi-detect's default,
//! which takes the ⌊(M-1)/2⌋-th smallest of the M = n(n-1)/2 pair distances).
//!
//! The M distances are never stored: the median is selected exactly by a
//! two-pass radix select on the bits of the non-negative f32 values (whose
//! order equals the order of the bit patterns). Pass one counts the top 16
//! bits, pass two the low 16 bits within the chosen bucket; each pass
//! recomputes the distances tile by tile, in parallel, with 512 KiB of
//! counters per thread.

use rayon::prelude::*;

use super::kernel::{row_norms, squared_distance_tile, TileScratch, TILE};
use super::matrix::Samples;

/// σ from the median heuristic; `None` with fewer than two rows. A zero
/// median (more than half the pairs identical) gives σ = 1 so the kernel
/// stays defined.
pub fn median_heuristic_sigma(reference: &Samples) -> Option<f64> {
    let m = median_pair_squared_distance(reference)?;
    let sigma = (f64::from(m) / 2.0).sqrt();
    Some(if sigma > 0.0 && sigma.is_finite() {
        sigma
    } else {
        1.0
    })
}

/// The lower median (index ⌊(M-1)/2⌋ in ascending order) of the squared
/// distances over the pairs i < j.
pub fn median_pair_squared_distance(z: &Samples) -> Option<f32> {
    let n = z.rows();
    if n < 2 {
        return None;
    }
    let pairs = (n as u64) * (n as u64 - 1) / 2;
    let rank = (pairs - 1) / 2;
    let norms = row_norms(z);
    let high = count_pairs(z, &norms, |bits| Some((bits >> 16) as usize));
    let (high_bucket, rank_in_bucket) = locate(&high, rank)?;
    let low = count_pairs(z, &norms, |bits| {
        ((bits >> 16) as usize == high_bucket).then_some((bits & 0xffff) as usize)
    });
    let (low_bucket, _) = locate(&low, rank_in_bucket)?;
    Some(f32::from_bits(
        ((high_bucket as u32) << 16) | low_bucket as u32,
    ))
}

/// Finds the bucket holding the `rank`-th value and the rank within it.
fn locate(counts: &[u64], rank: u64) -> Option<(usize, u64)> {
    let mut below = 0u64;
    for (bucket, count) in counts.iter().enumerate() {
        if below + count > rank {
            return Some((bucket, rank - below));
        }
        below += count;
    }
    None
}

/// Histogram over all pairs i < j of `bucket(bits of the squared distance)`.
fn count_pairs<F>(z: &Samples, norms: &[f32], bucket: F) -> Vec<u64>
where
    F: Fn(u32) -> Option<usize> + Sync,
{
    let n = z.rows();
    let blocks = n.div_ceil(TILE);
    // One histogram per thread (not per rayon split: 512 KiB each would
    // dominate small inputs); worker w takes row blocks w, w + W, ..., which
    // spreads the triangle's uneven rows evenly.
    let workers = rayon::current_num_threads().clamp(1, blocks.max(1));
    (0..workers)
        .into_par_iter()
        .map(|worker| {
            let mut counts = vec![0u64; 1 << 16];
            let mut scratch = TileScratch::new(z.cols());
            for bi in (worker..blocks).step_by(workers) {
                let rows_i = bi * TILE..((bi + 1) * TILE).min(n);
                for bj in bi..blocks {
                    let rows_j = bj * TILE..((bj + 1) * TILE).min(n);
                    squared_distance_tile(z, norms, rows_i.clone(), rows_j.clone(), &mut scratch);
                    for il in 0..rows_i.len() {
                        let start = if bi == bj { il + 1 } else { 0 };
                        for jl in start..rows_j.len() {
                            let bits = scratch.out[il * TILE + jl].to_bits();
                            if let Some(b) = bucket(bits) {
                                counts[b] += 1;
                            }
                        }
                    }
                }
            }
            counts
        })
        .reduce(
            || vec![0u64; 1 << 16],
            |mut a, b| {
                a.iter_mut().zip(&b).for_each(|(x, y)| *x += y);
                a
            },
        )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::kernel::{squared_distance_f64, TileScratch};
    use rand::{Rng, SeedableRng};

    #[test]
    fn sigma_equals_a_direct_median() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        for (n, d) in [(2, 3), (3, 1), (10, 4), (131, 6)] {
            let rows: Vec<Vec<f32>> = (0..n)
                .map(|_| (0..d).map(|_| rng.random_range(-3.0f32..3.0)).collect())
                .collect();
            let z = Samples::from_rows(&rows).unwrap();
            // The direct way: every pair's squared distance, sorted.
            let mut all = Vec::new();
            for i in 0..n {
                for j in i + 1..n {
                    all.push(squared_distance_f64(z.row(i), z.row(j)));
                }
            }
            all.sort_by(f64::total_cmp);
            let direct = all[(all.len() - 1) / 2];
            let got = f64::from(median_pair_squared_distance(&z).unwrap());
            assert!(
                (got - direct).abs() <= 1e-5 * direct,
                "n={n}: {got} vs {direct}"
            );
            let sigma = median_heuristic_sigma(&z).unwrap();
            assert!((sigma - (direct / 2.0).sqrt()).abs() < 1e-5 * sigma);
        }
        let _ = TileScratch::new(1);
    }

    #[test]
    fn degenerate_inputs() {
        assert_eq!(median_heuristic_sigma(&Samples::empty(3)), None);
        let same = Samples::from_rows(&[vec![1.0], vec![1.0], vec![1.0]]).unwrap();
        assert_eq!(median_heuristic_sigma(&same), Some(1.0));
    }
}

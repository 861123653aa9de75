//! The MMD two-sample test with a Gaussian RBF kernel and a permutation
//! p-value.
//!
//! Statistic: the unbiased U-statistic of the squared maximum mean
//! discrepancy (Gretton, Borgwardt, Rasch, Schölkopf, Smola, "A Kernel
//! Two-Sample Test", JMLR 13, 2012, Lemma 6):
//!   MMD²_u = 1/(n(n-1)) Σ_{i≠j} k(x_i,x_j) + 1/(m(m-1)) Σ_{i≠j} k(y_i,y_j)
//!            - 2/(nm) Σ_{i,j} k(x_i,y_j).
//! Null distribution: the statistic of B random re-splits of the pooled
//! samples into sizes n and m (a permutation test). p-value
//! (1 + #{permuted ≥ observed}) / (1 + B), which is exact-valid and never 0
//! (Phipson & Smyth, "Permutation P-values Should Never Be Zero", 2010);
//! alibi-detect's #{permuted ≥ observed} / B is available for comparison.
//! Threshold: the permuted statistic of descending rank ⌊p_val·B⌋, i.e. the
//! (1 - p_val) quantile of the permuted statistics, as alibi-detect reports it.

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use thiserror::Error;

use super::matrix::Samples;
use super::mmd_blocked::{kernel_pair_sums, PairSums, Splits};
use super::sigma::median_heuristic_sigma;

/// How the permutation p-value counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PValueConvention {
    /// (1 + #{permuted ≥ observed}) / (1 + B): valid, never 0.
    #[default]
    PlusOne,
    /// #{permuted ≥ observed} / B, alibi-detect's convention.
    Alibi,
}

/// Parameters of one MMD test.
#[derive(Debug, Clone)]
pub struct MmdConfig {
    pub permutations: usize,
    pub p_val: f64,
    /// Kernel bandwidth; `None` = median heuristic on the reference.
    pub sigma: Option<f64>,
    pub seed: u64,
    pub convention: PValueConvention,
}

impl Default for MmdConfig {
    fn default() -> Self {
        Self {
            permutations: 100,
            p_val: 0.05,
            sigma: None,
            seed: 0,
            convention: PValueConvention::PlusOne,
        }
    }
}

/// Outcome of one MMD test.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct MmdOutcome {
    /// Observed MMD²_u.
    pub statistic: f64,
    pub p_value: f64,
    /// (1 - p_val) quantile of the permuted statistics (NaN without permutations).
    pub threshold: f64,
    pub sigma: f64,
    pub drift: bool,
    pub permutations: usize,
}

#[derive(Debug, Error, PartialEq)]
pub enum MmdError {
    #[error("the reference has {0} samples; MMD needs at least 2")]
    ReferenceTooSmall(usize),
    #[error("the current set has {0} samples; MMD needs at least 2")]
    CurrentTooSmall(usize),
    #[error("the reference has {reference} features but the current set {current}")]
    FeatureMismatch { reference: usize, current: usize },
    #[error("sigma must be a positive finite number, got {0}")]
    BadSigma(f64),
}

/// Runs the permutation test of `reference` (X) against `current` (Y).
pub fn mmd_test(
    reference: &Samples,
    current: &Samples,
    config: &MmdConfig,
) -> Result<MmdOutcome, MmdError> {
    let (n, m) = check_sizes(reference, current)?;
    let sigma = match config.sigma {
        Some(s) if s > 0.0 && s.is_finite() => s,
        Some(s) => return Err(MmdError::BadSigma(s)),
        None => median_heuristic_sigma(reference).ok_or(MmdError::ReferenceTooSmall(n))?,
    };
    let pooled = reference.stack(current).ok_or(MmdError::FeatureMismatch {
        reference: reference.cols(),
        current: current.cols(),
    })?;
    let splits = make_splits(n, m, config.permutations, config.seed);
    let sums = kernel_pair_sums(&pooled, &splits, (1.0 / (2.0 * sigma * sigma)) as f32);
    let stats: Vec<f64> = (0..=config.permutations)
        .map(|p| mmd2_from_sums(&sums, p, n, m))
        .collect();
    let statistic = stats[0];
    let permuted = &stats[1..];
    let p_value = permutation_p_value(statistic, permuted, config.convention);
    Ok(MmdOutcome {
        statistic,
        p_value,
        threshold: permuted_quantile(permuted, config.p_val),
        sigma,
        drift: p_value < config.p_val,
        permutations: config.permutations,
    })
}

/// MMD²_u of `x` against `y` with bandwidth `sigma`, by the blocked path.
pub fn mmd2_unbiased(x: &Samples, y: &Samples, sigma: f64) -> Result<f64, MmdError> {
    let (n, m) = check_sizes(x, y)?;
    let pooled = x.stack(y).ok_or(MmdError::FeatureMismatch {
        reference: x.cols(),
        current: y.cols(),
    })?;
    let splits = make_splits(n, m, 0, 0);
    let sums = kernel_pair_sums(&pooled, &splits, (1.0 / (2.0 * sigma * sigma)) as f32);
    Ok(mmd2_from_sums(&sums, 0, n, m))
}

fn check_sizes(x: &Samples, y: &Samples) -> Result<(usize, usize), MmdError> {
    if x.rows() < 2 {
        return Err(MmdError::ReferenceTooSmall(x.rows()));
    }
    if y.rows() < 2 {
        return Err(MmdError::CurrentTooSmall(y.rows()));
    }
    if x.cols() != y.cols() {
        return Err(MmdError::FeatureMismatch {
            reference: x.cols(),
            current: y.cols(),
        });
    }
    Ok((x.rows(), y.rows()))
}

/// Column 0: the observed split (first n pooled samples in X); columns
/// 1..=B: random splits from a seeded ChaCha8 stream; padding columns up to a
/// multiple of 8 (one AVX register of f32) stay 0 and are never read.
fn make_splits(n: usize, m: usize, permutations: usize, seed: u64) -> Splits {
    let total = n + m;
    let width = (permutations + 1).div_ceil(8) * 8;
    let mut indicators = vec![0.0f32; total * width];
    for row in 0..n {
        indicators[row * width] = 1.0;
    }
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
    let mut order: Vec<usize> = (0..total).collect();
    for p in 1..=permutations {
        let (chosen, _) = order.partial_shuffle(&mut rng, n);
        for &row in chosen.iter() {
            indicators[row * width + p] = 1.0;
        }
    }
    Splits { width, indicators }
}

/// MMD²_u of split `p` from its pair sums (see `mmd_blocked` for the algebra).
fn mmd2_from_sums(sums: &PairSums, p: usize, n: usize, m: usize) -> f64 {
    let (n, m) = (n as f64, m as f64);
    2.0 * sums.xx[p] / (n * (n - 1.0)) + 2.0 * sums.yy[p] / (m * (m - 1.0))
        - 2.0 * sums.xy[p] / (n * m)
}

/// The permutation p-value under `convention`.
pub fn permutation_p_value(observed: f64, permuted: &[f64], convention: PValueConvention) -> f64 {
    let at_least = permuted.iter().filter(|s| **s >= observed).count() as f64;
    let b = permuted.len() as f64;
    match convention {
        PValueConvention::PlusOne => (1.0 + at_least) / (1.0 + b),
        PValueConvention::Alibi if b > 0.0 => at_least / b,
        PValueConvention::Alibi => 1.0,
    }
}

/// The permuted statistic of descending rank ⌊p_val·B⌋ (NaN when B = 0).
pub fn permuted_quantile(permuted: &[f64], p_val: f64) -> f64 {
    if permuted.is_empty() {
        return f64::NAN;
    }
    let mut sorted = permuted.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    let index = ((p_val * sorted.len() as f64).floor() as usize).min(sorted.len() - 1);
    sorted[index]
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drift::kernel::squared_distance_f64;
    use rand::Rng;
    use rand_distr_free::normal;

    /// The O(n²) textbook formula in f64.
    fn mmd2_direct(x: &Samples, y: &Samples, sigma: f64) -> f64 {
        let k = |a: &[f32], b: &[f32]| (-squared_distance_f64(a, b) / (2.0 * sigma * sigma)).exp();
        let (n, m) = (x.rows(), y.rows());
        let mut xx = 0.0;
        for i in 0..n {
            for j in 0..n {
                if i != j {
                    xx += k(x.row(i), x.row(j));
                }
            }
        }
        let mut yy = 0.0;
        for i in 0..m {
            for j in 0..m {
                if i != j {
                    yy += k(y.row(i), y.row(j));
                }
            }
        }
        let mut xy = 0.0;
        for i in 0..n {
            for j in 0..m {
                xy += k(x.row(i), y.row(j));
            }
        }
        let (nf, mf) = (n as f64, m as f64);
        xx / (nf * (nf - 1.0)) + yy / (mf * (mf - 1.0)) - 2.0 * xy / (nf * mf)
    }

    mod rand_distr_free {
        use rand::Rng;
        /// A standard normal draw by Box–Muller (keeps rand_distr out of the tree).
        pub fn normal<R: Rng>(rng: &mut R) -> f32 {
            let u1: f64 = rng.random_range(f64::EPSILON..1.0);
            let u2: f64 = rng.random();
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
        }
    }

    fn gaussian(rng: &mut impl Rng, n: usize, d: usize, shift: f32) -> Samples {
        let data = (0..n * d).map(|_| normal(rng) + shift).collect();
        Samples::from_flat(n, d, data).unwrap()
    }

    #[test]
    fn blocked_statistic_equals_the_direct_formula() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        // Sizes straddle tile edges (64) and include tiny and unequal sets.
        for (n, m, d, shift) in [
            (2, 3, 1, 0.0),
            (50, 80, 3, 0.5),
            (64, 64, 2, 0.0),
            (130, 70, 5, 0.3),
            (300, 4, 3, 0.0),
            (5, 200, 2, 1.0),
        ] {
            let x = gaussian(&mut rng, n, d, 0.0);
            let y = gaussian(&mut rng, m, d, shift);
            for sigma in [0.5, 1.7] {
                let want = mmd2_direct(&x, &y, sigma);
                let got = mmd2_unbiased(&x, &y, sigma).unwrap();
                assert!(
                    (got - want).abs() < 2e-6,
                    "n={n} m={m} sigma={sigma}: {got} vs {want}"
                );
            }
        }
    }

    #[test]
    fn permuted_statistics_equal_the_direct_formula_on_the_same_split() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let (n, m) = (40, 90);
        let x = gaussian(&mut rng, n, 4, 0.0);
        let y = gaussian(&mut rng, m, 4, 0.2);
        let pooled = x.stack(&y).unwrap();
        let splits = make_splits(n, m, 5, 11);
        let sums = kernel_pair_sums(&pooled, &splits, (1.0 / (2.0 * 1.3f64 * 1.3)) as f32);
        for p in 0..=5 {
            let (mut xs, mut ys) = (Samples::empty(4), Samples::empty(4));
            for row in 0..n + m {
                if splits.indicators[row * splits.width + p] == 1.0 {
                    xs.push_row(pooled.row(row));
                } else {
                    ys.push_row(pooled.row(row));
                }
            }
            assert_eq!(xs.rows(), n);
            let want = mmd2_direct(&xs, &ys, 1.3);
            let got = mmd2_from_sums(&sums, p, n, m);
            assert!((got - want).abs() < 2e-6, "split {p}: {got} vs {want}");
        }
    }

    #[test]
    fn p_value_conventions_and_threshold() {
        let permuted = [0.1, 0.5, 0.3, 0.2];
        assert_eq!(
            permutation_p_value(0.3, &permuted, PValueConvention::PlusOne),
            3.0 / 5.0
        );
        assert_eq!(
            permutation_p_value(0.3, &permuted, PValueConvention::Alibi),
            2.0 / 4.0
        );
        assert_eq!(
            permutation_p_value(9.0, &permuted, PValueConvention::PlusOne),
            1.0 / 5.0
        );
        // Descending 0.5, 0.3, 0.2, 0.1; p_val 0.25 -> index 1.
        assert_eq!(permuted_quantile(&permuted, 0.25), 0.3);
        assert_eq!(permuted_quantile(&permuted, 0.0), 0.5);
    }

    #[test]
    fn same_seed_same_answer() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(3);
        let x = gaussian(&mut rng, 60, 3, 0.0);
        let y = gaussian(&mut rng, 60, 3, 0.0);
        let config = MmdConfig {
            permutations: 50,
            seed: 9,
            ..MmdConfig::default()
        };
        assert_eq!(mmd_test(&x, &y, &config), mmd_test(&x, &y, &config));
    }

    #[test]
    fn false_positive_rate_is_near_p_val_and_power_is_high() {
        let config = |seed| MmdConfig {
            permutations: 50,
            p_val: 0.1,
            seed,
            ..MmdConfig::default()
        };
        let runs = 200;
        let mut false_alarms = 0;
        for seed in 0..runs {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1000 + seed);
            let x = gaussian(&mut rng, 30, 2, 0.0);
            let y = gaussian(&mut rng, 30, 2, 0.0);
            false_alarms += usize::from(mmd_test(&x, &y, &config(seed)).unwrap().drift);
        }
        // Binomial(200, 0.1): mean 20, sd 4.2; [8, 34] is beyond ±3 sd.
        assert!(
            (8..=34).contains(&false_alarms),
            "{false_alarms} false alarms in {runs}"
        );
        let mut detected = 0;
        for seed in 0..50 {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(5000 + seed);
            let x = gaussian(&mut rng, 50, 2, 0.0);
            let y = gaussian(&mut rng, 50, 2, 1.0);
            detected += usize::from(mmd_test(&x, &y, &config(seed)).unwrap().drift);
        }
        assert!(detected >= 47, "detected {detected} of 50 one-sigma shifts");
    }

    #[test]
    fn rejects_bad_input() {
        let one = Samples::from_rows(&[vec![1.0]]).unwrap();
        let two = Samples::from_rows(&[vec![1.0], vec![2.0]]).unwrap();
        let wide = Samples::from_rows(&[vec![1.0, 2.0], vec![2.0, 3.0]]).unwrap();
        let c = MmdConfig::default();
        assert_eq!(
            mmd_test(&one, &two, &c),
            Err(MmdError::ReferenceTooSmall(1))
        );
        assert_eq!(mmd_test(&two, &one, &c), Err(MmdError::CurrentTooSmall(1)));
        assert!(matches!(
            mmd_test(&two, &wide, &c),
            Err(MmdError::FeatureMismatch { .. })
        ));
        let bad = MmdConfig {
            sigma: Some(0.0),
            ..MmdConfig::default()
        };
        assert_eq!(mmd_test(&two, &two, &bad), Err(MmdError::BadSigma(0.0)));
    }
}

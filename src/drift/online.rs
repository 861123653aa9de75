//! Online MMD drift detection with thresholds calibrated to an expected run
//! time (ERT) without drift.
//!
//! Method of Cobb, Van Looveren & Klaise, "Sequential Multivariate Change
//! Detection with Calibrated and Memoryless False Detection Rates" (AISTATS
//! 2022), the algorithm behind alibi-detect's `MMDDriftOnline`:
//! - The reference (N samples) is split into a sub-reference X (N − 2W + 1
//!   samples) and an initial test window of W samples, so the very first
//!   windows are, like every later one under no drift, drawn from the
//!   reference distribution.
//! - After each new sample the window holds the last W samples and the
//!   statistic is the unbiased MMD² between X and the window.
//! - Thresholds are set by bootstrap on the reference: each bootstrap draws a
//!   fresh sub-reference and an "extended" window of 2W − 1 reference
//!   samples, so the W overlapping windows of size W reproduce the first W
//!   steps of a stream. The threshold of step t is the (1 − 1/ERT) quantile
//!   of the step-t statistics over the bootstraps that have not yet crossed
//!   an earlier threshold; after W steps the last threshold holds. The
//!   per-step false-alarm rate, given no earlier alarm, is therefore 1/ERT
//!   and the run length without drift is geometric with mean ≈ ERT.
//! - An update costs O(N·d + W·d): the kernel of the new sample against X
//!   (N·d), and against the W − 1 window samples it joins (W·d); the window's
//!   kernel sums are maintained incrementally rather than recomputed.

use std::collections::VecDeque;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use serde::Serialize;
use thiserror::Error;

use super::kernel::exp_neg;
use super::matrix::Samples;
use super::sigma::median_heuristic_sigma;

/// Largest reference the online detector accepts: calibration holds the
/// N×N reference kernel (4 bytes each, 64 MiB at this size) while it runs.
pub const MAX_ONLINE_REFERENCE: usize = 4096;

/// Parameters of the online detector.
#[derive(Debug, Clone)]
pub struct OnlineConfig {
    /// Test window W.
    pub window: usize,
    /// Expected run time without drift, in samples.
    pub ert: f64,
    /// Bootstrap samples for the thresholds.
    pub bootstraps: usize,
    /// Kernel bandwidth; `None` = median heuristic on the reference.
    pub sigma: Option<f64>,
    pub seed: u64,
}

impl Default for OnlineConfig {
    fn default() -> Self {
        Self {
            window: 20,
            ert: 100.0,
            bootstraps: 1000,
            sigma: None,
            seed: 0,
        }
    }
}

#[derive(Debug, Error, PartialEq)]
pub enum OnlineError {
    #[error("the window must hold at least 2 samples, got {0}")]
    WindowTooSmall(usize),
    #[error("the reference needs more than 2W - 1 + 1 = {needed} samples, got {got}")]
    ReferenceTooSmall { needed: usize, got: usize },
    #[error(
        "the reference has {0} samples; the online detector takes at most {MAX_ONLINE_REFERENCE}"
    )]
    ReferenceTooLarge(usize),
    #[error("the expected run time must be above 1, got {0}")]
    BadErt(f64),
    #[error("sample has {got} features, the reference {expected}")]
    FeatureMismatch { expected: usize, got: usize },
}

/// The state after one update.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct OnlineOutcome {
    /// Updates so far (1 after the first sample).
    pub t: u64,
    pub statistic: f64,
    pub threshold: f64,
    pub drift: bool,
}

/// The online detector.
#[derive(Debug, Clone)]
pub struct OnlineMmd {
    sub_reference: Samples,
    scale: f32,
    sigma: f64,
    thresholds: Vec<f64>,
    /// Σ_{i≠j ∈ X} k / (r(r−1)), fixed.
    reference_term: f64,
    window: VecDeque<Vec<f32>>,
    /// Σ_{x ∈ X} k(x, y) for each window sample y, in window order.
    cross: VecDeque<f64>,
    cross_total: f64,
    /// Σ_{i<j} k(y_i, y_j) over the window.
    window_pairs: f64,
    t: u64,
    size: usize,
}

impl OnlineMmd {
    /// Calibrates the thresholds on `reference` and sets up the first window.
    pub fn new(reference: &Samples, config: &OnlineConfig) -> Result<Self, OnlineError> {
        let w = config.window;
        let n = reference.rows();
        if w < 2 {
            return Err(OnlineError::WindowTooSmall(w));
        }
        let extended = 2 * w - 1;
        if n < extended + 2 {
            return Err(OnlineError::ReferenceTooSmall {
                needed: extended + 2,
                got: n,
            });
        }
        if n > MAX_ONLINE_REFERENCE {
            return Err(OnlineError::ReferenceTooLarge(n));
        }
        if !(config.ert > 1.0 && config.ert.is_finite()) {
            return Err(OnlineError::BadErt(config.ert));
        }
        let sigma = config
            .sigma
            .filter(|s| *s > 0.0 && s.is_finite())
            .or_else(|| median_heuristic_sigma(reference))
            .unwrap_or(1.0);
        let scale = (1.0 / (2.0 * sigma * sigma)) as f32;
        let gram = Gram::new(reference, scale);
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(config.seed);
        let thresholds = calibrate(
            &gram,
            w,
            1.0 / config.ert,
            config.bootstraps.max(10),
            &mut rng,
        );

        // Initial split: a sub-reference and a first window that does not
        // already cross the step-0 threshold (retry a bounded number of times).
        let rows = n - extended;
        let mut order: Vec<usize> = (0..n).collect();
        let mut chosen = None;
        for _ in 0..100 {
            order.shuffle(&mut rng);
            let sub = &order[..rows];
            let first = &order[n - w..];
            let statistic = split_statistic(&gram, sub, first);
            chosen = Some(order.clone());
            if statistic < thresholds[0] {
                break;
            }
        }
        let order = chosen.unwrap_or(order);
        let sub_rows: Vec<&[f32]> = order[..rows].iter().map(|&i| reference.row(i)).collect();
        let sub_reference =
            Samples::from_rows(&sub_rows).unwrap_or_else(|_| Samples::empty(reference.cols()));
        let reference_term =
            gram.off_diagonal_sum(&order[..rows]) / (rows as f64 * (rows as f64 - 1.0));
        let mut detector = Self {
            sub_reference,
            scale,
            sigma,
            thresholds,
            reference_term,
            window: VecDeque::with_capacity(w),
            cross: VecDeque::with_capacity(w),
            cross_total: 0.0,
            window_pairs: 0.0,
            t: 0,
            size: w,
        };
        for &i in &order[n - w..] {
            detector.push(reference.row(i));
        }
        Ok(detector)
    }

    pub fn sigma(&self) -> f64 {
        self.sigma
    }

    pub fn thresholds(&self) -> &[f64] {
        &self.thresholds
    }

    /// Threshold in force after `t` updates.
    pub fn threshold(&self, t: u64) -> f64 {
        let last = self.thresholds.len() - 1;
        self.thresholds[(t as usize).min(last)]
    }

    /// Feeds one sample; returns the statistic and whether it crosses the threshold.
    pub fn update(&mut self, sample: &[f32]) -> Result<OnlineOutcome, OnlineError> {
        if sample.len() != self.sub_reference.cols() {
            return Err(OnlineError::FeatureMismatch {
                expected: self.sub_reference.cols(),
                got: sample.len(),
            });
        }
        self.push(sample);
        self.t += 1;
        // Re-sum the window pairs now and then so rounding cannot build up.
        if self.t % 4096 == 0 {
            self.resum_window();
        }
        let statistic = self.statistic();
        let threshold = self.threshold(self.t);
        Ok(OnlineOutcome {
            t: self.t,
            statistic,
            threshold,
            drift: statistic > threshold,
        })
    }

    /// The current MMD² between the sub-reference and the window.
    pub fn statistic(&self) -> f64 {
        let w = self.window.len() as f64;
        let r = self.sub_reference.rows() as f64;
        self.reference_term + 2.0 * self.window_pairs / (w * (w - 1.0))
            - 2.0 * self.cross_total / (r * w)
    }

    fn push(&mut self, sample: &[f32]) {
        if self.window.len() == self.size {
            if let (Some(old), Some(old_cross)) = (self.window.pop_front(), self.cross.pop_front())
            {
                self.cross_total -= old_cross;
                for y in &self.window {
                    self.window_pairs -= kernel(&old, y, self.scale);
                }
            }
        }
        let cross: f64 = (0..self.sub_reference.rows())
            .map(|i| kernel(self.sub_reference.row(i), sample, self.scale))
            .sum();
        for y in &self.window {
            self.window_pairs += kernel(sample, y, self.scale);
        }
        self.cross_total += cross;
        self.cross.push_back(cross);
        self.window.push_back(sample.to_vec());
    }

    fn resum_window(&mut self) {
        let items: Vec<&Vec<f32>> = self.window.iter().collect();
        let mut sum = 0.0;
        for i in 0..items.len() {
            for j in i + 1..items.len() {
                sum += kernel(items[i], items[j], self.scale);
            }
        }
        self.window_pairs = sum;
        self.cross_total = self.cross.iter().sum();
    }
}

/// k(a, b) = exp(-‖a − b‖² · scale).
#[inline]
fn kernel(a: &[f32], b: &[f32], scale: f32) -> f64 {
    let d: f32 = a.iter().zip(b).map(|(x, y)| (x - y) * (x - y)).sum();
    f64::from(exp_neg(-d * scale))
}

/// The reference kernel matrix, held only while the detector is calibrated.
struct Gram {
    n: usize,
    values: Vec<f32>,
}

impl Gram {
    fn new(reference: &Samples, scale: f32) -> Self {
        let n = reference.rows();
        let mut values = vec![0.0f32; n * n];
        for i in 0..n {
            for j in i + 1..n {
                let k = kernel(reference.row(i), reference.row(j), scale) as f32;
                values[i * n + j] = k;
                values[j * n + i] = k;
            }
        }
        Self { n, values }
    }

    #[inline]
    fn get(&self, i: usize, j: usize) -> f64 {
        f64::from(self.values[i * self.n + j])
    }

    /// Σ_{i≠j} k over `rows` (ordered pairs).
    fn off_diagonal_sum(&self, rows: &[usize]) -> f64 {
        let mut sum = 0.0;
        for (a, &i) in rows.iter().enumerate() {
            for &j in &rows[a + 1..] {
                sum += self.get(i, j);
            }
        }
        2.0 * sum
    }

    fn cross_sum(&self, xs: &[usize], ys: &[usize]) -> f64 {
        xs.iter()
            .map(|&i| ys.iter().map(|&j| self.get(i, j)).sum::<f64>())
            .sum()
    }
}

/// Unbiased MMD² between the reference rows `xs` and window rows `ys`.
fn split_statistic(gram: &Gram, xs: &[usize], ys: &[usize]) -> f64 {
    let (r, w) = (xs.len() as f64, ys.len() as f64);
    gram.off_diagonal_sum(xs) / (r * (r - 1.0)) + gram.off_diagonal_sum(ys) / (w * (w - 1.0))
        - 2.0 * gram.cross_sum(xs, ys) / (r * w)
}

/// One bootstrap: the fixed reference term and, per extended-window
/// position j, the kernel sum of y_j against the sub-reference.
struct Bootstrap {
    reference_term: f64,
    extended: Vec<usize>,
    cross: Vec<f64>,
}

/// The W thresholds (see the module doc). The sub-reference term uses
/// Σ_{X} = Σ_all − Σ_{Y} − 2Σ_{X,Y}, so each bootstrap costs O(N·W).
fn calibrate(
    gram: &Gram,
    w: usize,
    fpr: f64,
    bootstraps: usize,
    rng: &mut impl rand::Rng,
) -> Vec<f64> {
    let n = gram.n;
    let extended = 2 * w - 1;
    let rows = n - extended;
    let all: Vec<usize> = (0..n).collect();
    let total = gram.off_diagonal_sum(&all);
    let mut order = all.clone();
    let mut live: Vec<Bootstrap> = (0..bootstraps)
        .map(|_| {
            order.shuffle(rng);
            let (xs, ys) = order.split_at(rows);
            let cross: Vec<f64> = ys
                .iter()
                .map(|&j| xs.iter().map(|&i| gram.get(i, j)).sum())
                .collect();
            let cross_total: f64 = cross.iter().sum();
            let reference_sum = total - gram.off_diagonal_sum(ys) - 2.0 * cross_total;
            Bootstrap {
                reference_term: reference_sum / (rows as f64 * (rows as f64 - 1.0)),
                extended: ys.to_vec(),
                cross,
            }
        })
        .collect();
    let (rf, wf) = (rows as f64, w as f64);
    let mut thresholds = Vec::with_capacity(w);
    for step in 0..w {
        let stats: Vec<f64> = live
            .iter()
            .map(|b| {
                let window = &b.extended[step..step + w];
                let cross: f64 = b.cross[step..step + w].iter().sum();
                b.reference_term + gram.off_diagonal_sum(window) / (wf * (wf - 1.0))
                    - 2.0 * cross / (rf * wf)
            })
            .collect();
        let threshold = upper_quantile(&stats, fpr);
        thresholds.push(threshold);
        let mut kept = Vec::with_capacity(live.len());
        for (b, s) in live.into_iter().zip(&stats) {
            if *s < threshold {
                kept.push(b);
            }
        }
        // Keep enough bootstraps to estimate the next quantile.
        if kept.len() < 10 {
            thresholds.resize(w, threshold);
            break;
        }
        live = kept;
    }
    thresholds
}

/// The threshold among `values` for an exceedance probability `fpr`: the
/// k-th smallest with k = ⌈(n + 1)(1 − fpr)⌉, because a new draw exceeds the
/// k-th order statistic of n with probability (n + 1 − k)/(n + 1) (plain
/// ⌈(1 − fpr)·n⌉ would overshoot the rate by 1/(n + 1), e.g. 0.011 instead
/// of 0.01 with 1000 bootstraps, and shorten the run time by about 10 %).
fn upper_quantile(values: &[f64], fpr: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let n = sorted.len() as f64;
    let rank = (((n + 1.0) * (1.0 - fpr)).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::Rng;

    fn normal(rng: &mut impl Rng) -> f32 {
        let u1: f64 = rng.random_range(f64::EPSILON..1.0);
        let u2: f64 = rng.random();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }

    fn gaussian(rng: &mut impl Rng, n: usize, d: usize) -> Samples {
        let data = (0..n * d).map(|_| normal(rng)).collect();
        Samples::from_flat(n, d, data).unwrap()
    }

    #[test]
    fn incremental_statistic_equals_a_fresh_computation() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
        let reference = gaussian(&mut rng, 60, 3);
        let config = OnlineConfig {
            window: 5,
            bootstraps: 50,
            ..OnlineConfig::default()
        };
        let mut detector = OnlineMmd::new(&reference, &config).unwrap();
        for _ in 0..23 {
            let x: Vec<f32> = (0..3).map(|_| normal(&mut rng) + 0.3).collect();
            let outcome = detector.update(&x).unwrap();
            let window: Vec<Vec<f32>> = detector.window.iter().cloned().collect();
            let y = Samples::from_rows(&window).unwrap();
            let direct =
                crate::drift::mmd::mmd2_unbiased(&detector.sub_reference, &y, detector.sigma)
                    .unwrap();
            assert!(
                (outcome.statistic - direct).abs() < 1e-5,
                "{} vs {direct}",
                outcome.statistic
            );
        }
        assert_eq!(
            detector.threshold(100),
            *detector.thresholds().last().unwrap()
        );
    }

    #[test]
    fn run_length_without_drift_is_near_ert_and_a_shift_is_found_fast() {
        // Small and quick: N=200, W=10, ERT=50, d=2, 40 streams.
        let (runs, ert) = (40, 50.0);
        let mut lengths = Vec::new();
        let mut delays = Vec::new();
        for seed in 0..runs {
            let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(100 + seed);
            let reference = gaussian(&mut rng, 200, 2);
            let config = OnlineConfig {
                window: 10,
                ert,
                bootstraps: 300,
                sigma: None,
                seed,
            };
            let mut quiet = OnlineMmd::new(&reference, &config).unwrap();
            let mut shifted = quiet.clone();
            let t = loop {
                let x = [normal(&mut rng), normal(&mut rng)];
                let outcome = quiet.update(&x).unwrap();
                if outcome.drift || outcome.t >= 2000 {
                    break outcome.t;
                }
            };
            lengths.push(t as f64);
            loop {
                let x = [normal(&mut rng) + 1.0, normal(&mut rng) + 1.0];
                let outcome = shifted.update(&x).unwrap();
                if outcome.drift || outcome.t >= 2000 {
                    delays.push(outcome.t as f64);
                    break;
                }
            }
        }
        let mean = lengths.iter().sum::<f64>() / lengths.len() as f64;
        let delay = delays.iter().sum::<f64>() / delays.len() as f64;
        // Geometric run lengths: sd ≈ ERT, so the mean of 40 has sd ≈ 8.
        assert!((25.0..=90.0).contains(&mean), "mean run length {mean}");
        assert!(delay < 15.0, "mean delay {delay}");
    }

    #[test]
    fn rejects_bad_configuration() {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(2);
        let reference = gaussian(&mut rng, 30, 2);
        let small = OnlineConfig {
            window: 20,
            ..OnlineConfig::default()
        };
        assert!(matches!(
            OnlineMmd::new(&reference, &small),
            Err(OnlineError::ReferenceTooSmall { .. })
        ));
        let one = OnlineConfig {
            window: 1,
            ..OnlineConfig::default()
        };
        assert_eq!(
            OnlineMmd::new(&reference, &one).err(),
            Some(OnlineError::WindowTooSmall(1))
        );
        let ert = OnlineConfig {
            window: 5,
            ert: 0.5,
            ..OnlineConfig::default()
        };
        assert_eq!(
            OnlineMmd::new(&reference, &ert).err(),
            Some(OnlineError::BadErt(0.5))
        );
        let config = OnlineConfig {
            window: 5,
            bootstraps: 20,
            ..OnlineConfig::default()
        };
        let mut detector = OnlineMmd::new(&reference, &config).unwrap();
        assert!(detector.update(&[1.0]).is_err());
    }
}

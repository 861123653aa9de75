//! Two-sample Kolmogorov–Smirnov test, two-sided, per feature.
//!
//! Statistic D = sup_t |F_X(t) − F_Y(t)| over the empirical CDFs, evaluated
//! after every distinct value (ties step both CDFs at once). p-value as in
//! SciPy's `ks_2samp(..., mode="asymp")`: the survival function of the
//! one-sample two-sided Kolmogorov distribution at the effective size
//! n_eff = round(n·m / (n + m)) (rounded half to even, like NumPy), see
//! `kolmogorov` (Smirnov 1939 for the limit; Hodges 1958 for n_eff).

use rayon::prelude::*;
use serde::Serialize;

use super::kolmogorov::kolmogorov_sf;
use super::matrix::Samples;

/// Statistic and p-value of one KS test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct KsOutcome {
    pub statistic: f64,
    pub p_value: f64,
}

/// Two-sided two-sample KS test; `None` if either sample is empty or holds NaN.
pub fn ks_two_sample(a: &[f64], b: &[f64]) -> Option<KsOutcome> {
    if a.is_empty() || b.is_empty() || a.iter().chain(b).any(|v| v.is_nan()) {
        return None;
    }
    let mut a = a.to_vec();
    let mut b = b.to_vec();
    a.sort_by(f64::total_cmp);
    b.sort_by(f64::total_cmp);
    let statistic = ks_statistic_sorted(&a, &b);
    let (n, m) = (a.len() as f64, b.len() as f64);
    let effective = (n * m / (n + m)).round_ties_even().max(1.0) as u64;
    Some(KsOutcome {
        statistic,
        p_value: kolmogorov_sf(effective, statistic),
    })
}

/// D over two ascending samples, exact in integer arithmetic:
/// max |i·m − j·n| / (n·m) after each distinct value.
fn ks_statistic_sorted(a: &[f64], b: &[f64]) -> f64 {
    let (n, m) = (a.len() as i128, b.len() as i128);
    let (mut i, mut j) = (0usize, 0usize);
    let mut widest = 0i128;
    while i < a.len() && j < b.len() {
        let value = if a[i] <= b[j] { a[i] } else { b[j] };
        while i < a.len() && a[i] <= value {
            i += 1;
        }
        while j < b.len() && b[j] <= value {
            j += 1;
        }
        widest = widest.max((i as i128 * m - j as i128 * n).abs());
    }
    // After one sample is exhausted the gap only shrinks towards 0.
    widest as f64 / (n * m) as f64
}

/// One KS test per column, in parallel.
pub fn ks_per_feature(reference: &Samples, current: &Samples) -> Vec<KsOutcome> {
    (0..reference.cols().min(current.cols()))
        .into_par_iter()
        .map(|c| {
            ks_two_sample(&reference.column(c), &current.column(c)).unwrap_or(KsOutcome {
                statistic: 0.0,
                p_value: 1.0,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected: SciPy 1.17.1, `scipy.stats.ks_2samp(a, b, mode="asymp")` with
    /// the same vectors (statistic, pvalue printed with repr()).
    #[test]
    fn matches_scipy_ks_2samp_asymp() {
        let a = [
            0.61, -1.2, 0.33, 2.05, -0.4, 0.9, 1.4, -0.05, 0.72, -2.3, 0.18,
        ];
        let b = [1.1, 0.95, 2.4, 0.3, 1.7, 0.62, 3.1, 1.25];
        let got = ks_two_sample(&a, &b).unwrap();
        assert!((got.statistic - 0.5681818181818182).abs() < 1e-15);
        assert!((got.p_value - 0.0467917916917622).abs() < 1e-12);

        // a2 = [i*0.37 % 5 for i in range(300)], b2 = [(i*0.41 % 5)+0.3 for i in range(200)]
        let a2: Vec<f64> = (0..300).map(|i| (f64::from(i) * 0.37) % 5.0).collect();
        let b2: Vec<f64> = (0..200)
            .map(|i| (f64::from(i) * 0.41) % 5.0 + 0.3)
            .collect();
        let got = ks_two_sample(&a2, &b2).unwrap();
        assert!((got.statistic - 0.06666666666666667).abs() < 1e-15);
        assert!((got.p_value - 0.6357579550372281).abs() < 1e-9);

        // With ties: a3 = [1,2,2,3,3,3,4], b3 = [2,3,3,4,4,5].
        let got = ks_two_sample(&[1., 2., 2., 3., 3., 3., 4.], &[2., 3., 3., 4., 4., 5.]).unwrap();
        assert!((got.statistic - 0.3571428571428571).abs() < 1e-15);
        assert!((got.p_value - 0.7133138969873666).abs() < 1e-12);
    }

    #[test]
    fn identical_samples_have_no_distance() {
        let a = [1.0, 2.0, 3.0];
        let got = ks_two_sample(&a, &a).unwrap();
        assert_eq!(got.statistic, 0.0);
        assert_eq!(got.p_value, 1.0);
        assert!(ks_two_sample(&[], &a).is_none());
        assert!(ks_two_sample(&[f64::NAN], &a).is_none());
    }

    fn normals(rng: &mut impl rand::Rng, n: usize, shift: f64) -> Vec<f64> {
        (0..n)
            .map(|_| {
                let u1: f64 = rng.random_range(f64::EPSILON..1.0);
                let u2: f64 = rng.random();
                (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos() + shift
            })
            .collect()
    }

    #[test]
    fn false_positive_rate_is_near_the_level_and_power_is_high() {
        use rand::SeedableRng;
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(42);
        let runs = 400;
        let false_alarms = (0..runs)
            .filter(|_| {
                let a = normals(&mut rng, 100, 0.0);
                let b = normals(&mut rng, 100, 0.0);
                ks_two_sample(&a, &b).unwrap().p_value < 0.1
            })
            .count();
        // Binomial(400, 0.1): mean 40, sd 6; [20, 60] is beyond ±3 sd.
        assert!(
            (20..=60).contains(&false_alarms),
            "{false_alarms} of {runs}"
        );
        let detected = (0..50)
            .filter(|_| {
                let a = normals(&mut rng, 60, 0.0);
                let b = normals(&mut rng, 60, 1.0);
                ks_two_sample(&a, &b).unwrap().p_value < 0.05
            })
            .count();
        assert!(detected >= 47, "detected {detected} of 50 one-sigma shifts");
    }
}

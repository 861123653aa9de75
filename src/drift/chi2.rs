//! Chi-square test of homogeneity on a 2×K contingency table: how often each
//! category occurs in the reference and in the current window, over the
//! union of the categories seen in either (Pearson 1900; the 2×K case of
//! SciPy's `chi2_contingency`). With K = 2 (one degree of freedom) Yates'
//! continuity correction (Yates 1934) moves each observed count up to 0.5
//! towards its expected count. Degrees of freedom K − 1; K = 1 gives
//! statistic 0 and p-value 1. p-value from the chi-square survival function
//! (`gamma::chi2_sf`).

use std::collections::BTreeMap;

use serde::Serialize;

use super::gamma::chi2_sf;

/// Statistic, p-value and degrees of freedom of one chi-square test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Chi2Outcome {
    pub statistic: f64,
    pub p_value: f64,
    pub dof: usize,
}

/// Tests whether `reference` and `current` draw categories from the same
/// distribution; `None` when either is empty.
pub fn chi2_two_sample<K: Ord + Clone>(reference: &[K], current: &[K]) -> Option<Chi2Outcome> {
    let mut table: BTreeMap<K, (u64, u64)> = BTreeMap::new();
    for value in reference {
        table.entry(value.clone()).or_default().0 += 1;
    }
    for value in current {
        table.entry(value.clone()).or_default().1 += 1;
    }
    let (a, b): (Vec<u64>, Vec<u64>) = table.into_values().unzip();
    chi2_from_counts(&a, &b)
}

/// The test on given counts (columns where both counts are 0 are ignored).
pub fn chi2_from_counts(reference: &[u64], current: &[u64]) -> Option<Chi2Outcome> {
    let columns: Vec<(f64, f64)> = reference
        .iter()
        .zip(current)
        .filter(|(a, b)| **a + **b > 0)
        .map(|(a, b)| (*a as f64, *b as f64))
        .collect();
    let row_a: f64 = columns.iter().map(|c| c.0).sum();
    let row_b: f64 = columns.iter().map(|c| c.1).sum();
    if row_a == 0.0 || row_b == 0.0 {
        return None;
    }
    let dof = columns.len().saturating_sub(1);
    if dof == 0 {
        return Some(Chi2Outcome {
            statistic: 0.0,
            p_value: 1.0,
            dof,
        });
    }
    let total = row_a + row_b;
    let mut statistic = 0.0;
    for (a, b) in &columns {
        let column = a + b;
        for (observed, row) in [(*a, row_a), (*b, row_b)] {
            let expected = row * column / total;
            let mut difference = observed - expected;
            if dof == 1 {
                difference = difference.signum() * (difference.abs() - 0.5).max(0.0);
            }
            statistic += difference * difference / expected;
        }
    }
    Some(Chi2Outcome {
        statistic,
        p_value: chi2_sf(statistic, dof as f64),
        dof,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Expected: SciPy 1.17.1, `scipy.stats.chi2_contingency(table)` (default
    /// correction=True), statistic and pvalue printed with repr().
    #[test]
    fn matches_scipy_chi2_contingency() {
        type Case<'a> = (&'a [u64], &'a [u64], f64, f64, usize);
        let cases: &[Case] = &[
            (
                &[30, 10],
                &[20, 25],
                6.949930555555551,
                0.00838224869725173,
                1,
            ),
            (
                &[5, 7, 9, 3],
                &[8, 4, 10, 12],
                5.3994912208534505,
                0.14477528137808432,
                3,
            ),
            (
                &[50, 0, 3],
                &[40, 8, 2],
                9.23156394129979,
                0.009894443216868415,
                2,
            ),
            (&[12], &[30], 0.0, 1.0, 0),
        ];
        for (a, b, statistic, p_value, dof) in cases {
            let got = chi2_from_counts(a, b).unwrap();
            assert!((got.statistic - statistic).abs() < 1e-10, "{a:?}: {got:?}");
            assert!(
                (got.p_value - p_value).abs() < 1e-12 + 1e-9 * p_value,
                "{a:?}: {got:?}"
            );
            assert_eq!(got.dof, *dof);
        }
    }

    #[test]
    fn counts_categories_over_the_union() {
        let reference = ["image", "image", "text", "image"];
        let current = ["text", "text", "audio", "image"];
        let got = chi2_two_sample(&reference, &current).unwrap();
        let direct = chi2_from_counts(&[0, 3, 1], &[1, 1, 2]).unwrap();
        assert_eq!(got, direct);
        assert_eq!(got.dof, 2);
        assert!(chi2_two_sample::<u8>(&[], &[1]).is_none());
    }

    #[test]
    fn false_positive_rate_is_near_the_level_and_power_is_high() {
        use rand::{Rng, SeedableRng};
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut draw = |n: usize, probabilities: [f64; 3]| -> Vec<u8> {
            (0..n)
                .map(|_| {
                    let u: f64 = rng.random();
                    if u < probabilities[0] {
                        0
                    } else if u < probabilities[0] + probabilities[1] {
                        1
                    } else {
                        2
                    }
                })
                .collect()
        };
        let runs = 400;
        let mut false_alarms = 0;
        for _ in 0..runs {
            let a = draw(200, [0.5, 0.3, 0.2]);
            let b = draw(200, [0.5, 0.3, 0.2]);
            false_alarms += usize::from(chi2_two_sample(&a, &b).unwrap().p_value < 0.1);
        }
        // Binomial(400, 0.1): mean 40, sd 6; [20, 60] is beyond ±3 sd.
        assert!(
            (20..=60).contains(&false_alarms),
            "{false_alarms} of {runs}"
        );
        let mut detected = 0;
        for _ in 0..50 {
            let a = draw(200, [0.5, 0.3, 0.2]);
            let b = draw(200, [0.3, 0.3, 0.4]);
            detected += usize::from(chi2_two_sample(&a, &b).unwrap().p_value < 0.05);
        }
        assert!(detected >= 47, "detected {detected} of 50 shifted mixes");
    }
}

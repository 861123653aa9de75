//! Multiple-testing corrections for per-feature tests.
//!
//! Bonferroni (Dunn 1961): drift when any p < p_val / K. Benjamini–Hochberg
//! (1995) false discovery rate at level q = p_val: with the p-values sorted
//! ascending, p_(1) ≤ … ≤ p_(K), drift when p_(k) ≤ k·q / K for some k.

use clap::ValueEnum;
use serde::Serialize;

/// Which correction combines per-feature p-values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Correction {
    #[default]
    Bonferroni,
    /// Benjamini–Hochberg false discovery rate.
    Fdr,
}

/// The decision over all features.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct Decision {
    pub drift: bool,
    /// The p-value cut-off: p_val / K (Bonferroni); for FDR the largest
    /// k·q / K that p_(k) meets, or q / K when none does.
    pub threshold: f64,
}

/// Applies `correction` at level `p_val` to `p_values` (NaN counts as 1).
pub fn decide(p_values: &[f64], p_val: f64, correction: Correction) -> Decision {
    let k = p_values.len().max(1) as f64;
    match correction {
        Correction::Bonferroni => {
            let threshold = p_val / k;
            Decision {
                drift: p_values.iter().any(|p| *p < threshold),
                threshold,
            }
        }
        Correction::Fdr => {
            let mut sorted: Vec<f64> = p_values
                .iter()
                .map(|p| if p.is_nan() { 1.0 } else { *p })
                .collect();
            sorted.sort_by(f64::total_cmp);
            let passing = sorted
                .iter()
                .enumerate()
                .filter(|(i, p)| **p <= (*i as f64 + 1.0) * p_val / k)
                .map(|(i, _)| i + 1)
                .max();
            match passing {
                Some(rank) => Decision {
                    drift: true,
                    threshold: rank as f64 * p_val / k,
                },
                None => Decision {
                    drift: false,
                    threshold: p_val / k,
                },
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bonferroni_divides_the_level() {
        let d = decide(&[0.02, 0.5, 0.9, 0.3], 0.05, Correction::Bonferroni);
        assert_eq!(
            d,
            Decision {
                drift: false,
                threshold: 0.0125
            }
        );
        assert!(decide(&[0.01, 0.5, 0.9, 0.3], 0.05, Correction::Bonferroni).drift);
    }

    #[test]
    fn benjamini_hochberg_step_up() {
        // Sorted 0.01, 0.02, 0.03, 0.5 against 0.0125, 0.025, 0.0375, 0.05:
        // ranks 1..3 pass, so the cut-off is 3·0.05/4.
        let d = decide(&[0.03, 0.5, 0.01, 0.02], 0.05, Correction::Fdr);
        assert!(d.drift);
        assert!((d.threshold - 0.0375).abs() < 1e-15);
        // Step-up: rank 2 passes although rank 1 alone would not.
        let d = decide(&[0.02, 0.024], 0.05, Correction::Fdr);
        assert!(d.drift);
        let d = decide(&[0.2, 0.4], 0.05, Correction::Fdr);
        assert_eq!(
            d,
            Decision {
                drift: false,
                threshold: 0.025
            }
        );
    }
}

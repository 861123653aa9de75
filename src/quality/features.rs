//! The numeric output features handed to the drift engine (prediction drift).
//!
//! A fixed-length vector, in the order of [`OUTPUT_FEATURE_NAMES`]. Missing
//! values are 0 with a companion presence flag, so the vector never holds NaN
//! (MMD and KS need finite numbers).

use super::answer::{AnswerView, ACTION_DIMS};
use super::checks::CheckOutcome;

/// Names of the output features, in vector order.
pub const OUTPUT_FEATURE_NAMES: [&str; 21] = [
    "output_chars_log1p",
    "output_tokens_log1p",
    "repetition_ratio",
    "has_logprob",
    "mean_logprob",
    "has_action",
    "action_x",
    "action_y",
    "action_z",
    "action_roll",
    "action_pitch",
    "action_yaw",
    "action_gripper",
    "marks",
    "points",
    "boxes",
    "traces",
    "anomalies",
    "truncated",
    "empty",
    "repetitive",
];

/// The output features of one checked answer. Actions are the
/// `normalized_actions` (bounded, comparable across robots) when present,
/// else `delta_values`; non-finite values count as 0.
pub fn output_features(answer: &AnswerView<'_>, outcome: &CheckOutcome) -> [f64; 21] {
    use super::checks::OutputAnomaly as A;
    let mut v = [0.0; 21];
    v[0] = (outcome.length_chars as f64).ln_1p();
    v[1] = (outcome.token_count as f64).ln_1p();
    v[2] = outcome.repetition_ratio;
    if let Some(lp) = answer.mean_logprob.filter(|x| x.is_finite()) {
        v[3] = 1.0;
        v[4] = lp;
    }
    if let Some(action) = answer.normalized_actions.or(answer.delta_values) {
        v[5] = 1.0;
        for (slot, value) in v[6..6 + ACTION_DIMS].iter_mut().zip(action) {
            *slot = if value.is_finite() { *value } else { 0.0 };
        }
    }
    v[13] = outcome.marks.marks.len() as f64;
    v[14] = outcome.marks.points.len() as f64;
    v[15] = outcome.marks.boxes.len() as f64;
    v[16] = outcome.marks.traces.len() as f64;
    v[17] = outcome.anomalies.len() as f64;
    let has = |kind: A| f64::from(u8::from(outcome.anomalies.contains(&kind)));
    v[18] = has(A::Truncated);
    v[19] = has(A::Empty);
    v[20] = has(A::Repetitive);
    v
}

#[cfg(test)]
mod tests {
    use super::super::checks::{check, CheckConfig};
    use super::super::task::Task;
    use super::*;

    #[test]
    fn features_are_finite_and_ordered() {
        let delta = [0.01, f64::NAN, 0.0, 0.0, 0.0, 0.0, 1.0];
        let answer = AnswerView {
            delta_values: Some(&delta),
            ..AnswerView::text(Task::RobotAction, "Mark: 3 (0.1, 0.2)")
        };
        let outcome = check(&answer, &CheckConfig::default());
        let f = output_features(&answer, &outcome);
        assert!(f.iter().all(|x| x.is_finite()));
        assert_eq!(f[5], 1.0);
        assert_eq!(f[6], 0.01);
        assert_eq!(f[7], 0.0, "NaN becomes 0");
        assert_eq!(f[12], 1.0);
        assert_eq!((f[13], f[14]), (1.0, 1.0));
        assert_eq!(f[17], 1.0, "action_out_of_range (NaN)");
        assert_eq!(OUTPUT_FEATURE_NAMES.len(), f.len());
    }
}

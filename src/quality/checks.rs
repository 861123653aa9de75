//! Output checks: the closed set of ways an answer can be visibly wrong.
//!
//! Each answer is checked once; every kind found is counted in
//! `magma_output_anomalies_total{task,kind}`.

use serde::Serialize;

use super::answer::{AnswerView, ACTION_DIMS};
use super::marks::{self, ParsedMarks};
use super::text;

/// The kinds of output anomaly (`kind` label values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum OutputAnomaly {
    /// No text and no action.
    Empty,
    /// Repeated n-gram ratio above the threshold ("the the the ...").
    Repetitive,
    /// The server stopped at its token limit (`finish_reason` = `length`).
    Truncated,
    /// The task asked for an action, marks or traces and the answer has none.
    UnparseableAction,
    /// An action value outside Magma's bounds, NaN or infinite.
    ActionOutOfRange,
    /// A point, box or trace outside its coordinate frame.
    CoordinatesOutOfRange,
}

impl OutputAnomaly {
    pub const ALL: [OutputAnomaly; 6] = [
        OutputAnomaly::Empty,
        OutputAnomaly::Repetitive,
        OutputAnomaly::Truncated,
        OutputAnomaly::UnparseableAction,
        OutputAnomaly::ActionOutOfRange,
        OutputAnomaly::CoordinatesOutOfRange,
    ];

    /// Position in [`OutputAnomaly::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    pub fn as_label(self) -> &'static str {
        match self {
            OutputAnomaly::Empty => "empty",
            OutputAnomaly::Repetitive => "repetitive",
            OutputAnomaly::Truncated => "truncated",
            OutputAnomaly::UnparseableAction => "unparseable_action",
            OutputAnomaly::ActionOutOfRange => "action_out_of_range",
            OutputAnomaly::CoordinatesOutOfRange => "coordinates_out_of_range",
        }
    }
}

/// Thresholds of the checks.
#[derive(Debug, Clone, Copy)]
pub struct CheckConfig {
    /// n of the repeated n-gram ratio.
    pub repetition_n: usize,
    /// An answer is `repetitive` when its repeated n-gram ratio exceeds this.
    /// Default 0.5: half of the trigrams are repeats. Ordinary prose and
    /// Set-of-Mark / Trace-of-Mark answers stay near 0; "the the the" of k
    /// words scores 1 - 1/(k-2).
    pub repetition_threshold: f64,
    /// Answers shorter than this many tokens are never called repetitive
    /// (too few n-grams to judge; "3 3 3" can be a right answer).
    pub repetition_min_tokens: usize,
}

impl Default for CheckConfig {
    fn default() -> Self {
        Self {
            repetition_n: 3,
            repetition_threshold: 0.5,
            repetition_min_tokens: 12,
        }
    }
}

/// Magma's bounds of `delta_values` (DESIGN.md): xyz ±0.05, roll/pitch/yaw
/// ±3.14 (taken as ±π, the value 3.14 rounds), gripper 0..1.
pub const DELTA_BOUNDS: [(f64, f64); ACTION_DIMS] = [
    (-0.05, 0.05),
    (-0.05, 0.05),
    (-0.05, 0.05),
    (-std::f64::consts::PI, std::f64::consts::PI),
    (-std::f64::consts::PI, std::f64::consts::PI),
    (-std::f64::consts::PI, std::f64::consts::PI),
    (0.0, 1.0),
];

/// Bounds of `normalized_actions`: [-1, 1] in every dimension.
pub const NORMALIZED_BOUNDS: [(f64, f64); ACTION_DIMS] = [(-1.0, 1.0); ACTION_DIMS];

/// What checking one answer found.
#[derive(Debug, Clone, Default)]
pub struct CheckOutcome {
    pub anomalies: Vec<OutputAnomaly>,
    /// Output length in characters (0 without text).
    pub length_chars: usize,
    pub token_count: usize,
    pub repetition_ratio: f64,
    pub marks: ParsedMarks,
}

/// Checks one answer.
pub fn check(answer: &AnswerView<'_>, config: &CheckConfig) -> CheckOutcome {
    let tokens = text::token_hashes(answer.text.unwrap_or(""));
    check_tokens(answer, &tokens, config)
}

/// [`check`] for a caller that has the answer's token hashes already.
pub fn check_tokens(answer: &AnswerView<'_>, tokens: &[u64], config: &CheckConfig) -> CheckOutcome {
    use super::task::Task;
    let mut outcome = CheckOutcome::default();
    let text = answer.text.unwrap_or("");
    outcome.length_chars = text.chars().count();
    outcome.token_count = tokens.len();
    outcome.repetition_ratio = text::repeated_ngram_ratio(tokens, config.repetition_n);
    outcome.marks = marks::parse(text);

    let has_action = answer.normalized_actions.is_some() || answer.delta_values.is_some();
    if text.trim().is_empty() && !has_action {
        outcome.anomalies.push(OutputAnomaly::Empty);
    }
    if tokens.len() >= config.repetition_min_tokens
        && outcome.repetition_ratio > config.repetition_threshold
    {
        outcome.anomalies.push(OutputAnomaly::Repetitive);
    }
    if answer
        .finish_reason
        .is_some_and(|r| r.eq_ignore_ascii_case("length"))
    {
        outcome.anomalies.push(OutputAnomaly::Truncated);
    }
    let unparseable = match answer.task {
        Task::RobotAction => {
            !has_action
                || [answer.normalized_actions, answer.delta_values]
                    .iter()
                    .flatten()
                    .any(|a| a.len() != ACTION_DIMS)
        }
        Task::UiNavigation => answer.expects_grounding && !outcome.marks.has_grounding(),
        Task::TraceOfMark => answer.expects_grounding && outcome.marks.traces.is_empty(),
        _ => false,
    };
    if unparseable {
        outcome.anomalies.push(OutputAnomaly::UnparseableAction);
    }
    let out_of_range = answer
        .normalized_actions
        .is_some_and(|a| !within(a, &NORMALIZED_BOUNDS))
        || answer
            .delta_values
            .is_some_and(|a| !within(a, &DELTA_BOUNDS));
    if out_of_range {
        outcome.anomalies.push(OutputAnomaly::ActionOutOfRange);
    }
    if outcome.marks.any_out_of_range() {
        outcome.anomalies.push(OutputAnomaly::CoordinatesOutOfRange);
    }
    outcome
}

/// True when every value is finite and inside its dimension's bounds (values
/// beyond the 7th are only checked for being finite).
fn within(values: &[f64], bounds: &[(f64, f64); ACTION_DIMS]) -> bool {
    values.iter().enumerate().all(|(i, v)| {
        v.is_finite()
            && bounds
                .get(i)
                .is_none_or(|(low, high)| (*low..=*high).contains(v))
    })
}

#[cfg(test)]
mod tests {
    use super::super::task::Task;
    use super::*;

    #[test]
    fn index_is_the_position_in_all() {
        for (i, kind) in OutputAnomaly::ALL.iter().enumerate() {
            assert_eq!(kind.index(), i, "{kind:?}");
        }
    }

    fn kinds(answer: AnswerView<'_>) -> Vec<OutputAnomaly> {
        check(&answer, &CheckConfig::default()).anomalies
    }

    #[test]
    fn clean_answers_pass() {
        assert!(kinds(AnswerView::text(
            Task::VisualQa,
            "There are three cats on the sofa."
        ))
        .is_empty());
        assert!(kinds(AnswerView::text(
            Task::UiNavigation,
            "Coordinate: (0.52, 0.31). Mark: 12"
        ))
        .is_empty());
        assert!(kinds(AnswerView::text(
            Task::TraceOfMark,
            "Mark 3 at [[12,34],[20,40]]"
        ))
        .is_empty());
        let action = [0.01, -0.02, 0.0, 0.1, -3.0, 3.1, 1.0];
        let normalized = [0.1, -0.9, 1.0, -1.0, 0.0, 0.5, 1.0];
        let answer = AnswerView {
            normalized_actions: Some(&normalized),
            delta_values: Some(&action),
            ..AnswerView::text(Task::RobotAction, "")
        };
        assert!(kinds(answer).is_empty());
    }

    #[test]
    fn each_kind_is_found() {
        assert_eq!(
            kinds(AnswerView::text(Task::Chat, "  ")),
            [OutputAnomaly::Empty]
        );
        assert_eq!(
            kinds(AnswerView::text(Task::Chat, &"the ".repeat(40))),
            [OutputAnomaly::Repetitive]
        );
        let truncated = AnswerView {
            finish_reason: Some("length"),
            ..AnswerView::text(Task::Chat, "a long story that goes on")
        };
        assert_eq!(kinds(truncated), [OutputAnomaly::Truncated]);
        assert_eq!(
            kinds(AnswerView::text(
                Task::UiNavigation,
                "I would click the blue button."
            )),
            [OutputAnomaly::UnparseableAction]
        );
        let question = AnswerView {
            expects_grounding: false,
            ..AnswerView::text(Task::UiNavigation, "The page shows a login form.")
        };
        assert!(kinds(question).is_empty());
        assert_eq!(
            kinds(AnswerView::text(
                Task::TraceOfMark,
                "Mark 3 should move left"
            )),
            [OutputAnomaly::UnparseableAction]
        );
        assert_eq!(
            kinds(AnswerView::text(Task::RobotAction, "")),
            [OutputAnomaly::Empty, OutputAnomaly::UnparseableAction]
        );
        assert_eq!(
            kinds(AnswerView::text(Task::UiNavigation, "Mark: 4 (1.5, 0.2)")),
            [OutputAnomaly::CoordinatesOutOfRange]
        );
    }

    #[test]
    fn action_bounds() {
        let check_delta = |values: &[f64]| {
            kinds(AnswerView {
                delta_values: Some(values),
                ..AnswerView::text(Task::RobotAction, "")
            })
        };
        assert!(check_delta(&[0.05, -0.05, 0.0, std::f64::consts::PI, 0.0, 0.0, 0.0]).is_empty());
        for bad in [
            [0.06, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 3.2, 0.0, 0.0],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.2],
            [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -0.1],
            [f64::NAN, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
            [0.0, f64::INFINITY, 0.0, 0.0, 0.0, 0.0, 0.0],
        ] {
            assert_eq!(
                check_delta(&bad),
                [OutputAnomaly::ActionOutOfRange],
                "{bad:?}"
            );
        }
        let normalized = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, -1.01];
        assert_eq!(
            kinds(AnswerView {
                normalized_actions: Some(&normalized),
                ..AnswerView::text(Task::RobotAction, "")
            }),
            [OutputAnomaly::ActionOutOfRange]
        );
        assert_eq!(
            check_delta(&[0.0; 6]),
            [OutputAnomaly::UnparseableAction],
            "six values is not a 7-DoF action"
        );
    }
}

//! Scoring a recorded prediction against ground truth sent later by a
//! labelling job (`POST /api/ground_truth`).
//!
//! | metric              | range  | definition |
//! |---------------------|--------|------------|
//! | `token_f1`          | 0..1   | SQuAD token F1 of the answer text |
//! | `rouge_l`           | 0..1   | ROUGE-L F-measure (Lin 2004), β = 1 |
//! | `action_l2_error`   | ≥ 0    | Euclidean distance of the 7-DoF vectors |
//! | `gripper_agreement` | 0 or 1 | gripper open/closed agrees (delta: ≥ 0.5 closed; normalized: ≥ 0) |
//! | `mark_match`        | 0 or 1 | the first predicted mark equals the true mark |
//! | `point_in_box`      | 0 or 1 | the predicted point (or the predicted box's centre) lies in the true box; or the true point lies in the predicted box |
//! | `point_distance`    | ≥ 0    | unit-frame distance of predicted and true point |

use serde::{Deserialize, Serialize};

use super::answer::ACTION_DIMS;
use super::marks::Scale;
use super::store::Prediction;
use super::text;

/// The `metric` label values of `magma_quality_score`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum QualityMetric {
    TokenF1,
    RougeL,
    ActionL2Error,
    GripperAgreement,
    MarkMatch,
    PointInBox,
    PointDistance,
}

impl QualityMetric {
    pub fn as_label(self) -> &'static str {
        match self {
            QualityMetric::TokenF1 => "token_f1",
            QualityMetric::RougeL => "rouge_l",
            QualityMetric::ActionL2Error => "action_l2_error",
            QualityMetric::GripperAgreement => "gripper_agreement",
            QualityMetric::MarkMatch => "mark_match",
            QualityMetric::PointInBox => "point_in_box",
            QualityMetric::PointDistance => "point_distance",
        }
    }
}

/// Which of Magma's two action vectors the true action is written in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ActionSpace {
    /// `delta_values` (the robot's own units; default).
    #[default]
    Delta,
    /// `normalized_actions` ([-1, 1]).
    Normalized,
}

/// The frame of `point` and `box` in a ground-truth record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ScaleName {
    #[default]
    Unit,
    Permille,
    Grid256,
}

impl From<ScaleName> for Scale {
    fn from(name: ScaleName) -> Self {
        match name {
            ScaleName::Unit => Scale::Unit,
            ScaleName::Permille => Scale::Permille,
            ScaleName::Grid256 => Scale::Grid256,
        }
    }
}

/// One ground-truth record; every field but `request_id` is optional.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroundTruth {
    pub request_id: String,
    #[serde(default)]
    pub text: Option<String>,
    #[serde(default)]
    pub action: Option<Vec<f64>>,
    #[serde(default)]
    pub action_space: ActionSpace,
    #[serde(default)]
    pub mark: Option<u32>,
    #[serde(default)]
    pub point: Option<[f64; 2]>,
    #[serde(default, rename = "box")]
    pub bounding_box: Option<[f64; 4]>,
    /// Frame of `point` and `box`: `unit` ([0,1], default), `permille`, `grid256`.
    #[serde(default)]
    pub scale: ScaleName,
}

/// Why a ground-truth record cannot be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum GroundTruthError {
    #[error("request_id is empty")]
    EmptyId,
    #[error("no label given: send at least one of text, action, mark, point, box")]
    NothingToScore,
    #[error("action must have exactly {ACTION_DIMS} values, got {0}")]
    ActionLength(usize),
    #[error("action values must be finite numbers")]
    ActionNotFinite,
    #[error("{0} coordinates must be finite and within [0, {1}] for the {2} scale")]
    CoordinatesOutOfFrame(&'static str, f64, &'static str),
}

impl GroundTruth {
    /// Checks the record on its own, before looking the prediction up.
    pub fn validate(&self) -> Result<(), GroundTruthError> {
        if self.request_id.is_empty() {
            return Err(GroundTruthError::EmptyId);
        }
        if self.text.is_none()
            && self.action.is_none()
            && self.mark.is_none()
            && self.point.is_none()
            && self.bounding_box.is_none()
        {
            return Err(GroundTruthError::NothingToScore);
        }
        if let Some(action) = &self.action {
            if action.len() != ACTION_DIMS {
                return Err(GroundTruthError::ActionLength(action.len()));
            }
            if action.iter().any(|v| !v.is_finite()) {
                return Err(GroundTruthError::ActionNotFinite);
            }
        }
        let scale = Scale::from(self.scale);
        let scale_name = match self.scale {
            ScaleName::Unit => "unit",
            ScaleName::Permille => "permille",
            ScaleName::Grid256 => "grid256",
        };
        let in_frame = |v: &f64| v.is_finite() && (0.0..=scale.max()).contains(v);
        if self.point.is_some_and(|p| !p.iter().all(in_frame)) {
            return Err(GroundTruthError::CoordinatesOutOfFrame(
                "point",
                scale.max(),
                scale_name,
            ));
        }
        if self.bounding_box.is_some_and(|b| !b.iter().all(in_frame)) {
            return Err(GroundTruthError::CoordinatesOutOfFrame(
                "box",
                scale.max(),
                scale_name,
            ));
        }
        Ok(())
    }
}

/// The scores of one prediction, and labels that could not be scored.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Scores {
    pub scores: Vec<(QualityMetric, f64)>,
    pub not_scored: Vec<String>,
}

impl Scores {
    pub fn get(&self, metric: QualityMetric) -> Option<f64> {
        self.scores
            .iter()
            .find(|(m, _)| *m == metric)
            .map(|(_, v)| *v)
    }
}

/// Scores `prediction` against a validated `truth`.
pub fn score(prediction: &Prediction, truth: &GroundTruth) -> Scores {
    let mut out = Scores::default();
    if let Some(reference) = &truth.text {
        let predicted = text::tokens(&prediction.text);
        let reference = text::tokens(reference);
        out.scores.push((
            QualityMetric::TokenF1,
            text::token_f1(&predicted, &reference),
        ));
        out.scores
            .push((QualityMetric::RougeL, text::rouge_l(&predicted, &reference)));
    }
    if let Some(action) = &truth.action {
        let (predicted, closed_at, name) = match truth.action_space {
            ActionSpace::Delta => (prediction.delta_values, 0.5, "delta_values"),
            ActionSpace::Normalized => (prediction.normalized_actions, 0.0, "normalized_actions"),
        };
        match predicted {
            Some(p) => {
                let l2 = p
                    .iter()
                    .zip(action)
                    .map(|(a, b)| (a - b) * (a - b))
                    .sum::<f64>()
                    .sqrt();
                out.scores.push((QualityMetric::ActionL2Error, l2));
                let g = ACTION_DIMS - 1;
                let agree = (p[g] >= closed_at) == (action[g] >= closed_at);
                out.scores
                    .push((QualityMetric::GripperAgreement, f64::from(u8::from(agree))));
            }
            None => out
                .not_scored
                .push(format!("action: the prediction has no {name}")),
        }
    }
    if let Some(mark) = truth.mark {
        let hit = prediction.marks.marks.first() == Some(&mark);
        out.scores
            .push((QualityMetric::MarkMatch, f64::from(u8::from(hit))));
    }
    let scale = Scale::from(truth.scale);
    let location = prediction.marks.first_location().map(|p| p.unit());
    if let Some(b) = truth.bounding_box {
        let m = scale.max();
        let unit_box = [
            b[0].min(b[2]) / m,
            b[1].min(b[3]) / m,
            b[0].max(b[2]) / m,
            b[1].max(b[3]) / m,
        ];
        let hit = location.is_some_and(|p| inside(p, unit_box));
        out.scores
            .push((QualityMetric::PointInBox, f64::from(u8::from(hit))));
    } else if let Some(point) = truth.point {
        let truth_point = (point[0] / scale.max(), point[1] / scale.max());
        if let Some(predicted_box) = prediction.marks.boxes.first() {
            let hit = inside(truth_point, predicted_box.unit());
            out.scores
                .push((QualityMetric::PointInBox, f64::from(u8::from(hit))));
        } else if let Some(p) = location {
            let distance = ((p.0 - truth_point.0).powi(2) + (p.1 - truth_point.1).powi(2)).sqrt();
            out.scores.push((QualityMetric::PointDistance, distance));
        } else {
            out.scores.push((QualityMetric::PointInBox, 0.0));
        }
    }
    out
}

fn inside((x, y): (f64, f64), b: [f64; 4]) -> bool {
    (b[0]..=b[2]).contains(&x) && (b[1]..=b[3]).contains(&y)
}

#[cfg(test)]
mod tests {
    use super::super::marks;
    use super::super::task::Task;
    use super::*;

    fn prediction(text: &str) -> Prediction {
        Prediction {
            task: Task::UiNavigation,
            text: text.into(),
            normalized_actions: Some([0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 0.9]),
            delta_values: Some([0.01, 0.02, 0.0, 0.0, 0.0, 0.0, 1.0]),
            marks: marks::parse(text),
            rated: false,
        }
    }

    fn truth(json: serde_json::Value) -> GroundTruth {
        let truth: GroundTruth = serde_json::from_value(json).unwrap();
        truth.validate().unwrap();
        truth
    }

    #[test]
    fn text_scores() {
        let s = score(
            &prediction("the red button"),
            &truth(serde_json::json!({"request_id": "r", "text": "red button"})),
        );
        assert!((s.get(QualityMetric::TokenF1).unwrap() - 0.8).abs() < 1e-12);
        assert!((s.get(QualityMetric::RougeL).unwrap() - 0.8).abs() < 1e-12);
    }

    #[test]
    fn action_scores() {
        let s = score(
            &prediction(""),
            &truth(
                serde_json::json!({"request_id": "r", "action": [0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 0.0]}),
            ),
        );
        assert!((s.get(QualityMetric::ActionL2Error).unwrap() - 1.0004f64.sqrt()).abs() < 1e-9);
        assert_eq!(s.get(QualityMetric::GripperAgreement), Some(0.0));
        let s = score(
            &prediction(""),
            &truth(
                serde_json::json!({"request_id": "r", "action_space": "normalized", "action": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]}),
            ),
        );
        assert!((s.get(QualityMetric::ActionL2Error).unwrap() - 0.1).abs() < 1e-9);
        assert_eq!(s.get(QualityMetric::GripperAgreement), Some(1.0));
    }

    #[test]
    fn grounding_scores() {
        let p = prediction("Mark: 12 (0.52, 0.31)");
        let s = score(
            &p,
            &truth(serde_json::json!({"request_id": "r", "mark": 12, "box": [0.5, 0.3, 0.6, 0.4]})),
        );
        assert_eq!(s.get(QualityMetric::MarkMatch), Some(1.0));
        assert_eq!(s.get(QualityMetric::PointInBox), Some(1.0));
        let s = score(
            &p,
            &truth(
                serde_json::json!({"request_id": "r", "mark": 3, "scale": "permille", "box": [0, 0, 500, 300]}),
            ),
        );
        assert_eq!(s.get(QualityMetric::MarkMatch), Some(0.0));
        assert_eq!(s.get(QualityMetric::PointInBox), Some(0.0));
        let s = score(
            &p,
            &truth(serde_json::json!({"request_id": "r", "point": [0.52, 0.35]})),
        );
        assert!((s.get(QualityMetric::PointDistance).unwrap() - 0.04).abs() < 1e-9);
        let boxed = prediction("<box>(100,100),(300,300)</box>");
        let s = score(
            &boxed,
            &truth(serde_json::json!({"request_id": "r", "point": [0.2, 0.25]})),
        );
        assert_eq!(s.get(QualityMetric::PointInBox), Some(1.0));
    }

    #[test]
    fn invalid_records_are_rejected_with_a_reason() {
        let parse =
            |v: serde_json::Value| serde_json::from_value::<GroundTruth>(v).map(|t| t.validate());
        assert_eq!(
            parse(serde_json::json!({"request_id": "r"})).unwrap(),
            Err(GroundTruthError::NothingToScore)
        );
        assert_eq!(
            parse(serde_json::json!({"request_id": "r", "action": [1.0]})).unwrap(),
            Err(GroundTruthError::ActionLength(1))
        );
        assert!(matches!(
            parse(serde_json::json!({"request_id": "r", "point": [2.0, 0.1]})).unwrap(),
            Err(GroundTruthError::CoordinatesOutOfFrame(..))
        ));
        assert!(parse(serde_json::json!({"request_id": "r", "txt": "typo"})).is_err());
    }
}

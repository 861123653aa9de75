//! The quality monitor: checks answers, exports their measures, remembers them
//! for feedback and ground truth, and tracks output diversity.
//!
//! Shared by the proxy (which calls [`QualityMonitor::observe_at`] once per
//! exchange, when the last response frame has passed) and the admin routes
//! (feedback, ground truth). Locks are held for O(1) work or O(n-grams of one
//! answer); nothing here does I/O.

use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::answer::{AnswerView, ACTION_DIMS};
use super::answer_metrics::AnswerMetrics;
use super::checks::{self, CheckConfig, CheckOutcome};
use super::diversity::{DiversityWindow, DISTINCT_NS};
use super::feedback::{Feedback, FeedbackRecord, RecentFeedback, MAX_COMMENT_BYTES};
use super::scoring::{self, GroundTruth, GroundTruthError, Scores};
use super::store::{Lookup, Prediction, PredictionStore};
use super::task::Task;
use crate::payload::task::truncate_at_char;
use crate::telemetry;

/// Settings of the quality monitor (from `QualityArgs`).
#[derive(Debug, Clone)]
pub struct QualityConfig {
    pub checks: CheckConfig,
    pub store_capacity: usize,
    pub store_ttl: Duration,
    /// Longest answer text kept per prediction for scoring.
    pub store_text_bytes: usize,
    pub diversity_window: usize,
}

impl Default for QualityConfig {
    fn default() -> Self {
        Self {
            checks: CheckConfig::default(),
            store_capacity: 10_000,
            store_ttl: Duration::from_secs(3600),
            store_text_bytes: 4096,
            diversity_window: 200,
        }
    }
}

/// Why feedback or ground truth could not be applied.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum ApplyError {
    #[error("no prediction recorded for request id `{0}` (never seen, or evicted)")]
    UnknownId(String),
    #[error("the prediction of request id `{0}` has expired (kept {1} s)")]
    Expired(String, u64),
    #[error(transparent)]
    Invalid(#[from] GroundTruthError),
    #[error("request_id is empty")]
    EmptyId,
}

/// What applying feedback did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeedbackOutcome {
    pub task: Task,
    /// False when this request id was already rated (the first rating counts).
    pub counted: bool,
}

/// The quality monitor.
pub struct QualityMonitor {
    config: QualityConfig,
    store: Mutex<PredictionStore>,
    diversity: Mutex<Vec<DiversityWindow>>,
    recent_feedback: Mutex<RecentFeedback>,
    metrics: AnswerMetrics,
}

impl QualityMonitor {
    pub fn new(config: QualityConfig) -> Self {
        let store = PredictionStore::new(config.store_capacity, config.store_ttl);
        let diversity = Task::ALL
            .iter()
            .map(|_| DiversityWindow::new(config.diversity_window))
            .collect();
        Self {
            config,
            store: Mutex::new(store),
            diversity: Mutex::new(diversity),
            recent_feedback: Mutex::new(RecentFeedback::default()),
            metrics: AnswerMetrics::default(),
        }
    }

    pub fn config(&self) -> &QualityConfig {
        &self.config
    }

    /// Checks one answer, exports its measures and anomalies, adds it to its
    /// task's diversity window, and records it under `request_id` (when
    /// given) for later feedback and ground truth. The state gauges follow at
    /// the next [`Self::publish_state`].
    pub fn observe(&self, request_id: Option<&str>, answer: &AnswerView<'_>) -> CheckOutcome {
        self.observe_at(request_id, answer, Instant::now())
    }

    /// [`Self::observe`] at `now`: the proxy passes the time the exchange
    /// ended, which it has just read for the exchange's duration.
    pub fn observe_at(
        &self,
        request_id: Option<&str>,
        answer: &AnswerView<'_>,
        now: Instant,
    ) -> CheckOutcome {
        let tokens = super::text::token_hashes(answer.text.unwrap_or(""));
        let outcome = checks::check_tokens(answer, &tokens, &self.config.checks);
        let (task, m) = (answer.task, &self.metrics);
        m.checked(task).increment(1);
        for kind in &outcome.anomalies {
            m.anomaly(task, *kind).increment(1);
        }
        if !outcome.anomalies.is_empty() {
            m.defective(task).increment(1);
        }
        if answer.text.is_some() {
            m.length(task).record(outcome.length_chars as f64);
            m.repetition(task).record(outcome.repetition_ratio);
        }
        if let Some(confidence) = answer.mean_logprob.filter(|v| v.is_finite()) {
            m.confidence(task).record(confidence);
        }
        for (space, values) in [answer.normalized_actions, answer.delta_values]
            .into_iter()
            .enumerate()
        {
            for (dimension, value) in values.unwrap_or(&[]).iter().take(ACTION_DIMS).enumerate() {
                if value.is_finite() {
                    m.action(space, dimension).record(*value);
                }
            }
        }
        if answer.text.is_some() {
            self.update_diversity(answer.task, &tokens);
        }
        if let Some(id) = request_id {
            self.remember(id, answer, &outcome, now);
        }
        outcome
    }

    fn update_diversity(&self, task: Task, tokens: &[u64]) {
        if tokens.is_empty() {
            return;
        }
        let Ok(mut windows) = self.diversity.lock() else {
            return;
        };
        if let Some(window) = windows.get_mut(task.index()) {
            window.push(tokens);
        }
    }

    /// Brings the gauges that describe the monitor's state (diversity per
    /// task, prediction store size and evictions) up to date. Called when
    /// metrics are rendered rather than per answer: a window's diversity
    /// costs a pass over the window, and a gauge nobody reads between two
    /// scrapes need not be written per request.
    pub fn publish_state(&self) {
        if let Ok(windows) = self.diversity.lock() {
            for (task, window) in Task::ALL.iter().zip(windows.iter()) {
                if window.is_empty() {
                    continue;
                }
                let d = window.diversity();
                for k in 0..DISTINCT_NS.len() {
                    self.metrics.distinct(*task, k).set(d.distinct[k]);
                }
                self.metrics.identical(*task).set(d.identical_answer_ratio);
            }
        }
        if let Ok(store) = self.store.lock() {
            self.metrics.store_entries().set(store.len() as f64);
            let (capacity, expired) = store.evictions();
            for (reason, total) in [("capacity", capacity), ("expired", expired)] {
                if total > 0 {
                    self.metrics.evictions(reason).absolute(total);
                }
            }
        }
    }

    fn remember(&self, id: &str, answer: &AnswerView<'_>, outcome: &CheckOutcome, now: Instant) {
        let prediction = Prediction {
            task: answer.task,
            text: truncate_at_char(answer.text.unwrap_or(""), self.config.store_text_bytes)
                .to_owned(),
            normalized_actions: answer.normalized_actions.and_then(as_action),
            delta_values: answer.delta_values.and_then(as_action),
            marks: outcome.marks.clone(),
            rated: false,
        };
        if let Ok(mut store) = self.store.lock() {
            store.insert(id, prediction, now);
        }
    }

    /// Counts a user's rating of a recorded prediction.
    pub fn feedback(&self, record: &Feedback) -> Result<FeedbackOutcome, ApplyError> {
        self.feedback_at(record, Instant::now())
    }

    pub fn feedback_at(
        &self,
        record: &Feedback,
        now: Instant,
    ) -> Result<FeedbackOutcome, ApplyError> {
        if record.request_id.is_empty() {
            return Err(ApplyError::EmptyId);
        }
        let outcome = self.with_prediction(&record.request_id, now, |prediction| {
            let counted = !prediction.rated;
            prediction.rated = true;
            FeedbackOutcome {
                task: prediction.task,
                counted,
            }
        })?;
        if outcome.counted {
            metrics::counter!(telemetry::FEEDBACK, "rating" => record.rating.as_label(), "task" => outcome.task.as_str())
                .increment(1);
            if let Ok(mut recent) = self.recent_feedback.lock() {
                recent.push(FeedbackRecord {
                    request_id: record.request_id.clone(),
                    rating: record.rating,
                    task: outcome.task,
                    comment: record
                        .comment
                        .as_deref()
                        .map(|c| truncate_at_char(c, MAX_COMMENT_BYTES).to_owned()),
                    unix_seconds: SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .map(|d| d.as_secs_f64())
                        .unwrap_or(0.0),
                });
            }
        }
        Ok(outcome)
    }

    /// The newest feedback records, newest first.
    pub fn recent_feedback(&self, limit: usize) -> Vec<FeedbackRecord> {
        self.recent_feedback
            .lock()
            .map(|r| r.newest(limit))
            .unwrap_or_default()
    }

    /// Scores a recorded prediction against ground truth and exports the scores.
    pub fn ground_truth(&self, truth: &GroundTruth) -> Result<(Task, Scores), ApplyError> {
        self.ground_truth_at(truth, Instant::now())
    }

    pub fn ground_truth_at(
        &self,
        truth: &GroundTruth,
        now: Instant,
    ) -> Result<(Task, Scores), ApplyError> {
        let result = truth.validate().map_err(ApplyError::from).and_then(|()| {
            self.with_prediction(&truth.request_id, now, |prediction| {
                (prediction.task, scoring::score(prediction, truth))
            })
        });
        let outcome = match &result {
            Ok(_) => "scored",
            Err(ApplyError::UnknownId(_) | ApplyError::Expired(..)) => "unknown_id",
            Err(_) => "invalid",
        };
        metrics::counter!(telemetry::GROUND_TRUTH, "outcome" => outcome).increment(1);
        if let Ok((task, scores)) = &result {
            for (metric, value) in &scores.scores {
                metrics::histogram!(telemetry::QUALITY_SCORE, "metric" => metric.as_label(), "task" => task.as_str())
                    .record(*value);
            }
        }
        result
    }

    fn with_prediction<T>(
        &self,
        id: &str,
        now: Instant,
        apply: impl FnOnce(&mut Prediction) -> T,
    ) -> Result<T, ApplyError> {
        let mut store = self
            .store
            .lock()
            .map_err(|_| ApplyError::UnknownId(id.to_owned()))?;
        match store.get(id, now) {
            Lookup::Found(prediction) => Ok(apply(prediction)),
            Lookup::Unknown => Err(ApplyError::UnknownId(id.to_owned())),
            Lookup::Expired => Err(ApplyError::Expired(
                id.to_owned(),
                self.config.store_ttl.as_secs(),
            )),
        }
    }
}

fn as_action(values: &[f64]) -> Option<[f64; ACTION_DIMS]> {
    values.try_into().ok()
}

#[cfg(test)]
mod tests {
    use super::super::feedback::Rating;
    use super::*;

    fn monitor() -> QualityMonitor {
        QualityMonitor::new(QualityConfig {
            store_capacity: 4,
            store_ttl: Duration::from_secs(10),
            ..QualityConfig::default()
        })
    }

    #[test]
    fn feedback_matches_recorded_predictions() {
        let m = monitor();
        let now = Instant::now();
        m.observe_at(
            Some("r1"),
            &AnswerView::text(Task::VisualQa, "two cats"),
            now,
        );
        let fb = |id: &str| Feedback {
            request_id: id.into(),
            rating: Rating::Down,
            comment: Some("wrong".into()),
        };
        assert_eq!(
            m.feedback_at(&fb("r1"), now),
            Ok(FeedbackOutcome {
                task: Task::VisualQa,
                counted: true
            })
        );
        assert_eq!(
            m.feedback_at(&fb("r1"), now),
            Ok(FeedbackOutcome {
                task: Task::VisualQa,
                counted: false
            })
        );
        assert_eq!(
            m.feedback_at(&fb("nope"), now),
            Err(ApplyError::UnknownId("nope".into()))
        );
        assert!(matches!(
            m.feedback_at(&fb("r1"), now + Duration::from_secs(11)),
            Err(ApplyError::Expired(..))
        ));
        assert_eq!(m.recent_feedback(10).len(), 1);
    }

    #[test]
    fn ground_truth_scores_the_recorded_answer() {
        let m = monitor();
        let now = Instant::now();
        let delta = [0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
        let answer = AnswerView {
            delta_values: Some(&delta),
            ..AnswerView::text(Task::RobotAction, "")
        };
        m.observe_at(Some("r2"), &answer, now);
        let truth: GroundTruth = serde_json::from_value(serde_json::json!({
            "request_id": "r2", "action": [0.01, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0]
        }))
        .unwrap();
        let (task, scores) = m.ground_truth_at(&truth, now).unwrap();
        assert_eq!(task, Task::RobotAction);
        assert_eq!(scores.get(scoring::QualityMetric::ActionL2Error), Some(0.0));
        assert_eq!(
            scores.get(scoring::QualityMetric::GripperAgreement),
            Some(1.0)
        );
    }

    #[test]
    fn an_answer_with_two_defects_counts_once_as_defective() {
        let (recorder, handle) = crate::telemetry::build_recorder(&Default::default()).unwrap();
        metrics::with_local_recorder(&recorder, || {
            let m = monitor();
            let now = Instant::now();
            // Six dimensions instead of seven (unparseable) and a gripper
            // value of 5 (out of range): two kinds, one answer.
            let broken = [0.0, 0.0, 0.0, 0.0, 0.0, 5.0];
            let answer = AnswerView {
                normalized_actions: Some(&broken),
                ..AnswerView::text(Task::RobotAction, "")
            };
            let outcome = m.observe_at(Some("bad"), &answer, now);
            assert_eq!(outcome.anomalies.len(), 2, "{:?}", outcome.anomalies);
            let fine = [0.0, 0.0, 0.0, 0.0, 0.0, 0.0, 1.0];
            let answer = AnswerView {
                normalized_actions: Some(&fine),
                ..AnswerView::text(Task::RobotAction, "")
            };
            assert!(m
                .observe_at(Some("good"), &answer, now)
                .anomalies
                .is_empty());
        });
        let text = handle.render();
        let total = |name: &str| -> f64 {
            text.lines()
                .filter(|line| line.starts_with(&format!("{name}{{")))
                .filter_map(|line| line.rsplit(' ').next()?.parse::<f64>().ok())
                .sum()
        };
        assert_eq!(total(telemetry::OUTPUTS_CHECKED), 2.0, "{text}");
        assert_eq!(total(telemetry::OUTPUT_ANOMALIES), 2.0, "{text}");
        assert_eq!(total(telemetry::OUTPUTS_DEFECTIVE), 1.0, "{text}");
    }

    #[test]
    fn state_gauges_follow_at_publish_not_per_answer() {
        let (recorder, handle) = crate::telemetry::build_recorder(&Default::default()).unwrap();
        metrics::with_local_recorder(&recorder, || {
            let m = monitor();
            let now = Instant::now();
            for (i, text) in ["a b", "a b", "c d", "a b", "e f", "a b"]
                .iter()
                .enumerate()
            {
                let id = format!("r{i}");
                m.observe_at(Some(&id), &AnswerView::text(Task::VisualQa, text), now);
            }
            let before = handle.render();
            assert!(!before.contains(telemetry::OUTPUT_IDENTICAL), "{before}");
            assert!(
                !before.contains(telemetry::PREDICTION_STORE_ENTRIES),
                "{before}"
            );
            m.publish_state();
        });
        let text = handle.render();
        let value = |series: &str| {
            text.lines()
                .find_map(|line| line.strip_prefix(series)?.trim().parse::<f64>().ok())
                .unwrap_or_else(|| panic!("{series} missing in:\n{text}"))
        };
        // Six answers, "a b" four times; a store of 4 evicted the first two.
        assert_eq!(
            value("magma_output_identical_answer_ratio{task=\"visual_qa\"}"),
            4.0 / 6.0
        );
        assert_eq!(value("magma_prediction_store_entries"), 4.0);
        assert_eq!(
            value("magma_prediction_store_evictions_total{reason=\"capacity\"}"),
            2.0
        );
        assert!(!text.contains("reason=\"expired\""), "{text}");
    }
}

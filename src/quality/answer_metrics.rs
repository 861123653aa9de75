//! The per-answer metrics of the quality monitor, with their handles cached.
//!
//! Every checked answer records up to two dozen series (its task's counters
//! and histograms, fourteen action dimensions, the diversity gauges); looked
//! up by name each time, that was the largest cost the sidecar added to a
//! request. The handles are resolved once per label combination instead (see
//! [`HandleCache`]). Feedback and ground truth, which arrive over the admin
//! API, record through the plain macros.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram};

use super::checks::OutputAnomaly;
use super::task::Task;
use crate::handle_cache::HandleCache;
use crate::telemetry;

/// Handles of the metrics recorded for every checked answer.
#[derive(Default)]
pub struct AnswerMetrics {
    checked: HandleCache<Task, Counter>,
    anomalies: HandleCache<(Task, OutputAnomaly), Counter>,
    length: HandleCache<Task, Histogram>,
    repetition: HandleCache<Task, Histogram>,
    confidence: HandleCache<Task, Histogram>,
    /// Keyed by (action space, dimension name).
    action: HandleCache<(&'static str, &'static str), Histogram>,
    /// Keyed by (task, n of the n-grams).
    distinct: HandleCache<(Task, &'static str), Gauge>,
    identical: HandleCache<Task, Gauge>,
    store_entries: OnceLock<Gauge>,
    /// A full store evicts on every insert.
    evictions: HandleCache<&'static str, Counter>,
}

impl AnswerMetrics {
    pub fn checked(&self, task: Task) -> Counter {
        self.checked.get(
            task,
            || metrics::counter!(telemetry::OUTPUTS_CHECKED, "task" => task.as_str()),
        )
    }

    pub fn anomaly(&self, task: Task, kind: OutputAnomaly) -> Counter {
        self.anomalies.get((task, kind), || {
            metrics::counter!(telemetry::OUTPUT_ANOMALIES, "task" => task.as_str(), "kind" => kind.as_label())
        })
    }

    pub fn length(&self, task: Task) -> Histogram {
        self.length.get(
            task,
            || metrics::histogram!(telemetry::OUTPUT_LENGTH, "task" => task.as_str()),
        )
    }

    pub fn repetition(&self, task: Task) -> Histogram {
        self.repetition.get(
            task,
            || metrics::histogram!(telemetry::OUTPUT_REPETITION, "task" => task.as_str()),
        )
    }

    pub fn confidence(&self, task: Task) -> Histogram {
        self.confidence.get(
            task,
            || metrics::histogram!(telemetry::OUTPUT_CONFIDENCE, "task" => task.as_str()),
        )
    }

    pub fn action(&self, space: &'static str, dimension: &'static str) -> Histogram {
        self.action.get((space, dimension), || {
            metrics::histogram!(telemetry::OUTPUT_ACTION, "space" => space, "dimension" => dimension)
        })
    }

    pub fn distinct(&self, task: Task, n: &'static str) -> Gauge {
        self.distinct.get((task, n), || {
            metrics::gauge!(telemetry::OUTPUT_DISTINCT_NGRAMS, "task" => task.as_str(), "n" => n)
        })
    }

    pub fn identical(&self, task: Task) -> Gauge {
        self.identical.get(
            task,
            || metrics::gauge!(telemetry::OUTPUT_IDENTICAL, "task" => task.as_str()),
        )
    }

    pub fn evictions(&self, reason: &'static str) -> Counter {
        self.evictions.get(
            reason,
            || metrics::counter!(telemetry::PREDICTION_STORE_EVICTIONS, "reason" => reason),
        )
    }

    pub fn store_entries(&self) -> Gauge {
        self.store_entries
            .get_or_init(|| metrics::gauge!(telemetry::PREDICTION_STORE_ENTRIES))
            .clone()
    }
}

//! The per-answer metrics of the quality monitor, with their handles cached.
//!
//! Every checked answer records up to two dozen series (its task's counters
//! and histograms, fourteen action dimensions); looked up by name each time,
//! that was the largest cost the sidecar added to a request. The handles are
//! resolved once per label combination instead, in tables indexed by task,
//! anomaly kind and action dimension (see [`HandleTable`]). The state gauges
//! (diversity, prediction store) are written at render time, by
//! `QualityMonitor::publish_state`. Feedback and ground truth, which arrive
//! over the admin API, record through the plain macros.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram};

use super::answer::{ACTION_DIMENSIONS, ACTION_DIMS};
use super::checks::OutputAnomaly;
use super::diversity::DISTINCT_NS;
use super::task::Task;
use crate::handle_cache::{HandleCache, HandleTable};
use crate::telemetry;

const TASKS: usize = Task::ALL.len();
const KINDS: usize = OutputAnomaly::ALL.len();
const NS: usize = DISTINCT_NS.len();

/// The `space` label of `magma_output_action`, by index.
pub const ACTION_SPACES: [&str; 2] = ["normalized", "delta"];

/// Handles of the metrics recorded for every checked answer.
#[derive(Default)]
pub struct AnswerMetrics {
    checked: HandleTable<Counter, TASKS>,
    anomalies: HandleTable<Counter, { TASKS * KINDS }>,
    defective: HandleTable<Counter, TASKS>,
    length: HandleTable<Histogram, TASKS>,
    repetition: HandleTable<Histogram, TASKS>,
    confidence: HandleTable<Histogram, TASKS>,
    /// Indexed by (action space, dimension).
    action: HandleTable<Histogram, { 2 * ACTION_DIMS }>,
    /// Indexed by (task, position of n in `DISTINCT_NS`).
    distinct: HandleTable<Gauge, { TASKS * NS }>,
    identical: HandleTable<Gauge, TASKS>,
    store_entries: OnceLock<Gauge>,
    /// Keyed by reason; set to the store's totals at render time.
    evictions: HandleCache<&'static str, Counter>,
}

impl AnswerMetrics {
    pub fn checked(&self, task: Task) -> &Counter {
        self.checked.get(
            task.index(),
            || metrics::counter!(telemetry::OUTPUTS_CHECKED, "task" => task.as_str()),
        )
    }

    pub fn anomaly(&self, task: Task, kind: OutputAnomaly) -> &Counter {
        self.anomalies.get(task.index() * KINDS + kind.index(), || {
            metrics::counter!(telemetry::OUTPUT_ANOMALIES, "task" => task.as_str(), "kind" => kind.as_label())
        })
    }

    pub fn defective(&self, task: Task) -> &Counter {
        self.defective.get(
            task.index(),
            || metrics::counter!(telemetry::OUTPUTS_DEFECTIVE, "task" => task.as_str()),
        )
    }

    pub fn length(&self, task: Task) -> &Histogram {
        self.length.get(
            task.index(),
            || metrics::histogram!(telemetry::OUTPUT_LENGTH, "task" => task.as_str()),
        )
    }

    pub fn repetition(&self, task: Task) -> &Histogram {
        self.repetition.get(
            task.index(),
            || metrics::histogram!(telemetry::OUTPUT_REPETITION, "task" => task.as_str()),
        )
    }

    pub fn confidence(&self, task: Task) -> &Histogram {
        self.confidence.get(
            task.index(),
            || metrics::histogram!(telemetry::OUTPUT_CONFIDENCE, "task" => task.as_str()),
        )
    }

    /// `space` indexes [`ACTION_SPACES`], `dimension` [`ACTION_DIMENSIONS`].
    pub fn action(&self, space: usize, dimension: usize) -> &Histogram {
        self.action.get(space * ACTION_DIMS + dimension, || {
            metrics::histogram!(
                telemetry::OUTPUT_ACTION,
                "space" => ACTION_SPACES[space],
                "dimension" => ACTION_DIMENSIONS[dimension]
            )
        })
    }

    /// `n` indexes [`DISTINCT_NS`].
    pub fn distinct(&self, task: Task, n: usize) -> &Gauge {
        self.distinct.get(task.index() * NS + n, || {
            let label = if DISTINCT_NS[n] == 1 { "1" } else { "2" };
            metrics::gauge!(telemetry::OUTPUT_DISTINCT_NGRAMS, "task" => task.as_str(), "n" => label)
        })
    }

    pub fn identical(&self, task: Task) -> &Gauge {
        self.identical.get(
            task.index(),
            || metrics::gauge!(telemetry::OUTPUT_IDENTICAL, "task" => task.as_str()),
        )
    }

    pub fn evictions(&self, reason: &'static str) -> Counter {
        self.evictions.get(
            reason,
            || metrics::counter!(telemetry::PREDICTION_STORE_EVICTIONS, "reason" => reason),
        )
    }

    pub fn store_entries(&self) -> &Gauge {
        self.store_entries
            .get_or_init(|| metrics::gauge!(telemetry::PREDICTION_STORE_ENTRIES))
    }
}

//! The payload taps on the forward path: what the proxy needs to classify
//! each request and answer while the bytes stream through, and to hand
//! sampled exchanges to analysis.
//!
//! The taps see every chunk by reference, in the poll that forwards it; they
//! never hold the chunk back and copy bytes only for sampled requests, within
//! the sampler's budget (see `payload` and `sample`).

use std::sync::Arc;

use crate::payload::{PayloadMetrics, RequestInfo, TaskClassifier};
use crate::quality::QualityMonitor;
use crate::sample::{SampleSender, Sampler};
use crate::telemetry::label;

/// Shared by every request: classifier, sampler, hand-off and model labels.
pub struct PayloadContext {
    pub classifier: Arc<TaskClassifier>,
    pub sampler: Arc<Sampler>,
    pub sender: SampleSender,
    /// `--model-type`: the label when a request names no model.
    pub default_model: &'static str,
    /// `--allowed-models`: request `model` fields taken as label values.
    pub allowed_models: Vec<&'static str>,
    /// Checks every model answer and keeps predictions for feedback and ground truth.
    pub quality: Option<Arc<QualityMonitor>>,
    /// Handles of the payload metrics (create after the recorder is installed).
    pub metrics: PayloadMetrics,
}

impl PayloadContext {
    /// The `model_type` label of a request: its `model` field when allowed
    /// (`--model-type` itself always is), `other` when it names another
    /// model, `--model-type` when it names none.
    pub fn model_label(&self, info: &RequestInfo) -> &'static str {
        match info.model.as_deref() {
            None => self.default_model,
            Some(model) if model == self.default_model => self.default_model,
            Some(model) => self
                .allowed_models
                .iter()
                .find(|allowed| **allowed == model)
                .copied()
                .unwrap_or(label::OTHER),
        }
    }
}

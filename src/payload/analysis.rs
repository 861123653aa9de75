//! One call that builds everything sampling and analysis need from the
//! command line: the task classifier, the sampler, the hand-off channel, the
//! in-memory ring and the worker thread.

use std::sync::Arc;
use std::thread::JoinHandle;

use super::sample_log::{CapturePolicy, SampleLogError, SampleRing};
use super::task::{TaskClassifier, TaskRulesError};
use super::worker::{spawn_analysis, AnalysisConfig, SampleHook};
use crate::sample::{channel, SampleArgs, SampleSender, Sampler};

/// Why analysis could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error(transparent)]
    TaskRules(#[from] TaskRulesError),
    #[error(transparent)]
    SampleLog(#[from] SampleLogError),
}

/// The handles the proxy and the admin server need.
pub struct Analysis {
    /// Classifies prompts; give a clone to every `RequestTap`.
    pub classifier: Arc<TaskClassifier>,
    /// Decides sampling and makes body copies.
    pub sampler: Arc<Sampler>,
    /// Hands finished samples to the worker (clone per connection or request).
    pub sender: SampleSender,
    /// Newest records, for `/api/samples`.
    pub ring: Arc<SampleRing>,
    /// The worker thread; it ends once every `SampleSender` clone is dropped.
    pub worker: JoinHandle<()>,
}

/// Builds the classifier (with `--task-rules`), sampler, channel, ring and worker.
pub fn start_analysis(
    args: &SampleArgs,
    hooks: Vec<Arc<dyn SampleHook>>,
) -> Result<Analysis, StartError> {
    let classifier = Arc::new(match &args.task_rules {
        Some(path) => TaskClassifier::from_file(path)?,
        None => TaskClassifier::default(),
    });
    let sampler = Arc::new(Sampler::new(args));
    let (sender, receiver) = channel(args.sample_queue);
    let ring = SampleRing::new(args.sample_ring, args.feature_hash_dim);
    let worker = spawn_analysis(
        receiver,
        AnalysisConfig {
            hash_dim: args.feature_hash_dim,
            sample_log: args
                .sample_log
                .clone()
                .map(|dir| (dir, args.sample_log_max_bytes)),
            capture: CapturePolicy {
                capture_payloads: args.capture_payloads,
                redact: !args.no_redact,
            },
        },
        ring.clone(),
        hooks,
        Some(sampler.budget().clone()),
    )?;
    Ok(Analysis {
        classifier,
        sampler,
        sender,
        ring,
        worker,
    })
}

//! The analysis worker: receives sampled exchanges from the bounded channel,
//! extracts features, writes the sample log and the in-memory ring, and
//! hands `(sample, features)` to every registered hook (drift engine,
//! quality checks, ...). It runs on a thread of its own, so decoding images
//! never competes with the forward path's async tasks; it ends when every
//! `SampleSender` is dropped.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::PathBuf;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Instant;

use tokio::sync::mpsc;

use super::body_copy::CopyBudget;
use super::features::{FeatureExtractor, Features};
use super::sample_log::{CapturePolicy, SampleLog, SampleLogError, SampleRecord, SampleRing};
use crate::sample::Sample;
use crate::telemetry;

/// Something that consumes analysed samples. Called on the worker thread,
/// one sample at a time; keep it quick (hand heavy work to a queue of your own).
pub trait SampleHook: Send + Sync {
    fn on_sample(&self, sample: &Sample, features: &Features);
}

impl<F> SampleHook for F
where
    F: Fn(&Sample, &Features) + Send + Sync,
{
    fn on_sample(&self, sample: &Sample, features: &Features) {
        self(sample, features)
    }
}

/// How the worker analyses and records samples.
#[derive(Debug, Clone)]
pub struct AnalysisConfig {
    /// Dimension of the hashed bag-of-words prompt embedding.
    pub hash_dim: usize,
    /// Directory and disk cap of the sample log; `None` = no log.
    pub sample_log: Option<(PathBuf, u64)>,
    pub capture: CapturePolicy,
}

/// Starts the worker thread.
///
/// `ring` receives every record (without raw bodies) for `/api/samples`;
/// `budget` (optional) is reported as `magma_sample_copy_bytes`.
pub fn spawn_analysis(
    mut receiver: mpsc::Receiver<Box<Sample>>,
    config: AnalysisConfig,
    ring: Arc<SampleRing>,
    hooks: Vec<Arc<dyn SampleHook>>,
    budget: Option<Arc<CopyBudget>>,
) -> Result<JoinHandle<()>, SampleLogError> {
    let mut log = match &config.sample_log {
        Some((dir, max_bytes)) => Some(SampleLog::open(dir, *max_bytes)?),
        None => None,
    };
    let extractor = FeatureExtractor::new(config.hash_dim);
    let capture = config.capture;
    std::thread::Builder::new()
        .name("magma-analysis".into())
        .spawn(move || {
            crate::background::lower_this_thread();
            while let Some(sample) = receiver.blocking_recv() {
                let started = Instant::now();
                analyse(&sample, &extractor, capture, log.as_mut(), &ring, &hooks);
                // Dropping the sample releases its copy budget before the gauge is read.
                drop(sample);
                if let Some(budget) = &budget {
                    metrics::gauge!(telemetry::SAMPLE_COPY_BYTES).set(budget.used() as f64);
                }
                metrics::histogram!(telemetry::ANALYSIS_DURATION)
                    .record(started.elapsed().as_secs_f64());
            }
            tracing::debug!("analysis worker stopped: every sender is gone");
        })
        .map_err(|source| SampleLogError::Open {
            path: PathBuf::from("<analysis thread>"),
            source,
        })
}

fn analyse(
    sample: &Sample,
    extractor: &FeatureExtractor,
    capture: CapturePolicy,
    log: Option<&mut SampleLog>,
    ring: &SampleRing,
    hooks: &[Arc<dyn SampleHook>],
) {
    let features = extractor.extract(sample);
    let record = SampleRecord::new(sample, &features, capture);
    if let Some(log) = log {
        let outcome = match log.write(&record) {
            Ok(()) => "written",
            Err(error) => {
                tracing::warn!(%error, "sample log write failed");
                "error"
            }
        };
        metrics::counter!(telemetry::SAMPLE_LOG_RECORDS, "outcome" => outcome).increment(1);
    }
    ring.push(if capture.capture_payloads {
        record.without_bodies()
    } else {
        record
    });
    for hook in hooks {
        // A failing consumer must not stop analysis for the others.
        if catch_unwind(AssertUnwindSafe(|| hook.on_sample(sample, &features))).is_err() {
            tracing::error!("a sample hook panicked; the sample was skipped for it");
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::{Duration, SystemTime};

    use super::*;
    use crate::payload::{RequestInfo, ResponseInfo};
    use crate::sample::channel;

    fn sample(id: &str) -> Sample {
        Sample {
            request_id: id.into(),
            received_at: SystemTime::now(),
            route: "/v1/chat/completions",
            model_type: "magma-8b".into(),
            status: 200,
            latency: Duration::from_millis(3),
            time_to_first_token: Some(Duration::from_millis(1)),
            request: RequestInfo::unknown(),
            response: ResponseInfo::unknown(200),
        }
    }

    #[test]
    fn hooks_log_and_ring_see_every_sample() {
        let dir = tempfile::tempdir().unwrap();
        let (tx, rx) = channel(8);
        let seen = Arc::new(AtomicUsize::new(0));
        let counter = seen.clone();
        let counting: Arc<dyn SampleHook> = Arc::new(move |_: &Sample, f: &Features| {
            assert_eq!(f.numeric.len(), 29 + 8);
            counter.fetch_add(1, Ordering::SeqCst);
        });
        let panicking: Arc<dyn SampleHook> =
            Arc::new(|_: &Sample, _: &Features| panic!("a broken consumer"));
        let ring = SampleRing::new(16, 8);
        let worker = spawn_analysis(
            rx,
            AnalysisConfig {
                hash_dim: 8,
                sample_log: Some((dir.path().to_owned(), 1 << 20)),
                capture: CapturePolicy {
                    capture_payloads: false,
                    redact: true,
                },
            },
            ring.clone(),
            vec![panicking, counting],
            None,
        )
        .unwrap();
        for i in 0..3 {
            tx.send(sample(&format!("s{i}")));
        }
        drop(tx);
        worker.join().unwrap();
        assert_eq!(seen.load(Ordering::SeqCst), 3);
        assert_eq!(ring.len(), 3);
        let log = std::fs::read_to_string(dir.path().join("samples.jsonl")).unwrap();
        assert_eq!(log.lines().count(), 3);
        assert!(log.contains("\"request_id\":\"s2\""));
    }
}

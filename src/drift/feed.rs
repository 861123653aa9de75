//! Feeds analysed samples to the drift engine on a thread of its own.
//!
//! The analysis worker calls the hook for every sample; the hook converts the
//! features and `try_send`s them to the drift thread, so a long permutation
//! test never holds the worker up. When the drift queue is full the sample is
//! dropped and counted (`magma_drift_samples_total{outcome="dropped"}`). The
//! thread also polls the engine about once a second, which runs the
//! time-triggered tests and applies reference replacements from the API.

use std::sync::mpsc::{sync_channel, RecvTimeoutError, SyncSender, TrySendError};
use std::sync::Mutex;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::{DriftEngine, FeatureSample};
use crate::payload::features::FIXED_NAMES;
use crate::payload::{Features, SampleHook};
use crate::sample::Sample;
use crate::telemetry;

/// Index of the first output feature in the payload feature vector
/// (`output_bytes`); everything before it describes the request.
fn first_output_feature() -> usize {
    FIXED_NAMES
        .iter()
        .position(|n| *n == "output_bytes")
        .unwrap_or(FIXED_NAMES.len())
}

/// Splits the payload features into the drift engine's groups: request
/// features plus the prompt embedding as input, answer features as output,
/// and the categorical fields the chi-square test compares.
pub fn to_feature_sample(features: &Features) -> FeatureSample {
    let split = first_output_feature().min(features.numeric.len());
    let fixed_end = FIXED_NAMES.len().min(features.numeric.len());
    let input = features.numeric[..split]
        .iter()
        .chain(features.embedding())
        .map(|v| *v as f32)
        .collect();
    let output = features.numeric[split..fixed_end]
        .iter()
        .map(|v| *v as f32)
        .collect();
    let c = &features.categorical;
    FeatureSample {
        input,
        output,
        categorical: vec![
            ("modality", c.modality.to_owned()),
            ("task", c.task.to_owned()),
            ("image_format", c.image_format.to_owned()),
        ],
    }
}

/// The analysis hook that hands samples to the drift thread.
pub struct DriftFeed {
    sender: Mutex<SyncSender<FeatureSample>>,
}

impl SampleHook for DriftFeed {
    fn on_sample(&self, _sample: &Sample, features: &Features) {
        let Ok(sender) = self.sender.lock() else {
            return;
        };
        if let Err(TrySendError::Full(_)) = sender.try_send(to_feature_sample(features)) {
            metrics::counter!(telemetry::DRIFT_SAMPLES, "outcome" => "dropped").increment(1);
        }
    }
}

/// Starts the drift thread; it ends when the returned feed is dropped.
pub fn spawn(
    mut engine: DriftEngine,
    queue: usize,
) -> std::io::Result<(DriftFeed, JoinHandle<()>)> {
    let (sender, receiver) = sync_channel::<FeatureSample>(queue.max(1));
    let thread = std::thread::Builder::new()
        .name("magma-drift".into())
        .spawn(move || {
            crate::background::lower_this_thread();
            let poll_every = Duration::from_secs(1);
            let mut last_poll = Instant::now();
            loop {
                match receiver.recv_timeout(poll_every) {
                    Ok(sample) => engine.observe(&sample),
                    Err(RecvTimeoutError::Timeout) => {}
                    Err(RecvTimeoutError::Disconnected) => return,
                }
                if last_poll.elapsed() >= poll_every {
                    engine.poll();
                    last_poll = Instant::now();
                }
            }
        })?;
    Ok((
        DriftFeed {
            sender: Mutex::new(sender),
        },
        thread,
    ))
}

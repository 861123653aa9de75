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
use crate::payload::features::{feature_names, FIXED_NAMES};
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

/// Names of the input and output components [`to_feature_sample`] builds
/// from features with a `hash_dim`-component prompt embedding, in the same
/// order (for [`DriftEngine::name_features`]).
pub fn group_names(hash_dim: usize) -> (Vec<String>, Vec<String>) {
    let names = feature_names(hash_dim);
    let split = first_output_feature();
    let input = names[..split]
        .iter()
        .chain(&names[FIXED_NAMES.len()..])
        .cloned()
        .collect();
    let output = names[split..FIXED_NAMES.len()].to_vec();
    (input, output)
}

/// Gives `engine` the names of the payload features it will be fed, so its
/// reports list what moved by name.
pub fn name_payload_features(engine: &mut DriftEngine, hash_dim: usize) {
    let (input, output) = group_names(hash_dim);
    engine.name_features(super::report::features::INPUT, input);
    engine.name_features(super::report::features::OUTPUT, output);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payload::features::Categorical;

    #[test]
    fn group_names_line_up_with_the_split_vectors() {
        let hash_dim = 4;
        // Each component holds its own index in the payload vector.
        let features = Features {
            numeric: (0..FIXED_NAMES.len() + hash_dim)
                .map(|i| i as f64)
                .collect(),
            categorical: Categorical {
                route: "/predict",
                format: "json",
                modality: "image",
                task: "robot_action",
                image_format: "png",
                response_format: "json",
                finish_reason: "none",
                status_class: "2xx",
            },
            decode_error: None,
        };
        let sample = to_feature_sample(&features);
        let (input, output) = group_names(hash_dim);
        let all = feature_names(hash_dim);
        for (values, names) in [(&sample.input, &input), (&sample.output, &output)] {
            assert_eq!(values.len(), names.len());
            for (value, name) in values.iter().zip(names) {
                assert_eq!(all[*value as usize], *name);
            }
        }
        assert_eq!(input[7], "brightness");
        assert_eq!(input.last().map(String::as_str), Some("bow_3"));
        assert_eq!(output[0], "output_bytes");
    }
}

//! Output quality checks, user feedback and ground-truth scoring.
//!
//! - [`checks`]: the closed set of output anomalies (empty, repetitive,
//!   truncated, unparseable_action, action_out_of_range,
//!   coordinates_out_of_range) on an [`AnswerView`].
//! - [`marks`]: Set-of-Mark / Trace-of-Mark parsing of answer text.
//! - [`diversity`]: distinct-n and identical-answer ratios over a window.
//! - [`store`]: recent predictions by request id (LRU + TTL).
//! - [`scoring`]: token F1, ROUGE-L, action L2 and gripper agreement, mark
//!   match, point in box.
//! - [`features`]: the fixed-length output feature vector for prediction drift.
//! - [`monitor`]: ties them together and exports the metrics.
//! - [`api`]: the bodies of `POST /api/feedback` and `POST /api/ground_truth`.

pub mod answer;
mod answer_metrics;
pub mod api;
pub mod checks;
pub mod diversity;
pub mod features;
pub mod feedback;
pub mod from_payload;
pub mod marks;
pub mod monitor;
pub mod scoring;
pub mod store;
pub mod task;
pub mod text;

use std::time::Duration;

use clap::Args;

pub use answer::AnswerView;
pub use checks::{CheckConfig, OutputAnomaly};
pub use monitor::{QualityConfig, QualityMonitor};
pub use task::Task;

use crate::units::{parse_duration, parse_size};

/// Output-quality, feedback and ground-truth flags.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Output quality and feedback")]
pub struct QualityArgs {
    /// Most recent predictions kept for matching feedback and ground truth (LRU).
    #[arg(
        long,
        env = "MAGMA_MONITOR_PREDICTION_STORE_SIZE",
        default_value_t = 10_000
    )]
    pub prediction_store_size: usize,

    /// How long a prediction can still receive feedback or ground truth.
    #[arg(long, env = "MAGMA_MONITOR_PREDICTION_TTL", default_value = "1h", value_parser = parse_duration)]
    pub prediction_ttl: Duration,

    /// Longest answer text kept per prediction for scoring.
    #[arg(long, env = "MAGMA_MONITOR_PREDICTION_TEXT_MAX_BYTES", default_value = "4KiB", value_parser = parse_size)]
    pub prediction_text_max_bytes: u64,

    /// An answer whose repeated-trigram ratio exceeds this is counted `repetitive` (0..1).
    #[arg(
        long,
        env = "MAGMA_MONITOR_REPETITION_THRESHOLD",
        default_value_t = 0.5
    )]
    pub repetition_threshold: f64,

    /// Recent answers per task in the output-diversity window.
    #[arg(long, env = "MAGMA_MONITOR_DIVERSITY_WINDOW", default_value_t = 200)]
    pub diversity_window: usize,
}

impl QualityArgs {
    pub fn validate(&self) -> Result<(), String> {
        if self.prediction_store_size == 0 {
            return Err("--prediction-store-size must be at least 1".into());
        }
        if !(0.0..=1.0).contains(&self.repetition_threshold) {
            return Err("--repetition-threshold must be between 0 and 1".into());
        }
        if self.diversity_window == 0 {
            return Err("--diversity-window must be at least 1".into());
        }
        if self.prediction_text_max_bytes > 1024 * 1024 {
            return Err("--prediction-text-max-bytes can be at most 1MiB".into());
        }
        Ok(())
    }

    pub fn config(&self) -> QualityConfig {
        QualityConfig {
            checks: CheckConfig {
                repetition_threshold: self.repetition_threshold,
                ..CheckConfig::default()
            },
            store_capacity: self.prediction_store_size,
            store_ttl: self.prediction_ttl,
            store_text_bytes: usize::try_from(self.prediction_text_max_bytes).unwrap_or(4096),
            diversity_window: self.diversity_window,
        }
    }
}

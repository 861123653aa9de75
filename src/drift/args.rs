//! Flags of the drift engine (part of the `proxy` command).

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;

use super::correction::Correction;
use crate::units::parse_duration;

/// Drift engine flags.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Drift engine")]
pub struct DriftArgs {
    /// Turn the drift engine off.
    #[arg(long, env = "MAGMA_MONITOR_NO_DRIFT")]
    pub no_drift: bool,

    /// Samples in the reference: the first N accepted samples, unless --drift-reference is given.
    #[arg(
        long,
        env = "MAGMA_MONITOR_DRIFT_REFERENCE_SIZE",
        default_value_t = 1000
    )]
    pub drift_reference_size: usize,

    /// Reference file: CSV of input features, or JSON lines of samples ({"input":[..],"output":[..],"categorical":{"modality":"image"}}).
    #[arg(long, env = "MAGMA_MONITOR_DRIFT_REFERENCE")]
    pub drift_reference: Option<PathBuf>,

    /// Test window: the last M samples.
    #[arg(long, env = "MAGMA_MONITOR_DRIFT_WINDOW", default_value_t = 500)]
    pub drift_window: usize,

    /// Test after this many new samples...
    #[arg(long, env = "MAGMA_MONITOR_DRIFT_TEST_EVERY", default_value_t = 100)]
    pub drift_test_every: usize,

    /// ...or after this long with at least one new sample, whichever comes first.
    #[arg(long, env = "MAGMA_MONITOR_DRIFT_TEST_INTERVAL", default_value = "60s", value_parser = parse_duration)]
    pub drift_test_interval: Duration,

    /// Significance level of the window tests.
    #[arg(long, env = "MAGMA_MONITOR_DRIFT_P_VAL", default_value_t = 0.05)]
    pub drift_p_val: f64,

    /// Permutations of each MMD test.
    #[arg(long, env = "MAGMA_MONITOR_DRIFT_PERMUTATIONS", default_value_t = 100)]
    pub drift_permutations: usize,

    /// Correction of the per-feature KS and chi-square tests.
    #[arg(
        long,
        env = "MAGMA_MONITOR_DRIFT_CORRECTION",
        value_enum,
        default_value = "bonferroni"
    )]
    pub drift_correction: Correction,

    /// Expected run time (in samples) of the online detector without drift; 0 turns it off.
    #[arg(long, env = "MAGMA_MONITOR_DRIFT_ERT", default_value_t = 1000.0)]
    pub drift_ert: f64,

    /// Window of the online detector.
    #[arg(long, env = "MAGMA_MONITOR_DRIFT_ONLINE_WINDOW", default_value_t = 20)]
    pub drift_online_window: usize,

    /// Features listed as "moved most" in /api/drift.
    #[arg(long, env = "MAGMA_MONITOR_DRIFT_TOP_FEATURES", default_value_t = 5)]
    pub drift_top_features: usize,

    /// Seed of the permutations and bootstraps.
    #[arg(long, env = "MAGMA_MONITOR_DRIFT_SEED", default_value_t = 0)]
    pub drift_seed: u64,

    /// Directory for state that survives a restart (the drift reference).
    #[arg(long, env = "MAGMA_MONITOR_STATE_DIR")]
    pub state_dir: Option<PathBuf>,
}

/// Largest reference and window: the MMD test costs O((N+M)²·d).
pub const MAX_SAMPLES: usize = 20_000;

impl DriftArgs {
    /// Checks that the values make sense together; the message is one line.
    pub fn validate(&self) -> Result<(), String> {
        if !(2..=MAX_SAMPLES).contains(&self.drift_reference_size) {
            return Err(format!(
                "--drift-reference-size must be between 2 and {MAX_SAMPLES}"
            ));
        }
        if !(2..=MAX_SAMPLES).contains(&self.drift_window) {
            return Err(format!(
                "--drift-window must be between 2 and {MAX_SAMPLES}"
            ));
        }
        if self.drift_test_every == 0 {
            return Err("--drift-test-every must be at least 1".into());
        }
        if self.drift_test_interval.is_zero() {
            return Err("--drift-test-interval must be positive".into());
        }
        if !(self.drift_p_val > 0.0 && self.drift_p_val < 1.0) {
            return Err("--drift-p-val must be between 0 and 1".into());
        }
        if !(1..=10_000).contains(&self.drift_permutations) {
            return Err("--drift-permutations must be between 1 and 10000".into());
        }
        if !(self.drift_ert == 0.0 || (self.drift_ert > 1.0 && self.drift_ert.is_finite())) {
            return Err("--drift-ert must be 0 (off) or above 1".into());
        }
        if self.drift_online_window < 2
            || (self.drift_ert > 0.0
                && 2 * self.drift_online_window + 1 > self.drift_reference_size)
        {
            return Err(
                "--drift-online-window must be at least 2 and below half the reference size".into(),
            );
        }
        if self.drift_top_features > 100 {
            return Err("--drift-top-features must be at most 100".into());
        }
        Ok(())
    }
}

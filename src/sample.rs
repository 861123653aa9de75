//! Sampling policy and the bounded hand-off from the forward path to analysis.

use clap::Args;

/// Sampling flags.
#[derive(Debug, Clone, Args)]
pub struct SampleArgs {
    /// Share of requests whose bodies are copied for analysis (0..1).
    #[arg(long, env = "MAGMA_MONITOR_SAMPLE_RATE", default_value_t = 0.1)]
    pub sample_rate: f64,
}

impl SampleArgs {
    pub fn validate(&self) -> Result<(), String> {
        if !(0.0..=1.0).contains(&self.sample_rate) {
            return Err(format!(
                "--sample-rate {} must be between 0 and 1",
                self.sample_rate
            ));
        }
        Ok(())
    }
}

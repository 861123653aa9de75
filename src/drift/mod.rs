//! In-process drift engine: reference store, windows, MMD / KS / chi-square
//! two-sample tests and online detection.

pub mod chi2;
pub mod cli;
pub mod correction;
pub mod csv_input;
pub mod gamma;
pub mod kernel;
pub mod kolmogorov;
pub mod ks;
pub mod matrix;
pub mod mmd;
pub mod mmd_blocked;
pub mod online;
pub mod sigma;

use clap::Args;

/// Drift engine flags.
#[derive(Debug, Clone, Args)]
pub struct DriftArgs {}

impl DriftArgs {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

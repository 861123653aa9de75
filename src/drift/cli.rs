//! `magma-monitor drift`: offline two-sample drift test between CSV files.

use clap::Args;

/// Flags of the offline drift test.
#[derive(Debug, Clone, Args)]
pub struct DriftCliArgs {}

/// Runs the offline test; returns the process exit code.
pub fn run(_args: DriftCliArgs) -> i32 {
    eprintln!("drift: not available in this build");
    2
}

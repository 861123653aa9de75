//! Resource collectors: GPU counters through NVML, the upstream model
//! process, and the sidecar's own process.

use clap::Args;

/// Resource collector flags.
#[derive(Debug, Clone, Args)]
pub struct ResourceArgs {}

impl ResourceArgs {
    pub fn validate(&self) -> Result<(), String> {
        Ok(())
    }
}

pub mod procfs;
pub mod self_process;

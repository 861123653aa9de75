//! `demo` and `simulate-upstream`: a simulated Magma server and traffic scenarios.

use clap::Args;

/// Flags of `magma-monitor demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {}

/// Flags of `magma-monitor simulate-upstream`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {}

pub fn run_demo(_args: DemoArgs) -> i32 {
    eprintln!("demo: not available in this build");
    2
}

pub fn run_simulated_upstream(_args: SimulateArgs) -> i32 {
    eprintln!("simulate-upstream: not available in this build");
    2
}

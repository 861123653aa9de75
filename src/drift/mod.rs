//! In-process drift engine: reference store, windows, MMD / KS / chi-square
//! two-sample tests and online detection.

pub mod api;
pub mod args;
pub mod chi2;
pub mod cli;
pub mod correction;
pub mod csv_input;
pub mod engine;
pub mod feed;
pub mod gamma;
pub mod handle;
pub mod kernel;
pub mod kolmogorov;
pub mod ks;
pub mod matrix;
pub mod mmd;
pub mod mmd_blocked;
pub mod online;
pub mod reference;
pub mod report;
pub mod sample;
pub mod sigma;
pub mod state;

pub use args::DriftArgs;
pub use engine::{DriftEngine, EngineConfig};
pub use handle::{DriftHandle, ReferenceCommand};
pub use sample::FeatureSample;

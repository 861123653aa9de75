//! magma-monitor: a transparent reverse-proxy sidecar that watches a Magma
//! (or any multimodal) model server. See README.md for the map.

pub mod admin;
pub mod anomaly;
pub mod app;
pub mod background;
pub mod config;
pub mod demo;
pub mod drift;
pub mod exposition;
pub mod handle_cache;
pub mod health;
pub mod logging;
pub mod payload;
pub mod proxy;
pub mod quality;
pub mod recorder;
pub mod reference_docs;
pub mod resources;
pub mod sample;
pub mod shutdown;
pub mod telemetry;
pub mod units;

//! The sidecar's own process: resident memory, CPU seconds, open fds, start time.
//!
//! Read from `/proc/self` at scrape time, so the numbers are fresh and cost
//! nothing between scrapes.

use crate::resources::procfs;
use crate::telemetry;

/// Updates the `magma_process_*` gauges from `/proc/self`.
pub fn record() {
    if let Ok(stats) = procfs::read_process("self") {
        metrics::gauge!(telemetry::PROCESS_RESIDENT_MEMORY).set(stats.resident_bytes as f64);
        metrics::counter!(telemetry::PROCESS_CPU).absolute(stats.cpu_seconds as u64);
        metrics::gauge!(telemetry::PROCESS_OPEN_FDS).set(stats.open_fds as f64);
        metrics::gauge!(telemetry::PROCESS_START_TIME).set(stats.start_time_unix_seconds);
    }
}

//! The sidecar's own process: resident memory, CPU seconds, open fds, start time.
//!
//! Read from `/proc/self` at scrape time, so the numbers are fresh and cost
//! nothing between scrapes. They are rendered as text next to the registry's
//! output because CPU seconds are fractional, which the registry's integer
//! counters cannot carry.

use std::fmt::Write;

use crate::resources::procfs;
use crate::telemetry::{self, Kind, CATALOGUE};

/// Appends the `magma_process_*` families to a Prometheus text exposition.
pub fn render(out: &mut String) {
    let Ok(stats) = procfs::read_process("self") else {
        return;
    };
    let values = [
        (
            telemetry::PROCESS_RESIDENT_MEMORY,
            stats.resident_bytes as f64,
        ),
        (telemetry::PROCESS_CPU, stats.cpu_seconds),
        (telemetry::PROCESS_OPEN_FDS, stats.open_fds as f64),
        (telemetry::PROCESS_START_TIME, stats.start_time_unix_seconds),
    ];
    for (name, value) in values {
        let Some(metric) = CATALOGUE.iter().find(|m| m.name == name) else {
            continue;
        };
        let kind = match metric.kind {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        };
        let _ = write!(
            out,
            "# HELP {name} {}\n# TYPE {name} {kind}\n{name} {value}\n",
            metric.help
        );
    }
}

//! Writes GPU readings to the `magma_gpu_*` metrics.
//!
//! Counters NVML keeps itself (energy, ECC, PCIe replays) are exported with
//! `absolute`, so a restart of the sidecar does not reset them and a device
//! reset shows as a counter reset, which `rate()` handles.

use metrics::{counter, gauge, Label};

use super::poll::THROTTLE_REASONS;
use crate::resources::snapshot::GpuReading;
use crate::telemetry as t;

fn device_labels(reading: &GpuReading) -> Vec<Label> {
    vec![
        Label::new("gpu", reading.index.to_string()),
        Label::new("uuid", reading.uuid.clone()),
        Label::new("name", reading.name.clone()),
    ]
}

/// `magma_gpu_up`.
pub fn up(up: bool) {
    gauge!(t::GPU_UP).set(if up { 1.0 } else { 0.0 });
}

/// Counts one collection error of `kind` (a value of `counters::kind`).
pub fn error(kind: &'static str) {
    counter!(t::GPU_COLLECT_ERRORS, "kind" => kind).increment(1);
}

/// `magma_gpu_info`, once per device per session.
pub fn info(reading: &GpuReading, driver_version: Option<&str>, cuda_version: Option<&str>) {
    let mut labels = device_labels(reading);
    labels.push(Label::new(
        "driver_version",
        driver_version.unwrap_or("unknown").to_owned(),
    ));
    labels.push(Label::new(
        "cuda_version",
        cuda_version.unwrap_or("unknown").to_owned(),
    ));
    gauge!(t::GPU_INFO, labels).set(1.0);
}

/// Every gauge and counter of one device's reading.
pub fn reading(reading: &GpuReading) {
    let labels = device_labels(reading);
    gauge!(t::GPU_DEVICE_UP, labels.clone()).set(if reading.up { 1.0 } else { 0.0 });
    if !reading.up {
        return;
    }
    let set = |name: &'static str, value: Option<f64>| {
        if let Some(value) = value {
            gauge!(name, labels.clone()).set(value);
        }
    };
    let bytes = |v: Option<u64>| v.map(|b| b as f64);
    set(t::GPU_UTILIZATION, reading.utilization_ratio);
    set(t::GPU_MEMORY_UTILIZATION, reading.memory_utilization_ratio);
    set(t::GPU_MEMORY_USED, bytes(reading.memory_used_bytes));
    set(t::GPU_MEMORY_FREE, bytes(reading.memory_free_bytes));
    set(t::GPU_MEMORY_TOTAL, bytes(reading.memory_total_bytes));
    set(t::GPU_MEMORY_RESERVED, bytes(reading.memory_reserved_bytes));
    set(
        t::GPU_TEMPERATURE,
        reading.temperature_celsius.map(f64::from),
    );
    set(t::GPU_POWER, reading.power_watts);
    set(t::GPU_POWER_LIMIT, reading.power_limit_watts);
    set(t::GPU_SM_CLOCK, reading.sm_clock_hertz);
    set(t::GPU_MEMORY_CLOCK, reading.memory_clock_hertz);
    set(
        t::GPU_PROCESSES,
        reading.processes.as_ref().map(|p| p.len() as f64),
    );
    set(t::GPU_PROCESS_MEMORY, bytes(reading.process_memory_bytes));
    if let Some(joules) = reading.energy_joules {
        counter!(t::GPU_ENERGY, labels.clone()).absolute(joules as u64);
    }
    if let Some(replays) = reading.pcie_replays_total {
        counter!(t::GPU_PCIE_REPLAYS, labels.clone()).absolute(replays);
    }
    for (value, kind) in [
        (reading.ecc_corrected_total, "corrected"),
        (reading.ecc_uncorrected_total, "uncorrected"),
    ] {
        if let Some(value) = value {
            let mut l = labels.clone();
            l.push(Label::new("type", kind));
            counter!(t::GPU_ECC_ERRORS, l).absolute(value);
        }
    }
    if let Some(active) = &reading.throttle_reasons {
        for (_, reason) in THROTTLE_REASONS {
            let mut l = labels.clone();
            l.push(Label::new("reason", *reason));
            let on = active.contains(reason);
            gauge!(t::GPU_THROTTLED, l).set(if on { 1.0 } else { 0.0 });
        }
    }
}

/// `magma_upstream_process_gpu_memory_bytes`.
pub fn upstream_memory(bytes: u64) {
    gauge!(t::UPSTREAM_PROCESS_GPU_MEMORY).set(bytes as f64);
}

/// `magma_gpu_poll_duration_seconds`.
pub fn poll_duration(seconds: f64) {
    metrics::histogram!(t::GPU_POLL_DURATION).record(seconds);
}

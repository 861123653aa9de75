//! The latest resource readings, shared cheaply with the anomaly engine, the
//! dashboard and `/api/resources`.
//!
//! The collector threads replace their part of the snapshot after each poll
//! under a short write lock; readers clone what they need under a read lock.
//! The snapshot holds one reading per selected GPU and one upstream reading,
//! so its size is bounded by the device count.

use std::sync::{Arc, RwLock};

use serde::Serialize;

/// Shared handle to the latest readings.
pub type SharedResources = Arc<RwLock<ResourceSnapshot>>;

/// Everything the collectors read last.
#[derive(Debug, Clone, Default, Serialize)]
pub struct ResourceSnapshot {
    pub gpu: GpuSnapshot,
    pub upstream: UpstreamSnapshot,
}

/// The GPU collector's last poll.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GpuSnapshot {
    /// The collector is configured to run (not `--no-gpu`, devices selected).
    pub enabled: bool,
    /// NVML answered at the last poll.
    pub up: bool,
    /// Why NVML is not answering (closed set of kinds, e.g. `library_missing`).
    pub down_reason: Option<&'static str>,
    pub driver_version: Option<String>,
    pub cuda_version: Option<String>,
    pub last_poll_unix_ms: u64,
    pub last_poll_duration_seconds: f64,
    pub devices: Vec<GpuReading>,
    /// GPU memory of the upstream model process on the selected GPUs, when
    /// NVML's host pids can be mapped to it (see docs/resources.md).
    pub upstream_process_memory_bytes: Option<u64>,
}

/// One GPU's counters; `None` where the counter is unsupported or failed.
#[derive(Debug, Clone, Default, Serialize)]
pub struct GpuReading {
    pub index: u32,
    pub uuid: String,
    pub name: String,
    /// False once the device fell off the bus (NVML `GpuLost`).
    pub up: bool,
    pub utilization_ratio: Option<f64>,
    pub memory_utilization_ratio: Option<f64>,
    pub memory_used_bytes: Option<u64>,
    pub memory_free_bytes: Option<u64>,
    pub memory_total_bytes: Option<u64>,
    pub memory_reserved_bytes: Option<u64>,
    pub temperature_celsius: Option<u32>,
    pub power_watts: Option<f64>,
    pub power_limit_watts: Option<f64>,
    pub energy_joules: Option<f64>,
    pub sm_clock_hertz: Option<f64>,
    pub memory_clock_hertz: Option<f64>,
    pub ecc_corrected_total: Option<u64>,
    pub ecc_uncorrected_total: Option<u64>,
    /// Active clock throttle reasons, from a closed set of names.
    pub throttle_reasons: Option<Vec<&'static str>>,
    pub pcie_replays_total: Option<u64>,
    /// Processes with a context on this GPU (host pids, as NVML reports them).
    pub processes: Option<Vec<GpuProcess>>,
    /// Sum of the processes' GPU memory: the model's share on an exclusive GPU.
    pub process_memory_bytes: Option<u64>,
    /// Counters switched off for this device (unsupported or missing in the driver).
    pub disabled_counters: Vec<&'static str>,
}

/// One process on a GPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct GpuProcess {
    pub pid: u32,
    /// `None` when the driver does not report it (e.g. under WDDM).
    pub memory_bytes: Option<u64>,
}

/// The upstream model process's last reading.
#[derive(Debug, Clone, Default, Serialize)]
pub struct UpstreamSnapshot {
    /// The collector is configured (`--upstream-pid` or `--upstream-process-name`).
    pub enabled: bool,
    pub up: bool,
    pub pid: Option<u32>,
    /// Start time in clock ticks since boot: identifies the process with the pid.
    #[serde(skip)]
    pub start_ticks: Option<u64>,
    pub resident_memory_bytes: Option<u64>,
    pub virtual_memory_bytes: Option<u64>,
    pub cpu_seconds: Option<f64>,
    pub threads: Option<u64>,
    pub open_fds: Option<u64>,
    pub start_time_unix_seconds: Option<f64>,
    pub restarts: u64,
    pub cgroup: Option<CgroupReading>,
    pub last_poll_unix_ms: u64,
}

/// The upstream process's cgroup v2 counters, where readable.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct CgroupReading {
    pub memory_current_bytes: Option<u64>,
    /// `None` when `memory.max` is `max` (no limit) or unreadable.
    pub memory_max_bytes: Option<u64>,
    pub cpu_usage_seconds: Option<f64>,
    pub cpu_throttled_seconds: Option<f64>,
}

/// A new, empty shared snapshot.
pub fn shared() -> SharedResources {
    Arc::new(RwLock::new(ResourceSnapshot::default()))
}

/// Milliseconds since the Unix epoch, 0 if the clock is before it.
pub(crate) fn unix_ms_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

//! One poll of every selected GPU through NVML.

use std::ffi::OsString;
use std::time::{Duration, Instant};

use nvml_wrapper::bitmasks::device::ThrottleReasons;
use nvml_wrapper::enum_wrappers::device::{Clock, EccCounter, MemoryError, TemperatureSensor};
use nvml_wrapper::enums::device::UsedGpuMemory;
use nvml_wrapper::error::NvmlError;
use nvml_wrapper::struct_wrappers::device::ProcessInfo;
use nvml_wrapper::Device;

use super::counters::{self, kind, Counter, Disabled, Verdict};
use super::pid_map::PidView;
use super::select::Selection;
use super::session::NvmlSession;
use crate::resources::snapshot::{GpuProcess, GpuReading};

/// Most processes kept per GPU in the snapshot; the memory sum covers all.
pub const MAX_PROCESSES_LISTED: usize = 64;

/// Longest wait before a lost GPU is tried again.
const LOST_RETRY_CAP: Duration = Duration::from_secs(300);

/// What the GPU collector needs to know.
#[derive(Debug, Clone)]
pub struct GpuConfig {
    pub lib_path: Option<OsString>,
    pub selection: Selection,
    pub pid_view: PidView,
    pub interval: Duration,
}

/// The upstream model process as the process collector last saw it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamIdentity {
    pub pid: u32,
    pub start_ticks: u64,
}

/// What one successful poll read.
#[derive(Debug, Clone, Default)]
pub struct PollReport {
    pub readings: Vec<GpuReading>,
    /// GPU memory of the upstream process, when NVML pids can be mapped.
    pub upstream_memory_bytes: Option<u64>,
    /// Errors of this poll by kind, already counted in the metrics.
    pub errors: Vec<&'static str>,
}

/// A poll that found NVML unusable; the kind says why.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Down(pub &'static str);

#[derive(Debug)]
struct DeviceSlot {
    index: u32,
    uuid: String,
    name: String,
    disabled: Disabled,
    lost: Option<Lost>,
}

#[derive(Debug, Clone, Copy)]
struct Lost {
    retry_at: Instant,
    backoff: Duration,
}

/// An open NVML session and the devices it polls.
#[derive(Debug)]
pub struct GpuCollector {
    session: NvmlSession,
    config: GpuConfig,
    pub driver_version: Option<String>,
    pub cuda_version: Option<String>,
    slots: Vec<DeviceSlot>,
    visible: Option<u32>,
}

impl GpuCollector {
    /// Loads and initialises NVML. The error carries its `kind`.
    pub fn open(config: GpuConfig) -> Result<Self, (&'static str, NvmlError)> {
        let session = NvmlSession::open(config.lib_path.as_deref())
            .map_err(|e| (counters::init_error_kind(&e), e))?;
        let nvml = session.nvml();
        let driver_version = nvml.sys_driver_version().ok();
        let cuda_version = nvml
            .sys_cuda_driver_version()
            .ok()
            .map(|v| format!("{}.{}", v / 1000, (v % 1000) / 10));
        Ok(Self {
            session,
            config,
            driver_version,
            cuda_version,
            slots: Vec::new(),
            visible: None,
        })
    }

    /// Whether the collector may drop this session and open a new one.
    pub fn can_reopen(&self) -> bool {
        self.session.can_reopen()
    }

    /// Reads every selected device once.
    pub fn poll(&mut self, upstream: Option<UpstreamIdentity>) -> Result<PollReport, Down> {
        let mut errors = Vec::new();
        let nvml = self.session.nvml();
        let visible = nvml.device_count().map_err(|e| down_kind(&e))?;
        if self.visible != Some(visible) {
            self.slots = build_slots(nvml, &self.config.selection, visible, &mut errors);
            self.visible = Some(visible);
        }
        if self.slots.is_empty() {
            // Devices may appear later (driver reload, MIG reconfiguration).
            self.visible = None;
            return Err(Down(kind::NO_DEVICE));
        }
        let now = Instant::now();
        let mut report = PollReport::default();
        let mut upstream_memory = 0u64;
        let mut upstream_matched = false;
        for slot in &mut self.slots {
            if slot.lost.is_some_and(|l| now < l.retry_at) {
                report.readings.push(lost_reading(slot));
                continue;
            }
            let device = match nvml.device_by_index(slot.index) {
                Ok(device) => device,
                Err(error) => {
                    match counters::verdict(&error) {
                        Verdict::NvmlDown(k) => return Err(Down(k)),
                        _ => mark_lost(slot, now, self.config.interval, &mut errors),
                    }
                    report.readings.push(lost_reading(slot));
                    continue;
                }
            };
            if slot.uuid.is_empty() {
                slot.uuid = device.uuid().unwrap_or_default();
                slot.name = device.name().unwrap_or_default();
            }
            let mut reader = Reader {
                slot_index: slot.index,
                disabled: &mut slot.disabled,
                lost: false,
                down: None,
                errors: &mut errors,
            };
            let mut reading = read_device(&device, &mut reader);
            let (lost, down) = (reader.lost, reader.down);
            if let Some(k) = down {
                return Err(Down(k));
            }
            if lost {
                mark_lost(slot, now, self.config.interval, &mut errors);
                report.readings.push(lost_reading(slot));
                continue;
            }
            if slot.lost.take().is_some() {
                tracing::info!(gpu = slot.index, uuid = %slot.uuid, "GPU answers again");
            }
            reading.index = slot.index;
            reading.uuid = slot.uuid.clone();
            reading.name = slot.name.clone();
            reading.up = true;
            reading.disabled_counters = slot.disabled.names();
            if let (Some(up), Some(processes)) = (upstream, reading.processes.as_ref()) {
                if self.config.pid_view.can_map() {
                    upstream_matched = true;
                    for p in processes {
                        if self
                            .config
                            .pid_view
                            .is_upstream(p.pid, up.pid, up.start_ticks)
                        {
                            upstream_memory += p.memory_bytes.unwrap_or(0);
                        }
                    }
                }
            }
            if let Some(processes) = reading.processes.as_mut() {
                processes.truncate(MAX_PROCESSES_LISTED);
            }
            report.readings.push(reading);
        }
        report.upstream_memory_bytes = upstream_matched.then_some(upstream_memory);
        report.errors = errors;
        Ok(report)
    }
}

fn down_kind(error: &NvmlError) -> Down {
    match counters::verdict(error) {
        Verdict::NvmlDown(k) => Down(k),
        _ => Down(kind::OTHER),
    }
}

fn build_slots(
    nvml: &nvml_wrapper::Nvml,
    selection: &Selection,
    visible: u32,
    errors: &mut Vec<&'static str>,
) -> Vec<DeviceSlot> {
    let mut slots = Vec::new();
    for index in 0..visible {
        let (uuid, name, lost) = match nvml.device_by_index(index) {
            Ok(device) => (device.uuid().ok(), device.name().ok(), false),
            Err(error) => {
                errors.push(match counters::verdict(&error) {
                    Verdict::DeviceLost => kind::GPU_LOST,
                    _ => kind::OTHER,
                });
                (None, None, true)
            }
        };
        if !selection.includes(index, uuid.as_deref(), visible) {
            continue;
        }
        slots.push(DeviceSlot {
            index,
            uuid: uuid.unwrap_or_default(),
            name: name.unwrap_or_default(),
            disabled: Disabled::default(),
            lost: lost.then(|| Lost {
                retry_at: Instant::now(),
                backoff: Duration::ZERO,
            }),
        });
    }
    slots
}

fn mark_lost(slot: &mut DeviceSlot, now: Instant, interval: Duration, errors: &mut Vec<&str>) {
    let backoff = match slot.lost {
        Some(l) if !l.backoff.is_zero() => (l.backoff * 2).min(LOST_RETRY_CAP),
        _ => interval.max(Duration::from_secs(1)),
    };
    if slot.lost.is_none_or(|l| l.backoff.is_zero()) {
        tracing::warn!(gpu = slot.index, uuid = %slot.uuid, "GPU lost (fell off the bus or needs a reset); polling it less often");
    }
    errors.push(kind::GPU_LOST);
    slot.lost = Some(Lost {
        retry_at: now + backoff,
        backoff,
    });
}

fn lost_reading(slot: &DeviceSlot) -> GpuReading {
    GpuReading {
        index: slot.index,
        uuid: slot.uuid.clone(),
        name: slot.name.clone(),
        up: false,
        disabled_counters: slot.disabled.names(),
        ..GpuReading::default()
    }
}

/// Reads counters of one device, switching off what fails for good.
struct Reader<'a> {
    slot_index: u32,
    disabled: &'a mut Disabled,
    lost: bool,
    down: Option<&'static str>,
    errors: &'a mut Vec<&'static str>,
}

impl Reader<'_> {
    fn read<T>(
        &mut self,
        counter: Counter,
        call: impl FnOnce() -> Result<T, NvmlError>,
    ) -> Option<T> {
        if self.lost || self.down.is_some() || self.disabled.contains(counter) {
            return None;
        }
        match call() {
            Ok(value) => Some(value),
            Err(error) => {
                match counters::verdict(&error) {
                    Verdict::DisableCounter(k) => {
                        self.errors.push(k);
                        self.disabled.insert(counter);
                        tracing::info!(
                            gpu = self.slot_index,
                            counter = counter.name(),
                            %error,
                            "GPU counter unavailable on this device; not reading it again"
                        );
                    }
                    Verdict::DeviceLost => self.lost = true,
                    Verdict::NvmlDown(k) => self.down = Some(k),
                    Verdict::Transient => {
                        self.errors.push(kind::OTHER);
                        tracing::debug!(gpu = self.slot_index, counter = counter.name(), %error, "GPU counter read failed");
                    }
                }
                None
            }
        }
    }
}

fn read_device(device: &Device<'_>, r: &mut Reader<'_>) -> GpuReading {
    let mut reading = GpuReading::default();
    if let Some(u) = r.read(Counter::Utilization, || device.utilization_rates()) {
        reading.utilization_ratio = Some(f64::from(u.gpu) / 100.0);
        reading.memory_utilization_ratio = Some(f64::from(u.memory) / 100.0);
    }
    if let Some(m) = r.read(Counter::Memory, || device.memory_info()) {
        reading.memory_used_bytes = Some(m.used);
        reading.memory_free_bytes = Some(m.free);
        reading.memory_total_bytes = Some(m.total);
        reading.memory_reserved_bytes = Some(m.reserved);
    }
    reading.temperature_celsius = r.read(Counter::Temperature, || {
        device.temperature(TemperatureSensor::Gpu)
    });
    let milli = |mw: u32| f64::from(mw) / 1000.0;
    reading.power_watts = r.read(Counter::Power, || device.power_usage()).map(milli);
    reading.power_limit_watts = r
        .read(Counter::PowerLimit, || device.enforced_power_limit())
        .map(milli);
    let mhz = |c: u32| f64::from(c) * 1e6;
    reading.sm_clock_hertz = r
        .read(Counter::SmClock, || device.clock_info(Clock::SM))
        .map(mhz);
    reading.memory_clock_hertz = r
        .read(Counter::MemoryClock, || device.clock_info(Clock::Memory))
        .map(mhz);
    reading.energy_joules = r
        .read(Counter::Energy, || device.total_energy_consumption())
        .map(|mj| mj as f64 / 1000.0);
    reading.ecc_corrected_total = r.read(Counter::EccCorrected, || {
        device.total_ecc_errors(MemoryError::Corrected, EccCounter::Aggregate)
    });
    reading.ecc_uncorrected_total = r.read(Counter::EccUncorrected, || {
        device.total_ecc_errors(MemoryError::Uncorrected, EccCounter::Aggregate)
    });
    reading.throttle_reasons = r
        .read(Counter::Throttle, || device.current_throttle_reasons())
        .map(active_reasons);
    reading.pcie_replays_total = r
        .read(Counter::PcieReplays, || device.pcie_replay_counter())
        .map(u64::from);
    let compute = r.read(Counter::ComputeProcesses, || {
        device.running_compute_processes()
    });
    let graphics = r.read(Counter::GraphicsProcesses, || {
        device.running_graphics_processes()
    });
    if compute.is_some() || graphics.is_some() {
        let processes = merge_processes(compute.unwrap_or_default(), graphics.unwrap_or_default());
        reading.process_memory_bytes = Some(processes.iter().filter_map(|p| p.memory_bytes).sum());
        reading.processes = Some(processes);
    }
    reading
}

/// A process with both a compute and a graphics context is listed by both
/// calls with the same memory; count it once.
fn merge_processes(compute: Vec<ProcessInfo>, graphics: Vec<ProcessInfo>) -> Vec<GpuProcess> {
    let mut merged: Vec<GpuProcess> = Vec::with_capacity(compute.len() + graphics.len());
    for info in compute.into_iter().chain(graphics) {
        let memory_bytes = match info.used_gpu_memory {
            UsedGpuMemory::Used(bytes) => Some(bytes),
            UsedGpuMemory::Unavailable => None,
        };
        match merged.iter_mut().find(|p| p.pid == info.pid) {
            Some(existing) => existing.memory_bytes = existing.memory_bytes.max(memory_bytes),
            None => merged.push(GpuProcess {
                pid: info.pid,
                memory_bytes,
            }),
        }
    }
    merged
}

/// Throttle reasons in the closed set of `reason` label values.
pub const THROTTLE_REASONS: &[(ThrottleReasons, &str)] = &[
    (ThrottleReasons::GPU_IDLE, "gpu_idle"),
    (
        ThrottleReasons::APPLICATIONS_CLOCKS_SETTING,
        "applications_clocks_setting",
    ),
    (ThrottleReasons::SW_POWER_CAP, "sw_power_cap"),
    (ThrottleReasons::HW_SLOWDOWN, "hw_slowdown"),
    (ThrottleReasons::SYNC_BOOST, "sync_boost"),
    (ThrottleReasons::SW_THERMAL_SLOWDOWN, "sw_thermal_slowdown"),
    (ThrottleReasons::HW_THERMAL_SLOWDOWN, "hw_thermal_slowdown"),
    (
        ThrottleReasons::HW_POWER_BRAKE_SLOWDOWN,
        "hw_power_brake_slowdown",
    ),
    (
        ThrottleReasons::DISPLAY_CLOCK_SETTING,
        "display_clock_setting",
    ),
];

fn active_reasons(reasons: ThrottleReasons) -> Vec<&'static str> {
    THROTTLE_REASONS
        .iter()
        .filter(|(flag, _)| reasons.contains(*flag))
        .map(|(_, name)| *name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(pid: u32, bytes: Option<u64>) -> ProcessInfo {
        ProcessInfo {
            pid,
            used_gpu_memory: bytes.map_or(UsedGpuMemory::Unavailable, UsedGpuMemory::Used),
            gpu_instance_id: None,
            compute_instance_id: None,
        }
    }

    #[test]
    fn processes_in_both_lists_count_once() {
        let merged = merge_processes(
            vec![info(10, Some(100)), info(11, None)],
            vec![info(10, Some(100)), info(12, Some(5))],
        );
        assert_eq!(merged.len(), 3);
        let sum: u64 = merged.iter().filter_map(|p| p.memory_bytes).sum();
        assert_eq!(sum, 105);
    }

    #[test]
    fn throttle_bits_map_to_names() {
        let bits = ThrottleReasons::SW_POWER_CAP | ThrottleReasons::HW_THERMAL_SLOWDOWN;
        assert_eq!(
            active_reasons(bits),
            vec!["sw_power_cap", "hw_thermal_slowdown"]
        );
    }
}

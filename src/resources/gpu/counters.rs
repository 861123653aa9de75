//! The GPU counters the collector reads, and what an NVML error means for them.
//!
//! A counter this driver or device cannot give (`NotSupported`, a symbol the
//! library lacks, no permission) is switched off for that device only, once,
//! and counted; a lost GPU is taken out of polling; anything else is counted
//! and tried again at the next poll.

use nvml_wrapper::error::NvmlError;

/// One counter read per device per poll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    Utilization,
    Memory,
    Temperature,
    Power,
    PowerLimit,
    SmClock,
    MemoryClock,
    Energy,
    EccCorrected,
    EccUncorrected,
    Throttle,
    PcieReplays,
    ComputeProcesses,
    GraphicsProcesses,
}

impl Counter {
    pub const ALL: [Counter; 14] = [
        Counter::Utilization,
        Counter::Memory,
        Counter::Temperature,
        Counter::Power,
        Counter::PowerLimit,
        Counter::SmClock,
        Counter::MemoryClock,
        Counter::Energy,
        Counter::EccCorrected,
        Counter::EccUncorrected,
        Counter::Throttle,
        Counter::PcieReplays,
        Counter::ComputeProcesses,
        Counter::GraphicsProcesses,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Counter::Utilization => "utilization",
            Counter::Memory => "memory",
            Counter::Temperature => "temperature",
            Counter::Power => "power",
            Counter::PowerLimit => "power_limit",
            Counter::SmClock => "sm_clock",
            Counter::MemoryClock => "memory_clock",
            Counter::Energy => "energy",
            Counter::EccCorrected => "ecc_corrected",
            Counter::EccUncorrected => "ecc_uncorrected",
            Counter::Throttle => "throttle",
            Counter::PcieReplays => "pcie_replays",
            Counter::ComputeProcesses => "compute_processes",
            Counter::GraphicsProcesses => "graphics_processes",
        }
    }

    fn bit(self) -> u32 {
        1 << (self as u32)
    }
}

/// The counters switched off for one device.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Disabled(u32);

impl Disabled {
    pub fn contains(self, counter: Counter) -> bool {
        self.0 & counter.bit() != 0
    }

    pub fn insert(&mut self, counter: Counter) {
        self.0 |= counter.bit();
    }

    pub fn names(self) -> Vec<&'static str> {
        Counter::ALL
            .iter()
            .filter(|c| self.contains(**c))
            .map(|c| c.name())
            .collect()
    }
}

/// Closed set of `kind` label values of `magma_gpu_collect_errors_total`.
pub mod kind {
    /// The NVML library file could not be loaded.
    pub const LIBRARY_MISSING: &str = "library_missing";
    /// `nvmlInit` failed for another reason than a missing driver.
    pub const INIT_FAILED: &str = "init_failed";
    /// The kernel driver is not loaded, or NVML is no longer initialised.
    pub const DRIVER_NOT_LOADED: &str = "driver_not_loaded";
    /// NVML answered but no (selected) GPU is there.
    pub const NO_DEVICE: &str = "no_device";
    /// The device does not support a counter.
    pub const NOT_SUPPORTED: &str = "not_supported";
    /// The library lacks a function (older driver than nvml-wrapper expects).
    pub const MISSING_SYMBOL: &str = "missing_symbol";
    pub const NO_PERMISSION: &str = "no_permission";
    /// The GPU fell off the bus or needs a reset.
    pub const GPU_LOST: &str = "gpu_lost";
    pub const OTHER: &str = "other";

    pub const ALL: &[&str] = &[
        LIBRARY_MISSING,
        INIT_FAILED,
        DRIVER_NOT_LOADED,
        NO_DEVICE,
        NOT_SUPPORTED,
        MISSING_SYMBOL,
        NO_PERMISSION,
        GPU_LOST,
        OTHER,
    ];
}

/// What to do after a counter read failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Switch this counter off for this device.
    DisableCounter(&'static str),
    /// Stop polling this device until it comes back.
    DeviceLost,
    /// NVML as a whole stopped answering: drop to `magma_gpu_up 0`.
    NvmlDown(&'static str),
    /// Count it and try again next poll.
    Transient,
}

/// Classifies an error of a device call.
pub fn verdict(error: &NvmlError) -> Verdict {
    match error {
        NvmlError::NotSupported => Verdict::DisableCounter(kind::NOT_SUPPORTED),
        NvmlError::FailedToLoadSymbol(_) | NvmlError::FunctionNotFound => {
            Verdict::DisableCounter(kind::MISSING_SYMBOL)
        }
        NvmlError::NoPermission => Verdict::DisableCounter(kind::NO_PERMISSION),
        NvmlError::GpuLost | NvmlError::ResetRequired => Verdict::DeviceLost,
        NvmlError::Uninitialized
        | NvmlError::DriverNotLoaded
        | NvmlError::LibRmVersionMismatch
        | NvmlError::LibraryNotFound => Verdict::NvmlDown(kind::DRIVER_NOT_LOADED),
        _ => Verdict::Transient,
    }
}

/// Classifies an error of `nvmlInit` (through `Nvml::builder().init()`).
pub fn init_error_kind(error: &NvmlError) -> &'static str {
    match error {
        NvmlError::LibloadingError(_) | NvmlError::LibraryNotFound => kind::LIBRARY_MISSING,
        NvmlError::DriverNotLoaded | NvmlError::LibRmVersionMismatch => kind::DRIVER_NOT_LOADED,
        NvmlError::NoPermission => kind::NO_PERMISSION,
        _ => kind::INIT_FAILED,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn disabled_set_keeps_each_counter_apart() {
        let mut disabled = Disabled::default();
        disabled.insert(Counter::Power);
        disabled.insert(Counter::PcieReplays);
        assert!(disabled.contains(Counter::Power));
        assert!(!disabled.contains(Counter::PowerLimit));
        assert_eq!(disabled.names(), vec!["power", "pcie_replays"]);
    }

    #[test]
    fn errors_map_to_closed_kinds() {
        assert_eq!(
            verdict(&NvmlError::FailedToLoadSymbol("x".into())),
            Verdict::DisableCounter(kind::MISSING_SYMBOL)
        );
        assert_eq!(verdict(&NvmlError::GpuLost), Verdict::DeviceLost);
        assert_eq!(verdict(&NvmlError::Timeout), Verdict::Transient);
        assert_eq!(
            init_error_kind(&NvmlError::DriverNotLoaded),
            kind::DRIVER_NOT_LOADED
        );
        assert_eq!(init_error_kind(&NvmlError::Unknown), kind::INIT_FAILED);
    }
}

//! The GPU collector: a dedicated OS thread that polls NVML every
//! `--gpu-interval` and writes `magma_gpu_*` and the shared snapshot.
//!
//! Degrade, never fail: when NVML cannot be loaded or initialised, or no GPU
//! is there, `magma_gpu_up` is 0, one log line says why (again only when the
//! reason changes), and the thread retries with exponential backoff up to five
//! minutes. The proxy never waits on this thread.

pub mod counters;
pub mod pid_map;
pub mod poll;
pub mod record;
pub mod select;
pub mod session;

use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use self::counters::kind;
use self::poll::{Down, GpuCollector, GpuConfig, UpstreamIdentity};
use crate::resources::snapshot::{unix_ms_now, SharedResources};
use crate::resources::stopper::Stopper;

/// Longest wait between two attempts while NVML is down.
pub const MAX_BACKOFF: Duration = Duration::from_secs(300);

/// Consecutive failed polls after which the session is closed and NVML
/// initialised anew (the driver may have been reloaded).
const REOPEN_AFTER_FAILURES: u32 = 3;

/// Starts the collector thread.
pub fn spawn(
    config: GpuConfig,
    shared: SharedResources,
    stopper: Stopper,
) -> std::io::Result<JoinHandle<()>> {
    std::thread::Builder::new()
        .name("gpu-collector".into())
        .spawn(move || {
            crate::background::lower_this_thread();
            run(config, shared, stopper)
        })
}

/// Wait after `failures` consecutive failures: the interval, doubled each
/// time, capped at [`MAX_BACKOFF`] (or the interval, if that is longer).
pub fn backoff(interval: Duration, failures: u32) -> Duration {
    let cap = MAX_BACKOFF.max(interval);
    let factor = 1u32 << failures.saturating_sub(1).min(16);
    interval.saturating_mul(factor).min(cap)
}

fn run(config: GpuConfig, shared: SharedResources, stopper: Stopper) {
    let interval = config.interval;
    let mut collector: Option<GpuCollector> = None;
    let mut failures = 0u32;
    let mut last_down: Option<&'static str> = None;
    record::up(false);
    set_enabled(&shared);
    loop {
        if stopper.is_stopped() {
            break;
        }
        let outcome = match collector.as_mut() {
            Some(c) => poll_once(c, &shared),
            None => match GpuCollector::open(config.clone()) {
                Ok(mut c) => {
                    tracing::info!(
                        driver = c.driver_version.as_deref().unwrap_or("unknown"),
                        cuda = c.cuda_version.as_deref().unwrap_or("unknown"),
                        "NVML initialised"
                    );
                    let outcome = poll_once(&mut c, &shared);
                    collector = Some(c);
                    outcome
                }
                Err((k, error)) => {
                    if last_down != Some(k) {
                        let lib = config
                            .lib_path
                            .as_ref()
                            .map(|p| p.to_string_lossy().into_owned())
                            .unwrap_or_else(|| "libnvidia-ml.so.1".into());
                        tracing::warn!(kind = k, library = %lib, %error, "GPU metrics unavailable (magma_gpu_up 0); the proxy runs on and NVML is retried with backoff");
                    }
                    Err(Down(k))
                }
            },
        };
        let wait = match outcome {
            Ok(()) => {
                if last_down.take().is_some() {
                    tracing::info!("GPU metrics available again");
                }
                failures = 0;
                interval
            }
            Err(Down(k)) => {
                record::error(k);
                record::up(false);
                mark_down(&shared, k);
                if collector.is_some() && last_down != Some(k) {
                    tracing::warn!(
                        kind = k,
                        "GPU poll failed (magma_gpu_up 0); retrying with backoff"
                    );
                }
                last_down = Some(k);
                failures = failures.saturating_add(1);
                let reopen = k != kind::NO_DEVICE
                    && failures >= REOPEN_AFTER_FAILURES
                    && collector.as_ref().is_some_and(GpuCollector::can_reopen);
                if reopen {
                    collector = None;
                }
                backoff(interval, failures)
            }
        };
        if stopper.sleep(wait) {
            break;
        }
    }
    // Dropping the collector shuts NVML down, guarded (see `session`).
    drop(collector);
    record::up(false);
}

/// One poll: reads, records metrics and replaces the GPU part of the snapshot.
pub fn poll_once(collector: &mut GpuCollector, shared: &SharedResources) -> Result<(), Down> {
    let started = Instant::now();
    let upstream = shared.read().ok().and_then(|s| {
        Some(UpstreamIdentity {
            pid: s.upstream.pid?,
            start_ticks: s.upstream.start_ticks?,
        })
    });
    let report = collector.poll(upstream)?;
    for k in &report.errors {
        record::error(k);
    }
    for reading in &report.readings {
        record::reading(reading);
        if reading.up {
            record::info(
                reading,
                collector.driver_version.as_deref(),
                collector.cuda_version.as_deref(),
            );
        }
    }
    if let Some(bytes) = report.upstream_memory_bytes {
        record::upstream_memory(bytes);
    }
    record::up(true);
    let seconds = started.elapsed().as_secs_f64();
    record::poll_duration(seconds);
    if let Ok(mut snapshot) = shared.write() {
        let gpu = &mut snapshot.gpu;
        gpu.up = true;
        gpu.down_reason = None;
        gpu.driver_version = collector.driver_version.clone();
        gpu.cuda_version = collector.cuda_version.clone();
        gpu.last_poll_unix_ms = unix_ms_now();
        gpu.last_poll_duration_seconds = seconds;
        gpu.devices = report.readings;
        gpu.upstream_process_memory_bytes = report.upstream_memory_bytes;
    }
    Ok(())
}

fn set_enabled(shared: &SharedResources) {
    if let Ok(mut snapshot) = shared.write() {
        snapshot.gpu.enabled = true;
    }
}

fn mark_down(shared: &SharedResources, reason: &'static str) {
    if let Ok(mut snapshot) = shared.write() {
        snapshot.gpu.up = false;
        snapshot.gpu.down_reason = Some(reason);
        snapshot.gpu.last_poll_unix_ms = unix_ms_now();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let five = Duration::from_secs(5);
        assert_eq!(backoff(five, 1), five);
        assert_eq!(backoff(five, 2), Duration::from_secs(10));
        assert_eq!(backoff(five, 4), Duration::from_secs(40));
        assert_eq!(backoff(five, 50), MAX_BACKOFF);
        let long = Duration::from_secs(600);
        assert_eq!(backoff(long, 3), long);
    }
}

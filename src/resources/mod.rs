//! Resource collectors: GPU counters through NVML, the upstream model
//! process, and the sidecar's own process.
//!
//! `start` launches two OS threads (GPU, upstream process) that write the
//! metrics and a shared [`ResourceSnapshot`]; both stop on the shutdown signal.
//! See docs/resources.md for the metrics and the trade-offs.

pub mod cgroup;
pub mod gpu;
pub mod procfs;
pub mod self_process;
pub mod snapshot;
pub mod stopper;
pub mod upstream;

use std::ffi::OsString;
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::Duration;

use clap::Args;

pub use snapshot::{ResourceSnapshot, SharedResources};

use crate::shutdown::ShutdownSignal;
use crate::units::parse_duration;
use gpu::pid_map::PidView;
use gpu::poll::GpuConfig;
use gpu::select::{self, Selection};
use stopper::Stopper;
use upstream::Target;

/// Resource collector flags.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "GPU and model process")]
pub struct ResourceArgs {
    /// How often GPU counters are read through NVML (e.g. 5s, 500ms).
    #[arg(long, env = "MAGMA_MONITOR_GPU_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub gpu_interval: Duration,

    /// GPUs to watch, as NVML indices or UUIDs (comma separated); default: the
    /// devices in NVIDIA_VISIBLE_DEVICES, else all.
    #[arg(long, env = "MAGMA_MONITOR_GPU_DEVICES", value_delimiter = ',')]
    pub gpu_devices: Vec<String>,

    /// Load NVML from this file instead of libnvidia-ml.so.1.
    #[arg(long, env = "MAGMA_MONITOR_NVML_LIB")]
    pub nvml_lib: Option<PathBuf>,

    /// Do not start the GPU collector.
    #[arg(long, env = "MAGMA_MONITOR_NO_GPU")]
    pub no_gpu: bool,

    /// The host's /proc mounted in the container (e.g. /host/proc), to map
    /// NVML's host pids to the upstream process through NSpid.
    #[arg(long, env = "MAGMA_MONITOR_HOST_PROC")]
    pub host_proc: Option<String>,

    /// Pid of the model server process (as this container sees it); wins over
    /// --upstream-process-name when both are given.
    #[arg(long, env = "MAGMA_MONITOR_UPSTREAM_PID")]
    pub upstream_pid: Option<u32>,

    /// Name of the model server process (comm, or an argument of its command
    /// line such as `main.py`), found in /proc and found again after a restart.
    #[arg(long, env = "MAGMA_MONITOR_UPSTREAM_PROCESS_NAME")]
    pub upstream_process_name: Option<String>,

    /// How often the upstream process is read from /proc.
    #[arg(long, env = "MAGMA_MONITOR_PROCESS_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub process_interval: Duration,
}

/// Shortest interval accepted: NVML sampling itself runs at about 1/6 s.
const MIN_INTERVAL: Duration = Duration::from_millis(100);

impl ResourceArgs {
    pub fn validate(&self) -> Result<(), String> {
        if self.gpu_interval < MIN_INTERVAL {
            return Err("--gpu-interval must be at least 100ms".into());
        }
        if self.process_interval < MIN_INTERVAL {
            return Err("--process-interval must be at least 100ms".into());
        }
        select::parse_flag(&self.gpu_devices).map(|_| ())?;
        if self.upstream_process_name.as_deref() == Some("") {
            return Err("--upstream-process-name must not be empty".into());
        }
        Ok(())
    }

    /// The device selection: the flag, else NVIDIA_VISIBLE_DEVICES, else all.
    pub fn gpu_selection(&self) -> Result<(Selection, &'static str), String> {
        if !self.gpu_devices.is_empty() {
            return Ok((select::parse_flag(&self.gpu_devices)?, select::SOURCE_FLAG));
        }
        match std::env::var("NVIDIA_VISIBLE_DEVICES") {
            Ok(value) => Ok((
                select::parse_visible_devices(Some(&value)),
                select::SOURCE_ENV,
            )),
            Err(_) => Ok((Selection::All, select::SOURCE_DEFAULT)),
        }
    }

    fn upstream_target(&self) -> Option<Target> {
        match (&self.upstream_pid, &self.upstream_process_name) {
            (Some(pid), _) => Some(Target::Pid(*pid)),
            (None, Some(name)) => Some(Target::Name(name.clone())),
            (None, None) => None,
        }
    }
}

/// The running collectors.
#[derive(Debug)]
pub struct ResourceHandles {
    /// Latest readings, for the anomaly engine, the dashboard and `/api/resources`.
    pub snapshot: SharedResources,
    stopper: Stopper,
    threads: Vec<JoinHandle<()>>,
}

impl ResourceHandles {
    /// Stops the collector threads and waits for them (NVML is shut down).
    pub fn join(self) {
        self.stopper.stop();
        for thread in self.threads {
            if thread.join().is_err() {
                tracing::error!("a resource collector thread panicked");
            }
        }
    }
}

/// Starts the GPU and upstream-process collectors on their own threads.
///
/// Never fails: a collector that cannot start is logged and left out. When
/// called inside a tokio runtime, `shutdown` stops the threads; otherwise call
/// [`ResourceHandles::join`].
pub fn start(args: &ResourceArgs, shutdown: ShutdownSignal) -> ResourceHandles {
    let shared = snapshot::shared();
    let stopper = Stopper::default();
    let mut threads = Vec::new();

    if args.no_gpu {
        tracing::info!("GPU collector off (--no-gpu)");
    } else {
        match args.gpu_selection() {
            Ok((Selection::Nothing, source)) => {
                tracing::info!(source, "no GPU given to this container; GPU collector off");
            }
            Ok((selection, source)) => {
                tracing::debug!(source, ?selection, "GPU selection");
                let config = GpuConfig {
                    lib_path: args.nvml_lib.clone().map(OsString::from),
                    selection,
                    pid_view: PidView::detect(args.host_proc.as_deref()),
                    interval: args.gpu_interval,
                };
                match gpu::spawn(config, shared.clone(), stopper.clone()) {
                    Ok(thread) => threads.push(thread),
                    Err(error) => tracing::error!(%error, "cannot start the GPU collector thread"),
                }
            }
            Err(reason) => tracing::error!(%reason, "GPU collector off"),
        }
    }

    if let Some(target) = args.upstream_target() {
        if let Ok(mut s) = shared.write() {
            s.upstream.enabled = true;
        }
        match upstream::spawn(
            target,
            args.process_interval,
            shared.clone(),
            stopper.clone(),
        ) {
            Ok(thread) => threads.push(thread),
            Err(error) => tracing::error!(%error, "cannot start the process collector thread"),
        }
    }

    if let Ok(runtime) = tokio::runtime::Handle::try_current() {
        let stopper = stopper.clone();
        let mut shutdown = shutdown;
        runtime.spawn(async move {
            shutdown.recv().await;
            stopper.stop();
        });
    }

    ResourceHandles {
        snapshot: shared,
        stopper,
        threads,
    }
}

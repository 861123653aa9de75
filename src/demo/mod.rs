//! `demo` and `simulate-upstream`: a simulated Magma server, generated
//! traffic with scenario phases, and the whole product on one machine.

pub mod images;
pub mod prompts;
mod run;
pub mod scenario;
pub mod sim;
mod status;
pub mod traffic;

use std::net::SocketAddr;
use std::time::Duration;

use clap::Args;

use crate::units::{parse_duration, parse_size};
pub use run::run_demo;
pub use scenario::ScenarioName;
pub use sim::{serve_simulated, SimConfig, SimControl};

/// Flags of `magma-monitor demo`.
#[derive(Debug, Clone, Args)]
pub struct DemoArgs {
    /// Scenario to play: all (cycles through every phase), normal, input-drift,
    /// latency-creep, error-burst or degenerate-output.
    #[arg(
        long,
        env = "MAGMA_MONITOR_DEMO_SCENARIO",
        value_enum,
        default_value = "all"
    )]
    pub scenario: ScenarioName,

    /// Total run time (e.g. 10m); 0 runs until Ctrl-C.
    #[arg(long, env = "MAGMA_MONITOR_DEMO_DURATION", default_value = "0", value_parser = parse_duration)]
    pub duration: Duration,

    /// Length of one scenario phase at speed 1 (divided by --speed).
    #[arg(long, env = "MAGMA_MONITOR_DEMO_PHASE_DURATION", default_value = "90s", value_parser = parse_duration)]
    pub phase_duration: Duration,

    /// Time compression: simulated latency and phase lengths are divided by this.
    #[arg(long, env = "MAGMA_MONITOR_DEMO_SPEED", default_value_t = 1.0)]
    pub speed: f64,

    /// Concurrent simulated clients.
    #[arg(long, env = "MAGMA_MONITOR_DEMO_CLIENTS", default_value_t = 8)]
    pub clients: usize,

    /// Address of the proxy (where the generated traffic goes).
    #[arg(
        long,
        env = "MAGMA_MONITOR_DEMO_LISTEN",
        default_value = "127.0.0.1:8000"
    )]
    pub listen: SocketAddr,

    /// Address of the admin server (metrics, JSON API, dashboard).
    #[arg(
        long,
        env = "MAGMA_MONITOR_DEMO_ADMIN_LISTEN",
        default_value = "127.0.0.1:9464"
    )]
    pub admin_listen: SocketAddr,

    /// Address of the simulated Magma server (port 0 picks a free one).
    #[arg(
        long,
        env = "MAGMA_MONITOR_DEMO_UPSTREAM_LISTEN",
        default_value = "127.0.0.1:0"
    )]
    pub upstream_listen: SocketAddr,

    /// Seconds between status lines.
    #[arg(long, env = "MAGMA_MONITOR_DEMO_STATUS_INTERVAL", default_value = "5s", value_parser = parse_duration)]
    pub status_interval: Duration,

    /// Further proxy flags, after `--` (e.g. `-- --sample-rate 0.5`); they
    /// override the demo's own choices.
    #[arg(last = true)]
    pub proxy_flags: Vec<String>,
}

impl DemoArgs {
    pub fn validate(&self) -> Result<(), String> {
        if !(self.speed.is_finite() && self.speed > 0.0 && self.speed <= 1000.0) {
            return Err(format!("--speed {} must be in (0, 1000]", self.speed));
        }
        if self.clients == 0 || self.clients > 1024 {
            return Err(format!(
                "--clients {} must be between 1 and 1024",
                self.clients
            ));
        }
        if self.phase_duration < Duration::from_secs(1) {
            return Err("--phase-duration must be at least 1s".into());
        }
        Ok(())
    }
}

/// Flags of `magma-monitor simulate-upstream`.
#[derive(Debug, Clone, Args)]
pub struct SimulateArgs {
    /// Address to listen on.
    #[arg(
        long,
        env = "MAGMA_MONITOR_SIM_LISTEN",
        default_value = "127.0.0.1:8080"
    )]
    pub listen: SocketAddr,

    /// Median model time per request at speed 1.
    #[arg(long, env = "MAGMA_MONITOR_SIM_LATENCY", default_value = "1.1s", value_parser = parse_duration)]
    pub latency: Duration,

    /// Sigma of the log-normal latency jitter (0 = none).
    #[arg(long, env = "MAGMA_MONITOR_SIM_JITTER", default_value_t = 0.15)]
    pub jitter: f64,

    /// Every simulated delay is divided by this.
    #[arg(long, env = "MAGMA_MONITOR_SIM_SPEED", default_value_t = 1.0)]
    pub speed: f64,

    /// Model routes answer 503 "Model not loaded yet" for this long after start.
    #[arg(long, env = "MAGMA_MONITOR_SIM_WARMUP", default_value = "0s", value_parser = parse_duration)]
    pub warmup: Duration,

    /// Largest request body read; larger ones get 413.
    #[arg(long, env = "MAGMA_MONITOR_SIM_MAX_BODY_BYTES", default_value = "64MiB", value_parser = parse_size)]
    pub max_body_bytes: u64,

    /// Fault: extra latency added per minute since start, in seconds.
    #[arg(long, env = "MAGMA_MONITOR_SIM_LATENCY_CREEP", default_value_t = 0.0)]
    pub latency_creep: f64,

    /// Ceiling of the extra latency from creep, in seconds.
    #[arg(long, env = "MAGMA_MONITOR_SIM_LATENCY_CREEP_MAX", default_value_t = sim::faults::DEFAULT_CREEP_MAX_SECONDS)]
    pub latency_creep_max: f64,

    /// Fault: resident memory leaked by every answered request (e.g. 1MiB).
    #[arg(long, env = "MAGMA_MONITOR_SIM_LEAK_PER_REQUEST", default_value = "0", value_parser = parse_size)]
    pub leak_per_request: u64,

    /// The leak stops growing at this size.
    #[arg(long, env = "MAGMA_MONITOR_SIM_LEAK_CAP", default_value = "512MiB", value_parser = parse_size)]
    pub leak_cap: u64,

    /// Fault: share of requests answered 503 or 500 (0..1).
    #[arg(long, env = "MAGMA_MONITOR_SIM_ERROR_RATE", default_value_t = 0.0)]
    pub error_rate: f64,

    /// Fault: share of answers that degenerate into a repeated word (0..1).
    #[arg(long, env = "MAGMA_MONITOR_SIM_DEGENERATE_RATE", default_value_t = 0.0)]
    pub degenerate_rate: f64,

    /// Fault: share of requests that hang (0..1).
    #[arg(long, env = "MAGMA_MONITOR_SIM_HANG_RATE", default_value_t = 0.0)]
    pub hang_rate: f64,

    /// How long a hung request hangs.
    #[arg(long, env = "MAGMA_MONITOR_SIM_HANG_FOR", default_value = "120s", value_parser = parse_duration)]
    pub hang_for: Duration,

    /// Log filter.
    #[arg(long, env = "MAGMA_MONITOR_LOG_LEVEL", default_value = "info")]
    pub log_level: String,
}

impl SimulateArgs {
    /// The server configuration these flags describe.
    pub fn config(&self) -> Result<SimConfig, String> {
        if !(self.speed.is_finite() && self.speed > 0.0) {
            return Err(format!("--speed {} must be positive", self.speed));
        }
        if !(self.jitter.is_finite() && (0.0..=2.0).contains(&self.jitter)) {
            return Err(format!("--jitter {} must be between 0 and 2", self.jitter));
        }
        let faults = sim::Faults {
            latency_creep_seconds_per_minute: self.latency_creep,
            latency_creep_max_seconds: self.latency_creep_max,
            leak_bytes_per_request: self.leak_per_request,
            error_rate: self.error_rate,
            degenerate_rate: self.degenerate_rate,
            hang_rate: self.hang_rate,
            hang_seconds: self.hang_for.as_secs_f64(),
        };
        faults.validate().map_err(|e| format!("fault flags: {e}"))?;
        Ok(SimConfig {
            latency: self.latency,
            jitter: self.jitter,
            speed: self.speed,
            warmup: self.warmup,
            max_body_bytes: usize::try_from(self.max_body_bytes).unwrap_or(usize::MAX),
            control: SimControl::new(faults, self.leak_cap),
        })
    }
}

/// Runs `simulate-upstream` until SIGTERM/SIGINT; returns the exit code.
pub fn run_simulated_upstream(args: SimulateArgs) -> i32 {
    let config = match args.config() {
        Ok(config) => config,
        Err(reason) => {
            eprintln!("magma-monitor simulate-upstream: {reason}");
            return 2;
        }
    };
    let log = crate::config::LogArgs {
        log_format: crate::config::LogFormat::Text,
        log_level: args.log_level.clone(),
    };
    if let Err(reason) = crate::logging::init(&log) {
        eprintln!("magma-monitor simulate-upstream: {reason}");
        return 2;
    }
    let runtime = match crate::app::runtime("magma-monitor simulate-upstream") {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    runtime.block_on(async move {
        let listener = match tokio::net::TcpListener::bind(args.listen).await {
            Ok(listener) => listener,
            Err(error) => {
                eprintln!(
                    "magma-monitor simulate-upstream: cannot listen on {}: {error}",
                    args.listen
                );
                return 1;
            }
        };
        let address = listener
            .local_addr()
            .map(|a| a.to_string())
            .unwrap_or_default();
        // One line on stdout that scripts can wait for.
        println!("simulated Magma server listening on http://{address}");
        let (shutdown, signal) = crate::shutdown::Shutdown::new();
        let server = tokio::spawn(serve_simulated(listener, config, signal));
        crate::shutdown::termination_signal().await;
        shutdown.trigger();
        let _ = server.await;
        0
    })
}

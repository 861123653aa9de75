//! Anomaly detectors over metric series, and root-cause hints.
//!
//! - [`robust`]: spikes and drops (robust z-score, median/MAD);
//! - [`cusum`]: level shifts (two-sided CUSUM);
//! - [`trend`]: slow creep (Theil–Sen slope, Mann–Kendall test, downsampled);
//! - [`engine`]: runs them on every [`Signal`], opens/closes anomalies,
//!   exports `magma_anomaly_active` / `magma_anomalies_total`, logs;
//! - [`causes`]: ranks probable causes with evidence;
//! - [`prometheus_source`]: reads the signals back from the registry;
//! - [`events`]: what other parts of the sidecar report (model change, ...).
//!
//! Wiring: `AnomalyHandle::new(config)`, then `anomaly::run(handle,
//! PrometheusSource::new(prometheus_handle), interval, shutdown)` on its own
//! background thread (`background::spawn_runtime`); other
//! areas call `handle.push_event(Event::...)`; the admin server serves
//! `handle.report(..)` at `/api/anomalies`. See docs/anomaly.md.

pub mod causes;
pub mod cusum;
pub mod detector;
pub mod engine;
pub mod events;
pub mod health_events;
pub mod prometheus_source;
pub mod robust;
pub mod signals;
pub mod stats;
pub mod synthetic;
pub mod timefmt;
pub mod trend;

use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use clap::Args;

pub use detector::AnomalyKind;
pub use engine::{Anomaly, AnomalyChange, AnomalyConfig, AnomalyEngine, AnomalyReport, Severity};
pub use events::Event;
pub use prometheus_source::{PrometheusSource, RegistryText};
pub use signals::{Signal, SignalSnapshot};

use crate::shutdown::ShutdownSignal;
use crate::units::parse_duration;

/// Anomaly-detection flags.
#[derive(Debug, Clone, Args)]
#[command(next_help_heading = "Anomaly detection")]
pub struct AnomalyArgs {
    /// How often the anomaly engine reads its signals and runs its detectors.
    #[arg(long, env = "MAGMA_MONITOR_ANOMALY_INTERVAL", default_value = "10s", value_parser = parse_duration)]
    pub anomaly_interval: Duration,

    /// |robust z| above which a reading is a spike or drop.
    #[arg(long, env = "MAGMA_MONITOR_ANOMALY_Z_THRESHOLD", default_value_t = 6.0)]
    pub anomaly_z_threshold: f64,

    /// CUSUM decision interval h, in robust standard deviations.
    #[arg(long, env = "MAGMA_MONITOR_ANOMALY_CUSUM_H", default_value_t = 15.0)]
    pub anomaly_cusum_h: f64,

    /// Readings averaged into one point of the trend detector's history.
    #[arg(long, env = "MAGMA_MONITOR_ANOMALY_TREND_BUCKET", default_value_t = 30)]
    pub anomaly_trend_bucket: usize,

    /// Points of the trend detector's history (with the bucket: the trend window).
    #[arg(
        long,
        env = "MAGMA_MONITOR_ANOMALY_TREND_WINDOW",
        default_value_t = 288
    )]
    pub anomaly_trend_window: usize,
}

impl AnomalyArgs {
    pub fn validate(&self) -> Result<(), String> {
        if self.anomaly_interval < Duration::from_millis(100) {
            return Err("--anomaly-interval must be at least 100ms".into());
        }
        if self.anomaly_z_threshold.is_nan() || self.anomaly_z_threshold <= 0.0 {
            return Err("--anomaly-z-threshold must be positive".into());
        }
        if self.anomaly_cusum_h.is_nan() || self.anomaly_cusum_h <= 0.0 {
            return Err("--anomaly-cusum-h must be positive".into());
        }
        if self.anomaly_trend_bucket == 0 || !(3..=10_000).contains(&self.anomaly_trend_window) {
            return Err(
                "--anomaly-trend-bucket must be >= 1 and --anomaly-trend-window within 3..=10000"
                    .into(),
            );
        }
        Ok(())
    }

    pub fn config(&self) -> AnomalyConfig {
        let mut config = AnomalyConfig::default();
        config.robust.threshold = self.anomaly_z_threshold;
        config.robust.close_threshold = (self.anomaly_z_threshold / 2.0).max(1.0);
        config.cusum.h = self.anomaly_cusum_h;
        config.trend.bucket_points = self.anomaly_trend_bucket;
        config.trend.window_buckets = self.anomaly_trend_window;
        config.trend.min_buckets = config.trend.min_buckets.min(self.anomaly_trend_window);
        config
    }
}

/// The engine shared by the runner, the admin server and event producers.
pub struct AnomalyHandle {
    engine: Mutex<AnomalyEngine>,
}

impl AnomalyHandle {
    pub fn new(config: AnomalyConfig) -> Self {
        Self {
            engine: Mutex::new(AnomalyEngine::new(config)),
        }
    }

    /// Records an event now (model version change, upstream restart, ...).
    pub fn push_event(&self, event: Event) {
        self.push_event_at(unix_now(), event);
    }

    pub fn push_event_at(&self, at_unix: f64, event: Event) {
        if let Ok(mut engine) = self.engine.lock() {
            engine.push_event(at_unix, event);
        }
    }

    /// Runs the detectors on one snapshot.
    pub fn step(&self, snapshot: &SignalSnapshot) -> Vec<AnomalyChange> {
        self.engine
            .lock()
            .map(|mut engine| engine.step(snapshot))
            .unwrap_or_default()
    }

    /// Open anomalies and the `recent_limit` newest closed ones.
    pub fn report(&self, recent_limit: usize) -> Option<AnomalyReport> {
        self.engine.lock().ok().map(|e| e.report(recent_limit))
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

/// Every `interval`, reads a snapshot from `source` and steps the engine,
/// off the async workers (rendering and the trend statistics are CPU work),
/// until shutdown.
/// Exports every (signal, kind) series at 0 before anything is detected, so
/// alert rules and dashboards see "no anomaly" rather than "no data". The
/// set is closed: 15 signals by 4 kinds.
fn publish_quiet_series() {
    for signal in signals::Signal::ALL {
        for kind in detector::AnomalyKind::ALL {
            let labels = [("signal", signal.as_label()), ("kind", kind.as_label())];
            metrics::gauge!(crate::telemetry::ANOMALY_ACTIVE, &labels).set(0.0);
            metrics::counter!(crate::telemetry::ANOMALIES, &labels).increment(0);
        }
    }
}

pub async fn run<R: RegistryText>(
    handle: std::sync::Arc<AnomalyHandle>,
    mut source: PrometheusSource<R>,
    interval: Duration,
    mut shutdown: ShutdownSignal,
) {
    publish_quiet_series();
    let mut ticker = tokio::time::interval(interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.recv() => break,
        }
        // `app::serve` runs this on a background thread of its own
        // (`background::spawn_runtime`), so the step runs inline.
        let step = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let snapshot = source.snapshot(unix_now());
            handle.step(&snapshot);
        }));
        if step.is_err() {
            tracing::error!("anomaly engine step panicked; anomaly detection stopped");
            break;
        }
    }
}

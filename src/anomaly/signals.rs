//! The signals the anomaly engine watches, and one reading of all of them.

use serde::Serialize;

use super::detector::{Direction, ScaleFloor};

/// A watched signal (`signal` label values).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Signal {
    LatencyP50,
    LatencyP95,
    LatencyP99,
    ErrorRate,
    TimeoutRate,
    Qps,
    InFlight,
    TtfbP95,
    ModelRss,
    GpuMemory,
    GpuUtilization,
    GpuTemperature,
    DriftPValue,
    OutputAnomalyRate,
    FeedbackDownRate,
}

/// Units, for evidence text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SignalUnit {
    Seconds,
    Ratio,
    PerSecond,
    Count,
    Bytes,
    Celsius,
}

impl Signal {
    pub const ALL: [Signal; 15] = [
        Signal::LatencyP50,
        Signal::LatencyP95,
        Signal::LatencyP99,
        Signal::ErrorRate,
        Signal::TimeoutRate,
        Signal::Qps,
        Signal::InFlight,
        Signal::TtfbP95,
        Signal::ModelRss,
        Signal::GpuMemory,
        Signal::GpuUtilization,
        Signal::GpuTemperature,
        Signal::DriftPValue,
        Signal::OutputAnomalyRate,
        Signal::FeedbackDownRate,
    ];

    pub fn as_label(self) -> &'static str {
        match self {
            Signal::LatencyP50 => "latency_p50",
            Signal::LatencyP95 => "latency_p95",
            Signal::LatencyP99 => "latency_p99",
            Signal::ErrorRate => "error_rate",
            Signal::TimeoutRate => "timeout_rate",
            Signal::Qps => "qps",
            Signal::InFlight => "in_flight",
            Signal::TtfbP95 => "ttfb_p95",
            Signal::ModelRss => "model_rss",
            Signal::GpuMemory => "gpu_memory",
            Signal::GpuUtilization => "gpu_utilization",
            Signal::GpuTemperature => "gpu_temperature",
            Signal::DriftPValue => "drift_p_value",
            Signal::OutputAnomalyRate => "output_anomaly_rate",
            Signal::FeedbackDownRate => "feedback_down_rate",
        }
    }

    /// Human name used in evidence text.
    pub fn describe(self) -> &'static str {
        match self {
            Signal::LatencyP50 => "p50 latency",
            Signal::LatencyP95 => "p95 latency",
            Signal::LatencyP99 => "p99 latency",
            Signal::ErrorRate => "error rate",
            Signal::TimeoutRate => "timeout rate",
            Signal::Qps => "QPS",
            Signal::InFlight => "requests in flight",
            Signal::TtfbP95 => "p95 time to first byte",
            Signal::ModelRss => "model RSS",
            Signal::GpuMemory => "GPU memory used",
            Signal::GpuUtilization => "GPU utilisation",
            Signal::GpuTemperature => "GPU temperature",
            Signal::DriftPValue => "drift p-value",
            Signal::OutputAnomalyRate => "output anomaly rate",
            Signal::FeedbackDownRate => "thumbs-down rate",
        }
    }

    pub fn unit(self) -> SignalUnit {
        match self {
            Signal::LatencyP50 | Signal::LatencyP95 | Signal::LatencyP99 | Signal::TtfbP95 => {
                SignalUnit::Seconds
            }
            Signal::Qps => SignalUnit::PerSecond,
            Signal::InFlight => SignalUnit::Count,
            Signal::ModelRss => SignalUnit::Bytes,
            Signal::GpuTemperature => SignalUnit::Celsius,
            _ => SignalUnit::Ratio,
        }
    }

    /// The direction in which the signal gets worse (None: both matter).
    pub fn bad_direction(self) -> Option<Direction> {
        match self {
            Signal::Qps | Signal::InFlight | Signal::GpuUtilization => None,
            Signal::DriftPValue => Some(Direction::Down),
            _ => Some(Direction::Up),
        }
    }

    /// Whether the detectors run on this signal. Drift p-values are not
    /// detected on (the drift engine already tests them); they serve as
    /// evidence and events.
    pub fn detected(self) -> bool {
        !matches!(self, Signal::DriftPValue)
    }

    /// The smallest deviation that counts, per signal (see [`ScaleFloor`]).
    /// Chosen as the resolution below which a change is operationally
    /// meaningless: 10 ms of latency, 1 % of errors, half a request per
    /// second, 64 MiB of RSS, 1 % of GPU memory, 1 °C.
    pub fn floor(self) -> ScaleFloor {
        let (absolute, relative) = match self {
            Signal::LatencyP50 | Signal::LatencyP95 | Signal::LatencyP99 | Signal::TtfbP95 => {
                (0.01, 0.05)
            }
            Signal::ErrorRate | Signal::TimeoutRate => (0.01, 0.0),
            Signal::Qps => (0.5, 0.05),
            Signal::InFlight => (1.0, 0.05),
            Signal::ModelRss => (64.0 * 1024.0 * 1024.0, 0.005),
            Signal::GpuMemory => (0.01, 0.0),
            Signal::GpuUtilization => (0.05, 0.0),
            Signal::GpuTemperature => (1.0, 0.0),
            Signal::DriftPValue => (0.01, 0.0),
            Signal::OutputAnomalyRate => (0.02, 0.0),
            Signal::FeedbackDownRate => (0.05, 0.0),
        };
        ScaleFloor { absolute, relative }
    }

    /// Relative change over the trend window needed for a trend (see
    /// [`super::trend::TrendConfig::min_change_relative`]). Memory grows
    /// slowly relative to a 17 GB model, so RSS needs only 2 %.
    pub fn trend_min_relative(self) -> f64 {
        match self {
            Signal::ModelRss | Signal::GpuMemory => 0.02,
            _ => 0.25,
        }
    }
}

/// One reading of every signal; `None` where the signal is not available
/// (no traffic in the interval, no GPU, no upstream process found, ...).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SignalSnapshot {
    /// When the reading was taken, unix seconds.
    pub at_unix: f64,
    pub latency_p50: Option<f64>,
    pub latency_p95: Option<f64>,
    pub latency_p99: Option<f64>,
    /// Errors / requests over the interval.
    pub error_rate: Option<f64>,
    pub timeout_rate: Option<f64>,
    pub qps: Option<f64>,
    pub in_flight: Option<f64>,
    pub ttfb_p95: Option<f64>,
    /// Resident memory of the model process, bytes.
    pub model_rss_bytes: Option<f64>,
    /// GPU memory used / total (over the pod's GPUs).
    pub gpu_memory_ratio: Option<f64>,
    pub gpu_utilization: Option<f64>,
    pub gpu_temperature_celsius: Option<f64>,
    /// Smallest drift p-value of the last tests.
    pub drift_p_value: Option<f64>,
    /// Output anomalies / answers checked over the interval.
    pub output_anomaly_rate: Option<f64>,
    /// Thumbs-down / all ratings over the interval.
    pub feedback_down_rate: Option<f64>,

    // Inputs of derived events (not detected on).
    /// Start time of the model process (a change means it restarted).
    pub upstream_start_time: Option<f64>,
    /// Any GPU throttle reason active.
    pub gpu_throttled: Option<bool>,
    /// Any drift detector currently reports drift.
    pub drift_detected: Option<bool>,
    /// Samples dropped at the hand-off during the interval.
    pub sample_drops: Option<f64>,
}

impl SignalSnapshot {
    pub fn value(&self, signal: Signal) -> Option<f64> {
        let value = match signal {
            Signal::LatencyP50 => self.latency_p50,
            Signal::LatencyP95 => self.latency_p95,
            Signal::LatencyP99 => self.latency_p99,
            Signal::ErrorRate => self.error_rate,
            Signal::TimeoutRate => self.timeout_rate,
            Signal::Qps => self.qps,
            Signal::InFlight => self.in_flight,
            Signal::TtfbP95 => self.ttfb_p95,
            Signal::ModelRss => self.model_rss_bytes,
            Signal::GpuMemory => self.gpu_memory_ratio,
            Signal::GpuUtilization => self.gpu_utilization,
            Signal::GpuTemperature => self.gpu_temperature_celsius,
            Signal::DriftPValue => self.drift_p_value,
            Signal::OutputAnomalyRate => self.output_anomaly_rate,
            Signal::FeedbackDownRate => self.feedback_down_rate,
        };
        value.filter(|v| v.is_finite())
    }
}

/// Formats a value of `signal` for evidence text.
pub fn format_value(signal: Signal, value: f64) -> String {
    match signal.unit() {
        SignalUnit::Seconds if value.abs() < 1.0 => format!("{:.0} ms", value * 1000.0),
        SignalUnit::Seconds => format!("{value:.2} s"),
        SignalUnit::Ratio => format!("{:.1}%", value * 100.0),
        SignalUnit::PerSecond => format!("{value:.1}/s"),
        SignalUnit::Count => format!("{value:.0}"),
        SignalUnit::Bytes => format_bytes(value),
        SignalUnit::Celsius => format!("{value:.0} °C"),
    }
}

/// Bytes in MB/GB (decimal, as memory dashboards show them).
pub fn format_bytes(value: f64) -> String {
    let sign = if value < 0.0 { "-" } else { "" };
    let v = value.abs();
    if v >= 1e9 {
        format!("{sign}{:.2} GB", v / 1e9)
    } else {
        format!("{sign}{:.0} MB", v / 1e6)
    }
}

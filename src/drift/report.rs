//! What the engine publishes: the snapshot behind `/api/drift` and the
//! Prometheus series of every detector.

use serde::Serialize;

use crate::telemetry;

/// Closed label values of `detector`.
pub mod detector {
    pub const MMD: &str = "mmd";
    pub const KS: &str = "ks";
    pub const CHI2: &str = "chi2";
    pub const ONLINE_MMD: &str = "online_mmd";
}

/// Closed label values of `features`.
pub mod features {
    pub const INPUT: &str = "input";
    pub const OUTPUT: &str = "output";
    pub const CATEGORICAL: &str = "categorical";
}

/// A feature (or categorical field) and how far it moved.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FeatureMove {
    /// `input[3]`, `output[0]`, or a categorical field name.
    pub feature: String,
    /// KS statistic (numeric) or chi-square statistic (categorical).
    pub statistic: f64,
    pub p_value: f64,
}

/// The last result of one detector.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct DetectorReport {
    pub detector: &'static str,
    pub features: &'static str,
    pub at_unix_seconds: f64,
    pub p_value: f64,
    pub statistic: f64,
    pub threshold: f64,
    pub drift: bool,
    pub duration_seconds: f64,
    pub n_reference: usize,
    pub n_window: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sigma: Option<f64>,
    /// Features that moved most, largest statistic first (top k).
    pub moved_most: Vec<FeatureMove>,
}

/// Where the reference stands.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ReferenceInfo {
    /// collecting, ready
    pub state: &'static str,
    pub samples: usize,
    pub target_samples: usize,
    /// first_samples, file, window, upload (and the state file it was restored from)
    pub source: String,
    pub restored_from_state: bool,
    pub created_unix_seconds: Option<f64>,
    pub input_features: usize,
    pub output_features: usize,
    pub categorical_fields: Vec<String>,
    pub persisted: bool,
}

/// The state of the online detector.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct OnlineReport {
    pub window: usize,
    pub expected_run_time: f64,
    pub updates: u64,
    pub statistic: f64,
    pub threshold: f64,
    pub drift: bool,
    pub detections: u64,
    pub sigma: f64,
}

/// Everything `/api/drift` shows.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DriftSnapshot {
    pub enabled: bool,
    pub reference: ReferenceInfo,
    pub window_samples: usize,
    pub window_capacity: usize,
    pub samples_rejected: u64,
    pub tests_run: u64,
    pub last_test_unix_seconds: Option<f64>,
    pub detectors: Vec<DetectorReport>,
    pub online: Option<OnlineReport>,
    /// The last problem met (a reference that could not be replaced, ...).
    pub last_error: Option<String>,
}

/// Records one detector result in the metric series.
pub fn record_metrics(report: &DetectorReport) {
    let labels = [("detector", report.detector), ("features", report.features)];
    metrics::gauge!(telemetry::DRIFT_P_VALUE, &labels).set(report.p_value);
    metrics::gauge!(telemetry::DRIFT_STATISTIC, &labels).set(report.statistic);
    metrics::gauge!(telemetry::DRIFT_THRESHOLD, &labels).set(report.threshold);
    metrics::gauge!(telemetry::DRIFT_DETECTED, &labels).set(f64::from(u8::from(report.drift)));
    count_test(report.detector, report.drift);
    metrics::histogram!(telemetry::DRIFT_TEST_DURATION, "detector" => report.detector)
        .record(report.duration_seconds);
}

/// Counts one test by detector and result.
pub fn count_test(detector: &'static str, drift: bool) {
    let result = if drift { "drift" } else { "no_drift" };
    metrics::counter!(telemetry::DRIFT_TESTS, "detector" => detector, "result" => result)
        .increment(1);
}

/// Counts a test that could not run.
pub fn count_error(detector: &'static str) {
    metrics::counter!(telemetry::DRIFT_TESTS, "detector" => detector, "result" => "error")
        .increment(1);
}

/// Records the online detector's state.
pub fn record_online(report: &OnlineReport) {
    let labels = [
        ("detector", detector::ONLINE_MMD),
        ("features", features::INPUT),
    ];
    metrics::gauge!(telemetry::DRIFT_STATISTIC, &labels).set(report.statistic);
    metrics::gauge!(telemetry::DRIFT_THRESHOLD, &labels).set(report.threshold);
    metrics::gauge!(telemetry::DRIFT_DETECTED, &labels).set(f64::from(u8::from(report.drift)));
    count_test(detector::ONLINE_MMD, report.drift);
}

/// Records the sizes of the reference and the window.
pub fn record_sizes(reference: usize, window: usize) {
    metrics::gauge!(telemetry::DRIFT_REFERENCE_SAMPLES).set(reference as f64);
    metrics::gauge!(telemetry::DRIFT_WINDOW_SAMPLES).set(window as f64);
}

/// Counts a sample by what became of it: reference, window, rejected.
pub fn count_sample(outcome: &'static str) {
    metrics::counter!(telemetry::DRIFT_SAMPLES, "outcome" => outcome).increment(1);
}

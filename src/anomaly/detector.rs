//! What the detectors report, and the per-signal scale they need.

use serde::Serialize;

/// The kinds of anomaly (`kind` label values of `magma_anomaly_*`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum AnomalyKind {
    /// Short excursion above the baseline (robust z-score).
    Spike,
    /// Short excursion below the baseline (robust z-score).
    Drop,
    /// Sustained change of level (CUSUM).
    LevelShift,
    /// Slow monotone creep (Theil–Sen slope with a Mann–Kendall test).
    Trend,
}

impl AnomalyKind {
    pub const ALL: [AnomalyKind; 4] = [
        AnomalyKind::Spike,
        AnomalyKind::Drop,
        AnomalyKind::LevelShift,
        AnomalyKind::Trend,
    ];

    pub fn as_label(self) -> &'static str {
        match self {
            AnomalyKind::Spike => "spike",
            AnomalyKind::Drop => "drop",
            AnomalyKind::LevelShift => "level_shift",
            AnomalyKind::Trend => "trend",
        }
    }
}

/// Up or down relative to the baseline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
}

/// A detector's verdict on one new point.
#[derive(Debug, Clone, PartialEq)]
pub enum Transition {
    Opened(Finding),
    Closed { reason: &'static str },
}

/// What a detector found when it opened.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    pub kind: AnomalyKind,
    pub direction: Direction,
    /// The value that tripped the detector (for trends: the latest level).
    pub value: f64,
    /// The baseline level it is compared with.
    pub baseline: f64,
    /// Detector statistic: |z| (robust z), the CUSUM sum, or the Mann–Kendall |Z|.
    pub score: f64,
    /// Estimated start (unix seconds): the first point of the excursion, the
    /// CUSUM change-point estimate, or the start of the trend window.
    pub started_unix: f64,
    /// Trends only: Theil–Sen slope in units per second.
    pub slope_per_second: Option<f64>,
}

/// The smallest deviation that counts for a signal: the scale used by a
/// detector is never below `max(absolute, relative·|baseline|)`. This keeps
/// a flat series (MAD = 0) from turning noise-free jitter into infinite z.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScaleFloor {
    pub absolute: f64,
    pub relative: f64,
}

impl ScaleFloor {
    pub fn apply(&self, scale: f64, baseline: f64) -> f64 {
        scale
            .max(self.absolute)
            .max(self.relative * baseline.abs())
            .max(f64::MIN_POSITIVE)
    }
}

//! Slow-creep detector: Theil–Sen slope over a long, downsampled window with
//! a Mann–Kendall significance test.
//!
//! Points are averaged into buckets of `bucket_points` (default 30: 5 min at a
//! 10 s interval); the last `window_buckets` bucket means (default 288: 24 h)
//! are kept. Each time a bucket closes and at least `min_buckets` exist, the
//! detector computes the Mann–Kendall Z and the Theil–Sen slope of the window.
//! A trend opens when
//!
//! 1. Z is beyond ±`z_threshold` (default 5: a one-sided p of about 3·10⁻⁷ per
//!    evaluation, strict because evaluations repeat and real series are
//!    autocorrelated), and
//! 2. the change the slope implies over the window, |slope|·span, exceeds
//!    `max(min_change_relative·|median|, floor.absolute·min_change_floors)`,
//!    so a statistically significant but negligible drift does not alarm, and
//! 3. the direction is one the signal cares about (when restricted).
//!
//! It closes when Z falls below `z_close` (default 2) or the implied change
//! falls below half the minimum. Memory: `window_buckets` pairs of f64.

use std::collections::VecDeque;

use super::detector::{AnomalyKind, Direction, Finding, ScaleFloor, Transition};
use super::stats::{mann_kendall_z, median, theil_sen_slope};

/// Parameters of the trend detector.
#[derive(Debug, Clone, Copy)]
pub struct TrendConfig {
    pub bucket_points: usize,
    pub window_buckets: usize,
    pub min_buckets: usize,
    pub z_threshold: f64,
    pub z_close: f64,
    /// Minimum implied change over the window, relative to the window's median.
    pub min_change_relative: f64,
    /// Minimum implied change in multiples of the signal's absolute floor.
    pub min_change_floors: f64,
}

impl Default for TrendConfig {
    fn default() -> Self {
        Self {
            bucket_points: 30,
            window_buckets: 288,
            min_buckets: 24,
            z_threshold: 5.0,
            z_close: 2.0,
            min_change_relative: 0.25,
            min_change_floors: 4.0,
        }
    }
}

/// The statistics of a window.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TrendStats {
    pub z: f64,
    pub slope_per_second: f64,
    pub median: f64,
    pub first_unix: f64,
    pub last_unix: f64,
    pub last_level: f64,
}

impl TrendStats {
    /// Implied change over the window span.
    pub fn change(&self) -> f64 {
        self.slope_per_second * (self.last_unix - self.first_unix)
    }
}

/// Computes the trend statistics of (unix time, value) points.
pub fn trend_stats(points: &[(f64, f64)]) -> Option<TrendStats> {
    if points.len() < 3 {
        return None;
    }
    let values: Vec<f64> = points.iter().map(|p| p.1).collect();
    Some(TrendStats {
        z: mann_kendall_z(&values),
        slope_per_second: theil_sen_slope(points)?,
        median: median(&values)?,
        first_unix: points[0].0,
        last_unix: points[points.len() - 1].0,
        last_level: values[values.len() - 1],
    })
}

/// Downsampled trend detector for one signal.
#[derive(Debug, Clone)]
pub struct Trend {
    config: TrendConfig,
    floor: ScaleFloor,
    /// Only trends in this direction open (None: both).
    direction: Option<Direction>,
    sum: f64,
    count: usize,
    bucket_start: f64,
    buckets: VecDeque<(f64, f64)>,
    active: bool,
}

impl Trend {
    pub fn new(config: TrendConfig, floor: ScaleFloor, direction: Option<Direction>) -> Self {
        Self {
            config,
            floor,
            direction,
            sum: 0.0,
            count: 0,
            bucket_start: 0.0,
            buckets: VecDeque::with_capacity(config.window_buckets),
            active: false,
        }
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// The downsampled history: (bucket middle, mean), oldest first.
    pub fn buckets(&self) -> &VecDeque<(f64, f64)> {
        &self.buckets
    }

    pub fn update(&mut self, at_unix: f64, x: f64) -> Option<Transition> {
        if self.count == 0 {
            self.bucket_start = at_unix;
        }
        self.sum += x;
        self.count += 1;
        if self.count < self.config.bucket_points.max(1) {
            return None;
        }
        let middle = (self.bucket_start + at_unix) / 2.0;
        let mean = self.sum / self.count as f64;
        self.sum = 0.0;
        self.count = 0;
        if self.buckets.len() >= self.config.window_buckets.max(3) {
            self.buckets.pop_front();
        }
        self.buckets.push_back((middle, mean));
        if self.buckets.len() < self.config.min_buckets.max(3) {
            return None;
        }
        let points: Vec<(f64, f64)> = self.buckets.iter().copied().collect();
        let stats = trend_stats(&points)?;
        let minimum = (self.config.min_change_relative * stats.median.abs())
            .max(self.config.min_change_floors * self.floor.absolute);
        let change = stats.change();
        if self.active {
            if stats.z.abs() < self.config.z_close || change.abs() < minimum / 2.0 {
                self.active = false;
                return Some(Transition::Closed {
                    reason: "trend no longer significant",
                });
            }
            return None;
        }
        let direction = if stats.z > 0.0 { Direction::Up } else { Direction::Down };
        let wanted = self.direction.is_none_or(|d| d == direction);
        let same_sign = (change > 0.0) == (stats.z > 0.0);
        if stats.z.abs() > self.config.z_threshold && change.abs() > minimum && wanted && same_sign {
            self.active = true;
            return Some(Transition::Opened(Finding {
                kind: AnomalyKind::Trend,
                direction,
                value: stats.last_level,
                baseline: points[0].1,
                score: stats.z.abs(),
                started_unix: stats.first_unix,
                slope_per_second: Some(stats.slope_per_second),
            }));
        }
        None
    }
}

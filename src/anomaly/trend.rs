//! Slow-creep detector: Theil–Sen slope over a long, downsampled window with
//! a Mann–Kendall significance test.
//!
//! Points are averaged into buckets of `bucket_points` (default 30: 5 min at a
//! 10 s interval); the last `window_buckets` bucket means (default 288: 24 h)
//! are kept. Each time a bucket closes and at least `min_buckets` exist, the
//! detector tests several windows: the last `min_buckets`, twice that, and so
//! on up to the whole history (so a recent onset is found without waiting for
//! it to fill the longest window); each window is averaged down to at most 96
//! points, which keeps the O(n²) statistics cheap. A trend opens when, for
//! some window,
//!
//! 1. the Mann–Kendall Z is beyond ±`z_threshold` (default 5: a one-sided p of
//!    about 3·10⁻⁷ per test, strict because tests repeat and real series are
//!    autocorrelated), and
//! 2. the change the Theil–Sen slope implies over the window, |slope|·span,
//!    exceeds `max(min_change_relative·|median|, floor.absolute·min_change_floors)`,
//!    so a statistically significant but negligible drift does not alarm, and
//! 3. the direction is one the signal cares about (when restricted).
//!
//! It closes when no window keeps |Z| ≥ `z_close` (default 2) with at least
//! half the minimum change. Memory: `window_buckets` pairs of f64.

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
    pub first_level: f64,
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
        first_level: values[0],
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
        if self.active {
            let still = self.best_window(0.5).is_some_and(|(stats, minimum)| {
                stats.z.abs() >= self.config.z_close && stats.change().abs() >= minimum / 2.0
            });
            if !still {
                self.active = false;
                return Some(Transition::Closed {
                    reason: "trend no longer significant",
                });
            }
            return None;
        }
        let (stats, minimum) = self.best_window(1.0)?;
        if stats.z.abs() > self.config.z_threshold && stats.change().abs() > minimum {
            self.active = true;
            let direction = if stats.z > 0.0 {
                Direction::Up
            } else {
                Direction::Down
            };
            return Some(Transition::Opened(Finding {
                kind: AnomalyKind::Trend,
                direction,
                value: stats.last_level,
                baseline: stats.first_level,
                score: stats.z.abs(),
                started_unix: stats.first_unix,
                slope_per_second: Some(stats.slope_per_second),
            }));
        }
        None
    }

    /// Evaluates the windows of the last `min_buckets`, 2·`min_buckets`, ...
    /// buckets up to the whole history (each reduced to at most
    /// `MAX_POINTS_PER_TEST` points by averaging adjacent buckets, which keeps
    /// the O(n²) statistics cheap), and returns the most significant one in
    /// the signal's bad direction whose implied change clears
    /// `change_fraction` of the minimum, with that minimum. Several scales let a recent onset be found without
    /// waiting for it to fill the longest window.
    fn best_window(&self, change_fraction: f64) -> Option<(TrendStats, f64)> {
        let total = self.buckets.len();
        let mut length = self.config.min_buckets.max(3);
        let mut best: Option<(TrendStats, f64)> = None;
        loop {
            let length_now = length.min(total);
            let window: Vec<(f64, f64)> = self
                .buckets
                .iter()
                .skip(total - length_now)
                .copied()
                .collect();
            if let Some(stats) = trend_stats(&reduce(&window, MAX_POINTS_PER_TEST)) {
                let minimum = (self.config.min_change_relative * stats.median.abs())
                    .max(self.config.min_change_floors * self.floor.absolute);
                let direction = if stats.z > 0.0 {
                    Direction::Up
                } else {
                    Direction::Down
                };
                let wanted = self.direction.is_none_or(|d| d == direction);
                let consistent = (stats.change() > 0.0) == (stats.z > 0.0);
                let clears = stats.change().abs() >= minimum * change_fraction;
                if wanted
                    && consistent
                    && clears
                    && best.is_none_or(|(b, _)| stats.z.abs() > b.z.abs())
                {
                    best = Some((stats, minimum));
                }
            }
            if length_now == total {
                break;
            }
            length = length.saturating_mul(2);
        }
        best
    }
}

/// Most points one trend test looks at.
const MAX_POINTS_PER_TEST: usize = 96;

/// Averages adjacent points so that at most `max` remain.
fn reduce(points: &[(f64, f64)], max: usize) -> Vec<(f64, f64)> {
    let group = points.len().div_ceil(max.max(1)).max(1);
    points
        .chunks(group)
        .map(|chunk| {
            let n = chunk.len() as f64;
            (
                chunk.iter().map(|p| p.0).sum::<f64>() / n,
                chunk.iter().map(|p| p.1).sum::<f64>() / n,
            )
        })
        .collect()
}

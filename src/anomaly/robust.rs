//! Spike / drop detector: robust z-score against a rolling median and MAD.
//!
//! z = (x − median(W)) / max(1.4826·MAD(W), floor), W the last `window`
//! points (Hampel filter; Pearson 2002, "Outliers in process modeling and
//! identification"). It opens after `confirm` consecutive points beyond
//! `threshold` in the same direction, and closes after `calm` consecutive
//! points back within `close_threshold`. Every point joins the window after it
//! is scored, so a persistent new level is absorbed after about window/2
//! points (then the CUSUM detector reports it as a level shift).
//!
//! Memory: `window` values.

use std::collections::VecDeque;

use super::detector::{AnomalyKind, Direction, Finding, ScaleFloor, Transition};
use super::stats::median_mad;

/// Parameters of the robust z-score detector.
#[derive(Debug, Clone, Copy)]
pub struct RobustZConfig {
    /// Points in the rolling baseline (default 60: 10 min at a 10 s interval).
    pub window: usize,
    /// Points needed before scoring starts.
    pub min_points: usize,
    /// |z| above which a point is anomalous (default 6).
    pub threshold: f64,
    /// Consecutive anomalous points needed to open (default 2).
    pub confirm: usize,
    /// |z| below which a point is calm again (default 3).
    pub close_threshold: f64,
    /// Consecutive calm points needed to close (default 3).
    pub calm: usize,
}

impl Default for RobustZConfig {
    fn default() -> Self {
        Self {
            window: 60,
            min_points: 20,
            threshold: 6.0,
            confirm: 2,
            close_threshold: 3.0,
            calm: 3,
        }
    }
}

/// Rolling robust z-score detector for one signal.
#[derive(Debug, Clone)]
pub struct RobustZ {
    config: RobustZConfig,
    floor: ScaleFloor,
    window: VecDeque<f64>,
    active: bool,
    streak: usize,
    streak_direction: Option<Direction>,
    streak_start: f64,
    calm: usize,
}

impl RobustZ {
    pub fn new(config: RobustZConfig, floor: ScaleFloor) -> Self {
        Self {
            config,
            floor,
            window: VecDeque::with_capacity(config.window),
            active: false,
            streak: 0,
            streak_direction: None,
            streak_start: 0.0,
            calm: 0,
        }
    }

    pub fn is_active(&self) -> bool {
        self.active
    }

    /// Scores `x` observed at `at_unix`, then adds it to the window.
    pub fn update(&mut self, at_unix: f64, x: f64) -> Option<Transition> {
        let transition = self.score(at_unix, x);
        if self.window.len() == self.config.window.max(1) {
            self.window.pop_front();
        }
        self.window.push_back(x);
        transition
    }

    fn score(&mut self, at_unix: f64, x: f64) -> Option<Transition> {
        if self.window.len() < self.config.min_points {
            return None;
        }
        let values: Vec<f64> = self.window.iter().copied().collect();
        let (median, mad_sigma) = median_mad(&values)?;
        let scale = self.floor.apply(mad_sigma, median);
        let z = (x - median) / scale;
        if self.active {
            if z.abs() < self.config.close_threshold {
                self.calm += 1;
                if self.calm >= self.config.calm {
                    self.active = false;
                    self.calm = 0;
                    self.streak = 0;
                    return Some(Transition::Closed {
                        reason: "back within the baseline band",
                    });
                }
            } else {
                self.calm = 0;
            }
            return None;
        }
        if z.abs() <= self.config.threshold {
            self.streak = 0;
            self.streak_direction = None;
            return None;
        }
        let direction = if z > 0.0 {
            Direction::Up
        } else {
            Direction::Down
        };
        if self.streak_direction != Some(direction) {
            self.streak = 0;
            self.streak_direction = Some(direction);
            self.streak_start = at_unix;
        }
        self.streak += 1;
        if self.streak < self.config.confirm.max(1) {
            return None;
        }
        self.active = true;
        self.calm = 0;
        Some(Transition::Opened(Finding {
            kind: match direction {
                Direction::Up => AnomalyKind::Spike,
                Direction::Down => AnomalyKind::Drop,
            },
            direction,
            value: x,
            baseline: median,
            score: z.abs(),
            started_unix: self.streak_start,
            slope_per_second: None,
        }))
    }
}

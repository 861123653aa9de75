//! Level-shift detector: two-sided tabular CUSUM (Page 1954; Montgomery,
//! "Introduction to Statistical Quality Control", ch. 9) on robustly
//! standardised, clipped points.
//!
//! z_t = clip((x_t − μ)/σ, ±clip) with μ, σ the median and 1.4826·MAD of a
//! reference window (floored per signal);
//! S⁺_t = max(0, S⁺_{t−1} + z_t − k), S⁻_t = max(0, S⁻_{t−1} − z_t − k);
//! an alarm when S⁺ or S⁻ exceeds h. The change point is estimated as the
//! last time the alarming sum was 0. With k = 0.75 and h = 15 a shift of 3σ
//! or more is found after about (h + 1.166)/(3 − k) ≈ 7 points, a 2.6σ shift
//! after about 9. Clipping at ±3 means a spike of up to six points cannot
//! reach h (spikes are the spike detector's job). Siegmund's approximation
//! promises an in-control run length far beyond any deployment, but the
//! median and MAD of a finite reference window are themselves noisy, and a
//! rolling reference lags slow daily cycles; both really set the false-alarm
//! rate, which was measured (docs/anomaly.md) on log-normal latency noise:
//! 60 reference points, k = 0.5, h = 10: about 2 alarms per signal-day;
//! 120 points, h = 15: 0.023; 360 points, h = 18: none in 300 signal-days but
//! 3.5 per day on a ±30 % daily cycle; 360 points, k = 0.75, h = 15 (the
//! defaults): none in 300 signal-days, 1 in 30 days of daily cycle.
//!
//! While an alarm is open the reference is frozen. It closes when `calm`
//! consecutive points are back within ±`return_band` σ of the old level, or,
//! after `accept_after` points at the new level, it accepts that level as the
//! new normal: it closes and restarts from the recent points.
//!
//! Memory: two windows of `reference` values.

use std::collections::VecDeque;

use super::detector::{AnomalyKind, Direction, Finding, ScaleFloor, Transition};
use super::stats::median_mad;

/// Parameters of the CUSUM detector.
#[derive(Debug, Clone, Copy)]
pub struct CusumConfig {
    /// Points in the reference window (default 360: 1 h at 10 s).
    pub reference: usize,
    /// Points needed before the sums start (default 30).
    pub min_points: usize,
    /// Allowance k in σ (default 0.75: tuned to shifts of about 1.5σ and more).
    pub k: f64,
    /// Decision interval h in σ (default 15).
    pub h: f64,
    /// Standardised points are clipped to ±clip (default 3).
    pub clip: f64,
    /// A point within ±return_band σ of the old level counts as returned (default 1).
    pub return_band: f64,
    /// Consecutive returned points needed to close (default 6).
    pub calm: usize,
    /// Points after which a persistent new level is accepted (default 360: 1 h at 10 s).
    pub accept_after: usize,
}

impl Default for CusumConfig {
    fn default() -> Self {
        Self {
            reference: 360,
            min_points: 30,
            k: 0.75,
            h: 15.0,
            clip: 3.0,
            return_band: 1.0,
            calm: 6,
            accept_after: 360,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Alarm {
    median: f64,
    scale: f64,
    points: usize,
}

/// Two-sided CUSUM for one signal.
#[derive(Debug, Clone)]
pub struct Cusum {
    config: CusumConfig,
    floor: ScaleFloor,
    reference: VecDeque<f64>,
    recent: VecDeque<f64>,
    upper: f64,
    lower: f64,
    upper_zero_at: f64,
    lower_zero_at: f64,
    alarm: Option<Alarm>,
    calm: usize,
}

impl Cusum {
    pub fn new(config: CusumConfig, floor: ScaleFloor) -> Self {
        Self {
            config,
            floor,
            reference: VecDeque::with_capacity(config.reference),
            recent: VecDeque::with_capacity(config.reference),
            upper: 0.0,
            lower: 0.0,
            upper_zero_at: 0.0,
            lower_zero_at: 0.0,
            alarm: None,
            calm: 0,
        }
    }

    pub fn is_active(&self) -> bool {
        self.alarm.is_some()
    }

    pub fn update(&mut self, at_unix: f64, x: f64) -> Option<Transition> {
        push_capped(&mut self.recent, x, self.config.reference);
        if let Some(alarm) = self.alarm.as_mut() {
            alarm.points += 1;
            let z = (x - alarm.median) / alarm.scale;
            if z.abs() <= self.config.return_band {
                self.calm += 1;
            } else {
                self.calm = 0;
            }
            let accept = alarm.points >= self.config.accept_after;
            if self.calm >= self.config.calm || accept {
                self.alarm = None;
                self.calm = 0;
                self.upper = 0.0;
                self.lower = 0.0;
                self.upper_zero_at = at_unix;
                self.lower_zero_at = at_unix;
                if accept {
                    self.reference = self.recent.clone();
                    return Some(Transition::Closed {
                        reason: "new level accepted as normal",
                    });
                }
                return Some(Transition::Closed {
                    reason: "back at the previous level",
                });
            }
            return None;
        }
        if self.reference.len() < self.config.min_points {
            push_capped(&mut self.reference, x, self.config.reference);
            self.upper_zero_at = at_unix;
            self.lower_zero_at = at_unix;
            return None;
        }
        let values: Vec<f64> = self.reference.iter().copied().collect();
        let (median, mad_sigma) = median_mad(&values)?;
        let scale = self.floor.apply(mad_sigma, median);
        let z = ((x - median) / scale).clamp(-self.config.clip, self.config.clip);
        if self.upper == 0.0 {
            self.upper_zero_at = at_unix;
        }
        if self.lower == 0.0 {
            self.lower_zero_at = at_unix;
        }
        self.upper = (self.upper + z - self.config.k).max(0.0);
        self.lower = (self.lower - z - self.config.k).max(0.0);
        let direction = if self.upper > self.config.h {
            Some((Direction::Up, self.upper, self.upper_zero_at))
        } else if self.lower > self.config.h {
            Some((Direction::Down, self.lower, self.lower_zero_at))
        } else {
            None
        };
        match direction {
            None => {
                push_capped(&mut self.reference, x, self.config.reference);
                None
            }
            Some((direction, sum, started)) => {
                self.alarm = Some(Alarm {
                    median,
                    scale,
                    points: 0,
                });
                self.calm = 0;
                Some(Transition::Opened(Finding {
                    kind: AnomalyKind::LevelShift,
                    direction,
                    value: x,
                    baseline: median,
                    score: sum,
                    started_unix: started,
                    slope_per_second: None,
                }))
            }
        }
    }
}

fn push_capped(buffer: &mut VecDeque<f64>, x: f64, cap: usize) {
    if buffer.len() >= cap.max(1) {
        buffer.pop_front();
    }
    buffer.push_back(x);
}

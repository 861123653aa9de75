//! Synthetic signal series with known anomalies, for tests, the measured
//! false-alarm rates in docs/anomaly.md, and demos. Deterministic per seed.

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

use super::detector::AnomalyKind;
use super::engine::{AnomalyChange, AnomalyConfig, AnomalyEngine};
use super::signals::{Signal, SignalSnapshot};

/// The shape added to a clean series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Shape {
    /// Clean noise only.
    None,
    /// `points` readings multiplied by `factor`, from `at`.
    Spike {
        at: usize,
        points: usize,
        factor: f64,
    },
    /// From `at` on, the level is multiplied by `factor`.
    Step { at: usize, factor: f64 },
    /// From `at` on, the level grows linearly by `per_point` (absolute units).
    Creep { at: usize, per_point: f64 },
    /// A daily cycle of relative amplitude `amplitude` (24 h period), no anomaly.
    Daily {
        amplitude: f64,
        points_per_day: usize,
    },
}

/// Noise model of a clean series.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Noise {
    /// Multiplicative log-normal noise: x·exp(σ·N(0,1)) (latencies, rates).
    LogNormal { sigma: f64 },
    /// Additive normal noise of standard deviation `sd` (memory, temperature).
    Normal { sd: f64 },
}

/// Generates `len` readings around `level`.
pub fn series(len: usize, level: f64, noise: Noise, shape: Shape, seed: u64) -> Vec<f64> {
    let mut rng = StdRng::seed_from_u64(seed);
    (0..len)
        .map(|i| {
            let mut base = level;
            match shape {
                Shape::None => {}
                Shape::Spike { at, points, factor } if i >= at && i < at + points => base *= factor,
                Shape::Spike { .. } => {}
                Shape::Step { at, factor } if i >= at => base *= factor,
                Shape::Step { .. } => {}
                Shape::Creep { at, per_point } if i >= at => base += per_point * (i - at) as f64,
                Shape::Creep { .. } => {}
                Shape::Daily {
                    amplitude,
                    points_per_day,
                } => {
                    let phase = std::f64::consts::TAU * i as f64 / points_per_day.max(1) as f64;
                    base *= 1.0 + amplitude * phase.sin();
                }
            }
            let z = standard_normal(&mut rng);
            match noise {
                Noise::LogNormal { sigma } => base * (sigma * z).exp(),
                Noise::Normal { sd } => base + sd * z,
            }
        })
        .collect()
}

/// Box–Muller transform of two uniform draws.
fn standard_normal(rng: &mut StdRng) -> f64 {
    let u1: f64 = rng.random::<f64>().max(f64::MIN_POSITIVE);
    let u2: f64 = rng.random();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// An anomaly opened during a replay: reading index, kind.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Opened {
    pub index: usize,
    pub kind: AnomalyKind,
}

/// Replays `values` of `signal` through a fresh engine, one reading every
/// `interval_seconds`, and returns what opened.
pub fn replay(
    signal: Signal,
    values: &[f64],
    interval_seconds: f64,
    config: &AnomalyConfig,
) -> Vec<Opened> {
    let mut engine = AnomalyEngine::new(config.clone());
    let start = 1_700_000_000.0;
    let mut opened = Vec::new();
    for (index, value) in values.iter().enumerate() {
        let snapshot = single(signal, start + index as f64 * interval_seconds, *value);
        for change in engine.step(&snapshot) {
            if let AnomalyChange::Opened(anomaly) = change {
                opened.push(Opened {
                    index,
                    kind: anomaly.kind,
                });
            }
        }
    }
    opened
}

/// A snapshot holding one signal's value.
pub fn single(signal: Signal, at_unix: f64, value: f64) -> SignalSnapshot {
    let mut s = SignalSnapshot {
        at_unix,
        ..SignalSnapshot::default()
    };
    let slot = match signal {
        Signal::LatencyP50 => &mut s.latency_p50,
        Signal::LatencyP95 => &mut s.latency_p95,
        Signal::LatencyP99 => &mut s.latency_p99,
        Signal::ErrorRate => &mut s.error_rate,
        Signal::TimeoutRate => &mut s.timeout_rate,
        Signal::Qps => &mut s.qps,
        Signal::InFlight => &mut s.in_flight,
        Signal::TtfbP95 => &mut s.ttfb_p95,
        Signal::ModelRss => &mut s.model_rss_bytes,
        Signal::GpuMemory => &mut s.gpu_memory_ratio,
        Signal::GpuUtilization => &mut s.gpu_utilization,
        Signal::GpuTemperature => &mut s.gpu_temperature_celsius,
        Signal::DriftPValue => &mut s.drift_p_value,
        Signal::OutputAnomalyRate => &mut s.output_anomaly_rate,
        Signal::FeedbackDownRate => &mut s.feedback_down_rate,
    };
    *slot = Some(value);
    s
}

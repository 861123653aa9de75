//! Root-cause hints: when an anomaly opens, rank what probably caused it.
//!
//! Each candidate gets a score in [0, 1] from simple, documented evidence:
//!
//! | cause | evidence | score |
//! |---|---|---|
//! | `memory_leak` | model RSS has a significant upward trend (Mann–Kendall Z > 3) growing by more than max(1 % of its level, 64 MiB) over the window | 0.55 + 0.25·min(1, Z/8) + 0.2·max(0, ρ) |
//! | `gpu_memory_pressure` | GPU memory ≥ 95 % used now | 0.5 + 6·(used − 0.95), at most 0.8 |
//! | `gpu_throttling` | a throttle event near the start, or a GPU temperature anomaly open | 0.6·p / 0.5 |
//! | `load_increase` | QPS (or in-flight) median since the start ≥ 1.5× the median before | 0.3 + 0.3·min(1,(r−1)/2) + 0.3·max(0, ρ) |
//! | `model_change` | model version/config change event near the start | 0.85·p |
//! | `upstream_restart` | model server restart event near the start | 0.7·p |
//! | `input_drift` | drift event near the start, or drift p-value < 0.05 now | 0.5·p / 0.4 |
//! | `sidecar_restart` | magma-monitor started near the start | 0.3·p |
//! | `sample_drops` | samples dropped near the start | 0.2·p |
//! | `correlated_signal` | another signal has an anomaly open | 0.3 + 0.3·abs(ρ) |
//!
//! ρ is the Spearman correlation of the two signals over the raw history
//! (last `history_points` readings); p = exp(−|t_event − t_start| / 10 min)
//! for events between 30 min before the start and now. Causes are ranked by
//! score; the top ones go into the anomaly's evidence line.

use std::collections::VecDeque;

use serde::Serialize;

use super::detector::AnomalyKind;
use super::events::{Event, EventLog};
use super::signals::{format_bytes, format_value, Signal, SignalSnapshot};
use super::stats::{median, spearman};
use super::timefmt::hh_mm;
use super::trend::trend_stats;

/// Probable causes (closed set).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum CauseKind {
    MemoryLeak,
    GpuMemoryPressure,
    GpuThrottling,
    LoadIncrease,
    ModelChange,
    UpstreamRestart,
    InputDrift,
    SidecarRestart,
    SampleDrops,
    CorrelatedSignal,
}

/// One ranked cause.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Cause {
    pub cause: CauseKind,
    pub score: f64,
    pub evidence: String,
}

/// A row of the raw history: time and every signal's value.
pub type HistoryRow = (f64, [Option<f64>; Signal::ALL.len()]);

/// What the cause ranking may look at.
pub struct CauseContext<'a> {
    pub now: f64,
    pub history: &'a VecDeque<HistoryRow>,
    /// Downsampled (time, mean) series of model RSS (the trend detector's buckets).
    pub rss_buckets: &'a VecDeque<(f64, f64)>,
    /// Open anomalies on other signals: (signal, kind, started).
    pub open: &'a [(Signal, AnomalyKind, f64)],
    pub events: &'a EventLog,
    pub latest: &'a SignalSnapshot,
}

/// Events this long before an anomaly's start can still explain it.
const EVENT_LOOKBACK_SECONDS: f64 = 1800.0;
/// Decay of an event's weight with its distance from the start.
const EVENT_DECAY_SECONDS: f64 = 600.0;

/// Ranks the probable causes of an anomaly on `signal` that started at `started`.
pub fn rank(context: &CauseContext<'_>, signal: Signal, started: f64) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(cause) = memory_leak(context, signal) {
        causes.push(cause);
    }
    if let Some(used) = context.latest.gpu_memory_ratio.filter(|u| *u >= 0.95) {
        causes.push(Cause {
            cause: CauseKind::GpuMemoryPressure,
            score: (0.5 + 6.0 * (used - 0.95)).min(0.8),
            evidence: format!("GPU memory {:.0}% used", used * 100.0),
        });
    }
    if signal != Signal::Qps && signal != Signal::InFlight {
        if let Some(cause) = load_increase(context, signal, started) {
            causes.push(cause);
        }
    }
    for timed in context
        .events
        .between(started - EVENT_LOOKBACK_SECONDS, context.now)
    {
        let proximity = (-(timed.at_unix - started).abs() / EVENT_DECAY_SECONDS).exp();
        let (cause, weight) = match &timed.event {
            Event::ModelVersionChanged { .. } => (CauseKind::ModelChange, 0.85),
            Event::UpstreamRestarted => (CauseKind::UpstreamRestart, 0.7),
            Event::SidecarStarted => (CauseKind::SidecarRestart, 0.3),
            Event::DriftDetected { .. } => (CauseKind::InputDrift, 0.5),
            Event::GpuThrottled { .. } => (CauseKind::GpuThrottling, 0.6),
            Event::SampleDrops { .. } => (CauseKind::SampleDrops, 0.2),
        };
        let score = weight * proximity;
        let evidence = format!("{} at {}", timed.event.describe(), hh_mm(timed.at_unix));
        match causes.iter_mut().find(|c: &&mut Cause| c.cause == cause) {
            Some(existing) if existing.score >= score => {}
            Some(existing) => {
                existing.score = score;
                existing.evidence = evidence;
            }
            None => causes.push(Cause {
                cause,
                score,
                evidence,
            }),
        }
    }
    if !causes.iter().any(|c| c.cause == CauseKind::InputDrift) {
        if let Some(p) = context.latest.drift_p_value.filter(|p| *p < 0.05) {
            causes.push(Cause {
                cause: CauseKind::InputDrift,
                score: 0.4,
                evidence: format!("input drift: p-value {p:.3}"),
            });
        }
    }
    for (other, kind, other_started) in context.open {
        if *other == signal {
            continue;
        }
        if *other == Signal::GpuTemperature
            && !causes.iter().any(|c| c.cause == CauseKind::GpuThrottling)
        {
            causes.push(Cause {
                cause: CauseKind::GpuThrottling,
                score: 0.5,
                evidence: format!(
                    "GPU temperature {} since {}",
                    kind.as_label(),
                    hh_mm(*other_started)
                ),
            });
            continue;
        }
        let rho = correlation(context.history, signal, *other).unwrap_or(0.0);
        causes.push(Cause {
            cause: CauseKind::CorrelatedSignal,
            score: 0.3 + 0.3 * rho.abs(),
            evidence: format!(
                "{} {} since {} (correlation {rho:.2})",
                other.describe(),
                kind.as_label().replace('_', " "),
                hh_mm(*other_started)
            ),
        });
    }
    causes.sort_by(|a, b| b.score.total_cmp(&a.score));
    causes
}

fn memory_leak(context: &CauseContext<'_>, signal: Signal) -> Option<Cause> {
    let points: Vec<(f64, f64)> = if context.rss_buckets.len() >= 6 {
        context.rss_buckets.iter().copied().collect()
    } else {
        series(context.history, Signal::ModelRss)
    };
    if points.len() < 6 {
        return None;
    }
    let stats = trend_stats(&points)?;
    let change = stats.change();
    let minimum = (0.01 * stats.median.abs()).max(64.0 * 1024.0 * 1024.0);
    if stats.z <= 3.0 || change <= minimum {
        return None;
    }
    let rho = if signal == Signal::ModelRss {
        1.0
    } else {
        correlation(context.history, signal, Signal::ModelRss).unwrap_or(0.0)
    };
    Some(Cause {
        cause: CauseKind::MemoryLeak,
        score: 0.55 + 0.25 * (stats.z / 8.0).min(1.0) + 0.2 * rho.max(0.0),
        evidence: format!(
            "model RSS +{}/h since {} (memory leak likely)",
            format_bytes(stats.slope_per_second * 3600.0),
            hh_mm(stats.first_unix)
        ),
    })
}

fn load_increase(context: &CauseContext<'_>, signal: Signal, started: f64) -> Option<Cause> {
    let mut best: Option<Cause> = None;
    for load in [Signal::Qps, Signal::InFlight] {
        let all = series(context.history, load);
        let before: Vec<f64> = all.iter().filter(|p| p.0 < started).map(|p| p.1).collect();
        let after: Vec<f64> = all.iter().filter(|p| p.0 >= started).map(|p| p.1).collect();
        if before.len() < 5 || after.is_empty() {
            continue;
        }
        let (Some(base), Some(now)) = (median(&before), median(&after)) else {
            continue;
        };
        let base = base.max(load.floor().absolute);
        let ratio = now / base;
        if ratio < 1.5 {
            continue;
        }
        let rho = correlation(context.history, signal, load).unwrap_or(0.0);
        let score = 0.3 + 0.3 * ((ratio - 1.0) / 2.0).min(1.0) + 0.3 * rho.max(0.0);
        if best.as_ref().is_none_or(|b| b.score < score) {
            best = Some(Cause {
                cause: CauseKind::LoadIncrease,
                score,
                evidence: format!(
                    "{} {ratio:.1}x baseline ({} vs {}) since {}",
                    load.describe(),
                    format_value(load, now),
                    format_value(load, base),
                    hh_mm(started)
                ),
            });
        }
    }
    best
}

/// (time, value) of one signal over the raw history.
pub fn series(history: &VecDeque<HistoryRow>, signal: Signal) -> Vec<(f64, f64)> {
    let index = signal_index(signal);
    history
        .iter()
        .filter_map(|(t, row)| row[index].map(|v| (*t, v)))
        .collect()
}

/// Spearman correlation of two signals over the rows where both are present.
pub fn correlation(history: &VecDeque<HistoryRow>, a: Signal, b: Signal) -> Option<f64> {
    let (ia, ib) = (signal_index(a), signal_index(b));
    let pairs: Vec<(f64, f64)> = history
        .iter()
        .filter_map(|(_, row)| Some((row[ia]?, row[ib]?)))
        .collect();
    spearman(&pairs)
}

pub fn signal_index(signal: Signal) -> usize {
    Signal::ALL.iter().position(|s| *s == signal).unwrap_or(0)
}

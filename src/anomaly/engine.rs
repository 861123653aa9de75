//! The anomaly engine: reads a [`SignalSnapshot`] every interval, runs the
//! detectors on every signal, opens and closes anomalies, ranks their
//! probable causes, and exports the result.
//!
//! Everything is bounded: per signal the detector windows, the raw history
//! (`history_points` rows), at most `recent_capacity` closed anomalies and
//! `event_capacity` events. Time comes from the snapshots, so replaying a
//! synthetic series is exactly what the live engine does.

use std::collections::VecDeque;

use serde::Serialize;

use super::causes::{self, Cause, CauseContext, HistoryRow};
use super::cusum::{Cusum, CusumConfig};
use super::detector::{AnomalyKind, Direction, Finding, Transition};
use super::events::{Event, EventLog, TimedEvent};
use super::robust::{RobustZ, RobustZConfig};
use super::signals::{format_value, Signal, SignalSnapshot};
use super::timefmt::{hh_mm, rfc3339};
use super::trend::{Trend, TrendConfig};
use crate::telemetry;

/// Engine settings.
#[derive(Debug, Clone)]
pub struct AnomalyConfig {
    pub robust: RobustZConfig,
    pub cusum: CusumConfig,
    pub trend: TrendConfig,
    /// Raw readings kept for correlation (default 360: 1 h at 10 s).
    pub history_points: usize,
    pub recent_capacity: usize,
    pub event_capacity: usize,
    /// Causes kept per anomaly.
    pub max_causes: usize,
    /// Causes of open anomalies are re-ranked every this many steps.
    pub refresh_every: u64,
}

impl Default for AnomalyConfig {
    fn default() -> Self {
        Self {
            robust: RobustZConfig::default(),
            cusum: CusumConfig::default(),
            trend: TrendConfig::default(),
            history_points: 360,
            recent_capacity: 100,
            event_capacity: 256,
            max_causes: 5,
            refresh_every: 30,
        }
    }
}

/// Causes scoring below this are listed in `causes` but left out of the
/// one-line evidence.
const EVIDENCE_MIN_SCORE: f64 = 0.25;

/// How bad an anomaly is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// A change in a direction that is not harmful in itself (e.g. QPS drop).
    Info,
    Warning,
    Critical,
}

/// One anomaly, open or closed.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Anomaly {
    pub id: u64,
    pub signal: Signal,
    pub kind: AnomalyKind,
    pub direction: Direction,
    pub severity: Severity,
    pub started_unix: f64,
    pub started: String,
    pub detected_unix: f64,
    pub ended_unix: Option<f64>,
    pub ended: Option<String>,
    pub value: f64,
    pub baseline: f64,
    pub score: f64,
    /// One line: what moved, by how much, since when, and the top causes.
    pub evidence: String,
    /// Probable causes, most likely first.
    pub causes: Vec<Cause>,
    pub close_reason: Option<String>,
    #[serde(skip)]
    headline: String,
}

/// A change reported by [`AnomalyEngine::step`].
#[derive(Debug, Clone, PartialEq)]
pub enum AnomalyChange {
    Opened(Anomaly),
    Closed(Anomaly),
}

/// What `/api/anomalies` shows.
#[derive(Debug, Clone, Serialize)]
pub struct AnomalyReport {
    pub evaluations: u64,
    pub last_evaluation_unix: Option<f64>,
    pub active: Vec<Anomaly>,
    /// Closed anomalies, newest first.
    pub recent: Vec<Anomaly>,
    /// Events, newest first.
    pub events: Vec<TimedEvent>,
}

struct SignalState {
    robust: RobustZ,
    cusum: Cusum,
    trend: Trend,
}

/// The engine; see the module documentation.
pub struct AnomalyEngine {
    config: AnomalyConfig,
    states: Vec<SignalState>,
    history: VecDeque<HistoryRow>,
    active: Vec<Anomaly>,
    recent: VecDeque<Anomaly>,
    events: EventLog,
    next_id: u64,
    evaluations: u64,
    last_at: Option<f64>,
    latest: SignalSnapshot,
    previous_start_time: Option<f64>,
    previous_throttled: bool,
    previous_drift: bool,
    previous_drops: bool,
}

impl AnomalyEngine {
    pub fn new(config: AnomalyConfig) -> Self {
        let states = Signal::ALL
            .iter()
            .map(|signal| {
                let floor = signal.floor();
                let trend = TrendConfig {
                    min_change_relative: signal.trend_min_relative(),
                    ..config.trend
                };
                SignalState {
                    robust: RobustZ::new(config.robust, floor),
                    cusum: Cusum::new(config.cusum, floor),
                    trend: Trend::new(trend, floor, signal.bad_direction()),
                }
            })
            .collect();
        Self {
            events: EventLog::new(config.event_capacity),
            history: VecDeque::with_capacity(config.history_points),
            config,
            states,
            active: Vec::new(),
            recent: VecDeque::new(),
            next_id: 1,
            evaluations: 0,
            last_at: None,
            latest: SignalSnapshot::default(),
            previous_start_time: None,
            previous_throttled: false,
            previous_drift: false,
            previous_drops: false,
        }
    }

    /// Records an event seen elsewhere in the sidecar.
    pub fn push_event(&mut self, at_unix: f64, event: Event) {
        self.events.push(at_unix, event);
    }

    pub fn active(&self) -> &[Anomaly] {
        &self.active
    }

    /// Runs every detector on one reading; returns what opened and closed.
    pub fn step(&mut self, snapshot: &SignalSnapshot) -> Vec<AnomalyChange> {
        let now = snapshot.at_unix;
        self.evaluations += 1;
        self.last_at = Some(now);
        metrics::counter!(telemetry::ANOMALY_EVALUATIONS).increment(1);
        self.derive_events(snapshot);
        self.latest = snapshot.clone();
        let mut row = [None; Signal::ALL.len()];
        for (slot, signal) in row.iter_mut().zip(Signal::ALL) {
            *slot = snapshot.value(signal);
        }
        if self.history.len() >= self.config.history_points.max(2) {
            self.history.pop_front();
        }
        self.history.push_back((now, row));

        let mut changes = Vec::new();
        for (index, signal) in Signal::ALL.into_iter().enumerate() {
            let Some(x) = row[index] else { continue };
            if !signal.detected() {
                continue;
            }
            let state = &mut self.states[index];
            let transitions = [
                (
                    state.robust.update(now, x),
                    [AnomalyKind::Spike, AnomalyKind::Drop].as_slice(),
                ),
                (
                    state.cusum.update(now, x),
                    [AnomalyKind::LevelShift].as_slice(),
                ),
                (state.trend.update(now, x), [AnomalyKind::Trend].as_slice()),
            ];
            for (transition, kinds) in transitions {
                match transition {
                    Some(Transition::Opened(finding)) => {
                        if let Some(anomaly) = self.open(signal, finding, now) {
                            changes.push(AnomalyChange::Opened(anomaly));
                        }
                    }
                    Some(Transition::Closed { reason }) => {
                        for anomaly in self.close(signal, kinds, reason, now) {
                            changes.push(AnomalyChange::Closed(anomaly));
                        }
                    }
                    None => {}
                }
            }
        }
        if self.evaluations % self.config.refresh_every.max(1) == 0 {
            self.refresh_causes(now);
        }
        changes
    }

    fn derive_events(&mut self, snapshot: &SignalSnapshot) {
        let now = snapshot.at_unix;
        if self.evaluations == 1 {
            self.events.push(now, Event::SidecarStarted);
        }
        if let Some(start) = snapshot.upstream_start_time {
            if self
                .previous_start_time
                .is_some_and(|p| (p - start).abs() > 0.5)
            {
                self.events.push(now, Event::UpstreamRestarted);
            }
            self.previous_start_time = Some(start);
        }
        let throttled = snapshot.gpu_throttled.unwrap_or(false);
        if throttled && !self.previous_throttled {
            self.events.push(
                now,
                Event::GpuThrottled {
                    reason: "reported by NVML".into(),
                },
            );
        }
        self.previous_throttled = throttled;
        let drift = snapshot.drift_detected.unwrap_or(false);
        if drift && !self.previous_drift {
            self.events.push(
                now,
                Event::DriftDetected {
                    detector: "drift engine".into(),
                },
            );
        }
        self.previous_drift = drift;
        // Edge-triggered, so persistent drops do not flood the bounded log.
        let drops = snapshot.sample_drops.filter(|d| *d >= 1.0);
        if let Some(count) = drops.filter(|_| !self.previous_drops) {
            self.events.push(
                now,
                Event::SampleDrops {
                    count: count as u64,
                },
            );
        }
        self.previous_drops = drops.is_some();
    }

    fn open(&mut self, signal: Signal, finding: Finding, now: f64) -> Option<Anomaly> {
        if self
            .active
            .iter()
            .any(|a| a.signal == signal && a.kind == finding.kind)
        {
            return None;
        }
        let severity = severity(signal, &finding);
        let headline = headline(signal, &finding);
        let mut anomaly = Anomaly {
            id: self.next_id,
            signal,
            kind: finding.kind,
            direction: finding.direction,
            severity,
            started_unix: finding.started_unix,
            started: rfc3339(finding.started_unix),
            detected_unix: now,
            ended_unix: None,
            ended: None,
            value: finding.value,
            baseline: finding.baseline,
            score: finding.score,
            evidence: headline.clone(),
            causes: Vec::new(),
            close_reason: None,
            headline,
        };
        self.next_id += 1;
        self.rank_causes(&mut anomaly, now);
        metrics::gauge!(telemetry::ANOMALY_ACTIVE, "signal" => signal.as_label(), "kind" => finding.kind.as_label())
            .set(1.0);
        metrics::counter!(telemetry::ANOMALIES, "signal" => signal.as_label(), "kind" => finding.kind.as_label())
            .increment(1);
        tracing::warn!(
            signal = signal.as_label(),
            kind = finding.kind.as_label(),
            severity = ?severity,
            evidence = %anomaly.evidence,
            "anomaly opened"
        );
        self.active.push(anomaly.clone());
        Some(anomaly)
    }

    fn close(
        &mut self,
        signal: Signal,
        kinds: &[AnomalyKind],
        reason: &str,
        now: f64,
    ) -> Vec<Anomaly> {
        let mut closed = Vec::new();
        let mut i = 0;
        while i < self.active.len() {
            if self.active[i].signal == signal && kinds.contains(&self.active[i].kind) {
                let mut anomaly = self.active.remove(i);
                anomaly.ended_unix = Some(now);
                anomaly.ended = Some(rfc3339(now));
                anomaly.close_reason = Some(reason.to_owned());
                metrics::gauge!(telemetry::ANOMALY_ACTIVE, "signal" => signal.as_label(), "kind" => anomaly.kind.as_label())
                    .set(0.0);
                tracing::warn!(
                    signal = signal.as_label(),
                    kind = anomaly.kind.as_label(),
                    reason,
                    duration_seconds = now - anomaly.started_unix,
                    "anomaly closed"
                );
                if self.recent.len() >= self.config.recent_capacity.max(1) {
                    self.recent.pop_front();
                }
                self.recent.push_back(anomaly.clone());
                closed.push(anomaly);
            } else {
                i += 1;
            }
        }
        closed
    }

    fn refresh_causes(&mut self, now: f64) {
        let mut active = std::mem::take(&mut self.active);
        for anomaly in &mut active {
            self.rank_causes(anomaly, now);
        }
        self.active = active;
    }

    fn rank_causes(&self, anomaly: &mut Anomaly, now: f64) {
        let open: Vec<(Signal, AnomalyKind, f64)> = self
            .active
            .iter()
            .filter(|a| a.id != anomaly.id)
            .map(|a| (a.signal, a.kind, a.started_unix))
            .collect();
        let rss = causes::signal_index(Signal::ModelRss);
        let context = CauseContext {
            now,
            history: &self.history,
            rss_buckets: self.states[rss].trend.buckets(),
            open: &open,
            events: &self.events,
            latest: &self.latest,
        };
        let mut ranked = causes::rank(&context, anomaly.signal, anomaly.started_unix);
        ranked.truncate(self.config.max_causes);
        let mut evidence = anomaly.headline.clone();
        for cause in ranked
            .iter()
            .filter(|c| c.score >= EVIDENCE_MIN_SCORE)
            .take(3)
        {
            evidence.push_str("; ");
            evidence.push_str(&cause.evidence);
        }
        anomaly.evidence = evidence;
        anomaly.causes = ranked;
    }

    /// The state for `/api/anomalies`.
    pub fn report(&self, recent_limit: usize) -> AnomalyReport {
        AnomalyReport {
            evaluations: self.evaluations,
            last_evaluation_unix: self.last_at,
            active: self.active.clone(),
            recent: self
                .recent
                .iter()
                .rev()
                .take(recent_limit)
                .cloned()
                .collect(),
            events: self.events.newest(50),
        }
    }
}

fn severity(signal: Signal, finding: &Finding) -> Severity {
    let bad = signal
        .bad_direction()
        .is_some_and(|d| d == finding.direction);
    if !bad {
        return Severity::Info;
    }
    let ratio = if finding.baseline.abs() > signal.floor().absolute {
        finding.value / finding.baseline
    } else {
        1.0
    };
    let large = match finding.kind {
        AnomalyKind::Trend => ratio >= 3.0 || ratio <= 1.0 / 3.0,
        _ => finding.score >= 12.0 || ratio >= 3.0 || ratio <= 1.0 / 3.0,
    };
    if large {
        Severity::Critical
    } else {
        Severity::Warning
    }
}

/// "p95 latency 4.1x baseline since 14:02" and the like.
fn headline(signal: Signal, finding: &Finding) -> String {
    let since = hh_mm(finding.started_unix);
    let name = signal.describe();
    if let Some(slope) = finding.slope_per_second {
        let per_hour = slope * 3600.0;
        let sign = if per_hour >= 0.0 { "+" } else { "" };
        return format!(
            "{name} {sign}{}/h since {since} ({} -> {}, Mann-Kendall z={:.1})",
            format_value(signal, per_hour),
            format_value(signal, finding.baseline),
            format_value(signal, finding.value),
            finding.score
        );
    }
    if finding.baseline.abs() >= signal.floor().absolute / 2.0 {
        let ratio = finding.value / finding.baseline;
        if !(0.67..=1.5).contains(&ratio) {
            return format!(
                "{name} {ratio:.1}x baseline since {since} ({} vs {})",
                format_value(signal, finding.value),
                format_value(signal, finding.baseline)
            );
        }
    }
    format!(
        "{name} {} vs baseline {} since {since}",
        format_value(signal, finding.value),
        format_value(signal, finding.baseline)
    )
}

#[cfg(test)]
mod tests {
    use super::super::synthetic::single;
    use super::*;

    #[test]
    fn state_stays_bounded_under_many_anomalies() {
        let config = AnomalyConfig {
            recent_capacity: 5,
            event_capacity: 4,
            ..AnomalyConfig::default()
        };
        let mut engine = AnomalyEngine::new(config);
        let mut opened = 0;
        for i in 0..5000u32 {
            // A flat series with a 3-reading spike every 100 readings.
            let value = if i % 100 < 3 && i > 100 { 5.0 } else { 1.0 };
            let mut snapshot = single(Signal::LatencyP95, f64::from(i) * 10.0, value);
            snapshot.sample_drops = Some(if i % 2 == 0 { 3.0 } else { 0.0 });
            opened += engine
                .step(&snapshot)
                .iter()
                .filter(|c| matches!(c, AnomalyChange::Opened(_)))
                .count();
        }
        assert!(opened >= 40, "{opened}");
        let report = engine.report(1000);
        assert_eq!(report.recent.len(), 5);
        assert!(report.events.len() <= 4);
        assert_eq!(engine.history.len(), 360);
        assert!(engine.active.len() <= Signal::ALL.len() * AnomalyKind::ALL.len());
    }

    #[test]
    fn events_are_derived_from_readings() {
        let mut engine = AnomalyEngine::new(AnomalyConfig::default());
        let mut snapshot = SignalSnapshot {
            at_unix: 0.0,
            upstream_start_time: Some(100.0),
            gpu_throttled: Some(false),
            drift_detected: Some(false),
            ..SignalSnapshot::default()
        };
        engine.step(&snapshot);
        snapshot.at_unix = 10.0;
        snapshot.upstream_start_time = Some(200.0);
        snapshot.gpu_throttled = Some(true);
        snapshot.drift_detected = Some(true);
        engine.step(&snapshot);
        snapshot.at_unix = 20.0;
        engine.step(&snapshot);
        let kinds: Vec<String> = engine
            .report(0)
            .events
            .iter()
            .map(|e| format!("{:?}", e.event))
            .collect();
        assert_eq!(kinds.len(), 4, "{kinds:?}");
        assert!(kinds[0].starts_with("DriftDetected"), "{kinds:?}");
        assert!(kinds[1].starts_with("GpuThrottled"));
        assert!(kinds[2].starts_with("UpstreamRestarted"));
        assert!(kinds[3].starts_with("SidecarStarted"));
    }
}

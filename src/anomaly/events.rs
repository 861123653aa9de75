//! Events the sidecar sees that can explain an anomaly.

use std::collections::VecDeque;

use serde::Serialize;

/// Something that happened, pushed by any part of the sidecar (or derived by
/// the engine from its signals).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Event {
    /// The model version or configuration reported by the upstream changed
    /// (in a response, or in the health payload).
    ModelVersionChanged { from: Option<String>, to: String },
    /// The model process restarted (its start time changed) or the upstream
    /// came back after being unreachable.
    UpstreamRestarted,
    /// magma-monitor itself started (baselines are fresh).
    SidecarStarted,
    /// A drift detector reported drift.
    DriftDetected { detector: String },
    /// A GPU reported a throttle reason.
    GpuThrottled { reason: String },
    /// Samples were dropped at the hand-off to analysis.
    SampleDrops { count: u64 },
}

impl Event {
    /// Short text for evidence lines.
    pub fn describe(&self) -> String {
        match self {
            Event::ModelVersionChanged {
                from: Some(from),
                to,
            } => {
                format!("model version changed from {from} to {to}")
            }
            Event::ModelVersionChanged { from: None, to } => {
                format!("model version changed to {to}")
            }
            Event::UpstreamRestarted => "model server restarted".into(),
            Event::SidecarStarted => "magma-monitor restarted (fresh baselines)".into(),
            Event::DriftDetected { detector } => format!("drift detected ({detector})"),
            Event::GpuThrottled { reason } => format!("GPU throttled ({reason})"),
            Event::SampleDrops { count } => format!("{count} samples dropped"),
        }
    }
}

/// An event with its time.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TimedEvent {
    pub at_unix: f64,
    #[serde(flatten)]
    pub event: Event,
}

/// The most recent events (bounded).
#[derive(Debug, Clone)]
pub struct EventLog {
    capacity: usize,
    events: VecDeque<TimedEvent>,
}

impl EventLog {
    pub fn new(capacity: usize) -> Self {
        Self {
            capacity: capacity.max(1),
            events: VecDeque::new(),
        }
    }

    pub fn push(&mut self, at_unix: f64, event: Event) {
        if self.events.len() == self.capacity {
            self.events.pop_front();
        }
        self.events.push_back(TimedEvent { at_unix, event });
    }

    /// Events with `from <= at <= to`, oldest first.
    pub fn between(&self, from: f64, to: f64) -> impl Iterator<Item = &TimedEvent> {
        self.events
            .iter()
            .filter(move |e| e.at_unix >= from && e.at_unix <= to)
    }

    pub fn newest(&self, limit: usize) -> Vec<TimedEvent> {
        self.events.iter().rev().take(limit).cloned().collect()
    }
}

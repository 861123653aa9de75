//! Events read from the upstream's health state: the model server coming back
//! after being unreachable, its model being reloaded, or the model version it
//! reports changing.

use std::sync::Arc;
use std::time::Duration;

use super::events::Event;
use super::AnomalyHandle;
use crate::health::{Health, HealthSnapshot};
use crate::shutdown::ShutdownSignal;

/// Fields of the health payload taken as the model version, first match wins.
pub const VERSION_FIELDS: [&str; 6] = [
    "model_version",
    "version",
    "model",
    "model_name",
    "model_id",
    "revision",
];

/// Longest version string kept.
const MAX_VERSION_CHARS: usize = 128;

/// Remembers the last health state and reports what changed.
#[derive(Debug, Default)]
pub struct HealthEventTracker {
    up: Option<bool>,
    model_loaded: Option<bool>,
    version: Option<String>,
}

impl HealthEventTracker {
    pub fn observe(&mut self, snapshot: &HealthSnapshot) -> Vec<Event> {
        let mut events = Vec::new();
        if self.up == Some(false) && snapshot.upstream_up {
            events.push(Event::UpstreamRestarted);
        }
        if snapshot.checks > 0 {
            self.up = Some(snapshot.upstream_up);
        }
        let Some(body) = snapshot
            .upstream_health
            .as_ref()
            .filter(|_| snapshot.upstream_up)
        else {
            return events;
        };
        let loaded = body.get("model_loaded").and_then(|v| v.as_bool());
        if self.model_loaded == Some(false) && loaded == Some(true) && events.is_empty() {
            events.push(Event::UpstreamRestarted);
        }
        if loaded.is_some() {
            self.model_loaded = loaded;
        }
        let version = VERSION_FIELDS
            .iter()
            .find_map(|field| match body.get(*field)? {
                serde_json::Value::String(s) => Some(s.chars().take(MAX_VERSION_CHARS).collect()),
                serde_json::Value::Number(n) => Some(n.to_string()),
                _ => None,
            });
        if let Some(version) = version {
            if self.version.as_ref().is_some_and(|old| *old != version) {
                events.push(Event::ModelVersionChanged {
                    from: self.version.clone(),
                    to: version.clone(),
                });
            }
            self.version = Some(version);
        }
        events
    }
}

/// Every `interval`, turns changes of the upstream's health into events.
pub async fn watch_health(
    handle: Arc<AnomalyHandle>,
    health: Arc<Health>,
    interval: Duration,
    mut shutdown: ShutdownSignal,
) {
    let mut tracker = HealthEventTracker::default();
    let mut ticker = tokio::time::interval(interval);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.recv() => break,
        }
        for event in tracker.observe(&health.snapshot()) {
            tracing::info!(event = %event.describe(), "upstream event");
            handle.push_event(event);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn snapshot(up: bool, body: serde_json::Value) -> HealthSnapshot {
        HealthSnapshot {
            ready: up,
            upstream_up: up,
            draining: false,
            checks: 1,
            last_check_unix_ms: 0,
            last_error: None,
            upstream_health: Some(body),
        }
    }

    #[test]
    fn reports_restarts_reloads_and_version_changes() {
        let mut t = HealthEventTracker::default();
        let healthy =
            serde_json::json!({"status": "healthy", "model_loaded": true, "model_version": "v1"});
        assert!(t.observe(&snapshot(true, healthy.clone())).is_empty());
        assert!(t
            .observe(&snapshot(false, serde_json::Value::Null))
            .is_empty());
        assert_eq!(
            t.observe(&snapshot(true, healthy)),
            vec![Event::UpstreamRestarted]
        );
        let loading = serde_json::json!({"model_loaded": false, "model_version": "v1"});
        assert!(t.observe(&snapshot(true, loading)).is_empty());
        let v2 = serde_json::json!({"model_loaded": true, "model_version": "v2"});
        assert_eq!(
            t.observe(&snapshot(true, v2)),
            vec![
                Event::UpstreamRestarted,
                Event::ModelVersionChanged {
                    from: Some("v1".into()),
                    to: "v2".into()
                }
            ]
        );
    }
}

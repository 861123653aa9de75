//! What the demo prints while it runs: a status line read from the admin JSON
//! API, and the detections seen per phase for the final summary. Parts whose
//! endpoint is missing (an area not built in) show `n/a`.

use std::collections::BTreeSet;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Limited};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use serde_json::Value;

/// Reads the admin server's JSON API.
pub struct AdminProbe {
    client: Client<HttpConnector, Empty<Bytes>>,
    base: String,
}

/// One look at the sidecar.
#[derive(Debug, Clone, Default)]
pub struct Observation {
    pub requests_total: Option<f64>,
    pub qps: Option<f64>,
    pub p95_seconds: Option<f64>,
    pub error_ratio: Option<f64>,
    pub drift_p_value: Option<f64>,
    pub drift_detected: Option<bool>,
    /// How many test rounds the drift engine has run (`tests_run`): the
    /// verdict above belongs to this round.
    pub drift_round: Option<u64>,
    /// Active anomalies as `signal/kind: first hint`; `None` when the endpoint is missing.
    pub anomalies: Option<Vec<String>>,
    pub output_anomalies_per_second: Option<f64>,
    pub sidecar_resident_bytes: Option<f64>,
}

impl AdminProbe {
    pub fn new(base: String) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            base,
        }
    }

    /// GET `path`; `None` unless it answers 2xx with JSON in time.
    pub async fn get_json(&self, path: &str) -> Option<Value> {
        let uri: http::Uri = format!("{}{path}", self.base).parse().ok()?;
        let attempt = async {
            let response = self.client.get(uri).await.ok()?;
            if !response.status().is_success() {
                return None;
            }
            let body = Limited::new(response.into_body(), 8 * 1024 * 1024)
                .collect()
                .await
                .ok()?
                .to_bytes();
            serde_json::from_slice(&body).ok()
        };
        tokio::time::timeout(Duration::from_secs(3), attempt)
            .await
            .ok()
            .flatten()
    }

    pub async fn observe(&self) -> Observation {
        let mut seen = Observation::default();
        if let Some(status) = self.get_json("/api/status").await {
            seen.requests_total = status.pointer("/requests/total").and_then(Value::as_f64);
        }
        if let Some(series) = self.get_json("/api/timeseries?limit=1").await {
            if let Some(last) = series
                .get("points")
                .and_then(Value::as_array)
                .and_then(|p| p.last())
            {
                let number = |key: &str| last.get(key).and_then(Value::as_f64);
                seen.qps = number("requests_per_second");
                seen.p95_seconds = number("latency_p95_seconds");
                seen.error_ratio = number("error_ratio");
                seen.output_anomalies_per_second = number("output_anomalies_per_second");
                seen.sidecar_resident_bytes = number("sidecar_resident_bytes");
                seen.drift_p_value = number("drift_p_value");
                if seen.requests_total.is_none() {
                    seen.requests_total = number("requests_total");
                }
            }
        }
        if let Some(drift) = self.get_json("/api/drift").await {
            seen.drift_round = drift.get("tests_run").and_then(Value::as_u64);
            // Each detector's own verdict (after its multiple-testing
            // correction) decides; the p-value shown is the time series'
            // (the MMD test's): KS p-values are per feature, uncorrected.
            let mut detected = Vec::new();
            match drift.get("detectors").and_then(Value::as_array) {
                Some(detectors) => detected.extend(
                    detectors
                        .iter()
                        .filter_map(|d| d.get("drift").and_then(Value::as_bool)),
                ),
                None => walk(&drift, 0, &mut |key, value| {
                    if let ("drift" | "detected" | "drift_detected", Value::Bool(b)) = (key, value)
                    {
                        detected.push(*b);
                    }
                }),
            }
            if let Some(online) = drift.pointer("/online/drift").and_then(Value::as_bool) {
                detected.push(online);
            }
            if !detected.is_empty() {
                seen.drift_detected = Some(detected.contains(&true));
            }
        }
        if let Some(anomalies) = self.get_json("/api/anomalies").await {
            seen.anomalies = Some(active_anomalies(&anomalies));
        }
        seen
    }
}

/// Visits every (key, value) pair of a JSON document, to a bounded depth.
fn walk(value: &Value, depth: usize, visit: &mut dyn FnMut(&str, &Value)) {
    if depth > 8 {
        return;
    }
    match value {
        Value::Object(map) => {
            for (key, inner) in map {
                visit(key, inner);
                walk(inner, depth + 1, visit);
            }
        }
        Value::Array(items) => {
            for inner in items.iter().take(256) {
                walk(inner, depth + 1, visit);
            }
        }
        _ => {}
    }
}

/// Reads `/api/anomalies` as a list of labels, whatever its exact shape:
/// `{"active": [...]}` or a bare list, each item with `signal`, `kind` and
/// ranked causes.
pub fn active_anomalies(document: &Value) -> Vec<String> {
    let list = match document {
        Value::Array(items) => items.as_slice(),
        other => other
            .get("active")
            .and_then(Value::as_array)
            .map(Vec::as_slice)
            .unwrap_or(&[]),
    };
    list.iter()
        .take(32)
        .map(|item| {
            let text = |key: &str| item.get(key).and_then(Value::as_str).map(str::to_owned);
            let name = match (text("signal"), text("kind")) {
                (Some(s), Some(k)) => format!("{s}/{k}"),
                (Some(s), None) => s,
                (None, Some(k)) => k,
                (None, None) => "anomaly".to_string(),
            };
            let cause = ["causes", "root_causes", "hints", "ranked_causes"]
                .iter()
                .find_map(|key| {
                    item.get(*key)
                        .and_then(Value::as_array)
                        .and_then(|c| c.first())
                })
                .and_then(|first| match first {
                    Value::String(s) => Some(s.clone()),
                    other => ["description", "cause", "hint", "summary", "evidence"]
                        .iter()
                        .find_map(|k| other.get(*k).and_then(Value::as_str).map(str::to_owned)),
                });
            match cause {
                Some(cause) => format!("{name}: {cause}"),
                None => name,
            }
        })
        .collect()
}

fn or_na(value: Option<String>) -> String {
    value.unwrap_or_else(|| "n/a".to_string())
}

/// The one-line status printed every few seconds.
pub fn status_line(
    phase: &str,
    elapsed: Duration,
    seen: &Observation,
    client: &super::traffic::TrafficSnapshot,
) -> String {
    let anomalies = match &seen.anomalies {
        None => "n/a".to_string(),
        Some(list) if list.is_empty() => "none".to_string(),
        Some(list) => list
            .iter()
            .map(|a| a.split(':').next().unwrap_or(a).to_string())
            .collect::<Vec<_>>()
            .join(","),
    };
    format!(
        "[{phase:<17} +{:>4}s] requests {:>6}  qps {:>5}  p95 {:>6}  errors {:>5}  drift p {:>7}  anomalies {anomalies}  | clients ok {} http-err {} failed {} timeout {}",
        elapsed.as_secs(),
        or_na(seen.requests_total.map(|v| format!("{v:.0}"))),
        or_na(seen.qps.map(|v| format!("{v:.1}"))),
        or_na(seen.p95_seconds.map(|v| format!("{v:.2}s"))),
        or_na(seen.error_ratio.map(|v| format!("{:.1}%", v * 100.0))),
        or_na(seen.drift_p_value.map(|v| format!("{v:.4}"))),
        client.ok,
        client.http_errors,
        client.failed,
        client.timed_out,
    )
}

/// Signals seen per phase, for the final summary.
#[derive(Debug, Default)]
pub struct Detections {
    pub events: Vec<Detection>,
    seen: BTreeSet<(usize, String)>,
    /// p95 latencies seen during the first phase (the baseline), bounded.
    baseline_p95: Vec<f64>,
    /// Signals active at the last look, and the phase of that look.
    active: BTreeSet<String>,
    last_phase: Option<usize>,
    /// Signals carried over from the previous phase: not credited to the
    /// new phase until they have been seen inactive once.
    carried: BTreeSet<String>,
    drift: DriftStreak,
}

/// Test rounds in a row whose verdict must be drift before the demo counts
/// it. One round runs five detectors (each with a small false-alarm rate);
/// two in a row is the demo's compressed stand-in for the shipped alert's
/// `for: 10m`, and makes a chance alarm in a normal phase rare.
const DRIFT_CONFIRM_ROUNDS: u32 = 2;

/// Consecutive drift verdicts, counted once per test round.
#[derive(Debug, Default)]
struct DriftStreak {
    round: Option<u64>,
    streak: u32,
}

impl DriftStreak {
    /// Takes the verdict of `round` (the first look at a round counts; later
    /// looks at the same round change nothing) and says whether drift is
    /// confirmed.
    fn confirm(&mut self, round: u64, verdict: bool) -> bool {
        if self.round != Some(round) {
            self.round = Some(round);
            self.streak = if verdict { self.streak + 1 } else { 0 };
        }
        self.streak >= DRIFT_CONFIRM_ROUNDS
    }
}

/// Most baseline observations kept.
const MAX_BASELINE: usize = 512;

#[derive(Debug, Clone)]
pub struct Detection {
    pub phase_index: usize,
    pub offset: Duration,
    pub what: String,
}

/// Most events kept (a long demo repeats phases; the first ones matter).
const MAX_EVENTS: usize = 256;

impl Detections {
    /// Records each signal the first time it shows in a phase.
    ///
    /// Latency counts as detected above the guide's 2 s alert, or above
    /// twice the first phase's median p95 (with `--speed` every latency is
    /// scaled down, so the absolute line alone would never be crossed).
    pub fn update(&mut self, phase_index: usize, offset: Duration, seen: &Observation) {
        let mut found = Vec::new();
        if let Some(p95) = seen.p95_seconds {
            if phase_index == 0 && self.baseline_p95.len() < MAX_BASELINE {
                self.baseline_p95.push(p95);
            }
            let baseline = self.baseline();
            if p95 > 2.0 {
                found.push((
                    "latency".to_string(),
                    format!("p95 latency above 2 s ({p95:.2} s)"),
                ));
            } else if let Some(base) = baseline.filter(|b| phase_index > 0 && p95 > 2.0 * b) {
                found.push((
                    "latency".to_string(),
                    format!("p95 latency {:.1}x baseline ({p95:.2} s)", p95 / base),
                ));
            }
        }
        if seen.error_ratio.is_some_and(|e| e > 0.05) {
            found.push(("errors".to_string(), "error rate above 5%".to_string()));
        }
        let verdict = match seen.drift_detected {
            Some(verdict) => verdict,
            None => seen.drift_p_value.is_some_and(|p| p < 0.05),
        };
        // Without round numbers (an engine that does not report them) every
        // look stands alone.
        let drift = match seen.drift_round {
            Some(round) => self.drift.confirm(round, verdict),
            None => verdict,
        };
        if drift {
            found.push((
                "drift".to_string(),
                format!("drift detected ({DRIFT_CONFIRM_ROUNDS} tests in a row)"),
            ));
        }
        if seen.output_anomalies_per_second.is_some_and(|r| r > 0.0) {
            found.push((
                "outputs".to_string(),
                "output anomalies counted".to_string(),
            ));
        }
        for anomaly in seen.anomalies.iter().flatten() {
            let name = anomaly.split(':').next().unwrap_or(anomaly);
            found.push((format!("anomaly {name}"), format!("anomaly {anomaly}")));
        }
        if self.last_phase != Some(phase_index) {
            self.carried = std::mem::take(&mut self.active);
            self.last_phase = Some(phase_index);
        }
        let now: BTreeSet<String> = found.iter().map(|(key, _)| key.clone()).collect();
        self.carried.retain(|key| now.contains(key));
        for (key, what) in found {
            if self.events.len() >= MAX_EVENTS || self.carried.contains(&key) {
                continue;
            }
            if self.seen.insert((phase_index, key)) {
                self.events.push(Detection {
                    phase_index,
                    offset,
                    what,
                });
            }
        }
        self.active = now;
    }

    /// Median p95 of the first phase.
    pub fn baseline(&self) -> Option<f64> {
        let mut sorted = self.baseline_p95.clone();
        sorted.sort_by(f64::total_cmp);
        sorted.get(sorted.len() / 2).copied()
    }

    pub fn in_phase(&self, phase_index: usize) -> impl Iterator<Item = &Detection> {
        self.events
            .iter()
            .filter(move |e| e.phase_index == phase_index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_anomalies_of_several_shapes() {
        let doc = serde_json::json!({"active": [
            {"signal": "latency_p95", "kind": "trend", "causes": [{"description": "memory leak likely"}]},
            {"signal": "error_rate"}
        ], "recent": []});
        assert_eq!(
            active_anomalies(&doc),
            ["latency_p95/trend: memory leak likely", "error_rate"]
        );
        let bare = serde_json::json!([{"kind": "spike", "hints": ["GPU throttled"]}]);
        assert_eq!(active_anomalies(&bare), ["spike: GPU throttled"]);
        assert!(active_anomalies(&serde_json::json!({"x": 1})).is_empty());
    }

    #[test]
    fn detections_are_recorded_once_per_phase() {
        let mut d = Detections::default();
        let baseline = Observation {
            p95_seconds: Some(0.4),
            ..Observation::default()
        };
        d.update(0, Duration::from_secs(1), &baseline);
        assert_eq!(d.in_phase(0).count(), 0);
        let creeping = Observation {
            p95_seconds: Some(0.9),
            ..Observation::default()
        };
        d.update(1, Duration::from_secs(4), &creeping);
        d.update(1, Duration::from_secs(8), &creeping);
        assert_eq!(d.in_phase(1).count(), 1, "once per phase");
        assert_eq!(
            d.in_phase(1).next().unwrap().what,
            "p95 latency 2.2x baseline (0.90 s)"
        );
        let seen = Observation {
            p95_seconds: Some(2.5),
            anomalies: Some(vec!["latency/trend: leak".into()]),
            ..Observation::default()
        };
        // Latency is still high when phase 2 starts: carried over, not
        // credited to it; the anomaly is new.
        d.update(2, Duration::from_secs(2), &seen);
        let phase2: Vec<&str> = d.in_phase(2).map(|e| e.what.as_str()).collect();
        assert_eq!(phase2, ["anomaly latency/trend: leak"]);
        // Once gone and back, it counts for the phase.
        d.update(2, Duration::from_secs(6), &Observation::default());
        d.update(2, Duration::from_secs(9), &seen);
        let late: Vec<(u64, &str)> = d
            .in_phase(2)
            .map(|e| (e.offset.as_secs(), e.what.as_str()))
            .collect();
        assert_eq!(
            late,
            [
                (2, "anomaly latency/trend: leak"),
                (9, "p95 latency above 2 s (2.50 s)")
            ]
        );
    }

    #[test]
    fn drift_counts_once_confirmed_by_consecutive_rounds() {
        let look = |round: u64, drift: bool| Observation {
            drift_round: Some(round),
            drift_detected: Some(drift),
            ..Observation::default()
        };
        let mut d = Detections::default();
        // A lone alarm, looked at twice, then a quiet round: not counted.
        d.update(0, Duration::from_secs(1), &look(1, true));
        d.update(0, Duration::from_secs(2), &look(1, true));
        d.update(0, Duration::from_secs(3), &look(2, false));
        d.update(0, Duration::from_secs(4), &look(3, true));
        assert_eq!(d.in_phase(0).count(), 0, "{:?}", d.events);
        // The next round agrees: confirmed.
        d.update(0, Duration::from_secs(5), &look(4, true));
        let seen: Vec<(u64, &str)> = d
            .in_phase(0)
            .map(|e| (e.offset.as_secs(), e.what.as_str()))
            .collect();
        assert_eq!(seen, [(5, "drift detected (2 tests in a row)")]);
        // A clean round ends the streak.
        d.update(1, Duration::from_secs(1), &look(5, false));
        d.update(1, Duration::from_secs(2), &look(6, true));
        assert_eq!(d.in_phase(1).count(), 0);
    }
}

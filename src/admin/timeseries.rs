//! The dashboard's time series: once a second the admin server renders its
//! own Prometheus registry, reads the counters, gauges and the latency
//! histogram from the text, and keeps one point per second in a bounded ring.
//!
//! Reading the rendered text (rather than keeping separate counters) means
//! every area's metrics show up here as soon as it records them, without the
//! areas knowing about the dashboard. Rates and quantiles are computed over a
//! sliding window of cumulative values; quantiles interpolate linearly inside
//! a bucket, the way Prometheus' `histogram_quantile` does.

use std::collections::{BTreeMap, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde::Serialize;

use super::AdminState;
use crate::exposition::{self as prom_text, SampleLine};
use crate::shutdown::ShutdownSignal;
use crate::telemetry;

/// Points kept: 30 minutes at one a second.
pub const CAPACITY: usize = 1800;
/// Rates and quantiles look back this many seconds.
pub const WINDOW_SECONDS: usize = 10;
/// Most distinct values of one breakdown (modality, task) kept per point.
const MAX_BREAKDOWN: usize = 16;

/// One second of the dashboard's view. Absent signals are `null`.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct Point {
    /// Unix time in milliseconds.
    pub t: u64,
    pub requests_total: f64,
    pub requests_per_second: f64,
    pub errors_per_second: f64,
    /// Errors over requests in the window (0 when there were no requests).
    pub error_ratio: f64,
    pub latency_p50_seconds: Option<f64>,
    pub latency_p95_seconds: Option<f64>,
    pub latency_p99_seconds: Option<f64>,
    pub in_flight: Option<f64>,
    /// Requests per second by `modality` label over the window.
    pub modality: BTreeMap<String, f64>,
    /// Requests per second by `task` label over the window.
    pub task: BTreeMap<String, f64>,
    pub sidecar_resident_bytes: Option<f64>,
    pub upstream_resident_bytes: Option<f64>,
    pub gpu_memory_used_bytes: Option<f64>,
    pub gpu_memory_total_bytes: Option<f64>,
    pub gpu_utilization_ratio: Option<f64>,
    /// Smallest p-value of the MMD drift detectors (of any detector when no MMD runs).
    pub drift_p_value: Option<f64>,
    pub output_anomalies_per_second: Option<f64>,
    pub anomalies_active: Option<f64>,
}

/// Cumulative values read from one rendering.
#[derive(Debug, Clone, Default)]
struct Reading {
    t: u64,
    requests: f64,
    errors: f64,
    output_anomalies: Option<f64>,
    /// (upper bound, cumulative count) of the latency histogram over all series.
    buckets: Vec<(f64, f64)>,
    modality: BTreeMap<String, f64>,
    task: BTreeMap<String, f64>,
    gauges: Gauges,
}

#[derive(Debug, Clone, Default)]
struct Gauges {
    in_flight: Option<f64>,
    sidecar_resident: Option<f64>,
    upstream_resident: Option<f64>,
    gpu_used: Option<f64>,
    gpu_total: Option<f64>,
    gpu_utilization: Vec<f64>,
    drift_p: Option<f64>,
    drift_p_mmd: Option<f64>,
    anomalies_active: Option<f64>,
}

/// The ring of points and the recent readings rates are computed from.
#[derive(Debug, Default)]
pub struct TimeSeries {
    inner: Mutex<Store>,
}

#[derive(Debug, Default)]
struct Store {
    points: VecDeque<Point>,
    readings: VecDeque<Reading>,
}

fn add(slot: &mut Option<f64>, value: f64) {
    *slot = Some(slot.unwrap_or(0.0) + value);
}

fn read(text: &str, t: u64) -> Reading {
    let duration_bucket = format!("{}_bucket", telemetry::REQUEST_DURATION);
    let duration_count = format!("{}_count", telemetry::REQUEST_DURATION);
    let mut reading = Reading {
        t,
        ..Reading::default()
    };
    let mut buckets: BTreeMap<u64, (f64, f64)> = BTreeMap::new();
    let mut requests_total: Option<f64> = None;
    let mut duration_total = 0.0;
    let breakdown = |map: &mut BTreeMap<String, f64>, sample: &SampleLine, key: &str| {
        let value = sample.label(key).unwrap_or("unknown");
        if map.len() < MAX_BREAKDOWN || map.contains_key(value) {
            *map.entry(value.to_string()).or_insert(0.0) += sample.value;
        }
    };
    for sample in prom_text::samples(text) {
        if !sample.value.is_finite() {
            continue;
        }
        match sample.name {
            n if n == duration_bucket => {
                let le = match sample.label("le") {
                    Some("+Inf") => f64::INFINITY,
                    Some(le) => match le.parse::<f64>() {
                        Ok(le) => le,
                        Err(_) => continue,
                    },
                    None => continue,
                };
                // Ordered by the bit pattern of a non-negative float, which sorts like the float.
                let entry = buckets.entry(le.to_bits()).or_insert((le, 0.0));
                entry.1 += sample.value;
            }
            n if n == duration_count => {
                duration_total += sample.value;
                breakdown(&mut reading.modality, &sample, "modality");
                breakdown(&mut reading.task, &sample, "task");
            }
            telemetry::REQUESTS => add(&mut requests_total, sample.value),
            telemetry::REQUEST_ERRORS => reading.errors += sample.value,
            telemetry::REQUESTS_IN_FLIGHT => add(&mut reading.gauges.in_flight, sample.value),
            telemetry::PROCESS_RESIDENT_MEMORY => {
                reading.gauges.sidecar_resident = Some(sample.value)
            }
            "magma_upstream_process_resident_memory_bytes"
            | "magma_upstream_process_resident_bytes" => {
                add(&mut reading.gauges.upstream_resident, sample.value)
            }
            "magma_gpu_memory_used_bytes" => add(&mut reading.gauges.gpu_used, sample.value),
            "magma_gpu_memory_total_bytes" => add(&mut reading.gauges.gpu_total, sample.value),
            "magma_gpu_utilization_ratio" => reading.gauges.gpu_utilization.push(sample.value),
            "magma_drift_p_value" => {
                // The MMD test is the headline (alibi-detect's MMDDrift with
                // p_val 0.05); KS p-values are per feature, before correction.
                let slot = if sample.label("detector") == Some("mmd") {
                    &mut reading.gauges.drift_p_mmd
                } else {
                    &mut reading.gauges.drift_p
                };
                *slot = Some(slot.map_or(sample.value, |p: f64| p.min(sample.value)));
            }
            "magma_output_anomalies_total" => add(&mut reading.output_anomalies, sample.value),
            "magma_anomaly_active" => add(&mut reading.gauges.anomalies_active, sample.value),
            _ => {}
        }
    }
    reading.requests = requests_total.unwrap_or(duration_total);
    reading.buckets = buckets.into_values().collect();
    reading
}

/// The q-quantile of a cumulative histogram, interpolated linearly inside
/// the bucket the rank falls in (as Prometheus' `histogram_quantile`).
/// `None` when the histogram is empty.
pub fn quantile(q: f64, buckets: &[(f64, f64)]) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower = 0.0;
    let mut below = 0.0;
    for &(upper, cumulative) in buckets {
        if cumulative >= rank {
            if upper.is_infinite() {
                // Above the highest finite bound: report that bound.
                return Some(lower);
            }
            let in_bucket = cumulative - below;
            let fraction = if in_bucket > 0.0 {
                (rank - below) / in_bucket
            } else {
                1.0
            };
            return Some(lower + (upper - lower) * fraction);
        }
        lower = upper;
        below = cumulative;
    }
    Some(lower)
}

/// Per-bucket difference of two cumulative histograms (never negative).
fn bucket_delta(now: &[(f64, f64)], then: &[(f64, f64)]) -> Vec<(f64, f64)> {
    now.iter()
        .map(|&(le, count)| {
            let before = then.iter().find(|(l, _)| *l == le).map_or(0.0, |(_, c)| *c);
            (le, (count - before).max(0.0))
        })
        .collect()
}

fn per_second(
    now: &BTreeMap<String, f64>,
    then: &BTreeMap<String, f64>,
    seconds: f64,
) -> BTreeMap<String, f64> {
    now.iter()
        .map(|(k, v)| {
            let before = then.get(k).copied().unwrap_or(0.0);
            (k.clone(), ((v - before).max(0.0)) / seconds)
        })
        .collect()
}

impl TimeSeries {
    /// Reads one rendering of the registry taken at `t` (Unix ms) and appends a point.
    pub fn sample(&self, text: &str, t: u64) {
        let reading = read(text, t);
        let mut store = match self.inner.lock() {
            Ok(store) => store,
            Err(poisoned) => poisoned.into_inner(),
        };
        // The oldest reading still inside the window, or an empty start.
        let start = store.readings.front().cloned().unwrap_or(Reading {
            t: t.saturating_sub(1000),
            ..Reading::default()
        });
        let seconds = (t.saturating_sub(start.t) as f64 / 1000.0).max(0.001);
        let requests = (reading.requests - start.requests).max(0.0);
        let errors = (reading.errors - start.errors).max(0.0);
        let window = bucket_delta(&reading.buckets, &start.buckets);
        let gauges = &reading.gauges;
        let point = Point {
            t,
            requests_total: reading.requests,
            requests_per_second: requests / seconds,
            errors_per_second: errors / seconds,
            error_ratio: if requests > 0.0 {
                (errors / requests).min(1.0)
            } else {
                0.0
            },
            latency_p50_seconds: quantile(0.50, &window),
            latency_p95_seconds: quantile(0.95, &window),
            latency_p99_seconds: quantile(0.99, &window),
            in_flight: gauges.in_flight,
            modality: per_second(&reading.modality, &start.modality, seconds),
            task: per_second(&reading.task, &start.task, seconds),
            sidecar_resident_bytes: gauges.sidecar_resident,
            upstream_resident_bytes: gauges.upstream_resident,
            gpu_memory_used_bytes: gauges.gpu_used,
            gpu_memory_total_bytes: gauges.gpu_total,
            gpu_utilization_ratio: (!gauges.gpu_utilization.is_empty()).then(|| {
                gauges.gpu_utilization.iter().sum::<f64>() / gauges.gpu_utilization.len() as f64
            }),
            drift_p_value: gauges.drift_p_mmd.or(gauges.drift_p),
            output_anomalies_per_second: reading
                .output_anomalies
                .map(|now| (now - start.output_anomalies.unwrap_or(0.0)).max(0.0) / seconds),
            anomalies_active: gauges.anomalies_active,
        };
        store.readings.push_back(reading);
        while store.readings.len() > WINDOW_SECONDS + 1 {
            store.readings.pop_front();
        }
        store.points.push_back(point);
        while store.points.len() > CAPACITY {
            store.points.pop_front();
        }
    }

    /// Points newer than `since` (Unix ms), at most `limit`, oldest first.
    pub fn since(&self, since: u64, limit: usize) -> Vec<Point> {
        let store = match self.inner.lock() {
            Ok(store) => store,
            Err(poisoned) => poisoned.into_inner(),
        };
        let newer: Vec<&Point> = store.points.iter().filter(|p| p.t > since).collect();
        let skip = newer.len().saturating_sub(limit);
        newer.into_iter().skip(skip).cloned().collect()
    }

    pub fn len(&self) -> usize {
        self.inner.lock().map(|s| s.points.len()).unwrap_or(0)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// Samples the registry once a second until shutdown.
pub async fn run(state: Arc<AdminState>, mut shutdown: ShutdownSignal) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = ticker.tick() => {}
            _ = shutdown.recv() => return,
        }
        let text = super::exposition(&state);
        state.timeseries.sample(&text, unix_ms());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn histogram(counts: &[(&str, f64)], modality: &str) -> String {
        let mut text = String::new();
        let mut total = 0.0;
        for (le, count) in counts {
            text.push_str(&format!(
                "magma_request_duration_seconds_bucket{{model_type=\"magma-8b\",status=\"success\",modality=\"{modality}\",task=\"robot_action\",le=\"{le}\"}} {count}\n"
            ));
            total = *count;
        }
        text.push_str(&format!(
            "magma_request_duration_seconds_count{{model_type=\"magma-8b\",status=\"success\",modality=\"{modality}\",task=\"robot_action\"}} {total}\n"
        ));
        text
    }

    #[test]
    fn quantile_interpolates_inside_the_bucket() {
        // 100 observations: 50 in (0,1], 40 in (1,2], 10 in (2,+Inf).
        let buckets = [(1.0, 50.0), (2.0, 90.0), (f64::INFINITY, 100.0)];
        assert_eq!(quantile(0.5, &buckets), Some(1.0));
        assert!((quantile(0.7, &buckets).unwrap() - 1.5).abs() < 1e-9);
        assert_eq!(
            quantile(0.95, &buckets),
            Some(2.0),
            "above the last finite bound"
        );
        assert!((quantile(0.25, &buckets).unwrap() - 0.5).abs() < 1e-9);
        assert_eq!(quantile(0.5, &[(1.0, 0.0), (f64::INFINITY, 0.0)]), None);
    }

    #[test]
    fn rates_and_quantiles_come_from_the_window() {
        let series = TimeSeries::default();
        let empty =
            "magma_requests_total{model_type=\"magma-8b\",route=\"/predict\",code=\"2xx\"} 0\n";
        series.sample(empty, 10_000);
        // 10 s later: 20 requests, all between 1 and 1.5 s, 2 errors.
        let mut text = histogram(&[("1", 0.0), ("1.5", 20.0), ("+Inf", 20.0)], "image");
        text.push_str(
            "magma_requests_total{model_type=\"magma-8b\",route=\"/predict\",code=\"2xx\"} 18\n",
        );
        text.push_str(
            "magma_requests_total{model_type=\"magma-8b\",route=\"/predict\",code=\"5xx\"} 2\n",
        );
        text.push_str("magma_request_errors_total{kind=\"upstream_5xx\"} 2\n");
        text.push_str("magma_process_resident_memory_bytes 1048576\n");
        text.push_str("magma_drift_p_value{detector=\"mmd\",features=\"input\"} 0.2\nmagma_drift_p_value{detector=\"ks\",features=\"input\"} 0.01\n");
        series.sample(&text, 20_000);
        let points = series.since(0, 100);
        assert_eq!(points.len(), 2);
        let last = &points[1];
        assert_eq!(last.requests_total, 20.0);
        assert!((last.requests_per_second - 2.0).abs() < 1e-9);
        assert!((last.errors_per_second - 0.2).abs() < 1e-9);
        assert!((last.error_ratio - 0.1).abs() < 1e-9);
        assert!((last.latency_p50_seconds.unwrap() - 1.25).abs() < 1e-9);
        assert_eq!(last.modality.get("image"), Some(&2.0));
        assert_eq!(last.task.get("robot_action"), Some(&2.0));
        assert_eq!(last.sidecar_resident_bytes, Some(1048576.0));
        assert_eq!(last.drift_p_value, Some(0.2), "MMD is the headline test");
        assert_eq!(last.gpu_memory_used_bytes, None);
        assert_eq!(series.since(10_000, 100).len(), 1);
        assert_eq!(series.since(0, 1)[0].t, 20_000);
    }

    #[test]
    fn the_ring_is_bounded() {
        let series = TimeSeries::default();
        for i in 0..(CAPACITY as u64 + 50) {
            series.sample("magma_requests_total 1\n", i * 1000);
        }
        assert_eq!(series.len(), CAPACITY);
        assert_eq!(series.since(0, usize::MAX)[0].t, 50_000);
    }
}

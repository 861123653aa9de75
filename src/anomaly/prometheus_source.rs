//! Assembles a [`SignalSnapshot`] from the process's own Prometheus registry,
//! so the engine needs no glue from the proxy or the collectors.
//!
//! Every interval the registry is rendered (the same text `/metrics` serves)
//! and parsed. Cumulative series are turned into per-interval values by
//! differencing with the previous reading:
//!
//! - latency p50/p95/p99 and TTFB p95: the delta of each cumulative bucket of
//!   `magma_request_duration_seconds` / `magma_time_to_first_byte_seconds`,
//!   summed over all label sets, then the quantile by linear interpolation in
//!   the bucket that holds the rank (as PromQL's `histogram_quantile`); `None`
//!   when no request finished in the interval;
//! - error rate = Δ`magma_request_errors_total` / Δ`magma_requests_total`,
//!   timeout rate the same with `kind="timeout"`, QPS = Δrequests / Δt;
//! - output anomaly rate = Δ`magma_outputs_defective_total` / Δ`magma_outputs_checked_total`
//!   (answers with any defect, so an answer with two kinds counts once and
//!   the rate stays a share of answers);
//!   feedback down rate = Δ`magma_feedback_total{rating="down"}` / Δ`magma_feedback_total`;
//! - gauges are read as they are: in-flight, model RSS, GPU memory used/total
//!   (summed over GPUs), GPU utilisation and temperature (the hottest / busiest
//!   GPU), the smallest drift p-value, drift detected, throttled.
//!
//! A counter that went down (process restart, reset) counts its current
//! value as the delta. The first reading has no previous one: rates and
//! quantiles are `None` then.

use std::collections::HashMap;

use super::signals::SignalSnapshot;
use crate::exposition::{self, SampleLine as Sample};
use crate::recorder::MetricsHandle;
use crate::telemetry;

/// Names of series owned by other areas (resources, drift, sampling); they
/// must match the catalogue entries those areas declare.
pub mod external {
    pub const UPSTREAM_PROCESS_RSS: &str = "magma_upstream_process_resident_memory_bytes";
    pub const UPSTREAM_PROCESS_START_TIME: &str = "magma_upstream_process_start_time_seconds";
    pub const GPU_MEMORY_USED: &str = "magma_gpu_memory_used_bytes";
    pub const GPU_MEMORY_TOTAL: &str = "magma_gpu_memory_total_bytes";
    pub const GPU_UTILIZATION: &str = "magma_gpu_utilization_ratio";
    pub const GPU_TEMPERATURE: &str = "magma_gpu_temperature_celsius";
    pub const GPU_THROTTLED: &str = "magma_gpu_throttled";
    pub const DRIFT_P_VALUE: &str = "magma_drift_p_value";
    pub const DRIFT_DETECTED: &str = "magma_drift_detected";
    pub const SAMPLES: &str = "magma_samples_total";
}

/// Where the registry text comes from.
pub trait RegistryText: Send {
    fn render(&self) -> String;
}

impl RegistryText for MetricsHandle {
    fn render(&self) -> String {
        MetricsHandle::render(self)
    }
}

/// Cumulative values kept from the previous reading.
#[derive(Debug, Default, Clone)]
struct Cumulative {
    at_unix: f64,
    counters: HashMap<&'static str, f64>,
    /// Per histogram: (upper bound, cumulative count), ascending.
    histograms: HashMap<&'static str, Vec<(f64, f64)>>,
}

/// Builds snapshots from a registry.
pub struct PrometheusSource<R: RegistryText = MetricsHandle> {
    registry: R,
    previous: Option<Cumulative>,
}

const REQUESTS_KEY: &str = "requests";
const ERRORS_KEY: &str = "errors";
const TIMEOUTS_KEY: &str = "timeouts";
const CHECKED_KEY: &str = "checked";
const DEFECTIVE_KEY: &str = "defective";
const FEEDBACK_KEY: &str = "feedback";
const FEEDBACK_DOWN_KEY: &str = "feedback_down";
const DROPPED_KEY: &str = "samples_dropped";

impl<R: RegistryText> PrometheusSource<R> {
    pub fn new(registry: R) -> Self {
        Self {
            registry,
            previous: None,
        }
    }

    /// Reads the registry now and returns the signals over the interval since
    /// the previous call.
    pub fn snapshot(&mut self, at_unix: f64) -> SignalSnapshot {
        let text = self.registry.render();
        let samples: Vec<Sample> = exposition::samples(&text).collect();
        let current = cumulative(&samples, at_unix);
        let mut snapshot = SignalSnapshot {
            at_unix,
            in_flight: gauge_sum(&samples, telemetry::REQUESTS_IN_FLIGHT),
            model_rss_bytes: gauge_max(&samples, external::UPSTREAM_PROCESS_RSS),
            upstream_start_time: gauge_max(&samples, external::UPSTREAM_PROCESS_START_TIME),
            gpu_utilization: gauge_max(&samples, external::GPU_UTILIZATION),
            gpu_temperature_celsius: gauge_max(&samples, external::GPU_TEMPERATURE),
            drift_p_value: gauge_min(&samples, external::DRIFT_P_VALUE),
            drift_detected: gauge_max(&samples, external::DRIFT_DETECTED).map(|v| v >= 1.0),
            gpu_throttled: gauge_max(&samples, external::GPU_THROTTLED).map(|v| v >= 1.0),
            ..SignalSnapshot::default()
        };
        if let (Some(used), Some(total)) = (
            gauge_sum(&samples, external::GPU_MEMORY_USED),
            gauge_sum(&samples, external::GPU_MEMORY_TOTAL),
        ) {
            if total > 0.0 {
                snapshot.gpu_memory_ratio = Some(used / total);
            }
        }
        if let Some(previous) = &self.previous {
            let delta = |key: &str| {
                let now = current.counters.get(key).copied().unwrap_or(0.0);
                let before = previous.counters.get(key).copied().unwrap_or(0.0);
                if now >= before {
                    now - before
                } else {
                    now
                }
            };
            let seconds = at_unix - previous.at_unix;
            let requests = delta(REQUESTS_KEY);
            if seconds > 0.0 {
                snapshot.qps = Some(requests / seconds);
            }
            if requests > 0.0 {
                snapshot.error_rate = Some(delta(ERRORS_KEY) / requests);
                snapshot.timeout_rate = Some(delta(TIMEOUTS_KEY) / requests);
            }
            let checked = delta(CHECKED_KEY);
            if checked > 0.0 {
                snapshot.output_anomaly_rate = Some(delta(DEFECTIVE_KEY) / checked);
            }
            let feedback = delta(FEEDBACK_KEY);
            if feedback > 0.0 {
                snapshot.feedback_down_rate = Some(delta(FEEDBACK_DOWN_KEY) / feedback);
            }
            if current.counters.contains_key(DROPPED_KEY) {
                snapshot.sample_drops = Some(delta(DROPPED_KEY));
            }
            let latency = bucket_delta(&current, previous, telemetry::REQUEST_DURATION);
            snapshot.latency_p50 = quantile(&latency, 0.50);
            snapshot.latency_p95 = quantile(&latency, 0.95);
            snapshot.latency_p99 = quantile(&latency, 0.99);
            let ttfb = bucket_delta(&current, previous, telemetry::TIME_TO_FIRST_BYTE);
            snapshot.ttfb_p95 = quantile(&ttfb, 0.95);
        }
        self.previous = Some(current);
        snapshot
    }
}

fn cumulative(samples: &[Sample], at_unix: f64) -> Cumulative {
    let mut out = Cumulative {
        at_unix,
        ..Cumulative::default()
    };
    let mut add = |key: &'static str, value: f64| {
        *out.counters.entry(key).or_default() += value;
    };
    for s in samples {
        if !s.value.is_finite() {
            continue;
        }
        match s.name {
            telemetry::REQUESTS => add(REQUESTS_KEY, s.value),
            telemetry::REQUEST_ERRORS => {
                add(ERRORS_KEY, s.value);
                if s.label("kind") == Some("timeout") {
                    add(TIMEOUTS_KEY, s.value);
                }
            }
            telemetry::OUTPUTS_CHECKED => add(CHECKED_KEY, s.value),
            telemetry::OUTPUTS_DEFECTIVE => add(DEFECTIVE_KEY, s.value),
            telemetry::FEEDBACK => {
                add(FEEDBACK_KEY, s.value);
                if s.label("rating") == Some("down") {
                    add(FEEDBACK_DOWN_KEY, s.value);
                }
            }
            external::SAMPLES if s.label("outcome") == Some("dropped") => add(DROPPED_KEY, s.value),
            _ => {}
        }
    }
    for name in [telemetry::REQUEST_DURATION, telemetry::TIME_TO_FIRST_BYTE] {
        out.histograms.insert(name, histogram(samples, name));
    }
    out
}

/// Cumulative buckets of a histogram summed over its label sets.
fn histogram(samples: &[Sample], name: &str) -> Vec<(f64, f64)> {
    let bucket_name = format!("{name}_bucket");
    let mut by_bound: Vec<(f64, f64)> = Vec::new();
    for s in samples.iter().filter(|s| s.name == bucket_name) {
        let Some(bound) = s.label("le").and_then(parse_bound) else {
            continue;
        };
        match by_bound.iter_mut().find(|(b, _)| *b == bound) {
            Some(entry) => entry.1 += s.value,
            None => by_bound.push((bound, s.value)),
        }
    }
    by_bound.sort_by(|a, b| a.0.total_cmp(&b.0));
    by_bound
}

fn parse_bound(text: &str) -> Option<f64> {
    match text {
        "+Inf" => Some(f64::INFINITY),
        other => other.parse().ok(),
    }
}

fn bucket_delta(current: &Cumulative, previous: &Cumulative, name: &str) -> Vec<(f64, f64)> {
    let now = current.histograms.get(name).cloned().unwrap_or_default();
    let before = previous.histograms.get(name);
    let reset = before.is_some_and(|b| {
        b.iter().any(|(bound, count)| {
            now.iter()
                .find(|(nb, _)| nb == bound)
                .is_some_and(|(_, c)| c < count)
        })
    });
    now.into_iter()
        .map(|(bound, count)| {
            let earlier = if reset {
                0.0
            } else {
                before
                    .and_then(|b| b.iter().find(|(pb, _)| *pb == bound))
                    .map_or(0.0, |(_, c)| *c)
            };
            (bound, (count - earlier).max(0.0))
        })
        .collect()
}

/// Quantile `q` of cumulative buckets, by linear interpolation inside the
/// bucket holding the rank; the lowest bucket starts at 0; a rank in the
/// +Inf bucket returns the highest finite bound. `None` without observations.
pub fn quantile(buckets: &[(f64, f64)], q: f64) -> Option<f64> {
    let total = buckets.last()?.1;
    if total <= 0.0 {
        return None;
    }
    let rank = q * total;
    let mut lower_bound = 0.0;
    let mut lower_count = 0.0;
    for (bound, count) in buckets {
        if *count >= rank {
            if bound.is_infinite() {
                return Some(lower_bound);
            }
            let in_bucket = count - lower_count;
            if in_bucket <= 0.0 {
                return Some(*bound);
            }
            return Some(lower_bound + (bound - lower_bound) * (rank - lower_count) / in_bucket);
        }
        lower_bound = *bound;
        lower_count = *count;
    }
    Some(lower_bound)
}

fn values<'a>(samples: &'a [Sample], name: &'a str) -> impl Iterator<Item = f64> + 'a {
    samples
        .iter()
        .filter(move |s| s.name == name && s.value.is_finite())
        .map(|s| s.value)
}

fn gauge_sum(samples: &[Sample], name: &str) -> Option<f64> {
    values(samples, name).fold(None, |acc, v| Some(acc.unwrap_or(0.0) + v))
}

fn gauge_max(samples: &[Sample], name: &str) -> Option<f64> {
    values(samples, name).fold(None, |acc: Option<f64>, v| {
        Some(acc.map_or(v, |a| a.max(v)))
    })
}

fn gauge_min(samples: &[Sample], name: &str) -> Option<f64> {
    values(samples, name).fold(None, |acc: Option<f64>, v| {
        Some(acc.map_or(v, |a| a.min(v)))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantile_interpolates_like_histogram_quantile() {
        // 100 observations: 50 in (0, 0.1], 40 in (0.1, 0.5], 10 in (0.5, 1].
        let buckets = [
            (0.1, 50.0),
            (0.5, 90.0),
            (1.0, 100.0),
            (f64::INFINITY, 100.0),
        ];
        assert!((quantile(&buckets, 0.5).unwrap() - 0.1).abs() < 1e-12);
        // rank 95: bucket (0.5, 1], 5 of 10 -> 0.75
        assert!((quantile(&buckets, 0.95).unwrap() - 0.75).abs() < 1e-12);
        // rank 25 in the first bucket -> 0.05
        assert!((quantile(&buckets, 0.25).unwrap() - 0.05).abs() < 1e-12);
        assert_eq!(quantile(&[(1.0, 0.0), (f64::INFINITY, 0.0)], 0.5), None);
        assert_eq!(
            quantile(&[(1.0, 0.0), (f64::INFINITY, 3.0)], 0.5),
            Some(1.0)
        );
    }

    struct Text(std::sync::Mutex<String>);

    impl RegistryText for std::sync::Arc<Text> {
        fn render(&self) -> String {
            self.0.lock().map(|t| t.clone()).unwrap_or_default()
        }
    }

    #[test]
    fn deltas_between_readings() {
        let text = std::sync::Arc::new(Text(std::sync::Mutex::new(String::new())));
        let set = |body: &str| *text.0.lock().unwrap() = body.to_owned();
        let mut source = PrometheusSource::new(text.clone());
        set("magma_requests_total{code=\"2xx\"} 100\nmagma_request_duration_seconds_bucket{le=\"0.5\"} 100\nmagma_request_duration_seconds_bucket{le=\"+Inf\"} 100\nmagma_upstream_process_resident_memory_bytes 1000\n");
        let first = source.snapshot(0.0);
        assert_eq!(first.model_rss_bytes, Some(1000.0));
        assert_eq!(first.qps, None);
        set("magma_requests_total{code=\"2xx\"} 150\nmagma_requests_total{code=\"5xx\"} 10\nmagma_request_errors_total{kind=\"timeout\"} 4\nmagma_request_errors_total{kind=\"upstream_5xx\"} 6\nmagma_request_duration_seconds_bucket{model_type=\"a\",le=\"0.5\"} 110\nmagma_request_duration_seconds_bucket{model_type=\"a\",le=\"+Inf\"} 160\n");
        let second = source.snapshot(10.0);
        assert_eq!(second.qps, Some(6.0));
        assert!((second.error_rate.unwrap() - 10.0 / 60.0).abs() < 1e-12);
        assert!((second.timeout_rate.unwrap() - 4.0 / 60.0).abs() < 1e-12);
        // 60 new observations: 10 at <= 0.5, 50 above: p50 lies in +Inf -> 0.5
        assert_eq!(second.latency_p50, Some(0.5));
        assert_eq!(second.model_rss_bytes, None);
    }

    #[test]
    fn the_output_anomaly_rate_counts_each_defective_answer_once() {
        let text = std::sync::Arc::new(Text(std::sync::Mutex::new(String::new())));
        let set = |body: &str| *text.0.lock().unwrap() = body.to_owned();
        let mut source = PrometheusSource::new(text.clone());
        set("magma_outputs_checked_total{task=\"chat\"} 0\n");
        source.snapshot(0.0);
        // 10 answers, 4 of them defective; three of those show two kinds
        // each, so the per-kind counters add up to 7.
        set(concat!(
            "magma_outputs_checked_total{task=\"chat\"} 6\n",
            "magma_outputs_checked_total{task=\"robot_action\"} 4\n",
            "magma_output_anomalies_total{task=\"chat\",kind=\"empty\"} 1\n",
            "magma_output_anomalies_total{task=\"robot_action\",kind=\"unparseable_action\"} 3\n",
            "magma_output_anomalies_total{task=\"robot_action\",kind=\"action_out_of_range\"} 3\n",
            "magma_outputs_defective_total{task=\"chat\"} 1\n",
            "magma_outputs_defective_total{task=\"robot_action\"} 3\n",
        ));
        let snapshot = source.snapshot(10.0);
        assert_eq!(snapshot.output_anomaly_rate, Some(0.4));
    }
}

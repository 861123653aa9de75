//! The process's metrics recorder: the Prometheus exporter keeps counters
//! and gauges; histograms are [`BucketHistogram`]s, counted in place.
//!
//! The exporter's own histogram stores every sample, stamped with the time,
//! in a lock-free list until an upkeep pass folds the list into buckets: a
//! clock read and a list push per sample, then a second visit to each
//! sample. With about twenty histogram samples per proxied request (five
//! for the exchange, the rest for the answer's quality), that storage showed
//! in the proxy's profile; a bucket histogram is two relaxed atomic updates.
//!
//! `/metrics` is the exporter's text followed by the histograms, written
//! with the exporter's own help and type line functions, in the same
//! layout: one family per name, a blank line after each.

mod histogram;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::{Arc, RwLock};

use metrics::{
    Counter, Gauge, Histogram, Key, KeyName, Metadata, Recorder as MetricsRecorder, SharedString,
    Unit,
};
use metrics_exporter_prometheus::formatting::{
    sanitize_label_key, sanitize_label_value, sanitize_metric_name, write_help_line,
    write_type_line,
};
use metrics_exporter_prometheus::{PrometheusHandle, PrometheusRecorder};

pub use histogram::{BucketHistogram, Snapshot};

/// The bucket bounds of a histogram, by metric name.
pub type Layout = Box<dyn Fn(&str) -> Vec<f64> + Send + Sync>;

/// Records counters and gauges into the exporter and histograms into
/// bucket histograms laid out by `layout`.
pub struct Recorder {
    prometheus: PrometheusRecorder,
    histograms: Arc<Histograms>,
}

/// Renders everything a [`Recorder`] holds; cheap to clone.
#[derive(Clone)]
pub struct MetricsHandle {
    prometheus: PrometheusHandle,
    histograms: Arc<Histograms>,
}

/// Every histogram series, by key, and the help text of each name.
struct Histograms {
    layout: Layout,
    series: RwLock<HashMap<Key, Arc<BucketHistogram>>>,
    help: RwLock<HashMap<String, String>>,
}

impl Recorder {
    pub fn new(prometheus: PrometheusRecorder, layout: Layout) -> Self {
        Self {
            prometheus,
            histograms: Arc::new(Histograms {
                layout,
                series: RwLock::default(),
                help: RwLock::default(),
            }),
        }
    }

    pub fn handle(&self) -> MetricsHandle {
        MetricsHandle {
            prometheus: self.prometheus.handle(),
            histograms: self.histograms.clone(),
        }
    }
}

impl MetricsHandle {
    /// The Prometheus text exposition (format 0.0.4) of every series.
    pub fn render(&self) -> String {
        let mut text = self.prometheus.render();
        self.histograms.render_into(&mut text);
        text
    }
}

impl std::fmt::Debug for MetricsHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MetricsHandle").finish_non_exhaustive()
    }
}

impl MetricsRecorder for Recorder {
    fn describe_counter(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_counter(key, unit, description);
    }

    fn describe_gauge(&self, key: KeyName, unit: Option<Unit>, description: SharedString) {
        self.prometheus.describe_gauge(key, unit, description);
    }

    /// The first description of a name wins, as in the exporter. Units are
    /// not appended to names (the catalogue's names carry them already).
    fn describe_histogram(&self, key: KeyName, _unit: Option<Unit>, description: SharedString) {
        if let Ok(mut help) = self.histograms.help.write() {
            help.entry(sanitize_metric_name(key.as_str()))
                .or_insert_with(|| description.into_owned());
        }
    }

    fn register_counter(&self, key: &Key, metadata: &Metadata<'_>) -> Counter {
        self.prometheus.register_counter(key, metadata)
    }

    fn register_gauge(&self, key: &Key, metadata: &Metadata<'_>) -> Gauge {
        self.prometheus.register_gauge(key, metadata)
    }

    fn register_histogram(&self, key: &Key, _metadata: &Metadata<'_>) -> Histogram {
        Histogram::from_arc(self.histograms.series(key))
    }
}

impl Histograms {
    /// The series of `key`, created on first use.
    fn series(&self, key: &Key) -> Arc<BucketHistogram> {
        if let Ok(series) = self.series.read() {
            if let Some(found) = series.get(key) {
                return found.clone();
            }
        }
        let made = || Arc::new(BucketHistogram::new(&(self.layout)(key.name())));
        match self.series.write() {
            Ok(mut series) => series.entry(key.clone()).or_insert_with(made).clone(),
            // A writer panicked: record into a series nobody renders rather
            // than fail the request that records.
            Err(_) => made(),
        }
    }

    fn render_into(&self, out: &mut String) {
        // name -> [(rendered labels, snapshot)], names and label sets sorted
        // so two scrapes list series in the same order.
        let mut families: BTreeMap<String, Vec<(String, Snapshot)>> = BTreeMap::new();
        if let Ok(series) = self.series.read() {
            for (key, histogram) in series.iter() {
                let labels = key
                    .labels()
                    .map(|label| {
                        format!(
                            "{}=\"{}\"",
                            sanitize_label_key(label.key()),
                            sanitize_label_value(label.value())
                        )
                    })
                    .collect::<Vec<_>>()
                    .join(",");
                families
                    .entry(sanitize_metric_name(key.name()))
                    .or_default()
                    .push((labels, histogram.snapshot()));
            }
        }
        let help = self.help.read().ok();
        for (name, mut members) in families {
            members.sort_by(|a, b| a.0.cmp(&b.0));
            if let Some(text) = help.as_ref().and_then(|help| help.get(&name)) {
                write_help_line(out, &name, None, None, text);
            }
            write_type_line(out, &name, None, None, "histogram");
            for (labels, snapshot) in members {
                write_series(out, &name, &labels, &snapshot);
            }
            out.push('\n');
        }
    }
}

/// The `_bucket`, `_sum` and `_count` lines of one series.
fn write_series(out: &mut String, name: &str, labels: &str, snapshot: &Snapshot) {
    let separator = if labels.is_empty() { "" } else { "," };
    for (bound, count) in &snapshot.buckets {
        let _ = writeln!(
            out,
            "{name}_bucket{{{labels}{separator}le=\"{}\"}} {count}",
            Number(*bound)
        );
    }
    let _ = writeln!(
        out,
        "{name}_bucket{{{labels}{separator}le=\"+Inf\"}} {}",
        snapshot.count
    );
    let braces = |text: &str| {
        if text.is_empty() {
            String::new()
        } else {
            format!("{{{text}}}")
        }
    };
    let _ = writeln!(out, "{name}_sum{} {}", braces(labels), Number(snapshot.sum));
    let _ = writeln!(out, "{name}_count{} {}", braces(labels), snapshot.count);
}

/// A float as the exposition format spells it: `+Inf`, `-Inf`, `NaN`, or
/// the shortest decimal that reads back as the same value.
struct Number(f64);

impl std::fmt::Display for Number {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.0 {
            v if v.is_nan() => f.write_str("NaN"),
            v if v == f64::INFINITY => f.write_str("+Inf"),
            v if v == f64::NEG_INFINITY => f.write_str("-Inf"),
            v => write!(f, "{v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use metrics_exporter_prometheus::PrometheusBuilder;

    fn recorder() -> Recorder {
        Recorder::new(
            PrometheusBuilder::new().build_recorder(),
            Box::new(|name| match name {
                "latency_seconds" => vec![0.1, 2.0],
                _ => vec![1.0],
            }),
        )
    }

    #[test]
    fn histograms_render_after_counters_in_the_exporter_layout() {
        let recorder = recorder();
        metrics::with_local_recorder(&recorder, || {
            metrics::describe_histogram!("latency_seconds", "Time per request.\nSecond line.");
            metrics::counter!("requests_total", "code" => "2xx").increment(2);
            let fast =
                metrics::histogram!("latency_seconds", "route" => "/predict", "code" => "2xx");
            fast.record(0.05);
            fast.record(2.0);
            metrics::histogram!("latency_seconds", "route" => "/health", "code" => "2xx")
                .record(9.0);
            metrics::histogram!("unlabelled").record(0.5);
        });
        let text = recorder.handle().render();
        let histograms = &text[text.find("# HELP latency_seconds").expect(&text)..];
        assert!(
            text.find("requests_total{code=\"2xx\"} 2").expect(&text)
                < text.len() - histograms.len()
        );
        assert_eq!(
            histograms,
            "# HELP latency_seconds Time per request.\\nSecond line.\n\
             # TYPE latency_seconds histogram\n\
             latency_seconds_bucket{route=\"/health\",code=\"2xx\",le=\"0.1\"} 0\n\
             latency_seconds_bucket{route=\"/health\",code=\"2xx\",le=\"2\"} 0\n\
             latency_seconds_bucket{route=\"/health\",code=\"2xx\",le=\"+Inf\"} 1\n\
             latency_seconds_sum{route=\"/health\",code=\"2xx\"} 9\n\
             latency_seconds_count{route=\"/health\",code=\"2xx\"} 1\n\
             latency_seconds_bucket{route=\"/predict\",code=\"2xx\",le=\"0.1\"} 1\n\
             latency_seconds_bucket{route=\"/predict\",code=\"2xx\",le=\"2\"} 2\n\
             latency_seconds_bucket{route=\"/predict\",code=\"2xx\",le=\"+Inf\"} 2\n\
             latency_seconds_sum{route=\"/predict\",code=\"2xx\"} 2.05\n\
             latency_seconds_count{route=\"/predict\",code=\"2xx\"} 2\n\
             \n\
             # TYPE unlabelled histogram\n\
             unlabelled_bucket{le=\"1\"} 1\n\
             unlabelled_bucket{le=\"+Inf\"} 1\n\
             unlabelled_sum 0.5\n\
             unlabelled_count 1\n\
             \n"
        );
    }

    #[test]
    fn one_key_is_one_series() {
        let recorder = recorder();
        metrics::with_local_recorder(&recorder, || {
            for _ in 0..3 {
                metrics::histogram!("latency_seconds", "route" => "/predict").record(1.0);
            }
        });
        let text = recorder.handle().render();
        assert_eq!(text.matches("latency_seconds_count").count(), 1, "{text}");
        assert!(
            text.contains("latency_seconds_count{route=\"/predict\"} 3"),
            "{text}"
        );
    }

    #[test]
    fn special_values_use_the_exposition_spelling() {
        assert_eq!(Number(f64::INFINITY).to_string(), "+Inf");
        assert_eq!(Number(f64::NEG_INFINITY).to_string(), "-Inf");
        assert_eq!(Number(f64::NAN).to_string(), "NaN");
        assert_eq!(Number(0.005).to_string(), "0.005");
        assert_eq!(Number(120.0).to_string(), "120");
    }
}

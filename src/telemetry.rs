//! The metric catalogue: every metric magma-monitor exports is declared here,
//! once, with its type, unit, labels and help text.
//!
//! Code elsewhere refers to metrics only through the constants below, so a
//! rename happens in one place, and the README table, the alert rules and the
//! dashboard can be checked against this list (see `tests/`).
//!
//! Naming follows the Prometheus conventions: base units (`_seconds`,
//! `_bytes`, `_ratio`, `_celsius`, `_watts`, `_joules`, `_hertz`), counters end
//! in `_total`, and every name starts with `magma_`. Label values always come
//! from closed sets (see `label`), so a client can never create new series.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};
use metrics_exporter_prometheus::PrometheusBuilder;

use crate::recorder::{MetricsHandle, Recorder};

/// What kind of series a metric is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// One entry of the catalogue.
#[derive(Debug, Clone, Copy)]
pub struct Metric {
    pub name: &'static str,
    pub kind: Kind,
    pub unit: Option<Unit>,
    pub labels: &'static [&'static str],
    pub help: &'static str,
}

macro_rules! catalogue {
    ($( $konst:ident = $name:literal, $kind:ident, $unit:expr, [$($label:literal),*], $help:literal; )*) => {
        $( pub const $konst: &str = $name; )*
        /// Every metric, in the order the README lists them.
        pub const CATALOGUE: &[Metric] = &[
            $( Metric { name: $name, kind: Kind::$kind, unit: $unit, labels: &[$($label),*], help: $help }, )*
        ];
    };
}

catalogue! {
    // --- requests (proxy core) ---
    REQUEST_DURATION = "magma_request_duration_seconds", Histogram, Some(Unit::Seconds),
        ["model_type", "status", "modality", "task"],
        "Time from the request's arrival to the end of the response body.";
    REQUESTS = "magma_requests_total", Counter, None,
        ["model_type", "route", "code"],
        "Requests answered, by route and status class (1xx..5xx).";
    REQUEST_ERRORS = "magma_request_errors_total", Counter, None,
        ["kind"],
        "Requests that failed, by kind: upstream_5xx, upstream_unreachable, timeout, client_abort, bad_request, too_large, proxy_error.";
    REQUESTS_IN_FLIGHT = "magma_requests_in_flight", Gauge, None,
        [],
        "Requests being forwarded right now.";
    REQUEST_SIZE = "magma_request_size_bytes", Histogram, Some(Unit::Bytes),
        ["route"],
        "Request body size as forwarded.";
    RESPONSE_SIZE = "magma_response_size_bytes", Histogram, Some(Unit::Bytes),
        ["route"],
        "Response body size as forwarded.";
    TIME_TO_FIRST_BYTE = "magma_time_to_first_byte_seconds", Histogram, Some(Unit::Seconds),
        ["route"],
        "Time from the request's arrival until the upstream's response head arrived.";
    PROXY_OVERHEAD = "magma_proxy_overhead_seconds", Histogram, Some(Unit::Seconds),
        ["route"],
        "Time spent inside the proxy itself, not waiting for the client or the upstream.";
    CONNECTIONS_OPEN = "magma_connections_open", Gauge, None,
        [],
        "Client connections open right now.";
    CONNECTIONS = "magma_connections_total", Counter, None,
        ["outcome"],
        "Client connections by outcome: accepted, refused_limit.";
    CONNECTION_ERRORS = "magma_connection_errors_total", Counter, None,
        ["kind"],
        "Client connections that ended in an error: header_timeout, header_too_large, protocol, io.";
    REQUESTS_REFUSED = "magma_requests_refused_total", Counter, None,
        ["reason"],
        "Requests the proxy answered itself without forwarding them, by reason: framing, transfer_coding, host, method, target, too_large, draining.";
    TUNNELS = "magma_tunnels_total", Counter, None,
        ["protocol"],
        "Connections switched to a tunnelled protocol after the upstream's 101 (protocol: websocket, other).";
    TUNNELS_OPEN = "magma_tunnels_open", Gauge, None,
        [],
        "Tunnelled (upgraded) connections open right now.";
    UPSTREAM_UP = "magma_upstream_up", Gauge, None,
        [],
        "1 when the upstream's health path answered 2xx at the last poll.";
    UPSTREAM_HEALTH_CHECKS = "magma_upstream_health_checks_total", Counter, None,
        ["result"],
        "Upstream health polls by result: healthy, unhealthy, unreachable.";
    READY = "magma_ready", Gauge, None,
        [],
        "1 while the sidecar reports ready (upstream healthy, not draining).";
    BUILD_INFO = "magma_build_info", Gauge, None,
        ["version"],
        "Always 1; the label carries the magma-monitor version.";

    // --- drift ---
    DRIFT_P_VALUE = "magma_drift_p_value", Gauge, None,
        ["detector", "features"],
        "p-value of the last drift test (detector: mmd, ks, chi2; features: input, output, categorical).";
    DRIFT_STATISTIC = "magma_drift_statistic", Gauge, None,
        ["detector", "features"],
        "Statistic of the last drift test: MMD squared (mmd, online_mmd), largest KS or chi-square statistic (ks, chi2).";
    DRIFT_THRESHOLD = "magma_drift_threshold", Gauge, None,
        ["detector", "features"],
        "Threshold of the last drift test: statistic threshold (mmd, online_mmd) or corrected p-value cut-off (ks, chi2).";
    DRIFT_DETECTED = "magma_drift_detected", Gauge, None,
        ["detector", "features"],
        "1 when the last test of the detector found drift, else 0.";
    DRIFT_TESTS = "magma_drift_tests_total", Counter, None,
        ["detector", "result"],
        "Drift tests run, by detector and result: drift, no_drift, error.";
    DRIFT_TEST_DURATION = "magma_drift_test_duration_seconds", Histogram, Some(Unit::Seconds),
        ["detector"],
        "Time one window drift test took.";
    DRIFT_REFERENCE_SAMPLES = "magma_drift_reference_samples", Gauge, None,
        [],
        "Samples in the drift reference (while collecting: collected so far).";
    DRIFT_WINDOW_SAMPLES = "magma_drift_window_samples", Gauge, None,
        [],
        "Samples in the drift test window.";
    DRIFT_SAMPLES = "magma_drift_samples_total", Counter, None,
        ["outcome"],
        "Samples for the drift engine, by outcome: reference, window, rejected (width differs from the reference), dropped (drift queue full).";
    // --- payload (request/response understanding, sampling, analysis) ---
    REQUEST_IMAGES = "magma_request_images", Histogram, None,
        ["modality"],
        "Images in a request body (inline and by URL).";
    REQUEST_MEDIA_BYTES = "magma_request_media_bytes", Histogram, Some(Unit::Bytes),
        ["modality"],
        "Decoded bytes of inline media (images, audio, video) in a request body.";
    PAYLOAD_REQUESTS = "magma_payload_requests_total", Counter, None,
        ["format", "modality", "task"],
        "Request bodies by format (magma_predict, magma_predict_file, openai_chat, openai_completions, raw_media, unknown), modality and task.";
    PAYLOAD_MALFORMED = "magma_payload_malformed_total", Counter, None,
        ["side"],
        "Bodies that did not parse as their declared type and were labelled unknown, by side: request, response.";
    TOKENS = "magma_tokens_total", Counter, None,
        ["direction"],
        "Tokens the upstream reported in `usage`, by direction: input, output.";
    TIME_TO_FIRST_TOKEN = "magma_time_to_first_token_seconds", Histogram, Some(Unit::Seconds),
        ["route"],
        "Time from the request's arrival until the first streamed (SSE) event carrying generated text.";
    SAMPLES = "magma_samples_total", Counter, None,
        ["outcome"],
        "Sampled exchanges handed to analysis, by outcome: accepted, dropped (queue full), too_large (features only), over_budget (features only).";
    IMAGE_DECODE_ERRORS = "magma_image_decode_errors_total", Counter, None,
        ["format"],
        "Sampled images whose header or pixels could not be decoded, by format: png, jpeg, gif, webp, base64, other.";
    SAMPLE_LOG_RECORDS = "magma_sample_log_records_total", Counter, None,
        ["outcome"],
        "Sample log lines by outcome: written, error.";
    ANALYSIS_DURATION = "magma_analysis_duration_seconds", Histogram, Some(Unit::Seconds),
        [],
        "Time the analysis worker spent on one sample (features, log, hooks).";
    SAMPLE_COPY_BYTES = "magma_sample_copy_bytes", Gauge, Some(Unit::Bytes),
        [],
        "Memory held by sampled body copies (streaming, queued or being analysed).";

    // --- the sidecar's own process ---
    PROCESS_RESIDENT_MEMORY = "magma_process_resident_memory_bytes", Gauge, Some(Unit::Bytes),
        [],
        "Resident memory of the magma-monitor process.";
    PROCESS_CPU = "magma_process_cpu_seconds_total", Counter, Some(Unit::Seconds),
        [],
        "User plus system CPU time of the magma-monitor process.";
    PROCESS_OPEN_FDS = "magma_process_open_fds", Gauge, None,
        [],
        "Open file descriptors of the magma-monitor process.";
    PROCESS_START_TIME = "magma_process_start_time_seconds", Gauge, Some(Unit::Seconds),
        [],
        "Start time of the magma-monitor process, seconds since the Unix epoch.";

    // --- resources: GPU (NVML) and the upstream model process ---
    GPU_UP = "magma_gpu_up", Gauge, None,
        [],
        "1 while NVML answers and at least one selected GPU is found.";
    GPU_INFO = "magma_gpu_info", Gauge, None,
        ["gpu", "uuid", "name", "driver_version", "cuda_version"],
        "Always 1 per GPU; the labels carry its identity and the driver and CUDA versions.";
    GPU_DEVICE_UP = "magma_gpu_device_up", Gauge, None,
        ["gpu", "uuid", "name"],
        "1 while the GPU answers, 0 once it fell off the bus or needs a reset.";
    GPU_COLLECT_ERRORS = "magma_gpu_collect_errors_total", Counter, None,
        ["kind"],
        "GPU collection errors by kind: library_missing, init_failed, driver_not_loaded, no_device, not_supported, missing_symbol, no_permission, gpu_lost, other.";
    GPU_POLL_DURATION = "magma_gpu_poll_duration_seconds", Histogram, Some(Unit::Seconds),
        [],
        "Time one poll of every selected GPU took.";
    GPU_UTILIZATION = "magma_gpu_utilization_ratio", Gauge, None,
        ["gpu", "uuid", "name"],
        "Fraction of the last sample period in which a kernel ran on the GPU.";
    GPU_MEMORY_UTILIZATION = "magma_gpu_memory_utilization_ratio", Gauge, None,
        ["gpu", "uuid", "name"],
        "Fraction of the last sample period in which device memory was read or written.";
    GPU_MEMORY_USED = "magma_gpu_memory_used_bytes", Gauge, Some(Unit::Bytes),
        ["gpu", "uuid", "name"],
        "Device memory allocated.";
    GPU_MEMORY_FREE = "magma_gpu_memory_free_bytes", Gauge, Some(Unit::Bytes),
        ["gpu", "uuid", "name"],
        "Device memory not allocated.";
    GPU_MEMORY_TOTAL = "magma_gpu_memory_total_bytes", Gauge, Some(Unit::Bytes),
        ["gpu", "uuid", "name"],
        "Device memory installed.";
    GPU_MEMORY_RESERVED = "magma_gpu_memory_reserved_bytes", Gauge, Some(Unit::Bytes),
        ["gpu", "uuid", "name"],
        "Device memory reserved by the driver and firmware.";
    GPU_TEMPERATURE = "magma_gpu_temperature_celsius", Gauge, None,
        ["gpu", "uuid", "name"],
        "GPU die temperature.";
    GPU_POWER = "magma_gpu_power_watts", Gauge, None,
        ["gpu", "uuid", "name"],
        "Power draw of the board.";
    GPU_POWER_LIMIT = "magma_gpu_power_limit_watts", Gauge, None,
        ["gpu", "uuid", "name"],
        "Power limit the driver enforces.";
    GPU_ENERGY = "magma_gpu_energy_joules_total", Counter, None,
        ["gpu", "uuid", "name"],
        "Energy used since the driver was loaded (whole joules).";
    GPU_SM_CLOCK = "magma_gpu_sm_clock_hertz", Gauge, None,
        ["gpu", "uuid", "name"],
        "Current SM clock.";
    GPU_MEMORY_CLOCK = "magma_gpu_memory_clock_hertz", Gauge, None,
        ["gpu", "uuid", "name"],
        "Current memory clock.";
    GPU_ECC_ERRORS = "magma_gpu_ecc_errors_total", Counter, None,
        ["gpu", "uuid", "name", "type"],
        "ECC errors over the device's lifetime by type: corrected, uncorrected.";
    GPU_THROTTLED = "magma_gpu_throttled", Gauge, None,
        ["gpu", "uuid", "name", "reason"],
        "1 while clocks are held down for the reason (gpu_idle, sw_power_cap, hw_slowdown, sw_thermal_slowdown, hw_thermal_slowdown, ...).";
    GPU_PCIE_REPLAYS = "magma_gpu_pcie_replays_total", Counter, None,
        ["gpu", "uuid", "name"],
        "PCIe replays (link-level retransmissions).";
    GPU_PROCESSES = "magma_gpu_processes", Gauge, None,
        ["gpu", "uuid", "name"],
        "Processes with a compute or graphics context on the GPU.";
    GPU_PROCESS_MEMORY = "magma_gpu_process_memory_bytes", Gauge, Some(Unit::Bytes),
        ["gpu", "uuid", "name"],
        "GPU memory used by all processes on the GPU: the model's share when the pod owns the GPU.";
    UPSTREAM_PROCESS_UP = "magma_upstream_process_up", Gauge, None,
        [],
        "1 while the upstream model process is found in /proc.";
    UPSTREAM_PROCESS_RESIDENT_MEMORY = "magma_upstream_process_resident_memory_bytes", Gauge, Some(Unit::Bytes),
        [],
        "Resident memory of the upstream model process.";
    UPSTREAM_PROCESS_VIRTUAL_MEMORY = "magma_upstream_process_virtual_memory_bytes", Gauge, Some(Unit::Bytes),
        [],
        "Virtual memory size of the upstream model process.";
    UPSTREAM_PROCESS_CPU = "magma_upstream_process_cpu_seconds_total", Counter, Some(Unit::Seconds),
        [],
        "User plus system CPU time of the upstream model process (whole seconds).";
    UPSTREAM_PROCESS_THREADS = "magma_upstream_process_threads", Gauge, None,
        [],
        "Threads of the upstream model process.";
    UPSTREAM_PROCESS_OPEN_FDS = "magma_upstream_process_open_fds", Gauge, None,
        [],
        "Open file descriptors of the upstream model process (0 when not permitted to list them).";
    UPSTREAM_PROCESS_START_TIME = "magma_upstream_process_start_time_seconds", Gauge, Some(Unit::Seconds),
        [],
        "Start time of the upstream model process, seconds since the Unix epoch.";
    UPSTREAM_PROCESS_RESTARTS = "magma_upstream_process_restarts_total", Counter, None,
        [],
        "Times the upstream model process was found again under a new pid or start time.";
    UPSTREAM_PROCESS_GPU_MEMORY = "magma_upstream_process_gpu_memory_bytes", Gauge, Some(Unit::Bytes),
        [],
        "GPU memory of the upstream model process on the selected GPUs (needs the host pid view, see docs/resources.md).";
    UPSTREAM_CGROUP_MEMORY = "magma_upstream_cgroup_memory_bytes", Gauge, Some(Unit::Bytes),
        [],
        "memory.current of the upstream process's cgroup v2, where readable.";
    UPSTREAM_CGROUP_MEMORY_LIMIT = "magma_upstream_cgroup_memory_limit_bytes", Gauge, Some(Unit::Bytes),
        [],
        "memory.max of the upstream process's cgroup v2, where readable and limited.";
    UPSTREAM_CGROUP_CPU = "magma_upstream_cgroup_cpu_seconds_total", Counter, Some(Unit::Seconds),
        [],
        "cpu.stat usage of the upstream process's cgroup v2 (whole seconds), where readable.";
    UPSTREAM_CGROUP_CPU_THROTTLED = "magma_upstream_cgroup_cpu_throttled_seconds_total", Counter, Some(Unit::Seconds),
        [],
        "cpu.stat throttled time of the upstream process's cgroup v2 (whole seconds), where readable.";
    // --- quality ---
    OUTPUTS_CHECKED = "magma_outputs_checked_total", Counter, None,
        ["task"],
        "Model answers that went through the output checks.";
    OUTPUT_ANOMALIES = "magma_output_anomalies_total", Counter, None,
        ["task", "kind"],
        "Answers with a visible defect, by kind: empty, repetitive, truncated, unparseable_action, action_out_of_range, coordinates_out_of_range.";
    OUTPUTS_DEFECTIVE = "magma_outputs_defective_total", Counter, None,
        ["task"],
        "Answers with at least one defect, counted once however many kinds they show: the numerator of the defective-answer ratio.";
    OUTPUT_LENGTH = "magma_output_length_characters", Histogram, None,
        ["task"],
        "Length of the answer text in characters.";
    OUTPUT_REPETITION = "magma_output_repetition_ratio", Histogram, None,
        ["task"],
        "Repeated trigram ratio of the answer text (1 - distinct/total trigrams).";
    OUTPUT_CONFIDENCE = "magma_output_mean_logprob", Histogram, None,
        ["task"],
        "Mean token log-probability of the answer, where the server reports logprobs.";
    OUTPUT_ACTION = "magma_output_action_value", Histogram, None,
        ["space", "dimension"],
        "Values of the 7-DoF action: space normalized or delta; dimension x, y, z, roll, pitch, yaw, gripper.";
    OUTPUT_DISTINCT_NGRAMS = "magma_output_distinct_ngram_ratio", Gauge, None,
        ["task", "n"],
        "Distinct n-grams over total n-grams of the recent answers (n = 1, 2).";
    OUTPUT_IDENTICAL = "magma_output_identical_answer_ratio", Gauge, None,
        ["task"],
        "Share of the recent answers taken by the most frequent answer.";
    FEEDBACK = "magma_feedback_total", Counter, None,
        ["rating", "task"],
        "User ratings received through POST /api/feedback (rating up or down).";
    GROUND_TRUTH = "magma_ground_truth_total", Counter, None,
        ["outcome"],
        "Ground-truth records received, by outcome: scored, unknown_id, invalid.";
    QUALITY_SCORE = "magma_quality_score", Histogram, None,
        ["metric", "task"],
        "Scores of predictions against ground truth: token_f1, rouge_l, action_l2_error, gripper_agreement, mark_match, point_in_box, point_distance.";
    PREDICTION_STORE_ENTRIES = "magma_prediction_store_entries", Gauge, None,
        [],
        "Recent predictions held for matching feedback and ground truth.";
    PREDICTION_STORE_EVICTIONS = "magma_prediction_store_evictions_total", Counter, None,
        ["reason"],
        "Predictions dropped from the store, by reason: capacity, expired.";

    // --- anomaly ---
    ANOMALY_ACTIVE = "magma_anomaly_active", Gauge, None,
        ["signal", "kind"],
        "1 while an anomaly of this kind (spike, drop, level_shift, trend) is open on this signal.";
    ANOMALIES = "magma_anomalies_total", Counter, None,
        ["signal", "kind"],
        "Anomalies opened, by signal and kind.";
    ANOMALY_EVALUATIONS = "magma_anomaly_evaluations_total", Counter, None,
        [],
        "Times the anomaly engine read its signals and ran its detectors.";
}

/// Default latency bucket bounds in seconds: 5 ms to 120 s, with a bound at
/// exactly 2.0 s so the guide's "p95 > 2 s" alert compares against a bucket edge.
pub const DEFAULT_LATENCY_BUCKETS: &[f64] = &[
    0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0, 5.0, 10.0, 20.0, 30.0,
    60.0, 120.0,
];

/// Buckets for the short durations the proxy itself adds.
pub const OVERHEAD_BUCKETS: &[f64] = &[
    0.000_01, 0.000_025, 0.000_05, 0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.05,
];

/// Buckets for body sizes: 64 B to 256 MiB in powers of four.
pub const SIZE_BUCKETS: &[f64] = &[
    64.0,
    256.0,
    1024.0,
    4096.0,
    16384.0,
    65536.0,
    262_144.0,
    1_048_576.0,
    4_194_304.0,
    16_777_216.0,
    67_108_864.0,
    268_435_456.0,
];

/// Closed label-value sets shared by the request path.
pub mod label {
    /// Routes known to Magma and OpenAI-style servers; anything else is `other`.
    pub const ROUTES: &[&str] = &[
        "/predict",
        "/predict_from_file",
        "/health",
        "/v1/chat/completions",
        "/v1/completions",
    ];
    pub const OTHER: &str = "other";
    pub const UNKNOWN: &str = "unknown";

    /// Maps a request path to its `route` label value.
    pub fn route(path: &str) -> &'static str {
        let path = path
            .strip_suffix('/')
            .filter(|p| !p.is_empty())
            .unwrap_or(path);
        ROUTES
            .iter()
            .find(|r| **r == path)
            .copied()
            .unwrap_or(OTHER)
    }

    /// Maps a status code to its class label (`1xx` .. `5xx`).
    pub fn code_class(status: u16) -> &'static str {
        match status {
            100..=199 => "1xx",
            200..=299 => "2xx",
            300..=399 => "3xx",
            400..=499 => "4xx",
            _ => "5xx",
        }
    }
}

/// Per-histogram bucket layout.
#[derive(Debug, Clone)]
pub struct Buckets {
    pub latency: Vec<f64>,
}

impl Default for Buckets {
    fn default() -> Self {
        Self {
            latency: DEFAULT_LATENCY_BUCKETS.to_vec(),
        }
    }
}

/// Describes every catalogued metric to the installed recorder.
pub fn describe_all() {
    for metric in CATALOGUE {
        match (metric.kind, metric.unit) {
            (Kind::Counter, Some(unit)) => describe_counter!(metric.name, unit, metric.help),
            (Kind::Counter, None) => describe_counter!(metric.name, metric.help),
            (Kind::Gauge, Some(unit)) => describe_gauge!(metric.name, unit, metric.help),
            (Kind::Gauge, None) => describe_gauge!(metric.name, metric.help),
            (Kind::Histogram, Some(unit)) => describe_histogram!(metric.name, unit, metric.help),
            (Kind::Histogram, None) => describe_histogram!(metric.name, metric.help),
        }
    }
}

/// Builds the recorder with the bucket layout of every histogram.
///
/// Returns the recorder (to install globally or locally in tests) and its handle
/// (to render `/metrics`).
pub fn build_recorder(buckets: &Buckets) -> Result<(Recorder, MetricsHandle), String> {
    if buckets.latency.is_empty() {
        return Err("the latency histogram needs at least one bucket bound".into());
    }
    let buckets = buckets.clone();
    let recorder = Recorder::new(
        PrometheusBuilder::new().build_recorder(),
        Box::new(move |name| histogram_buckets(name, &buckets).to_vec()),
    );
    let handle = recorder.handle();
    Ok((recorder, handle))
}

/// Installs the recorder process-wide and describes every metric.
pub fn install(buckets: &Buckets) -> Result<MetricsHandle, String> {
    let (recorder, handle) = build_recorder(buckets)?;
    metrics::set_global_recorder(recorder)
        .map_err(|e| format!("a metrics recorder is already installed: {e}"))?;
    describe_all();
    metrics::gauge!(BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
    Ok(handle)
}

fn histogram_buckets<'a>(name: &str, buckets: &'a Buckets) -> &'a [f64] {
    match name {
        REQUEST_DURATION | TIME_TO_FIRST_BYTE => &buckets.latency,
        PROXY_OVERHEAD => OVERHEAD_BUCKETS,
        REQUEST_SIZE | RESPONSE_SIZE => SIZE_BUCKETS,
        other => extra_histogram_buckets(other),
    }
}

/// Buckets of one GPU poll: 100 µs to 1 s (a poll takes about a millisecond
/// per GPU on a healthy driver; a hung driver shows in the top buckets).
pub const GPU_POLL_BUCKETS: &[f64] = &[
    0.000_1, 0.000_25, 0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
];

/// Buckets of the drift test duration: 1 ms to 60 s.
pub const DRIFT_TEST_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];
/// Buckets for image counts per request.
pub const IMAGE_COUNT_BUCKETS: &[f64] = &[0.0, 1.0, 2.0, 3.0, 4.0, 6.0, 8.0, 16.0, 32.0];
/// Buckets for answer lengths in characters: 0 to 16 Ki in powers of two.
pub const OUTPUT_LENGTH_BUCKETS: &[f64] = &[
    0.0, 1.0, 4.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0, 4096.0, 8192.0, 16384.0,
];

/// Buckets for ratios in [0, 1].
pub const RATIO_BUCKETS: &[f64] = &[
    0.0, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 1.0,
];

/// Buckets for mean token log-probabilities (always <= 0).
pub const LOGPROB_BUCKETS: &[f64] = &[
    -10.0, -5.0, -3.0, -2.0, -1.5, -1.0, -0.7, -0.5, -0.3, -0.2, -0.1, -0.05, -0.01, 0.0,
];

/// Buckets for action values: fine near 0 for Magma's ±0.05 xyz deltas,
/// coarse out to ±π for angles and ±1 for normalized actions.
pub const ACTION_BUCKETS: &[f64] = &[
    -3.2, -1.0, -0.5, -0.25, -0.1, -0.05, -0.025, -0.01, 0.0, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5,
    1.0, 3.2,
];

/// Buckets for quality scores: 0..1 scores and 0/1 agreements, plus the tail
/// of the unbounded errors (`action_l2_error`, `point_distance`).
pub const QUALITY_SCORE_BUCKETS: &[f64] = &[
    0.0, 0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0, 2.0, 5.0,
];

/// Bucket layouts of the histograms owned by the analysis areas.
fn extra_histogram_buckets(name: &str) -> &'static [f64] {
    match name {
        GPU_POLL_DURATION => GPU_POLL_BUCKETS,
        DRIFT_TEST_DURATION => DRIFT_TEST_BUCKETS,
        REQUEST_IMAGES => IMAGE_COUNT_BUCKETS,
        REQUEST_MEDIA_BYTES => SIZE_BUCKETS,
        OUTPUT_LENGTH => OUTPUT_LENGTH_BUCKETS,
        OUTPUT_REPETITION => RATIO_BUCKETS,
        OUTPUT_CONFIDENCE => LOGPROB_BUCKETS,
        OUTPUT_ACTION => ACTION_BUCKETS,
        QUALITY_SCORE => QUALITY_SCORE_BUCKETS,
        _ => DEFAULT_LATENCY_BUCKETS,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_conventions() {
        let mut seen = std::collections::HashSet::new();
        for metric in CATALOGUE {
            assert!(seen.insert(metric.name), "{} declared twice", metric.name);
            assert!(metric.name.starts_with("magma_"), "{}", metric.name);
            assert!(
                metric
                    .name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_'),
                "{}",
                metric.name
            );
            assert_eq!(
                metric.kind == Kind::Counter,
                metric.name.ends_with("_total"),
                "{}",
                metric.name
            );
            if metric.unit == Some(Unit::Seconds) {
                assert!(metric.name.contains("_seconds"), "{}", metric.name);
            }
            if metric.unit == Some(Unit::Bytes) {
                assert!(metric.name.contains("_bytes"), "{}", metric.name);
            }
            assert!(!metric.help.is_empty());
        }
    }

    #[test]
    fn latency_buckets_have_an_edge_at_two_seconds() {
        assert!(DEFAULT_LATENCY_BUCKETS.contains(&2.0));
        assert_eq!(DEFAULT_LATENCY_BUCKETS.first(), Some(&0.005));
        assert_eq!(DEFAULT_LATENCY_BUCKETS.last(), Some(&120.0));
    }

    #[test]
    fn routes_are_closed() {
        assert_eq!(label::route("/predict"), "/predict");
        assert_eq!(label::route("/predict/"), "/predict");
        assert_eq!(label::route("/v1/chat/completions"), "/v1/chat/completions");
        assert_eq!(label::route("/admin/../etc"), "other");
        assert_eq!(label::route("/"), "other");
    }
}

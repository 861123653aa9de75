//! The in-process drift engine: collects a reference, keeps a window of the
//! latest samples, tests the window against the reference every K samples
//! or T seconds, runs the online detector on every sample, and publishes the
//! results as metrics and as the `/api/drift` snapshot.
//!
//! It runs inside the analysis worker (one thread, so never two tests at
//! once, and never on the forward path). Memory is bounded by the flags:
//! the reference (≤ N samples), the window (≤ M samples), the online
//! detector (O(N·d)) and the MMD test's O((N+M)·P) split matrix.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use super::args::DriftArgs;
use super::chi2::chi2_two_sample;
use super::correction::{decide, Correction};
use super::handle::{DriftHandle, ReferenceCommand};
use super::ks::{ks_per_feature, KsOutcome};
use super::matrix::Samples;
use super::mmd::{mmd_test, MmdConfig};
use super::online::{OnlineConfig, OnlineMmd, MAX_ONLINE_REFERENCE};
use super::reference::{
    categorical_values, group, read_reference_file, PreparedGroup, PreparedReference,
};
use super::report::{
    self, detector, features, DetectorReport, DriftSnapshot, FeatureMove, OnlineReport,
    ReferenceInfo,
};
use super::sample::{FeatureSample, StoredSample};
use super::state::{self, Loaded, StoredReference, STATE_VERSION};

/// The engine's settings (see `DriftArgs` for their meaning).
#[derive(Debug, Clone)]
pub struct EngineConfig {
    pub reference_size: usize,
    pub reference_file: Option<PathBuf>,
    pub window: usize,
    pub test_every: usize,
    pub test_interval: Duration,
    pub p_val: f64,
    pub permutations: usize,
    pub correction: Correction,
    /// 0 turns the online detector off.
    pub ert: f64,
    pub online_window: usize,
    pub bootstraps: usize,
    pub top_features: usize,
    pub seed: u64,
    pub state_dir: Option<PathBuf>,
}

impl EngineConfig {
    pub fn from_args(args: &DriftArgs) -> Self {
        Self {
            reference_size: args.drift_reference_size,
            reference_file: args.drift_reference.clone(),
            window: args.drift_window,
            test_every: args.drift_test_every,
            test_interval: args.drift_test_interval,
            p_val: args.drift_p_val,
            permutations: args.drift_permutations,
            correction: args.drift_correction,
            ert: args.drift_ert,
            online_window: args.drift_online_window,
            bootstraps: 1000,
            top_features: args.drift_top_features,
            seed: args.drift_seed,
            state_dir: args.state_dir.clone(),
        }
    }
}

/// Fewest window samples a test runs on.
const MIN_WINDOW_FOR_TEST: usize = 10;

/// The drift engine; owned by the analysis worker.
pub struct DriftEngine {
    config: EngineConfig,
    collecting: Vec<StoredSample>,
    reference: Option<PreparedReference>,
    restored: bool,
    persisted: bool,
    window: VecDeque<StoredSample>,
    new_since_test: usize,
    last_test: Instant,
    tests_run: u64,
    online: Option<OnlineMmd>,
    online_report: Option<OnlineReport>,
    rejected: u64,
    /// Component names of the numeric groups, by group label; components
    /// without a name are listed by index.
    feature_names: Vec<(&'static str, Vec<String>)>,
    handle: DriftHandle,
}

fn now_unix() -> f64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

impl DriftEngine {
    /// Sets up the engine: the reference comes from the state directory
    /// (unless it names another `--drift-reference` file than the one
    /// configured), else from `--drift-reference`, else from the first
    /// samples. Fails only for an unreadable `--drift-reference` file.
    pub fn new(config: EngineConfig) -> Result<Self, String> {
        let mut engine = Self {
            collecting: Vec::new(),
            reference: None,
            restored: false,
            persisted: false,
            window: VecDeque::with_capacity(config.window.min(4096)),
            new_since_test: 0,
            last_test: Instant::now(),
            tests_run: 0,
            online: None,
            online_report: None,
            rejected: 0,
            feature_names: Vec::new(),
            handle: DriftHandle::default(),
            config,
        };
        let configured_file = engine
            .config
            .reference_file
            .as_ref()
            .map(|p| p.display().to_string());
        if let Some(dir) = engine.config.state_dir.clone() {
            match state::load(&dir) {
                Loaded::Found(stored)
                    if stored.reference_file == configured_file || configured_file.is_none() =>
                {
                    tracing::info!(samples = stored.samples.len(), source = %stored.source, "drift reference restored from the state directory");
                    engine.restored = true;
                    engine.persisted = true;
                    engine.install(
                        stored.samples,
                        &stored.source,
                        stored.reference_file,
                        stored.created_unix_seconds,
                        false,
                    );
                }
                Loaded::Found(_) => {
                    tracing::info!("the saved drift reference came from another --drift-reference file; loading the configured one");
                }
                Loaded::Missing => {}
                Loaded::Corrupt {
                    path,
                    reason,
                    moved_to,
                } => {
                    let moved = moved_to
                        .map(|p| p.display().to_string())
                        .unwrap_or_else(|| "not moved".into());
                    tracing::warn!(path = %path.display(), %reason, moved_to = %moved, "drift state file is corrupt; starting with a fresh reference");
                    engine.handle.update(|s| {
                        s.last_error = Some(format!(
                            "state file {} was corrupt ({reason}); started a fresh reference",
                            path.display()
                        ))
                    });
                }
            }
        }
        if engine.reference.is_none() {
            if let Some(path) = engine.config.reference_file.clone() {
                let samples =
                    read_reference_file(&path).map_err(|e| format!("--drift-reference: {e}"))?;
                engine.install(samples, "file", configured_file, now_unix(), true);
            }
        }
        engine.publish_sizes();
        Ok(engine)
    }

    /// The handle the admin server reads.
    pub fn handle(&self) -> DriftHandle {
        self.handle.clone()
    }

    /// Feeds one sample: to the reference while it is being collected, to
    /// the window (and the online detector) afterwards; runs the window
    /// tests when they are due.
    pub fn observe(&mut self, sample: &FeatureSample) {
        self.apply_command();
        let stored = StoredSample::from_sample(sample);
        if !stored.is_well_formed() {
            self.reject();
            return;
        }
        match &self.reference {
            None => {
                if let Some(first) = self.collecting.first() {
                    if first.input.len() != stored.input.len()
                        || first.output.len() != stored.output.len()
                    {
                        self.reject();
                        return;
                    }
                }
                self.collecting.push(stored);
                report::count_sample("reference");
                if self.collecting.len() >= self.config.reference_size {
                    let samples = std::mem::take(&mut self.collecting);
                    self.install(samples, "first_samples", None, now_unix(), true);
                }
            }
            Some(reference) => {
                // A reference without output features (e.g. a CSV of input
                // features) ignores the samples' outputs.
                let output_differs =
                    reference.output_width() > 0 && reference.output_width() != stored.output.len();
                if reference.input_width() != stored.input.len() || output_differs {
                    self.reject();
                    return;
                }
                self.update_online(&stored.input);
                if self.window.len() == self.config.window {
                    self.window.pop_front();
                }
                self.window.push_back(stored);
                self.new_since_test += 1;
                report::count_sample("window");
                if self.test_due() {
                    self.run_tests();
                }
            }
        }
        self.publish_sizes();
    }

    /// Applies a pending reference request and runs a time-triggered test;
    /// call it now and then (e.g. every second) when samples are scarce.
    pub fn poll(&mut self) {
        self.apply_command();
        if self.reference.is_some() && self.test_due() {
            self.run_tests();
        }
    }

    fn test_due(&self) -> bool {
        self.window.len() >= MIN_WINDOW_FOR_TEST.min(self.config.window)
            && (self.new_since_test >= self.config.test_every
                || (self.new_since_test > 0
                    && self.last_test.elapsed() >= self.config.test_interval))
    }

    fn reject(&mut self) {
        self.rejected += 1;
        report::count_sample("rejected");
        let rejected = self.rejected;
        self.handle.update(|s| s.samples_rejected = rejected);
    }

    fn apply_command(&mut self) {
        let Some(command) = self.handle.take_command() else {
            return;
        };
        match command {
            ReferenceCommand::FromWindow => {
                if self.window.len() < 2 {
                    self.note_error(
                        "the window holds fewer than 2 samples; the reference was not replaced"
                            .into(),
                    );
                    return;
                }
                let samples: Vec<StoredSample> = self.window.iter().cloned().collect();
                tracing::info!(
                    samples = samples.len(),
                    "drift reference replaced by the current window"
                );
                self.install(samples, "window", None, now_unix(), true);
            }
            ReferenceCommand::Upload(samples) => {
                tracing::info!(
                    samples = samples.len(),
                    "drift reference replaced by an upload"
                );
                self.install(samples, "upload", None, now_unix(), true);
            }
        }
    }

    fn note_error(&self, message: String) {
        tracing::warn!("{message}");
        self.handle.update(|s| s.last_error = Some(message));
    }

    /// Makes `samples` the reference: prepares it, calibrates the online
    /// detector, clears the window and (when asked) persists it.
    fn install(
        &mut self,
        samples: Vec<StoredSample>,
        source: &str,
        reference_file: Option<String>,
        created: f64,
        persist: bool,
    ) {
        let prepared = PreparedReference::new(samples, source, reference_file, created);
        self.window.clear();
        self.new_since_test = 0;
        self.last_test = Instant::now();
        self.collecting.clear();
        self.online = None;
        self.online_report = None;
        if self.config.ert > 0.0 {
            if let Some(input) = &prepared.input {
                self.online = self.calibrate_online(input);
            }
        }
        if persist {
            self.persisted = false;
            if let Some(dir) = &self.config.state_dir {
                let stored = StoredReference {
                    version: STATE_VERSION,
                    source: prepared.source.clone(),
                    reference_file: prepared.reference_file.clone(),
                    created_unix_seconds: prepared.created_unix_seconds,
                    samples: prepared.samples.clone(),
                };
                match state::save(dir, &stored) {
                    Ok(()) => self.persisted = true,
                    Err(error) => {
                        self.note_error(format!("drift reference not persisted: {error}"))
                    }
                }
            }
        }
        self.reference = Some(prepared);
        let info = self.reference_info();
        let online = self.online_report.clone();
        self.handle.update(|s| {
            s.reference = info;
            s.detectors.clear();
            s.online = online;
        });
        self.publish_sizes();
    }

    fn calibrate_online(&mut self, input: &PreparedGroup) -> Option<OnlineMmd> {
        let rows = input.samples.rows();
        let start = rows.saturating_sub(MAX_ONLINE_REFERENCE);
        let mut reference = Samples::empty(input.samples.cols());
        for r in start..rows {
            reference.push_row(input.samples.row(r));
        }
        let config = OnlineConfig {
            window: self.config.online_window,
            ert: self.config.ert,
            bootstraps: self.config.bootstraps,
            sigma: Some(input.sigma),
            seed: self.config.seed,
        };
        match OnlineMmd::new(&reference, &config) {
            Ok(detector) => {
                self.online_report = Some(OnlineReport {
                    window: config.window,
                    expected_run_time: config.ert,
                    sigma: detector.sigma(),
                    threshold: detector.threshold(0),
                    statistic: detector.statistic(),
                    ..OnlineReport::default()
                });
                Some(detector)
            }
            Err(error) => {
                self.note_error(format!("online drift detector off: {error}"));
                None
            }
        }
    }

    fn update_online(&mut self, input: &[f32]) {
        let (Some(detector), Some(reference)) = (self.online.as_mut(), self.reference.as_ref())
        else {
            return;
        };
        let Some(group) = &reference.input else {
            return;
        };
        let row = group.standardize_row(input);
        match detector.update(&row) {
            Ok(outcome) => {
                if let Some(report) = self.online_report.as_mut() {
                    if outcome.drift && !report.drift {
                        tracing::warn!(
                            statistic = outcome.statistic,
                            threshold = outcome.threshold,
                            "online drift detector: drift"
                        );
                    }
                    report.updates = outcome.t;
                    report.statistic = outcome.statistic;
                    report.threshold = outcome.threshold;
                    report.detections += u64::from(outcome.drift);
                    report.drift = outcome.drift;
                    report::record_online(report);
                    let copy = report.clone();
                    self.handle.update(|s| s.online = Some(copy));
                }
            }
            Err(_) => report::count_error(detector::ONLINE_MMD),
        }
    }

    /// Tests the window against the reference now (if there is a reference
    /// and a window of at least 2 samples); returns whether it ran.
    pub fn test_now(&mut self) -> bool {
        if self.reference.is_none() || self.window.len() < 2 {
            return false;
        }
        self.run_tests();
        true
    }

    fn run_tests(&mut self) {
        let Some(reference) = &self.reference else {
            return;
        };
        self.new_since_test = 0;
        self.last_test = Instant::now();
        self.tests_run += 1;
        let seed = self.config.seed.wrapping_add(self.tests_run);
        let mut reports = Vec::new();
        let groups = [
            (
                features::INPUT,
                &reference.input,
                group(&self.window, |s| &s.input),
            ),
            (
                features::OUTPUT,
                &reference.output,
                group(&self.window, |s| &s.output),
            ),
        ];
        for (label, prepared, raw) in groups {
            let Some(prepared) = prepared else {
                continue;
            };
            let window = prepared.standardize(&raw);
            reports.extend(self.numeric_tests(label, prepared, &window, seed));
        }
        if let Some(report) = self.categorical_test(reference) {
            reports.push(report);
        }
        for report in &reports {
            report::record_metrics(report);
            if report.drift {
                tracing::warn!(
                    detector = report.detector,
                    features = report.features,
                    p_value = report.p_value,
                    "drift detected"
                );
            }
        }
        let (tests_run, at) = (self.tests_run, now_unix());
        self.handle.update(|s| {
            s.tests_run = tests_run;
            s.last_test_unix_seconds = Some(at);
            s.detectors = reports;
        });
    }

    fn numeric_tests(
        &self,
        label: &'static str,
        prepared: &PreparedGroup,
        window: &Samples,
        seed: u64,
    ) -> Vec<DetectorReport> {
        let at = now_unix();
        let started = Instant::now();
        let ks = ks_per_feature(&prepared.samples, window);
        let ks_seconds = started.elapsed().as_secs_f64();
        let moved = self.moved_most(label, &ks);
        let mut reports = Vec::new();
        let base = |detector: &'static str| DetectorReport {
            detector,
            features: label,
            at_unix_seconds: at,
            p_value: 1.0,
            statistic: 0.0,
            threshold: 0.0,
            drift: false,
            duration_seconds: 0.0,
            n_reference: prepared.samples.rows(),
            n_window: window.rows(),
            sigma: None,
            moved_most: moved.clone(),
        };
        let started = Instant::now();
        let config = MmdConfig {
            permutations: self.config.permutations,
            p_val: self.config.p_val,
            sigma: Some(prepared.sigma),
            seed,
            ..MmdConfig::default()
        };
        match mmd_test(&prepared.samples, window, &config) {
            Ok(outcome) => reports.push(DetectorReport {
                p_value: outcome.p_value,
                statistic: outcome.statistic,
                threshold: outcome.threshold,
                drift: outcome.drift,
                duration_seconds: started.elapsed().as_secs_f64(),
                sigma: Some(outcome.sigma),
                ..base(detector::MMD)
            }),
            Err(error) => {
                report::count_error(detector::MMD);
                self.note_error(format!("mmd test on {label} features failed: {error}"));
            }
        }
        let p_values: Vec<f64> = ks.iter().map(|o| o.p_value).collect();
        let decision = decide(&p_values, self.config.p_val, self.config.correction);
        reports.push(DetectorReport {
            p_value: p_values.iter().copied().fold(1.0, f64::min),
            statistic: ks.iter().map(|o| o.statistic).fold(0.0, f64::max),
            threshold: decision.threshold,
            drift: decision.drift,
            duration_seconds: ks_seconds,
            ..base(detector::KS)
        });
        reports
    }

    /// Names the components of a numeric group (`features::INPUT` or
    /// `features::OUTPUT`), so the "moved most" lists say `input.brightness`
    /// rather than `input[7]`: the name is what tells an operator where to
    /// look. A reference file of another width keeps the index form for the
    /// components past the names.
    pub fn name_features(&mut self, group: &'static str, names: Vec<String>) {
        self.feature_names.retain(|(g, _)| *g != group);
        self.feature_names.push((group, names));
    }

    fn feature_label(&self, group: &str, index: usize) -> String {
        let name = self
            .feature_names
            .iter()
            .find(|(g, _)| *g == group)
            .and_then(|(_, names)| names.get(index));
        match name {
            Some(name) => format!("{group}.{name}"),
            None => format!("{group}[{index}]"),
        }
    }

    fn moved_most(&self, label: &str, ks: &[KsOutcome]) -> Vec<FeatureMove> {
        let mut moves: Vec<FeatureMove> = ks
            .iter()
            .enumerate()
            .map(|(i, o)| FeatureMove {
                feature: self.feature_label(label, i),
                statistic: o.statistic,
                p_value: o.p_value,
            })
            .collect();
        sort_moves(&mut moves);
        moves.truncate(self.config.top_features);
        moves
    }

    fn categorical_test(&self, reference: &PreparedReference) -> Option<DetectorReport> {
        let started = Instant::now();
        // Only the fields the reference knows: a reference without them (a
        // CSV of numbers) would otherwise flag every field as drifted.
        let fields: Vec<&String> = reference.categorical.keys().collect();
        if fields.is_empty() {
            return None;
        }
        let mut moves = Vec::new();
        for field in &fields {
            let reference_values = reference
                .categorical
                .get(*field)
                .cloned()
                .unwrap_or_default();
            let window_values = categorical_values(&self.window, field);
            if let Some(outcome) = chi2_two_sample(&reference_values, &window_values) {
                moves.push(FeatureMove {
                    feature: field.to_string(),
                    statistic: outcome.statistic,
                    p_value: outcome.p_value,
                });
            }
        }
        let p_values: Vec<f64> = moves.iter().map(|m| m.p_value).collect();
        let decision = decide(&p_values, self.config.p_val, self.config.correction);
        sort_moves(&mut moves);
        let statistic = moves.iter().map(|m| m.statistic).fold(0.0, f64::max);
        moves.truncate(self.config.top_features.max(1));
        Some(DetectorReport {
            detector: detector::CHI2,
            features: features::CATEGORICAL,
            at_unix_seconds: now_unix(),
            p_value: p_values.iter().copied().fold(1.0, f64::min),
            statistic,
            threshold: decision.threshold,
            drift: decision.drift,
            duration_seconds: started.elapsed().as_secs_f64(),
            n_reference: reference.samples.len(),
            n_window: self.window.len(),
            sigma: None,
            moved_most: moves,
        })
    }

    fn reference_info(&self) -> ReferenceInfo {
        match &self.reference {
            Some(r) => ReferenceInfo {
                state: "ready",
                samples: r.samples.len(),
                target_samples: self.config.reference_size,
                source: r.source.clone(),
                restored_from_state: self.restored,
                created_unix_seconds: Some(r.created_unix_seconds),
                input_features: r.input_width(),
                output_features: r.output_width(),
                categorical_fields: r.categorical.keys().cloned().collect(),
                persisted: self.persisted,
            },
            None => ReferenceInfo {
                state: "collecting",
                samples: self.collecting.len(),
                target_samples: self.config.reference_size,
                source: "first_samples".into(),
                ..ReferenceInfo::default()
            },
        }
    }

    fn publish_sizes(&self) {
        let reference = self
            .reference
            .as_ref()
            .map(|r| r.samples.len())
            .unwrap_or(self.collecting.len());
        report::record_sizes(reference, self.window.len());
        let (window, capacity) = (self.window.len(), self.config.window);
        let collecting = self.reference.is_none().then(|| self.reference_info());
        self.handle.update(|s| {
            s.enabled = true;
            s.window_samples = window;
            s.window_capacity = capacity;
            if let Some(info) = collecting {
                s.reference = info;
            }
        });
    }

    /// The current snapshot (as `/api/drift` shows it).
    pub fn snapshot(&self) -> DriftSnapshot {
        self.handle.snapshot()
    }
}

/// Smallest p-value first; among equal p-values the larger statistic first.
fn sort_moves(moves: &mut [FeatureMove]) {
    moves.sort_by(|a, b| {
        a.p_value
            .total_cmp(&b.p_value)
            .then(b.statistic.total_cmp(&a.statistic))
    });
}

#[cfg(test)]
#[path = "engine_tests.rs"]
mod tests;

//! Tests of the drift engine: reference collection, window tests, the
//! online detector, persistence and reference replacement.

use super::*;
use crate::drift::handle::ReferenceCommand;
use crate::drift::state::state_path;
use rand::{Rng, SeedableRng};

fn config() -> EngineConfig {
    EngineConfig {
        reference_size: 200,
        reference_file: None,
        window: 100,
        test_every: 100,
        test_interval: Duration::from_secs(3600),
        p_val: 0.01,
        permutations: 100,
        correction: Correction::Bonferroni,
        ert: 200.0,
        online_window: 10,
        bootstraps: 200,
        top_features: 3,
        seed: 1,
        state_dir: None,
    }
}

struct Source(rand_chacha::ChaCha8Rng);

impl Source {
    fn new(seed: u64) -> Self {
        Self(rand_chacha::ChaCha8Rng::seed_from_u64(seed))
    }

    fn normal(&mut self) -> f32 {
        let u1: f64 = self.0.random_range(f64::EPSILON..1.0);
        let u2: f64 = self.0.random();
        ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
    }

    /// 3 input features (the second shifted by `shift`), 1 output, a modality.
    fn sample(&mut self, shift: f32, audio_share: f64) -> FeatureSample {
        let modality = if self.0.random::<f64>() < audio_share {
            "audio"
        } else {
            "image"
        };
        FeatureSample {
            input: vec![
                self.normal() * 10.0 + 100.0,
                self.normal() + shift,
                self.normal(),
            ],
            output: vec![self.normal()],
            categorical: vec![("modality", modality.to_string())],
        }
    }
}

fn feed(engine: &mut DriftEngine, source: &mut Source, count: usize, shift: f32, audio: f64) {
    for _ in 0..count {
        let sample = source.sample(shift, audio);
        engine.observe(&sample);
    }
}

fn report<'a>(snapshot: &'a DriftSnapshot, detector: &str, features: &str) -> &'a DetectorReport {
    snapshot
        .detectors
        .iter()
        .find(|r| r.detector == detector && r.features == features)
        .unwrap_or_else(|| panic!("no {detector}/{features} in {snapshot:?}"))
}

#[test]
fn named_components_are_listed_by_name() {
    let mut engine = DriftEngine::new(config()).unwrap();
    // Two names for three input components: the third keeps its index.
    engine.name_features(features::INPUT, vec!["size".into(), "brightness".into()]);
    engine.name_features(features::OUTPUT, vec!["answer_words".into()]);
    let mut source = Source::new(3);
    feed(&mut engine, &mut source, 200, 0.0, 0.1);
    feed(&mut engine, &mut source, 100, 1.0, 0.1);
    let snapshot = engine.snapshot();
    let mmd = report(&snapshot, "mmd", "input");
    assert!(mmd.drift, "{mmd:?}");
    assert_eq!(mmd.moved_most[0].feature, "input.brightness");
    let listed: Vec<&str> = mmd.moved_most.iter().map(|m| m.feature.as_str()).collect();
    assert!(listed.contains(&"input[2]"), "{listed:?}");
    assert!(listed.contains(&"input.size"), "{listed:?}");
    let output = report(&snapshot, "mmd", "output");
    assert_eq!(output.moved_most[0].feature, "output.answer_words");
}

#[test]
fn collects_a_reference_then_tests_the_window() {
    let mut engine = DriftEngine::new(config()).unwrap();
    let mut source = Source::new(1);
    feed(&mut engine, &mut source, 150, 0.0, 0.1);
    let snapshot = engine.snapshot();
    assert_eq!(snapshot.reference.state, "collecting");
    assert_eq!(snapshot.reference.samples, 150);
    feed(&mut engine, &mut source, 50, 0.0, 0.1);
    assert_eq!(engine.snapshot().reference.state, "ready");
    assert_eq!(engine.snapshot().reference.input_features, 3);

    // No drift: the window comes from the same distribution.
    feed(&mut engine, &mut source, 100, 0.0, 0.1);
    let quiet = engine.snapshot();
    assert_eq!(quiet.tests_run, 1);
    for r in &quiet.detectors {
        assert!(!r.drift, "false alarm: {r:?}");
    }
    assert_eq!(report(&quiet, "mmd", "input").n_window, 100);

    // A one-sigma shift of input feature 1 and more audio.
    feed(&mut engine, &mut source, 100, 1.0, 0.6);
    let shifted = engine.snapshot();
    assert_eq!(shifted.tests_run, 2);
    let mmd = report(&shifted, "mmd", "input");
    assert!(mmd.drift, "{mmd:?}");
    assert!(mmd.statistic > mmd.threshold);
    assert_eq!(mmd.moved_most[0].feature, "input[1]");
    assert!(report(&shifted, "ks", "input").drift);
    assert!(!report(&shifted, "mmd", "output").drift);
    let chi2 = report(&shifted, "chi2", "categorical");
    assert!(chi2.drift, "{chi2:?}");
    assert_eq!(chi2.moved_most[0].feature, "modality");
    // The online detector saw the shift too.
    let online = shifted.online.unwrap();
    assert!(online.detections > 0, "{online:?}");
    assert_eq!(online.updates, 200);
}

#[test]
fn rejects_samples_of_another_shape() {
    let mut engine = DriftEngine::new(config()).unwrap();
    let mut source = Source::new(2);
    feed(&mut engine, &mut source, 5, 0.0, 0.0);
    engine.observe(&FeatureSample {
        input: vec![1.0],
        ..FeatureSample::default()
    });
    engine.observe(&FeatureSample {
        input: vec![f32::NAN, 1.0, 2.0],
        output: vec![1.0],
        ..FeatureSample::default()
    });
    let snapshot = engine.snapshot();
    assert_eq!(snapshot.samples_rejected, 2);
    assert_eq!(snapshot.reference.samples, 5);
}

#[test]
fn the_reference_survives_a_restart_and_a_corrupt_file_does_not_stop_it() {
    let dir = tempfile::tempdir().unwrap();
    let with_state = EngineConfig {
        state_dir: Some(dir.path().to_path_buf()),
        ..config()
    };
    let mut engine = DriftEngine::new(with_state.clone()).unwrap();
    let mut source = Source::new(3);
    feed(&mut engine, &mut source, 200, 0.0, 0.1);
    assert!(engine.snapshot().reference.persisted);
    drop(engine);

    let restarted = DriftEngine::new(with_state.clone()).unwrap();
    let info = restarted.snapshot().reference;
    assert_eq!(info.state, "ready");
    assert!(info.restored_from_state);
    assert_eq!(info.samples, 200);
    assert_eq!(info.source, "first_samples");

    std::fs::write(state_path(dir.path()), b"{ not json").unwrap();
    let fresh = DriftEngine::new(with_state).unwrap();
    let snapshot = fresh.snapshot();
    assert_eq!(snapshot.reference.state, "collecting");
    assert!(snapshot.last_error.unwrap().contains("corrupt"));
    assert!(dir.path().join("drift-reference.json.corrupt").exists());
}

#[test]
fn the_reference_is_replaced_on_request() {
    let mut engine = DriftEngine::new(config()).unwrap();
    let mut source = Source::new(4);
    feed(&mut engine, &mut source, 200, 0.0, 0.1);
    feed(&mut engine, &mut source, 40, 2.0, 0.1);
    let handle = engine.handle();
    handle.request_reference(ReferenceCommand::FromWindow);
    engine.poll();
    let info = engine.snapshot().reference;
    assert_eq!((info.source.as_str(), info.samples), ("window", 40));
    assert_eq!(engine.snapshot().window_samples, 0);

    let upload: Vec<StoredSample> = (0..30)
        .map(|i| StoredSample {
            input: vec![i as f32, 1.0, 2.0],
            output: vec![0.5 * i as f32],
            categorical: vec![],
        })
        .collect();
    handle.request_reference(ReferenceCommand::Upload(upload));
    engine.poll();
    let info = engine.snapshot().reference;
    assert_eq!((info.source.as_str(), info.samples), ("upload", 30));
}

#[test]
fn a_reference_file_is_loaded_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("reference.csv");
    let rows: String = (0..50).map(|i| format!("{i},{}\n", i % 7)).collect();
    std::fs::write(&file, format!("a,b\n{rows}")).unwrap();
    let engine = DriftEngine::new(EngineConfig {
        reference_file: Some(file),
        ..config()
    })
    .unwrap();
    let info = engine.snapshot().reference;
    assert_eq!(
        (info.state, info.source.as_str(), info.samples),
        ("ready", "file", 50)
    );
    assert!(DriftEngine::new(EngineConfig {
        reference_file: Some(dir.path().join("missing.csv")),
        ..config()
    })
    .is_err());
}

#[test]
fn a_quiet_window_is_tested_after_the_interval() {
    let mut engine = DriftEngine::new(EngineConfig {
        ert: 0.0,
        test_interval: Duration::from_millis(1),
        ..config()
    })
    .unwrap();
    let mut source = Source::new(5);
    feed(&mut engine, &mut source, 200, 0.0, 0.1);
    feed(&mut engine, &mut source, 9, 0.0, 0.1);
    std::thread::sleep(Duration::from_millis(5));
    engine.poll();
    assert_eq!(engine.snapshot().tests_run, 0, "needs 10 window samples");
    feed(&mut engine, &mut source, 1, 0.0, 0.1);
    std::thread::sleep(Duration::from_millis(5));
    engine.poll();
    assert_eq!(engine.snapshot().tests_run, 1);
    assert!(engine.snapshot().online.is_none());
}

#[test]
fn the_engine_can_move_to_the_worker_thread() {
    fn is_send<T: Send + 'static>() {}
    is_send::<DriftEngine>();
    is_send::<DriftHandle>();
}

#[test]
fn a_csv_reference_of_inputs_ignores_outputs_and_categories() {
    let mut engine = DriftEngine::new(EngineConfig {
        ert: 0.0,
        ..config()
    })
    .unwrap();
    let mut source = Source::new(6);
    let upload: Vec<StoredSample> = (0..200)
        .map(|_| StoredSample {
            input: source.sample(0.0, 0.0).input,
            ..StoredSample::default()
        })
        .collect();
    engine
        .handle()
        .request_reference(ReferenceCommand::Upload(upload));
    engine.poll();
    feed(&mut engine, &mut source, 100, 0.0, 0.5);
    let snapshot = engine.snapshot();
    assert_eq!(snapshot.samples_rejected, 0);
    assert_eq!(snapshot.tests_run, 1);
    let kinds: Vec<(&str, &str)> = snapshot
        .detectors
        .iter()
        .map(|r| (r.detector, r.features))
        .collect();
    assert_eq!(kinds, vec![("mmd", "input"), ("ks", "input")]);
}

//! Synthetic series with known anomalies replayed through the anomaly engine
//! at a 10 s interval: each anomaly is found within the stated delay, and a
//! long clean series raises nothing. The measured false-alarm rates over many
//! seeds are in docs/anomaly.md (examples/anomaly_false_alarms.rs).

use magma_monitor::anomaly::synthetic::{replay, series, Noise, Opened, Shape};
use magma_monitor::anomaly::{AnomalyConfig, AnomalyKind, Signal};

const INTERVAL: f64 = 10.0;
const PER_HOUR: usize = 360;
const PER_DAY: usize = 8640;
const LATENCY_NOISE: Noise = Noise::LogNormal { sigma: 0.1 };

fn first(opened: &[Opened], kind: AnomalyKind) -> Option<usize> {
    opened.iter().find(|o| o.kind == kind).map(|o| o.index)
}

#[test]
fn spike_is_found_within_two_intervals_and_is_not_a_level_shift() {
    let values = series(
        4 * PER_HOUR,
        0.4,
        LATENCY_NOISE,
        Shape::Spike {
            at: 1000,
            points: 3,
            factor: 4.0,
        },
        1,
    );
    let opened = replay(
        Signal::LatencyP95,
        &values,
        INTERVAL,
        &AnomalyConfig::default(),
    );
    let at = first(&opened, AnomalyKind::Spike).expect("spike found");
    assert!((1000..=1001).contains(&at), "spike opened at {at}");
    assert_eq!(opened.len(), 1, "only the spike: {opened:?}");
}

#[test]
fn drop_is_found_within_two_intervals() {
    let values = series(
        4 * PER_HOUR,
        20.0,
        LATENCY_NOISE,
        Shape::Spike {
            at: 900,
            points: 5,
            factor: 0.1,
        },
        2,
    );
    let opened = replay(Signal::Qps, &values, INTERVAL, &AnomalyConfig::default());
    let at = first(&opened, AnomalyKind::Drop).expect("drop found");
    assert!((900..=901).contains(&at), "drop opened at {at}");
    assert!(
        first(&opened, AnomalyKind::LevelShift).is_none(),
        "{opened:?}"
    );
}

#[test]
fn doubling_step_is_a_level_shift_within_ten_intervals() {
    let values = series(
        4 * PER_HOUR,
        0.4,
        LATENCY_NOISE,
        Shape::Step {
            at: 1000,
            factor: 2.0,
        },
        3,
    );
    let opened = replay(
        Signal::LatencyP95,
        &values,
        INTERVAL,
        &AnomalyConfig::default(),
    );
    let at = first(&opened, AnomalyKind::LevelShift).expect("level shift found");
    assert!((1000..=1009).contains(&at), "level shift opened at {at}");
    assert!(
        opened.iter().all(|o| o.index >= 1000),
        "nothing before the step: {opened:?}"
    );
}

#[test]
fn thirty_percent_step_is_a_level_shift_within_fifteen_intervals() {
    // +30 % is about 2.6 robust σ of this noise: too small for the spike
    // detector, the CUSUM's job.
    let values = series(
        4 * PER_HOUR,
        0.4,
        LATENCY_NOISE,
        Shape::Step {
            at: 1000,
            factor: 1.3,
        },
        4,
    );
    let opened = replay(
        Signal::LatencyP95,
        &values,
        INTERVAL,
        &AnomalyConfig::default(),
    );
    let at = first(&opened, AnomalyKind::LevelShift).expect("level shift found");
    assert!((1000..=1014).contains(&at), "level shift opened at {at}");
    assert!(first(&opened, AnomalyKind::Spike).is_none(), "{opened:?}");
}

#[test]
fn latency_creep_over_a_week_is_a_trend_within_twelve_hours() {
    // 200 ms -> 2 s over 7 days (the guide's story), starting after one clean day.
    let per_point = 1.8 / (7 * PER_DAY) as f64;
    let values = series(
        3 * PER_DAY,
        0.2,
        LATENCY_NOISE,
        Shape::Creep {
            at: PER_DAY,
            per_point,
        },
        5,
    );
    let opened = replay(
        Signal::LatencyP95,
        &values,
        INTERVAL,
        &AnomalyConfig::default(),
    );
    let at = first(&opened, AnomalyKind::Trend).expect("trend found");
    let delay_hours = (at as f64 - PER_DAY as f64) / PER_HOUR as f64;
    println!("latency creep: trend opened {delay_hours:.1} h after the creep began");
    assert!(
        at >= PER_DAY && delay_hours <= 12.0,
        "trend at {at} ({delay_hours:.1} h)"
    );
    assert!(
        opened.iter().all(|o| o.index >= PER_DAY),
        "nothing before the creep: {opened:?}"
    );
}

#[test]
fn memory_leak_is_a_trend_within_five_hours() {
    // 16 GB model process growing 120 MB/h, ±5 MB noise.
    let per_point = 120e6 / PER_HOUR as f64;
    let values = series(
        2 * PER_DAY,
        16e9,
        Noise::Normal { sd: 5e6 },
        Shape::Creep {
            at: PER_DAY / 2,
            per_point,
        },
        6,
    );
    let opened = replay(
        Signal::ModelRss,
        &values,
        INTERVAL,
        &AnomalyConfig::default(),
    );
    let at = first(&opened, AnomalyKind::Trend).expect("trend found");
    let delay_hours = (at as f64 - (PER_DAY / 2) as f64) / PER_HOUR as f64;
    println!("memory leak: trend opened {delay_hours:.1} h after the leak began");
    assert!(
        at >= PER_DAY / 2 && delay_hours <= 5.0,
        "trend at {at} ({delay_hours:.1} h)"
    );
}

#[test]
fn three_clean_days_raise_nothing() {
    let cases: [(Signal, f64, Noise); 4] = [
        (Signal::LatencyP95, 0.4, LATENCY_NOISE),
        (Signal::ErrorRate, 0.02, Noise::LogNormal { sigma: 0.3 }),
        (Signal::ModelRss, 16e9, Noise::Normal { sd: 5e6 }),
        (Signal::GpuTemperature, 70.0, Noise::Normal { sd: 1.0 }),
    ];
    for (seed, (signal, level, noise)) in cases.into_iter().enumerate() {
        let values = series(3 * PER_DAY, level, noise, Shape::None, 100 + seed as u64);
        let opened = replay(signal, &values, INTERVAL, &AnomalyConfig::default());
        assert!(opened.is_empty(), "{signal:?}: {opened:?}");
    }
}

#[test]
fn a_step_right_after_a_model_change_is_blamed_on_it() {
    use magma_monitor::anomaly::synthetic::single;
    use magma_monitor::anomaly::{AnomalyChange, AnomalyEngine, Event};
    let values = series(
        4 * PER_HOUR,
        0.4,
        LATENCY_NOISE,
        Shape::Step {
            at: 1000,
            factor: 2.0,
        },
        7,
    );
    let mut engine = AnomalyEngine::new(AnomalyConfig::default());
    let start = 1_764_000_000.0;
    let mut opened = Vec::new();
    for (i, v) in values.iter().enumerate() {
        if i == 999 {
            engine.push_event(
                start + i as f64 * INTERVAL,
                Event::ModelVersionChanged {
                    from: Some("magma-8b-v1".into()),
                    to: "magma-8b-v2".into(),
                },
            );
        }
        for change in engine.step(&single(Signal::LatencyP95, start + i as f64 * INTERVAL, *v)) {
            if let AnomalyChange::Opened(anomaly) = change {
                opened.push(anomaly);
            }
        }
    }
    let shift = opened
        .iter()
        .find(|a| a.kind == AnomalyKind::LevelShift)
        .expect("level shift");
    assert_eq!(
        format!("{:?}", shift.causes[0].cause),
        "ModelChange",
        "{shift:#?}"
    );
    assert!(
        shift.evidence.starts_with("p95 latency ") && shift.evidence.contains("x baseline since"),
        "{}",
        shift.evidence
    );
    assert!(
        shift
            .evidence
            .contains("model version changed from magma-8b-v1 to magma-8b-v2"),
        "{}",
        shift.evidence
    );
}

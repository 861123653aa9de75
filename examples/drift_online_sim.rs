//! Simulation of the online MMD detector: mean run time without drift
//! against the configured ERT, and detection delay for a 0.5σ mean shift in
//! every one of 8 dimensions (N = 1000, W = 20, ERT = 100), as reported in
//! docs/drift.md.
//!
//! Run: `cargo run --release --example drift_online_sim [runs]`

use std::time::{Duration, Instant};

use magma_monitor::drift::matrix::Samples;
use magma_monitor::drift::online::{OnlineConfig, OnlineMmd};
use rand::{Rng, SeedableRng};

const DIMS: usize = 8;

fn normal(rng: &mut impl Rng) -> f32 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random();
    ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32
}

fn sample(rng: &mut impl Rng, shift: f32) -> Vec<f32> {
    (0..DIMS).map(|_| normal(rng) + shift).collect()
}

/// Updates until the first detection (or `cap`); returns the step.
fn run_until_detection(
    detector: &mut OnlineMmd,
    rng: &mut impl Rng,
    shift: f32,
    cap: u64,
    time: &mut Duration,
    updates: &mut u64,
) -> u64 {
    loop {
        let x = sample(rng, shift);
        let started = Instant::now();
        let outcome = match detector.update(&x) {
            Ok(outcome) => outcome,
            Err(_) => return cap,
        };
        *time += started.elapsed();
        *updates += 1;
        if outcome.drift || outcome.t >= cap {
            return outcome.t;
        }
    }
}

fn summary(label: &str, values: &mut [f64]) {
    values.sort_by(f64::total_cmp);
    let n = values.len() as f64;
    let mean = values.iter().sum::<f64>() / n;
    let sd = (values.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt();
    println!(
        "{label}: mean {mean:.1} (standard error {:.1}), median {:.0}, runs {}",
        sd / n.sqrt(),
        values[values.len() / 2],
        values.len()
    );
}

fn main() {
    let runs: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(200);
    let config = OnlineConfig {
        window: 20,
        ert: 100.0,
        bootstraps: 1000,
        sigma: None,
        seed: 0,
    };
    let mut run_lengths = Vec::new();
    let mut delays = Vec::new();
    let mut late_delays = Vec::new();
    let mut calibration = Duration::ZERO;
    let mut update_time = Duration::ZERO;
    let mut updates = 0u64;
    for run in 0..runs {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(run);
        let data = (0..1000 * DIMS).map(|_| normal(&mut rng)).collect();
        let Some(reference) = Samples::from_flat(1000, DIMS, data) else {
            return;
        };
        let started = Instant::now();
        let Ok(detector) = OnlineMmd::new(
            &reference,
            &OnlineConfig {
                seed: run,
                ..config.clone()
            },
        ) else {
            eprintln!("calibration failed");
            return;
        };
        calibration += started.elapsed();
        let mut quiet = detector.clone();
        let mut late = detector.clone();
        let mut shifted = detector;
        run_lengths.push(run_until_detection(
            &mut quiet,
            &mut rng,
            0.0,
            100_000,
            &mut update_time,
            &mut updates,
        ) as f64);
        delays.push(run_until_detection(
            &mut shifted,
            &mut rng,
            0.5,
            100_000,
            &mut update_time,
            &mut updates,
        ) as f64);
        // The shift starting after 100 quiet updates (the window long since
        // refilled with live samples); streams that raised a false alarm
        // before the change are left out.
        let quiet_start = run_until_detection(
            &mut late,
            &mut rng,
            0.0,
            100,
            &mut update_time,
            &mut updates,
        );
        if quiet_start >= 100 {
            let detected = run_until_detection(
                &mut late,
                &mut rng,
                0.5,
                100_000,
                &mut update_time,
                &mut updates,
            );
            late_delays.push((detected - 100) as f64);
        }
    }
    println!("online MMD, N=1000, W=20, ERT=100, d={DIMS}, bootstraps=1000, {runs} runs per row");
    summary(
        "run time without drift (updates to first false alarm)",
        &mut run_lengths,
    );
    summary(
        "detection delay, 0.5 sigma shift in all 8 dims from the first update",
        &mut delays,
    );
    summary(
        "detection delay, the same shift starting after update 100",
        &mut late_delays,
    );
    println!(
        "per update: {:.1} us ({} updates); calibration: {:.0} ms per detector",
        update_time.as_secs_f64() * 1e6 / updates.max(1) as f64,
        updates,
        calibration.as_secs_f64() * 1e3 / runs as f64
    );
}

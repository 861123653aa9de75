//! Measures the anomaly engine's false alarms on long clean synthetic series.
//!
//! `cargo run --release --example anomaly_false_alarms -- [DAYS] [SEEDS]`
//! (defaults 7 days, 10 seeds; `ONLY=i` runs
//! the i-th series model only; `CUSUM_H`, `CUSUM_K`, `CUSUM_CLIP`, `CUSUM_REF`
//! override the CUSUM parameters for tuning). Prints, per series model, the anomalies
//! opened per kind and the rate per signal-day. Every reading is clean noise,
//! so every opening is a false alarm. Results are in docs/anomaly.md.

use magma_monitor::anomaly::synthetic::{replay, series, Noise, Shape};
use magma_monitor::anomaly::{AnomalyConfig, AnomalyKind, Signal};

const PER_DAY: usize = 8640;

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let days: usize = args.get(1).and_then(|a| a.parse().ok()).unwrap_or(7);
    let seeds: u64 = args.get(2).and_then(|a| a.parse().ok()).unwrap_or(10);
    let mut config = AnomalyConfig::default();
    if let Some(h) = env_f64("CUSUM_H") {
        config.cusum.h = h;
    }
    if let Some(clip) = env_f64("CUSUM_CLIP") {
        config.cusum.clip = clip;
    }
    if let Some(k) = env_f64("CUSUM_K") {
        config.cusum.k = k;
    }
    if let Some(reference) = env_f64("CUSUM_REF") {
        config.cusum.reference = reference as usize;
    }
    let models: [(&str, Signal, f64, Noise, Shape); 5] = [
        (
            "latency p95, log-normal noise σ=0.1",
            Signal::LatencyP95,
            0.4,
            Noise::LogNormal { sigma: 0.1 },
            Shape::None,
        ),
        (
            "error rate 2%, log-normal noise σ=0.3",
            Signal::ErrorRate,
            0.02,
            Noise::LogNormal { sigma: 0.3 },
            Shape::None,
        ),
        (
            "model RSS 16 GB, normal noise 5 MB",
            Signal::ModelRss,
            16e9,
            Noise::Normal { sd: 5e6 },
            Shape::None,
        ),
        (
            "GPU temperature 70 °C, normal noise 1 °C",
            Signal::GpuTemperature,
            70.0,
            Noise::Normal { sd: 1.0 },
            Shape::None,
        ),
        (
            "latency p95 with a ±30% daily cycle, σ=0.1",
            Signal::LatencyP95,
            0.4,
            Noise::LogNormal { sigma: 0.1 },
            Shape::Daily {
                amplitude: 0.3,
                points_per_day: PER_DAY,
            },
        ),
    ];
    println!(
        "{days} days x {seeds} seeds per model, 10 s interval ({} readings each)",
        days * PER_DAY
    );
    println!("| series | spike | drop | level_shift | trend | false alarms per signal-day |");
    println!("|---|---|---|---|---|---|");
    let only: Option<usize> = std::env::var("ONLY").ok().and_then(|v| v.parse().ok());
    for (index, (name, signal, level, noise, shape)) in models.into_iter().enumerate() {
        if only.is_some_and(|o| o != index) {
            continue;
        }
        let mut counts = [0usize; 4];
        for seed in 0..seeds {
            let values = series(days * PER_DAY, level, noise, shape, 1000 + seed);
            for opened in replay(signal, &values, 10.0, &config) {
                let slot = AnomalyKind::ALL
                    .iter()
                    .position(|k| *k == opened.kind)
                    .unwrap_or(0);
                counts[slot] += 1;
            }
        }
        let total: usize = counts.iter().sum();
        println!(
            "| {name} | {} | {} | {} | {} | {:.3} |",
            counts[0],
            counts[1],
            counts[2],
            counts[3],
            total as f64 / (days as f64 * seeds as f64)
        );
    }
}

fn env_f64(name: &str) -> Option<f64> {
    std::env::var(name).ok().and_then(|v| v.parse().ok())
}

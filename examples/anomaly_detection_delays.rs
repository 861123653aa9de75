//! Measures how fast the anomaly engine finds known anomalies in synthetic
//! series, over many seeds.
//!
//! `cargo run --release --example anomaly_detection_delays -- [SEEDS]` (default 20).
//! Prints, per scenario, how many seeds found the expected kind, and the
//! median and worst delay from the anomaly's onset (10 s per reading).
//! Results are in docs/anomaly.md.

use magma_monitor::anomaly::synthetic::{replay, series, Noise, Shape};
use magma_monitor::anomaly::{AnomalyConfig, AnomalyKind, Signal};

const PER_HOUR: usize = 360;
const PER_DAY: usize = 8640;

struct Scenario {
    name: &'static str,
    signal: Signal,
    level: f64,
    noise: Noise,
    shape: Shape,
    onset: usize,
    len: usize,
    kind: AnomalyKind,
}

fn main() {
    let seeds: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(20);
    let latency = Noise::LogNormal { sigma: 0.1 };
    let scenarios = [
        Scenario {
            name: "spike x4 for 3 readings (p95 latency)",
            signal: Signal::LatencyP95,
            level: 0.4,
            noise: latency,
            shape: Shape::Spike {
                at: 1000,
                points: 3,
                factor: 4.0,
            },
            onset: 1000,
            len: 4 * PER_HOUR,
            kind: AnomalyKind::Spike,
        },
        Scenario {
            name: "drop to 10% for 5 readings (QPS)",
            signal: Signal::Qps,
            level: 20.0,
            noise: latency,
            shape: Shape::Spike {
                at: 1000,
                points: 5,
                factor: 0.1,
            },
            onset: 1000,
            len: 4 * PER_HOUR,
            kind: AnomalyKind::Drop,
        },
        Scenario {
            name: "step x2 (p95 latency)",
            signal: Signal::LatencyP95,
            level: 0.4,
            noise: latency,
            shape: Shape::Step {
                at: 1000,
                factor: 2.0,
            },
            onset: 1000,
            len: 4 * PER_HOUR,
            kind: AnomalyKind::LevelShift,
        },
        Scenario {
            name: "step x1.3 (p95 latency)",
            signal: Signal::LatencyP95,
            level: 0.4,
            noise: latency,
            shape: Shape::Step {
                at: 1000,
                factor: 1.3,
            },
            onset: 1000,
            len: 4 * PER_HOUR,
            kind: AnomalyKind::LevelShift,
        },
        Scenario {
            name: "creep 200 ms -> 2 s over 7 days (p95 latency)",
            signal: Signal::LatencyP95,
            level: 0.2,
            noise: latency,
            shape: Shape::Creep {
                at: PER_DAY,
                per_point: 1.8 / (7 * PER_DAY) as f64,
            },
            onset: PER_DAY,
            len: 3 * PER_DAY,
            kind: AnomalyKind::Trend,
        },
        Scenario {
            name: "RSS leak 120 MB/h on 16 GB (model RSS)",
            signal: Signal::ModelRss,
            level: 16e9,
            noise: Noise::Normal { sd: 5e6 },
            shape: Shape::Creep {
                at: PER_DAY / 2,
                per_point: 120e6 / PER_HOUR as f64,
            },
            onset: PER_DAY / 2,
            len: 2 * PER_DAY,
            kind: AnomalyKind::Trend,
        },
    ];
    println!("{seeds} seeds per scenario, one reading every 10 s");
    println!("| scenario | expected kind | found | median delay | worst delay | other openings before onset |");
    println!("|---|---|---|---|---|---|");
    for s in scenarios {
        let mut delays = Vec::new();
        let mut early = 0usize;
        for seed in 0..seeds {
            let values = series(s.len, s.level, s.noise, s.shape, 5000 + seed);
            let opened = replay(s.signal, &values, 10.0, &AnomalyConfig::default());
            early += opened.iter().filter(|o| o.index < s.onset).count();
            if let Some(o) = opened
                .iter()
                .find(|o| o.kind == s.kind && o.index >= s.onset)
            {
                delays.push((o.index - s.onset) as f64 * 10.0);
            }
        }
        delays.sort_by(f64::total_cmp);
        let median = delays.get(delays.len() / 2).copied();
        let worst = delays.last().copied();
        println!(
            "| {} | {} | {}/{} | {} | {} | {} |",
            s.name,
            s.kind.as_label(),
            delays.len(),
            seeds,
            fmt(median),
            fmt(worst),
            early
        );
    }
}

fn fmt(seconds: Option<f64>) -> String {
    match seconds {
        None => "-".into(),
        Some(s) if s >= 3600.0 => format!("{:.1} h", s / 3600.0),
        Some(s) => format!("{s:.0} s"),
    }
}

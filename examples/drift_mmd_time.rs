//! Wall-clock and CPU time of one MMD permutation test (100 permutations,
//! median-heuristic σ) at the benchmark sizes; CPU time is the figure that
//! stays meaningful on a loaded machine.
//!
//! Run: `cargo run --release --example drift_mmd_time [repeats]`

use std::time::Instant;

use magma_monitor::drift::matrix::Samples;
use magma_monitor::drift::mmd::{mmd_test, MmdConfig};
use rand::{Rng, SeedableRng};

fn gaussian(rng: &mut impl Rng, n: usize, d: usize, shift: f32) -> Samples {
    let data = (0..n * d)
        .map(|_| {
            let u1: f64 = rng.random_range(f64::EPSILON..1.0);
            let u2: f64 = rng.random();
            ((-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()) as f32 + shift
        })
        .collect();
    Samples::from_flat(n, d, data).unwrap_or_default()
}

/// User + system CPU seconds of this process so far.
fn cpu_seconds() -> f64 {
    // SAFETY: getrusage writes into the zeroed struct we pass and nothing else.
    let usage = unsafe {
        let mut usage: libc::rusage = std::mem::zeroed();
        libc::getrusage(libc::RUSAGE_SELF, &mut usage);
        usage
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 * 1e-6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn main() {
    let repeats: usize = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(3);
    println!("threads: {}", rayon::current_num_threads());
    for (n, d) in [(500, 16), (1000, 32), (2000, 32), (5000, 64)] {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(n as u64);
        let reference = gaussian(&mut rng, n, d, 0.0);
        let current = gaussian(&mut rng, n, d, 0.1);
        let config = MmdConfig::default();
        let (mut best_wall, mut best_cpu) = (f64::MAX, f64::MAX);
        for _ in 0..repeats {
            let (wall, cpu) = (Instant::now(), cpu_seconds());
            let outcome = mmd_test(&reference, &current, &config);
            best_wall = best_wall.min(wall.elapsed().as_secs_f64());
            best_cpu = best_cpu.min(cpu_seconds() - cpu);
            std::hint::black_box(outcome.ok());
        }
        println!(
            "{n}x{n} d{d}: best wall {:.1} ms, best CPU {:.1} ms (of {repeats})",
            best_wall * 1e3,
            best_cpu * 1e3
        );
    }
}

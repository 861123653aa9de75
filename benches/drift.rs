//! One MMD permutation test (100 permutations, median-heuristic σ included)
//! at the four sizes of the alibi-detect comparison in docs/drift.md.
//!
//! Run: `cargo bench --bench drift`

use criterion::{criterion_group, criterion_main, Criterion};
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

fn mmd_sizes(c: &mut Criterion) {
    let mut group = c.benchmark_group("mmd_permutation_test");
    group.sample_size(10);
    group.warm_up_time(std::time::Duration::from_secs(1));
    for (n, d) in [(500, 16), (1000, 32), (2000, 32), (5000, 64)] {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(n as u64);
        let reference = gaussian(&mut rng, n, d, 0.0);
        let current = gaussian(&mut rng, n, d, 0.1);
        let config = MmdConfig {
            permutations: 100,
            ..MmdConfig::default()
        };
        group.bench_function(format!("{n}x{n}_d{d}"), |b| {
            b.iter(|| mmd_test(&reference, &current, &config))
        });
    }
    group.finish();
}

criterion_group!(benches, mmd_sizes);
criterion_main!(benches);

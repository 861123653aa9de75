//! Cost of the quality monitor per answer, which the proxy pays on every
//! answered request: checks, histograms, the diversity window and the
//! prediction store (kept full, so every answer also evicts one). Run:
//! `cargo bench --bench quality`.

use std::hint::black_box;
use std::time::Instant;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion};
use magma_monitor::quality::answer::AnswerView;
use magma_monitor::quality::monitor::{QualityConfig, QualityMonitor};
use magma_monitor::quality::task::Task;
use magma_monitor::telemetry;

const ACTIONS: [f64; 7] = [0.01, -0.02, 0.0, 0.1, 0.0, -0.05, 1.0];

fn answers(c: &mut Criterion) {
    let (recorder, _handle) =
        telemetry::build_recorder(&telemetry::Buckets::default()).expect("recorder");
    metrics::with_local_recorder(&recorder, || {
        let monitor = QualityMonitor::new(QualityConfig::default());
        let ids: Vec<String> = (0..200_000).map(|i| format!("{i:032x}")).collect();
        let mut next = 0usize;
        let mut id = || {
            next = (next + 1) % ids.len();
            ids[next].as_str()
        };
        let robot = AnswerView {
            normalized_actions: Some(&ACTIONS),
            delta_values: Some(&ACTIONS),
            ..AnswerView::text(Task::RobotAction, "ok")
        };
        let caption = AnswerView::text(
            Task::VisualQa,
            "A red block sits on a wooden table next to a white cup; the robot arm is above the cup.",
        );
        // Fill the store so each measured answer also evicts one.
        for _ in 0..QualityConfig::default().store_capacity {
            monitor.observe_at(Some(id()), &robot, Instant::now());
        }
        let mut group = c.benchmark_group("quality_observe");
        let now = Instant::now();
        group.bench_function("robot_action_7dof_twice", |b| {
            b.iter(|| black_box(monitor.observe_at(Some(id()), &robot, now)))
        });
        group.bench_function("visual_qa_18_words", |b| {
            b.iter(|| black_box(monitor.observe_at(Some(id()), &caption, now)))
        });
        group.bench_function("robot_action_without_request_id", |b| {
            b.iter_batched(
                || (),
                |()| black_box(monitor.observe_at(None, &robot, now)),
                BatchSize::SmallInput,
            )
        });
        group.finish();
    });
}

criterion_group!(benches, answers);
criterion_main!(benches);

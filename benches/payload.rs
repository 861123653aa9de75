//! Cost of the request tap on the forward path: classifying a 1 MiB OpenAI
//! chat request with an inline base64 image, fed in 64 KiB chunks as hyper
//! delivers them. Target: >= 1 GB/s. Run:
//! `cargo bench --bench payload`.

use std::hint::black_box;
use std::sync::Arc;

use base64::Engine;
use criterion::{criterion_group, criterion_main, Criterion, Throughput};
use magma_monitor::payload::{RequestTap, ResponseTap, TaskClassifier};

fn openai_image_request(total: usize) -> Vec<u8> {
    let image_len = (total - 400) * 3 / 4;
    let image: Vec<u8> = (0..image_len).map(|i| (i * 31 % 251) as u8).collect();
    let encoded = base64::engine::general_purpose::STANDARD.encode(image);
    format!(
        r#"{{"model":"magma-8b","messages":[{{"role":"user","content":[{{"type":"text","text":"What is in this picture? Answer with a single number."}},{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{encoded}"}}}}]}}],"max_tokens":64}}"#
    )
    .into_bytes()
}

fn small_magma_request() -> Vec<u8> {
    br#"{"image":"iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==","prompt":"What action should the robot take to pick up the red block?"}"#.to_vec()
}

fn bench_request_tap(c: &mut Criterion) {
    let classifier = Arc::new(TaskClassifier::default());
    let body = openai_image_request(1 << 20);
    let mut group = c.benchmark_group("request_tap");
    group.throughput(Throughput::Bytes(body.len() as u64));
    group.bench_function("openai_chat_1MiB_image_64KiB_chunks", |b| {
        b.iter(|| {
            let mut tap = RequestTap::new(
                "/v1/chat/completions",
                Some("application/json"),
                classifier.clone(),
                None,
            );
            for chunk in body.chunks(64 * 1024) {
                tap.feed(black_box(chunk));
            }
            black_box(tap.finish())
        })
    });
    let small = small_magma_request();
    group.throughput(Throughput::Bytes(small.len() as u64));
    group.bench_function("magma_predict_small", |b| {
        b.iter(|| {
            let mut tap = RequestTap::new(
                "/predict",
                Some("application/json"),
                classifier.clone(),
                None,
            );
            tap.feed(black_box(&small));
            black_box(tap.finish())
        })
    });
    group.finish();
}

fn bench_response_tap(c: &mut Criterion) {
    let mut stream = Vec::new();
    for i in 0..2000 {
        stream.extend_from_slice(
            format!(
                "data: {{\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}}}}]}}\n\n"
            )
            .as_bytes(),
        );
    }
    stream.extend_from_slice(b"data: [DONE]\n\n");
    let mut group = c.benchmark_group("response_tap");
    group.throughput(Throughput::Bytes(stream.len() as u64));
    group.bench_function("openai_sse_2000_events", |b| {
        b.iter(|| {
            let mut tap = ResponseTap::new(200, Some("text/event-stream"), None);
            for chunk in stream.chunks(4096) {
                tap.feed(black_box(chunk));
            }
            black_box(tap.finish())
        })
    });
    // The answer of a Magma robot call: a short text and two 7-DoF vectors.
    let answer = br#"{"text_response":"ok","normalized_actions":[0.1234,-0.5,0,0.25,0,-0.0625,1],"delta_values":[0.01,0,-0.02,0,0,0.003,1]}"#;
    group.throughput(Throughput::Bytes(answer.len() as u64));
    group.bench_function("magma_action_answer", |b| {
        b.iter(|| {
            let mut tap = ResponseTap::new(200, Some("application/json"), None);
            tap.feed(black_box(answer));
            black_box(tap.finish())
        })
    });
    group.finish();
}

criterion_group!(benches, bench_request_tap, bench_response_tap);
criterion_main!(benches);

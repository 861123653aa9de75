//! End to end through the real binary: an upstream on loopback whose latency
//! creeps and whose process really leaks memory, traffic through the proxy,
//! the model process read from /proc by `--upstream-pid`, and the verdict read
//! from `/api/anomalies`: a latency anomaly with the memory leak ranked first.
//!
//! The upstream runs inside this test process, so `--upstream-pid` is this
//! process's pid. Time is compressed by the flags: the engine reads its
//! signals every 100 ms and the trend detector averages 2 readings a bucket.

mod harness;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::*;
use http_body_util::BodyExt;
use hyper::Request;

const LEAK_PER_REQUEST: usize = 256 * 1024;
const TICKS: u64 = 260;
const TICK: Duration = Duration::from_millis(100);
const REQUESTS_PER_TICK: usize = 3;

#[test]
fn creeping_latency_with_a_leaking_model_is_blamed_on_the_leak() {
    let delay_ms = Arc::new(AtomicU64::new(5));
    let leak: Arc<Mutex<Vec<Vec<u8>>>> = Arc::new(Mutex::new(Vec::new()));
    let (delay, kept) = (delay_ms.clone(), leak.clone());
    let upstream = Upstream::start(move |request: Request<hyper::body::Incoming>| {
        let delay = delay.load(Ordering::Relaxed);
        let kept = kept.clone();
        async move {
            if request.uri().path() == "/health" {
                return response(200, r#"{"status":"healthy","model_loaded":true}"#);
            }
            let _ = request.into_body().collect().await;
            tokio::time::sleep(Duration::from_millis(delay)).await;
            // Non-zero bytes, so the pages are really touched and resident.
            kept.lock().unwrap().push(vec![7u8; LEAK_PER_REQUEST]);
            response(
                200,
                r#"{"text_response":"","normalized_actions":[0,0,0,0,0,0,1],"delta_values":[0,0,0,0,0,0,1]}"#,
            )
        }
    });
    let pid = std::process::id().to_string();
    let sidecar = Sidecar::start(
        &upstream.url(),
        &[
            "--no-gpu",
            "--sample-rate",
            "0",
            "--upstream-pid",
            &pid,
            "--process-interval",
            "100ms",
            "--anomaly-interval",
            "100ms",
            "--anomaly-trend-bucket",
            "2",
            "--anomaly-trend-window",
            "96",
        ],
    );
    sidecar.wait_ready(200);

    let body = br#"{"image":"","prompt":"What action should the robot take to pick up the cup?"}"#;
    let started = Instant::now();
    for tick in 0..TICKS {
        // 5 ms, flat for 60 ticks, then +0.5 ms a tick (to about 105 ms).
        delay_ms.store(5 + tick.saturating_sub(60) / 2, Ordering::Relaxed);
        let workers: Vec<_> = (0..REQUESTS_PER_TICK)
            .map(|_| {
                let proxy = sidecar.proxy;
                std::thread::spawn(move || {
                    let mut request = format!(
                        "POST /predict HTTP/1.1\r\nHost: m\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
                        body.len()
                    )
                    .into_bytes();
                    request.extend_from_slice(body);
                    split_response(&raw_exchange(proxy, &request)).0
                })
            })
            .collect();
        for worker in workers {
            assert_eq!(worker.join().unwrap(), 200);
        }
        let next = started + TICK * (tick as u32 + 1);
        std::thread::sleep(next.saturating_duration_since(Instant::now()));
    }
    let leaked_mib = leak.lock().unwrap().len() * LEAK_PER_REQUEST / (1024 * 1024);
    assert!(
        leaked_mib >= 150,
        "the upstream leaked only {leaked_mib} MiB"
    );

    let (status, body) = sidecar.admin_get("/api/anomalies");
    assert_eq!(status, 200);
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    let latency: Vec<&serde_json::Value> = report["active"]
        .as_array()
        .unwrap()
        .iter()
        .chain(report["recent"].as_array().into_iter().flatten())
        .filter(|a| {
            a["signal"]
                .as_str()
                .is_some_and(|s| s.starts_with("latency_"))
        })
        .collect();
    assert!(!latency.is_empty(), "no latency anomaly: {report:#}");
    let creeping: Vec<_> = latency.iter().filter(|a| a["kind"] == "trend").collect();
    assert!(
        !creeping.is_empty(),
        "the latency creep was not found: {report:#}"
    );
    for anomaly in creeping {
        assert_eq!(anomaly["causes"][0]["cause"], "memory_leak", "{anomaly:#}");
        let evidence = anomaly["evidence"].as_str().unwrap_or("");
        assert!(evidence.contains("memory leak likely"), "{evidence}");
    }
    let metrics = sidecar.metrics();
    assert!(
        metrics.contains("magma_upstream_process_up 1"),
        "the model process was not found"
    );
}

//! End to end, as far as this branch goes: a real upstream on loopback whose
//! latency creeps and whose process memory really grows (it leaks 256 KiB per
//! request, measured from /proc), real HTTP requests to it, the metrics
//! registry, the registry-reading `PrometheusSource`, the anomaly engine, and
//! `/api/anomalies` served by the admin server over HTTP.
//!
//! Two stand-ins remain until the proxy and the resource collector are
//! merged: the test records `magma_request_duration_seconds` /
//! `magma_requests_total` for each request itself (the proxy will), and sets
//! `magma_upstream_process_resident_memory_bytes` from /proc (the collector
//! will). Time is compressed: each engine step stands for a 10 s interval,
//! and the trend detector averages 2 readings per bucket instead of 30.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo};
use magma_monitor::admin::{self, AdminState};
use magma_monitor::anomaly::{AnomalyConfig, AnomalyHandle, PrometheusSource};
use magma_monitor::resources::procfs;
use magma_monitor::shutdown::Shutdown;
use magma_monitor::telemetry;
use serde_json::Value;

const LEAK_PER_REQUEST: usize = 256 * 1024;
const TICKS: u64 = 240;
const REQUESTS_PER_TICK: usize = 3;

/// A Magma-like upstream: answers /predict after `delay_ms`, and keeps
/// `LEAK_PER_REQUEST` bytes of every request forever.
async fn start_upstream(delay_ms: Arc<AtomicU64>, leak: Arc<Mutex<Vec<Vec<u8>>>>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let delay_ms = delay_ms.clone();
            let leak = leak.clone();
            tokio::spawn(async move {
                let service = hyper::service::service_fn(
                    move |_req: hyper::Request<hyper::body::Incoming>| {
                        let delay_ms = delay_ms.clone();
                        let leak = leak.clone();
                        async move {
                            tokio::time::sleep(Duration::from_millis(
                                delay_ms.load(Ordering::Relaxed),
                            ))
                            .await;
                            // Filled with a non-zero byte so the pages are really touched.
                            if let Ok(mut leak) = leak.lock() {
                                leak.push(vec![7u8; LEAK_PER_REQUEST]);
                            }
                            let body = r#"{"text_response":"","normalized_actions":[0,0,0,0,0,0,1],"delta_values":[0,0,0,0,0,0,1]}"#;
                            Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                                Bytes::from(body),
                            )))
                        }
                    },
                );
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{address}/predict")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn creeping_latency_with_growing_memory_is_blamed_on_a_memory_leak() {
    let prometheus = telemetry::install(&telemetry::Buckets::default()).unwrap();
    let delay_ms = Arc::new(AtomicU64::new(5));
    let leak = Arc::new(Mutex::new(Vec::new()));
    let upstream = start_upstream(delay_ms.clone(), leak.clone()).await;

    let mut config = AnomalyConfig::default();
    config.trend.bucket_points = 2;
    config.trend.window_buckets = 96;
    config.trend.min_buckets = 12;
    config.refresh_every = 5;
    let engine = Arc::new(AnomalyHandle::new(config));
    let mut source = PrometheusSource::new(prometheus.clone());

    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let start_unix = 1_764_000_000.0;
    for tick in 0..TICKS {
        // 5 ms, flat for 40 ticks, then +0.5 ms per tick (to about 105 ms).
        delay_ms.store(5 + tick.saturating_sub(40) / 2, Ordering::Relaxed);
        let requests = (0..REQUESTS_PER_TICK).map(|_| {
            let client = client.clone();
            let upstream = upstream.clone();
            async move {
                let started = Instant::now();
                let request = hyper::Request::post(upstream)
                    .body(Full::new(Bytes::from_static(br#"{"image":"","prompt":"What action should the robot take to pick up the cup?"}"#)))
                    .unwrap();
                let response = client.request(request).await.unwrap();
                let status = response.status();
                let _ = response.into_body().collect().await.unwrap();
                // What the proxy records for every request.
                metrics::histogram!(telemetry::REQUEST_DURATION, "model_type" => "magma-8b", "status" => status.as_str().to_owned(), "modality" => "image", "task" => "robot_action")
                    .record(started.elapsed().as_secs_f64());
                metrics::counter!(telemetry::REQUESTS, "model_type" => "magma-8b", "route" => "/predict", "code" => "2xx").increment(1);
            }
        });
        futures_util::future::join_all(requests).await;
        // What the resource collector records: the upstream's resident memory,
        // read from /proc (the upstream runs in this process).
        let rss = procfs::read_process("self").unwrap().resident_bytes;
        metrics::gauge!("magma_upstream_process_resident_memory_bytes").set(rss as f64);
        let snapshot = source.snapshot(start_unix + tick as f64 * 10.0);
        engine.step(&snapshot);
    }
    let leaked_mib = leak.lock().unwrap().len() * LEAK_PER_REQUEST / (1024 * 1024);
    assert!(leaked_mib >= 150, "the upstream leaked {leaked_mib} MiB");

    // Read the verdict over HTTP, as a user would.
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let admin_url = format!("http://{}/api/anomalies", listener.local_addr().unwrap());
    let state = Arc::new(AdminState {
        anomalies: Some(engine.clone()),
        ..AdminState::new(prometheus.clone(), upstream.clone())
    });
    let (_shutdown, signal) = Shutdown::new();
    tokio::spawn(admin::serve(listener, state, signal));
    let response = client
        .request(
            hyper::Request::get(admin_url)
                .body(Full::new(Bytes::new()))
                .unwrap(),
        )
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let report: Value =
        serde_json::from_slice(&response.into_body().collect().await.unwrap().to_bytes()).unwrap();
    let latency: Vec<&Value> = report["active"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| {
            a["signal"]
                .as_str()
                .is_some_and(|s| s.starts_with("latency_"))
        })
        .collect();
    assert!(!latency.is_empty(), "no latency anomaly open: {report:#}");
    for anomaly in &latency {
        println!(
            "{} {}: {}",
            anomaly["signal"], anomaly["kind"], anomaly["evidence"]
        );
        assert_eq!(anomaly["causes"][0]["cause"], "memory_leak", "{anomaly:#}");
        assert!(
            anomaly["evidence"]
                .as_str()
                .unwrap()
                .contains("memory leak likely"),
            "{anomaly:#}"
        );
    }
    let rendered = prometheus.render();
    assert!(
        rendered.contains("magma_anomaly_active{signal=\"latency_p95\""),
        "{rendered}"
    );
}

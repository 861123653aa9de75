//! Feedback and ground-truth routes over real HTTP: the admin server runs on
//! a loopback port in-process (so the test can record predictions first), and
//! the built binary is started once to check the token and the anomaly route
//! as deployed.

use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use magma_monitor::admin::{self, AdminState};
use magma_monitor::quality::{AnswerView, QualityConfig, QualityMonitor, Task};
use magma_monitor::recorder::MetricsHandle;
use magma_monitor::shutdown::Shutdown;
use magma_monitor::telemetry;
use serde_json::{json, Value};

fn prometheus() -> MetricsHandle {
    static HANDLE: OnceLock<MetricsHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| telemetry::install(&telemetry::Buckets::default()).expect("recorder"))
        .clone()
}

struct Server {
    base: String,
    monitor: Arc<QualityMonitor>,
    _shutdown: Shutdown,
}

async fn start(token: Option<&str>) -> Server {
    let monitor = Arc::new(QualityMonitor::new(QualityConfig {
        store_ttl: Duration::from_secs(5),
        ..QualityConfig::default()
    }));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let state = Arc::new(AdminState {
        admin_token: token.map(str::to_owned),
        quality: Some(monitor.clone()),
        ..AdminState::new(prometheus(), "http://127.0.0.1:1".into())
    });
    let (shutdown, signal) = Shutdown::new();
    tokio::spawn(admin::serve(listener, state, signal));
    Server {
        base,
        monitor,
        _shutdown: shutdown,
    }
}

async fn call(
    method: &str,
    url: &str,
    body: &str,
    headers: &[(&str, &str)],
) -> (u16, Value, http::HeaderMap) {
    let client = Client::builder(TokioExecutor::new()).build_http::<Full<Bytes>>();
    let mut request = http::Request::builder().method(method).uri(url);
    for (k, v) in headers {
        request = request.header(*k, *v);
    }
    let request = request
        .body(Full::new(Bytes::from(body.to_owned())))
        .unwrap();
    let response = client.request(request).await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    let value = serde_json::from_slice(&bytes)
        .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&bytes).into_owned()));
    (status, value, headers)
}

fn record(monitor: &QualityMonitor) {
    monitor.observe(
        Some("req-qa"),
        &AnswerView::text(Task::VisualQa, "there are two cats"),
    );
    monitor.observe(
        Some("req-ui"),
        &AnswerView::text(Task::UiNavigation, "Mark: 12 (0.52, 0.31)"),
    );
    let delta = [0.01, 0.0, -0.02, 0.1, 0.0, 0.0, 1.0];
    monitor.observe(
        Some("req-robot"),
        &AnswerView {
            delta_values: Some(&delta),
            ..AnswerView::text(Task::RobotAction, "")
        },
    );
    // Recorded 10 s ago with a 5 s TTL: expired.
    monitor.observe_at(
        Some("req-old"),
        &AnswerView::text(Task::Chat, "hello"),
        Instant::now() - Duration::from_secs(10),
    );
}

#[tokio::test]
async fn feedback_route() {
    let server = start(None).await;
    record(&server.monitor);
    let url = format!("{}/api/feedback", server.base);

    let (status, body, _) = call(
        "POST",
        &url,
        r#"{"request_id":"req-qa","rating":"down","comment":"there are three"}"#,
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["task"], "visual_qa");
    assert_eq!(body["counted"], true);
    let (status, body, _) = call(
        "POST",
        &url,
        r#"{"request_id":"req-qa","rating":"up"}"#,
        &[],
    )
    .await;
    assert_eq!(
        (status, &body["counted"]),
        (200, &json!(false)),
        "a second rating of one id is not counted"
    );

    let (status, body, _) = call("POST", &url, r#"{"request_id":"nope","rating":"up"}"#, &[]).await;
    assert_eq!(status, 404);
    assert_eq!(body["error"], "unknown_request_id");
    let (status, body, _) = call(
        "POST",
        &url,
        r#"{"request_id":"req-old","rating":"up"}"#,
        &[],
    )
    .await;
    assert_eq!(status, 404);
    assert!(
        body["detail"].as_str().unwrap().contains("expired"),
        "{body}"
    );

    for (bad, reason) in [
        (
            r#"{"request_id":"req-ui","rating":"meh"}"#,
            "unknown variant",
        ),
        (r#"{"request_id":"req-ui"}"#, "missing field `rating`"),
        (
            r#"{"request_id":"req-ui","rating":"up","stars":5}"#,
            "unknown field `stars`",
        ),
        (r#"{"request_id":"","rating":"up"}"#, "request_id is empty"),
        ("[1,2]", "expected a JSON object"),
        ("not json", "not valid JSON"),
        ("", "empty body"),
    ] {
        let (status, body, _) = call("POST", &url, bad, &[]).await;
        assert_eq!(status, 400, "{bad}: {body}");
        assert_eq!(body["error"], "bad_request");
        assert!(
            body["detail"].as_str().unwrap().contains(reason),
            "{bad}: {body}"
        );
    }

    let (status, body, _) = call("GET", &format!("{url}?limit=5"), "", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(body["feedback"][0]["comment"], "there are three");

    let (_, metrics, _) = call("GET", &format!("{}/metrics", server.base), "", &[]).await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains(r#"magma_feedback_total{rating="down",task="visual_qa"} 1"#),
        "{metrics}"
    );
}

#[tokio::test]
async fn ground_truth_route_single_and_batch() {
    let server = start(None).await;
    record(&server.monitor);
    let url = format!("{}/api/ground_truth", server.base);

    let (status, body, _) = call(
        "POST",
        &url,
        r#"{"request_id":"req-qa","text":"two cats"}"#,
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let f1 = body["scores"]["token_f1"].as_f64().unwrap();
    assert!(
        (f1 - 2.0 * 0.5 / 1.5).abs() < 1e-9,
        "P = 2/4, R = 1: {body}"
    );

    let (status, body, _) = call(
        "POST",
        &url,
        r#"{"request_id":"req-ui","mark":12,"box":[0.5,0.3,0.6,0.4]}"#,
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["scores"]["mark_match"], 1.0);
    assert_eq!(body["scores"]["point_in_box"], 1.0);

    let (status, body, _) = call(
        "POST",
        &url,
        r#"{"request_id":"req-robot","action":[0.01,0,-0.02,0.1,0,0,0]}"#,
        &[],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert!((body["scores"]["action_l2_error"].as_f64().unwrap() - 1.0).abs() < 1e-9);
    assert_eq!(body["scores"]["gripper_agreement"], 0.0);

    let (status, body, _) = call(
        "POST",
        &url,
        r#"{"request_id":"req-robot","action":[1,2,3]}"#,
        &[],
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        body["detail"]
            .as_str()
            .unwrap()
            .contains("exactly 7 values"),
        "{body}"
    );
    let (status, _, _) = call("POST", &url, r#"{"request_id":"gone","text":"x"}"#, &[]).await;
    assert_eq!(status, 404);

    let batch = concat!(
        "{\"request_id\":\"req-qa\",\"text\":\"there are two cats\"}\n",
        "\n",
        "{\"request_id\":\"missing\",\"text\":\"x\"}\n",
        "{\"request_id\":\"req-ui\",\"point\":[0.52,0.35]}\n",
        "{broken\n",
        "{\"request_id\":\"req-ui\"}\n",
    );
    let (status, body, _) = call(
        "POST",
        &url,
        batch,
        &[("content-type", "application/x-ndjson")],
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["lines"], 5);
    assert_eq!(body["accepted"], 2);
    assert_eq!(body["unknown"], 1);
    assert_eq!(body["invalid"], 2);
    let results = body["results"].as_array().unwrap();
    assert_eq!(results[0]["line"], 1);
    assert_eq!(results[0]["scores"]["rouge_l"], 1.0);
    assert_eq!(results[1]["status"], 404);
    assert_eq!(results[2]["line"], 4);
    assert!((results[2]["scores"]["point_distance"].as_f64().unwrap() - 0.04).abs() < 1e-9);
    assert_eq!(results[3]["status"], 400);
    assert!(results[4]["detail"]
        .as_str()
        .unwrap()
        .contains("no label given"));

    // Without a content type, several lines are a batch too.
    let (status, body, _) = call("POST", &url, "{\"request_id\":\"req-qa\",\"text\":\"cats\"}\n{\"request_id\":\"req-qa\",\"text\":\"dogs\"}\n", &[]).await;
    assert_eq!((status, &body["accepted"]), (200, &json!(2)), "{body}");

    let oversized = "x".repeat(magma_monitor::quality::api::MAX_BODY_BYTES + 1);
    let (status, body, _) = call("POST", &url, &oversized, &[]).await;
    assert_eq!(status, 413, "{body}");

    let (_, metrics, _) = call("GET", &format!("{}/metrics", server.base), "", &[]).await;
    let metrics = metrics.as_str().unwrap().to_owned();
    assert!(
        metrics.contains(
            r#"magma_quality_score_bucket{metric="mark_match",task="ui_navigation",le="1"}"#
        ),
        "{metrics}"
    );
    assert!(metrics.contains(r#"magma_ground_truth_total{outcome="scored"}"#));
}

#[tokio::test]
async fn token_is_required_when_set() {
    let server = start(Some("s3cret")).await;
    record(&server.monitor);
    let url = format!("{}/api/feedback", server.base);
    let body = r#"{"request_id":"req-ui","rating":"up"}"#;
    let (status, answer, headers) = call("POST", &url, body, &[]).await;
    assert_eq!(status, 401);
    assert_eq!(answer["error"], "unauthorized");
    assert!(headers.contains_key("www-authenticate"));
    let (status, _, _) = call("POST", &url, body, &[("authorization", "Bearer wrong")]).await;
    assert_eq!(status, 401);
    let (status, _, _) = call(
        "POST",
        &format!("{}/api/ground_truth", server.base),
        r#"{"request_id":"req-ui","mark":1}"#,
        &[],
    )
    .await;
    assert_eq!(status, 401);
    let (status, answer, _) = call("POST", &url, body, &[("authorization", "Bearer s3cret")]).await;
    assert_eq!(status, 200, "{answer}");
    let (status, _, _) = call("GET", &format!("{}/metrics", server.base), "", &[]).await;
    assert_eq!(status, 200, "/metrics stays open");
    let (status, _, _) = call("GET", &format!("{}/healthz", server.base), "", &[]).await;
    assert_eq!(status, 200);
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn the_binary_serves_the_routes() {
    let admin = free_port();
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_magma-monitor"))
        .args([
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
            "--upstream",
            "http://127.0.0.1:9",
            "--admin-listen",
            &format!("127.0.0.1:{admin}"),
            "--admin-token",
            "t0ken",
            "--anomaly-interval",
            "200ms",
        ])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let base = format!("http://127.0.0.1:{admin}");
    let mut ready = false;
    for _ in 0..100 {
        if tokio::net::TcpStream::connect(("127.0.0.1", admin))
            .await
            .is_ok()
        {
            ready = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let outcome = async {
        assert!(ready, "admin port never opened");
        let (status, _, _) = call(
            "POST",
            &format!("{base}/api/feedback"),
            r#"{"request_id":"x","rating":"up"}"#,
            &[],
        )
        .await;
        assert_eq!(status, 401);
        let (status, body, _) = call(
            "POST",
            &format!("{base}/api/feedback"),
            r#"{"request_id":"x","rating":"up"}"#,
            &[("authorization", "Bearer t0ken")],
        )
        .await;
        assert_eq!(status, 404, "{body}");
        assert_eq!(body["error"], "unknown_request_id");
        tokio::time::sleep(Duration::from_millis(700)).await;
        let (status, body, _) = call("GET", &format!("{base}/api/anomalies"), "", &[]).await;
        assert_eq!(status, 200, "{body}");
        assert!(body["evaluations"].as_u64().unwrap() >= 2, "{body}");
        assert_eq!(body["events"][0]["type"], "sidecar_started");
        assert!(body["active"].as_array().unwrap().is_empty());
    };
    let result = tokio::time::timeout(Duration::from_secs(30), outcome).await;
    let _ = child.kill();
    let _ = child.wait();
    result.expect("timed out");
}

//! Payload understanding through the running proxy: real bodies in every
//! format, labels checked exactly, malformed bodies passed through unchanged,
//! and memory flat under a large unsampled image.

mod harness;

use std::sync::{Arc, Mutex};

use harness::*;
use http_body_util::BodyExt;
use hyper::Request;

/// An upstream that records each body and answers like Magma.
fn magma_like() -> (Upstream, Arc<Mutex<Vec<Vec<u8>>>>) {
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    let upstream = Upstream::start(move |request: Request<hyper::body::Incoming>| {
        let seen = seen.clone();
        async move {
            if request.uri().path() == "/health" {
                return response(200, r#"{"status":"healthy","model_loaded":true}"#);
            }
            let body = request
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            seen.lock().unwrap().push(body);
            response(
                200,
                r#"{"text_response":"Mark: 3 (0.52, 0.31)","normalized_actions":[0.1,0.0,-0.2,0.0,0.0,0.3,1.0],"delta_values":[0.01,0.0,-0.02,0.0,0.0,0.3,1.0]}"#,
            )
        }
    });
    (upstream, bodies)
}

fn send(sidecar: &Sidecar, path: &str, content_type: &str, body: &[u8]) -> u16 {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: m\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    split_response(&raw_exchange(sidecar.proxy, &request)).0
}

/// Successful `magma-8b` requests with these payload labels.
fn successes(metrics: &str, modality: &str, task: &str) -> Option<f64> {
    metric_value(
        metrics,
        &format!(
            r#"magma_request_duration_seconds_count{{model_type="magma-8b",status="success",modality="{modality}",task="{task}"}}"#
        ),
    )
}

const PNG_1X1: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

#[test]
fn every_format_gets_its_modality_and_task_labels() {
    let (upstream, _) = magma_like();
    let sidecar = Sidecar::start(&upstream.url(), &["--no-gpu"]);
    let robot = format!(
        r#"{{"image":"{PNG_1X1}","prompt":"What action should the robot take to pick up the red cup?"}}"#
    );
    assert_eq!(
        send(&sidecar, "/predict", "application/json", robot.as_bytes()),
        200
    );

    let ui = format!(
        r#"{{"image":"{PNG_1X1}","prompt":"In this view I need to click a button to \"submit\"? Provide the coordinates and the mark index of the containing bounding box if applicable."}}"#
    );
    assert_eq!(
        send(&sidecar, "/predict", "application/json", ui.as_bytes()),
        200
    );

    let boundary = "XyZboundary";
    let mut multipart = format!(
        "--{boundary}\r\nContent-Disposition: form-data; name=\"prompt\"\r\n\r\nWhat is in the picture? Answer with a single number.\r\n--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.png\"\r\nContent-Type: image/png\r\n\r\n"
    )
    .into_bytes();
    multipart.extend_from_slice(&[
        0x89, b'P', b'N', b'G', b'\r', b'\n', 0x1a, b'\n', 0, 0, 0, 13,
    ]);
    multipart.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    let content_type = format!("multipart/form-data; boundary={boundary}");
    assert_eq!(
        send(&sidecar, "/predict_from_file", &content_type, &multipart),
        200
    );

    let chat = format!(
        r#"{{"model":"magma-8b","messages":[{{"role":"user","content":[{{"type":"text","text":"Describe these."}},{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{PNG_1X1}"}}}},{{"type":"image_url","image_url":{{"url":"http://example.invalid/b.png"}}}}]}}]}}"#
    );
    assert_eq!(
        send(
            &sidecar,
            "/v1/chat/completions",
            "application/json",
            chat.as_bytes()
        ),
        200
    );

    let text_only =
        r#"{"model":"magma-8b","messages":[{"role":"user","content":"Tell me a story."}]}"#;
    assert_eq!(
        send(
            &sidecar,
            "/v1/chat/completions",
            "application/json",
            text_only.as_bytes()
        ),
        200
    );

    let metrics = sidecar.metrics();
    let count = |modality: &str, task: &str| successes(&metrics, modality, task);
    assert_eq!(count("image", "robot_action"), Some(1.0), "{metrics}");
    assert_eq!(count("image", "ui_navigation"), Some(1.0), "{metrics}");
    assert_eq!(count("image", "visual_qa"), Some(1.0), "{metrics}");
    assert_eq!(count("multi_image", "visual_qa"), Some(1.0), "{metrics}");
    assert_eq!(count("text", "chat"), Some(1.0), "{metrics}");
    assert_eq!(
        metric_value(
            &metrics,
            r#"magma_payload_requests_total{format="magma_predict_file",modality="image",task="visual_qa"}"#
        ),
        Some(1.0)
    );
}

#[test]
fn malformed_bodies_pass_through_unchanged_and_are_unknown() {
    let (upstream, bodies) = magma_like();
    let sidecar = Sidecar::start(&upstream.url(), &["--no-gpu"]);
    let cases: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "/predict",
            "application/json",
            br#"{"prompt": "unterminated"#.to_vec(),
        ),
        (
            "/predict",
            "application/json",
            b"this is not json at all".to_vec(),
        ),
        (
            "/predict",
            "application/json",
            vec![b'{', b'"', 0xff, 0xfe, b'"', b':', b'1', b'}'],
        ),
        (
            "/predict_from_file",
            "multipart/form-data; boundary=zz",
            b"--zz\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\ntrunc".to_vec(),
        ),
    ];
    for (path, content_type, body) in &cases {
        assert_eq!(send(&sidecar, path, content_type, body), 200);
        assert_eq!(
            bodies.lock().unwrap().last().unwrap(),
            body,
            "body changed on the way"
        );
    }
    let metrics = sidecar.metrics();
    assert_eq!(
        metric_value(
            &metrics,
            r#"magma_request_duration_seconds_count{model_type="magma-8b",status="success",modality="unknown",task="unknown"}"#
        ),
        Some(cases.len() as f64),
        "{metrics}"
    );
}

#[test]
fn allowed_models_label_the_requests() {
    let (upstream, _) = magma_like();
    let sidecar = Sidecar::start(
        &upstream.url(),
        &["--no-gpu", "--allowed-models", "magma-8b,magma-8b-ft"],
    );
    for model in ["magma-8b-ft", "someone-elses-model"] {
        let body =
            format!(r#"{{"model":"{model}","messages":[{{"role":"user","content":"hi"}}]}}"#);
        assert_eq!(
            send(
                &sidecar,
                "/v1/chat/completions",
                "application/json",
                body.as_bytes()
            ),
            200
        );
    }
    let metrics = sidecar.metrics();
    let requests = |model: &str| {
        metric_value(
            &metrics,
            &format!(
                r#"magma_requests_total{{model_type="{model}",route="/v1/chat/completions",code="2xx"}}"#
            ),
        )
    };
    assert_eq!(requests("magma-8b-ft"), Some(1.0));
    assert_eq!(requests("other"), Some(1.0));
    assert_eq!(requests("someone-elses-model"), None);
}

#[test]
fn without_payload_analysis_bodies_pass_and_only_request_metrics_are_kept() {
    let (upstream, bodies) = magma_like();
    let sidecar = Sidecar::start(
        &upstream.url(),
        &[
            "--no-gpu",
            "--no-payload-analysis",
            "--allowed-models",
            "magma-8b-ft",
            "--sample-rate",
            "1",
        ],
    );
    let robot = format!(
        r#"{{"model":"magma-8b-ft","image":"{PNG_1X1}","prompt":"What action should the robot take to pick up the red cup?"}}"#
    );
    let mut request = format!(
        "POST /predict HTTP/1.1\r\nHost: m\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        robot.len()
    )
    .into_bytes();
    request.extend_from_slice(robot.as_bytes());
    let (status, _, answer) = split_response(&raw_exchange(sidecar.proxy, &request));
    assert_eq!(status, 200);
    assert!(answer.starts_with(br#"{"text_response":"Mark: 3"#));
    assert_eq!(bodies.lock().unwrap().as_slice(), [robot.into_bytes()]);

    let metrics = sidecar.metrics();
    // The model field is not read either: the label is --model-type.
    assert_eq!(
        successes(&metrics, "unknown", "unknown"),
        Some(1.0),
        "{metrics}"
    );
    // No body was parsed, sampled or checked.
    for unread in [
        "magma_payload_requests_total{",
        "magma_samples_total{",
        "magma_outputs_checked_total{",
    ] {
        assert!(!metrics.contains(unread), "{unread} in:\n{metrics}");
    }
    // Nothing feeds the drift engine, so it is off rather than collecting.
    let (status, drift) = sidecar.admin_get("/api/drift");
    assert_eq!(status, 200);
    assert!(drift.contains(r#""enabled":false"#), "{drift}");
}

/// Resident memory of a process, from /proc.
fn resident_bytes(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap();
    kb * 1024
}

/// Size of the image body in `a_large_unsampled_image_leaves_memory_flat`.
/// A body held whole would grow the sidecar by at least this much; what the
/// allocator takes besides (a fresh heap for a thread the request first ran
/// on: steps of about 2 MiB, up to 10 MiB seen) stays well under a third.
const BODY_MIB: usize = 48;

#[test]
fn a_large_unsampled_image_leaves_memory_flat() {
    let (upstream, bodies) = magma_like();
    let sidecar = Sidecar::start(&upstream.url(), &["--no-gpu", "--sample-rate", "0"]);
    // Warm up the paths once so allocator pools exist before measuring.
    assert_eq!(
        send(
            &sidecar,
            "/predict",
            "application/json",
            br#"{"image":"aGk=","prompt":"warm up"}"#
        ),
        200
    );
    let before = resident_bytes(sidecar.child.id());
    let image = "A".repeat(BODY_MIB << 20);
    let body = format!(
        r#"{{"image":"{image}","prompt":"What action should the robot take to open the drawer?"}}"#
    );
    assert_eq!(
        send(&sidecar, "/predict", "application/json", body.as_bytes()),
        200
    );
    let after = resident_bytes(sidecar.child.id());
    assert_eq!(bodies.lock().unwrap().last().unwrap().len(), body.len());
    let growth = after.saturating_sub(before);
    eprintln!("resident memory: before {before} B, after {after} B, growth {growth} B");
    assert!(
        growth < ((BODY_MIB as u64) << 20) / 3,
        "resident memory grew by {growth} bytes for a {BODY_MIB} MiB body"
    );
    let metrics = sidecar.metrics();
    assert_eq!(
        successes(&metrics, "image", "robot_action"),
        Some(1.0),
        "{metrics}"
    );
}

#[test]
fn sampled_exchanges_reach_analysis_and_the_drift_engine() {
    let (upstream, _) = magma_like();
    let sidecar = Sidecar::start(&upstream.url(), &["--no-gpu", "--sample-rate", "1"]);
    for i in 0..3 {
        let body = format!(
            r#"{{"image":"{PNG_1X1}","prompt":"What action should the robot take to stack block {i}?"}}"#
        );
        assert_eq!(
            send(&sidecar, "/predict", "application/json", body.as_bytes()),
            200
        );
    }
    // A client can opt out of sampling.
    let mut request = b"POST /predict HTTP/1.1\r\nHost: m\r\nX-Magma-Sample: never\r\nContent-Length: 15\r\nConnection: close\r\n\r\n".to_vec();
    request.extend_from_slice(br#"{"prompt":"hi"}"#);
    assert_eq!(
        split_response(&raw_exchange(sidecar.proxy, &request)).0,
        200
    );

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    let samples = loop {
        let (status, body) = sidecar.admin_get("/api/samples?limit=10");
        assert_eq!(status, 200);
        let json: serde_json::Value = serde_json::from_str(&body).unwrap();
        let samples = json["samples"].as_array().cloned().unwrap_or_default();
        if samples.len() >= 3 || std::time::Instant::now() > deadline {
            break samples;
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    assert_eq!(samples.len(), 3, "{samples:?}");
    let text = serde_json::to_string(&samples[0]).unwrap();
    assert!(text.contains("robot_action"), "{text}");
    let metrics = sidecar.metrics();
    assert_eq!(
        metric_value(&metrics, r#"magma_samples_total{outcome="accepted"}"#),
        Some(3.0)
    );
    // The drift thread takes them from its own queue.
    let drift_reference = || {
        metric_value(
            &sidecar.metrics(),
            r#"magma_drift_samples_total{outcome="reference"}"#,
        )
    };
    while drift_reference() != Some(3.0) {
        assert!(
            std::time::Instant::now() < deadline,
            "drift engine got {:?} samples",
            drift_reference()
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
}

//! The simulated Magma server over real sockets: the API of Magma's FastAPI
//! app, warm-up, validation errors and every fault switch.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;
use bytes::Bytes;
use http::{Method, Request, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::{connect::HttpConnector, Client};
use hyper_util::rt::TokioExecutor;
use magma_monitor::demo::images::{self, ImageFormat, Look, SceneKind};
use magma_monitor::demo::sim::{multipart, Faults, SimControl};
use magma_monitor::demo::{serve_simulated, SimConfig};
use magma_monitor::shutdown::Shutdown;
use rand::SeedableRng;
use serde_json::Value;

const SOM_PROMPT: &str = "In this view I need to click a button to \"Sign in\"? Provide the coordinates and the mark index of the containing bounding box if applicable.";
const ROBOT_PROMPT: &str = "What action should the robot take to pick up the red block?";

struct Sim {
    base: String,
    control: SimControl,
    shutdown: Shutdown,
    client: Client<HttpConnector, Full<Bytes>>,
}

impl Drop for Sim {
    fn drop(&mut self) {
        self.shutdown.trigger();
    }
}

async fn start(config: SimConfig) -> Sim {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let control = config.control.clone();
    let (shutdown, signal) = Shutdown::new();
    tokio::spawn(serve_simulated(listener, config, signal));
    Sim {
        base,
        control,
        shutdown,
        client: Client::builder(TokioExecutor::new()).build_http(),
    }
}

fn fast() -> SimConfig {
    SimConfig {
        latency: Duration::from_millis(20),
        jitter: 0.1,
        ..SimConfig::default()
    }
}

fn png() -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(1);
    images::generate(
        &mut rng,
        SceneKind::RobotWorkspace,
        ImageFormat::Png,
        Look::NORMAL,
    )
    .unwrap()
    .bytes
}

fn jpeg() -> Vec<u8> {
    let mut rng = rand::rngs::StdRng::seed_from_u64(2);
    images::generate(
        &mut rng,
        SceneKind::UiScreenshot,
        ImageFormat::Jpeg,
        Look::NORMAL,
    )
    .unwrap()
    .bytes
}

impl Sim {
    async fn send(
        &self,
        method: Method,
        path: &str,
        content_type: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Bytes) {
        let request = Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("content-type", content_type)
            .body(Full::new(Bytes::from(body)))
            .unwrap();
        let response = self.client.request(request).await.unwrap();
        let status = response.status();
        (
            status,
            response.into_body().collect().await.unwrap().to_bytes(),
        )
    }

    async fn get(&self, path: &str) -> (StatusCode, Value) {
        let (status, body) = self.send(Method::GET, path, "text/plain", Vec::new()).await;
        (status, serde_json::from_slice(&body).unwrap())
    }

    async fn predict(&self, image: &[u8], prompt: &str) -> (StatusCode, Value) {
        let body = serde_json::json!({
            "image": base64::engine::general_purpose::STANDARD.encode(image),
            "prompt": prompt,
        });
        let (status, body) = self
            .send(
                Method::POST,
                "/predict",
                "application/json",
                serde_json::to_vec(&body).unwrap(),
            )
            .await;
        (status, serde_json::from_slice(&body).unwrap())
    }

    async fn faults(&self, update: Value) -> (StatusCode, Value) {
        let (status, body) = self
            .send(
                Method::POST,
                "/control/faults",
                "application/json",
                update.to_string().into_bytes(),
            )
            .await;
        (status, serde_json::from_slice(&body).unwrap())
    }
}

fn floats(value: &Value, key: &str) -> Vec<f64> {
    value[key]
        .as_array()
        .unwrap_or_else(|| panic!("{key} missing in {value}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[tokio::test]
async fn health_and_predict_answer_like_magma() {
    let sim = start(fast()).await;
    let (status, health) = sim.get("/health").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        health,
        serde_json::json!({"status": "healthy", "model_loaded": true})
    );

    let (status, answer) = sim.predict(&png(), ROBOT_PROMPT).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let normalized = floats(&answer, "normalized_actions");
    let delta = floats(&answer, "delta_values");
    assert_eq!((normalized.len(), delta.len()), (7, 7));
    assert!(normalized.iter().all(|v| (-1.0..=1.0).contains(v)));
    assert!(delta[..3].iter().all(|v| v.abs() <= 0.05), "{delta:?}");
    let angle_bound = magma_monitor::demo::sim::answers::DELTA_ANGLE;
    assert!(
        delta[3..6].iter().all(|v| v.abs() <= angle_bound),
        "{delta:?}"
    );
    assert!((0.0..=1.0).contains(&delta[6]));
    assert!(answer["text_response"]
        .as_str()
        .unwrap()
        .contains("gripper"));

    let (status, answer) = sim.predict(&png(), SOM_PROMPT).await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        answer["text_response"]
            .as_str()
            .unwrap()
            .starts_with("Mark: "),
        "{answer}"
    );
}

#[tokio::test]
async fn predict_from_file_reads_the_multipart_form() {
    let sim = start(fast()).await;
    let image = jpeg();
    let (content_type, body) = multipart::build(
        "sim-test-boundary",
        &[
            ("file", Some(("screen.jpg", "image/jpeg")), &image),
            ("prompt", None, SOM_PROMPT.as_bytes()),
        ],
    );
    let (status, body) = sim
        .send(Method::POST, "/predict_from_file", &content_type, body)
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    let text = answer["text_response"].as_str().unwrap();
    assert!(
        text.starts_with("Mark: ") && (text.contains("Coordinates: (") || text.contains("<box>(")),
        "{text}"
    );

    let trace = "The image is labeled with numeric marks. Tell me how to move the numerical marks to open the drawer.";
    let (content_type, body) = multipart::build(
        "b2",
        &[
            ("prompt", None, trace.as_bytes()),
            ("file", Some(("a.png", "image/png")), &png()),
        ],
    );
    let (status, body) = sim
        .send(Method::POST, "/predict_from_file", &content_type, body)
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert!(
        answer["text_response"]
            .as_str()
            .unwrap()
            .starts_with("Mark "),
        "{answer}"
    );
}

#[tokio::test]
async fn malformed_bodies_get_422_and_bad_images_500() {
    let sim = start(fast()).await;
    let (status, body) = sim
        .send(
            Method::POST,
            "/predict",
            "application/json",
            b"{not json".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(body["detail"][0]["type"], "json_invalid");

    let (status, body) = sim
        .send(
            Method::POST,
            "/predict",
            "application/json",
            br#"{"image":"aGVsbG8="}"#.to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["detail"][0]["loc"],
        serde_json::json!(["body", "prompt"])
    );
    assert_eq!(body["detail"][0]["type"], "missing");

    let (content_type, form) = multipart::build("b", &[("prompt", None, b"hi")]);
    let (status, body) = sim
        .send(Method::POST, "/predict_from_file", &content_type, form)
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let body: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(
        body["detail"][0]["loc"],
        serde_json::json!(["body", "file"])
    );

    let (status, body) = sim
        .send(
            Method::POST,
            "/predict_from_file",
            "text/plain",
            b"x".to_vec(),
        )
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY, "{body:?}");

    // Valid JSON, but the image is not an image: the model server's own 500.
    let (status, answer) = sim.predict(b"hello, not an image", "What is this?").await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert!(answer["detail"]
        .as_str()
        .unwrap()
        .starts_with("Error processing request: "));

    let (status, _) = sim.get("/nope").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _) = sim
        .send(Method::GET, "/predict", "text/plain", Vec::new())
        .await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
}

#[tokio::test]
async fn warm_up_answers_503_until_the_model_is_loaded() {
    let sim = start(SimConfig {
        warmup: Duration::from_millis(600),
        ..fast()
    })
    .await;
    let (status, body) = sim.get("/health").await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, serde_json::json!({"detail": "Model not loaded yet"}));
    let (status, body) = sim.predict(&png(), ROBOT_PROMPT).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(body, serde_json::json!({"detail": "Model not loaded yet"}));
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert_eq!(sim.get("/health").await.0, StatusCode::OK);
    assert_eq!(sim.predict(&png(), ROBOT_PROMPT).await.0, StatusCode::OK);
}

#[tokio::test]
async fn error_burst_and_degenerate_output_are_switched_over_the_control_route() {
    let sim = start(fast()).await;
    let (status, faults) = sim.faults(serde_json::json!({"error_rate": 1.0})).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(faults["error_rate"], 1.0);
    let mut codes = std::collections::BTreeSet::new();
    for _ in 0..30 {
        let (status, body) = sim.predict(&png(), ROBOT_PROMPT).await;
        assert!(body["detail"].is_string());
        codes.insert(status.as_u16());
    }
    assert_eq!(codes.into_iter().collect::<Vec<_>>(), [500, 503]);

    sim.faults(serde_json::json!({"clear": true, "degenerate_rate": 1.0}))
        .await;
    let (status, answer) = sim.predict(&png(), "What is in the picture?").await;
    assert_eq!(status, StatusCode::OK);
    let words: Vec<&str> = answer["text_response"]
        .as_str()
        .unwrap()
        .split(' ')
        .collect();
    assert!(
        words.len() >= 40 && words.iter().all(|w| *w == words[0]),
        "{words:?}"
    );

    let (status, stats) = sim.get("/control/stats").await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(stats["degenerate"], 1);
    assert_eq!(
        stats["server_errors"].as_u64().unwrap() + stats["unavailable"].as_u64().unwrap(),
        30
    );

    // Out of range or unknown fields are refused and change nothing.
    let (status, _) = sim.faults(serde_json::json!({"error_rate": 2.0})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = sim.faults(serde_json::json!({"no_such_fault": 1})).await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(sim.control.faults().degenerate_rate, 1.0);
}

#[tokio::test]
async fn latency_creep_adds_time_and_hung_requests_do_not_answer() {
    let sim = start(fast()).await;
    // 60 s per minute = one extra second per wall-clock second, capped at 0.4 s.
    sim.faults(serde_json::json!({
        "latency_creep_seconds_per_minute": 60.0,
        "latency_creep_max_seconds": 0.4
    }))
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (_, stats) = sim.get("/control/stats").await;
    assert!(
        (stats["creep_seconds"].as_f64().unwrap() - 0.4).abs() < 1e-9,
        "{stats}"
    );
    let started = Instant::now();
    assert_eq!(sim.predict(&png(), ROBOT_PROMPT).await.0, StatusCode::OK);
    assert!(
        started.elapsed() >= Duration::from_millis(380),
        "{:?}",
        started.elapsed()
    );

    sim.faults(serde_json::json!({"clear": true, "hang_rate": 1.0, "hang_seconds": 60.0}))
        .await;
    let hung = tokio::time::timeout(
        Duration::from_millis(800),
        sim.predict(&png(), ROBOT_PROMPT),
    )
    .await;
    assert!(hung.is_err(), "a hung request answered: {hung:?}");
    assert_eq!(sim.control.stats().hung, 1);
}

fn resident_bytes() -> u64 {
    magma_monitor::resources::procfs::read_process("self")
        .unwrap()
        .resident_bytes
}

#[tokio::test]
async fn memory_leak_grows_resident_memory_up_to_its_cap() {
    let mut config = fast();
    config.control = SimControl::new(Faults::none(), 40 * 1024 * 1024);
    let sim = start(config).await;
    let before = resident_bytes();
    sim.faults(serde_json::json!({"leak_bytes_per_request": 8 * 1024 * 1024}))
        .await;
    for _ in 0..7 {
        assert_eq!(sim.predict(&png(), ROBOT_PROMPT).await.0, StatusCode::OK);
    }
    let stats = sim.control.stats();
    assert_eq!(
        stats.leaked_bytes,
        40 * 1024 * 1024,
        "five steps fit under the cap"
    );
    let grown = resident_bytes().saturating_sub(before);
    assert!(
        grown >= 36 * 1024 * 1024,
        "resident memory grew by {grown} bytes only"
    );
    sim.faults(serde_json::json!({"clear": true})).await;
    assert_eq!(sim.control.stats().leaked_bytes, 0);
}

#[tokio::test]
async fn chat_completions_stream_server_sent_events() {
    let sim = start(fast()).await;
    let request = serde_json::json!({
        "model": "magma-8b", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}},
            {"type": "text", "text": "What is in the picture?"}
        ]}]
    });
    let (status, body) = sim
        .send(
            Method::POST,
            "/v1/chat/completions",
            "application/json",
            request.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let text = String::from_utf8(body.to_vec()).unwrap();
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.last(), Some(&"data: [DONE]"));
    let mut content = String::new();
    let mut usage = None;
    for event in &events[..events.len() - 1] {
        let chunk: Value = serde_json::from_str(event.strip_prefix("data: ").unwrap()).unwrap();
        if let Some(piece) = chunk
            .pointer("/choices/0/delta/content")
            .and_then(Value::as_str)
        {
            content.push_str(piece);
        }
        if chunk.get("usage").is_some() {
            usage = Some(chunk["usage"].clone());
        }
    }
    assert!(content.len() > 10, "{content}");
    assert!(usage.unwrap()["completion_tokens"].as_u64().unwrap() > 2);

    let plain = serde_json::json!({"messages": [{"role": "user", "content": "Hi"}]});
    let (status, body) = sim
        .send(
            Method::POST,
            "/v1/chat/completions",
            "application/json",
            plain.to_string().into_bytes(),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let answer: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(answer["object"], "chat.completion");
    assert!(answer["choices"][0]["message"]["content"].is_string());
}

#[test]
fn the_binary_serves_the_simulated_api() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_magma-monitor"))
        .args([
            "simulate-upstream",
            "--listen",
            "127.0.0.1:0",
            "--latency",
            "10ms",
            "--error-rate",
            "1",
        ])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let address = line.trim().rsplit("http://").next().unwrap().to_string();
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let result = runtime.block_on(async {
        let client: Client<HttpConnector, Full<Bytes>> =
            Client::builder(TokioExecutor::new()).build_http();
        let health = client
            .get(format!("http://{address}/health").parse().unwrap())
            .await
            .unwrap();
        let faults = client
            .get(format!("http://{address}/control/faults").parse().unwrap())
            .await
            .unwrap();
        let faults: Value =
            serde_json::from_slice(&faults.into_body().collect().await.unwrap().to_bytes())
                .unwrap();
        (health.status(), faults)
    });
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(result.0, StatusCode::OK);
    assert_eq!(result.1["error_rate"], 1.0);
}

//! Sampling and analysis end to end, as the proxy drives them: real taps fed
//! real bodies, the hand-off channel, the worker thread, the sample log on
//! disk, hooks, and `/api/samples` served by the admin server on a socket.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use base64::Engine;
use magma_monitor::admin::{self, AdminState};
use magma_monitor::payload::{start_analysis, Features, RequestTap, ResponseTap, SampleHook};
use magma_monitor::sample::{Sample, SampleArgs, SampleOutcome};

fn png_bytes() -> Vec<u8> {
    let mut out = Vec::new();
    {
        let mut encoder = png::Encoder::new(&mut out, 16, 8);
        encoder.set_color(png::ColorType::Rgb);
        encoder.set_depth(png::BitDepth::Eight);
        let mut writer = encoder.write_header().unwrap();
        writer.write_image_data(&[90u8; 16 * 8 * 3]).unwrap();
    }
    out
}

#[test]
fn sampled_exchange_reaches_hooks_log_and_api() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.txt");
    std::fs::write(&rules, "ui_navigation (?i)open the settings\n").unwrap();
    let log_dir = dir.path().join("samples");
    let args = SampleArgs {
        sample_rate: 0.0,
        sample_log: Some(log_dir.clone()),
        capture_payloads: true,
        task_rules: Some(rules),
        ..SampleArgs::default()
    };
    let seen: Arc<Mutex<Vec<(String, String, usize)>>> = Arc::default();
    let sink = seen.clone();
    let hook: Arc<dyn SampleHook> = Arc::new(move |s: &Sample, f: &Features| {
        sink.lock().unwrap().push((
            s.request.task.as_str().to_owned(),
            f.categorical.image_format.to_owned(),
            f.numeric.len(),
        ));
    });
    let analysis = start_analysis(&args, vec![hook]).unwrap();

    // The client forces sampling with the header.
    let mut headers = http::HeaderMap::new();
    headers.insert("x-magma-sample", "always".parse().unwrap());
    headers.insert("content-type", "application/json".parse().unwrap());
    assert!(analysis.sampler.decide(&headers));

    let image = base64::engine::general_purpose::STANDARD.encode(png_bytes());
    let body = format!(
        r#"{{"image":"{image}","prompt":"Please open the settings, my mail is ann@example.org"}}"#
    );
    let uri: http::Uri = "/predict".parse().unwrap();
    let copy = analysis.sampler.body_copy(Some(body.len() as u64));
    let mut req_tap =
        RequestTap::for_request(&uri, &headers, analysis.classifier.clone(), Some(copy));
    for chunk in body.as_bytes().chunks(7) {
        req_tap.feed(chunk);
    }
    let request = req_tap.finish();

    let answer = br#"{"text_response":"Mark: 4 (0.25, 0.75)","normalized_actions":[0,0,0,0,0,0,1],"delta_values":[0,0,0,0,0,0,1]}"#;
    let mut resp_tap = ResponseTap::new(
        200,
        Some("application/json"),
        Some(analysis.sampler.body_copy(None)),
    );
    resp_tap.feed(answer);
    let response = resp_tap.finish();
    assert_eq!(response.marks.mark, Some(4));

    let outcome = analysis.sender.send(Sample {
        request_id: "req-42".into(),
        received_at: SystemTime::now(),
        route: "/predict",
        model_type: "magma-8b".into(),
        status: 200,
        latency: Duration::from_millis(1100),
        time_to_first_token: None,
        request,
        response,
    });
    assert_eq!(outcome, SampleOutcome::Accepted);

    // Wait for the worker (bounded).
    let deadline = Instant::now() + Duration::from_secs(20);
    while analysis.ring.is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(10));
    }
    assert_eq!(
        seen.lock().unwrap().as_slice(),
        &[("ui_navigation".to_owned(), "png".to_owned(), 29 + 32)]
    );

    // The log line: features, redacted prompt, private file.
    let log_file = log_dir.join("samples.jsonl");
    let text = std::fs::read_to_string(&log_file).unwrap();
    let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
    assert_eq!(line["request_id"], "req-42");
    assert_eq!(line["task"], "ui_navigation");
    assert_eq!(line["features"].as_array().unwrap().len(), 61);
    assert_eq!(line["features"][4], 16.0);
    assert_eq!(line["features"][5], 8.0);
    assert_eq!(line["features"][6], 1.0);
    assert_eq!(
        line["prompt"],
        "Please open the settings, my mail is [EMAIL]"
    );
    assert!(!text.contains("ann@example.org"));
    assert!(line["request_body"]["image"].as_str().unwrap().len() > 20);
    assert_eq!(
        std::fs::metadata(&log_file).unwrap().permissions().mode() & 0o777,
        0o600
    );

    // `/api/samples` over a real socket.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let ring = analysis.ring.clone();
    let body = runtime.block_on(async move {
        let (recorder, handle) =
            magma_monitor::telemetry::build_recorder(&Default::default()).unwrap();
        drop(recorder);
        let state = Arc::new(AdminState {
            samples: Some(ring),
            ..AdminState::new(handle, "http://127.0.0.1:1".into())
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, signal) = magma_monitor::shutdown::Shutdown::new();
        let server = tokio::spawn(admin::serve(listener, state, signal));
        let body = tokio::task::spawn_blocking(move || {
            let mut stream = std::net::TcpStream::connect(addr).unwrap();
            stream
                .write_all(
                    b"GET /api/samples?limit=5 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n",
                )
                .unwrap();
            let mut response = String::new();
            stream.read_to_string(&mut response).unwrap();
            response
        })
        .await
        .unwrap();
        shutdown.trigger();
        let _ = server.await;
        body
    });
    assert!(body.starts_with("HTTP/1.1 200"), "{body}");
    let json: serde_json::Value =
        serde_json::from_str(&body[body.find("\r\n\r\n").unwrap() + 4..]).unwrap();
    assert_eq!(json["enabled"], true);
    assert_eq!(json["feature_names"][0], "prompt_bytes");
    assert_eq!(json["samples"][0]["request_id"], "req-42");
    assert!(json["samples"][0].get("request_body").is_none());

    drop(analysis.sender);
    analysis.worker.join().unwrap();
}

#[test]
fn bad_task_rules_stop_startup() {
    let dir = tempfile::tempdir().unwrap();
    let rules = dir.path().join("rules.txt");
    std::fs::write(&rules, "cooking (?i)recipe\n").unwrap();
    let args = SampleArgs {
        task_rules: Some(rules),
        ..SampleArgs::default()
    };
    let error = start_analysis(&args, Vec::new()).err().unwrap();
    assert!(error.to_string().contains("line 1"), "{error}");
}

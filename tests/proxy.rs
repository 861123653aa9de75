//! The proxy core against real loopback upstreams, through the real binary.

mod harness;

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use futures_util::{SinkExt, StreamExt};
use harness::*;
use http_body_util::{BodyExt, StreamBody};
use hyper::body::Frame;
use hyper::{Request, Response};
use tokio::sync::Notify;

/// What the upstream saw of each request.
#[derive(Debug, Clone)]
struct Seen {
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Seen {
    /// The values of the field `name` (lower case), in the order they came.
    fn values(&self, name: &str) -> Vec<String> {
        self.headers
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
            .collect()
    }
}

struct Model {
    upstream: Upstream,
    seen: Arc<Mutex<Vec<Seen>>>,
    release_sse: Arc<Notify>,
}

impl Model {
    fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }
}

/// A model-server stand-in with one route per behaviour under test.
fn model() -> Model {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let release_sse = Arc::new(Notify::new());
    let (seen2, release2) = (seen.clone(), release_sse.clone());
    let upstream = Upstream::start(move |request: Request<hyper::body::Incoming>| {
        let seen = seen2.clone();
        let release = release2.clone();
        async move {
            let path = request.uri().path().to_owned();
            if path == "/ws" {
                return websocket_echo(request);
            }
            if path == "/health" {
                return response(200, r#"{"status":"healthy","model_loaded":true}"#);
            }
            let headers = request
                .headers()
                .iter()
                .map(|(k, v)| {
                    (
                        k.as_str().to_owned(),
                        String::from_utf8_lossy(v.as_bytes()).into_owned(),
                    )
                })
                .collect();
            let (_, body) = request.into_parts();
            let body = body
                .collect()
                .await
                .map(|b| b.to_bytes().to_vec())
                .unwrap_or_default();
            seen.lock().unwrap().push(Seen {
                path: path.clone(),
                headers,
                body: body.clone(),
            });
            match path.as_str() {
                "/echo" | "/predict" => response(200, body),
                "/cookies" => Response::builder()
                    .header("set-cookie", "a=1")
                    .header("set-cookie", "b=2")
                    .header("connection", "x-internal")
                    .header("x-internal", "secret")
                    .header("keep-alive", "timeout=5")
                    .body(full("cookies"))
                    .unwrap(),
                "/sse" => {
                    let stream = futures_util::stream::unfold(0u8, move |step| {
                        let release = release.clone();
                        async move {
                            match step {
                                0 => Some((Ok(Frame::data(Bytes::from("data: first\n\n"))), 1)),
                                1 => {
                                    release.notified().await;
                                    Some((Ok(Frame::data(Bytes::from("data: [DONE]\n\n"))), 2))
                                }
                                _ => None,
                            }
                        }
                    });
                    Response::builder()
                        .header("content-type", "text/event-stream")
                        .body(BodyExt::boxed(StreamBody::new(stream)))
                        .unwrap()
                }
                "/hang" => {
                    std::future::pending::<()>().await;
                    unreachable!()
                }
                "/slow" => {
                    tokio::time::sleep(Duration::from_millis(1500)).await;
                    response(200, "slow done")
                }
                p if p.starts_with("/status/") => {
                    let code: u16 = p["/status/".len()..].parse().unwrap_or(500);
                    Response::builder()
                        .status(code)
                        .header("content-type", "application/json")
                        .body(full(format!("{{\"detail\":\"upstream said {code}\"}}")))
                        .unwrap()
                }
                _ => response(404, "no such route"),
            }
        }
    });
    Model {
        upstream,
        seen,
        release_sse,
    }
}

fn websocket_echo(mut request: Request<hyper::body::Incoming>) -> Response<TestBody> {
    let key = request.headers().get("sec-websocket-key").cloned();
    let Some(key) = key else {
        return response(400, "not a websocket");
    };
    let accept = tokio_tungstenite::tungstenite::handshake::derive_accept_key(key.as_bytes());
    let upgrade = hyper::upgrade::on(&mut request);
    tokio::spawn(async move {
        let Ok(upgraded) = upgrade.await else { return };
        let mut socket = tokio_tungstenite::WebSocketStream::from_raw_socket(
            hyper_util::rt::TokioIo::new(upgraded),
            tokio_tungstenite::tungstenite::protocol::Role::Server,
            None,
        )
        .await;
        while let Some(Ok(message)) = socket.next().await {
            if message.is_close() || socket.send(message).await.is_err() {
                break;
            }
        }
    });
    Response::builder()
        .status(101)
        .header("upgrade", "websocket")
        .header("connection", "upgrade")
        .header("sec-websocket-accept", accept)
        .body(full(Bytes::new()))
        .unwrap()
}

fn post(sidecar: &Sidecar, path: &str, body: &[u8], extra_headers: &str) -> (u16, String, Vec<u8>) {
    let mut request = format!(
        "POST {path} HTTP/1.1\r\nHost: model.test\r\nContent-Length: {}\r\nConnection: close\r\n{extra_headers}\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    split_response(&raw_exchange(sidecar.proxy, &request))
}

fn get(sidecar: &Sidecar, path: &str) -> (u16, String, Vec<u8>) {
    let request = format!("GET {path} HTTP/1.1\r\nHost: model.test\r\nConnection: close\r\n\r\n");
    split_response(&raw_exchange(sidecar.proxy, request.as_bytes()))
}

fn header<'a>(head: &'a str, name: &str) -> Vec<&'a str> {
    head.lines()
        .filter_map(|line| line.split_once(':'))
        .filter(|(k, _)| k.trim().eq_ignore_ascii_case(name))
        .map(|(_, v)| v.trim())
        .collect()
}

#[test]
fn bodies_pass_byte_for_byte_both_ways() {
    bodies_pass_byte_for_byte_both_ways_with(&[]);
}

fn bodies_pass_byte_for_byte_both_ways_with(threads: &[&str]) {
    let model = model();
    let sidecar = Sidecar::start(&model.upstream.url(), threads);
    let mut big = vec![0u8; 5 * 1024 * 1024];
    let mut state = 0x1234_5678_u32;
    for byte in big.iter_mut() {
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        *byte = state as u8;
    }
    for body in [Vec::new(), vec![0u8], big] {
        let (status, _, echoed) = post(
            &sidecar,
            "/echo",
            &body,
            "Content-Type: application/octet-stream\r\n",
        );
        assert_eq!(status, 200);
        assert_eq!(echoed.len(), body.len());
        assert!(
            echoed == body,
            "body of {} bytes changed on the way",
            body.len()
        );
        assert!(
            model.seen().last().unwrap().body == body,
            "upstream got other bytes"
        );
    }

    // A chunked upload arrives whole and unchanged.
    let request = b"POST /echo HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n5\r\nhello\r\n7\r\n, world\r\n0\r\n\r\n";
    let (status, _, echoed) = split_response(&raw_exchange(sidecar.proxy, request));
    assert_eq!(status, 200);
    assert_eq!(echoed, b"hello, world");
    assert_eq!(model.seen().last().unwrap().body, b"hello, world");
}

#[test]
fn server_sent_events_flow_chunk_by_chunk() {
    server_sent_events_flow_chunk_by_chunk_with(&[]);
}

fn server_sent_events_flow_chunk_by_chunk_with(threads: &[&str]) {
    use std::io::{Read, Write};
    let model = model();
    let sidecar = Sidecar::start(&model.upstream.url(), threads);
    let mut stream = std::net::TcpStream::connect(sidecar.proxy).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /sse HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    // The first event must arrive while the upstream still holds the stream open.
    while !String::from_utf8_lossy(&received).contains("data: first") {
        let n = stream
            .read(&mut buffer)
            .expect("first event did not arrive while the stream was open");
        assert!(n > 0, "stream closed before the first event");
        received.extend_from_slice(&buffer[..n]);
    }
    assert!(!String::from_utf8_lossy(&received).contains("[DONE]"));
    model.release_sse.notify_one();
    let _ = stream.read_to_end(&mut received);
    let (status, head, body) = split_response(&received);
    assert_eq!(status, 200);
    assert_eq!(header(&head, "content-type"), ["text/event-stream"]);
    assert_eq!(body, b"data: first\n\ndata: [DONE]\n\n");
}

#[test]
fn headers_repeated_kept_hop_by_hop_removed() {
    // HTTP/1.1 upstreams take the connection's own upstream connection, h2c
    // ones the shared pool: the fields added on the way are written by each.
    for upstream_protocol in ["http1", "h2c"] {
        headers_repeated_kept_hop_by_hop_removed_over(upstream_protocol);
    }
}

fn headers_repeated_kept_hop_by_hop_removed_over(upstream_protocol: &str) {
    let model = model();
    let sidecar = Sidecar::start(
        &model.upstream.url(),
        &["--upstream-protocol", upstream_protocol],
    );
    let (status, _, _) = post(
        &sidecar,
        "/echo",
        b"x",
        "X-Multi: one\r\nX-Multi: two\r\nConnection: X-Private, keep-alive\r\nX-Private: hide\r\nKeep-Alive: timeout=5\r\nProxy-Connection: keep-alive\r\nTE: trailers, deflate\r\nX-Forwarded-For: 10.1.2.3\r\nX-Forwarded-For: 10.4.5.6\r\n",
    );
    assert_eq!(status, 200);
    let seen = model.seen().pop().unwrap();
    let values = |name: &str| seen.values(name);
    assert_eq!(values("x-multi"), ["one", "two"]);
    assert_eq!(values("host"), ["model.test"], "Host must be kept");
    for gone in ["x-private", "keep-alive", "proxy-connection", "upgrade"] {
        assert!(values(gone).is_empty(), "{gone} reached the upstream");
    }
    assert_eq!(values("te"), ["trailers"]);
    // Both of the client's lines, then the client (RFC 9110 §5.3 combining).
    assert_eq!(values("x-forwarded-for"), ["10.1.2.3, 10.4.5.6, 127.0.0.1"]);
    assert_eq!(values("x-forwarded-proto"), ["http"]);
    assert_eq!(values("x-request-id").len(), 1);

    let (status, head, body) = get(&sidecar, "/cookies");
    assert_eq!(status, 200);
    assert_eq!(body, b"cookies");
    assert_eq!(header(&head, "set-cookie"), ["a=1", "b=2"]);
    assert!(
        header(&head, "x-internal").is_empty(),
        "a field named by Connection reached the client"
    );
    assert!(header(&head, "keep-alive").is_empty());
}

#[test]
fn connection_options_cannot_remove_end_to_end_fields() {
    // RFC 9110 section 7.6.1 lets Connection name hop-by-hop fields; a
    // client naming Host, Content-Length or a forwarding field is ignored
    // (see docs/security.md), while other named fields go.
    let model = model();
    let url = model.upstream.url();
    let sidecar = Sidecar::start(&url, &[]);
    let (status, _, _) = post(
        &sidecar,
        "/echo",
        b"x",
        "Connection: host, content-length, x-forwarded-for, x-secret\r\nX-Secret: 1\r\n",
    );
    assert_eq!(status, 200);
    let seen = model.seen().pop().unwrap();
    assert_eq!(seen.values("host"), ["model.test"]);
    assert_eq!(seen.values("content-length"), ["1"]);
    assert_eq!(seen.values("x-forwarded-for"), ["127.0.0.1"]);
    assert!(seen.values("x-secret").is_empty());
    assert_eq!(seen.body, b"x");
}

#[test]
fn forwarded_headers_can_be_turned_off() {
    let model = model();
    let sidecar = Sidecar::start(&model.upstream.url(), &["--no-forwarded-headers"]);
    assert_eq!(post(&sidecar, "/echo", b"x", "").0, 200);
    let seen = model.seen().pop().unwrap();
    assert!(!seen
        .headers
        .iter()
        .any(|(k, _)| k.starts_with("x-forwarded")));
}

#[test]
fn request_ids_are_kept_or_generated() {
    for upstream_protocol in ["http1", "h2c"] {
        request_ids_are_kept_or_generated_over(upstream_protocol);
    }
}

fn request_ids_are_kept_or_generated_over(upstream_protocol: &str) {
    let model = model();
    let sidecar = Sidecar::start(
        &model.upstream.url(),
        &["--upstream-protocol", upstream_protocol],
    );
    let (_, head, _) = post(&sidecar, "/echo", b"x", "X-Request-Id: client-id-42\r\n");
    assert_eq!(header(&head, "x-request-id"), ["client-id-42"]);
    let upstream_ids = model.seen().pop().unwrap().values("x-request-id");
    assert_eq!(upstream_ids, ["client-id-42"]);

    let (_, head, _) = post(
        &sidecar,
        "/echo",
        b"x",
        "X-Request-Id: bad id with spaces\r\n",
    );
    let generated = header(&head, "x-request-id");
    assert_eq!(generated.len(), 1);
    assert_eq!(generated[0].len(), 32);
    assert!(generated[0].bytes().all(|b| b.is_ascii_hexdigit()));
    // The upstream saw the generated id alone, not the malformed one beside it.
    let upstream_ids = model.seen().pop().unwrap().values("x-request-id");
    assert_eq!(upstream_ids, generated, "over {upstream_protocol}");
}

#[test]
fn upstream_errors_pass_through_untouched() {
    let model = model();
    let sidecar = Sidecar::start(&model.upstream.url(), &[]);
    for code in [422u16, 500, 503] {
        let (status, head, body) = post(&sidecar, &format!("/status/{code}"), b"{}", "");
        assert_eq!(status, code);
        assert_eq!(
            body,
            format!("{{\"detail\":\"upstream said {code}\"}}").as_bytes()
        );
        assert_eq!(header(&head, "content-type"), ["application/json"]);
    }
    let metrics = sidecar.metrics();
    assert_eq!(
        metric_value(
            &metrics,
            r#"magma_request_errors_total{kind="upstream_5xx"}"#
        ),
        Some(2.0)
    );
}

#[test]
fn dead_upstream_gives_502_with_a_reason_at_once() {
    let dead = format!("http://127.0.0.1:{}", free_port());
    let sidecar = Sidecar::start(&dead, &[]);
    let started = Instant::now();
    let (status, head, body) = post(&sidecar, "/predict", b"{}", "X-Request-Id: r-502\r\n");
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "502 took {:?}",
        started.elapsed()
    );
    assert_eq!(status, 502);
    assert_eq!(header(&head, "content-type"), ["application/json"]);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"], "upstream_unreachable");
    assert_eq!(json["request_id"], "r-502");
    assert!(
        json["detail"]
            .as_str()
            .unwrap()
            .to_lowercase()
            .contains("refused"),
        "{json}"
    );
    let metrics = sidecar.metrics();
    assert_eq!(
        metric_value(
            &metrics,
            r#"magma_request_errors_total{kind="upstream_unreachable"}"#
        ),
        Some(1.0)
    );
    // The first health check runs beside the request; its verdict is
    // awaited rather than raced.
    let metrics = sidecar.wait_for_metric("magma_upstream_up", 0.0);
    assert_eq!(metric_value(&metrics, "magma_upstream_up"), Some(0.0));
    assert_eq!(sidecar.admin_get("/readyz").0, 503);
}

#[test]
fn hung_upstream_gives_504() {
    let model = model();
    let sidecar = Sidecar::start(&model.upstream.url(), &["--upstream-timeout", "300ms"]);
    let (status, _, body) = get(&sidecar, "/hang");
    assert_eq!(status, 504);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"], "upstream_timeout");
    let metrics = sidecar.metrics();
    assert_eq!(
        metric_value(&metrics, r#"magma_request_errors_total{kind="timeout"}"#),
        Some(1.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"magma_request_duration_seconds_count{model_type="magma-8b",status="timeout",modality="unknown",task="unknown"}"#
        ),
        Some(1.0)
    );
}

#[test]
fn oversized_bodies_get_413_and_never_reach_the_upstream() {
    let model = model();
    let sidecar = Sidecar::start(&model.upstream.url(), &["--max-body-bytes", "1KiB"]);
    let (status, _, body) = post(&sidecar, "/predict", &[b'a'; 2048], "");
    assert_eq!(status, 413);
    let json: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(json["error"], "request_too_large");
    assert!(model.seen().is_empty());

    // Chunked: no length up front, the limit trips while streaming.
    let mut request = b"POST /predict HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n".to_vec();
    for _ in 0..4 {
        request.extend_from_slice(b"200\r\n");
        request.extend_from_slice(&[b'b'; 512]);
        request.extend_from_slice(b"\r\n");
    }
    request.extend_from_slice(b"0\r\n\r\n");
    let (status, _, _) = split_response(&raw_exchange(sidecar.proxy, &request));
    assert_eq!(status, 413);
    let metrics = sidecar.metrics();
    assert_eq!(
        metric_value(&metrics, r#"magma_request_errors_total{kind="too_large"}"#),
        Some(2.0)
    );
}

#[test]
fn smuggling_attempts_are_refused_and_not_forwarded() {
    let model = model();
    let sidecar = Sidecar::start(&model.upstream.url(), &[]);
    let attempts: [(&[u8], u16); 3] = [
        (b"POST /predict HTTP/1.1\r\nHost: m\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde", 400),
        (b"POST /predict HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: gzip\r\n\r\nabcd", 400),
        (b"POST /predict HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 501),
    ];
    for (attempt, expected) in attempts {
        let (status, head, body) = split_response(&raw_exchange(sidecar.proxy, attempt));
        assert_eq!(
            status,
            expected,
            "{}\n{head}\n{}",
            String::from_utf8_lossy(attempt),
            String::from_utf8_lossy(&body)
        );
    }
    assert!(
        model.seen().is_empty(),
        "a smuggling attempt reached the upstream: {:?}",
        model.seen()
    );
    let metrics = sidecar.wait_for_metric(r#"magma_request_errors_total{kind="bad_request"}"#, 3.0);
    assert_eq!(
        metric_value(
            &metrics,
            r#"magma_request_errors_total{kind="bad_request"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"magma_requests_refused_total{reason="transfer_coding"}"#
        ),
        Some(1.0)
    );
}

#[test]
fn a_connection_option_naming_content_length_cannot_smuggle_a_request() {
    // The body of this request is the text of a second request. Were
    // Content-Length removed as Connection asks, the upstream would read the
    // body as a request of its own that the proxy never counted.
    let model = model();
    let sidecar = Sidecar::start(&model.upstream.url(), &[]);
    let smuggled = b"GET /smuggled HTTP/1.1\r\nHost: h\r\n\r\n";
    let mut attack = format!(
        "POST /echo HTTP/1.1\r\nHost: h\r\nConnection: Content-Length\r\nContent-Length: {}\r\n\r\n",
        smuggled.len()
    )
    .into_bytes();
    attack.extend_from_slice(smuggled);
    // A second, innocent request on the same connection.
    attack.extend_from_slice(b"GET /echo-get HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    let raw = raw_exchange(sidecar.proxy, &attack);
    assert_eq!(split_response(&raw).0, 200);
    let metrics = sidecar.wait_for_metric("magma_requests_in_flight", 0.0);
    let seen = model.seen();
    let paths: Vec<&str> = seen.iter().map(|s| s.path.as_str()).collect();
    assert_eq!(paths, ["/echo", "/echo-get"], "{seen:?}");
    assert_eq!(seen[0].body, smuggled);
    let counted: f64 = metrics
        .lines()
        .filter(|l| l.starts_with("magma_requests_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum();
    assert_eq!(counted, 2.0, "{metrics}");
}

#[test]
fn content_length_beside_transfer_encoding_is_read_by_the_chunks_and_closes() {
    // RFC 9112 section 6.1: Transfer-Encoding overrides Content-Length, and
    // the server closes the connection after answering. What follows the
    // last chunk is never read as a request.
    let model = model();
    let sidecar = Sidecar::start(&model.upstream.url(), &[]);
    let raw = raw_exchange(
        sidecar.proxy,
        b"POST /echo HTTP/1.1\r\nHost: m\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET /admin HTTP/1.1\r\nHost: m\r\n\r\n",
    );
    let (status, head, _) = split_response(&raw);
    assert_eq!(status, 200, "{head}");
    assert_eq!(header(&head, "connection"), ["close"], "{head}");
    let seen = model.seen();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!(seen[0].path, "/echo");
    assert_eq!(seen[0].body, b"abc");
    // A chunked upload goes on chunked: hyper frames it from the body.
    assert!(seen[0].values("content-length").is_empty(), "{seen:?}");
    assert_eq!(seen[0].values("transfer-encoding"), ["chunked"]);
}

#[test]
fn oversized_headers_are_refused_and_counted() {
    let model = model();
    let sidecar = Sidecar::start(&model.upstream.url(), &["--max-header-bytes", "8KiB"]);
    let request = format!(
        "GET /echo HTTP/1.1\r\nHost: m\r\nX-Big: {}\r\n\r\n",
        "a".repeat(20_000)
    );
    let (status, _, _) = split_response(&raw_exchange(sidecar.proxy, request.as_bytes()));
    assert_eq!(status, 431);
    assert!(model.seen().is_empty());
    let metrics = sidecar.wait_for_metric(
        r#"magma_connection_errors_total{kind="header_too_large"}"#,
        1.0,
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"magma_connection_errors_total{kind="header_too_large"}"#
        ),
        Some(1.0)
    );
}

#[test]
fn connection_limit_refuses_and_counts() {
    use std::io::Read;
    let model = model();
    let sidecar = Sidecar::start(&model.upstream.url(), &["--max-connections", "2"]);
    let held: Vec<_> = (0..2)
        .map(|_| std::net::TcpStream::connect(sidecar.proxy).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let mut third = std::net::TcpStream::connect(sidecar.proxy).unwrap();
    third
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buffer = [0u8; 16];
    let read = third.read(&mut buffer);
    assert!(
        matches!(read, Ok(0) | Err(_)),
        "the connection over the limit was served"
    );
    let metrics = sidecar.metrics();
    assert_eq!(
        metric_value(
            &metrics,
            r#"magma_connections_total{outcome="refused_limit"}"#
        ),
        Some(1.0)
    );
    assert_eq!(metric_value(&metrics, "magma_connections_open"), Some(2.0));
    drop(held);
}

#[test]
fn websocket_echo_through_the_proxy() {
    websocket_echo_through_the_proxy_with(&[]);
}

fn websocket_echo_through_the_proxy_with(threads: &[&str]) {
    let model = model();
    let sidecar = Sidecar::start(&model.upstream.url(), threads);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(async {
        let (mut socket, response) =
            tokio_tungstenite::connect_async(format!("ws://{}/ws", sidecar.proxy))
                .await
                .unwrap();
        assert_eq!(response.status(), 101);
        for text in ["hello", "second message"] {
            socket
                .send(tokio_tungstenite::tungstenite::Message::text(text))
                .await
                .unwrap();
            let echoed = socket.next().await.unwrap().unwrap();
            assert_eq!(echoed.into_text().unwrap().as_str(), text);
        }
        socket
            .send(tokio_tungstenite::tungstenite::Message::binary(vec![
                0u8, 1, 2, 255,
            ]))
            .await
            .unwrap();
        let echoed = socket.next().await.unwrap().unwrap();
        assert_eq!(echoed.into_data().as_ref(), &[0u8, 1, 2, 255]);
        let _ = socket.close(None).await;
    });
}

#[test]
fn http2_prior_knowledge_both_sides() {
    http2_prior_knowledge_both_sides_with(&[]);
}

fn http2_prior_knowledge_both_sides_with(threads: &[&str]) {
    let model = model();
    for upstream_protocol in ["http1", "h2c"] {
        let args = [&["--upstream-protocol", upstream_protocol], threads].concat();
        let sidecar = Sidecar::start(&model.upstream.url(), &args);
        let runtime = tokio::runtime::Runtime::new().unwrap();
        runtime.block_on(async {
            let client =
                hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
                    .http2_only(true)
                    .build_http::<http_body_util::Full<Bytes>>();
            let request = Request::post(sidecar.url("/echo"))
                .body(http_body_util::Full::new(Bytes::from_static(b"over h2")))
                .unwrap();
            let response = client.request(request).await.unwrap();
            assert_eq!(response.status(), 200);
            assert_eq!(response.version(), http::Version::HTTP_2);
            let body = response.into_body().collect().await.unwrap().to_bytes();
            assert_eq!(body.as_ref(), b"over h2");
        });
        let seen = model.seen().pop().unwrap();
        assert!(
            seen.headers
                .iter()
                .any(|(k, v)| k == "host" && v == &sidecar.proxy.to_string()),
            "{:?}",
            seen.headers
        );
    }
}

#[test]
fn sigterm_drains_in_flight_requests_then_exits() {
    sigterm_drains_in_flight_requests_then_exits_with(&[]);
}

fn sigterm_drains_in_flight_requests_then_exits_with(threads: &[&str]) {
    let model = model();
    let mut sidecar = Sidecar::start(
        &model.upstream.url(),
        &[&["--drain-timeout", "10s"], threads].concat(),
    );
    sidecar.wait_ready(200);
    let proxy = sidecar.proxy;
    let slow = std::thread::spawn(move || {
        split_response(&raw_exchange(
            proxy,
            b"GET /slow HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
        ))
    });
    // Wait until the slow request is in flight at the upstream.
    let deadline = Instant::now() + Duration::from_secs(5);
    while !model.seen().iter().any(|s| s.path == "/slow") {
        assert!(Instant::now() < deadline);
        std::thread::sleep(Duration::from_millis(10));
    }
    sidecar.sigterm();
    sidecar.wait_ready(503);
    // The listener is closed: new connections are refused.
    let deadline = Instant::now() + Duration::from_secs(5);
    while std::net::TcpStream::connect(proxy).is_ok() {
        assert!(
            Instant::now() < deadline,
            "the listener still accepts after SIGTERM"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let (status, _, body) = slow.join().unwrap();
    assert_eq!(status, 200);
    assert_eq!(body, b"slow done");
    assert_eq!(sidecar.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn metrics_count_a_known_sequence_exactly() {
    let model = model();
    let sidecar = Sidecar::start(&model.upstream.url(), &[]);
    for _ in 0..3 {
        assert_eq!(
            post(&sidecar, "/predict", b"{\"prompt\":\"hi\"}", "").0,
            200
        );
    }
    assert_eq!(post(&sidecar, "/status/500", b"{}", "").0, 500);
    assert_eq!(get(&sidecar, "/nowhere").0, 404);
    let metrics = sidecar.metrics();
    let value = |series: &str| metric_value(&metrics, series);
    assert_eq!(
        value(r#"magma_requests_total{model_type="magma-8b",route="/predict",code="2xx"}"#),
        Some(3.0)
    );
    assert_eq!(
        value(r#"magma_requests_total{model_type="magma-8b",route="other",code="5xx"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"magma_requests_total{model_type="magma-8b",route="other",code="4xx"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(r#"magma_request_errors_total{kind="upstream_5xx"}"#),
        Some(1.0)
    );
    assert_eq!(
        value(
            r#"magma_request_duration_seconds_count{model_type="magma-8b",status="success",modality="text",task="chat"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        value(
            r#"magma_request_duration_seconds_count{model_type="magma-8b",status="success",modality="unknown",task="unknown"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            r#"magma_request_duration_seconds_count{model_type="magma-8b",status="error",modality="unknown",task="unknown"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        value(
            r#"magma_request_duration_seconds_bucket{model_type="magma-8b",status="success",modality="text",task="chat",le="2"}"#
        ),
        Some(3.0)
    );
    assert_eq!(
        value(r#"magma_request_size_bytes_sum{route="/predict"}"#),
        Some(45.0)
    );
    assert_eq!(
        value(r#"magma_response_size_bytes_sum{route="/predict"}"#),
        Some(45.0)
    );
    assert_eq!(
        value(r#"magma_time_to_first_byte_seconds_count{route="/predict"}"#),
        Some(3.0)
    );
    assert_eq!(
        value(r#"magma_proxy_overhead_seconds_count{route="/predict"}"#),
        Some(3.0)
    );
    // The 500 and the 404 went to routes outside the closed set.
    assert_eq!(
        value(r#"magma_request_size_bytes_count{route="other"}"#),
        Some(2.0)
    );
    assert_eq!(
        value(r#"magma_time_to_first_byte_seconds_count{route="other"}"#),
        Some(2.0)
    );
    assert_eq!(value("magma_requests_in_flight"), Some(0.0));
    let status: serde_json::Value =
        serde_json::from_str(&sidecar.admin_get("/api/status").1).unwrap();
    assert_eq!(status["requests"]["total"], 5);
    assert_eq!(status["requests"]["errors"], 1);
}

#[test]
fn metrics_pass_promtool() {
    let model = model();
    let sidecar = Sidecar::start(&model.upstream.url(), &[]);
    sidecar.wait_ready(200);
    assert_eq!(post(&sidecar, "/predict", b"{}", "").0, 200);
    assert_eq!(post(&sidecar, "/status/503", b"{}", "").0, 503);
    let metrics = sidecar.metrics();
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool is installed by scripts/install-system-packages.sh");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(metrics.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    let findings = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() && findings.trim().is_empty(),
        "promtool findings:\n{findings}"
    );
}

#[test]
fn admin_routes_answer() {
    let model = model();
    let sidecar = Sidecar::start(&model.upstream.url(), &[]);
    assert_eq!(sidecar.admin_get("/healthz").0, 200);
    sidecar.wait_ready(200);
    let (status, body) = sidecar.admin_get("/api/status");
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["version"], env!("CARGO_PKG_VERSION"));
    assert_eq!(json["upstream"]["health"]["upstream_up"], true);
    let (status, body) = sidecar.admin_get("/nope");
    assert_eq!(status, 404);
    assert!(body.contains("not_found"));
}

#[test]
fn bad_flags_fail_at_start_with_one_line() {
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_magma-monitor"))
        .args(["--upstream-timeout", "soon"])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--upstream-timeout"), "{stderr}");
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_magma-monitor"))
        .args([
            "--max-connections",
            "0",
            "--listen",
            "127.0.0.1:0",
            "--admin-listen",
            "127.0.0.1:0",
        ])
        .output()
        .unwrap();
    assert_eq!(output.status.code(), Some(2));
    assert_eq!(
        String::from_utf8_lossy(&output.stderr)
            .trim()
            .lines()
            .count(),
        1
    );
}

/// Sends one keep-alive request on `stream` and reads its whole response.
fn keep_alive_exchange(stream: &mut std::net::TcpStream) -> std::io::Result<u16> {
    use std::io::{Read, Write};
    stream.write_all(b"POST /echo HTTP/1.1\r\nHost: m\r\nContent-Length: 2\r\n\r\nok")?;
    let mut received = Vec::new();
    let mut buffer = [0u8; 1024];
    loop {
        let n = stream.read(&mut buffer)?;
        if n == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
        received.extend_from_slice(&buffer[..n]);
        if received.ends_with(b"\r\n\r\nok") {
            return Ok(split_response(&received).0);
        }
    }
}

#[test]
fn idle_keep_alive_connections_are_closed_after_the_idle_timeout() {
    let model = model();
    // A short header timeout must not cut idle keep-alive connections: that is the idle timeout's job.
    let sidecar = Sidecar::start(
        &model.upstream.url(),
        &["--header-read-timeout", "2s", "--idle-timeout", "5s"],
    );
    let mut stream = std::net::TcpStream::connect(sidecar.proxy).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(keep_alive_exchange(&mut stream).unwrap(), 200);
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        keep_alive_exchange(&mut stream).unwrap(),
        200,
        "kept-alive connection was closed early"
    );

    let sidecar = Sidecar::start(&model.upstream.url(), &["--idle-timeout", "300ms"]);
    let mut stream = std::net::TcpStream::connect(sidecar.proxy).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    assert_eq!(keep_alive_exchange(&mut stream).unwrap(), 200);
    std::thread::sleep(Duration::from_millis(1200));
    assert!(
        keep_alive_exchange(&mut stream).is_err(),
        "idle connection was still open"
    );
}

#[test]
fn slow_request_heads_are_cut_and_counted() {
    use std::io::{Read, Write};
    let model = model();
    let sidecar = Sidecar::start(&model.upstream.url(), &["--header-read-timeout", "300ms"]);
    let mut stream = std::net::TcpStream::connect(sidecar.proxy).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
        .write_all(b"GET /echo HTTP/1.1\r\nHost: m\r\n")
        .unwrap();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let metrics = sidecar.wait_for_metric(
        r#"magma_connection_errors_total{kind="header_timeout"}"#,
        1.0,
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"magma_connection_errors_total{kind="header_timeout"}"#
        ),
        Some(1.0)
    );
    assert!(model.seen().is_empty());
}

/// (upstream connection number, request path) of each request, in order.
type ConnectionLog = Arc<Mutex<Vec<(usize, String)>>>;

/// A raw HTTP/1.1 upstream that records which connection carried which
/// request path; with `close_after_each`, it closes every connection shortly
/// after answering, as a server with a short keep-alive timeout does.
fn counting_upstream(close_after_each: bool) -> (std::net::SocketAddr, ConnectionLog) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let seen: ConnectionLog = Arc::default();
    let log = seen.clone();
    std::thread::spawn(move || {
        for (connection, stream) in listener.incoming().enumerate() {
            let Ok(mut stream) = stream else { continue };
            let log = log.clone();
            std::thread::spawn(move || {
                let mut buffer = Vec::new();
                loop {
                    let Some(head) = read_raw_request(&mut stream, &mut buffer, |_| true) else {
                        return;
                    };
                    let path = head.split(' ').nth(1).unwrap_or("").to_string();
                    log.lock().unwrap().push((connection, path));
                    if stream
                        .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                        .is_err()
                    {
                        return;
                    }
                    if close_after_each {
                        std::thread::sleep(Duration::from_millis(50));
                        return;
                    }
                }
            });
        }
    });
    (addr, seen)
}

/// The upstream connections that carried `/echo` requests, in order of use.
fn echo_connections(seen: &Mutex<Vec<(usize, String)>>) -> Vec<usize> {
    seen.lock()
        .unwrap()
        .iter()
        .filter(|(_, path)| path == "/echo")
        .map(|(connection, _)| *connection)
        .collect()
}

#[test]
fn each_client_connection_keeps_one_upstream_connection() {
    let (addr, seen) = counting_upstream(false);
    let sidecar = Sidecar::start(&format!("http://{addr}"), &[]);
    let mut first = std::net::TcpStream::connect(sidecar.proxy).unwrap();
    let mut second = std::net::TcpStream::connect(sidecar.proxy).unwrap();
    for stream in [&mut first, &mut second] {
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
    }
    for _ in 0..3 {
        assert_eq!(keep_alive_exchange(&mut first).unwrap(), 200);
        assert_eq!(keep_alive_exchange(&mut second).unwrap(), 200);
    }
    let used = echo_connections(&seen);
    assert_eq!(used.len(), 6);
    let mut distinct = used.clone();
    distinct.sort_unstable();
    distinct.dedup();
    assert_eq!(
        distinct.len(),
        2,
        "one upstream connection per client connection: {used:?}"
    );
    assert_eq!(used[0], used[2], "{used:?}");
    assert_eq!(used[1], used[3], "{used:?}");
}

#[test]
fn an_upstream_connection_closed_between_requests_is_replaced() {
    let (addr, seen) = counting_upstream(true);
    let sidecar = Sidecar::start(&format!("http://{addr}"), &[]);
    let mut stream = std::net::TcpStream::connect(sidecar.proxy).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    for round in 0..3 {
        assert_eq!(
            keep_alive_exchange(&mut stream).unwrap(),
            200,
            "round {round}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let used = echo_connections(&seen);
    assert_eq!(used.len(), 3, "{used:?}");
    assert!(
        used[0] != used[1] && used[1] != used[2],
        "each request after a close went on a new connection: {used:?}"
    );
    let text = sidecar.metrics();
    assert!(!text.contains("magma_request_errors_total"), "{text}");
}

/// With `--worker-threads 1` (a sidecar limited to one CPU) nothing may
/// block the only worker: streaming, tunnels and the drain still work.
#[test]
fn one_serving_thread_passes_the_transport_checks() {
    let one = ["--worker-threads", "1"];
    bodies_pass_byte_for_byte_both_ways_with(&one);
    server_sent_events_flow_chunk_by_chunk_with(&one);
    websocket_echo_through_the_proxy_with(&one);
    http2_prior_knowledge_both_sides_with(&one);
    sigterm_drains_in_flight_requests_then_exits_with(&one);
}

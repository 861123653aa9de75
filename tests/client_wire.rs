//! Client connections through the real binary, on the wire: pipelining,
//! chunked uploads and `Expect: 100-continue` on a kept connection, bodyless
//! answers, reason phrases, Date, drain and cancellation.

mod harness;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use harness::*;
use http_body_util::BodyExt;
use hyper::Request;

/// An upstream that echoes bodies (any framing) and records the paths it saw.
fn echo_upstream() -> (Upstream, Arc<Mutex<Vec<String>>>) {
    let seen = Arc::new(Mutex::new(Vec::new()));
    let seen2 = seen.clone();
    let upstream = Upstream::start(move |request: Request<hyper::body::Incoming>| {
        let seen = seen2.clone();
        async move {
            let path = request.uri().path().to_owned();
            seen.lock().unwrap().push(path.clone());
            if path == "/health" {
                return response(200, "ok");
            }
            if path == "/slow" {
                tokio::time::sleep(Duration::from_millis(1500)).await;
                return response(200, "slow done");
            }
            let body = request.into_body().collect().await.unwrap().to_bytes();
            response(200, body)
        }
    });
    (upstream, seen)
}

/// One response read off a client connection, decoded by its framing.
#[derive(Debug, PartialEq)]
struct Answer {
    status_line: String,
    /// Lower-case names, in wire order.
    fields: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Answer {
    fn field(&self, name: &str) -> Vec<&str> {
        self.fields
            .iter()
            .filter(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// Reads exactly one response from `stream`, leaving later bytes in `buffer`.
fn read_answer(stream: &mut TcpStream, buffer: &mut Vec<u8>, head_request: bool) -> Answer {
    let head_end = fill_until(stream, buffer, |b| {
        b.windows(4).position(|w| w == b"\r\n\r\n")
    });
    let head = String::from_utf8(buffer[..head_end].to_vec()).unwrap();
    buffer.drain(..head_end + 4);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap().to_owned();
    let fields: Vec<(String, String)> = lines
        .map(|line| {
            let (name, value) = line.split_once(':').unwrap();
            (name.to_ascii_lowercase(), value.trim().to_owned())
        })
        .collect();
    let mut answer = Answer {
        status_line,
        fields,
        body: Vec::new(),
    };
    let status: u16 = answer.status_line[9..12].parse().unwrap();
    if head_request || status == 204 || status == 304 || status < 200 {
        return answer;
    }
    if answer.field("transfer-encoding") == ["chunked"] {
        loop {
            let line_end = fill_until(stream, buffer, |b| b.windows(2).position(|w| w == b"\r\n"));
            let size = usize::from_str_radix(std::str::from_utf8(&buffer[..line_end]).unwrap(), 16)
                .unwrap();
            buffer.drain(..line_end + 2);
            fill_until(stream, buffer, |b| (b.len() >= size + 2).then_some(()));
            answer.body.extend_from_slice(&buffer[..size]);
            assert_eq!(&buffer[size..size + 2], b"\r\n");
            buffer.drain(..size + 2);
            if size == 0 {
                return answer;
            }
        }
    }
    let length: usize = answer.field("content-length")[0].parse().unwrap();
    fill_until(stream, buffer, |b| (b.len() >= length).then_some(()));
    answer.body = buffer.drain(..length).collect();
    answer
}

fn fill_until<T>(
    stream: &mut TcpStream,
    buffer: &mut Vec<u8>,
    found: impl Fn(&[u8]) -> Option<T>,
) -> T {
    let mut chunk = [0u8; 65536];
    loop {
        if let Some(found) = found(buffer) {
            return found;
        }
        let n = stream.read(&mut chunk).expect("read from the proxy");
        assert!(
            n > 0,
            "the proxy closed the connection mid-response: {:?}",
            String::from_utf8_lossy(buffer)
        );
        buffer.extend_from_slice(&chunk[..n]);
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream
}

/// Whether the peer has closed: a read returns end of file.
fn closed_by_peer(stream: &mut TcpStream) -> bool {
    let mut byte = [0u8; 1];
    matches!(stream.read(&mut byte), Ok(0))
}

fn post(path: &str, body: &str) -> String {
    format!(
        "POST {path} HTTP/1.1\r\nHost: m\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
}

#[test]
fn pipelined_requests_are_answered_in_order_on_one_connection() {
    let (upstream, seen) = echo_upstream();
    let sidecar = Sidecar::start(&upstream.url(), &[]);
    let mut stream = connect(sidecar.proxy);
    let burst = [
        post("/one", "first"),
        "GET /two HTTP/1.1\r\nHost: m\r\n\r\n".to_owned(),
        post("/three", "third body"),
    ]
    .concat();
    stream.write_all(burst.as_bytes()).unwrap();
    let mut buffer = Vec::new();
    let bodies: Vec<Vec<u8>> = (0..3)
        .map(|_| read_answer(&mut stream, &mut buffer, false).body)
        .collect();
    assert_eq!(bodies, [&b"first"[..], b"", b"third body"]);
    let paths: Vec<String> = seen
        .lock()
        .unwrap()
        .iter()
        .filter(|p| *p != "/health")
        .cloned()
        .collect();
    assert_eq!(paths, ["/one", "/two", "/three"]);
    let metrics = sidecar.wait_for_metric(
        r#"magma_requests_total{model_type="magma-8b",route="other",code="2xx"}"#,
        3.0,
    );
    assert_eq!(
        metric_value(
            &metrics,
            r#"magma_requests_total{model_type="magma-8b",route="other",code="2xx"}"#
        ),
        Some(3.0)
    );
}

#[test]
fn chunked_uploads_and_expect_continue_share_a_kept_connection() {
    let (upstream, _) = echo_upstream();
    let sidecar = Sidecar::start(&upstream.url(), &[]);
    let mut stream = connect(sidecar.proxy);
    let mut buffer = Vec::new();

    stream.write_all(post("/echo", "plain").as_bytes()).unwrap();
    assert_eq!(read_answer(&mut stream, &mut buffer, false).body, b"plain");

    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: m\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nchunk\r\n6\r\ned up!\r\n0\r\n\r\n",
        )
        .unwrap();
    let answer = read_answer(&mut stream, &mut buffer, false);
    assert_eq!(answer.status_line, "HTTP/1.1 200 OK");
    assert_eq!(answer.body, b"chunked up!");

    // The same connection goes on.
    stream.write_all(post("/echo", "after").as_bytes()).unwrap();
    assert_eq!(read_answer(&mut stream, &mut buffer, false).body, b"after");

    // Expect: 100-continue: the client hears 100 before it sends the body.
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: m\r\nExpect: 100-continue\r\nContent-Length: 3\r\n\r\n",
        )
        .unwrap();
    let interim = read_answer(&mut stream, &mut buffer, false);
    assert_eq!(interim.status_line, "HTTP/1.1 100 Continue");
    stream.write_all(b"abc").unwrap();
    assert_eq!(read_answer(&mut stream, &mut buffer, false).body, b"abc");
}

#[test]
fn a_request_split_across_writes_is_still_served() {
    let (upstream, _) = echo_upstream();
    let sidecar = Sidecar::start(&upstream.url(), &[]);
    let mut stream = connect(sidecar.proxy);
    stream.set_nodelay(true).unwrap();
    let request = post("/echo", "split in three");
    let bytes = request.as_bytes();
    for piece in [&bytes[..10], &bytes[10..40], &bytes[40..]] {
        stream.write_all(piece).unwrap();
        std::thread::sleep(Duration::from_millis(50));
    }
    let mut buffer = Vec::new();
    assert_eq!(
        read_answer(&mut stream, &mut buffer, false).body,
        b"split in three"
    );
}

/// A raw upstream whose answers are exact bytes, chosen by path.
fn scripted_upstream() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut stream) = stream else { return };
            std::thread::spawn(move || {
                let mut buffer = Vec::new();
                while let Some(head) = read_raw_request(&mut stream, &mut buffer, |_| true) {
                    let head_request = head.starts_with("HEAD ");
                    let path = head.split_whitespace().nth(1).unwrap_or("/").to_owned();
                    if path == "/stall" {
                        // One chunk, then silence while the connection stays open.
                        let _ = stream.write_all(
                            b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nfirst\r\n",
                        );
                        std::thread::sleep(Duration::from_secs(4));
                        return;
                    }
                    let (answer, close) = scripted_answer(&path, head_request);
                    if stream.write_all(&answer).is_err() || close {
                        return;
                    }
                }
            });
        }
    });
    addr
}

const JSON: &str = "{\"ok\":true}";

fn scripted_answer(path: &str, head_request: bool) -> (Vec<u8>, bool) {
    let with_body = |head: &str, body: &str| -> Vec<u8> {
        let body = if head_request { "" } else { body };
        format!("{head}\r\n\r\n{body}").into_bytes()
    };
    let plain = format!(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}",
        JSON.len()
    );
    match path {
        "/health" | "/plain" => (with_body(&plain, JSON), false),
        "/dated" => (
            with_body(
                &format!("{plain}\r\ndate: Sun, 06 Nov 1994 08:49:37 GMT"),
                JSON,
            ),
            false,
        ),
        "/chunked" => (
            with_body(
                "HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\nset-cookie: a=1\r\nset-cookie: b=2",
                "4\r\ndata\r\n5\r\n: end\r\n0\r\n\r\n",
            ),
            false,
        ),
        "/close-delimited" => (
            with_body("HTTP/1.1 200 OK\r\nconnection: close", "until the end"),
            true,
        ),
        "/no-content" => (b"HTTP/1.1 204 No Content\r\nx-kind: none\r\n\r\n".to_vec(), false),
        "/not-modified" => (
            b"HTTP/1.1 304 Not Modified\r\netag: \"v1\"\r\ncontent-length: 11\r\n\r\n".to_vec(),
            false,
        ),
        "/odd-reason" => (with_body("HTTP/1.1 299 Fine Anyway\r\ncontent-length: 2", "ok"), false),
        "/error" => {
            let detail = "{\"detail\":\"Error processing request: x\"}";
            let head = format!(
                "HTTP/1.1 500 Internal Server Error\r\ncontent-length: {}",
                detail.len()
            );
            (with_body(&head, detail), false)
        }
        _ => (
            with_body("HTTP/1.1 404 Not Found\r\ncontent-length: 9", "not found"),
            false,
        ),
    }
}

/// Requests covering every framing case, each with a fixed request id.
const CASES: [(&str, &str); 11] = [
    ("GET", "/plain"),
    ("POST", "/plain"),
    ("HEAD", "/plain"),
    ("GET", "/dated"),
    ("GET", "/chunked"),
    ("GET", "/no-content"),
    ("GET", "/not-modified"),
    ("GET", "/odd-reason"),
    ("GET", "/error"),
    ("GET", "/missing"),
    ("GET", "/close-delimited"),
];

fn answers_over_one_connection(proxy: SocketAddr) -> Vec<Answer> {
    let mut stream = connect(proxy);
    let mut buffer = Vec::new();
    CASES
        .iter()
        .enumerate()
        .map(|(i, (method, path))| {
            let body = if *method == "POST" { "{\"prompt\":\"hi\"}" } else { "" };
            let request = format!(
                "{method} {path} HTTP/1.1\r\nHost: m\r\nX-Request-Id: case-{i}\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            );
            stream.write_all(request.as_bytes()).unwrap();
            read_answer(&mut stream, &mut buffer, *method == "HEAD")
        })
        .collect()
}

#[test]
fn answers_keep_their_status_fields_and_bodies_reframed_by_hyper() {
    let upstream = format!("http://{}", scripted_upstream());
    let sidecar = Sidecar::start(&upstream, &[]);
    let answers = answers_over_one_connection(sidecar.proxy);

    let by_path = |path: &str| &answers[CASES.iter().position(|(_, p)| *p == path).unwrap()];
    assert_eq!(by_path("/plain").body, JSON.as_bytes());
    assert_eq!(by_path("/chunked").body, b"data: end");
    assert_eq!(by_path("/chunked").field("set-cookie"), ["a=1", "b=2"]);
    assert_eq!(by_path("/close-delimited").body, b"until the end");
    assert_eq!(
        by_path("/close-delimited").field("transfer-encoding"),
        ["chunked"]
    );
    assert_eq!(
        by_path("/odd-reason").status_line,
        "HTTP/1.1 299 Fine Anyway"
    );
    assert_eq!(
        by_path("/no-content").field("content-length"),
        Vec::<&str>::new()
    );
    assert_eq!(
        by_path("/error").status_line,
        "HTTP/1.1 500 Internal Server Error"
    );
    let head = &answers[2];
    assert_eq!(head.field("content-length"), [JSON.len().to_string()]);
    assert!(head.body.is_empty());
}

#[test]
fn date_is_added_when_the_upstream_sent_none_and_kept_when_it_did() {
    let upstream = format!("http://{}", scripted_upstream());
    let sidecar = Sidecar::start(&upstream, &[]);
    let answers = answers_over_one_connection(sidecar.proxy);
    let added = answers[0].field("date");
    assert_eq!(added.len(), 1, "{:?}", answers[0]);
    let when = httpdate::parse_http_date(added[0]).unwrap();
    let age = SystemTime::now().duration_since(when).unwrap_or_default();
    assert!(
        age < Duration::from_secs(5),
        "date {} is {age:?} old",
        added[0]
    );
    assert_eq!(answers[3].field("date"), ["Sun, 06 Nov 1994 08:49:37 GMT"]);
}

#[test]
fn connection_close_from_the_client_is_answered_and_honoured() {
    let (upstream, _) = echo_upstream();
    let sidecar = Sidecar::start(&upstream.url(), &[]);
    let mut stream = connect(sidecar.proxy);
    stream
        .write_all(
            b"POST /echo HTTP/1.1\r\nHost: m\r\nConnection: close\r\nContent-Length: 2\r\n\r\nhi",
        )
        .unwrap();
    let mut buffer = Vec::new();
    let answer = read_answer(&mut stream, &mut buffer, false);
    assert_eq!(answer.body, b"hi");
    assert_eq!(answer.field("connection"), ["close"]);
    assert!(buffer.is_empty() && closed_by_peer(&mut stream));
}

#[test]
fn drain_closes_idle_connections_and_finishes_busy_ones() {
    let (upstream, seen) = echo_upstream();
    let mut sidecar = Sidecar::start(&upstream.url(), &["--drain-timeout", "10s"]);
    sidecar.wait_ready(200);

    // An idle keep-alive connection that has served one request.
    let mut idle = connect(sidecar.proxy);
    idle.write_all(post("/echo", "x").as_bytes()).unwrap();
    let mut idle_buffer = Vec::new();
    assert_eq!(read_answer(&mut idle, &mut idle_buffer, false).body, b"x");

    // A keep-alive connection with a request in flight.
    let mut busy = connect(sidecar.proxy);
    busy.write_all(b"GET /slow HTTP/1.1\r\nHost: m\r\n\r\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen.lock().unwrap().iter().any(|p| p == "/slow") {
        assert!(Instant::now() < deadline, "the slow request never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }

    sidecar.sigterm();
    let started = Instant::now();
    assert!(
        closed_by_peer(&mut idle),
        "the idle connection was not closed"
    );
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "closing the idle connection waited for the busy one"
    );
    let mut busy_buffer = Vec::new();
    let answer = read_answer(&mut busy, &mut busy_buffer, false);
    assert_eq!(answer.body, b"slow done");
    assert_eq!(answer.field("connection"), ["close"]);
    assert!(closed_by_peer(&mut busy));
    assert_eq!(sidecar.wait_exit(Duration::from_secs(10)), Some(0));
}

#[test]
fn a_client_that_hangs_up_mid_request_cancels_it() {
    let (upstream, seen) = echo_upstream();
    let sidecar = Sidecar::start(&upstream.url(), &[]);
    let mut stream = connect(sidecar.proxy);
    stream
        .write_all(b"GET /slow HTTP/1.1\r\nHost: m\r\n\r\n")
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !seen.lock().unwrap().iter().any(|p| p == "/slow") {
        assert!(Instant::now() < deadline, "the slow request never arrived");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(stream);
    let series = r#"magma_request_errors_total{kind="client_abort"}"#;
    let metrics = sidecar.wait_for_metric(series, 1.0);
    assert_eq!(metric_value(&metrics, series), Some(1.0), "{metrics}");
}

#[test]
fn a_stalled_answer_is_cut_after_the_upstream_timeout_and_counted() {
    let upstream = format!("http://{}", scripted_upstream());
    let sidecar = Sidecar::start(&upstream, &["--upstream-timeout", "1s"]);
    let mut stream = connect(sidecar.proxy);
    stream
        .write_all(b"GET /stall HTTP/1.1\r\nHost: m\r\n\r\n")
        .unwrap();
    let started = Instant::now();
    let mut received = Vec::new();
    let _ = stream.read_to_end(&mut received);
    let text = String::from_utf8_lossy(&received);
    assert!(text.contains("\r\n\r\n5\r\nfirst\r\n"), "{text}");
    // Cut, not ended: no last chunk, and well before the upstream gave up.
    assert!(!text.ends_with("0\r\n\r\n"), "{text}");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "{:?}",
        started.elapsed()
    );
    let series = r#"magma_request_errors_total{kind="timeout"}"#;
    let metrics = sidecar.wait_for_metric(series, 1.0);
    assert_eq!(metric_value(&metrics, series), Some(1.0), "{metrics}");
}

//! The proxy's own HTTP/1.1 client against an upstream that writes raw bytes:
//! each route answers with the exact wire form of one case of RFC 9112's
//! message framing, so what reaches the client shows how it was read.

mod harness;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use harness::*;

/// (upstream connection number, method, path, head) of each request it read.
type RequestLog = Arc<Mutex<Vec<(usize, String, String, String)>>>;

/// The raw answer of each route. (hyper, serving the client, passes on
/// only the trailer fields the response declares in `Trailer`.)
fn wire_answer(path: &str) -> &'static [u8] {
    match path {
        "/trailers" => b"HTTP/1.1 200 OK\r\nTrailer: X-Checksum\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n6;ext=1\r\n world\r\n0\r\nX-Checksum: 42\r\n\r\n",
        "/interim" => b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a.css>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\ndone",
        "/head" => b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n",
        "/until-close" => b"HTTP/1.1 200 OK\r\n\r\nstreamed until close",
        "/reason" => b"HTTP/1.1 200 Fine Thanks\r\nContent-Length: 2\r\n\r\nok",
        "/conflict" => b"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd",
        "/cut" => b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\npartial",
        "/early" => b"HTTP/1.1 413 Payload Too Large\r\nContent-Length: 8\r\n\r\ntoo much",
        "/fields" => b"HTTP/1.1 200 OK\r\nServer: wire\r\nConnection: keep-alive\r\nSet-Cookie: a=1\r\nKeep-Alive: timeout=5\r\nX-Request-Id: upstream-id\r\nSet-Cookie: b=2\r\nUpgrade: h2c\r\nProxy-Connection: keep-alive\r\nContent-Length: 2\r\n\r\nok",
        "/no-content" => b"HTTP/1.1 204 No Content\r\nX-Kind: none\r\nContent-Length: 0\r\n\r\n",
        _ => b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok",
    }
}

/// Serves [`wire_answer`]s. `/until-close` and `/cut` close the connection
/// after their bytes; `/early` answers without reading the request body and
/// then holds the connection open, unread, for a while.
fn wire_upstream() -> (SocketAddr, RequestLog) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let log: RequestLog = Arc::default();
    let seen = log.clone();
    std::thread::spawn(move || {
        for (connection, stream) in listener.incoming().enumerate() {
            let Ok(stream) = stream else { continue };
            let seen = seen.clone();
            std::thread::spawn(move || serve_wire(connection, stream, &seen));
        }
    });
    (addr, log)
}

fn serve_wire(
    connection: usize,
    mut stream: TcpStream,
    seen: &Mutex<Vec<(usize, String, String, String)>>,
) {
    let mut buffer = Vec::new();
    loop {
        // `/early` answers without reading the request body.
        let Some(head) = read_raw_request(&mut stream, &mut buffer, |head| {
            !head.starts_with("POST /early ")
        }) else {
            return;
        };
        let mut request_line = head.split(' ');
        let method = request_line.next().unwrap_or("").to_string();
        let path = request_line.next().unwrap_or("").to_string();
        seen.lock()
            .unwrap()
            .push((connection, method, path.clone(), head.clone()));
        if path == "/early" {
            let _ = stream.write_all(wire_answer(&path));
            std::thread::sleep(Duration::from_secs(3));
            return;
        }
        if stream.write_all(wire_answer(&path)).is_err() {
            return;
        }
        if path == "/until-close" || path == "/cut" {
            return;
        }
    }
}

/// Writes `request` on a new client connection and reads until `done` says
/// the bytes so far are complete, or the proxy closes.
fn exchange_until(stream: &mut TcpStream, request: &[u8], done: impl Fn(&[u8]) -> bool) -> Vec<u8> {
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while !done(&received) {
        match stream.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
    received
}

fn connections_for(log: &RequestLog, path: &str) -> Vec<usize> {
    log.lock()
        .unwrap()
        .iter()
        .filter(|(_, _, p, _)| p == path)
        .map(|(connection, _, _, _)| *connection)
        .collect()
}

#[test]
fn chunked_responses_keep_their_trailers_for_clients_that_accept_them() {
    let (addr, _) = wire_upstream();
    let sidecar = Sidecar::start(&format!("http://{addr}"), &[]);
    let raw = raw_exchange(
        sidecar.proxy,
        b"GET /trailers HTTP/1.1\r\nHost: m\r\nTE: trailers\r\nConnection: close\r\n\r\n",
    );
    let text = String::from_utf8_lossy(&raw).to_string();
    let (status, head, body) = split_response(&raw);
    assert_eq!(status, 200, "{text}");
    assert_eq!(body, b"hello world", "{text}");
    assert!(
        head.to_ascii_lowercase()
            .contains("transfer-encoding: chunked"),
        "{text}"
    );
    assert!(
        text.to_ascii_lowercase().contains("\r\nx-checksum: 42\r\n"),
        "trailer missing: {text}"
    );
}

#[test]
fn interim_responses_are_skipped_and_the_connection_stays_in_use() {
    let (addr, log) = wire_upstream();
    let sidecar = Sidecar::start(&format!("http://{addr}"), &[]);
    let mut client = TcpStream::connect(sidecar.proxy).unwrap();
    for _ in 0..2 {
        let raw = exchange_until(
            &mut client,
            b"GET /interim HTTP/1.1\r\nHost: m\r\n\r\n",
            |r| r.ends_with(b"done"),
        );
        let (status, _, body) = split_response(&raw);
        assert_eq!(
            (status, body.as_slice()),
            (200, &b"done"[..]),
            "{}",
            String::from_utf8_lossy(&raw)
        );
    }
    let used = connections_for(&log, "/interim");
    assert_eq!(used.len(), 2);
    assert_eq!(
        used[0], used[1],
        "both requests on one upstream connection: {used:?}"
    );
}

#[test]
fn a_head_response_has_no_body_whatever_its_length_says() {
    let (addr, log) = wire_upstream();
    let sidecar = Sidecar::start(&format!("http://{addr}"), &[]);
    let mut client = TcpStream::connect(sidecar.proxy).unwrap();
    let raw = exchange_until(
        &mut client,
        b"HEAD /head HTTP/1.1\r\nHost: m\r\n\r\n",
        |r| r.windows(4).any(|w| w == b"\r\n\r\n"),
    );
    let (status, head, body) = split_response(&raw);
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase().contains("content-length: 1234"),
        "{head}"
    );
    assert!(body.is_empty());
    // The next request on the same connections is answered at once: the
    // proxy did not wait for 1234 bytes that never come.
    let started = Instant::now();
    let raw = exchange_until(&mut client, b"GET /next HTTP/1.1\r\nHost: m\r\n\r\n", |r| {
        r.ends_with(b"ok")
    });
    assert_eq!(
        split_response(&raw).0,
        200,
        "{}",
        String::from_utf8_lossy(&raw)
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    assert_eq!(
        connections_for(&log, "/head"),
        connections_for(&log, "/next")
    );
}

#[test]
fn a_body_delimited_by_close_arrives_whole_and_the_connection_is_not_reused() {
    let (addr, log) = wire_upstream();
    let sidecar = Sidecar::start(&format!("http://{addr}"), &[]);
    let mut client = TcpStream::connect(sidecar.proxy).unwrap();
    let raw = exchange_until(
        &mut client,
        b"GET /until-close HTTP/1.1\r\nHost: m\r\n\r\n",
        // To the client the body is chunked: read up to its last chunk, or
        // the next response would start behind it.
        |r| r.ends_with(b"0\r\n\r\n"),
    );
    assert_eq!(
        split_response(&raw).2,
        b"streamed until close",
        "{}",
        String::from_utf8_lossy(&raw)
    );
    let raw = exchange_until(&mut client, b"GET /next HTTP/1.1\r\nHost: m\r\n\r\n", |r| {
        r.ends_with(b"ok")
    });
    assert_eq!(split_response(&raw).0, 200);
    assert_ne!(
        connections_for(&log, "/until-close"),
        connections_for(&log, "/next")
    );
}

#[test]
fn the_upstream_reason_phrase_reaches_the_client() {
    let (addr, _) = wire_upstream();
    let sidecar = Sidecar::start(&format!("http://{addr}"), &[]);
    let raw = raw_exchange(
        sidecar.proxy,
        b"GET /reason HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
    );
    assert!(
        raw.starts_with(b"HTTP/1.1 200 Fine Thanks\r\n"),
        "{}",
        String::from_utf8_lossy(&raw)
    );
}

#[test]
fn with_preserve_header_case_request_fields_keep_the_clients_case() {
    let (addr, log) = wire_upstream();
    let sidecar = Sidecar::start(&format!("http://{addr}"), &["--preserve-header-case"]);
    let raw = raw_exchange(
        sidecar.proxy,
        b"POST /lines?q=1 HTTP/1.1\r\nHost: m\r\nX-Custom:  Mixed Case  \r\n\
          Connection: keep-alive, close\r\nx-forwarded-for: 10.0.0.1\r\nKeep-Alive: timeout=5\r\n\
          X-Request-Id: not valid!\r\nContent-Type: application/json\r\n\
          X-FORWARDED-FOR: 10.0.0.2\r\nContent-Length: 2\r\n\r\n{}",
    );
    let (status, _, _) = split_response(&raw);
    assert_eq!(status, 200);
    let head = log
        .lock()
        .unwrap()
        .iter()
        .find(|(_, _, path, _)| path == "/lines?q=1")
        .map(|(_, _, _, head)| head.clone())
        .expect("the upstream got the request");
    let lines: Vec<&str> = head.split("\r\n").filter(|l| !l.is_empty()).collect();
    // The client's own fields in order and in their case (values without
    // the whitespace around them, RFC 9110 section 5.5), less the
    // hop-by-hop ones and those the proxy replaces ...
    assert_eq!(
        lines[..4],
        [
            "POST /lines?q=1 HTTP/1.1",
            "Host: m",
            "X-Custom: Mixed Case",
            "Content-Type: application/json",
        ],
        "{head}"
    );
    // ... then the proxy's fields (a replaced field keeps the case of the
    // client's name), and the framing hyper wrote from the body.
    let mut rest: Vec<String> = field_lines(&lines[3..].join("\r\n"));
    let id = rest
        .iter()
        .position(|l| l.starts_with("x-request-id: "))
        .map(|i| rest.remove(i))
        .expect("a new id");
    let id = id.trim_start_matches("x-request-id: ");
    assert!(
        id.len() == 32 && id.bytes().all(|b| b.is_ascii_hexdigit()),
        "{head}"
    );
    rest.sort_unstable();
    assert_eq!(
        rest,
        [
            "content-length: 2",
            "x-forwarded-for: 10.0.0.1, 10.0.0.2, 127.0.0.1",
            "x-forwarded-proto: http",
        ],
        "{head}"
    );
}

#[test]
fn header_names_go_on_in_lower_case_by_default() {
    let (addr, log) = wire_upstream();
    let sidecar = Sidecar::start(&format!("http://{addr}"), &[]);
    let raw = raw_exchange(
        sidecar.proxy,
        b"GET /lower HTTP/1.1\r\nHost: m\r\nX-Custom: Mixed Case\r\nConnection: close\r\n\r\n",
    );
    let (status, client_head, _) = split_response(&raw);
    assert_eq!(status, 200);
    let head = log
        .lock()
        .unwrap()
        .iter()
        .find(|(_, _, path, _)| path == "/lower")
        .map(|(_, _, _, head)| head.clone())
        .expect("the upstream got the request");
    assert!(head.contains("\r\nhost: m\r\n"), "{head}");
    assert!(head.contains("\r\nx-custom: Mixed Case\r\n"), "{head}");
    // The upstream's `Content-Length: 2` reaches the client in lower case.
    assert!(
        client_head.contains("\r\ncontent-length: 2"),
        "{client_head}"
    );
}

/// The head's lines in order, names lowercased, without the status line.
fn field_lines(head: &str) -> Vec<String> {
    head.split("\r\n")
        .skip(1)
        .filter(|line| !line.is_empty())
        .map(|line| match line.split_once(':') {
            Some((name, value)) => format!("{}: {}", name.to_ascii_lowercase(), value.trim()),
            None => line.to_string(),
        })
        .collect()
}

#[test]
fn response_fields_pass_less_hop_by_hop_ones_for_either_http1_version() {
    let (addr, _) = wire_upstream();
    let sidecar = Sidecar::start(&format!("http://{addr}"), &[]);
    // HTTP/1.1 and HTTP/1.0 clients: the same fields
    // must reach both.
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let request = format!(
            "GET /fields {version}\r\nHost: m\r\nX-Request-Id: client-id\r\nConnection: close\r\n\r\n"
        );
        let raw = raw_exchange(sidecar.proxy, request.as_bytes());
        let (status, head, body) = split_response(&raw);
        assert_eq!((status, &body[..]), (200, &b"ok"[..]), "{version}: {head}");
        let lines = field_lines(&head);
        let kept: Vec<&str> = lines
            .iter()
            .map(String::as_str)
            .filter(|line| !line.starts_with("date: ") && *line != "connection: close")
            .collect();
        let mut expected = vec![
            "server: wire",
            "set-cookie: a=1",
            "set-cookie: b=2",
            "content-length: 2",
            "x-request-id: client-id",
        ];
        let mut sorted = kept.clone();
        sorted.sort_unstable();
        expected.sort_unstable();
        assert_eq!(sorted, expected, "{version}: {head}");
        let cookies: Vec<&&str> = kept
            .iter()
            .filter(|l| l.starts_with("set-cookie"))
            .collect();
        assert_eq!(
            cookies,
            [&"set-cookie: a=1", &"set-cookie: b=2"],
            "{version}"
        );
        assert_eq!(
            lines.iter().filter(|l| l.starts_with("date: ")).count(),
            1,
            "{version}: {head}"
        );
    }
}

#[test]
fn a_no_content_answer_loses_its_length_for_either_http1_version() {
    let (addr, _) = wire_upstream();
    let sidecar = Sidecar::start(&format!("http://{addr}"), &[]);
    for version in ["HTTP/1.1", "HTTP/1.0"] {
        let request = format!("GET /no-content {version}\r\nHost: m\r\nConnection: close\r\n\r\n");
        let raw = raw_exchange(sidecar.proxy, request.as_bytes());
        let (status, head, body) = split_response(&raw);
        assert_eq!(status, 204, "{version}: {head}");
        assert!(body.is_empty(), "{version}");
        let lines = field_lines(&head);
        assert!(
            lines.contains(&"x-kind: none".to_string()),
            "{version}: {head}"
        );
        assert!(
            !lines.iter().any(|l| l.starts_with("content-length")),
            "{version}: {head}"
        );
    }
}

#[test]
fn conflicting_response_lengths_become_a_502_with_the_reason() {
    let (addr, _) = wire_upstream();
    let sidecar = Sidecar::start(&format!("http://{addr}"), &[]);
    let (status, _, body) = split_response(&raw_exchange(
        sidecar.proxy,
        b"GET /conflict HTTP/1.1\r\nHost: m\r\nConnection: close\r\n\r\n",
    ));
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 502, "{body}");
    assert!(body.contains("invalid content-length"), "{body}");
    assert!(!body.contains("abcd"));
}

#[test]
fn a_body_cut_short_by_the_upstream_is_cut_short_for_the_client_and_counted() {
    let (addr, _) = wire_upstream();
    let sidecar = Sidecar::start(&format!("http://{addr}"), &[]);
    // The client's connection ends before the promised 100 bytes.
    let raw = raw_exchange(sidecar.proxy, b"GET /cut HTTP/1.1\r\nHost: m\r\n\r\n");
    let (_, _, body) = split_response(&raw);
    assert!(body.len() < 100, "{}", String::from_utf8_lossy(&raw));
    let text = sidecar.wait_for_metric(
        r#"magma_request_errors_total{kind="upstream_unreachable"}"#,
        1.0,
    );
    assert_eq!(
        metric_value(
            &text,
            r#"magma_request_errors_total{kind="upstream_unreachable"}"#
        ),
        Some(1.0),
        "{text}"
    );
}

/// POSTs to `/early` with a body of `declared` bytes of which only `sent`
/// are written, and reads the answer while the upload is still open.
fn early_answer(declared: usize, sent: usize) -> Vec<u8> {
    let (addr, _) = wire_upstream();
    let sidecar = Sidecar::start(&format!("http://{addr}"), &[]);
    let mut client = TcpStream::connect(sidecar.proxy).unwrap();
    client
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let head = format!("POST /early HTTP/1.1\r\nHost: m\r\nContent-Length: {declared}\r\n\r\n");
    let mut writer = client.try_clone().unwrap();
    let upload = std::thread::spawn(move || {
        let _ = writer.write_all(head.as_bytes());
        let block = vec![b'x'; 1 << 20];
        let mut left = sent;
        while left > 0 {
            let piece = left.min(block.len());
            if writer.write_all(&block[..piece]).is_err() {
                break;
            }
            left -= piece;
        }
    });
    let mut received = Vec::new();
    let mut buffer = [0u8; 4096];
    while !received.ends_with(b"too much") {
        match client.read(&mut buffer) {
            Ok(0) | Err(_) => break,
            Ok(n) => received.extend_from_slice(&buffer[..n]),
        }
    }
    drop(client);
    let _ = upload.join();
    received
}

#[test]
fn an_answer_sent_before_the_request_body_was_read_reaches_the_client() {
    // A small body that has not all arrived (the proxy's own client), and
    // one far larger than the socket buffers (the pooled client), whose
    // upload stalls while the upstream's answer is already waiting.
    for (declared, sent) in [(1000, 10), (32 << 20, 32 << 20)] {
        let received = early_answer(declared, sent);
        let (status, _, body) = split_response(&received);
        assert_eq!(
            (status, body.as_slice()),
            (413, &b"too much"[..]),
            "{declared} bytes: {}",
            String::from_utf8_lossy(&received)
        );
    }
}

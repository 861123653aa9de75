//! Shared pieces of the integration tests: the real binary as a child
//! process, loopback upstream servers, and raw HTTP clients.
#![allow(dead_code)]

use std::convert::Infallible;
use std::future::Future;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::combinators::BoxBody;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

pub type TestBody = BoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

/// A port that was free a moment ago.
pub fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// Spawns the command `make` builds for a proxy and an admin address, and
/// waits until both ports answer; returns the child and the two addresses.
/// The ports were free a moment before; a test running in parallel may take
/// one in between, and the binary then exits at start: it is started again
/// on new ports (three attempts).
pub fn spawn_listening(
    make: impl Fn(SocketAddr, SocketAddr) -> Command,
) -> (Child, SocketAddr, SocketAddr) {
    for _ in 0..3 {
        let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let mut child = make(proxy, admin)
            .spawn()
            .expect("cannot start magma-monitor");
        let deadline = Instant::now() + Duration::from_secs(20);
        let listening = loop {
            if StdStream::connect(proxy).is_ok() && StdStream::connect(admin).is_ok() {
                break true;
            }
            if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        if listening {
            return (child, proxy, admin);
        }
        let _ = child.kill();
        let _ = child.wait();
    }
    panic!("magma-monitor did not start listening in three attempts");
}

/// The built magma-monitor binary, running; killed when dropped.
pub struct Sidecar {
    pub child: Child,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
}

impl Sidecar {
    /// Starts the binary in front of `upstream` with extra flags; waits until
    /// both ports answer.
    pub fn start(upstream: &str, extra: &[&str]) -> Sidecar {
        let (child, proxy, admin) = spawn_listening(|proxy, admin| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_magma-monitor"));
            command
                .args(["--listen", &proxy.to_string()])
                .args(["--admin-listen", &admin.to_string()])
                .args(["--upstream", upstream])
                .args(["--health-interval", "200ms", "--log-level", "warn"])
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::inherit());
            command
        });
        Sidecar {
            child,
            proxy,
            admin,
        }
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.proxy, path)
    }

    /// GET on the admin port; returns (status, body).
    pub fn admin_get(&self, path: &str) -> (u16, String) {
        let response = raw_exchange(
            self.admin,
            format!("GET {path} HTTP/1.1\r\nHost: admin\r\nConnection: close\r\n\r\n").as_bytes(),
        );
        let (status, _, body) = split_response(&response);
        (status, String::from_utf8_lossy(&body).into_owned())
    }

    pub fn metrics(&self) -> String {
        self.admin_get("/metrics").1
    }

    /// Waits until `series` has `value` (metrics recorded when a connection
    /// closes may land just after the client saw the close); returns the last
    /// exposition.
    pub fn wait_for_metric(&self, series: &str, value: f64) -> String {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let metrics = self.metrics();
            if metric_value(&metrics, series) == Some(value) || Instant::now() > deadline {
                return metrics;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until `/readyz` answers `want`.
    pub fn wait_ready(&self, want: u16) {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if self.admin_get("/readyz").0 == want {
                return;
            }
            assert!(Instant::now() < deadline, "/readyz never answered {want}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn sigterm(&self) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .unwrap();
        assert!(status.success());
    }

    /// Waits for the process to exit; returns its exit code.
    pub fn wait_exit(&mut self, within: Duration) -> Option<i32> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status.code();
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The value of one sample line in a Prometheus text exposition, e.g.
/// `metric_value(text, r#"magma_requests_total{model_type="magma-8b",route="/predict",code="2xx"}"#)`.
/// Label order does not matter.
pub fn metric_value(text: &str, series: &str) -> Option<f64> {
    let (name, labels) = parse_series(series);
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .find_map(|line| {
            let (key, value) = line.rsplit_once(' ')?;
            let (line_name, line_labels) = parse_series(key);
            (line_name == name && line_labels == labels)
                .then(|| value.parse().ok())
                .flatten()
        })
}

fn parse_series(series: &str) -> (&str, Vec<(String, String)>) {
    let Some((name, rest)) = series.split_once('{') else {
        return (series.trim(), Vec::new());
    };
    let mut labels: Vec<(String, String)> = rest
        .trim_end_matches('}')
        .split("\",")
        .filter(|p| !p.is_empty())
        .filter_map(|pair| {
            let (k, v) = pair.split_once('=')?;
            Some((k.trim().to_owned(), v.trim_matches('"').to_owned()))
        })
        .collect();
    labels.sort();
    (name, labels)
}

/// Sends raw bytes, reads until the server closes (or 10 s pass).
pub fn raw_exchange(addr: SocketAddr, request: &[u8]) -> Vec<u8> {
    let mut stream = StdStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    stream.write_all(request).unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    response
}

/// Reads one HTTP/1.1 request from a raw server connection: its head (as
/// text, without the blank line) and, when `with_body(head)` says so, the
/// `Content-Length` bytes after it, all removed from `buffer` (which keeps
/// what arrived beyond them). `None` when the peer closed first.
pub fn read_raw_request(
    stream: &mut StdStream,
    buffer: &mut Vec<u8>,
    with_body: impl Fn(&str) -> bool,
) -> Option<String> {
    let mut chunk = [0u8; 65536];
    let mut fill = |buffer: &mut Vec<u8>| match stream.read(&mut chunk) {
        Ok(0) | Err(_) => false,
        Ok(n) => {
            buffer.extend_from_slice(&chunk[..n]);
            true
        }
    };
    let end = loop {
        if let Some(end) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break end;
        }
        if !fill(buffer) {
            return None;
        }
    };
    let head = String::from_utf8_lossy(&buffer[..end]).into_owned();
    let length: usize = if with_body(&head) {
        head.lines()
            .filter_map(|l| l.split_once(':'))
            .find(|(k, _)| k.eq_ignore_ascii_case("content-length"))
            .map_or(0, |(_, v)| v.trim().parse().unwrap())
    } else {
        0
    };
    while buffer.len() < end + 4 + length {
        if !fill(buffer) {
            return None;
        }
    }
    buffer.drain(..end + 4 + length);
    Some(head)
}

/// Splits a raw HTTP/1.1 response into status, head text and body bytes
/// (chunked bodies are decoded).
pub fn split_response(raw: &[u8]) -> (u16, String, Vec<u8>) {
    let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") else {
        return (0, String::from_utf8_lossy(raw).into_owned(), Vec::new());
    };
    let head = String::from_utf8_lossy(&raw[..end]).into_owned();
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut body = raw[end + 4..].to_vec();
    if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        body = decode_chunked(&body);
    }
    (status, head, body)
}

fn decode_chunked(mut data: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(line_end) = data.windows(2).position(|w| w == b"\r\n") {
        let size_text = String::from_utf8_lossy(&data[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .unwrap_or(0);
        data = &data[line_end + 2..];
        if size == 0 || data.len() < size {
            break;
        }
        out.extend_from_slice(&data[..size]);
        data = &data[(size + 2).min(data.len())..];
    }
    out
}

/// A loopback upstream server running `handler` for every request, on a
/// runtime thread of its own so blocking test code cannot stall it.
pub struct Upstream {
    pub addr: SocketAddr,
    _runtime: Arc<tokio::runtime::Runtime>,
}

impl Upstream {
    pub fn start<F, Fut>(handler: F) -> Upstream
    where
        F: Fn(Request<Incoming>) -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Response<TestBody>> + Send + 'static,
    {
        let runtime = Arc::new(
            tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        );
        let std_listener = StdListener::bind("127.0.0.1:0").unwrap();
        std_listener.set_nonblocking(true).unwrap();
        let addr = std_listener.local_addr().unwrap();
        let handler = Arc::new(handler);
        runtime.spawn(async move {
            let listener = TcpListener::from_std(std_listener).unwrap();
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    continue;
                };
                let handler = handler.clone();
                tokio::spawn(async move {
                    let service = hyper::service::service_fn(move |req| {
                        let handler = handler.clone();
                        async move { Ok::<_, Infallible>(handler(req).await) }
                    });
                    let _ = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new())
                        .serve_connection_with_upgrades(TokioIo::new(stream), service)
                        .await;
                });
            }
        });
        Upstream {
            addr,
            _runtime: runtime,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn runtime(&self) -> &tokio::runtime::Runtime {
        &self._runtime
    }
}

pub fn full(body: impl Into<Bytes>) -> TestBody {
    Full::new(body.into())
        .map_err(|never| match never {})
        .boxed()
}

pub fn response(status: u16, body: impl Into<Bytes>) -> Response<TestBody> {
    Response::builder().status(status).body(full(body)).unwrap()
}

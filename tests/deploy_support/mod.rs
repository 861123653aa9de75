//! Shared by the tests of the shipped monitoring artifacts: which `magma_*`
//! names the rules and the dashboard use, a loopback model server that answers
//! like Magma's FastAPI app, the real sidecar binary, and a tiny HTTP client.
//!
//! Only the standard library (and serde_json) so that the tests exercise the
//! binary from the outside, the way Prometheus and Grafana do.

#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

/// The files whose metric names must exist (the catalogue) and be exported.
pub const DEPLOY_FILES: &[&str] = &[
    "deploy/prometheus/rules.yml",
    "deploy/grafana/magma-monitor.json",
];

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Every `magma_*` name in `text` (recording-rule names use colons, `magma:...`,
/// and are not metric names of the binary).
pub fn metric_names_in(text: &str) -> BTreeSet<String> {
    let bytes = text.as_bytes();
    let mut names = BTreeSet::new();
    let mut i = 0;
    while let Some(found) = text[i..].find("magma_") {
        let start = i + found;
        let boundary = start == 0 || {
            let b = bytes[start - 1];
            !(b.is_ascii_alphanumeric() || b == b'_' || b == b':')
        };
        let mut end = start + "magma_".len();
        while end < bytes.len() && (bytes[end].is_ascii_alphanumeric() || bytes[end] == b'_') {
            end += 1;
        }
        if boundary {
            names.insert(text[start..end].to_string());
        }
        i = end;
    }
    names
}

/// Name -> the deploy files that use it.
pub fn deploy_metric_names() -> BTreeMap<String, Vec<&'static str>> {
    let mut used: BTreeMap<String, Vec<&'static str>> = BTreeMap::new();
    for file in DEPLOY_FILES {
        let text = std::fs::read_to_string(repo().join(file))
            .unwrap_or_else(|e| panic!("cannot read {file}: {e}"));
        for name in metric_names_in(&text) {
            used.entry(name).or_default().push(file);
        }
    }
    used
}

/// Which area of magma-monitor exports a name, for the failure messages: the
/// proxy core is issue 2; payload sampling, drift (4), GPU and model process
/// (5), quality and anomaly detection (6) are built in their own branches.
pub fn area_of(name: &str) -> &'static str {
    const AREAS: &[(&str, &str)] = &[
        // drift engine (issue 4): magma_drift_p_value / _statistic / _threshold / _detected
        ("magma_drift_", "drift (issue 4)"),
        // GPU collector (issue 5): magma_gpu_memory_used_bytes, _total_bytes, _temperature_celsius,
        // _utilization_ratio, _power_watts
        ("magma_gpu_", "gpu (issue 5)"),
        // model-process collector (issue 5): magma_upstream_process_resident_memory_bytes
        ("magma_upstream_process_", "model process (issue 5)"),
        // output quality and feedback (issue 6)
        ("magma_output_anomalies_", "quality (issue 6)"),
        ("magma_feedback_", "quality (issue 6)"),
        ("magma_quality_", "quality (issue 6)"),
        // anomaly detection (issue 6): magma_anomaly_active, magma_anomalies_total
        ("magma_anomal", "anomaly (issue 6)"),
        // sampling hand-off: magma_samples_total{outcome}
        ("magma_samples_", "sampling"),
    ];
    AREAS
        .iter()
        .find(|(prefix, _)| name.starts_with(prefix))
        .map(|(_, area)| *area)
        .unwrap_or("proxy core (issue 2)")
}

/// Formats missing names grouped by area, one line each.
pub fn by_area(missing: &BTreeMap<String, Vec<&'static str>>) -> String {
    let mut groups: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    for (name, files) in missing {
        groups
            .entry(area_of(name))
            .or_default()
            .push(format!("{name} (used in {})", files.join(", ")));
    }
    groups
        .into_iter()
        .map(|(area, names)| format!("  {area}:\n    {}", names.join("\n    ")))
        .collect::<Vec<_>>()
        .join("\n")
}

// ------------------------------------------------------------------ processes

/// A child process killed when dropped, with its stderr kept for messages.
pub struct Running {
    pub child: Child,
    pub name: &'static str,
    pub log: PathBuf,
}

impl Running {
    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        let start = lines.len().saturating_sub(30);
        lines[start..].join("\n")
    }

    /// Fails with the process's log when it has exited.
    pub fn assert_alive(&mut self) {
        if let Ok(Some(status)) = self.child.try_wait() {
            panic!(
                "{} exited with {status}; its log:\n{}",
                self.name,
                self.log_tail()
            );
        }
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("bind a loopback port")
}

pub struct Sidecar {
    pub process: Running,
    pub proxy: SocketAddr,
    pub admin: SocketAddr,
}

/// Starts the real binary in front of `upstream`. Flags of areas that may not
/// be in this build are given as `MAGMA_MONITOR_*` variables: a build without
/// the flag ignores the variable, a build with it uses it.
pub fn start_sidecar(upstream: SocketAddr, dir: &Path, env: &[(&str, String)]) -> Sidecar {
    let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = dir.join("magma-monitor.log");
    let mut command = Command::new(env!("CARGO_BIN_EXE_magma-monitor"));
    command
        .arg(format!("--listen={proxy}"))
        .arg(format!("--admin-listen={admin}"))
        .arg(format!("--upstream=http://{upstream}"))
        .arg("--health-interval=200ms")
        .arg("--log-level=warn")
        .env_remove("NVIDIA_VISIBLE_DEVICES")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("create the sidecar log"));
    for (name, value) in env {
        command.env(name, value);
    }
    let child = command.spawn().expect("start magma-monitor");
    let mut process = Running {
        child,
        name: "magma-monitor",
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while http_get(admin, "/healthz").map(|r| r.status) != Ok(200) {
        process.assert_alive();
        assert!(
            Instant::now() < deadline,
            "magma-monitor's /healthz did not answer"
        );
        thread::sleep(Duration::from_millis(50));
    }
    Sidecar {
        process,
        proxy,
        admin,
    }
}

/// The fake NVML library's settings: one GPU with every counter set.
pub const FAKE_NVML_ONE_GPU: &str = "driver=550.54.15\ncuda=12040\ncount=1\n\
gpu0.name=NVIDIA H100 80GB HBM3\ngpu0.uuid=GPU-00000000-0000-0000-0000-000000000001\n\
gpu0.util_gpu=87\ngpu0.util_mem=41\ngpu0.mem_total=85899345920\ngpu0.mem_used=18253611008\n\
gpu0.mem_free=67645734912\ngpu0.mem_reserved=536870912\ngpu0.temp=64\ngpu0.power_mw=312000\n\
gpu0.power_limit_mw=700000\ngpu0.sm_mhz=1980\ngpu0.mem_mhz=2619\ngpu0.energy_mj=123456789\n\
gpu0.ecc_corrected=2\ngpu0.ecc_uncorrected=0\ngpu0.throttle=4\ngpu0.pcie_replay=0\n\
gpu0.procs=4242:17179869184\n";

/// Builds the fake NVML library (tests/fake_nvml/fake_nvml.c, shared with the
/// GPU collector's tests) into `dir` with the system C compiler, and writes its
/// settings; returns the library and the settings file (`FAKE_NVML_CONFIG`).
pub fn build_fake_nvml(dir: &Path) -> (PathBuf, PathBuf) {
    let config = dir.join("fake-nvml.conf");
    std::fs::write(&config, FAKE_NVML_ONE_GPU).expect("fake NVML settings");
    let out = dir.join("libnvidia-ml-fake.so");
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let status = Command::new(&cc)
        .args(["-shared", "-fPIC", "-O1", "-o"])
        .arg(&out)
        .arg(repo().join("tests/fake_nvml/fake_nvml.c"))
        .status()
        .unwrap_or_else(|e| panic!("cannot run the C compiler `{cc}`: {e}"));
    assert!(status.success(), "building the fake NVML library failed");
    (out, config)
}

// ------------------------------------------------------------------ upstream

/// A loopback stand-in for Magma's FastAPI server: `GET /health`, `POST
/// /predict`, `POST /v1/chat/completions`; a prompt containing "fail" gets
/// Magma's 500 body. HTTP/1.1 with keep-alive, Content-Length or chunked bodies.
pub struct Upstream {
    pub addr: SocketAddr,
    stop: Arc<AtomicBool>,
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = TcpStream::connect(self.addr);
    }
}

pub fn start_upstream() -> Upstream {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind the upstream");
    let addr = listener.local_addr().expect("upstream address");
    let stop = Arc::new(AtomicBool::new(false));
    let stopped = stop.clone();
    thread::spawn(move || {
        for stream in listener.incoming() {
            if stopped.load(Ordering::Relaxed) {
                break;
            }
            if let Ok(stream) = stream {
                thread::spawn(move || serve_connection(stream));
            }
        }
    });
    Upstream { addr, stop }
}

fn serve_connection(stream: TcpStream) {
    let _ = stream.set_read_timeout(Some(Duration::from_secs(30)));
    let mut writer = match stream.try_clone() {
        Ok(w) => w,
        Err(_) => return,
    };
    let mut reader = BufReader::new(stream);
    // Bounded: a test connection never carries more than this many requests.
    for _ in 0..10_000 {
        let Some(request) = read_request(&mut reader) else {
            return;
        };
        let (status, body) = answer(&request);
        let head = format!(
            "HTTP/1.1 {status} {}\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n",
            if status == 200 { "OK" } else { "Error" },
            body.len()
        );
        if writer.write_all(head.as_bytes()).is_err() || writer.write_all(body.as_bytes()).is_err()
        {
            return;
        }
    }
}

pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

fn read_request(reader: &mut BufReader<TcpStream>) -> Option<Request> {
    let mut line = String::new();
    if reader.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let path = parts.next()?.to_string();
    let mut headers = Vec::new();
    loop {
        let mut header = String::new();
        reader.read_line(&mut header).ok()?;
        let header = header.trim_end();
        if header.is_empty() {
            break;
        }
        let (name, value) = header.split_once(':')?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_string()));
    }
    let find = |n: &str| headers.iter().find(|(k, _)| k == n).map(|(_, v)| v.clone());
    let mut body = Vec::new();
    if find("transfer-encoding").is_some_and(|v| v.to_ascii_lowercase().contains("chunked")) {
        loop {
            let mut size = String::new();
            reader.read_line(&mut size).ok()?;
            let size = usize::from_str_radix(size.trim().split(';').next()?, 16).ok()?;
            let mut chunk = vec![0; size + 2];
            reader.read_exact(&mut chunk).ok()?;
            if size == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..size]);
        }
    } else if let Some(length) = find("content-length") {
        let mut buf = vec![0; length.parse().ok()?];
        reader.read_exact(&mut buf).ok()?;
        body = buf;
    }
    Some(Request {
        method,
        path,
        headers,
        body,
    })
}

fn answer(request: &Request) -> (u16, String) {
    let body = String::from_utf8_lossy(&request.body);
    match (request.method.as_str(), request.path.as_str()) {
        ("GET", "/health") => (200, r#"{"status":"healthy","model_loaded":true}"#.into()),
        ("POST", _) if body.contains("fail") => (
            500,
            r#"{"detail":"Error processing request: CUDA error: out of memory"}"#.into(),
        ),
        // Magma users have seen degenerate repeated output.
        ("POST", "/predict") if body.contains("repeat") => (
            200,
            r#"{"text_response":"the the the the the the the the the the the the the the the the","normalized_actions":[0.0,0.0,0.0,0.0,0.0,0.0,1.0],"delta_values":[0.0,0.0,0.0,0.0,0.0,0.0,1.0]}"#.into(),
        ),
        // An action outside [-1, 1].
        ("POST", "/predict") if body.contains("wild") => (
            200,
            r#"{"text_response":"Move fast.","normalized_actions":[5.0,-7.5,0.0,0.0,0.0,0.0,1.0],"delta_values":[0.9,0.0,0.0,0.0,0.0,0.0,1.0]}"#.into(),
        ),
        ("POST", "/predict" | "/predict_from_file") => {
            // A deterministic but varying action, so features are not constant.
            let x = (request.body.len() % 97) as f64 / 970.0;
            (
                200,
                format!(
                    r#"{{"text_response":"Move the gripper left by {x:.3} and close it.","normalized_actions":[{x:.3},-0.1,0.2,0.0,0.0,0.1,1.0],"delta_values":[0.01,-0.02,{d:.3},0.1,0.0,-0.1,1.0]}}"#,
                    d = x / 20.0
                ),
            )
        }
        ("POST", "/v1/chat/completions") => (
            200,
            r#"{"id":"chatcmpl-1","object":"chat.completion","model":"magma-8b","choices":[{"index":0,"finish_reason":"stop","message":{"role":"assistant","content":"Mark: 3 (0.42, 0.58)"}}],"usage":{"prompt_tokens":812,"completion_tokens":9,"total_tokens":821}}"#.into(),
        ),
        _ => (404, r#"{"detail":"Not Found"}"#.into()),
    }
}

// -------------------------------------------------------------------- client

#[derive(Debug, PartialEq, Eq)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// One request on a fresh connection (`Connection: close`), read to the end.
pub fn http(
    addr: SocketAddr,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &[u8],
) -> Result<Response, String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))
        .map_err(|e| format!("connect {addr}: {e}"))?;
    stream
        .set_read_timeout(Some(Duration::from_secs(20)))
        .map_err(|e| e.to_string())?;
    let mut head = format!(
        "{method} {path} HTTP/1.1\r\nhost: {addr}\r\nconnection: close\r\ncontent-length: {}\r\n",
        body.len()
    );
    for (name, value) in headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    head.push_str("\r\n");
    stream
        .write_all(head.as_bytes())
        .and_then(|_| stream.write_all(body))
        .map_err(|e| format!("send to {addr}{path}: {e}"))?;
    let mut raw = Vec::new();
    stream
        .read_to_end(&mut raw)
        .map_err(|e| format!("read from {addr}{path}: {e}"))?;
    parse_response(&raw).ok_or_else(|| format!("{addr}{path}: unreadable response"))
}

pub fn http_get(addr: SocketAddr, path: &str) -> Result<Response, String> {
    http(addr, "GET", path, &[], b"")
}

fn parse_response(raw: &[u8]) -> Option<Response> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&raw[..split]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.split_whitespace().nth(1)?.parse().ok()?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let mut body = raw[split + 4..].to_vec();
    if headers
        .iter()
        .any(|(k, v)| k == "transfer-encoding" && v.contains("chunked"))
    {
        body = dechunk(&body)?;
    }
    Some(Response {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    })
}

fn dechunk(mut data: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let line_end = data.windows(2).position(|w| w == b"\r\n")?;
        let size_text = std::str::from_utf8(&data[..line_end]).ok()?;
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        data = &data[line_end + 2..];
        if size == 0 {
            return Some(out);
        }
        out.extend_from_slice(data.get(..size)?);
        data = data.get(size + 2..)?;
    }
}

/// Identical failure lines once each, with a count.
pub fn summarize(failures: &[String]) -> String {
    let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
    for failure in failures {
        *counts.entry(failure.as_str()).or_default() += 1;
    }
    counts
        .into_iter()
        .map(|(line, n)| {
            if n > 1 {
                format!("{line} (x{n})")
            } else {
                line.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n  ")
}

/// Names of the samples in a Prometheus text exposition.
pub fn exported_names(exposition: &str) -> BTreeSet<String> {
    exposition
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_string)
        .collect()
}

// ------------------------------------------------------------------- traffic

/// A 1x1 PNG, base64 without a `data:` prefix, as Magma's /predict expects.
pub const PNG_1X1_BASE64: &str =
    "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mP8z8BQDwAEhQGAhKmMIQAAAABJRU5ErkJggg==";

/// Sends the kinds of requests a Magma deployment sees, through the proxy;
/// returns the request ids of the successful answers and the failures seen.
pub fn send_traffic(proxy: SocketAddr, rounds: usize) -> (Vec<String>, Vec<String>) {
    let tasks = [
        "What action should the robot take to pick up the red block?",
        "In this view I need to click a button to \"Submit\"? Provide the coordinates and the mark index of the containing bounding box if applicable.",
        "What is in the image? Answer with a single number.",
    ];
    let mut ids = Vec::new();
    let mut failures = Vec::new();
    for round in 0..rounds {
        let prompt = tasks[round % tasks.len()];
        let body = format!(
            r#"{{"image":"{PNG_1X1_BASE64}","prompt":"{}","round":{round}}}"#,
            prompt.replace('"', "\\\"")
        );
        match http(
            proxy,
            "POST",
            "/predict",
            &[("content-type", "application/json")],
            body.as_bytes(),
        ) {
            Ok(r) if r.status == 200 && r.body.contains("normalized_actions") => {
                if let Some(id) = r.header("x-request-id") {
                    ids.push(id.to_string());
                }
            }
            Ok(r) => failures.push(format!("POST /predict: {} {}", r.status, r.body)),
            Err(e) => failures.push(format!("POST /predict: {e}")),
        }
    }
    let chat = format!(
        r#"{{"model":"magma-8b","messages":[{{"role":"user","content":[{{"type":"text","text":"Where is the Submit button?"}},{{"type":"image_url","image_url":{{"url":"data:image/png;base64,{PNG_1X1_BASE64}"}}}}]}}]}}"#
    );
    match http(
        proxy,
        "POST",
        "/v1/chat/completions",
        &[("content-type", "application/json")],
        chat.as_bytes(),
    ) {
        Ok(r) if r.status == 200 => {}
        Ok(r) => failures.push(format!("POST /v1/chat/completions: {}", r.status)),
        Err(e) => failures.push(format!("POST /v1/chat/completions: {e}")),
    }
    // Answers the quality checks flag: repeated words, an action out of range.
    for prompt in [
        "What action should the robot take to repeat the motion?",
        "What action should the robot take to make a wild move?",
    ] {
        let body = format!(r#"{{"image":"{PNG_1X1_BASE64}","prompt":"{prompt}"}}"#);
        match http(
            proxy,
            "POST",
            "/predict",
            &[("content-type", "application/json")],
            body.as_bytes(),
        ) {
            Ok(r) if r.status == 200 => {}
            Ok(r) => failures.push(format!("POST /predict ({prompt}): {}", r.status)),
            Err(e) => failures.push(format!("POST /predict ({prompt}): {e}")),
        }
    }
    // The upstream's own 500 passes through and counts as an error.
    match http(
        proxy,
        "POST",
        "/predict",
        &[("content-type", "application/json")],
        br#"{"image":"","prompt":"fail"}"#,
    ) {
        Ok(r) if r.status == 500 => {}
        Ok(r) => failures.push(format!("POST /predict (fail): {} instead of 500", r.status)),
        Err(e) => failures.push(format!("POST /predict (fail): {e}")),
    }
    match http_get(proxy, "/health") {
        Ok(r) if r.status == 200 => {}
        Ok(r) => failures.push(format!("GET /health: {}", r.status)),
        Err(e) => failures.push(format!("GET /health: {e}")),
    }
    (ids, failures)
}

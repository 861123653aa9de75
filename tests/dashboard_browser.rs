//! The dashboard in a real browser: `magma-monitor demo` runs (simulated
//! Magma server, the proxy, generated traffic), headless Chromium loads the
//! page from the admin port, and the test checks that the charts hold data —
//! in the DOM after the page's script ran, and in a screenshot that is not
//! blank and shows the chart lines.
//!
//! Needs the Debian package `chromium` (scripts/install-system-packages.sh
//! installs it). With
//! `MAGMA_MONITOR_UPDATE_SCREENSHOT=1` the screenshot is also saved to
//! docs/dashboard.png for the README.

use std::io::Read;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

/// A minimal HTTP/1.1 GET; returns (status, body).
fn get(address: SocketAddr, path: &str) -> Option<(u16, String)> {
    use std::io::Write;
    let mut stream = TcpStream::connect_timeout(&address, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let status = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split_once("\r\n\r\n").map(|(_, b)| b.to_string())?;
    Some((status, body))
}

struct Demo {
    child: Child,
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn chromium() -> PathBuf {
    for candidate in ["chromium", "chromium-browser"] {
        if let Ok(output) = Command::new("sh")
            .args(["-c", &format!("command -v {candidate}")])
            .output()
        {
            let path = String::from_utf8_lossy(&output.stdout).trim().to_string();
            if output.status.success() && !path.is_empty() {
                return PathBuf::from(path);
            }
        }
    }
    panic!("chromium is not installed: run scripts/install-system-packages.sh (it installs the Debian package)");
}

fn run_chromium(profile: &Path, extra: &[&str], url: &str) -> Output {
    let mut command = Command::new(chromium());
    command
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1440,1900",
            "--virtual-time-budget=8000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(extra)
        .arg(url)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let child = command.spawn().expect("cannot start chromium");
    let output = child.wait_with_output().expect("chromium did not finish");
    assert!(
        output.status.success(),
        "chromium failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output
}

/// The value of `attribute` on the element with `id` in a DOM dump.
fn attribute(dom: &str, id: &str, attribute: &str) -> Option<String> {
    let start = dom.find(&format!("id=\"{id}\""))?;
    let tag_start = dom[..start].rfind('<')?;
    let tag_end = start + dom[start..].find('>')?;
    let tag = &dom[tag_start..tag_end];
    let key = format!("{attribute}=\"");
    let value_start = tag.find(&key)? + key.len();
    let value_end = value_start + tag[value_start..].find('"')?;
    Some(tag[value_start..value_end].to_string())
}

/// The text right after the element with `id` opens.
fn text_of(dom: &str, id: &str) -> Option<String> {
    let start = dom.find(&format!("id=\"{id}\""))?;
    let open_end = start + dom[start..].find('>')? + 1;
    let close = open_end + dom[open_end..].find('<')?;
    Some(dom[open_end..close].trim().to_string())
}

#[test]
fn dashboard_shows_live_data_from_a_running_demo() {
    let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let scratch = tempfile::tempdir().unwrap();
    let log_path = scratch.path().join("demo.out");
    let log = std::fs::File::create(&log_path).unwrap();
    let demo = Demo {
        child: Command::new(env!("CARGO_BIN_EXE_magma-monitor"))
            .args([
                "demo",
                "--speed",
                "4",
                "--phase-duration",
                "60s",
                "--duration",
                "5m",
            ])
            .args(["--status-interval", "5s", "--clients", "6"])
            .args([
                "--listen",
                &proxy.to_string(),
                "--admin-listen",
                &admin.to_string(),
            ])
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .expect("cannot start magma-monitor demo"),
    };

    // Wait until the sidecar has measured traffic through the proxy.
    let deadline = Instant::now() + Duration::from_secs(90);
    let mut ready = false;
    while Instant::now() < deadline {
        if let Some((200, body)) = get(admin, "/api/timeseries?limit=1") {
            let value: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
            let last = &value["points"][0];
            if last["requests_total"].as_f64().unwrap_or(0.0) >= 30.0
                && last["latency_p95_seconds"].is_number()
            {
                ready = true;
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let demo_log = || std::fs::read_to_string(&log_path).unwrap_or_default();
    assert!(
        ready,
        "no traffic measured within 90 s; demo output:\n{}",
        demo_log()
    );
    // More traffic, so the charts hold lines, not dots.
    std::thread::sleep(Duration::from_secs(20));

    let url = format!("http://{admin}/");
    let profile = scratch.path().join("profile-dom");
    let dom = String::from_utf8(run_chromium(&profile, &["--dump-dom"], &url).stdout).unwrap();

    assert_eq!(
        text_of(&dom, "connection").as_deref(),
        Some("live"),
        "the page did not reach the API:\n{dom}"
    );
    for chart in [
        "chart-latency",
        "chart-throughput",
        "chart-errors",
        "chart-modality",
        "chart-task",
        "chart-memory",
    ] {
        let points: usize = attribute(&dom, chart, "data-points")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("{chart} has no data-points attribute"));
        assert!(points >= 3, "{chart} shows {points} points");
        let class = attribute(&dom, chart, "class").unwrap();
        assert!(class.contains("has-data"), "{chart}: {class}");
    }
    let requests: f64 = text_of(&dom, "v-requests").unwrap().parse().unwrap();
    assert!(requests >= 30.0, "requests tile shows {requests}");
    let p95 = text_of(&dom, "v-p95").unwrap();
    assert!(
        p95.ends_with(" ms") || p95.ends_with(" s"),
        "p95 tile shows {p95:?}"
    );
    let qps: f64 = text_of(&dom, "v-qps").unwrap().parse().unwrap();
    assert!(qps > 0.0, "qps tile shows {qps}");
    // The resource panel renders /api/resources: the demo's own process is the model process.
    let resources = &dom[dom.find("id=\"panel-resources\"").unwrap()..];
    let resources = &resources[..resources.find("</section>").unwrap()];
    assert!(
        resources.contains("resident_memory_bytes") && resources.contains("MiB"),
        "resource panel: {resources}"
    );
    let upstream_state = text_of(&dom, "upstream-state").unwrap();
    assert_eq!(upstream_state, "ready");

    // The screenshot: not blank, and the p95 line colour is drawn.
    let shot = scratch.path().join("dashboard.png");
    let profile = scratch.path().join("profile-shot");
    run_chromium(
        &profile,
        &[&format!("--screenshot={}", shot.display())],
        &url,
    );
    // Kept for a look when the assertions below fail.
    let last = Path::new(env!("CARGO_TARGET_TMPDIR")).join("dashboard-last.png");
    let _ = std::fs::copy(&shot, &last);
    let image = image::open(&shot)
        .expect("screenshot is not a PNG")
        .to_rgb8();
    assert_eq!((image.width(), image.height()), (1440, 1900));
    let mut colours = std::collections::HashSet::new();
    let mut background = 0usize;
    let mut blue_lines = 0usize;
    let mut tail_lines = 0usize;
    for pixel in image.pixels() {
        let [r, g, b] = pixel.0;
        colours.insert((r >> 3, g >> 3, b >> 3));
        if (r, g, b) == (0x0f, 0x14, 0x19) {
            background += 1;
        }
        let near =
            |c: (u8, u8, u8)| r.abs_diff(c.0) < 24 && g.abs_diff(c.1) < 24 && b.abs_diff(c.2) < 24;
        // #58a6ff: p50, requests/s, the first mix series, sidecar memory.
        if near((0x58, 0xa6, 0xff)) {
            blue_lines += 1;
        }
        // #f0883e: the p95 line (no threshold or other series uses it).
        if near((0xf0, 0x88, 0x3e)) {
            tail_lines += 1;
        }
    }
    let total = (image.width() * image.height()) as usize;
    assert!(
        colours.len() > 60,
        "only {} distinct colours: blank page?",
        colours.len()
    );
    assert!(
        background < total * 9 / 10,
        "the page is {background} of {total} background pixels"
    );
    // The legend keys alone are five 10x10 blue squares and one orange
    // one; the lines must add clearly more.
    assert!(
        blue_lines > 900,
        "only {blue_lines} pixels of chart-line blue"
    );
    assert!(tail_lines > 200, "only {tail_lines} pixels of the p95 line");
    if std::env::var_os("MAGMA_MONITOR_UPDATE_SCREENSHOT").is_some() {
        let docs = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs");
        std::fs::create_dir_all(&docs).unwrap();
        std::fs::copy(&shot, docs.join("dashboard.png")).unwrap();
    }

    // Ctrl-C ends the demo with a summary and exit code 0.
    let pid = demo.child.id() as libc::pid_t;
    // SAFETY: kill(2) on our own child's pid.
    unsafe { libc::kill(pid, libc::SIGINT) };
    let mut demo = demo;
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = demo.child.try_wait().unwrap() {
            break status;
        }
        assert!(
            Instant::now() < deadline,
            "demo did not stop on SIGINT:\n{}",
            demo_log()
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let output = demo_log();
    assert!(status.success(), "demo exited with {status}:\n{output}");
    assert!(
        output.contains(&format!("dashboard  http://{admin}/")),
        "{output}"
    );
    assert!(output.contains("== summary"), "{output}");
    assert!(output.contains("[normal"), "no status line:\n{output}");
}

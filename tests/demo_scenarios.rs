//! `magma-monitor demo --scenario all`, compressed in time: every phase is
//! played through the real proxy, and the summary credits each fault to the
//! phase that caused it. Detections of areas this build exports (drift,
//! output quality) are required as soon as their metrics exist.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Command, Stdio};
use std::time::Duration;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("no free port")
}

fn metrics_text(admin: SocketAddr) -> Option<String> {
    let mut stream = TcpStream::connect_timeout(&admin, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: {admin}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    stream.read_to_string(&mut text).ok()?;
    Some(text)
}

/// The summary lines under `phase N name`, up to the next phase.
fn phase_block<'a>(summary: &'a str, name: &str) -> Vec<&'a str> {
    let mut lines = summary.lines().skip_while(|l| !l.starts_with("== summary"));
    let mut block = Vec::new();
    let mut inside = false;
    for line in lines.by_ref() {
        let trimmed = line.trim_start();
        if trimmed.starts_with("phase ") {
            if inside {
                break;
            }
            inside = trimmed.split_whitespace().nth(2) == Some(name);
        } else if inside {
            block.push(trimmed);
        }
    }
    block
}

#[test]
fn every_phase_is_caught_in_the_phase_that_caused_it() {
    let proxy: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    // Speed 5 with 80 s phases: 16 s a phase (longer than the dashboard's
    // 10 s rate window, which --speed does not compress), one cycle in 80 s.
    let mut child = Command::new(env!("CARGO_BIN_EXE_magma-monitor"))
        .args(["demo", "--scenario", "all", "--speed", "5"])
        .args(["--phase-duration", "80s", "--duration", "79s"])
        .args(["--status-interval", "1s"])
        .args([
            "--listen",
            &proxy.to_string(),
            "--admin-listen",
            &admin.to_string(),
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("cannot start the demo");
    // Which analysis areas this build exports, read while the demo runs.
    std::thread::sleep(Duration::from_secs(20));
    let metrics = metrics_text(admin).unwrap_or_default();
    let mut output = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut output)
        .unwrap();
    let status = child.wait().unwrap();
    assert!(status.success(), "demo failed:\n{output}");
    assert!(
        metrics.contains("magma_request_duration_seconds_bucket"),
        "no request metrics:\n{metrics}"
    );

    let normal = phase_block(&output, "normal");
    assert_eq!(
        normal,
        ["nothing detected"],
        "false alarm in the baseline:\n{output}"
    );
    let creep = phase_block(&output, "latency-creep");
    assert!(
        creep.iter().any(|l| l.contains("p95 latency")),
        "latency creep not seen:\n{output}"
    );
    let burst = phase_block(&output, "error-burst");
    assert!(
        burst.iter().any(|l| l.contains("error rate above 5%")),
        "error burst not seen:\n{output}"
    );
    for phase in ["normal", "input-drift", "degenerate-output"] {
        let block = phase_block(&output, phase);
        assert!(
            !block
                .iter()
                .any(|l| l.contains("error rate") || l.contains("p95 latency")),
            "{phase} credited with another phase's fault:\n{output}"
        );
    }
    assert!(
        !burst.iter().any(|l| l.contains("p95 latency")),
        "the error burst credited with the creep:\n{output}"
    );
    if metrics.contains("magma_drift_p_value") {
        let drift = phase_block(&output, "input-drift");
        assert!(
            drift.iter().any(|l| l.contains("drift detected")),
            "input drift not caught:\n{output}"
        );
    }
    if metrics.contains("magma_output_anomalies_total") {
        let degenerate = phase_block(&output, "degenerate-output");
        assert!(
            degenerate.iter().any(|l| l.contains("output anomalies")),
            "degenerate output not caught:\n{output}"
        );
    }
}

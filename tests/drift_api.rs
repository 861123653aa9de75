//! The drift routes of the admin server, through the built binary: the
//! reference restored from `--state-dir`, a corrupt state file, and
//! `POST /api/drift/reference`.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::Value;

mod harness;

struct Sidecar {
    child: Child,
    admin: SocketAddr,
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Sidecar {
    fn start(extra: &[&str]) -> Self {
        let (child, _, admin) = harness::spawn_listening(|listen, admin| {
            let mut command = Command::new(env!("CARGO_BIN_EXE_magma-monitor"));
            command
                .args(["--listen", &listen.to_string()])
                .args(["--admin-listen", &admin.to_string()])
                .args(["--upstream", "http://127.0.0.1:9"])
                .args(extra)
                .stdout(Stdio::null())
                .stderr(Stdio::piped());
            command
        });
        Self { child, admin }
    }

    /// One HTTP/1.1 exchange; returns (status, body).
    fn request(&self, method: &str, path: &str, body: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.admin).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "{method} {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\nContent-Type: text/csv\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .unwrap();
        let mut response = String::new();
        stream.read_to_string(&mut response).expect("read response");
        let status = response
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let body = response
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (status, body)
    }

    fn drift(&self) -> Value {
        let (status, body) = self.request("GET", "/api/drift", "");
        assert_eq!(status, 200, "{body}");
        serde_json::from_str(&body).expect("JSON")
    }

    fn stop_and_read_log(mut self) -> String {
        let _ = self.child.kill();
        let mut log = String::new();
        if let Some(mut stderr) = self.child.stderr.take() {
            let _ = stderr.read_to_string(&mut log);
        }
        log
    }
}

fn write_state(dir: &Path, samples: usize) {
    let samples: Vec<Value> = (0..samples)
        .map(|i| serde_json::json!({"input": [i as f32, 1.0], "output": [], "categorical": [["modality", "image"]]}))
        .collect();
    let state = serde_json::json!({
        "version": 1, "source": "upload", "reference_file": null,
        "created_unix_seconds": 1.0, "samples": samples,
    });
    std::fs::write(dir.join("drift-reference.json"), state.to_string()).unwrap();
}

#[test]
fn the_reference_is_restored_from_the_state_dir() {
    let dir = tempfile::tempdir().unwrap();
    write_state(dir.path(), 60);
    let sidecar = Sidecar::start(&["--state-dir", dir.path().to_str().unwrap()]);
    let drift = sidecar.drift();
    assert_eq!(drift["enabled"], true);
    assert_eq!(drift["reference"]["state"], "ready", "{drift}");
    assert_eq!(drift["reference"]["samples"], 60);
    assert_eq!(drift["reference"]["restored_from_state"], true);
    assert_eq!(drift["reference"]["categorical_fields"][0], "modality");
    assert_eq!(drift["window_capacity"], 500);

    let (status, body) = sidecar.request("POST", "/api/drift/reference", "a,b\n1,2\n3,4\n");
    assert_eq!(status, 202, "{body}");
    let (status, _) = sidecar.request("POST", "/api/drift/reference", "a,b\n1,2\n3\n");
    assert_eq!(status, 400);
    let (status, _) = sidecar.request("PUT", "/api/drift", "");
    assert_eq!(status, 405);
}

#[test]
fn a_corrupt_state_file_is_logged_and_a_fresh_reference_started() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("drift-reference.json"),
        "{\"version\": 1, \"sam",
    )
    .unwrap();
    let sidecar = Sidecar::start(&[
        "--state-dir",
        dir.path().to_str().unwrap(),
        "--drift-reference-size",
        "300",
    ]);
    let drift = sidecar.drift();
    assert_eq!(drift["reference"]["state"], "collecting", "{drift}");
    assert_eq!(drift["reference"]["target_samples"], 300);
    assert!(drift["last_error"].as_str().unwrap().contains("corrupt"));
    let log = sidecar.stop_and_read_log();
    assert!(
        log.lines()
            .any(|l| l.contains("drift state file is corrupt")),
        "{log}"
    );
    assert!(dir.path().join("drift-reference.json.corrupt").exists());
}

#[test]
fn drift_can_be_turned_off_and_flags_are_checked() {
    let sidecar = Sidecar::start(&["--no-drift"]);
    assert_eq!(sidecar.drift()["enabled"], false);
    let (status, _) = sidecar.request("POST", "/api/drift/reference", "");
    assert_eq!(status, 503);
    drop(sidecar);
    let out = Command::new(env!("CARGO_BIN_EXE_magma-monitor"))
        .args(["--drift-p-val", "1.5"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("--drift-p-val"));
}

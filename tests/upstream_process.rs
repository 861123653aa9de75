//! The upstream-process collector against a real child process whose
//! resident memory grows by a known amount.
//!
//! The child is this test binary itself, started again through a symlink with
//! a distinctive name and `GROW_CHILD=1`, so no interpreter is needed: it
//! waits for lines on stdin and, for each, allocates and touches 64 MiB.

mod resources_support;
use resources_support as support;

use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};

use support::{Metrics, Sidecar};

const STEP: usize = 64 << 20;
const MIB: f64 = (1 << 20) as f64;

/// The body of the child process; a no-op when run as a normal test.
#[test]
fn grow_child() {
    if std::env::var_os("GROW_CHILD").is_none() {
        return;
    }
    let mut kept: Vec<Vec<u8>> = Vec::new();
    let mut stdout = std::io::stdout();
    writeln!(stdout, "ready").unwrap();
    stdout.flush().unwrap();
    for line in std::io::stdin().lock().lines() {
        if line.is_err() {
            break;
        }
        // Every byte is written, so every page becomes resident.
        kept.push(vec![0x5a; STEP]);
        writeln!(stdout, "grown {}", kept.len()).unwrap();
        stdout.flush().unwrap();
    }
    std::hint::black_box(&kept);
    std::process::exit(0);
}

struct Grower {
    child: Child,
    stdin: ChildStdin,
    stdout: BufReader<ChildStdout>,
}

impl Grower {
    fn start(link: &Path) -> Grower {
        let mut child = Command::new(link)
            .args(["--exact", "grow_child", "--nocapture", "--test-threads=1"])
            .env("GROW_CHILD", "1")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take().unwrap();
        let stdout = BufReader::new(child.stdout.take().unwrap());
        let mut grower = Grower {
            child,
            stdin,
            stdout,
        };
        grower.expect("ready");
        grower
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn expect(&mut self, prefix: &str) {
        loop {
            let mut line = String::new();
            assert!(self.stdout.read_line(&mut line).unwrap() > 0, "child ended");
            if line.contains(prefix) {
                return;
            }
        }
    }

    fn grow(&mut self) {
        writeln!(self.stdin, "grow").unwrap();
        self.stdin.flush().unwrap();
        self.expect("grown");
    }

    fn stop(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn link_to_self(dir: &Path, name: &str) -> PathBuf {
    let link = dir.join(name);
    std::os::unix::fs::symlink(std::env::current_exe().unwrap(), &link).unwrap();
    link
}

fn resident(m: &Metrics) -> Option<f64> {
    m.value("magma_upstream_process_resident_memory_bytes", &[])
}

fn process_up(m: &Metrics) -> Option<f64> {
    m.value("magma_upstream_process_up", &[])
}

fn snapshot_pid(sidecar: &Sidecar) -> Option<u64> {
    let (_, body) = support::get(sidecar.admin, "/api/resources")?;
    let json: serde_json::Value = serde_json::from_str(&body).ok()?;
    json["upstream"]["pid"].as_u64()
}

#[test]
fn resident_memory_follows_a_growing_process() {
    let dir = tempfile::tempdir().unwrap();
    let mut grower = Grower::start(&link_to_self(dir.path(), "grow-by-pid"));
    let pid = grower.pid().to_string();
    let sidecar = Sidecar::start(
        &[
            "--no-gpu",
            "--upstream-pid",
            &pid,
            "--process-interval",
            "100ms",
        ],
        &[],
    );
    let before = sidecar.metrics_until("the child's memory", |m| {
        process_up(m) == Some(1.0) && resident(m).is_some()
    });
    let baseline = resident(&before).unwrap();
    assert!(before.value("magma_upstream_process_threads", &[]).unwrap() >= 1.0);
    assert!(
        before
            .value("magma_upstream_process_open_fds", &[])
            .unwrap()
            >= 3.0
    );
    assert!(
        before
            .value("magma_upstream_process_start_time_seconds", &[])
            .unwrap()
            > 1.0e9
    );
    assert!(
        before
            .value("magma_upstream_process_virtual_memory_bytes", &[])
            .unwrap()
            >= baseline
    );

    grower.grow();
    grower.grow();
    let expected = 2.0 * STEP as f64;
    let after = sidecar.metrics_until("the child's growth", |m| {
        resident(m).is_some_and(|r| r - baseline >= expected - 4.0 * MIB)
    });
    let grown = resident(&after).unwrap() - baseline;
    assert!(
        (expected - 4.0 * MIB..=expected + 8.0 * MIB).contains(&grown),
        "grew by {:.1} MiB, expected {:.1} MiB",
        grown / MIB,
        expected / MIB
    );
    assert_eq!(snapshot_pid(&sidecar), Some(u64::from(grower.pid())));

    grower.stop();
    sidecar.metrics_until("the child gone", |m| process_up(m) == Some(0.0));
}

#[test]
fn found_by_name_and_found_again_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let link = link_to_self(dir.path(), "fake-model-named");
    let sidecar = Sidecar::start(
        &[
            "--no-gpu",
            "--upstream-process-name",
            "fake-model-named",
            "--process-interval",
            "100ms",
        ],
        &[],
    );
    let m = sidecar.metrics_until("not found yet", |m| process_up(m).is_some());
    assert_eq!(process_up(&m), Some(0.0));

    let first = Grower::start(&link);
    let first_pid = u64::from(first.pid());
    sidecar.metrics_until("the first process", |m| process_up(m) == Some(1.0));
    assert_eq!(snapshot_pid(&sidecar), Some(first_pid));
    first.stop();
    sidecar.metrics_until("the first process gone", |m| process_up(m) == Some(0.0));

    let second = Grower::start(&link);
    let second_pid = u64::from(second.pid());
    let m = sidecar.metrics_until("the restarted process", |m| process_up(m) == Some(1.0));
    assert_eq!(snapshot_pid(&sidecar), Some(second_pid));
    assert_eq!(
        m.value("magma_upstream_process_restarts_total", &[]),
        Some(1.0)
    );
    second.stop();
}

//! Helpers shared by the resource tests: the fake NVML library, free ports,
//! the sidecar binary as a child process, and a /metrics reader.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// Compiles tests/fake_nvml/fake_nvml.c into `dir`, leaving out `omit`ted symbols.
pub fn build_fake_nvml(dir: &Path, omit: &[&str]) -> PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_nvml/fake_nvml.c");
    let output = dir.join("libfake-nvml.so");
    let compiler = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let mut command = Command::new(compiler);
    command.args(["-shared", "-fPIC", "-O2", "-Wall", "-Werror", "-o"]);
    command.arg(&output).arg(&source);
    for symbol in omit {
        command.arg(format!("-DOMIT_{symbol}"));
    }
    let status = command
        .status()
        .expect("a C compiler (cc) is needed to build the fake NVML");
    assert!(status.success(), "building the fake NVML failed");
    output
}

/// Writes the fake library's configuration atomically (the library re-reads
/// it when it changes, so it must never see half a file).
pub fn write_config(path: &Path, text: &str) {
    let temp = path.with_extension("tmp");
    std::fs::write(&temp, text).unwrap();
    std::fs::rename(&temp, path).unwrap();
}

/// A port nobody listens on right now.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// The sidecar binary, running.
pub struct Sidecar {
    child: Option<Child>,
    pub admin: SocketAddr,
    stderr_path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Sidecar {
    /// Starts the binary with `args` and `envs`; waits until /healthz answers.
    pub fn start(args: &[&str], envs: &[(&str, &str)]) -> Sidecar {
        let dir = tempfile::tempdir().unwrap();
        let stderr_path = dir.path().join("stderr.log");
        let admin: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let listen = format!("127.0.0.1:{}", free_port());
        let upstream = format!("http://127.0.0.1:{}", free_port());
        let mut command = Command::new(env!("CARGO_BIN_EXE_magma-monitor"));
        command
            .args(["--listen", &listen, "--admin-listen", &admin.to_string()])
            .args(["--upstream", &upstream, "--health-interval", "60s"])
            .args(args)
            .env_remove("NVIDIA_VISIBLE_DEVICES")
            .env("MAGMA_MONITOR_LOG_LEVEL", "info")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&stderr_path).unwrap());
        for (key, value) in envs {
            command.env(key, value);
        }
        let child = command.spawn().expect("start magma-monitor");
        let sidecar = Sidecar {
            child: Some(child),
            admin,
            stderr_path,
            _dir: dir,
        };
        wait_until(Duration::from_secs(20), || {
            get(admin, "/healthz").filter(|(status, _)| *status == 200)
        })
        .unwrap_or_else(|| panic!("sidecar did not come up: {}", sidecar.stderr()));
        sidecar
    }

    pub fn metrics(&self) -> Metrics {
        let (status, body) = get(self.admin, "/metrics").expect("GET /metrics");
        assert_eq!(status, 200);
        Metrics(body)
    }

    /// Waits until `check` holds for the current /metrics, returns them.
    /// The first scrape that passes `check` and is followed by another that
    /// passes it too; the later one is returned. The exporter renders
    /// counters, gauges and histograms one family after another, so a scrape
    /// that races a poll can show that poll's gauges without the counters the
    /// poll recorded just before them; the next scrape cannot.
    pub fn metrics_until(&self, what: &str, check: impl Fn(&Metrics) -> bool) -> Metrics {
        wait_until(Duration::from_secs(20), || {
            if !check(&self.metrics()) {
                return None;
            }
            let settled = self.metrics();
            check(&settled).then_some(settled)
        })
        .unwrap_or_else(|| {
            panic!(
                "timed out waiting for {what}\n--- metrics ---\n{}\n--- stderr ---\n{}",
                self.metrics().0,
                self.stderr()
            )
        })
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_path).unwrap_or_default()
    }

    /// Sends SIGTERM and waits for the exit.
    pub fn terminate(mut self) -> (ExitStatus, String) {
        let mut child = self.child.take().unwrap();
        // SAFETY: plain kill(2) on our own child.
        unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
        let status = wait_until(Duration::from_secs(20), || child.try_wait().unwrap())
            .unwrap_or_else(|| {
                let _ = child.kill();
                panic!("sidecar did not stop on SIGTERM")
            });
        (status, self.stderr())
    }
}

impl Drop for Sidecar {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Polls `f` every 50 ms until it gives a value or `timeout` passes.
pub fn wait_until<T>(timeout: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = f() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A GET over a fresh connection: (status, body).
pub fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut response = String::new();
    stream.read_to_string(&mut response).ok()?;
    let status = response.split(' ').nth(1)?.parse().ok()?;
    let (head, body) = response.split_once("\r\n\r\n")?;
    let body = if head
        .to_ascii_lowercase()
        .contains("transfer-encoding: chunked")
    {
        dechunk(body)
    } else {
        body.to_owned()
    };
    Some((status, body))
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let Ok(size) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        if size == 0 || rest.len() < size {
            break;
        }
        out.push_str(&rest[..size]);
        body = rest[size..].trim_start_matches("\r\n");
    }
    out
}

/// Label pairs of one series.
pub type Labels = Vec<(String, String)>;

/// A Prometheus text exposition.
pub struct Metrics(pub String);

impl Metrics {
    /// The value of the one series of `name` whose labels include `labels`.
    pub fn value(&self, name: &str, labels: &[(&str, &str)]) -> Option<f64> {
        let mut found = self.series(name, labels);
        assert!(
            found.len() <= 1,
            "{name} {labels:?} matches {} series",
            found.len()
        );
        found.pop().map(|(_, v)| v)
    }

    /// Every series of `name` whose labels include `labels`.
    pub fn series(&self, name: &str, labels: &[(&str, &str)]) -> Vec<(Labels, f64)> {
        self.0
            .lines()
            .filter(|l| !l.starts_with('#'))
            .filter_map(parse_line)
            .filter(|(n, l, _)| {
                n == name
                    && labels
                        .iter()
                        .all(|(k, v)| l.iter().any(|(lk, lv)| lk == k && lv == v))
            })
            .map(|(_, l, v)| (l, v))
            .collect()
    }
}

fn parse_line(line: &str) -> Option<(String, Labels, f64)> {
    let (series, value) = line.rsplit_once(' ')?;
    let value: f64 = value.parse().ok()?;
    let Some((name, rest)) = series.split_once('{') else {
        return Some((series.to_owned(), Vec::new(), value));
    };
    let mut labels = Vec::new();
    let mut rest = rest.strip_suffix('}')?;
    while let Some((key, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, escaped)) = chars.next() {
                        value.push(if escaped == 'n' { '\n' } else { escaped });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        labels.push((key.trim_start_matches(',').to_owned(), value));
        rest = &after[end..];
    }
    Some((name.to_owned(), labels, value))
}

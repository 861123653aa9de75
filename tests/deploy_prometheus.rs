//! A real Prometheus server (Debian's `prometheus`) loads the shipped rules,
//! scrapes the running sidecar's admin port while traffic flows through it,
//! and a query of the recording rules returns data; no rule fails to evaluate.

mod deploy_support;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use deploy_support::*;

fn prometheus_binary() -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    candidates
        .into_iter()
        .map(|dir| dir.join("prometheus"))
        .find(|p| p.is_file())
        .expect("the `prometheus` server is not installed (Debian package `prometheus`; scripts/install-system-packages.sh installs it)")
}

fn start_prometheus(dir: &Path, target: SocketAddr) -> (Running, SocketAddr) {
    let rules = repo().join("deploy/prometheus/rules.yml");
    let config = dir.join("prometheus.yml");
    std::fs::write(
        &config,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nrule_files:\n  - {}\nscrape_configs:\n  - job_name: magma-monitor\n    static_configs:\n      - targets: ['{target}']\n",
            rules.display()
        ),
    )
    .expect("write prometheus.yml");
    let web: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let log = dir.join("prometheus.log");
    let child = Command::new(prometheus_binary())
        .arg(format!("--config.file={}", config.display()))
        .arg(format!(
            "--storage.tsdb.path={}",
            dir.join("tsdb").display()
        ))
        .arg(format!("--web.listen-address={web}"))
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("prometheus log"))
        .spawn()
        .expect("start prometheus");
    let mut running = Running {
        child,
        name: "prometheus",
        log,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while http_get(web, "/-/ready").map(|r| r.status) != Ok(200) {
        running.assert_alive();
        assert!(Instant::now() < deadline, "prometheus did not become ready");
        thread::sleep(Duration::from_millis(100));
    }
    (running, web)
}

/// `/api/v1/query` result vector.
fn query(web: SocketAddr, promql: &str) -> Vec<serde_json::Value> {
    query_json(web, promql)["data"]["result"]
        .as_array()
        .cloned()
        .unwrap_or_default()
}

/// The whole `/api/v1/query` answer (status, errorType, error, data).
fn query_json(web: SocketAddr, promql: &str) -> serde_json::Value {
    let encoded: String = promql
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect();
    http_get(web, &format!("/api/v1/query?query={encoded}"))
        .ok()
        .and_then(|r| serde_json::from_str(&r.body).ok())
        .unwrap_or_default()
}

/// Every panel query of the dashboard, with its variables replaced the way
/// Grafana would for "All" and a 15 s scrape interval.
fn dashboard_queries() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("deploy/grafana/magma-monitor.json"))
        .expect("read the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&text).expect("dashboard JSON");
    let mut out = Vec::new();
    let mut panels: Vec<&serde_json::Value> = dashboard["panels"]
        .as_array()
        .into_iter()
        .flatten()
        .collect();
    while let Some(panel) = panels.pop() {
        panels.extend(panel["panels"].as_array().into_iter().flatten());
        for target in panel["targets"].as_array().into_iter().flatten() {
            if let Some(expr) = target["expr"].as_str() {
                let promql = expr
                    .replace("$__rate_interval", "1m")
                    .replace("$job", ".*")
                    .replace("$instance", ".*")
                    .replace("$pod", ".*");
                out.push((panel["title"].as_str().unwrap_or("?").to_string(), promql));
            }
        }
    }
    out
}

fn value_of(sample: &serde_json::Value) -> f64 {
    sample["value"][1]
        .as_str()
        .and_then(|v| v.parse().ok())
        .unwrap_or(f64::NAN)
}

#[test]
fn prometheus_scrapes_the_sidecar_and_evaluates_the_shipped_rules() {
    let dir = tempfile::tempdir().expect("temp dir");
    let upstream = start_upstream();
    let mut sidecar = start_sidecar(upstream.addr, dir.path(), &[]);
    let (mut prometheus, web) = start_prometheus(dir.path(), sidecar.admin);

    // Traffic through the proxy for as long as the test runs (bounded).
    let stop = Arc::new(AtomicBool::new(false));
    let traffic = {
        let stop = stop.clone();
        let proxy = sidecar.proxy;
        thread::spawn(move || {
            let mut failures = Vec::new();
            for _ in 0..600 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                failures.extend(send_traffic(proxy, 3).1);
                thread::sleep(Duration::from_millis(100));
            }
            failures
        })
    };

    let deadline = Instant::now() + Duration::from_secs(60);
    // 1. The target is scraped.
    loop {
        sidecar.process.assert_alive();
        prometheus.assert_alive();
        let up = query(web, r#"up{job="magma-monitor"}"#);
        if up.first().map(value_of) == Some(1.0) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "prometheus never scraped the sidecar: up = {up:?}\n{}",
            prometheus.log_tail()
        );
        thread::sleep(Duration::from_millis(250));
    }
    assert!(
        !query(web, "magma_build_info").is_empty(),
        "scraped, but magma_build_info is not in Prometheus"
    );

    // 2. Every panel query of the dashboard is PromQL that Prometheus accepts.
    let queries = dashboard_queries();
    assert!(
        queries.len() > 20,
        "only {} dashboard queries",
        queries.len()
    );
    let rejected: Vec<String> = queries
        .iter()
        .filter_map(|(title, promql)| {
            let answer = query_json(web, promql);
            (answer["status"] != "success")
                .then(|| format!("{title}: {promql}: {}", answer["error"]))
        })
        .collect();
    assert!(
        rejected.is_empty(),
        "dashboard queries Prometheus rejects:\n  {}",
        rejected.join("\n  ")
    );

    // 3. The recording rules produce data from the scraped series.
    let rules = [
        "magma:requests:rate5m",
        "magma:request_duration_seconds:p95_5m",
    ];
    let (ok, last) = loop {
        let last = rules
            .iter()
            .map(|rule| (*rule, query(web, rule)))
            .collect::<Vec<_>>();
        let ready = last.iter().all(|(rule, result)| {
            result.iter().any(|s| {
                let v = value_of(s);
                v.is_finite() && (*rule != "magma:requests:rate5m" || v > 0.0)
            })
        });
        if ready || Instant::now() > deadline {
            break (ready, last);
        }
        thread::sleep(Duration::from_millis(500));
    };
    stop.store(true, Ordering::Relaxed);
    let failures = traffic.join().unwrap_or_default();
    let exported = http_get(sidecar.admin, "/metrics")
        .map(|r| r.body)
        .unwrap_or_default();
    assert!(
        ok,
        "recording rules returned no data: {last:?}\ntraffic failures:\n  {}\nexported series: {:?}",
        summarize(&failures),
        exported_names(&exported)
    );

    // 4. No rule failed to evaluate.
    let rules = http_get(web, "/api/v1/rules").expect("GET /api/v1/rules");
    let rules: serde_json::Value = serde_json::from_str(&rules.body).expect("rules JSON");
    let mut bad = Vec::new();
    for group in rules["data"]["groups"].as_array().into_iter().flatten() {
        for rule in group["rules"].as_array().into_iter().flatten() {
            if rule["health"] != "ok" && rule["health"] != "unknown" {
                bad.push(format!("{}: {}", rule["name"], rule["lastError"]));
            }
        }
    }
    assert!(bad.is_empty(), "rules failed to evaluate: {bad:?}");
}

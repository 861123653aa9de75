//! Every `magma_*` metric that the alert rules and the Grafana dashboard use is
//! declared in the catalogue (`src/telemetry.rs`) and really exported by the
//! binary after real traffic: no alert on a metric that does not exist, no
//! panel that can never show data.
//!
//! Until every area is merged, these fail and say which area each missing name
//! is expected from (see `deploy_support::area_of`).

mod deploy_support;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use deploy_support::*;
use magma_monitor::telemetry::{Kind, CATALOGUE};

/// The catalogue entry a used name refers to: itself, or the histogram whose
/// `_bucket` / `_sum` / `_count` series it is.
fn catalogued(name: &str) -> bool {
    if CATALOGUE.iter().any(|m| m.name == name) {
        return true;
    }
    ["_bucket", "_sum", "_count"].iter().any(|suffix| {
        name.strip_suffix(suffix).is_some_and(|base| {
            CATALOGUE
                .iter()
                .any(|m| m.name == base && m.kind == Kind::Histogram)
        })
    })
}

#[test]
fn the_name_scanner_finds_metric_names_and_skips_recording_rules() {
    let names = metric_names_in(
        "record: magma:requests:rate5m\nexpr: sum(rate(magma_requests_total[5m])) / x_magma_other + {magma_ready}",
    );
    let names: Vec<&str> = names.iter().map(String::as_str).collect();
    assert_eq!(names, ["magma_ready", "magma_requests_total"]);
}

#[test]
fn the_deploy_files_use_metrics() {
    let used = deploy_metric_names();
    // The guide's two alerts and the readiness alert at least.
    for name in [
        "magma_request_errors_total",
        "magma_request_duration_seconds_bucket",
        "magma_ready",
    ] {
        assert!(used.contains_key(name), "{name} is not used: {used:?}");
    }
}

#[test]
fn every_metric_in_the_rules_and_the_dashboard_is_in_the_catalogue() {
    let missing: BTreeMap<String, Vec<&str>> = deploy_metric_names()
        .into_iter()
        .filter(|(name, _)| !catalogued(name))
        .collect();
    assert!(
        missing.is_empty(),
        "metrics used by the rules or the dashboard but not in src/telemetry.rs CATALOGUE, by the area expected to add them:\n{}",
        by_area(&missing)
    );
}

#[test]
fn every_metric_in_the_rules_and_the_dashboard_is_exported_after_real_traffic() {
    let dir = tempfile::tempdir().expect("temp dir");
    let (nvml, nvml_config) = build_fake_nvml(dir.path());
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).expect("state dir");
    let upstream = start_upstream();
    // Settings of the analysis areas, small enough that a drift test, an
    // anomaly pass and a GPU poll happen within seconds.
    let env = [
        ("MAGMA_MONITOR_SAMPLE_RATE", "1".to_string()),
        ("MAGMA_MONITOR_DRIFT_REFERENCE_SIZE", "20".to_string()),
        ("MAGMA_MONITOR_DRIFT_WINDOW", "20".to_string()),
        ("MAGMA_MONITOR_DRIFT_PERMUTATIONS", "20".to_string()),
        ("MAGMA_MONITOR_DRIFT_ONLINE_WINDOW", "5".to_string()),
        ("MAGMA_MONITOR_DRIFT_TEST_EVERY", "10".to_string()),
        ("MAGMA_MONITOR_STATE_DIR", state.display().to_string()),
        ("MAGMA_MONITOR_NVML_LIB", nvml.display().to_string()),
        ("FAKE_NVML_CONFIG", nvml_config.display().to_string()),
        ("MAGMA_MONITOR_GPU_INTERVAL", "1s".to_string()),
        ("MAGMA_MONITOR_UPSTREAM_PID", std::process::id().to_string()),
        ("MAGMA_MONITOR_ANOMALY_INTERVAL", "1s".to_string()),
    ];
    let mut sidecar = start_sidecar(upstream.addr, dir.path(), &env);

    let (ids, mut failures) = send_traffic(sidecar.proxy, 60);
    // Feedback and ground truth for one answer (quality metrics).
    if let Some(id) = ids.first() {
        let feedback =
            format!(r#"{{"request_id":"{id}","rating":"down","comment":"wrong block"}}"#);
        let truth = format!(
            r#"{{"request_id":"{id}","text":"Move the gripper left and close it.","action":[0.0,-0.1,0.2,0.0,0.0,0.1,1.0]}}"#
        );
        for (path, body) in [("/api/feedback", feedback), ("/api/ground_truth", truth)] {
            match http(
                sidecar.admin,
                "POST",
                path,
                &[("content-type", "application/json")],
                body.as_bytes(),
            ) {
                Ok(r) if r.status / 100 == 2 => {}
                Ok(r) => failures.push(format!("POST {path}: {} {}", r.status, r.body)),
                Err(e) => failures.push(format!("POST {path}: {e}")),
            }
        }
    } else {
        failures.push("no answer carried an x-request-id to give feedback on".into());
    }

    // Analysis runs off the request path: poll until every name shows up.
    let used = deploy_metric_names();
    let deadline = Instant::now() + Duration::from_secs(30);
    let missing = loop {
        sidecar.process.assert_alive();
        let exposition = http_get(sidecar.admin, "/metrics")
            .map(|r| r.body)
            .unwrap_or_default();
        let exported = exported_names(&exposition);
        let missing: BTreeMap<String, Vec<&str>> = used
            .iter()
            .filter(|(name, _)| !exported.contains(*name))
            .map(|(name, files)| (name.clone(), files.clone()))
            .collect();
        if missing.is_empty() || Instant::now() > deadline {
            break missing;
        }
        std::thread::sleep(Duration::from_millis(500));
    };
    assert!(
        missing.is_empty() && failures.is_empty(),
        "after real traffic, /metrics lacks names the rules or the dashboard use, by the area expected to export them:\n{}\nrequests that did not go as expected:\n  {}\nsidecar log:\n{}",
        by_area(&missing),
        summarize(&failures),
        sidecar.process.log_tail()
    );
}

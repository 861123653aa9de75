//! The GPU collector against a fake NVML library built from
//! tests/fake_nvml/fake_nvml.c, loaded by the real binary through --nvml-lib.

mod resources_support;
use resources_support as support;

use std::path::PathBuf;

use support::{build_fake_nvml, write_config, Metrics, Sidecar};

const GIB: u64 = 1 << 30;

/// Two GPUs: GPU 0 with every counter and two processes, GPU 1 without ECC
/// and without processes.
fn two_gpus() -> String {
    format!(
        "count=2
driver=550.54.15
cuda=12040
gpu0.name=NVIDIA H100 80GB HBM3
gpu0.uuid=GPU-aaaaaaaa-0000-0000-0000-000000000000
gpu0.util_gpu=57
gpu0.util_mem=31
gpu0.mem_total={total}
gpu0.mem_used={used}
gpu0.mem_free={free}
gpu0.mem_reserved={reserved}
gpu0.temp=64
gpu0.power_mw=245500
gpu0.power_limit_mw=700000
gpu0.sm_mhz=1980
gpu0.mem_mhz=2619
gpu0.energy_mj=123456789
gpu0.ecc_corrected=3
gpu0.ecc_uncorrected=1
gpu0.throttle=4
gpu0.pcie_replay=7
gpu0.procs=4242:{p1},4343:{p2}
gpu1.name=NVIDIA L4
gpu1.uuid=GPU-bbbbbbbb-0000-0000-0000-000000000000
gpu1.util_gpu=0
gpu1.util_mem=0
gpu1.mem_total={l4}
gpu1.mem_used=0
gpu1.mem_free={l4}
gpu1.mem_reserved=0
gpu1.temp=35
gpu1.power_mw=16000
gpu1.power_limit_mw=72000
gpu1.sm_mhz=210
gpu1.mem_mhz=405
gpu1.energy_mj=5000
gpu1.throttle=1
gpu1.pcie_replay=0
gpu1.procs=
",
        total = 80 * GIB,
        used = 17 * GIB,
        free = 62 * GIB,
        reserved = GIB,
        p1 = 16 * GIB,
        p2 = 512 << 20,
        l4 = 24 * GIB,
    )
}

struct Fake {
    dir: tempfile::TempDir,
    lib: PathBuf,
    config: PathBuf,
}

impl Fake {
    fn new(omit: &[&str], config: &str) -> Fake {
        let dir = tempfile::tempdir().unwrap();
        let lib = build_fake_nvml(dir.path(), omit);
        let config_path = dir.path().join("fake-nvml.conf");
        write_config(&config_path, config);
        Fake {
            dir,
            lib,
            config: config_path,
        }
    }

    fn start(&self, extra: &[&str], envs: &[(&str, &str)]) -> Sidecar {
        let lib = self.lib.to_str().unwrap();
        let mut args = vec!["--nvml-lib", lib, "--gpu-interval", "100ms"];
        args.extend_from_slice(extra);
        let mut all_envs = vec![("FAKE_NVML_CONFIG", self.config.to_str().unwrap())];
        all_envs.extend_from_slice(envs);
        let _ = &self.dir;
        Sidecar::start(&args, &all_envs)
    }
}

fn gpu(index: &'static str) -> [(&'static str, &'static str); 1] {
    [("gpu", index)]
}

fn up(m: &Metrics) -> Option<f64> {
    m.value("magma_gpu_up", &[])
}

#[test]
fn reads_every_counter_of_two_gpus() {
    let fake = Fake::new(&[], &two_gpus());
    let sidecar = fake.start(&[], &[]);
    let m = sidecar.metrics_until("two GPUs polled", |m| {
        up(m) == Some(1.0) && m.value("magma_gpu_processes", &gpu("1")).is_some()
    });
    let g0 = [
        ("gpu", "0"),
        ("uuid", "GPU-aaaaaaaa-0000-0000-0000-000000000000"),
        ("name", "NVIDIA H100 80GB HBM3"),
    ];
    let v = |name: &str| m.value(name, &g0);
    assert_eq!(v("magma_gpu_device_up"), Some(1.0));
    assert_eq!(v("magma_gpu_utilization_ratio"), Some(0.57));
    assert_eq!(v("magma_gpu_memory_utilization_ratio"), Some(0.31));
    assert_eq!(v("magma_gpu_memory_total_bytes"), Some((80 * GIB) as f64));
    assert_eq!(v("magma_gpu_memory_used_bytes"), Some((17 * GIB) as f64));
    assert_eq!(v("magma_gpu_memory_free_bytes"), Some((62 * GIB) as f64));
    assert_eq!(v("magma_gpu_memory_reserved_bytes"), Some(GIB as f64));
    assert_eq!(v("magma_gpu_temperature_celsius"), Some(64.0));
    assert_eq!(v("magma_gpu_power_watts"), Some(245.5));
    assert_eq!(v("magma_gpu_power_limit_watts"), Some(700.0));
    assert_eq!(v("magma_gpu_sm_clock_hertz"), Some(1.98e9));
    assert_eq!(v("magma_gpu_memory_clock_hertz"), Some(2.619e9));
    assert_eq!(v("magma_gpu_energy_joules_total"), Some(123_456.0));
    assert_eq!(v("magma_gpu_pcie_replays_total"), Some(7.0));
    let ecc = |t: &str| m.value("magma_gpu_ecc_errors_total", &[("gpu", "0"), ("type", t)]);
    assert_eq!(ecc("corrected"), Some(3.0));
    assert_eq!(ecc("uncorrected"), Some(1.0));
    // throttle=4 is SW power cap, nothing else.
    let throttled = m.series("magma_gpu_throttled", &gpu("0"));
    assert_eq!(throttled.len(), 9);
    for (labels, value) in throttled {
        let reason = &labels.iter().find(|(k, _)| k == "reason").unwrap().1;
        assert_eq!(
            value,
            if reason == "sw_power_cap" { 1.0 } else { 0.0 },
            "{reason}"
        );
    }
    assert_eq!(
        m.value(
            "magma_gpu_throttled",
            &[("gpu", "1"), ("reason", "gpu_idle")]
        ),
        Some(1.0)
    );
    // Two processes on GPU 0, none on GPU 1.
    assert_eq!(v("magma_gpu_processes"), Some(2.0));
    assert_eq!(
        v("magma_gpu_process_memory_bytes"),
        Some((16 * GIB + (512 << 20)) as f64)
    );
    assert_eq!(m.value("magma_gpu_processes", &gpu("1")), Some(0.0));
    assert_eq!(
        m.value("magma_gpu_process_memory_bytes", &gpu("1")),
        Some(0.0)
    );
    assert_eq!(
        m.value(
            "magma_gpu_info",
            &[
                ("gpu", "1"),
                ("name", "NVIDIA L4"),
                ("driver_version", "550.54.15"),
                ("cuda_version", "12.4")
            ]
        ),
        Some(1.0)
    );
    // GPU 1 has no ECC: both ECC counters are switched off once, not at every poll.
    assert_eq!(m.series("magma_gpu_ecc_errors_total", &gpu("1")).len(), 0);
    let later = sidecar.metrics_until("more polls", |m| {
        m.series("magma_gpu_poll_duration_seconds_count", &[])
            .first()
            .is_some_and(|(_, count)| *count >= 5.0)
    });
    assert_eq!(
        later.value(
            "magma_gpu_collect_errors_total",
            &[("kind", "not_supported")]
        ),
        Some(2.0)
    );

    let (status, body) = support::get(sidecar.admin, "/api/resources").unwrap();
    assert_eq!(status, 200);
    let json: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(json["gpu"]["up"], true);
    assert_eq!(json["gpu"]["devices"][0]["power_watts"], 245.5);
    assert_eq!(json["gpu"]["devices"][0]["processes"][1]["pid"], 4343);
    assert_eq!(
        json["gpu"]["devices"][1]["disabled_counters"],
        serde_json::json!(["ecc_corrected", "ecc_uncorrected"])
    );

    let (status, stderr) = sidecar.terminate();
    assert!(status.success(), "{stderr}");
}

#[test]
fn missing_library_degrades_and_retries() {
    let sidecar = Sidecar::start(
        &[
            "--nvml-lib",
            "/nonexistent/libnvidia-ml.so.1",
            "--gpu-interval",
            "100ms",
        ],
        &[],
    );
    let m = sidecar.metrics_until("several failed attempts", |m| {
        m.value(
            "magma_gpu_collect_errors_total",
            &[("kind", "library_missing")],
        )
        .is_some_and(|n| n >= 3.0)
    });
    assert_eq!(up(&m), Some(0.0));
    assert!(m.series("magma_gpu_utilization_ratio", &[]).is_empty());
    // The proxy side is alive, and the reason was logged once, not per retry.
    assert_eq!(support::get(sidecar.admin, "/healthz").unwrap().0, 200);
    let stderr = sidecar.stderr();
    assert_eq!(
        stderr.matches("GPU metrics unavailable").count(),
        1,
        "{stderr}"
    );
    assert!(stderr.contains("library_missing"), "{stderr}");
    let (status, stderr) = sidecar.terminate();
    assert!(status.success(), "{stderr}");
}

#[test]
fn init_error_is_counted_as_init_failed() {
    // 999 is NVML_ERROR_UNKNOWN.
    let fake = Fake::new(&[], &format!("init=999\n{}", two_gpus()));
    let sidecar = fake.start(&[], &[]);
    let m = sidecar.metrics_until("init failures", |m| {
        m.value("magma_gpu_collect_errors_total", &[("kind", "init_failed")])
            .is_some_and(|n| n >= 2.0)
    });
    assert_eq!(up(&m), Some(0.0));
    let (status, stderr) = sidecar.terminate();
    assert!(status.success(), "{stderr}");
}

#[test]
fn driver_not_loaded_then_loaded() {
    // 9 is NVML_ERROR_DRIVER_NOT_LOADED.
    let fake = Fake::new(&[], &format!("init=9\n{}", two_gpus()));
    let sidecar = fake.start(&[], &[]);
    let m = sidecar.metrics_until("driver_not_loaded", |m| {
        m.value(
            "magma_gpu_collect_errors_total",
            &[("kind", "driver_not_loaded")],
        )
        .is_some_and(|n| n >= 1.0)
    });
    assert_eq!(up(&m), Some(0.0));
    // The driver comes up: the retry with backoff finds it.
    write_config(&fake.config, &two_gpus());
    let m = sidecar.metrics_until("recovery", |m| up(m) == Some(1.0));
    assert_eq!(
        m.value("magma_gpu_temperature_celsius", &gpu("0")),
        Some(64.0)
    );
    assert!(sidecar.stderr().contains("GPU metrics available again"));
}

#[test]
fn no_gpu_means_down_not_failure() {
    let fake = Fake::new(&[], "count=0\n");
    let sidecar = fake.start(&[], &[]);
    let m = sidecar.metrics_until("no_device", |m| {
        m.value("magma_gpu_collect_errors_total", &[("kind", "no_device")])
            .is_some()
    });
    assert_eq!(up(&m), Some(0.0));
}

#[test]
fn one_lost_gpu_leaves_the_other_polled() {
    let fake = Fake::new(&[], &two_gpus());
    let sidecar = fake.start(&[], &[]);
    sidecar.metrics_until("both GPUs", |m| {
        m.value("magma_gpu_device_up", &gpu("1")) == Some(1.0)
    });
    let lost = two_gpus().replace("gpu0.temp=64", "gpu0.temp=71") + "gpu1.lost=1\n";
    write_config(&fake.config, &lost);
    let m = sidecar.metrics_until("GPU 1 lost, GPU 0 still read", |m| {
        m.value("magma_gpu_device_up", &gpu("1")) == Some(0.0)
            && m.value("magma_gpu_temperature_celsius", &gpu("0")) == Some(71.0)
    });
    assert_eq!(up(&m), Some(1.0));
    assert_eq!(m.value("magma_gpu_device_up", &gpu("0")), Some(1.0));
    assert!(m
        .value("magma_gpu_collect_errors_total", &[("kind", "gpu_lost")])
        .is_some_and(|n| n >= 1.0));
    // The GPU comes back after a reset: it is polled again.
    write_config(&fake.config, &two_gpus());
    sidecar.metrics_until("GPU 1 back", |m| {
        m.value("magma_gpu_device_up", &gpu("1")) == Some(1.0)
    });
}

#[test]
fn missing_symbols_disable_one_counter_and_do_not_break_shutdown() {
    let fake = Fake::new(&["nvmlDeviceGetPowerUsage", "nvmlShutdown"], &two_gpus());
    let sidecar = fake.start(&[], &[]);
    let m = sidecar.metrics_until("polls", |m| {
        m.series("magma_gpu_poll_duration_seconds_count", &[])
            .first()
            .is_some_and(|(_, count)| *count >= 3.0)
    });
    assert_eq!(up(&m), Some(1.0));
    assert!(m.series("magma_gpu_power_watts", &[]).is_empty());
    assert_eq!(
        m.value("magma_gpu_power_limit_watts", &gpu("0")),
        Some(700.0)
    );
    assert_eq!(
        m.value("magma_gpu_temperature_celsius", &gpu("1")),
        Some(35.0)
    );
    // Once per GPU, not once per poll.
    assert_eq!(
        m.value(
            "magma_gpu_collect_errors_total",
            &[("kind", "missing_symbol")]
        ),
        Some(2.0)
    );
    // nvml-wrapper's Drop would panic without nvmlShutdown; the sidecar must exit cleanly.
    let (status, stderr) = sidecar.terminate();
    assert!(status.success(), "{stderr}");
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn only_selected_gpus_are_exported() {
    let fake = Fake::new(&[], &two_gpus());
    let by_flag = fake.start(
        &["--gpu-devices", "GPU-bbbbbbbb-0000-0000-0000-000000000000"],
        &[],
    );
    let m = by_flag.metrics_until("GPU 1", |m| {
        m.value("magma_gpu_device_up", &gpu("1")).is_some()
    });
    assert!(m.series("magma_gpu_device_up", &gpu("0")).is_empty());
    drop(by_flag);

    // NVIDIA_VISIBLE_DEVICES by index, in a container that sees both GPUs.
    let by_env = fake.start(&[], &[("NVIDIA_VISIBLE_DEVICES", "0")]);
    let m = by_env.metrics_until("GPU 0", |m| {
        m.value("magma_gpu_device_up", &gpu("0")).is_some()
    });
    assert!(m.series("magma_gpu_device_up", &gpu("1")).is_empty());
}

#[test]
fn gpu_and_process_metrics_pass_promtool() {
    let fake = Fake::new(&[], &two_gpus());
    let me = std::process::id().to_string();
    let sidecar = fake.start(&["--upstream-pid", &me, "--process-interval", "100ms"], &[]);
    let m = sidecar.metrics_until("GPU and process metrics", |m| {
        up(m) == Some(1.0) && m.value("magma_upstream_process_up", &[]) == Some(1.0)
    });
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("promtool (scripts/install-system-packages.sh installs it)");
    use std::io::Write;
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(m.0.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

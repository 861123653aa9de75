//! Cost of one resource poll: the GPU collector against the fake NVML library
//! (tests/fake_nvml/fake_nvml.c, two GPUs, every counter), and the upstream
//! process collector reading this process from /proc. Metrics are recorded
//! into a real Prometheus recorder, as in the binary.
//!
//! Run: `cargo bench --bench resources`

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, Criterion};
use magma_monitor::resources::gpu::pid_map::PidView;
use magma_monitor::resources::gpu::poll::{GpuCollector, GpuConfig};
use magma_monitor::resources::gpu::select::Selection;
use magma_monitor::resources::upstream::{Target, UpstreamCollector};
use magma_monitor::resources::{gpu, snapshot};
use magma_monitor::telemetry;

const CONFIG: &str = "count=2
gpu0.name=NVIDIA H100 80GB HBM3
gpu0.uuid=GPU-aaaaaaaa-0000-0000-0000-000000000000
gpu0.util_gpu=57
gpu0.util_mem=31
gpu0.mem_total=85899345920
gpu0.mem_used=18253611008
gpu0.mem_free=66571993088
gpu0.mem_reserved=1073741824
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
gpu0.procs=4242:17179869184
gpu1.name=NVIDIA H100 80GB HBM3
gpu1.uuid=GPU-bbbbbbbb-0000-0000-0000-000000000000
gpu1.util_gpu=12
gpu1.util_mem=3
gpu1.mem_total=85899345920
gpu1.mem_used=1073741824
gpu1.mem_free=84825604096
gpu1.mem_reserved=1073741824
gpu1.temp=41
gpu1.power_mw=98000
gpu1.power_limit_mw=700000
gpu1.sm_mhz=1410
gpu1.mem_mhz=2619
gpu1.energy_mj=5000000
gpu1.ecc_corrected=0
gpu1.ecc_uncorrected=0
gpu1.throttle=1
gpu1.pcie_replay=0
gpu1.procs=
";

fn fake_nvml(dir: &Path) -> std::path::PathBuf {
    let source = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fake_nvml/fake_nvml.c");
    let lib = dir.join("libfake-nvml.so");
    let status = Command::new(std::env::var("CC").unwrap_or_else(|_| "cc".into()))
        .args(["-shared", "-fPIC", "-O2", "-o"])
        .arg(&lib)
        .arg(&source)
        .status()
        .expect("a C compiler (cc) builds the fake NVML");
    assert!(status.success());
    lib
}

fn polls(c: &mut Criterion) {
    let dir = tempfile::tempdir().unwrap();
    let lib = fake_nvml(dir.path());
    let config = dir.path().join("fake-nvml.conf");
    std::fs::write(&config, CONFIG).unwrap();
    std::env::set_var("FAKE_NVML_CONFIG", &config);

    let (recorder, _handle) =
        telemetry::build_recorder(&telemetry::Buckets::default()).expect("recorder");
    metrics::with_local_recorder(&recorder, || {
        let mut collector = GpuCollector::open(GpuConfig {
            lib_path: Some(lib.clone().into_os_string()),
            selection: Selection::All,
            pid_view: PidView::Unmapped,
            interval: Duration::from_secs(5),
        })
        .expect("fake NVML opens");
        let shared = snapshot::shared();
        c.bench_function("gpu_poll_two_fake_gpus", |b| {
            b.iter(|| gpu::poll_once(&mut collector, &shared).expect("poll"))
        });

        let mut upstream = UpstreamCollector::new(Target::Pid(std::process::id()));
        c.bench_function("upstream_process_poll", |b| {
            b.iter(|| assert!(upstream.poll().up))
        });
    });
}

criterion_group! {
    name = benches;
    config = Criterion::default().measurement_time(Duration::from_secs(5));
    targets = polls
}
criterion_main!(benches);

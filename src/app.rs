//! Wiring of the `proxy` command: metrics, admin server, health poller,
//! collectors, analysis and the proxy listener, then graceful shutdown.

use std::sync::Arc;
use std::time::Instant;

use crate::admin::{self, AdminState};
use crate::config::{ProxyArgs, UpstreamProtocol};
use crate::health::Health;
use crate::proxy::forward::{ForwardSettings, ProxyContext};
use crate::proxy::forwarding::ForwardingPolicy;
use crate::proxy::listener::{self, ListenerSettings};
use crate::proxy::metrics::RequestMetrics;
use crate::proxy::stats::RequestStats;
use crate::proxy::tap::PayloadContext;
use crate::proxy::upstream::Upstream;
use crate::shutdown::{termination_signal, Shutdown};
use crate::telemetry;

/// The multi-threaded runtime every command runs on; on failure, prints why
/// (prefixed with `command`) and gives the exit code.
pub fn runtime(command: &str) -> Result<tokio::runtime::Runtime, i32> {
    runtime_with_workers(command, None)
}

/// [`runtime`] with `workers` worker threads (tokio's default when `None`).
///
/// The proxy stays on the multi-threaded runtime even with one worker: the
/// single-threaded one measured about 7 % more small requests a second but
/// 10–20 % fewer 1 MiB uploads (README, Performance), and image uploads are
/// what a Magma sidecar carries.
fn runtime_with_workers(
    command: &str,
    workers: Option<usize>,
) -> Result<tokio::runtime::Runtime, i32> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(workers) = workers {
        builder.worker_threads(workers);
    }
    builder.enable_all().build().map_err(|error| {
        eprintln!("{command}: cannot start the runtime: {error}");
        1
    })
}

/// Runs the proxy until SIGTERM/SIGINT; returns the exit code.
pub fn run_proxy(args: ProxyArgs) -> i32 {
    if let Err(reason) = args.validate() {
        eprintln!("magma-monitor: {reason}");
        return 2;
    }
    if let Err(reason) = crate::logging::init(&args.log) {
        eprintln!("magma-monitor: {reason}");
        return 2;
    }
    // Without the flag, tokio's default: TOKIO_WORKER_THREADS, else the CPUs
    // this process may use (a cgroup CPU quota counted, so a sidecar limited
    // to one CPU gets one worker).
    let workers = args.net.worker_threads.map(usize::from);
    let runtime = match runtime_with_workers("magma-monitor", workers) {
        Ok(runtime) => runtime,
        Err(code) => return code,
    };
    match runtime.block_on(serve(args, termination_signal())) {
        Ok(()) => 0,
        Err(reason) => {
            tracing::error!("{reason}");
            eprintln!("magma-monitor: {reason}");
            1
        }
    }
}

/// Runs the proxy until `stop` completes, then drains and returns.
pub async fn serve(
    args: ProxyArgs,
    stop: impl std::future::Future<Output = ()>,
) -> Result<(), String> {
    let started = Instant::now();
    let buckets = telemetry::Buckets {
        latency: args.net.latency_buckets.clone(),
    };
    let prometheus = telemetry::install(&buckets)?;
    let (shutdown, signal) = Shutdown::new();

    let health = Arc::new(Health::default());

    // The drift engine belongs to the analysis worker, which feeds it
    // samples (`DriftEngine::observe`) and polls it; the admin server reads
    // its handle.
    // Without payload analysis no sample ever reaches the engine: off, so
    // /api/drift says so instead of collecting a reference forever.
    let drift_engine = if args.drift.no_drift || args.sampling.no_payload_analysis {
        None
    } else {
        let mut engine =
            crate::drift::DriftEngine::new(crate::drift::EngineConfig::from_args(&args.drift))?;
        crate::drift::feed::name_payload_features(&mut engine, args.sampling.feature_hash_dim);
        Some(engine)
    };
    let drift_handle = drift_engine.as_ref().map(crate::drift::DriftEngine::handle);
    let stats = Arc::new(RequestStats::default());

    // Sampling and analysis: the proxy takes the classifier, sampler and
    // sender; the analysis worker calls the hooks with each sample's features.
    let mut hooks: Vec<Arc<dyn crate::payload::SampleHook>> = Vec::new();
    if let Some(engine) = drift_engine {
        let (feed, _thread) = crate::drift::feed::spawn(engine, args.sampling.sample_queue)
            .map_err(|e| format!("cannot start the drift thread: {e}"))?;
        hooks.push(Arc::new(feed));
    }
    let analysis =
        crate::payload::start_analysis(&args.sampling, hooks).map_err(|e| e.to_string())?;
    let quality = Arc::new(crate::quality::QualityMonitor::new(args.quality.config()));
    let payload = Arc::new(PayloadContext {
        classifier: analysis.classifier.clone(),
        sampler: analysis.sampler.clone(),
        sender: analysis.sender.clone(),
        default_model: leak(&args.net.model_type),
        allowed_models: args.net.allowed_models.iter().map(|m| leak(m)).collect(),
        quality: Some(quality.clone()),
        metrics: crate::payload::PayloadMetrics::default(),
    });

    let admin_listener = tokio::net::TcpListener::bind(args.net.admin_listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on --admin-listen {}: {e}",
                args.net.admin_listen
            )
        })?;
    let resources = crate::resources::start(&args.resources, signal.clone());
    let anomalies = Arc::new(crate::anomaly::AnomalyHandle::new(args.anomaly.config()));
    crate::background::spawn_runtime(
        "magma-anomaly",
        crate::anomaly::run(
            anomalies.clone(),
            crate::anomaly::PrometheusSource::new(prometheus.clone()),
            args.anomaly.anomaly_interval,
            signal.clone(),
        ),
    )
    .map_err(|e| format!("cannot start the anomaly engine thread: {e}"))?;
    tokio::spawn(crate::anomaly::health_events::watch_health(
        anomalies.clone(),
        health.clone(),
        args.net.health_interval,
        signal.clone(),
    ));
    let admin_state = Arc::new(AdminState {
        prometheus,
        health: health.clone(),
        stats: stats.clone(),
        started,
        upstream: args.net.upstream.to_string(),
        resources: resources.snapshot.clone(),
        drift: drift_handle,
        samples: Some(analysis.ring.clone()),
        admin_token: args.net.admin_token.clone(),
        quality: Some(quality),
        anomalies: Some(anomalies),
        timeseries: Default::default(),
    });
    // The admin server outlives the drain, so probes see `/readyz` turn false.
    let (admin_shutdown, admin_signal) = Shutdown::new();
    // The bound addresses, not the flags: `--listen 127.0.0.1:0` picks a free port.
    let admin_addr = local_addr(&admin_listener, args.net.admin_listen);
    let admin_task = tokio::spawn(admin::serve(admin_listener, admin_state, admin_signal));

    let health_uri = crate::proxy::upstream_uri(&args.net.upstream, &args.net.upstream_health_path)
        .map_err(|e| format!("--upstream-health-path: {e}"))?;
    tokio::spawn(crate::health::poll(
        health.clone(),
        health_uri,
        args.net.health_interval,
        args.net
            .connect_timeout
            .max(std::time::Duration::from_secs(2)),
        signal.clone(),
    ));

    let proxy_listener = tokio::net::TcpListener::bind(args.net.listen)
        .await
        .map_err(|e| format!("cannot listen on --listen {}: {e}", args.net.listen))?;
    let listen_addr = local_addr(&proxy_listener, args.net.listen);
    let upstream_version = match args.net.upstream_protocol {
        UpstreamProtocol::Http1 => http::Version::HTTP_11,
        UpstreamProtocol::H2c => http::Version::HTTP_2,
    };
    let context = Arc::new(ProxyContext {
        upstream: Upstream::new(
            &args.net.upstream,
            upstream_version,
            args.net.connect_timeout,
            args.net.preserve_header_case,
        ),
        settings: ForwardSettings {
            upstream: args.net.upstream.clone(),
            upstream_version,
            upstream_timeout: args.net.upstream_timeout,
            max_body_bytes: args.net.max_body_bytes,
            forwarding: ForwardingPolicy {
                enabled: !args.net.no_forwarded_headers,
                trusted: args.net.trusted_proxies.clone(),
                allow_underscore: args.net.allow_underscore_headers,
            },
            allowed_upgrades: args
                .net
                .allowed_upgrades
                .iter()
                .map(|protocol| protocol.trim().to_ascii_lowercase())
                .filter(|protocol| !protocol.is_empty())
                .collect(),
            model_type: leak(&args.net.model_type),
        },
        metrics: Arc::new(RequestMetrics::new()),
        stats: stats.clone(),
        health: health.clone(),
        // Without analysis the worker stays idle and the admin API answers
        // with empty samples and no predictions.
        payload: (!args.sampling.no_payload_analysis).then_some(payload),
    });
    if args.sampling.no_payload_analysis {
        tracing::info!("payload analysis is off: bodies are forwarded and counted, never read");
    }
    let listener_settings = ListenerSettings {
        header_read_timeout: args.net.header_read_timeout,
        max_header_bytes: usize::try_from(args.net.max_header_bytes).unwrap_or(usize::MAX),
        idle_timeout: args.net.idle_timeout,
        max_connections: args.net.max_connections,
        drain_timeout: args.net.drain_timeout,
        preserve_header_case: args.net.preserve_header_case,
    };
    let proxy_task = tokio::spawn(listener::serve(
        proxy_listener,
        context,
        listener_settings,
        signal.clone(),
    ));

    tracing::info!(
        listen = %listen_addr,
        upstream = %args.net.upstream,
        admin = %admin_addr,
        "magma-monitor started"
    );

    stop.await;
    tracing::info!("shutdown requested");
    health.start_draining();
    shutdown.trigger();
    let _ = proxy_task.await;
    admin_shutdown.trigger();
    let _ = admin_task.await;
    let _ = tokio::task::spawn_blocking(move || resources.join()).await;
    tracing::info!("stopped");
    Ok(())
}

fn local_addr(
    listener: &tokio::net::TcpListener,
    requested: std::net::SocketAddr,
) -> std::net::SocketAddr {
    listener.local_addr().unwrap_or(requested)
}

/// Label values must be `&'static str`; the few that come from flags are
/// leaked once at start.
fn leak(value: &str) -> &'static str {
    Box::leak(value.to_owned().into_boxed_str())
}

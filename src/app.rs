//! Wiring of the `proxy` command: metrics, admin server, health poller,
//! collectors, analysis and the proxy listener, then graceful shutdown.

use std::sync::Arc;
use std::time::Instant;

use crate::admin::{self, AdminState};
use crate::config::ProxyArgs;
use crate::health::Health;
use crate::proxy::stats::RequestStats;
use crate::shutdown::{termination_signal, Shutdown};
use crate::telemetry;

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
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(error) => {
            eprintln!("magma-monitor: cannot start the runtime: {error}");
            return 1;
        }
    };
    match runtime.block_on(serve(args)) {
        Ok(()) => 0,
        Err(reason) => {
            tracing::error!("{reason}");
            eprintln!("magma-monitor: {reason}");
            1
        }
    }
}

async fn serve(args: ProxyArgs) -> Result<(), String> {
    let started = Instant::now();
    let buckets = telemetry::Buckets {
        latency: args.net.latency_buckets.clone(),
    };
    let prometheus = telemetry::install(&buckets)?;
    let (shutdown, signal) = Shutdown::new();

    let health = Arc::new(Health::default());
    let stats = Arc::new(RequestStats::default());

    let admin_listener = tokio::net::TcpListener::bind(args.net.admin_listen)
        .await
        .map_err(|e| {
            format!(
                "cannot listen on --admin-listen {}: {e}",
                args.net.admin_listen
            )
        })?;
    let quality = Arc::new(crate::quality::QualityMonitor::new(args.quality.config()));
    let anomalies = Arc::new(crate::anomaly::AnomalyHandle::new(args.anomaly.config()));
    tokio::spawn(crate::anomaly::run(
        anomalies.clone(),
        crate::anomaly::PrometheusSource::new(prometheus.clone()),
        args.anomaly.anomaly_interval,
        signal.clone(),
    ));
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
        admin_token: args.net.admin_token.clone(),
        quality: Some(quality),
        anomalies: Some(anomalies),
    });
    let admin_task = tokio::spawn(admin::serve(admin_listener, admin_state, signal.clone()));

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

    tracing::info!(
        listen = %args.net.listen,
        upstream = %args.net.upstream,
        admin = %args.net.admin_listen,
        "magma-monitor started"
    );

    termination_signal().await;
    tracing::info!("shutdown requested");
    health.start_draining();
    shutdown.trigger();
    let _ = admin_task.await;
    Ok(())
}

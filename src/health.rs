//! Readiness: the upstream's health path, polled, and the draining flag.
//!
//! The sidecar is ready when the last poll of `--upstream-health-path`
//! answered 2xx and shutdown has not begun.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use serde::Serialize;

use crate::shutdown::ShutdownSignal;
use crate::telemetry;

/// Upstream health and draining state, shared by the poller, the proxy and `/readyz`.
#[derive(Debug, Default)]
pub struct Health {
    upstream_up: AtomicBool,
    draining: AtomicBool,
    checks: AtomicU64,
    last_check_unix_ms: AtomicU64,
    last_error: Mutex<Option<String>>,
    /// Body of the last healthy answer (capped), e.g. `{"status":"healthy","model_loaded":true}`.
    last_body: Mutex<Option<String>>,
}

/// What `/readyz` and `/api/status` show.
#[derive(Debug, Clone, Serialize)]
pub struct HealthSnapshot {
    pub ready: bool,
    pub upstream_up: bool,
    pub draining: bool,
    pub checks: u64,
    pub last_check_unix_ms: u64,
    pub last_error: Option<String>,
    pub upstream_health: Option<serde_json::Value>,
}

const MAX_HEALTH_BODY: usize = 4096;

impl Health {
    pub fn is_ready(&self) -> bool {
        self.upstream_up.load(Ordering::Relaxed) && !self.draining.load(Ordering::Relaxed)
    }

    pub fn is_draining(&self) -> bool {
        self.draining.load(Ordering::Relaxed)
    }

    /// Marks the sidecar as draining: readiness turns false at once.
    pub fn start_draining(&self) {
        self.draining.store(true, Ordering::Relaxed);
        self.publish();
    }

    pub fn snapshot(&self) -> HealthSnapshot {
        let body = self.last_body.lock().ok().and_then(|b| b.clone());
        HealthSnapshot {
            ready: self.is_ready(),
            upstream_up: self.upstream_up.load(Ordering::Relaxed),
            draining: self.is_draining(),
            checks: self.checks.load(Ordering::Relaxed),
            last_check_unix_ms: self.last_check_unix_ms.load(Ordering::Relaxed),
            last_error: self.last_error.lock().ok().and_then(|e| e.clone()),
            upstream_health: body.and_then(|b| serde_json::from_str(&b).ok()),
        }
    }

    fn record(&self, result: Result<String, String>) {
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_millis() as u64)
            .unwrap_or(0);
        self.checks.fetch_add(1, Ordering::Relaxed);
        self.last_check_unix_ms.store(now, Ordering::Relaxed);
        let was_up = self.upstream_up.load(Ordering::Relaxed);
        match result {
            Ok(body) => {
                self.upstream_up.store(true, Ordering::Relaxed);
                if let Ok(mut slot) = self.last_error.lock() {
                    *slot = None;
                }
                if let Ok(mut slot) = self.last_body.lock() {
                    *slot = Some(body);
                }
                if !was_up {
                    tracing::info!("upstream is healthy");
                }
            }
            Err(error) => {
                self.upstream_up.store(false, Ordering::Relaxed);
                if was_up || self.checks.load(Ordering::Relaxed) == 1 {
                    tracing::warn!(%error, "upstream is not healthy");
                }
                if let Ok(mut slot) = self.last_error.lock() {
                    *slot = Some(error);
                }
            }
        }
        self.publish();
    }

    fn publish(&self) {
        metrics::gauge!(telemetry::UPSTREAM_UP).set(f64::from(u8::from(
            self.upstream_up.load(Ordering::Relaxed),
        )));
        metrics::gauge!(telemetry::READY).set(f64::from(u8::from(self.is_ready())));
    }
}

/// Polls `health_uri` every `interval` until shutdown.
pub async fn poll(
    health: std::sync::Arc<Health>,
    health_uri: http::Uri,
    interval: Duration,
    timeout: Duration,
    mut shutdown: ShutdownSignal,
) {
    let client: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
        .pool_max_idle_per_host(1)
        .build_http();
    loop {
        let result = check_once(&client, &health_uri, timeout).await;
        let label = match &result {
            Ok(_) => "healthy",
            Err(CheckError::Status(_)) => "unhealthy",
            Err(_) => "unreachable",
        };
        metrics::counter!(telemetry::UPSTREAM_HEALTH_CHECKS, "result" => label).increment(1);
        health.record(result.map_err(|e| e.to_string()));
        tokio::select! {
            _ = tokio::time::sleep(interval) => {}
            _ = shutdown.recv() => return,
        }
    }
}

#[derive(Debug, thiserror::Error)]
enum CheckError {
    #[error("health check answered {0}")]
    Status(http::StatusCode),
    #[error("health check failed: {0}")]
    Request(String),
    #[error("health check timed out after {0:?}")]
    Timeout(Duration),
}

async fn check_once(
    client: &Client<hyper_util::client::legacy::connect::HttpConnector, Empty<Bytes>>,
    uri: &http::Uri,
    timeout: Duration,
) -> Result<String, CheckError> {
    let attempt = async {
        let response = client
            .get(uri.clone())
            .await
            .map_err(|e| CheckError::Request(crate::proxy::error::source_chain(&e)))?;
        let status = response.status();
        let body = response
            .into_body()
            .collect()
            .await
            .map_err(|e| CheckError::Request(e.to_string()))?
            .to_bytes();
        if !status.is_success() {
            return Err(CheckError::Status(status));
        }
        let end = body.len().min(MAX_HEALTH_BODY);
        Ok(String::from_utf8_lossy(&body[..end]).into_owned())
    };
    tokio::time::timeout(timeout, attempt)
        .await
        .map_err(|_| CheckError::Timeout(timeout))?
}

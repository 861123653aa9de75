//! The admin server: `/metrics`, `/healthz`, `/readyz`, the JSON API and the
//! dashboard, on a port of its own so it never shadows a model route.

pub mod auth;
mod body;
mod dashboard;
mod json;
mod quality_routes;
mod resources;
mod samples;
mod status;
pub mod timeseries;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::net::TcpListener;

use crate::health::Health;
use crate::proxy::stats::RequestStats;
use crate::shutdown::ShutdownSignal;

pub use json::json_response;

/// Everything the admin routes read.
pub struct AdminState {
    pub prometheus: crate::recorder::MetricsHandle,
    pub health: Arc<Health>,
    pub stats: Arc<RequestStats>,
    pub started: Instant,
    pub upstream: String,
    /// Latest GPU and upstream-process readings (`/api/resources`).
    pub resources: crate::resources::SharedResources,
    /// The drift engine's handle; `None` when drift is off.
    pub drift: Option<crate::drift::DriftHandle>,
    /// Newest analysed samples for `/api/samples` (`None` until analysis is wired).
    pub samples: Option<Arc<crate::payload::SampleRing>>,
    /// `--admin-token`: required as a bearer token by the write routes when set.
    pub admin_token: Option<String>,
    /// Output quality, feedback and ground truth (None: routes answer 503).
    pub quality: Option<Arc<crate::quality::QualityMonitor>>,
    /// Anomaly engine (None: `/api/anomalies` answers 503).
    pub anomalies: Option<Arc<crate::anomaly::AnomalyHandle>>,
    /// One point a second for the dashboard, sampled from the registry.
    pub timeseries: timeseries::TimeSeries,
}

impl AdminState {
    /// A state with only the metrics attached; set the other parts with
    /// struct update syntax (`AdminState { drift, ..AdminState::new(..) }`).
    pub fn new(prometheus: crate::recorder::MetricsHandle, upstream: String) -> Self {
        Self {
            prometheus,
            health: Default::default(),
            stats: Default::default(),
            started: Instant::now(),
            upstream,
            resources: Default::default(),
            drift: None,
            samples: None,
            admin_token: None,
            quality: None,
            anomalies: None,
            timeseries: Default::default(),
        }
    }
}

/// Serves the admin routes until shutdown.
pub async fn serve(listener: TcpListener, state: Arc<AdminState>, mut shutdown: ShutdownSignal) {
    if let Err(error) = crate::background::spawn_runtime(
        "magma-timeseries",
        timeseries::run(state.clone(), shutdown.clone()),
    ) {
        tracing::warn!(%error, "cannot start the dashboard time series thread");
    }
    loop {
        let (stream, _peer): (_, SocketAddr) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(error) => {
                    tracing::warn!(%error, "admin accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = shutdown.recv() => break,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let state = state.clone();
                async move { Ok::<_, Infallible>(route(req, &state).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "admin connection ended with an error");
            }
        });
    }
}

async fn route(req: Request<Incoming>, state: &AdminState) -> Response<Full<Bytes>> {
    let path = req.uri().path().to_owned();
    let method = req.method().clone();
    match (&method, path.as_str()) {
        (&Method::GET, "/metrics") => metrics(state),
        (&Method::GET, "/healthz") => {
            json_response(StatusCode::OK, &serde_json::json!({"status": "alive"}))
        }
        (&Method::GET, "/readyz") => readiness(state),
        (&Method::GET, "/api/status") => status::status(state),
        (&Method::GET, "/api/resources") => resources::resources(state),
        (&Method::GET, "/api/drift") => crate::drift::api::get_drift(state.drift.as_ref()),
        (&Method::POST, "/api/drift/reference") => {
            crate::drift::api::post_reference(req, state.drift.as_ref()).await
        }
        (_, "/api/drift") => json::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route answers GET only",
        ),
        (_, "/api/drift/reference") => json::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route answers POST only",
        ),
        (&Method::GET, "/api/samples") => samples::samples(state, req.uri().query()),
        (&Method::GET, "/api/timeseries") => dashboard::timeseries(req.uri().query(), state),
        (&Method::GET, "/" | "/dashboard") => dashboard::page(),
        (&Method::GET, "/dashboard.js") => dashboard::script(),
        (&Method::GET, "/dashboard.css") => dashboard::stylesheet(),
        (&Method::POST, "/api/feedback") => {
            quality_routes::write(req, state, quality_routes::WriteRoute::Feedback).await
        }
        (&Method::GET, "/api/feedback") => quality_routes::recent_feedback(&req, state),
        (&Method::POST, "/api/ground_truth") => {
            quality_routes::write(req, state, quality_routes::WriteRoute::GroundTruth).await
        }
        (&Method::GET, "/api/anomalies") => quality_routes::anomalies(&req, state),
        (_, "/api/feedback" | "/api/ground_truth" | "/api/anomalies") => json::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "feedback answers GET and POST, ground_truth POST, anomalies GET",
        ),
        (
            _,
            "/metrics" | "/healthz" | "/readyz" | "/api/status" | "/api/resources" | "/api/samples"
            | "/api/timeseries",
        ) => json::error(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "this route answers GET only",
        ),
        _ => json::error(StatusCode::NOT_FOUND, "not_found", "no such admin route"),
    }
}

/// The full Prometheus text exposition, as `/metrics` serves it (the
/// dashboard's time series samples the same text).
pub(crate) fn exposition(state: &AdminState) -> String {
    if let Some(quality) = &state.quality {
        quality.publish_state();
    }
    let mut body = state.prometheus.render();
    crate::resources::self_process::render(&mut body);
    body
}

fn metrics(state: &AdminState) -> Response<Full<Bytes>> {
    let body = exposition(state);
    Response::builder()
        .status(StatusCode::OK)
        .header(
            http::header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

fn readiness(state: &AdminState) -> Response<Full<Bytes>> {
    let snapshot = state.health.snapshot();
    let status = if snapshot.ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    json_response(status, &snapshot)
}

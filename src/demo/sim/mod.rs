//! A simulated Magma model server that speaks the API of Magma's FastAPI app
//! (`server/main.py`): `GET /health`, `POST /predict` (JSON, base64 image),
//! `POST /predict_from_file` (multipart), plus an OpenAI-style
//! `POST /v1/chat/completions` (JSON or SSE when `stream: true`).
//!
//! Answers are task-shaped ([`answers`]), latency is about 1.1 s with
//! log-normal jitter divided by `speed`, a warm-up answers 503, and faults
//! ([`faults`]) can be switched on by flags or over `POST /control/faults`.

pub mod answers;
pub mod faults;
pub mod multipart;
mod openai;
mod predict;
mod reply;

use std::convert::Infallible;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo};
use rand::Rng;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::shutdown::ShutdownSignal;
pub use faults::{FaultError, FaultState, Faults, FaultsUpdate};
pub use reply::SimBody;

/// How the simulated server behaves.
#[derive(Debug, Clone)]
pub struct SimConfig {
    /// Median time to answer one request at speed 1 (Magma-8B: about 1.1 s).
    pub latency: Duration,
    /// Sigma of the log-normal jitter around `latency` (0 = none).
    pub jitter: f64,
    /// Every simulated delay is divided by this (2 = twice as fast).
    pub speed: f64,
    /// Time after start during which model routes answer 503 "Model not loaded yet".
    pub warmup: Duration,
    /// Largest request body read; larger ones get 413.
    pub max_body_bytes: usize,
    /// Fault switches and counters, shared with whoever controls the server.
    pub control: SimControl,
}

impl Default for SimConfig {
    fn default() -> Self {
        Self {
            latency: Duration::from_millis(1100),
            jitter: 0.15,
            speed: 1.0,
            warmup: Duration::ZERO,
            max_body_bytes: 64 * 1024 * 1024,
            control: SimControl::new(Faults::none(), DEFAULT_LEAK_CAP_BYTES),
        }
    }
}

/// The leak stops growing at this many bytes unless told otherwise.
pub const DEFAULT_LEAK_CAP_BYTES: u64 = 512 * 1024 * 1024;

/// A handle on a running simulated server: its faults and counters.
#[derive(Debug, Clone)]
pub struct SimControl {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    faults: FaultState,
    stats: SimStats,
}

/// What the simulated server has answered so far.
#[derive(Debug, Default)]
pub struct SimStats {
    pub answered: AtomicU64,
    pub unavailable: AtomicU64,
    pub server_errors: AtomicU64,
    pub client_errors: AtomicU64,
    pub degenerate: AtomicU64,
    pub hung: AtomicU64,
}

/// `GET /control/stats`.
#[derive(Debug, Clone, Serialize)]
pub struct SimStatsSnapshot {
    pub answered: u64,
    pub unavailable: u64,
    pub server_errors: u64,
    pub client_errors: u64,
    pub degenerate: u64,
    pub hung: u64,
    pub leaked_bytes: u64,
    pub leak_cap_bytes: u64,
    pub creep_seconds: f64,
    pub faults: Faults,
}

impl SimControl {
    pub fn new(faults: Faults, leak_cap_bytes: u64) -> Self {
        Self {
            shared: Arc::new(Shared {
                faults: FaultState::new(faults, leak_cap_bytes),
                stats: SimStats::default(),
            }),
        }
    }

    pub fn faults(&self) -> Faults {
        self.shared.faults.faults()
    }

    /// Changes the faults; the same as `POST /control/faults`.
    pub fn set_faults(&self, update: &FaultsUpdate) -> Result<Faults, FaultError> {
        self.shared.faults.apply(update)
    }

    pub fn stats(&self) -> SimStatsSnapshot {
        let s = &self.shared.stats;
        SimStatsSnapshot {
            answered: s.answered.load(Ordering::Relaxed),
            unavailable: s.unavailable.load(Ordering::Relaxed),
            server_errors: s.server_errors.load(Ordering::Relaxed),
            client_errors: s.client_errors.load(Ordering::Relaxed),
            degenerate: s.degenerate.load(Ordering::Relaxed),
            hung: s.hung.load(Ordering::Relaxed),
            leaked_bytes: self.shared.faults.leaked_bytes(),
            leak_cap_bytes: self.shared.faults.leak_cap_bytes(),
            creep_seconds: self.shared.faults.creep_seconds(),
            faults: self.faults(),
        }
    }

    fn fault_state(&self) -> &FaultState {
        &self.shared.faults
    }

    fn counters(&self) -> &SimStats {
        &self.shared.stats
    }
}

/// Per-server state every handler reads.
struct Server {
    config: SimConfig,
    started: Instant,
    shutdown: ShutdownSignal,
}

impl Server {
    fn warming_up(&self) -> bool {
        self.started.elapsed() < self.config.warmup
    }

    /// Divides a simulated delay by `speed`.
    fn scaled(&self, seconds: f64) -> Duration {
        let speed = if self.config.speed.is_finite() && self.config.speed > 0.0 {
            self.config.speed
        } else {
            1.0
        };
        Duration::from_secs_f64((seconds / speed).clamp(0.0, 3600.0))
    }

    /// One request's model time: log-normal around `latency`, plus creep.
    fn model_latency(&self) -> Duration {
        let base = self.config.latency.as_secs_f64();
        let sigma = self.config.jitter.clamp(0.0, 2.0);
        let z = standard_normal(&mut rand::rng());
        let jittered = base * (sigma * z - sigma * sigma / 2.0).exp();
        self.scaled(jittered + self.config.control.fault_state().creep_seconds())
    }

    /// Sleeps for `duration`, or less when shutdown comes first.
    async fn sleep(&self, duration: Duration) {
        let mut shutdown = self.shutdown.clone();
        tokio::select! {
            _ = tokio::time::sleep(duration) => {}
            _ = shutdown.recv() => {}
        }
    }
}

/// A standard normal draw (Box–Muller transform).
fn standard_normal<R: Rng>(rng: &mut R) -> f64 {
    let u1: f64 = rng.random_range(f64::EPSILON..1.0);
    let u2: f64 = rng.random_range(0.0..1.0);
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// Serves the simulated Magma API on `listener` until `shutdown`.
pub async fn serve_simulated(listener: TcpListener, config: SimConfig, shutdown: ShutdownSignal) {
    let server = Arc::new(Server {
        config,
        started: Instant::now(),
        shutdown: shutdown.clone(),
    });
    let mut stop = shutdown;
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => stream,
                Err(error) => {
                    tracing::warn!(%error, "simulated server: accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stop.recv() => break,
        };
        let _ = stream.set_nodelay(true);
        let server = server.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let server = server.clone();
                async move { Ok::<_, Infallible>(route(req, &server).await) }
            });
            let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
            if let Err(error) = builder
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, "simulated server: connection ended with an error");
            }
        });
    }
}

async fn route(req: Request<Incoming>, server: &Server) -> Response<SimBody> {
    let path = req.uri().path().to_owned();
    let response = match (req.method(), path.as_str()) {
        (&Method::GET, "/health") => health(server),
        (&Method::POST, "/predict") => predict::predict_json(req, server).await,
        (&Method::POST, "/predict_from_file") => predict::predict_from_file(req, server).await,
        (&Method::POST, "/v1/chat/completions") => openai::chat_completions(req, server).await,
        (&Method::GET, "/control/faults") => {
            reply::json(StatusCode::OK, &server.config.control.faults())
        }
        (&Method::POST, "/control/faults") => control_faults(req, server).await,
        (&Method::GET, "/control/stats") => {
            reply::json(StatusCode::OK, &server.config.control.stats())
        }
        (
            _,
            "/health"
            | "/predict"
            | "/predict_from_file"
            | "/v1/chat/completions"
            | "/control/faults"
            | "/control/stats",
        ) => reply::detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed"),
        _ => reply::detail(StatusCode::NOT_FOUND, "Not Found"),
    };
    let counters = server.config.control.counters();
    let counter = match response.status().as_u16() {
        200..=299 => None,
        503 => Some(&counters.unavailable),
        500..=599 => Some(&counters.server_errors),
        _ => Some(&counters.client_errors),
    };
    if let Some(counter) = counter {
        counter.fetch_add(1, Ordering::Relaxed);
    }
    response
}

fn health(server: &Server) -> Response<SimBody> {
    if server.warming_up() {
        return reply::detail(StatusCode::SERVICE_UNAVAILABLE, "Model not loaded yet");
    }
    reply::json(
        StatusCode::OK,
        &serde_json::json!({"status": "healthy", "model_loaded": true}),
    )
}

async fn control_faults(req: Request<Incoming>, server: &Server) -> Response<SimBody> {
    let body = match reply::read_body(req, 64 * 1024).await {
        Ok(body) => body,
        Err(response) => return response,
    };
    let update: FaultsUpdate = match serde_json::from_slice(&body) {
        Ok(update) => update,
        Err(error) => {
            return reply::validation_error("body", "json_invalid", &error.to_string());
        }
    };
    match server.config.control.set_faults(&update) {
        Ok(faults) => {
            tracing::info!(?faults, "simulated server: faults changed");
            reply::json(StatusCode::OK, &faults)
        }
        Err(error) => reply::validation_error("body", "value_error", &error.to_string()),
    }
}

//! Recording of the per-request metrics.
//!
//! The forward path keeps the handles it has resolved in [`HandleCache`]s
//! keyed by the (static, closed-set) label values, taken by address, so
//! recording a request costs a read lock, a hash of a few words and a few
//! atomic updates. Histograms labelled by route alone sit in a
//! [`HandleTable`] slot per route instead, so four of a request's six
//! records need neither lock nor hash.

use std::time::Duration;

use metrics::{Counter, Gauge, Histogram};

use super::error::ErrorKind;
use crate::handle_cache::{HandleCache, HandleTable, Label};
use crate::telemetry::{self, label};

/// The `status` label of `magma_request_duration_seconds`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// The response (status below 500) was delivered completely.
    Success,
    /// A 5xx from the upstream or the proxy, or a body that broke mid-stream.
    Error,
    /// The upstream did not answer in time (504).
    Timeout,
    /// The client went away before the response was complete.
    Cancelled,
}

impl Outcome {
    pub const fn label(self) -> &'static str {
        match self {
            Outcome::Success => "success",
            Outcome::Error => "error",
            Outcome::Timeout => "timeout",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// Everything known about a finished exchange.
#[derive(Debug, Clone)]
pub struct Finished {
    pub model_type: &'static str,
    pub route: &'static str,
    pub status: u16,
    pub outcome: Outcome,
    pub modality: &'static str,
    pub task: &'static str,
    pub duration: Duration,
    pub request_bytes: u64,
    pub response_bytes: u64,
}

/// The request metrics with their handle caches.
pub struct RequestMetrics {
    in_flight: Gauge,
    duration: HandleCache<(Label, Outcome, Label, Label), Histogram>,
    requests: HandleCache<(Label, Label, Label), Counter>,
    errors: HandleCache<Label, Counter>,
    time_to_first_byte: HandleTable<Histogram, ROUTE_SLOTS>,
    overhead: HandleTable<Histogram, ROUTE_SLOTS>,
    request_size: HandleTable<Histogram, ROUTE_SLOTS>,
    response_size: HandleTable<Histogram, ROUTE_SLOTS>,
}

impl Default for RequestMetrics {
    fn default() -> Self {
        Self::new()
    }
}

impl RequestMetrics {
    /// Must be created after the recorder is installed.
    pub fn new() -> Self {
        let metrics = Self {
            in_flight: metrics::gauge!(telemetry::REQUESTS_IN_FLIGHT),
            duration: HandleCache::new(),
            requests: HandleCache::new(),
            errors: HandleCache::new(),
            time_to_first_byte: HandleTable::default(),
            overhead: HandleTable::default(),
            request_size: HandleTable::default(),
            response_size: HandleTable::default(),
        };
        metrics.in_flight.set(0.0);
        metrics
    }

    pub fn started(&self) {
        self.in_flight.increment(1.0);
    }

    pub fn error(&self, kind: ErrorKind) {
        let label = kind.label();
        self.errors
            .get(
                Label(label),
                || metrics::counter!(telemetry::REQUEST_ERRORS, "kind" => label),
            )
            .increment(1);
    }

    pub fn time_to_first_byte(&self, route: &'static str, elapsed: Duration) {
        by_route(
            &self.time_to_first_byte,
            telemetry::TIME_TO_FIRST_BYTE,
            route,
        )
        .record(elapsed.as_secs_f64());
    }

    pub fn overhead(&self, route: &'static str, elapsed: Duration) {
        by_route(&self.overhead, telemetry::PROXY_OVERHEAD, route).record(elapsed.as_secs_f64());
    }

    /// Records a finished exchange and lowers the in-flight gauge.
    pub fn finished(&self, done: &Finished) {
        self.in_flight.decrement(1.0);
        let key = (
            Label(done.model_type),
            done.outcome,
            Label(done.modality),
            Label(done.task),
        );
        self.duration
            .get(key, || {
                metrics::histogram!(
                    telemetry::REQUEST_DURATION,
                    "model_type" => done.model_type,
                    "status" => done.outcome.label(),
                    "modality" => done.modality,
                    "task" => done.task
                )
            })
            .record(done.duration.as_secs_f64());
        let code = label::code_class(done.status);
        let key = (Label(done.model_type), Label(done.route), Label(code));
        self.requests
            .get(key, || {
                metrics::counter!(telemetry::REQUESTS, "model_type" => done.model_type, "route" => done.route, "code" => code)
            })
            .increment(1);
        by_route(&self.request_size, telemetry::REQUEST_SIZE, done.route)
            .record(done.request_bytes as f64);
        by_route(&self.response_size, telemetry::RESPONSE_SIZE, done.route)
            .record(done.response_bytes as f64);
    }
}

/// Slots of a table indexed by route: one per route of [`label::ROUTES`],
/// then one for [`label::OTHER`].
const ROUTE_SLOTS: usize = label::ROUTES.len() + 1;

/// The histogram `name` of `route` (a value of [`label::route`]) in
/// `table`, made on first use: a series appears once a request of its route
/// has been seen.
fn by_route<'a>(
    table: &'a HandleTable<Histogram, ROUTE_SLOTS>,
    name: &'static str,
    route: &'static str,
) -> &'a Histogram {
    let slot = label::ROUTES
        .iter()
        .position(|known| *known == route)
        .unwrap_or(label::ROUTES.len());
    table.get(slot, || metrics::histogram!(name, "route" => route))
}

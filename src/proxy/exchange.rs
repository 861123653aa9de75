//! One request/response exchange as the metrics see it.
//!
//! An [`ExchangeGuard`] is created when a request arrives and travels with the
//! exchange: first in the forwarding future, then inside the response body.
//! Whoever finishes the exchange calls [`ExchangeGuard::finish`]; if the guard
//! is dropped first (the client went away), it records a cancelled request.
//! So every request is counted exactly once, however it ends.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::activity::InFlightToken;
use super::error::ErrorKind;
use super::metrics::{Finished, Outcome, RequestMetrics};
use super::stats::RequestStats;
use crate::telemetry::label;

/// What the request body tap learned, filled in while the body streams.
#[derive(Debug, Clone, Copy)]
pub struct RequestLabels {
    pub model_type: &'static str,
    pub modality: &'static str,
    pub task: &'static str,
}

/// State shared by the request body, the forwarding future and the response body.
pub struct Exchange {
    pub started: Instant,
    pub route: &'static str,
    request_bytes: AtomicU64,
    over_limit: AtomicBool,
    client_body_failed: AtomicBool,
    labels: Mutex<RequestLabels>,
}

impl Exchange {
    pub fn new(started: Instant, route: &'static str, model_type: &'static str) -> Self {
        Self {
            started,
            route,
            request_bytes: AtomicU64::new(0),
            over_limit: AtomicBool::new(false),
            client_body_failed: AtomicBool::new(false),
            labels: Mutex::new(RequestLabels {
                model_type,
                modality: label::UNKNOWN,
                task: label::UNKNOWN,
            }),
        }
    }

    pub fn add_request_bytes(&self, n: u64) -> u64 {
        self.request_bytes.fetch_add(n, Ordering::Relaxed) + n
    }

    pub fn request_bytes(&self) -> u64 {
        self.request_bytes.load(Ordering::Relaxed)
    }

    pub fn mark_over_limit(&self) {
        self.over_limit.store(true, Ordering::Relaxed);
    }

    pub fn is_over_limit(&self) -> bool {
        self.over_limit.load(Ordering::Relaxed)
    }

    pub fn mark_client_body_failed(&self) {
        self.client_body_failed.store(true, Ordering::Relaxed);
    }

    pub fn client_body_failed(&self) -> bool {
        self.client_body_failed.load(Ordering::Relaxed)
    }

    pub fn set_labels(&self, labels: RequestLabels) {
        if let Ok(mut slot) = self.labels.lock() {
            *slot = labels;
        }
    }

    pub fn labels(&self) -> RequestLabels {
        match self.labels.lock() {
            Ok(labels) => *labels,
            Err(poisoned) => *poisoned.into_inner(),
        }
    }
}

/// Records the exchange once, when finished or dropped.
pub struct ExchangeGuard {
    exchange: Arc<Exchange>,
    metrics: Arc<RequestMetrics>,
    stats: Arc<RequestStats>,
    status: u16,
    response_bytes: u64,
    done: bool,
    /// Keeps the client connection from counting as idle while this runs.
    _in_flight: InFlightToken,
}

impl ExchangeGuard {
    pub fn new(
        exchange: Arc<Exchange>,
        metrics: Arc<RequestMetrics>,
        stats: Arc<RequestStats>,
        in_flight: InFlightToken,
    ) -> Self {
        metrics.started();
        stats.in_flight.fetch_add(1, Ordering::Relaxed);
        Self {
            exchange,
            metrics,
            stats,
            status: 0,
            response_bytes: 0,
            done: false,
            _in_flight: in_flight,
        }
    }

    pub fn exchange(&self) -> &Arc<Exchange> {
        &self.exchange
    }

    pub fn metrics(&self) -> &RequestMetrics {
        &self.metrics
    }

    /// Sets the status the client will see.
    pub fn set_status(&mut self, status: u16) {
        self.status = status;
    }

    pub fn add_response_bytes(&mut self, n: u64) {
        self.response_bytes += n;
    }

    pub fn error(&self, kind: ErrorKind) {
        self.metrics.error(kind);
        self.stats.errors.fetch_add(1, Ordering::Relaxed);
    }

    /// Records the exchange with its outcome.
    pub fn finish(mut self, outcome: Outcome) {
        self.record(outcome);
    }

    /// Time since the request arrived.
    pub fn elapsed(&self) -> Duration {
        self.exchange.started.elapsed()
    }

    fn record(&mut self, outcome: Outcome) {
        if self.done {
            return;
        }
        self.done = true;
        let labels = self.exchange.labels();
        self.stats.in_flight.fetch_sub(1, Ordering::Relaxed);
        self.stats.total.fetch_add(1, Ordering::Relaxed);
        self.metrics.finished(&Finished {
            model_type: labels.model_type,
            route: self.exchange.route,
            status: self.status,
            outcome,
            modality: labels.modality,
            task: labels.task,
            duration: self.exchange.started.elapsed(),
            request_bytes: self.exchange.request_bytes(),
            response_bytes: self.response_bytes,
        });
    }
}

impl Drop for ExchangeGuard {
    fn drop(&mut self) {
        if !self.done && std::thread::panicking() {
            // A panic in the handler: the catch-panic layer answers 500.
            self.error(ErrorKind::ProxyError);
            self.status = 500;
            self.record(Outcome::Error);
        } else if !self.done {
            self.error(ErrorKind::ClientAbort);
            // 499 is the de-facto "client closed request" code; it only feeds the
            // `code` class label (4xx), nothing is sent.
            if self.status == 0 {
                self.status = 499;
            }
            self.record(Outcome::Cancelled);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proxy::activity::ConnActivity;

    fn record_with<F: FnOnce(ExchangeGuard)>(f: F) -> String {
        let (recorder, handle) = crate::telemetry::build_recorder(&Default::default()).unwrap();
        metrics::with_local_recorder(&recorder, || {
            let exchange = Arc::new(Exchange::new(Instant::now(), "/predict", "magma-8b"));
            let (token, _) = ConnActivity::new().request_started();
            let guard = ExchangeGuard::new(
                exchange,
                Arc::new(RequestMetrics::new()),
                Arc::new(RequestStats::default()),
                token,
            );
            f(guard);
        });
        handle.render()
    }

    #[test]
    fn a_panic_counts_as_a_proxy_error_with_status_500() {
        let text = record_with(|guard| {
            let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(move || {
                let _guard = guard;
                panic!("bug in a handler");
            }));
            assert!(outcome.is_err());
        });
        assert!(
            text.contains("magma_request_errors_total{kind=\"proxy_error\"} 1"),
            "{text}"
        );
        assert!(text.contains("code=\"5xx\"} 1"), "{text}");
        assert!(text.contains("status=\"error\""), "{text}");
    }

    #[test]
    fn a_dropped_exchange_counts_as_cancelled() {
        let text = record_with(drop);
        assert!(
            text.contains("magma_request_errors_total{kind=\"client_abort\"} 1"),
            "{text}"
        );
        assert!(text.contains("status=\"cancelled\""), "{text}");
        assert!(text.contains("magma_requests_in_flight 0"), "{text}");
    }

    #[test]
    fn a_finished_exchange_is_recorded_once() {
        let text = record_with(|mut guard| {
            guard.set_status(200);
            guard.finish(Outcome::Success);
        });
        assert!(!text.contains("magma_request_errors_total"), "{text}");
        assert!(text.contains("code=\"2xx\"} 1"), "{text}");
    }
}

//! One request/response exchange as the metrics see it.
//!
//! An [`ExchangeGuard`] is created when a request arrives and travels with the
//! exchange: first in the forwarding future, then inside the response body.
//! Whoever finishes the exchange calls [`ExchangeGuard::finish`]; if the guard
//! is dropped first (the client went away), it records a cancelled request.
//! So every request is counted exactly once, however it ends.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use http::HeaderValue;

use super::activity::InFlightToken;
use super::error::ErrorKind;
use super::metrics::{Finished, Outcome, RequestMetrics};
use super::stats::RequestStats;
use super::tap::PayloadContext;
use crate::payload::{RequestInfo, RequestTap, ResponseTap};
use crate::quality::from_payload::answer_view;
use crate::sample::Sample;
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
    /// Whether this exchange is sampled for analysis.
    pub sampled: bool,
    received_at: SystemTime,
    /// What the request tap learned, once the request body has ended.
    request_info: Mutex<Option<RequestInfo>>,
}

impl Exchange {
    pub fn new(
        started: Instant,
        route: &'static str,
        model_type: &'static str,
        sampled: bool,
    ) -> Self {
        Self {
            started,
            route,
            sampled,
            received_at: SystemTime::now(),
            request_info: Mutex::new(None),
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

    /// Publishes what the request tap learned: metrics, labels, and the
    /// info kept for the sample.
    pub fn publish_request(&self, tap: RequestTap, payload: &PayloadContext) {
        let info = tap.finish();
        payload.metrics.record_request(&info);
        self.set_labels(RequestLabels {
            model_type: payload.model_label(&info),
            modality: info.modality.as_str(),
            task: info.task.as_str(),
        });
        if let Ok(mut slot) = self.request_info.lock() {
            *slot = Some(info);
        }
    }

    fn take_request_info(&self) -> Option<RequestInfo> {
        self.request_info
            .lock()
            .ok()
            .and_then(|mut slot| slot.take())
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
    /// Boxed: the guard moves with the response through several futures,
    /// and only payload analysis uses this part.
    response: Option<Box<ResponseSide>>,
}

/// The response tap and what is needed to hand the sample off at the end.
struct ResponseSide {
    tap: ResponseTap,
    payload: Arc<PayloadContext>,
    request_id: HeaderValue,
    time_to_first_token: Option<Duration>,
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
            response: None,
        }
    }

    /// Starts watching the response body with `tap`.
    pub fn watch_response(
        &mut self,
        tap: ResponseTap,
        payload: Arc<PayloadContext>,
        request_id: HeaderValue,
    ) {
        self.response = Some(Box::new(ResponseSide {
            tap,
            payload,
            request_id,
            time_to_first_token: None,
        }));
    }

    /// Feeds one response chunk to the tap (the chunk itself goes on unchanged).
    pub fn observe_response(&mut self, chunk: &[u8]) {
        if let Some(side) = self.response.as_mut() {
            if side.tap.feed(chunk) {
                side.time_to_first_token = Some(self.exchange.started.elapsed());
            }
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
        let finished_at = Instant::now();
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
            duration: finished_at.saturating_duration_since(self.exchange.started),
            request_bytes: self.exchange.request_bytes(),
            response_bytes: self.response_bytes,
        });
        if let Some(side) = self.response.take() {
            self.hand_off(*side, labels.model_type, finished_at);
        }
    }

    /// Records the answer's payload metrics and hands a sampled exchange to
    /// analysis (a `try_send`: never waits).
    fn hand_off(&self, side: ResponseSide, model_type: &'static str, finished_at: Instant) {
        let response = side.tap.finish();
        side.payload.metrics.record_response(
            &response,
            self.exchange.route,
            side.time_to_first_token,
        );
        let request = self.exchange.take_request_info();
        let request_id = side.request_id.to_str().unwrap_or("");
        if let Some(quality) = side.payload.quality.as_ref() {
            if let Some(answer) = answer_view(request.as_ref(), &response) {
                quality.observe_at(Some(request_id), &answer, finished_at);
            }
        }
        let Some(request) = request.filter(|_| self.exchange.sampled) else {
            return;
        };
        side.payload.sender.send(Sample {
            request_id: request_id.to_owned(),
            received_at: self.exchange.received_at,
            route: self.exchange.route,
            model_type: model_type.to_owned(),
            status: self.status,
            latency: self.exchange.started.elapsed(),
            time_to_first_token: side.time_to_first_token,
            request,
            response,
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
            let exchange = Arc::new(Exchange::new(Instant::now(), "/predict", "magma-8b", false));
            let token = ConnActivity::new().request_started(http::Version::HTTP_11);
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

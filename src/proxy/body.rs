//! Body wrappers of the forward path.
//!
//! Both pass every frame through unchanged, in the poll that produced it: no
//! buffering, no copy. They only count bytes, enforce the request size limit,
//! watch for a stalled upstream and close the exchange's books at the end.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{ready, Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame, SizeHint};
use pin_project_lite::pin_project;
use tokio::time::{Instant, Sleep};

use hyper::body::Incoming;

use super::exchange::{Exchange, ExchangeGuard};
use super::metrics::Outcome;
use super::tap::PayloadContext;
use super::upstream::Lease;
use crate::payload::RequestTap;

/// Errors a wrapped body reports to its reader.
#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("request body exceeds the limit of {0} bytes")]
    TooLarge(u64),
    #[error("client request body failed: {0}")]
    Client(hyper::Error),
    #[error("upstream response body failed: {0}")]
    Upstream(Box<dyn std::error::Error + Send + Sync>),
    #[error("upstream sent nothing for {0:?} in the middle of the response body")]
    UpstreamStalled(Duration),
}

pin_project! {
    /// The client's request body on its way to the upstream. The request tap
    /// sees each chunk; what it learned is published when the body ends, or
    /// when the body is dropped before its end.
    pub struct RequestBody {
        #[pin]
        inner: Incoming,
        exchange: Arc<Exchange>,
        limit: u64,
        // Boxed: the body moves with the request through several futures,
        // and only payload analysis uses the tap.
        tap: Option<Box<(RequestTap, Arc<PayloadContext>)>>,
    }

    impl PinnedDrop for RequestBody {
        fn drop(this: Pin<&mut Self>) {
            let this = this.project();
            publish(this.tap, this.exchange);
        }
    }
}

impl RequestBody {
    pub fn new(
        inner: Incoming,
        exchange: Arc<Exchange>,
        limit: u64,
        tap: Option<(RequestTap, Arc<PayloadContext>)>,
    ) -> Self {
        let mut body = Self {
            inner,
            exchange,
            limit,
            tap: tap.map(Box::new),
        };
        // A body that is empty from the start may never be polled.
        if body.inner.is_end_stream() {
            publish(&mut body.tap, &body.exchange);
        }
        body
    }
}

fn publish(tap: &mut Option<Box<(RequestTap, Arc<PayloadContext>)>>, exchange: &Exchange) {
    if let Some(tap) = tap.take() {
        let (tap, payload) = *tap;
        exchange.publish_request(tap, &payload);
    }
}

impl Body for RequestBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut this = self.project();
        match ready!(this.inner.as_mut().poll_frame(cx)) {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    let total = this.exchange.add_request_bytes(data.len() as u64);
                    if total > *this.limit {
                        this.exchange.mark_over_limit();
                        return Poll::Ready(Some(Err(BodyError::TooLarge(*this.limit))));
                    }
                    if let Some(tap) = this.tap.as_mut() {
                        tap.0.feed(data);
                    }
                }
                if this.inner.is_end_stream() {
                    publish(this.tap, this.exchange);
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                this.exchange.mark_client_body_failed();
                Poll::Ready(Some(Err(BodyError::Client(error))))
            }
            None => {
                publish(this.tap, this.exchange);
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

pin_project! {
    /// The upstream's response body on its way to the client; finishes the
    /// exchange's metrics when the last frame has passed (or when dropped
    /// early), and gives the upstream connection it came on back then.
    pub struct ResponseBody {
        #[pin]
        inner: Incoming,
        lease: Option<Lease>,
        // Armed the first time the body has to wait: most answers arrive with
        // their head and never need a timer (nor a clock read to set one).
        stall: Option<Pin<Box<Sleep>>>,
        stall_timeout: Duration,
        guard: Option<ExchangeGuard>,
        outcome_at_end: Outcome,
    }
}

impl ResponseBody {
    pub fn new(
        inner: Incoming,
        lease: Option<Lease>,
        guard: ExchangeGuard,
        stall_timeout: Duration,
        outcome_at_end: Outcome,
    ) -> Self {
        let mut body = Self {
            inner,
            lease,
            stall: None,
            stall_timeout,
            guard: Some(guard),
            outcome_at_end,
        };
        if body.inner.is_end_stream() {
            release(&mut body.lease);
            if let Some(guard) = body.guard.take() {
                guard.finish(body.outcome_at_end);
            }
        }
        body
    }
}

/// Gives the upstream connection back after a body that ended cleanly.
fn release(lease: &mut Option<Lease>) {
    if let Some(lease) = lease.take() {
        lease.release();
    }
}

impl Body for ResponseBody {
    type Data = Bytes;
    type Error = BodyError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BodyError>>> {
        let mut this = self.project();
        let polled = this.inner.as_mut().poll_frame(cx);
        let result = match polled {
            Poll::Pending => {
                if this.guard.is_some() {
                    let timeout = *this.stall_timeout;
                    let stall = this
                        .stall
                        .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
                    if stall.as_mut().poll(cx).is_ready() {
                        if let Some(guard) = this.guard.take() {
                            guard.error(super::error::ErrorKind::Timeout);
                            guard.finish(Outcome::Timeout);
                        }
                        return Poll::Ready(Some(Err(BodyError::UpstreamStalled(timeout))));
                    }
                }
                return Poll::Pending;
            }
            Poll::Ready(result) => result,
        };
        match result {
            Some(Ok(frame)) => {
                if let Some(data) = frame.data_ref() {
                    if let Some(guard) = this.guard.as_mut() {
                        guard.add_response_bytes(data.len() as u64);
                        guard.observe_response(data);
                    }
                }
                if this.inner.is_end_stream() {
                    release(this.lease);
                    if let Some(guard) = this.guard.take() {
                        guard.finish(*this.outcome_at_end);
                    }
                } else {
                    // A body with more to come that has waited before gets
                    // its stall timer pushed back; one that never waited has
                    // none to move.
                    if let Some(stall) = this.stall.as_mut() {
                        stall.as_mut().reset(Instant::now() + *this.stall_timeout);
                    }
                }
                Poll::Ready(Some(Ok(frame)))
            }
            Some(Err(error)) => {
                *this.lease = None;
                if let Some(guard) = this.guard.take() {
                    guard.error(super::error::ErrorKind::UpstreamUnreachable);
                    guard.finish(Outcome::Error);
                }
                Poll::Ready(Some(Err(BodyError::Upstream(Box::new(error)))))
            }
            None => {
                release(this.lease);
                if let Some(guard) = this.guard.take() {
                    guard.finish(*this.outcome_at_end);
                }
                Poll::Ready(None)
            }
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

// `Sleep` is polled through `Future`.
use std::future::Future;

//! The HTTP/1.1 lane: the connection's own task reads the common request,
//! forwards it and writes the answer, without a general HTTP server in
//! between.
//!
//! Most traffic a model server sees is the plain case: an HTTP/1.1 request
//! whose head and `Content-Length` body arrive together, on a keep-alive
//! connection. For that case a general server's machinery (a dispatcher per
//! connection, a body channel, an encoder state machine) costs more than the
//! proxying itself. The lane reads such a request into one buffer, slices the
//! head fields and the body out of it without copying, runs the same
//! [`forward`] as every other request, and writes the response head and the
//! first body bytes in one write.
//!
//! Everything else — chunked uploads, bodies that have not all arrived with
//! their head, `Expect: 100-continue`, upgrades, HTTP/1.0, HTTP/2 with prior
//! knowledge, heads that do not fit the read buffer, malformed bytes — is
//! handed to hyper at a message boundary:
//! the lane returns the socket with the bytes it read but did not use, and
//! hyper serves the connection from there on (see [`request`] for the exact
//! rule). Both paths share the forward path, its metrics and its limits, so a
//! client sees the same answers from either.
//!
//! Draining: an idle lane connection closes at once; one with a request in
//! flight finishes it, answers with `Connection: close`, then closes.

mod date;
mod replay;
mod request;
mod response;

use std::future::Future;
use std::io;
use std::panic::AssertUnwindSafe;
use std::pin::{pin, Pin};
use std::sync::Arc;

use bytes::BytesMut;
use futures_util::FutureExt;
use http::{HeaderValue, Method, StatusCode};
use http_body_util::Either;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite};

pub use replay::Replay;
pub use request::RequestLines;
pub(crate) use request::Span;

use self::request::{HandoffReason, LaneRequest, Parsed};
use super::activity::ConnActivity;
use super::client_body::ClientBody;
use super::direct::PinnedUpstream;
use super::error::{json_error, panic_response};
use super::field_lines;
use super::forward::{forward, ProxyContext, ProxyResponseBody};
use crate::shutdown::ShutdownSignal;
use crate::telemetry;

/// Bytes read ahead from the client; a request (head and body) larger than
/// this is hyper's. Large enough for a chat request with a long prompt. Each
/// connection holds one such buffer while it is on the lane, so the lane's
/// share of memory is `--max-connections` times this (160 MiB at the default
/// 10,000), about twice what hyper's 8 KiB read buffers would hold.
pub const READ_BUFFER_BYTES: usize = 16 * 1024;

/// Least room a read into the buffer is given.
const MIN_READ_ROOM: usize = 1024;

/// What the forward path knows of one client connection.
pub struct ClientConnection {
    pub context: Arc<ProxyContext>,
    /// The client's address, rendered once for X-Forwarded-For.
    pub forwarded_for: HeaderValue,
    pub activity: Arc<ConnActivity>,
    pub pinned: Arc<PinnedUpstream>,
    /// Longest request head accepted; a longer one is hyper's to refuse.
    pub max_head_bytes: usize,
}

impl ClientConnection {
    /// Forwards one request of this connection; `lines`: its fields as the
    /// lane read them (the request's own map is then empty).
    pub fn forward(
        &self,
        request: http::Request<ClientBody>,
        lines: Option<Box<RequestLines>>,
    ) -> impl std::future::Future<Output = http::Response<super::forward::ProxyResponseBody>>
           + Send
           + 'static {
        forward(
            self.context.clone(),
            self.forwarded_for.clone(),
            self.activity.clone(),
            self.pinned.clone(),
            request,
            lines,
        )
    }
}

/// How the lane left the connection.
#[derive(Debug)]
pub enum LaneEnd<T> {
    /// Closed: by the client, after `Connection: close`, or on drain.
    Closed,
    /// For hyper to serve from here, starting with the bytes already read.
    Handoff(Replay<T>),
}

/// Serves requests on `io` until the connection closes or needs hyper.
pub async fn serve<T: AsyncRead + AsyncWrite + Unpin>(
    mut io: T,
    client: &ClientConnection,
    shutdown: &ShutdownSignal,
) -> io::Result<LaneEnd<T>> {
    let mut buffer = BytesMut::with_capacity(READ_BUFFER_BYTES);
    let mut out = Vec::with_capacity(1024);
    // One wait for the drain signal for the connection's whole life, polled
    // again at each idle wait: a wait made anew for each one registered and
    // removed a waiter on the signal every request.
    let mut drain_signal = shutdown.clone();
    let drained = drain_signal.recv();
    tokio::pin!(drained);
    let mut slot = ForwardSlot {
        start: |request, lines| client.forward(request, lines),
        future: None,
    };
    loop {
        if buffer.is_empty() {
            // Between requests: an idle connection is what a drain closes.
            if shutdown.is_triggered() {
                return Ok(LaneEnd::Closed);
            }
            buffer.reserve(READ_BUFFER_BYTES);
            let read = tokio::select! {
                biased;
                read = io.read_buf(&mut buffer) => read?,
                () = &mut drained => return Ok(LaneEnd::Closed),
            };
            if read == 0 {
                return Ok(LaneEnd::Closed);
            }
        }
        let parsed = request::parse(&mut buffer, client.max_head_bytes);
        // The header timeout runs while a head is partly here (the lane's
        // share of what the framing watcher does on hyper's side).
        if matches!(parsed, Parsed::PartialHead) {
            client.activity.head_started();
        } else {
            client.activity.head_complete();
        }
        let lane_request = match parsed {
            Parsed::Ready(lane_request) => lane_request,
            Parsed::PartialHead => {
                if buffer.len() >= READ_BUFFER_BYTES {
                    return Ok(handoff(io, buffer, HandoffReason::Large));
                }
                buffer.reserve(READ_BUFFER_BYTES - buffer.len());
                if io.read_buf(&mut buffer).await? == 0 {
                    return Ok(LaneEnd::Closed);
                }
                continue;
            }
            Parsed::Handoff(reason) => return Ok(handoff(io, buffer, reason)),
            Parsed::Invalid(detail) => {
                refuse_invalid(&mut io, &mut out, detail).await?;
                return Ok(LaneEnd::Closed);
            }
        };
        let reusable = exchange(
            &mut io,
            &mut buffer,
            &mut out,
            &mut slot,
            lane_request,
            shutdown,
        )
        .await?;
        if !reusable {
            return Ok(LaneEnd::Closed);
        }
    }
}

/// The connection's forward future, in one allocation that each request
/// reuses.
///
/// The future is a few KiB: boxed (rather than moved into the catch-unwind
/// wrapper and this connection's future, a copy each time) but boxed once,
/// not allocated and freed per request. An idle connection keeps the
/// finished future's room, which holds nothing else.
struct ForwardSlot<S, F> {
    start: S,
    future: Option<Pin<Box<F>>>,
}

impl<S, F> ForwardSlot<S, F>
where
    S: Fn(http::Request<ClientBody>, Option<Box<RequestLines>>) -> F,
{
    /// Puts the forwarding of `request` in the slot, dropping the last one.
    fn start(
        &mut self,
        request: http::Request<ClientBody>,
        lines: Box<RequestLines>,
    ) -> Pin<&mut F> {
        let future = (self.start)(request, Some(lines));
        match &mut self.future {
            Some(boxed) => {
                boxed.set(future);
                boxed.as_mut()
            }
            empty => empty.insert(Box::pin(future)).as_mut(),
        }
    }
}

fn handoff<T>(io: T, buffer: BytesMut, reason: HandoffReason) -> LaneEnd<T> {
    metrics::counter!(telemetry::CONNECTION_HANDOFFS, "reason" => reason.label()).increment(1);
    LaneEnd::Handoff(Replay::new(buffer.freeze(), io))
}

/// Forwards one request and writes its answer; true when the connection can
/// carry the next one.
async fn exchange<T, S, F>(
    io: &mut T,
    buffer: &mut BytesMut,
    out: &mut Vec<u8>,
    slot: &mut ForwardSlot<S, F>,
    lane_request: LaneRequest,
    shutdown: &ShutdownSignal,
) -> io::Result<bool>
where
    T: AsyncRead + AsyncWrite + Unpin,
    S: Fn(http::Request<ClientBody>, Option<Box<RequestLines>>) -> F,
    F: Future<Output = http::Response<ProxyResponseBody>>,
{
    let close = lane_request.close;
    let head_request = lane_request.request.method() == Method::HEAD;
    let request = lane_request.request.map(ClientBody::buffered);
    let mut forwarding = AssertUnwindSafe(slot.start(request, lane_request.fields)).catch_unwind();
    let answer = loop {
        // Reading on while the upstream works notices a client that hangs up
        // (the request is then cancelled, as hyper does without half-close)
        // and keeps pipelined requests for later, up to the buffer's size.
        // The buffer's own spare room is used as it is: the request's fields
        // still share its allocation, so reserving more here would allocate.
        let room = buffer.len() < READ_BUFFER_BYTES;
        if room && buffer.capacity() == buffer.len() {
            buffer.reserve(MIN_READ_ROOM);
        }
        tokio::select! {
            biased;
            answer = &mut forwarding => break answer,
            read = io.read_buf(buffer), if room => match read {
                Ok(0) | Err(_) => return Ok(false),
                Ok(_) => {}
            },
        }
    };
    let (response, panicked) = match answer {
        Ok(response) => (response, false),
        Err(panic) => (panic_response(panic).map(Either::Right), true),
    };
    let keep_alive = !close && !panicked && !shutdown.is_triggered();
    // The parts and body stay here and are lent to the writer.
    let (parts, body) = response.into_parts();
    response::write(io, out, &parts, pin!(body), head_request, keep_alive).await
}

/// Answers a head whose target or field values cannot be represented.
async fn refuse_invalid<T: AsyncWrite + Unpin>(
    io: &mut T,
    out: &mut Vec<u8>,
    detail: &'static str,
) -> io::Result<()> {
    metrics::counter!(telemetry::REQUEST_ERRORS, "kind" => "bad_request").increment(1);
    metrics::counter!(telemetry::CONNECTION_ERRORS, "kind" => "protocol").increment(1);
    let response = json_error(
        StatusCode::BAD_REQUEST,
        "bad_request",
        detail,
        &HeaderValue::from_static(""),
    );
    let (parts, body) = response.into_parts();
    let body = pin!(Either::Right(body));
    response::write(io, out, &parts, body, false, false)
        .await
        .map(drop)
}

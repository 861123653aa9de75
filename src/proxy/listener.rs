//! The client-facing listener: accepts connections within the connection
//! limit, serves HTTP/1.1 (keep-alive, upgrades) and HTTP/2 with prior
//! knowledge on the same port with hyper's server, enforces the header and
//! idle limits, and drains gracefully on shutdown.
//!
//! hyper reads every request head and body and writes every response: the
//! proxy never parses or frames an HTTP/1 message itself, so there is one
//! reading of each message's bytes, not two that could disagree.

use std::convert::Infallible;
use std::pin::pin;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::FutureExt;
use http::Response;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio_util::task::TaskTracker;
use tower::ServiceBuilder;
use tower_http::catch_panic::CatchPanicLayer;

use super::activity::{self, ConnActivity, Expired, TrackedIo};
use super::error::{find_source, panic_response};
use super::forward::{forward, ClientConnection, ProxyContext, ProxyResponseBody};
use crate::shutdown::ShutdownSignal;
use crate::telemetry;

/// Limits of the client side.
#[derive(Debug, Clone)]
pub struct ListenerSettings {
    pub header_read_timeout: Duration,
    pub max_header_bytes: usize,
    pub idle_timeout: Duration,
    pub max_connections: usize,
    pub drain_timeout: Duration,
    /// Keep header names in the case the client wrote them (`--preserve-header-case`).
    pub preserve_header_case: bool,
}

/// Smallest read buffer hyper accepts; the header limit cannot go below it.
pub const MIN_HEADER_BYTES: usize = 8192;

/// Accepts and serves client connections until shutdown, then drains.
pub async fn serve(
    listener: TcpListener,
    context: Arc<ProxyContext>,
    settings: ListenerSettings,
    mut shutdown: ShutdownSignal,
) {
    let permits = Arc::new(Semaphore::new(settings.max_connections));
    // Every connection task is tracked, so the drain can wait for them all.
    let connections = TaskTracker::new();
    let builder = Arc::new(connection_builder(&settings));
    let open = metrics::gauge!(telemetry::CONNECTIONS_OPEN);
    open.set(0.0);
    let accepted = metrics::counter!(telemetry::CONNECTIONS, "outcome" => "accepted");
    let refused = metrics::counter!(telemetry::CONNECTIONS, "outcome" => "refused_limit");

    loop {
        let (stream, peer) = tokio::select! {
            result = listener.accept() => match result {
                Ok(pair) => pair,
                Err(error) => {
                    // EMFILE and friends: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(Duration::from_millis(20)).await;
                    continue;
                }
            },
            _ = shutdown.recv() => break,
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            refused.increment(1);
            drop(stream);
            continue;
        };
        accepted.increment(1);
        open.increment(1.0);
        context
            .stats
            .connections_open
            .fetch_add(1, Ordering::Relaxed);
        let _ = stream.set_nodelay(true);

        let activity = ConnActivity::new();
        let client = Arc::new(ClientConnection {
            context: context.clone(),
            peer: context.settings.forwarding.peer(peer.ip()),
            activity: activity.clone(),
            pinned: Arc::default(),
        });
        let io = TrackedIo::new(stream, activity.clone());
        let (idle_timeout, header_timeout) = (settings.idle_timeout, settings.header_read_timeout);
        let builder = builder.clone();
        let connection_shutdown = shutdown.clone();
        let open = open.clone();
        let context = context.clone();
        connections.spawn(async move {
            tokio::select! {
                result = serve_connection(io, client, builder, connection_shutdown) => {
                    if let Err(error) = result {
                        record_connection_error(&*error);
                    }
                }
                expired = activity::expired(activity, idle_timeout, header_timeout) => {
                    if expired == Expired::HeaderTimeout {
                        metrics::counter!(telemetry::CONNECTION_ERRORS, "kind" => "header_timeout").increment(1);
                    }
                    tracing::trace!(%peer, ?expired, "closing connection");
                }
            }
            open.decrement(1.0);
            context
                .stats
                .connections_open
                .fetch_sub(1, Ordering::Relaxed);
            drop(permit);
        });
    }

    // Stop accepting: new connections are refused from here on. Each
    // connection saw the same signal: idle ones close, busy ones finish their
    // request and close.
    drop(listener);
    connections.close();
    tracing::info!(drain_timeout = ?settings.drain_timeout, "draining in-flight requests");
    if tokio::time::timeout(settings.drain_timeout, connections.wait())
        .await
        .is_err()
    {
        tracing::warn!("drain timeout reached; closing the remaining connections");
    }
}

type ConnectionError = Box<dyn std::error::Error + Send + Sync>;

/// Serves one client connection with hyper's server, which is told to
/// finish gracefully when shutdown comes.
async fn serve_connection(
    io: TrackedIo<TcpStream>,
    client: Arc<ClientConnection>,
    builder: Arc<auto::Builder<TokioExecutor>>,
    mut shutdown: ShutdownSignal,
) -> Result<(), ConnectionError> {
    let service = client_service(client);
    let mut connection = pin!(builder.serve_connection_with_upgrades(TokioIo::new(io), service));
    tokio::select! {
        result = connection.as_mut() => return result,
        () = shutdown.recv() => {}
    }
    connection.as_mut().graceful_shutdown();
    connection.await
}

fn connection_builder(settings: &ListenerSettings) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // Head timeouts are enforced by `activity::expired`, which, unlike
        // hyper's, does not also cut idle keep-alive connections.
        .header_read_timeout(None)
        // With it, header names go upstream in the case the client wrote
        // them, and back in the upstream's; without it, in lower case, as
        // HTTP/2 writes them. It costs about a tenth of the CPU of a small
        // request (docs/performance.md).
        .preserve_header_case(settings.preserve_header_case)
        .max_buf_size(settings.max_header_bytes.max(MIN_HEADER_BYTES))
        .keep_alive(true);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(settings.max_header_bytes).unwrap_or(u32::MAX));
    builder
}

type ClientService =
    TowerToHyperService<tower_http::catch_panic::CatchPanic<ForwardService, PanicResponse>>;

/// The forwarding service of one client connection served by hyper.
#[derive(Clone)]
struct ForwardService {
    client: Arc<ClientConnection>,
}

type ForwardFuture = std::pin::Pin<
    Box<dyn std::future::Future<Output = Result<Response<ProxyResponseBody>, Infallible>> + Send>,
>;

impl tower::Service<http::Request<Incoming>> for ForwardService {
    type Response = Response<ProxyResponseBody>;
    type Error = Infallible;
    type Future = ForwardFuture;

    fn poll_ready(
        &mut self,
        _cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Result<(), Infallible>> {
        std::task::Poll::Ready(Ok(()))
    }

    fn call(&mut self, request: http::Request<Incoming>) -> ForwardFuture {
        Box::pin(forward(self.client.clone(), request).map(Ok))
    }
}

fn client_service(client: Arc<ClientConnection>) -> ClientService {
    let service = ServiceBuilder::new()
        .layer(CatchPanicLayer::custom(PanicResponse))
        .service(ForwardService { client });
    TowerToHyperService::new(service)
}

/// The answer when request handling panicked: a 500, and the process lives on.
#[derive(Debug, Clone, Copy)]
struct PanicResponse;

impl tower_http::catch_panic::ResponseForPanic for PanicResponse {
    type ResponseBody = Full<Bytes>;

    fn response_for_panic(
        &mut self,
        panic: Box<dyn std::any::Any + Send + 'static>,
    ) -> Response<Full<Bytes>> {
        panic_response(panic)
    }
}

fn record_connection_error(error: &(dyn std::error::Error + Send + Sync + 'static)) {
    let kind = match find_source::<hyper::Error>(error) {
        Some(e) if e.is_timeout() => "header_timeout",
        Some(e) if e.is_parse_too_large() => "header_too_large",
        Some(e) if e.is_parse() || e.is_parse_status() => "protocol",
        _ => "io",
    };
    if matches!(kind, "header_too_large" | "protocol") {
        metrics::counter!(telemetry::REQUEST_ERRORS, "kind" => "bad_request").increment(1);
    }
    metrics::counter!(telemetry::CONNECTION_ERRORS, "kind" => kind).increment(1);
    tracing::debug!(kind, error = %error, "client connection ended with an error");
}

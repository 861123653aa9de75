//! The way to the upstream, always through hyper's client: the client
//! connection's own upstream connection when it is free, a shared pool for
//! whatever cannot use it.
//!
//! A sidecar's client connections map one to one onto upstream connections:
//! an HTTP/1.1 client sends its requests one after another, so each client
//! connection keeps one upstream connection ([`PinnedUpstream`]) made with
//! hyper's connection API, and its requests skip the pool's bookkeeping. The
//! shared pool (hyper-util's pooled client) serves an h2c upstream, where one
//! multiplexed connection is the point, upgrades, uploads that are chunked
//! or larger than 64 KiB, and a request that finds its connection's pinned
//! upstream busy (concurrent streams of an HTTP/2 client).
//!
//! hyper writes every request head and its framing: the forward path hands
//! it a header map without Content-Length or Transfer-Encoding, and hyper
//! derives them from the body actually sent (its exact length, or chunked).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::body::RequestBody;

/// Largest request body sent on the pinned connection; larger and chunked
/// ones take the pool. Measured with bench/load.sh (1 MiB uploads, payload
/// analysis on, 4 interleaved rounds): 1,470 requests/s through the pool
/// against 1,322 on the pinned connection; small requests gain the other
/// way round (docs/performance.md).
const MAX_PINNED_BODY: u64 = 64 * 1024;

fn fits_pinned(body: &RequestBody) -> bool {
    http_body::Body::size_hint(body)
        .exact()
        .is_some_and(|length| length <= MAX_PINNED_BODY)
}

/// How long an idle pooled or pinned connection keeps TCP keepalive probes away.
const TCP_KEEPALIVE: Duration = Duration::from_secs(60);
/// How long the shared pool keeps an idle connection.
const POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(90);

/// Why the upstream could not be asked.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("connecting to {addr} timed out after {timeout:?}")]
    ConnectTimeout { addr: String, timeout: Duration },
    #[error("cannot connect to {addr}")]
    Connect {
        addr: String,
        #[source]
        source: std::io::Error,
    },
    #[error("the upstream connection failed")]
    Connection(#[source] hyper::Error),
    #[error("the pooled upstream connection failed")]
    Pool(#[source] hyper_util::client::legacy::Error),
    #[error("the request target cannot be made absolute for the pool")]
    Target(#[source] http::Error),
}

/// Where the upstream is and how to speak to it; shared by all connections.
pub struct Upstream {
    pool: Client<HttpConnector, RequestBody>,
    /// The base URL: scheme and authority of absolute URIs for the pool.
    base: Uri,
    /// `host:port` to connect pinned connections to.
    addr: String,
    /// The upstream's authority: the Host of requests that arrive without one.
    pub host: HeaderValue,
    connect_timeout: Duration,
    /// Pinned connections are used for an HTTP/1.1 upstream only.
    pin: bool,
    /// Write header names in the case the client sent them (`--preserve-header-case`).
    preserve_header_case: bool,
}

/// A client connection's own upstream connection.
#[derive(Default)]
pub struct PinnedUpstream(Mutex<Slot>);

#[derive(Default)]
enum Slot {
    /// No connection yet, or the last one closed.
    #[default]
    Empty,
    Idle(http1::SendRequest<RequestBody>),
    /// A request is using it.
    Leased,
}

/// The pinned upstream connection, lent to one exchange until its response
/// body has ended (or been dropped): hyper's connection takes the next
/// request only then, and a concurrent request takes the pool instead of
/// waiting behind a streaming answer.
pub struct Lease {
    owner: Arc<PinnedUpstream>,
    sender: Option<http1::SendRequest<RequestBody>>,
    /// The exchange ended cleanly, so the connection can take the next
    /// request; otherwise it is closed.
    reusable: bool,
}

impl Lease {
    /// Gives the connection back for the next request (its response
    /// body has ended).
    pub fn release(mut self) {
        self.reusable = true;
    }
}

impl PinnedUpstream {
    fn lease(self: &Arc<Self>) -> Option<Lease> {
        let mut slot = self.0.lock().ok()?;
        let sender = match std::mem::replace(&mut *slot, Slot::Leased) {
            Slot::Empty => None,
            Slot::Idle(sender) => Some(sender),
            Slot::Leased => return None,
        };
        Some(Lease {
            owner: self.clone(),
            sender,
            reusable: false,
        })
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Ok(mut slot) = self.owner.0.lock() {
            *slot = match self.sender.take() {
                Some(sender) if self.reusable && !sender.is_closed() => Slot::Idle(sender),
                _ => Slot::Empty,
            };
        }
    }
}

impl Upstream {
    pub fn new(
        base: &Uri,
        version: Version,
        connect_timeout: Duration,
        preserve_header_case: bool,
    ) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(TCP_KEEPALIVE));
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT)
            .http1_preserve_header_case(preserve_header_case)
            .set_host(false);
        if version == Version::HTTP_2 {
            builder.http2_only(true);
        }
        let host = base.host().unwrap_or("localhost");
        let port = base.port_u16().unwrap_or(80);
        Self {
            pool: builder.build(connector),
            base: base.clone(),
            addr: format!("{host}:{port}"),
            host: base
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
                .unwrap_or_else(|| HeaderValue::from_static("localhost")),
            connect_timeout,
            pin: version == Version::HTTP_11,
            preserve_header_case,
        }
    }

    /// Sends `request` (its URI the origin-form target, see
    /// [`super::set_upstream_target`]) on the client connection's pinned
    /// upstream connection when it can carry it and is free, on the shared
    /// pool otherwise. The lease of the pinned connection, if used, comes
    /// back with the response and must live as long as its body.
    pub async fn send(
        &self,
        pinned: &Arc<PinnedUpstream>,
        request: Request<RequestBody>,
        upgrade: bool,
    ) -> Result<(Response<Incoming>, Option<Lease>), UpstreamError> {
        if self.pin && !upgrade && fits_pinned(request.body()) {
            if let Some(lease) = pinned.lease() {
                return self.send_pinned(lease, request).await;
            }
        }
        self.send_pooled(request)
            .await
            .map(|response| (response, None))
    }

    /// One retry, on a fresh connection, for a request hyper gives back
    /// unsent: the kept connection was closed by the upstream while idle
    /// (keep-alive race), which says nothing about the request itself.
    async fn send_pinned(
        &self,
        mut lease: Lease,
        mut request: Request<RequestBody>,
    ) -> Result<(Response<Incoming>, Option<Lease>), UpstreamError> {
        let mut fresh = false;
        loop {
            let kept = match lease.sender.take() {
                Some(mut sender) => sender.ready().await.is_ok().then_some(sender),
                None => None,
            };
            let mut sender = match kept {
                Some(sender) => sender,
                None => {
                    fresh = true;
                    // Boxed: connecting is rare, and its future would
                    // otherwise make every request's future larger.
                    Box::pin(self.handshake()).await?
                }
            };
            match sender.try_send_request(request).await {
                Ok(response) => {
                    lease.sender = Some(sender);
                    return Ok((response, Some(lease)));
                }
                Err(mut error) => match error.take_message() {
                    Some(unsent) if !fresh => request = unsent,
                    _ => return Err(UpstreamError::Connection(error.into_error())),
                },
            }
        }
    }

    async fn send_pooled(
        &self,
        mut request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        // The pool picks its connection by the URI's scheme and authority.
        let target = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        *request.uri_mut() =
            super::absolute_uri(&self.base, target).map_err(UpstreamError::Target)?;
        self.pool
            .request(request)
            .await
            .map_err(UpstreamError::Pool)
    }

    /// A new HTTP/1.1 connection to the upstream, its hyper connection task
    /// spawned.
    async fn handshake(&self) -> Result<http1::SendRequest<RequestBody>, UpstreamError> {
        let stream = tokio::time::timeout(self.connect_timeout, TcpStream::connect(&self.addr))
            .await
            .map_err(|_| UpstreamError::ConnectTimeout {
                addr: self.addr.clone(),
                timeout: self.connect_timeout,
            })?
            .map_err(|source| UpstreamError::Connect {
                addr: self.addr.clone(),
                source,
            })?;
        let _ = stream.set_nodelay(true);
        let keepalive = socket2::TcpKeepalive::new().with_time(TCP_KEEPALIVE);
        let _ = socket2::SockRef::from(&stream).set_tcp_keepalive(&keepalive);
        let (sender, connection) = http1::Builder::new()
            .preserve_header_case(self.preserve_header_case)
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Connection)?;
        tokio::spawn(async move {
            if let Err(error) = connection.await {
                tracing::debug!(%error, "upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

//! The way to the upstream: the client connection's own pinned connection
//! (see [`super::direct`]), and a shared pool for whatever cannot use one.
//!
//! The shared pool (hyper-util's pooled client) serves an h2c upstream,
//! where one multiplexed connection is the point, upgrades and chunked
//! uploads, and a request that finds its connection's pinned upstream busy
//! (concurrent streams of an HTTP/2 client).

use std::future::{ready, Future};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::Either as Way;
use futures_util::TryFutureExt;

use http::header::HOST;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, Uri, Version};
use http_body_util::Either;
use hyper::body::Incoming;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpStream;

use super::body::RequestBody;
use super::direct::{self, Connection, DirectBody, DirectError, PinnedUpstream};
use super::headers::AddedFields;
use super::lane::RequestLines;

/// What the upstream request's head holds, noted while the forward path
/// rewrote it, so the way is chosen without looking its fields up again.
#[derive(Debug, Clone, Copy)]
pub struct HeadFacts {
    /// A Host field is present.
    pub has_host: bool,
    /// The request asks to switch protocols and keeps its Upgrade field.
    pub upgrade: bool,
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
    #[error(transparent)]
    Direct(#[from] DirectError),
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
    /// The Host value for requests that arrive without one.
    host: Option<HeaderValue>,
    connect_timeout: Duration,
    /// Pinned connections are used for an HTTP/1.1 upstream only.
    pin: bool,
}

impl Upstream {
    pub fn new(base: &Uri, version: Version, connect_timeout: Duration) -> Self {
        let mut connector = HttpConnector::new();
        connector.set_connect_timeout(Some(connect_timeout));
        connector.set_nodelay(true);
        connector.set_keepalive(Some(TCP_KEEPALIVE));
        let mut builder = Client::builder(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(POOL_IDLE_TIMEOUT);
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
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok()),
            connect_timeout,
            pin: version == Version::HTTP_11,
        }
    }

    /// Whether HTTP/1.1 requests may go on the client connection's own
    /// upstream connection (the upstream speaks HTTP/1.1).
    pub fn pins(&self) -> bool {
        self.pin
    }

    /// Sends `request` (its URI the origin-form target, see
    /// [`super::set_upstream_target`]), its fields the `lines` the lane read
    /// (less those marked left out) when given, with the `added` fields on the client
    /// connection's pinned upstream connection when it can carry it and is
    /// free, on the shared pool otherwise.
    ///
    /// The way is chosen here, before the returned future is first polled,
    /// and the future is the chosen way's own: an `async fn` around both
    /// would hold the request twice more and copy the whole of it (a few KiB)
    /// at each step up the chain of futures.
    pub fn send<'a>(
        &'a self,
        pinned: &Arc<PinnedUpstream>,
        mut request: Request<RequestBody>,
        lines: Option<&'a RequestLines>,
        added: &'a AddedFields,
        facts: HeadFacts,
    ) -> impl Future<Output = Result<Response<UpstreamBody>, UpstreamError>> + Send + 'a {
        if self.pin && direct::can_carry(&request, facts.upgrade) {
            if let Some((lease, idle)) = pinned.checkout() {
                if !facts.has_host {
                    if let Some(host) = &self.host {
                        request.headers_mut().insert(HOST, host.clone());
                    }
                }
                let exchange =
                    direct::exchange(lease, idle, request, lines, added, || self.connect());
                return Way::Left(exchange.map_ok(|response| response.map(Either::Right)));
            }
        }
        if let Some(lines) = lines {
            lines.lines.append_to(request.headers_mut(), lines.left_out);
        }
        added.insert_into(request.headers_mut());
        // The pool picks its connection by the URI's scheme and authority.
        let target = request
            .uri()
            .path_and_query()
            .cloned()
            .unwrap_or_else(|| PathAndQuery::from_static("/"));
        match super::absolute_uri(&self.base, target) {
            Ok(uri) => *request.uri_mut() = uri,
            Err(error) => return Way::Right(Way::Right(ready(Err(UpstreamError::Target(error))))),
        }
        Way::Right(Way::Left(
            self.pool
                .request(request)
                .map_err(UpstreamError::Pool)
                .map_ok(|response| response.map(Either::Left)),
        ))
    }

    async fn connect(&self) -> Result<Connection, UpstreamError> {
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
        Ok(Connection::new(stream))
    }
}

/// A response body from either way to the upstream: the pooled client's
/// (`Left`) or the direct path's (`Right`). `Either` boxes the two error
/// types into one.
pub type UpstreamBody = Either<Incoming, DirectBody>;

/// The fields of a response from the direct path that were kept as they
/// came; its header map is then empty (see [`direct::RawFields`]).
pub fn raw_fields(body: &UpstreamBody) -> Option<&direct::RawFields> {
    match body {
        Either::Right(direct) => direct.raw_fields(),
        Either::Left(_) => None,
    }
}

pub fn raw_fields_mut(body: &mut UpstreamBody) -> Option<&mut direct::RawFields> {
    match body {
        Either::Right(direct) => direct.raw_fields_mut(),
        Either::Left(_) => None,
    }
}

pub fn take_raw_fields(body: &mut UpstreamBody) -> Option<Box<direct::RawFields>> {
    match body {
        Either::Right(direct) => direct.take_raw_fields(),
        Either::Left(_) => None,
    }
}

//! The way to the upstream: a connection pinned to each client connection,
//! and a shared pool for whatever cannot use one.
//!
//! An HTTP/1.1 client connection carries one request at a time (RFC 9112
//! §9.3: a client "MUST NOT send a request on a connection until it has
//! received the response to the previous one" unless pipelining, which hyper
//! answers in order). So each client connection gets one upstream HTTP/1.1
//! connection of its own, opened on its first request and closed with it.
//! A request then goes straight to that connection's dispatcher: no pool
//! lookup, no pool lock, no checkout future. On a single core this roughly
//! halves the user-space time the proxy spends per small request (see the
//! README's Performance section).
//!
//! The shared pool (hyper-util's pooled client) serves the rest: an h2c
//! upstream, where one multiplexed connection is the point, and a request
//! that finds its connection's pinned upstream busy (concurrent streams of an
//! HTTP/2 client).

use std::sync::Mutex;
use std::time::Duration;

use http::header::HOST;
use http::uri::PathAndQuery;
use http::{HeaderValue, Request, Response, Uri, Version};
use hyper::body::Incoming;
use hyper::client::conn::http1::SendRequest;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::net::TcpStream;

use super::body::RequestBody;

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
    #[error("HTTP/1.1 handshake with the upstream failed")]
    Handshake(#[source] hyper::Error),
    #[error("the upstream connection failed")]
    Exchange(#[source] hyper::Error),
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

    /// Sends `request` (its URI the origin-form target, see
    /// [`super::upstream_target`]) on the client connection's pinned upstream
    /// connection when it is free, on the shared pool otherwise.
    pub async fn send(
        &self,
        pinned: &PinnedUpstream,
        mut request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        if let Some(checkout) = self.pin.then(|| pinned.checkout()).flatten() {
            return self.send_pinned(checkout, request).await;
        }
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

    async fn send_pinned(
        &self,
        mut checkout: Checkout<'_>,
        mut request: Request<RequestBody>,
    ) -> Result<Response<Incoming>, UpstreamError> {
        if !request.headers().contains_key(HOST) {
            if let Some(host) = &self.host {
                request.headers_mut().insert(HOST, host.clone());
            }
        }
        let mut fresh = false;
        loop {
            let mut sender = match checkout.sender.take() {
                Some(sender) if !sender.is_closed() => sender,
                _ => {
                    fresh = true;
                    self.connect().await?
                }
            };
            if let Err(error) = sender.ready().await {
                if fresh {
                    return Err(UpstreamError::Exchange(error));
                }
                continue;
            }
            match sender.try_send_request(request).await {
                Ok(response) => {
                    checkout.sender = Some(sender);
                    return Ok(response);
                }
                Err(mut error) => match error.take_message() {
                    // The request never left: the kept-alive connection was
                    // closed by the upstream in between. One retry on a new one.
                    Some(unsent) if !fresh => request = unsent,
                    _ => return Err(UpstreamError::Exchange(error.into_error())),
                },
            }
        }
    }

    async fn connect(&self) -> Result<SendRequest<RequestBody>, UpstreamError> {
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
        let (sender, connection) = hyper::client::conn::http1::Builder::new()
            .handshake(TokioIo::new(stream))
            .await
            .map_err(UpstreamError::Handshake)?;
        tokio::spawn(async move {
            if let Err(error) = connection.with_upgrades().await {
                tracing::debug!(%error, "pinned upstream connection ended with an error");
            }
        });
        Ok(sender)
    }
}

/// The upstream connection of one client connection.
#[derive(Default)]
pub struct PinnedUpstream {
    slot: Mutex<Slot>,
}

#[derive(Default)]
enum Slot {
    /// Not connected yet, or the last exchange broke the connection.
    #[default]
    Empty,
    Idle(SendRequest<RequestBody>),
    /// A request is using it.
    Busy,
}

impl PinnedUpstream {
    /// Takes the connection for one request; `None` when another request of
    /// the same client connection has it.
    fn checkout(&self) -> Option<Checkout<'_>> {
        let mut slot = self.slot.lock().unwrap_or_else(|p| p.into_inner());
        let sender = match std::mem::replace(&mut *slot, Slot::Busy) {
            Slot::Busy => return None,
            Slot::Empty => None,
            Slot::Idle(sender) => Some(sender),
        };
        Some(Checkout {
            owner: self,
            sender,
        })
    }
}

/// A checked-out pinned connection; goes back when dropped, or is dropped
/// (closing the upstream connection after its exchange) when the request
/// failed or was abandoned before its response head.
struct Checkout<'a> {
    owner: &'a PinnedUpstream,
    sender: Option<SendRequest<RequestBody>>,
}

impl Drop for Checkout<'_> {
    fn drop(&mut self) {
        let mut slot = self.owner.slot.lock().unwrap_or_else(|p| p.into_inner());
        *slot = match self.sender.take() {
            Some(sender) => Slot::Idle(sender),
            None => Slot::Empty,
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_busy_pinned_connection_sends_the_next_request_to_the_pool() {
        let pinned = PinnedUpstream::default();
        let first = pinned.checkout();
        assert!(first.is_some());
        assert!(pinned.checkout().is_none(), "second concurrent request");
        drop(first);
        assert!(pinned.checkout().is_some(), "free again after the first");
    }

    #[test]
    fn the_upstream_address_comes_from_the_base_uri() {
        let base: Uri = "http://model:8080/v2".parse().unwrap();
        let upstream = Upstream::new(&base, Version::HTTP_11, Duration::from_secs(1));
        assert_eq!(upstream.addr, "model:8080");
        assert_eq!(upstream.host.as_ref().unwrap(), "model:8080");
        let default_port: Uri = "http://model".parse().unwrap();
        let upstream = Upstream::new(&default_port, Version::HTTP_2, Duration::from_secs(1));
        assert_eq!(upstream.addr, "model:80");
        assert!(!upstream.pin);
    }
}

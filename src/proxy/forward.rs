//! The forwarding service: one client request in, one upstream request out.
//!
//! hyper has parsed the request and will write the upstream request; this
//! module decides what passes. The head is checked (`policy`), hop-by-hop
//! fields are removed (`headers`), the forwarding fields and the request id
//! are set (`forwarding`), the URI is pointed at the upstream, and the bodies
//! are wrapped to be counted; nothing else changes. The body bytes, the other
//! headers (repeated ones included, their names in the case they came in)
//! and trailers pass as they came. Content-Length and Transfer-Encoding are
//! never copied from one side to the other: hyper frames each message it
//! writes from the body it actually sends.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, HOST, UPGRADE};
use http::{HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};
use hyper::body::Incoming;

use super::activity::ConnActivity;
use super::body::{RequestBody, ResponseBody};
use super::error::{find_source, source_chain, ErrorKind, ProxyError};
use super::exchange::{Exchange, ExchangeGuard};
use super::forwarding::{ForwardingPolicy, Peer};
use super::headers::{self, options, RequestFields, X_REQUEST_ID};
use super::metrics::{Outcome, RequestMetrics};
use super::policy;
use super::stats::RequestStats;
use super::tap::PayloadContext;
use super::upgrade;
use super::upstream::{PinnedUpstream, Upstream, UpstreamError};
use crate::health::Health;
use crate::payload::{RequestTap, ResponseTap};
use crate::sample::ClientChoice;
use crate::telemetry::{self, label};

/// The body type of every response the proxy returns.
pub type ProxyResponseBody = Either<ResponseBody, Full<Bytes>>;

/// Settings of the forward path, fixed at start.
#[derive(Debug, Clone)]
pub struct ForwardSettings {
    pub upstream: http::Uri,
    pub upstream_version: Version,
    pub upstream_timeout: Duration,
    pub max_body_bytes: u64,
    pub forwarding: ForwardingPolicy,
    /// Protocols a client may switch to (`--allowed-upgrades`), lower case.
    pub allowed_upgrades: Vec<String>,
    pub model_type: &'static str,
}

/// Everything the forwarding service shares across requests.
pub struct ProxyContext {
    pub upstream: Upstream,
    pub settings: ForwardSettings,
    pub metrics: Arc<RequestMetrics>,
    pub stats: Arc<RequestStats>,
    pub health: Arc<Health>,
    /// Payload taps and sampling; `None` runs the proxy without them.
    pub payload: Option<Arc<PayloadContext>>,
}

/// What the forward path knows of one client connection.
pub struct ClientConnection {
    pub context: Arc<ProxyContext>,
    pub peer: Peer,
    pub activity: Arc<ConnActivity>,
    /// The connection's own upstream connection (see `upstream`).
    pub pinned: Arc<PinnedUpstream>,
}

/// Forwards one request. Never fails: problems become JSON answers.
pub async fn forward(
    client: Arc<ClientConnection>,
    request: Request<Incoming>,
) -> Response<ProxyResponseBody> {
    let started = Instant::now();
    let context = &client.context;
    let route = label::route(request.uri().path());
    let payload = context.payload.as_ref();
    let fields = RequestFields::read(request.headers());
    let request_id = fields
        .request_id
        .clone()
        .unwrap_or_else(headers::new_request_id);
    let sampled = payload.is_some_and(|p| {
        p.sampler
            .decide_with(ClientChoice::from_headers(request.headers()))
    });
    let exchange = Arc::new(Exchange::new(
        started,
        route,
        context.settings.model_type,
        sampled,
    ));
    let guard = ExchangeGuard::new(
        exchange.clone(),
        context.metrics.clone(),
        context.stats.clone(),
        client.activity.request_started(request.version()),
    );

    let (mut parts, body) = request.into_parts();
    if let Err(error) = check_request(context, &parts, &fields) {
        return refuse(guard, error, &request_id);
    }
    let upgrade = allowed_upgrade(&context.settings, &parts, &fields);
    let client_upgrade = match upgrade {
        Some(_) => parts.extensions.remove::<hyper::upgrade::OnUpgrade>(),
        None => None,
    };
    let request_tap = payload.map(|payload| {
        let copy = sampled.then(|| payload.sampler.body_copy(fields.content_length));
        let content_type = parts
            .headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok());
        let tap = RequestTap::new(
            parts.uri.path(),
            content_type,
            payload.classifier.clone(),
            copy,
        );
        (tap, payload.clone())
    });
    let head_request = parts.method == Method::HEAD;
    if let Err(error) = upstream_head(
        context,
        &client.peer,
        &mut parts,
        &fields,
        &request_id,
        upgrade.clone(),
    ) {
        return refuse(guard, error, &request_id);
    }
    let limit = context.settings.max_body_bytes;
    let body = RequestBody::new(body, exchange.clone(), limit, request_tap);
    let upstream_request = Request::from_parts(parts, body);

    let sent = Instant::now();
    let inbound_overhead = sent - started;
    let sending = context
        .upstream
        .send(&client.pinned, upstream_request, upgrade.is_some());
    let answer = client
        .activity
        .upstream_timer
        .within(context.settings.upstream_timeout, sending)
        .await;
    let head_arrived = Instant::now();
    let (response, lease) = match answer {
        Err(_) => {
            return fail(
                guard,
                ProxyError::UpstreamTimeout(context.settings.upstream_timeout),
                &request_id,
            )
        }
        Ok(Err(error)) => {
            let error = classify_upstream_error(&exchange, &context.settings, &error);
            return fail(guard, error, &request_id);
        }
        Ok(Ok(answer)) => answer,
    };
    answer_from_upstream(
        context,
        guard,
        response,
        lease,
        Answering {
            request_id,
            sampled,
            head_request,
            upgrade: client_upgrade,
            inbound_overhead,
            head_arrived,
        },
    )
}

/// What the answer needs to know of its request.
struct Answering {
    request_id: HeaderValue,
    sampled: bool,
    head_request: bool,
    /// The client side's upgrade, when the request asked to switch to an
    /// allowed protocol.
    upgrade: Option<hyper::upgrade::OnUpgrade>,
    inbound_overhead: Duration,
    head_arrived: Instant,
}

/// Turns the upstream's response into the client's: hop-by-hop fields and
/// the framing fields go (hyper frames the answer from its body), the
/// request id is set, and the body is wrapped to be counted.
fn answer_from_upstream(
    context: &ProxyContext,
    mut guard: ExchangeGuard,
    response: Response<Incoming>,
    lease: Option<super::upstream::Lease>,
    answering: Answering,
) -> Response<ProxyResponseBody> {
    let Answering {
        request_id,
        sampled,
        head_request,
        upgrade,
        inbound_overhead,
        head_arrived,
    } = answering;
    let route = guard.exchange().route;
    let started = guard.exchange().started;
    guard
        .metrics()
        .time_to_first_byte(route, head_arrived - started);

    let status = response.status();
    guard.set_status(status.as_u16());
    let outcome = if status.is_server_error() {
        guard.error(ErrorKind::Upstream5xx);
        Outcome::Error
    } else {
        Outcome::Success
    };

    let (mut parts, body) = response.into_parts();
    if let Some(payload) = context.payload.as_ref() {
        let content_type = parts.headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes);
        let copy = sampled.then(|| payload.sampler.body_copy(declared_length(&parts.headers)));
        let tap = ResponseTap::for_response(status, content_type, copy);
        guard.watch_response(tap, payload.clone(), request_id.clone());
    }

    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    let keep_upgrade = match upgrade {
        Some(_) if switching => parts.headers.get(UPGRADE).cloned(),
        _ => None,
    };
    headers::remove_hop_by_hop(&mut parts.headers, keep_upgrade.clone());
    // Transfer-Encoding went with the hop-by-hop fields. The length of the
    // answer to a HEAD is the length the GET would have had, and a 304's
    // describes the stored answer: neither frames a body.
    if !head_request && status != StatusCode::NOT_MODIFIED {
        parts.headers.remove(CONTENT_LENGTH);
    }
    parts
        .headers
        .insert(X_REQUEST_ID.clone(), request_id.clone());

    if switching {
        match (upgrade, keep_upgrade) {
            (Some(client_upgrade), Some(protocol)) => {
                let upstream_upgrade = hyper::upgrade::on(Response::from_parts(parts.clone(), ()));
                upgrade::spawn_tunnel(client_upgrade, upstream_upgrade, &protocol, &request_id);
            }
            _ => {
                return fail(
                    guard,
                    ProxyError::UpstreamUnreachable(
                        "the upstream switched protocols without an upgrade the proxy allowed"
                            .into(),
                    ),
                    &request_id,
                )
            }
        }
    }

    guard
        .metrics()
        .overhead(route, inbound_overhead + head_arrived.elapsed());
    let body = ResponseBody::new(
        body,
        lease,
        guard,
        context.settings.upstream_timeout,
        outcome,
    );
    Response::from_parts(parts, Either::Left(body))
}

/// Refusals decided from the request head alone.
fn check_request(
    context: &ProxyContext,
    parts: &http::request::Parts,
    fields: &RequestFields,
) -> Result<(), ProxyError> {
    if context.health.is_draining() {
        return Err(ProxyError::Draining);
    }
    policy::check(parts, fields)?;
    if let Some(length) = fields.content_length {
        if length > context.settings.max_body_bytes {
            return Err(ProxyError::TooLarge {
                limit: context.settings.max_body_bytes,
            });
        }
    }
    Ok(())
}

/// The Upgrade value to forward when the request asks to switch to a
/// protocol on `--allowed-upgrades` (only the allowed protocols of its list
/// go on); `None` forwards the request as a plain one, without Upgrade.
///
/// RFC 9110 §7.8: "A server MAY ignore a received Upgrade header field if it
/// wishes to continue using the current protocol on that connection."
/// HTTP/2 has no Upgrade (RFC 9113 §8.6), and an h2c upstream cannot take
/// one, so only HTTP/1.1 on both sides tunnels.
fn allowed_upgrade(
    settings: &ForwardSettings,
    parts: &http::request::Parts,
    fields: &RequestFields,
) -> Option<HeaderValue> {
    if !fields.upgrade
        || parts.version != Version::HTTP_11
        || settings.upstream_version != Version::HTTP_11
    {
        return None;
    }
    let allowed: Vec<&str> = parts
        .headers
        .get_all(UPGRADE)
        .iter()
        .flat_map(options)
        .filter(|protocol| {
            let name = protocol.split('/').next().unwrap_or("");
            settings
                .allowed_upgrades
                .iter()
                .any(|allowed| allowed.eq_ignore_ascii_case(name))
        })
        .collect();
    if allowed.is_empty() {
        return None;
    }
    HeaderValue::from_str(&allowed.join(", ")).ok()
}

/// Rewrites the client's request head into the upstream request's.
fn upstream_head(
    context: &ProxyContext,
    peer: &Peer,
    parts: &mut http::request::Parts,
    fields: &RequestFields,
    request_id: &HeaderValue,
    upgrade: Option<HeaderValue>,
) -> Result<(), ProxyError> {
    let settings = &context.settings;
    // An absolute-form target names the host (RFC 9112 §3.2.2); an HTTP/2
    // request names it in :authority, which becomes Host on HTTP/1.1. A
    // request with neither (HTTP/1.0) gets the upstream's.
    match policy::target_host(parts) {
        Some(host) => {
            parts.headers.insert(HOST, host);
        }
        None if fields.hosts == 0 => {
            parts.headers.insert(HOST, context.upstream.host.clone());
        }
        None => {}
    }
    if fields.hop_by_hop || upgrade.is_some() {
        headers::remove_present_hop_by_hop(&mut parts.headers, upgrade);
    }
    // hyper frames the forwarded body from what is actually sent (hyper
    // refuses a request whose Content-Length is not a number).
    if fields.content_length.is_some() {
        parts.headers.remove(CONTENT_LENGTH);
    }
    settings
        .forwarding
        .apply(&mut parts.headers, fields, peer, request_id);
    // Origin form: the pinned connection sends it as it is, the shared pool
    // makes it absolute (`Upstream::send`).
    super::set_upstream_target(&settings.upstream, &mut parts.uri)
        .map_err(|_| ProxyError::BadRequest("the request target cannot be forwarded"))?;
    parts.version = settings.upstream_version;
    Ok(())
}

fn classify_upstream_error(
    exchange: &Exchange,
    settings: &ForwardSettings,
    error: &UpstreamError,
) -> ProxyError {
    if exchange.is_over_limit() {
        return ProxyError::TooLarge {
            limit: settings.max_body_bytes,
        };
    }
    if exchange.client_body_failed() {
        return ProxyError::BadRequest(
            "the client's request body broke off before it was complete",
        );
    }
    if matches!(error, UpstreamError::ConnectTimeout { .. }) {
        return ProxyError::UpstreamTimeout(settings.upstream_timeout);
    }
    if let Some(io) = find_source::<std::io::Error>(error) {
        if io.kind() == std::io::ErrorKind::TimedOut {
            return ProxyError::UpstreamTimeout(settings.upstream_timeout);
        }
    }
    ProxyError::UpstreamUnreachable(source_chain(error))
}

/// Answers a request with the proxy's own JSON error and records it.
///
/// `refuse` answers a request the proxy did not forward; [`fail`] one that
/// went (at least in part) to the upstream.
fn refuse(
    guard: ExchangeGuard,
    error: ProxyError,
    request_id: &HeaderValue,
) -> Response<ProxyResponseBody> {
    answer_with_error(guard, error, request_id, false)
}

fn fail(
    guard: ExchangeGuard,
    error: ProxyError,
    request_id: &HeaderValue,
) -> Response<ProxyResponseBody> {
    answer_with_error(guard, error, request_id, true)
}

fn answer_with_error(
    mut guard: ExchangeGuard,
    error: ProxyError,
    request_id: &HeaderValue,
    forwarded: bool,
) -> Response<ProxyResponseBody> {
    let response = error.to_response(request_id);
    guard.set_status(response.status().as_u16());
    let body_len = response_len(&response);
    guard.add_response_bytes(body_len);
    let outcome = match &error {
        ProxyError::UpstreamTimeout(_) => Outcome::Timeout,
        _ => Outcome::Error,
    };
    if let Some(kind) = error.kind() {
        guard.error(kind);
    }
    if let Some(reason) = error.refusal().filter(|_| !forwarded) {
        metrics::counter!(telemetry::REQUESTS_REFUSED, "reason" => reason).increment(1);
        tracing::debug!(request_id = request_id.to_str().unwrap_or(""), %error, "request refused");
    } else {
        tracing::warn!(request_id = request_id.to_str().unwrap_or(""), %error, "request failed");
    }
    guard.finish(outcome);
    response.map(Either::Right)
}

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn response_len(response: &Response<Full<Bytes>>) -> u64 {
    http_body::Body::size_hint(response.body())
        .exact()
        .unwrap_or(0)
}

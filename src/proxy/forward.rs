//! The forwarding service: one client request in, one upstream request out.
//!
//! The request head is rewritten (hop-by-hop fields removed, forwarding and
//! request-id headers added, the URI pointed at the upstream), the bodies are
//! wrapped to be counted, and nothing else changes: the body bytes, the other
//! headers (repeated ones included) and trailers pass as they came.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use http::header::{CONTENT_TYPE, HOST};
use http::{HeaderValue, Request, Response, StatusCode, Version};
use http_body_util::{Either, Full};

use super::activity::ConnActivity;
use super::body::{RequestBody, ResponseBody};
use super::client_body::ClientBody;
use super::direct::{PinnedUpstream, RawFields};
use super::error::{find_source, source_chain, ErrorKind, ProxyError};
use super::exchange::{Exchange, ExchangeGuard};
use super::headers::{self, AddedFields, ClientFields, RequestFields, X_REQUEST_ID};
use super::lane::RequestLines;
use super::metrics::{Outcome, RequestMetrics};
use super::stats::RequestStats;
use super::tap::PayloadContext;
use super::upgrade;
use super::upstream::{self, HeadFacts, Upstream, UpstreamError};
use crate::health::Health;
use crate::payload::{RequestTap, ResponseTap};
use crate::sample::ClientChoice;
use crate::telemetry::label;

/// The body type of every response the proxy returns.
pub type ProxyResponseBody = Either<ResponseBody, Full<Bytes>>;

/// Settings of the forward path, fixed at start.
#[derive(Debug, Clone)]
pub struct ForwardSettings {
    pub upstream: http::Uri,
    pub upstream_version: Version,
    pub upstream_timeout: Duration,
    pub max_body_bytes: u64,
    pub forwarded_headers: bool,
    pub model_type: &'static str,
}

/// The upstream's fields of a response whose head the direct path kept as
/// it came (its header map holds only what the proxy added, if anything).
pub fn raw_fields(body: &ProxyResponseBody) -> Option<&RawFields> {
    match body {
        Either::Left(body) => body.raw_fields(),
        Either::Right(_) => None,
    }
}

/// Moves raw fields into the response's header map, for a client connection
/// served by hyper, which writes heads from the map alone. The direct path
/// keeps lines only for a request that came as lines (a lane client's), so
/// this finds none today; it keeps hyper's answers whole whatever that rule
/// becomes.
pub fn into_header_map(mut response: Response<ProxyResponseBody>) -> Response<ProxyResponseBody> {
    if let Either::Left(body) = response.body_mut() {
        if let Some(raw) = body.take_raw_fields() {
            let headers = response.headers_mut();
            raw.append_to(headers);
            if let Some(request_id) = raw.request_id() {
                headers.insert(X_REQUEST_ID.clone(), request_id.clone());
            }
        }
    }
    response
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

/// Forwards one request. Never fails: problems become JSON answers.
///
/// `lines`: the request's fields as the lane read them, its header map then
/// empty. They are forwarded as they came where nothing on the way reads a
/// map (an HTTP/1.1 upstream, no field named by Connection); elsewhere they
/// are put into the map first.
pub async fn forward(
    context: Arc<ProxyContext>,
    forwarded_for: HeaderValue,
    connection: Arc<ConnActivity>,
    pinned: Arc<PinnedUpstream>,
    mut request: Request<ClientBody>,
    lines: Option<Box<RequestLines>>,
) -> Response<ProxyResponseBody> {
    let started = Instant::now();
    let route = label::route(request.uri().path());
    let payload = context.payload.as_ref();
    let mut lines = match lines {
        Some(lines) if context.upstream.pins() && !lines.connection_names_other => Some(lines),
        Some(lines) => {
            lines.append_all_to(request.headers_mut());
            None
        }
        None => None,
    };
    let fields = match &lines {
        Some(lines) => RequestFields::from_lines(lines),
        None => RequestFields::read(request.headers()),
    };
    let request_id = fields
        .request_id
        .clone()
        .unwrap_or_else(headers::new_request_id);
    let sampled = payload.is_some_and(|p| {
        p.sampler.decide_with(match &lines {
            Some(lines) => ClientChoice::from_value(lines.sample()),
            None => ClientChoice::from_headers(request.headers()),
        })
    });
    let exchange = Arc::new(Exchange::new(
        started,
        route,
        context.settings.model_type,
        sampled,
    ));
    let (in_flight, ambiguous_framing) = connection.request_started();
    let mut guard = ExchangeGuard::new(
        exchange.clone(),
        context.metrics.clone(),
        context.stats.clone(),
        in_flight,
    );

    if let Err(error) = check_request(&context, &fields, ambiguous_framing) {
        return refuse(guard, error, &request_id);
    }

    let wants_upgrade = fields.upgrade;
    let client_upgrade = wants_upgrade.then(|| hyper::upgrade::on(&mut request));
    let request_tap = payload.map(|payload| {
        let copy = sampled.then(|| payload.sampler.body_copy(fields.content_length));
        let content_type = match &lines {
            Some(lines) => lines.content_type(),
            None => request
                .headers()
                .get(CONTENT_TYPE)
                .map(HeaderValue::as_bytes),
        };
        let content_type = content_type.and_then(|v| std::str::from_utf8(v).ok());
        let tap = RequestTap::new(
            request.uri().path(),
            content_type,
            payload.classifier.clone(),
            copy,
        );
        (tap, payload.clone())
    });
    let (upstream_request, added, facts) = match upstream_request(
        &context.settings,
        &forwarded_for,
        request,
        lines.as_deref_mut(),
        &fields,
        &request_id,
        |body| {
            let limit = context.settings.max_body_bytes;
            RequestBody::new(body, exchange.clone(), limit, request_tap)
        },
    ) {
        Ok(request) => request,
        Err(error) => return refuse(guard, error, &request_id),
    };

    let sent = Instant::now();
    let inbound_overhead = sent - started;
    // Pinned here and lent to the deadline: the send future is the largest
    // part of this one, and each move of it is a copy.
    let sending = std::pin::pin!(context.upstream.send(
        &pinned,
        upstream_request,
        lines.as_deref(),
        &added,
        facts
    ));
    let answer = connection
        .upstream_timer
        .within(context.settings.upstream_timeout, sending)
        .await;
    let head_arrived = Instant::now();
    let response = match answer {
        Err(_) => {
            return refuse(
                guard,
                ProxyError::UpstreamTimeout(context.settings.upstream_timeout),
                &request_id,
            )
        }
        Ok(Err(error)) => {
            let error = classify_client_error(&exchange, &context.settings, &error);
            return refuse(guard, error, &request_id);
        }
        Ok(Ok(response)) => response,
    };
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

    let (mut parts, mut body) = response.into_parts();
    if let Some(payload) = payload {
        let (content_type, declared_length) = match upstream::raw_fields(&body) {
            Some(raw) => (raw.content_type(), raw.content_length()),
            None => (
                parts.headers.get(CONTENT_TYPE).map(HeaderValue::as_bytes),
                declared_length(&parts.headers),
            ),
        };
        let copy = sampled.then(|| payload.sampler.body_copy(declared_length));
        let tap = ResponseTap::for_response(status, content_type, copy);
        guard.watch_response(tap, payload.clone(), request_id.clone());
    }

    let switching = status == StatusCode::SWITCHING_PROTOCOLS;
    match upstream::raw_fields_mut(&mut body) {
        // Hop-by-hop lines and the upstream's own request id are already
        // marked to be left out.
        Some(raw) => raw.set_request_id(request_id.clone()),
        None => {
            headers::remove_hop_by_hop(&mut parts.headers, switching && wants_upgrade);
            parts
                .headers
                .insert(X_REQUEST_ID.clone(), request_id.clone());
        }
    }

    if switching {
        let upstream_upgrade = hyper::upgrade::on(Response::from_parts(parts.clone(), ()));
        match client_upgrade {
            Some(client_upgrade) => {
                upgrade::spawn_tunnel(client_upgrade, upstream_upgrade, request_id.clone())
            }
            None => {
                return refuse(
                    guard,
                    ProxyError::Internal(
                        "upstream switched protocols without an upgrade request".into(),
                    ),
                    &request_id,
                )
            }
        }
    }

    let body = ResponseBody::new(
        body,
        guard_with_overhead(guard, inbound_overhead, head_arrived),
        context.settings.upstream_timeout,
        outcome,
    );
    Response::from_parts(parts, Either::Left(body))
}

/// Records the proxy's own time before the response head goes back.
fn guard_with_overhead(
    guard: ExchangeGuard,
    inbound: Duration,
    head_arrived: Instant,
) -> ExchangeGuard {
    let route = guard.exchange().route;
    guard
        .metrics()
        .overhead(route, inbound + head_arrived.elapsed());
    guard
}

/// Refusals decided from the request head alone.
fn check_request(
    context: &ProxyContext,
    fields: &RequestFields,
    ambiguous_on_wire: bool,
) -> Result<(), ProxyError> {
    if context.health.is_draining() {
        return Err(ProxyError::Draining);
    }
    if ambiguous_on_wire || fields.ambiguous_framing {
        return Err(ProxyError::BadRequest(
            "conflicting Content-Length / Transfer-Encoding framing is not forwarded (RFC 9112 section 6.3)",
        ));
    }
    if let Some(length) = fields.content_length {
        if length > context.settings.max_body_bytes {
            return Err(ProxyError::TooLarge {
                limit: context.settings.max_body_bytes,
            });
        }
    }
    Ok(())
}

/// Rewrites the client's request into the upstream request (its body
/// wrapped by `wrap_body`) and the fields to add to it, with what its head
/// holds; `lines`: the request's fields as the lane read them.
fn upstream_request(
    settings: &ForwardSettings,
    forwarded_for: &HeaderValue,
    request: Request<ClientBody>,
    lines: Option<&mut RequestLines>,
    fields: &RequestFields,
    request_id: &HeaderValue,
    wrap_body: impl FnOnce(ClientBody) -> RequestBody,
) -> Result<(Request<RequestBody>, AddedFields, HeadFacts), ProxyError> {
    let (mut parts, body) = request.into_parts();
    // HTTP/2 clients send the authority in the URI, not in Host; keep it as Host.
    let mut has_host = fields.has_host;
    if !has_host {
        if let Some(authority) = parts.uri.authority() {
            if let Ok(value) = HeaderValue::from_str(authority.as_str()) {
                parts.headers.insert(HOST, value);
                has_host = true;
            }
        }
    }
    // Origin form: the pinned connection sends it as it is, the shared pool
    // makes it absolute (`Upstream::send`).
    super::set_upstream_target(&settings.upstream, &mut parts.uri)
        .map_err(|_| ProxyError::BadRequest("the request target cannot be forwarded"))?;
    parts.version = settings.upstream_version;
    let keep_upgrade = fields.upgrade && settings.upstream_version == Version::HTTP_11;
    let given = match lines {
        // Connection names no other field here: its line and the other
        // hop-by-hop ones are all that goes.
        Some(lines) => {
            lines.left_out = lines.hop_by_hop;
            ClientFields::Lines(lines)
        }
        None => {
            if fields.hop_by_hop || keep_upgrade {
                headers::remove_present_hop_by_hop(&mut parts.headers, keep_upgrade);
                // Connection may have named Host itself.
                has_host = parts.headers.contains_key(HOST);
            }
            ClientFields::Map(&mut parts.headers)
        }
    };
    let added = AddedFields::new(
        given,
        fields,
        settings.forwarded_headers,
        forwarded_for,
        request_id,
    );
    let facts = HeadFacts {
        has_host,
        upgrade: keep_upgrade,
    };
    Ok((Request::from_parts(parts, wrap_body(body)), added, facts))
}

fn classify_client_error(
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
fn refuse(
    mut guard: ExchangeGuard,
    error: ProxyError,
    request_id: &HeaderValue,
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
    if matches!(
        error,
        ProxyError::BadRequest(_) | ProxyError::TooLarge { .. } | ProxyError::Draining
    ) {
        tracing::debug!(request_id = request_id.to_str().unwrap_or(""), %error, "request refused");
    } else {
        tracing::warn!(request_id = request_id.to_str().unwrap_or(""), %error, "request failed");
    }
    guard.finish(outcome);
    response.map(Either::Right)
}

fn declared_length(headers: &http::HeaderMap) -> Option<u64> {
    headers
        .get(http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok())
}

fn response_len(response: &Response<Full<Bytes>>) -> u64 {
    http_body::Body::size_hint(response.body())
        .exact()
        .unwrap_or(0)
}

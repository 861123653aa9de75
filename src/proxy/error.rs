//! Errors of the forward path and the JSON answers the proxy makes itself.
//!
//! Every answer the proxy makes is `{"error": "...", "detail": "...",
//! "request_id": "..."}` with a status that says who failed; the upstream's
//! own errors are never rewritten.

use bytes::Bytes;
use http::{HeaderValue, Response, StatusCode};
use http_body_util::Full;

use super::headers::X_REQUEST_ID;
use super::policy::Refusal;

/// Why the proxy answered a request itself.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("upstream unreachable: {0}")]
    UpstreamUnreachable(String),
    #[error("upstream did not answer within {0:?}")]
    UpstreamTimeout(std::time::Duration),
    #[error("request body is larger than the limit of {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("{0}")]
    BadRequest(&'static str),
    /// A request head the proxy does not forward (see `policy`).
    #[error("{1}")]
    Refused(Refusal, &'static str),
    #[error("CONNECT and TRACE are not forwarded (RFC 9110 sections 9.3.6 and 9.3.8)")]
    MethodNotAllowed,
    #[error("{0}")]
    NotImplemented(&'static str),
    #[error("the proxy is shutting down")]
    Draining,
    #[error("internal proxy error: {0}")]
    Internal(String),
}

/// The `kind` label of `magma_request_errors_total`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    Upstream5xx,
    UpstreamUnreachable,
    Timeout,
    ClientAbort,
    BadRequest,
    TooLarge,
    ProxyError,
}

impl ErrorKind {
    pub const fn label(self) -> &'static str {
        match self {
            ErrorKind::Upstream5xx => "upstream_5xx",
            ErrorKind::UpstreamUnreachable => "upstream_unreachable",
            ErrorKind::Timeout => "timeout",
            ErrorKind::ClientAbort => "client_abort",
            ErrorKind::BadRequest => "bad_request",
            ErrorKind::TooLarge => "too_large",
            ErrorKind::ProxyError => "proxy_error",
        }
    }
}

impl ProxyError {
    pub fn status(&self) -> StatusCode {
        match self {
            ProxyError::UpstreamUnreachable(_) => StatusCode::BAD_GATEWAY,
            ProxyError::UpstreamTimeout(_) => StatusCode::GATEWAY_TIMEOUT,
            ProxyError::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyError::BadRequest(_) | ProxyError::Refused(..) => StatusCode::BAD_REQUEST,
            ProxyError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ProxyError::NotImplemented(_) => StatusCode::NOT_IMPLEMENTED,
            ProxyError::Draining => StatusCode::SERVICE_UNAVAILABLE,
            ProxyError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error-counter kind, or `None` for refusals that are not errors of the
    /// model service (draining).
    pub fn kind(&self) -> Option<ErrorKind> {
        match self {
            ProxyError::UpstreamUnreachable(_) => Some(ErrorKind::UpstreamUnreachable),
            ProxyError::UpstreamTimeout(_) => Some(ErrorKind::Timeout),
            ProxyError::TooLarge { .. } => Some(ErrorKind::TooLarge),
            ProxyError::BadRequest(_)
            | ProxyError::Refused(..)
            | ProxyError::MethodNotAllowed
            | ProxyError::NotImplemented(_) => Some(ErrorKind::BadRequest),
            ProxyError::Draining => None,
            ProxyError::Internal(_) => Some(ErrorKind::ProxyError),
        }
    }

    fn code(&self) -> &'static str {
        match self {
            ProxyError::UpstreamUnreachable(_) => "upstream_unreachable",
            ProxyError::UpstreamTimeout(_) => "upstream_timeout",
            ProxyError::TooLarge { .. } => "request_too_large",
            ProxyError::BadRequest(_) | ProxyError::Refused(..) => "bad_request",
            ProxyError::MethodNotAllowed => "method_not_allowed",
            ProxyError::NotImplemented(_) => "not_implemented",
            ProxyError::Draining => "shutting_down",
            ProxyError::Internal(_) => "proxy_error",
        }
    }

    /// The `reason` label of `magma_requests_refused_total` when the proxy
    /// answers the request without forwarding it.
    pub fn refusal(&self) -> Option<&'static str> {
        match self {
            ProxyError::Refused(refusal, _) => Some(refusal.label()),
            ProxyError::MethodNotAllowed => Some(Refusal::Method.label()),
            ProxyError::NotImplemented(_) => Some(Refusal::TransferCoding.label()),
            ProxyError::TooLarge { .. } => Some("too_large"),
            ProxyError::BadRequest(_) => Some("framing"),
            ProxyError::Draining => Some("draining"),
            ProxyError::UpstreamUnreachable(_)
            | ProxyError::UpstreamTimeout(_)
            | ProxyError::Internal(_) => None,
        }
    }

    /// The JSON answer for this error.
    pub fn to_response(&self, request_id: &HeaderValue) -> Response<Full<Bytes>> {
        let mut response = json_error(self.status(), self.code(), &self.to_string(), request_id);
        let headers = response.headers_mut();
        match self {
            // A head the proxy will not forward may come from a client that
            // frames messages unlike hyper: nothing more is read from it.
            ProxyError::Refused(..) | ProxyError::NotImplemented(_) => {
                headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
            }
            ProxyError::MethodNotAllowed => {
                headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
                headers.insert(
                    http::header::ALLOW,
                    HeaderValue::from_static("GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS"),
                );
            }
            _ => {}
        }
        response
    }
}

/// Builds `{"error", "detail", "request_id"}` with `status`.
pub fn json_error(
    status: StatusCode,
    code: &str,
    detail: &str,
    request_id: &HeaderValue,
) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "error": code,
        "detail": detail,
        "request_id": request_id.to_str().unwrap_or(""),
    });
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(
        http::header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    headers.insert(X_REQUEST_ID.clone(), request_id.clone());
    if status == StatusCode::SERVICE_UNAVAILABLE || status == StatusCode::PAYLOAD_TOO_LARGE {
        headers.insert(http::header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// The answer when request handling panicked: a 500, and the process lives on.
pub fn panic_response(panic: Box<dyn std::any::Any + Send + 'static>) -> Response<Full<Bytes>> {
    let detail = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into());
    tracing::error!(%detail, "request handler panicked");
    json_error(
        StatusCode::INTERNAL_SERVER_ERROR,
        "proxy_error",
        "the proxy failed while handling this request",
        &HeaderValue::from_static(""),
    )
}

/// Joins an error and its sources into one line (`outer: inner: root`).
pub fn source_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(inner) = source {
        let inner_text = inner.to_string();
        if !text.ends_with(&inner_text) {
            text.push_str(": ");
            text.push_str(&inner_text);
        }
        source = inner.source();
    }
    text
}

/// Whether `error` or one of its sources is of type `T`.
pub fn find_source<'a, T: std::error::Error + 'static>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a T> {
    let mut current: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<T>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

//! JSON answers of the admin server.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::Serialize;

/// A JSON response with the given status.
pub fn json_response<T: Serialize + ?Sized>(
    status: StatusCode,
    value: &T,
) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    Response::builder()
        .status(status)
        .header(http::header::CONTENT_TYPE, "application/json")
        .header(http::header::CACHE_CONTROL, "no-store")
        .body(Full::new(Bytes::from(body)))
        .unwrap_or_else(|_| Response::new(Full::new(Bytes::new())))
}

/// `{"error": kind, "detail": detail}` with the given status.
pub fn error(status: StatusCode, kind: &str, detail: &str) -> Response<Full<Bytes>> {
    json_response(
        status,
        &serde_json::json!({"error": kind, "detail": detail}),
    )
}

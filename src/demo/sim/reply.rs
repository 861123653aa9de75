//! Response helpers of the simulated server, shaped like FastAPI's answers.

use std::convert::Infallible;

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::{combinators::BoxBody, BodyExt, Full, Limited};
use hyper::body::Incoming;
use serde::Serialize;

/// Body type of every simulated answer (complete or streamed).
pub type SimBody = BoxBody<Bytes, Infallible>;

pub fn full(bytes: impl Into<Bytes>) -> SimBody {
    Full::new(bytes.into()).boxed()
}

pub fn json<T: Serialize + ?Sized>(status: StatusCode, value: &T) -> Response<SimBody> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(full(body));
    *response.status_mut() = status;
    response.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("application/json"),
    );
    response
}

/// `{"detail": "..."}`, as FastAPI's HTTPException answers.
pub fn detail(status: StatusCode, detail: &str) -> Response<SimBody> {
    json(status, &serde_json::json!({ "detail": detail }))
}

/// 422 in FastAPI's validation-error shape.
pub fn validation_error(field: &str, kind: &str, message: &str) -> Response<SimBody> {
    json(
        StatusCode::UNPROCESSABLE_ENTITY,
        &serde_json::json!({
            "detail": [{"type": kind, "loc": ["body", field], "msg": message}]
        }),
    )
}

/// Reads a JSON body of at most `limit` bytes; a larger one is answered 413,
/// one that is not JSON 422, as FastAPI does.
pub async fn read_json(
    req: Request<Incoming>,
    limit: usize,
) -> Result<serde_json::Value, Response<SimBody>> {
    let body = read_body(req, limit).await?;
    serde_json::from_slice(&body)
        .map_err(|error| validation_error("body", "json_invalid", &error.to_string()))
}

/// Reads a body of at most `limit` bytes; a larger one is answered 413.
pub async fn read_body(req: Request<Incoming>, limit: usize) -> Result<Bytes, Response<SimBody>> {
    match Limited::new(req.into_body(), limit).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => {
            if error.is::<http_body_util::LengthLimitError>() {
                Err(detail(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "Request body too large",
                ))
            } else {
                Err(detail(
                    StatusCode::BAD_REQUEST,
                    "There was an error parsing the body",
                ))
            }
        }
    }
}

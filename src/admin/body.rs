//! Collecting a request body on the admin server, with a size cap.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;

use super::json;

/// Reads the whole body, or answers 413 when it exceeds `cap` bytes and 400
/// when the connection fails mid-body.
pub async fn collect(body: Incoming, cap: usize) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(body, cap).collect().await {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => {
            if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                Err(json::error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    &format!("the body is larger than {cap} bytes"),
                ))
            } else {
                Err(json::error(
                    StatusCode::BAD_REQUEST,
                    "bad_body",
                    &format!("could not read the body: {error}"),
                ))
            }
        }
    }
}

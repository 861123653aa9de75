//! Bearer-token check for the admin server's write routes (`--admin-token`).
//!
//! `/metrics` and the health routes stay open; routes that change state
//! (feedback, ground truth, ...) call [`reject_unauthorized`] first.

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

use super::json_response;

/// `None` when no token is configured or the request carries
/// `Authorization: Bearer <token>`; otherwise the 401 JSON answer to send.
pub fn reject_unauthorized(
    headers: &HeaderMap,
    token: Option<&str>,
) -> Option<Response<Full<Bytes>>> {
    let expected = token.filter(|t| !t.is_empty())?;
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    match presented {
        Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => None,
        Some(_) => Some(unauthorized("the bearer token is not valid")),
        None => Some(unauthorized(
            "this route requires Authorization: Bearer <admin token>",
        )),
    }
}

fn unauthorized(detail: &str) -> Response<Full<Bytes>> {
    let mut response = json_response(
        StatusCode::UNAUTHORIZED,
        &serde_json::json!({"error": "unauthorized", "detail": detail}),
    );
    response.headers_mut().insert(
        http::header::WWW_AUTHENTICATE,
        http::HeaderValue::from_static("Bearer realm=\"magma-monitor\""),
    );
    response
}

/// Compares without an early exit, so the time taken does not reveal how
/// much of a guessed token was right.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    let mut difference = a.len() ^ b.len();
    for (i, x) in a.iter().enumerate() {
        difference |= usize::from(x ^ b.get(i % b.len().max(1)).copied().unwrap_or(0));
    }
    difference == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(value: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        if let Some(v) = value {
            h.insert(http::header::AUTHORIZATION, v.parse().unwrap());
        }
        h
    }

    #[test]
    fn token_rules() {
        assert!(reject_unauthorized(&headers(None), None).is_none());
        assert!(reject_unauthorized(&headers(Some("Bearer s3cret")), Some("s3cret")).is_none());
        assert!(reject_unauthorized(&headers(Some("bearer s3cret")), Some("s3cret")).is_none());
        for bad in [
            None,
            Some("Bearer wrong"),
            Some("Basic s3cret"),
            Some("Bearer s3cre"),
            Some("Bearer s3crett"),
        ] {
            let response = reject_unauthorized(&headers(bad), Some("s3cret")).unwrap();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
        }
    }
}

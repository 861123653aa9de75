//! Bearer-token check for the admin server's write routes (`--admin-token`).
//!
//! `/metrics` and the health routes stay open; routes that change state
//! (feedback, ground truth, ...) call [`authorize`] first.

use bytes::Bytes;
use http::{HeaderMap, Response, StatusCode};
use http_body_util::Full;

use super::json_response;

/// Ok when no token is configured or the request carries
/// `Authorization: Bearer <token>`; otherwise a 401 JSON answer.
pub fn authorize(headers: &HeaderMap, token: Option<&str>) -> Result<(), Response<Full<Bytes>>> {
    let Some(expected) = token.filter(|t| !t.is_empty()) else {
        return Ok(());
    };
    let presented = headers
        .get(http::header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, rest) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| rest.trim())
        });
    match presented {
        Some(given) if constant_time_eq(given.as_bytes(), expected.as_bytes()) => Ok(()),
        Some(_) => Err(unauthorized("the bearer token is not valid")),
        None => Err(unauthorized(
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
        assert!(authorize(&headers(None), None).is_ok());
        assert!(authorize(&headers(Some("Bearer s3cret")), Some("s3cret")).is_ok());
        assert!(authorize(&headers(Some("bearer s3cret")), Some("s3cret")).is_ok());
        for bad in [None, Some("Bearer wrong"), Some("Basic s3cret"), Some("Bearer s3cre"), Some("Bearer s3crett")] {
            let response = authorize(&headers(bad), Some("s3cret")).unwrap_err();
            assert_eq!(response.status(), StatusCode::UNAUTHORIZED, "{bad:?}");
        }
    }
}

//! `GET /api/samples?limit=N`: the newest analysed samples (features and
//! metadata; raw bodies are never served), newest first.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use super::json::{error, json_response};
use super::AdminState;
use crate::payload::feature_names;

/// Default and largest `limit`.
const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 1000;

pub fn samples(state: &AdminState, query: Option<&str>) -> Response<Full<Bytes>> {
    let Some(ring) = &state.samples else {
        return json_response(
            StatusCode::OK,
            &serde_json::json!({"enabled": false, "feature_names": [], "samples": []}),
        );
    };
    let limit = match parse_limit(query) {
        Ok(limit) => limit,
        Err(detail) => return error(StatusCode::BAD_REQUEST, "bad_request", detail),
    };
    let records = ring.newest(limit);
    json_response(
        StatusCode::OK,
        &serde_json::json!({
            "enabled": true,
            "feature_names": feature_names(ring.hash_dim()),
            "samples": records.iter().map(|r| &**r).collect::<Vec<_>>(),
        }),
    )
}

fn parse_limit(query: Option<&str>) -> Result<usize, &'static str> {
    let Some(query) = query else {
        return Ok(DEFAULT_LIMIT);
    };
    for pair in query.split('&') {
        if let Some(value) = pair.strip_prefix("limit=") {
            return value
                .parse::<usize>()
                .map(|n| n.min(MAX_LIMIT))
                .map_err(|_| "limit must be a non-negative integer");
        }
    }
    Ok(DEFAULT_LIMIT)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits() {
        assert_eq!(parse_limit(None), Ok(50));
        assert_eq!(parse_limit(Some("limit=5")), Ok(5));
        assert_eq!(parse_limit(Some("x=1&limit=99999")), Ok(1000));
        assert!(parse_limit(Some("limit=-1")).is_err());
    }
}

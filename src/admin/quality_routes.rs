//! Admin routes of output quality and anomaly detection:
//! `POST /api/feedback`, `GET /api/feedback`, `POST /api/ground_truth`,
//! `GET /api/anomalies`.

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body_util::Full;
use hyper::body::Incoming;

use super::{auth, body, json, json_response, AdminState};
use crate::quality::api;

/// Which write route.
#[derive(Debug, Clone, Copy)]
pub enum WriteRoute {
    Feedback,
    GroundTruth,
}

/// `POST /api/feedback` and `POST /api/ground_truth`.
pub async fn write(
    req: Request<Incoming>,
    state: &AdminState,
    route: WriteRoute,
) -> Response<Full<Bytes>> {
    if let Some(response) = auth::reject_unauthorized(req.headers(), state.admin_token.as_deref()) {
        return response;
    }
    let Some(monitor) = state.quality.as_deref() else {
        return json::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "disabled",
            "output quality monitoring is not running",
        );
    };
    let content_type = req
        .headers()
        .get(http::header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let bytes = match body::collect(req.into_body(), api::MAX_BODY_BYTES).await {
        Ok(bytes) => bytes,
        Err(response) => return response,
    };
    match route {
        WriteRoute::Feedback => api::feedback(monitor, content_type.as_deref(), &bytes),
        WriteRoute::GroundTruth => api::ground_truth(monitor, content_type.as_deref(), &bytes),
    }
}

/// `GET /api/feedback?limit=N`: the newest feedback (same token as the write routes,
/// since comments are user text).
pub fn recent_feedback(req: &Request<Incoming>, state: &AdminState) -> Response<Full<Bytes>> {
    if let Some(response) = auth::reject_unauthorized(req.headers(), state.admin_token.as_deref()) {
        return response;
    }
    let Some(monitor) = state.quality.as_deref() else {
        return json::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "disabled",
            "output quality monitoring is not running",
        );
    };
    api::recent_feedback(monitor, limit(req, 20, 100))
}

/// `GET /api/anomalies?limit=N`: open anomalies, the N newest closed ones, events.
pub fn anomalies(req: &Request<Incoming>, state: &AdminState) -> Response<Full<Bytes>> {
    let Some(report) = state
        .anomalies
        .as_deref()
        .and_then(|h| h.report(limit(req, 50, 100)))
    else {
        return json::error(
            StatusCode::SERVICE_UNAVAILABLE,
            "disabled",
            "anomaly detection is not running",
        );
    };
    json_response(StatusCode::OK, &report)
}

fn limit(req: &Request<Incoming>, default: usize, max: usize) -> usize {
    req.uri()
        .query()
        .and_then(|q| {
            q.split('&')
                .filter_map(|pair| pair.split_once('='))
                .find(|(k, _)| *k == "limit")
                .and_then(|(_, v)| v.parse::<usize>().ok())
        })
        .unwrap_or(default)
        .min(max)
}

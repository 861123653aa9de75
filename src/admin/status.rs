//! `/api/status`: version, uptime, upstream state and request counters.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use super::{json_response, AdminState};

pub fn status(state: &AdminState) -> Response<Full<Bytes>> {
    let body = serde_json::json!({
        "version": env!("CARGO_PKG_VERSION"),
        "uptime_seconds": state.started.elapsed().as_secs_f64(),
        "upstream": {
            "url": state.upstream,
            "health": state.health.snapshot(),
        },
        "requests": state.stats.snapshot(),
    });
    json_response(StatusCode::OK, &body)
}

//! `/api/resources`: the latest GPU and upstream-process readings as JSON.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;

use super::{json, json_response, AdminState};

pub fn resources(state: &AdminState) -> Response<Full<Bytes>> {
    match state.resources.read() {
        Ok(snapshot) => json_response(StatusCode::OK, &*snapshot),
        Err(_) => json::error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "unavailable",
            "resource snapshot is unavailable",
        ),
    }
}

//! Admin routes of the drift engine: `GET /api/drift` (the last result of
//! every detector and the reference) and `POST /api/drift/reference`
//! (replace the reference from the current window or an uploaded file).

use bytes::Bytes;
use http::{Request, Response, StatusCode};
use http_body::Body;
use http_body_util::{BodyExt, Full, Limited};
use serde_json::json;

use super::handle::{DriftHandle, ReferenceCommand};
use super::reference::parse_reference;
use super::report::DriftSnapshot;
use crate::admin::json_response;

/// Largest reference upload accepted.
pub const MAX_UPLOAD_BYTES: usize = 32 * 1024 * 1024;

/// `GET /api/drift`.
pub fn get_drift(handle: Option<&DriftHandle>) -> Response<Full<Bytes>> {
    match handle {
        Some(handle) => json_response(StatusCode::OK, &handle.snapshot()),
        None => json_response(StatusCode::OK, &DriftSnapshot::default()),
    }
}

fn error(status: StatusCode, kind: &str, detail: &str) -> Response<Full<Bytes>> {
    json_response(status, &json!({"error": kind, "detail": detail}))
}

/// `POST /api/drift/reference`.
///
/// - an empty body, `?from=window` or `{"from": "window"}`: the current test
///   window becomes the reference;
/// - otherwise the body is a reference file (CSV of input features, or JSON
///   lines of samples, as `--drift-reference` reads) of at most 32 MiB.
///
/// Answers 202 with what was queued (the engine applies it at its next
/// sample or poll; `/api/drift` shows the result), 400 for a bad file, 413
/// for a too large one, 503 when the drift engine is off.
pub async fn post_reference<B>(
    req: Request<B>,
    handle: Option<&DriftHandle>,
) -> Response<Full<Bytes>>
where
    B: Body,
    B::Error: Into<Box<dyn std::error::Error + Send + Sync>>,
{
    let Some(handle) = handle else {
        return error(
            StatusCode::SERVICE_UNAVAILABLE,
            "drift_disabled",
            "the drift engine is off",
        );
    };
    let from_window_query = req
        .uri()
        .query()
        .is_some_and(|q| q.split('&').any(|pair| pair == "from=window"));
    let body = match Limited::new(req.into_body(), MAX_UPLOAD_BYTES)
        .collect()
        .await
    {
        Ok(collected) => collected.to_bytes(),
        Err(error) => {
            let detail = error.to_string();
            return if error
                .downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                self::error(
                    StatusCode::PAYLOAD_TOO_LARGE,
                    "too_large",
                    "the reference upload is larger than 32 MiB",
                )
            } else {
                self::error(StatusCode::BAD_REQUEST, "bad_body", &detail)
            };
        }
    };
    let text = match std::str::from_utf8(&body) {
        Ok(text) => text,
        Err(_) => {
            return error(
                StatusCode::BAD_REQUEST,
                "bad_reference",
                "the upload is not UTF-8 text",
            )
        }
    };
    if from_window_query || text.trim().is_empty() || asks_for_window(text) {
        handle.request_reference(ReferenceCommand::FromWindow);
        return json_response(
            StatusCode::ACCEPTED,
            &json!({"status": "accepted", "action": "from_window"}),
        );
    }
    match parse_reference("upload", text) {
        Ok(samples) => {
            let count = samples.len();
            handle.request_reference(ReferenceCommand::Upload(samples));
            json_response(
                StatusCode::ACCEPTED,
                &json!({"status": "accepted", "action": "upload", "samples": count}),
            )
        }
        Err(reason) => error(StatusCode::BAD_REQUEST, "bad_reference", &reason),
    }
}

/// Whether the body is the JSON object `{"from": "window"}`.
fn asks_for_window(text: &str) -> bool {
    serde_json::from_str::<serde_json::Value>(text)
        .ok()
        .and_then(|v| {
            v.get("from")
                .and_then(|f| f.as_str().map(|f| f == "window"))
        })
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn post(uri: &str, body: &str) -> Request<Full<Bytes>> {
        Request::post(uri)
            .body(Full::new(Bytes::from(body.to_string())))
            .unwrap()
    }

    async fn body_json(response: Response<Full<Bytes>>) -> serde_json::Value {
        let bytes = response.into_body().collect().await.unwrap().to_bytes();
        serde_json::from_slice(&bytes).unwrap()
    }

    #[tokio::test]
    async fn replacement_requests_are_queued() {
        let handle = DriftHandle::default();
        for (uri, body) in [
            ("/api/drift/reference", ""),
            ("/api/drift/reference?from=window", ""),
            ("/api/drift/reference", "{\"from\":\"window\"}"),
        ] {
            let response = post_reference(post(uri, body), Some(&handle)).await;
            assert_eq!(response.status(), StatusCode::ACCEPTED);
            assert_eq!(handle.take_command(), Some(ReferenceCommand::FromWindow));
        }
        let response = post_reference(
            post("/api/drift/reference", "x,y\n1,2\n3,4\n5,6\n"),
            Some(&handle),
        )
        .await;
        assert_eq!(response.status(), StatusCode::ACCEPTED);
        assert_eq!(body_json(response).await["samples"], 3);
        assert!(matches!(handle.take_command(), Some(ReferenceCommand::Upload(s)) if s.len() == 3));
    }

    #[tokio::test]
    async fn bad_uploads_are_refused() {
        let handle = DriftHandle::default();
        let response =
            post_reference(post("/api/drift/reference", "1,2\n3\n"), Some(&handle)).await;
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(body_json(response).await["error"], "bad_reference");
        assert_eq!(handle.take_command(), None);
        let big = "1\n".repeat(MAX_UPLOAD_BYTES / 2 + 1);
        let response = post_reference(post("/api/drift/reference", &big), Some(&handle)).await;
        assert_eq!(response.status(), StatusCode::PAYLOAD_TOO_LARGE);
        let response = post_reference(post("/api/drift/reference", ""), None).await;
        assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    }

    #[tokio::test]
    async fn the_snapshot_is_served() {
        let response = get_drift(None);
        assert_eq!(body_json(response).await["enabled"], false);
        let handle = DriftHandle::default();
        handle.update(|s| {
            s.enabled = true;
            s.tests_run = 3;
        });
        let json = body_json(get_drift(Some(&handle))).await;
        assert_eq!(json["enabled"], true);
        assert_eq!(json["tests_run"], 3);
        assert!(json["reference"].is_object());
    }
}

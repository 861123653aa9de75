//! The JSON bodies of `POST /api/feedback` and `POST /api/ground_truth`.
//!
//! A body is either one JSON object (answered 200, 400 or 404) or a batch of
//! JSON lines, one object per line (answered 200 with a per-line result, so a
//! labelling job learns which lines failed and why). A body is taken as a
//! batch when its content type says `ndjson`/`jsonl`/`json-lines`, or when it
//! is not one JSON value but several lines. Parsing is independent per line,
//! so one bad line does not lose the others.

use bytes::Bytes;
use http::{Response, StatusCode};
use http_body_util::Full;
use serde::de::DeserializeOwned;
use serde_json::{json, Map, Value};

use super::feedback::Feedback;
use super::monitor::{ApplyError, QualityMonitor};
use super::scoring::GroundTruth;
use crate::admin::json_response;

/// Largest body accepted by the write routes (a batch of labels).
pub const MAX_BODY_BYTES: usize = 8 * 1024 * 1024;
/// Most lines processed in one batch.
pub const MAX_BATCH_LINES: usize = 100_000;
/// Most per-line results returned (the counts always cover every line).
pub const MAX_BATCH_RESULTS: usize = 1000;

/// The outcome of one record.
enum RecordResult {
    Ok(Value),
    BadRequest(String),
    NotFound(String),
}

impl RecordResult {
    fn status(&self) -> StatusCode {
        match self {
            RecordResult::Ok(_) => StatusCode::OK,
            RecordResult::BadRequest(_) => StatusCode::BAD_REQUEST,
            RecordResult::NotFound(_) => StatusCode::NOT_FOUND,
        }
    }

    fn body(self) -> Value {
        match self {
            RecordResult::Ok(value) => value,
            RecordResult::BadRequest(detail) => json!({"error": "bad_request", "detail": detail}),
            RecordResult::NotFound(detail) => {
                json!({"error": "unknown_request_id", "detail": detail})
            }
        }
    }
}

fn from_apply_error(error: ApplyError) -> RecordResult {
    match error {
        ApplyError::UnknownId(_) | ApplyError::Expired(..) => {
            RecordResult::NotFound(error.to_string())
        }
        ApplyError::Invalid(_) | ApplyError::EmptyId => RecordResult::BadRequest(error.to_string()),
    }
}

/// Answers `POST /api/feedback` for a collected body.
pub fn feedback(
    monitor: &QualityMonitor,
    content_type: Option<&str>,
    body: &[u8],
) -> Response<Full<Bytes>> {
    respond(content_type, body, |record: Feedback| {
        match monitor.feedback(&record) {
            Ok(outcome) => RecordResult::Ok(json!({
                "request_id": record.request_id,
                "rating": record.rating,
                "task": outcome.task,
                "counted": outcome.counted,
            })),
            Err(error) => from_apply_error(error),
        }
    })
}

/// Answers `POST /api/ground_truth` for a collected body.
pub fn ground_truth(
    monitor: &QualityMonitor,
    content_type: Option<&str>,
    body: &[u8],
) -> Response<Full<Bytes>> {
    respond(content_type, body, |record: GroundTruth| {
        match monitor.ground_truth(&record) {
            Ok((task, scores)) => {
                let mut by_metric = Map::new();
                for (metric, value) in &scores.scores {
                    by_metric.insert(metric.as_label().to_owned(), json!(value));
                }
                RecordResult::Ok(json!({
                    "request_id": record.request_id,
                    "task": task,
                    "scores": by_metric,
                    "not_scored": scores.not_scored,
                }))
            }
            Err(error) => from_apply_error(error),
        }
    })
}

/// Answers `GET /api/feedback`: the newest feedback records.
pub fn recent_feedback(monitor: &QualityMonitor, limit: usize) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::OK,
        &json!({"feedback": monitor.recent_feedback(limit)}),
    )
}

fn respond<T: DeserializeOwned>(
    content_type: Option<&str>,
    body: &[u8],
    mut apply: impl FnMut(T) -> RecordResult,
) -> Response<Full<Bytes>> {
    let declared_batch = content_type.is_some_and(|ct| {
        let ct = ct.to_ascii_lowercase();
        ct.contains("ndjson") || ct.contains("jsonl") || ct.contains("json-lines")
    });
    if !declared_batch {
        match serde_json::from_slice::<Value>(body) {
            Ok(value) => {
                let result = decode(value).map_or_else(RecordResult::BadRequest, &mut apply);
                return json_response(result.status(), &result.body());
            }
            Err(error) => {
                let lines = non_empty_lines(body).take(2).count();
                if lines < 2 {
                    let detail = if body.iter().all(u8::is_ascii_whitespace) {
                        "empty body: send a JSON object, or JSON lines".to_owned()
                    } else {
                        format!("body is not valid JSON: {error}")
                    };
                    return json_response(
                        StatusCode::BAD_REQUEST,
                        &json!({"error": "bad_request", "detail": detail}),
                    );
                }
            }
        }
    }
    batch(body, apply)
}

fn batch<T: DeserializeOwned>(
    body: &[u8],
    mut apply: impl FnMut(T) -> RecordResult,
) -> Response<Full<Bytes>> {
    let mut counts = [0usize; 3];
    let mut results = Vec::new();
    let mut lines = 0usize;
    for (number, line) in non_empty_lines(body) {
        if lines == MAX_BATCH_LINES {
            return json_response(
                StatusCode::PAYLOAD_TOO_LARGE,
                &json!({"error": "too_many_lines", "detail": format!("a batch holds at most {MAX_BATCH_LINES} lines")}),
            );
        }
        lines += 1;
        let result = match serde_json::from_slice::<Value>(line) {
            Ok(value) => decode(value).map_or_else(RecordResult::BadRequest, &mut apply),
            Err(error) => RecordResult::BadRequest(format!("line is not valid JSON: {error}")),
        };
        let slot = match result {
            RecordResult::Ok(_) => 0,
            RecordResult::NotFound(_) => 1,
            RecordResult::BadRequest(_) => 2,
        };
        counts[slot] += 1;
        if results.len() < MAX_BATCH_RESULTS {
            let status = result.status().as_u16();
            let mut entry = match result.body() {
                Value::Object(map) => map,
                other => Map::from_iter([("result".to_owned(), other)]),
            };
            entry.insert("line".into(), json!(number));
            entry.insert("status".into(), json!(status));
            results.push(Value::Object(entry));
        }
    }
    if lines == 0 {
        return json_response(
            StatusCode::BAD_REQUEST,
            &json!({"error": "bad_request", "detail": "empty batch: no JSON lines in the body"}),
        );
    }
    json_response(
        StatusCode::OK,
        &json!({
            "lines": lines,
            "accepted": counts[0],
            "unknown": counts[1],
            "invalid": counts[2],
            "results": results,
            "results_truncated": lines > MAX_BATCH_RESULTS,
        }),
    )
}

/// Deserialises one record; the error text names the offending field.
fn decode<T: DeserializeOwned>(value: Value) -> Result<T, String> {
    if !value.is_object() {
        return Err("expected a JSON object".to_owned());
    }
    serde_json::from_value(value).map_err(|e| format!("invalid record: {e}"))
}

/// Non-blank lines with their 1-based numbers.
fn non_empty_lines(body: &[u8]) -> impl Iterator<Item = (usize, &[u8])> {
    body.split(|b| *b == b'\n')
        .enumerate()
        .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
        .map(|(i, line)| (i + 1, line))
}

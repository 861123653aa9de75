//! Records what the taps learned into the metric catalogue. Called once per
//! exchange on the forward path, after the bodies ended; every label value
//! comes from a closed set.

use std::time::Duration;

use crate::telemetry;

use super::request_tap::RequestInfo;
use super::response_tap::ResponseInfo;

/// Records a finished request body: image and media-byte histograms, the
/// format/modality/task counter and malformed bodies.
pub fn record_request(info: &RequestInfo) {
    let modality = info.modality.as_str();
    metrics::counter!(
        telemetry::PAYLOAD_REQUESTS,
        "format" => info.format.as_str(),
        "modality" => modality,
        "task" => info.task.as_str()
    )
    .increment(1);
    if info.malformed {
        metrics::counter!(telemetry::PAYLOAD_MALFORMED, "side" => "request").increment(1);
    }
    if info.body_bytes > 0 {
        metrics::histogram!(telemetry::REQUEST_IMAGES, "modality" => modality)
            .record(f64::from(info.images));
        metrics::histogram!(telemetry::REQUEST_MEDIA_BYTES, "modality" => modality)
            .record(info.media_bytes as f64);
    }
}

/// Records a finished response body: token counts, time to first token
/// (pass the time from the request's arrival to the chunk for which
/// `ResponseTap::feed` returned true) and malformed bodies.
pub fn record_response(
    info: &ResponseInfo,
    route: &'static str,
    time_to_first_token: Option<Duration>,
) {
    if let Some(tokens) = info.prompt_tokens {
        metrics::counter!(telemetry::TOKENS, "direction" => "input").increment(tokens);
    }
    if let Some(tokens) = info.completion_tokens {
        metrics::counter!(telemetry::TOKENS, "direction" => "output").increment(tokens);
    }
    if let Some(ttft) = time_to_first_token {
        metrics::histogram!(telemetry::TIME_TO_FIRST_TOKEN, "route" => route)
            .record(ttft.as_secs_f64());
    }
    if info.malformed {
        metrics::counter!(telemetry::PAYLOAD_MALFORMED, "side" => "response").increment(1);
    }
}
